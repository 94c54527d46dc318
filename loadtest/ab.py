#!/usr/bin/env python3
"""Interleaved A/B: the CPU cost per request of two systems, measured in alternating rounds.

On a shared machine the cost of a request drifts by more than the differences worth measuring
(a plugin's few microseconds, a filter's one or two, Weir against the bare pass-through floor).
Rows measured one after the other, as `harness.py bench` does, carry that drift into their
difference. Here each round measures A then B (the order alternates from round to round), each
started afresh, warmed up and measured the same way, so a drift slower than a round cancels in
the round's difference; the result is the median over rounds of B - A and of B / A, with the
spread across rounds.

  python3 loadtest/ab.py weir-epoll weir-wasm-epoll      # a Wasm plugin's own cost
  python3 loadtest/ab.py bare-epoll weir-epoll           # Weir against the floor
  python3 loadtest/ab.py weir-ai weir-guarded            # key auth + quota on an AI route
  python3 loadtest/ab.py envoy weir-epoll --tls --close  # a TLS handshake per request
  python3 loadtest/ab.py envoy-wasm weir-wasm-epoll      # the same plugin in Envoy and in Weir
  python3 loadtest/ab.py weir-epoll weir-wasm-epoll --count --rounds 2   # instructions instead

`--cap PERCENT` moves each SUT into a cgroup capped at PERCENT of one CPU (root; cgroup v1 or v2),
so it is saturated whatever the client on the other CPU can offer: its CPU per request is then its
capacity per core (requests per second per core = 1e6 / that figure), with no idle wake-ups in it.
Each round prints how busy each SUT was.

`--count` runs the Weir and bare systems under valgrind's callgrind and reports the instructions
executed per request (all of the SUT's threads, instrumentation on only while wrk runs): slow, but
a figure the machine's noise does not move, to set beside the CPU time.

The systems are those of `harness.py bench` (envoy, nginx, weir-*, bare-*), of its `ai` mode
(weir-ai, weir-guarded, weir-plain; chat completions with the harness's body), and envoy-wasm:
Envoy with the benchmark's header-rewrite plugin, as `envoy-wasm/bench_envoy_wasm.py` starts it
(the same .wasm and configuration as weir-wasm-*; cleartext HTTP/1.1 only). The SUT runs alone
on CPU 0 with one worker, wrk and the upstream mock on CPU 1, exactly as in the harness, whose
starters and measurement this script reuses. Each round prints both figures and the share of
CPU others took (`others`): a round with more than 10% is flagged and left out of the medians.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

AI = ("weir-ai", "weir-guarded", "weir-plain")


def start(system: str, args, mock_port: int):
    """(process, url, wrk keyword arguments) of a started system."""
    if system in AI:
        p, url, headers, _ = h.start_ai_sut(system, args, mock_port)
        lua = os.path.join(h.RUN, "ai-chat.lua")
        kw = {"script": lua, "path": h.AI_PATH,
              "env": {"AI_HEADERS": "|".join(f"{k}: {v}" for k, v in headers.items())}}
        return p, url, kw
    if system == "envoy-wasm":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "envoy-wasm"))
        import bench_envoy_wasm  # noqa: E402  (it checks that the plugin answers)
        p, url = bench_envoy_wasm.start_envoy(bench_envoy_wasm.find_envoy(None), "envoy-wasm")
        return p, url, ({"script": h.close_lua()} if args.close else {})
    p, url = h.start_sut(system, args, workers=1, cpu=h.SUT_CPU)
    # `Connection: close`: a new connection (and with --tls a new handshake) per request.
    return p, url, ({"script": h.close_lua()} if args.close else {})


class CpuCap:
    """A cgroup with a CPU quota (`--cap`) that the SUT's processes are moved into: capped below
    what the client on the other CPU can keep busy, the SUT is saturated, so its cost per request
    is its capacity per core (requests per second per core = 1e6 / CPU µs per request), as it
    would be under more load than one client core can offer. Without a cap a fast SUT idles between events and
    pays a wake-up for most of them, which a slower one (busy all the time) does not."""

    def __init__(self, percent: int):
        period = 100_000
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if not 1 <= percent <= 100:
            raise SystemExit("--cap takes a percentage of one CPU, 1 to 100")
        if os.path.exists(v2):
            self.dir = "/sys/fs/cgroup/weir-ab"
            os.makedirs(self.dir, exist_ok=True)
            if not os.path.exists(os.path.join(self.dir, "cpu.max")):
                raise SystemExit("--cap: the cgroup v2 `cpu` controller is not enabled under "
                                 "/sys/fs/cgroup (cgroup.subtree_control)")
            self._write("cpu.max", f"{period * percent // 100} {period}")
        else:
            self.dir = "/sys/fs/cgroup/cpu/weir-ab"
            os.makedirs(self.dir, exist_ok=True)
            self._write("cpu.cfs_period_us", str(period))
            self._write("cpu.cfs_quota_us", str(period * percent // 100))

    def _write(self, name: str, value: str) -> None:
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value)

    def enter(self, root: int) -> None:
        """Moves `root`'s process tree (threads started later follow their process)."""
        for pid in h.proc_tree(root):
            try:
                self._write("cgroup.procs", str(pid))
            except ProcessLookupError:
                pass


def callgrind(pid: int, *what: str) -> None:
    subprocess.run(["callgrind_control", *what, str(pid)], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count(p, url: str, args, kw: dict) -> tuple[dict, str]:
    """wrk with callgrind's instrumentation on for its run only; `us_per_req` holds instructions
    per request (so the rest of the script reads either figure alike)."""
    callgrind(p.pid, "--zero")
    callgrind(p.pid, "--instr=on")
    r, out = h.run_wrk(url, args.dur, args.conns, **kw)
    callgrind(p.pid, "--instr=off")
    callgrind(p.pid, "--dump")
    # The dump is `callgrind.PID.1`; its `totals:` line (the header's `summary:` is not the count).
    dump = os.path.join(h.RUN, f"callgrind.{p.pid}.1")
    total = None
    for _ in range(50):
        with open(dump) as f:
            total = next((int(line.split()[1]) for line in f if line.startswith("totals:")), None)
        if total is not None:
            break
        time.sleep(0.1)
    if total is None:
        raise RuntimeError(f"{dump}: no totals")
    r["us_per_req"] = total / r["requests"] if r["requests"] else None
    r["cpu0_others"] = r["cpu1_others"] = 0.0  # instructions do not depend on the neighbours
    return r, out


def one(system: str, args, mock, mock_port: int, cap: "CpuCap | None") -> dict:
    p = None
    try:
        p, url, kw = start(system, args, mock_port)
        if cap:
            cap.enter(p.pid)
        h.run_wrk(url, args.warmup, args.conns, **kw)
        if args.count:
            r, out = count(p, url, args, kw)
        else:
            r, out = h.measure(url, args.dur, args.conns, p.pid, mock.pid, **kw)
        if not r["requests"] or r["non2xx"] or r["socket_errors"]:
            raise RuntimeError(f"{system}: {r['requests']} requests, {r['non2xx']} non-2xx, "
                               f"{r['socket_errors_detail']}\n{out}")
        return r
    finally:
        if p:
            p.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("a", help="the base system")
    ap.add_argument("b", help="the system compared with it")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--dur", type=int, default=4, help="seconds measured per system per round")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up after each start")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--weir", default=os.environ.get("WEIR", "target/release/weir"))
    ap.add_argument("--mock", default=os.environ.get("MOCK"))
    ap.add_argument("--mock-driver", default="epoll", choices=("epoll", "uring", "auto"))
    ap.add_argument("--weir-driver", default="epoll", choices=("uring", "epoll", "auto"),
                    help="driver of the ai systems")
    ap.add_argument("--tls", action="store_true", help="HTTPS, as harness.py --tls")
    ap.add_argument("--close", action="store_true",
                    help="`Connection: close` on every request: a new connection (and TLS handshake) each")
    ap.add_argument("--count", action="store_true",
                    help="instructions per request under callgrind instead of CPU time (Weir and bare systems)")
    ap.add_argument("--cap", type=int, metavar="PERCENT",
                    help="run each SUT in a cgroup capped at PERCENT of one CPU, so it is saturated "
                         "(needs root)")
    args = ap.parse_args()
    cap = CpuCap(args.cap) if args.cap else None
    unit = "instr/req" if args.count else "us/req"
    if args.count:
        if any(s in ("envoy", "envoy-wasm", "nginx") or "uring" in s for s in (args.a, args.b)):
            raise SystemExit("--count runs Weir and bare systems on epoll only (valgrind has no io_uring)")
        h.SUT_WRAP = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                      f"--callgrind-out-file={h.RUN}/callgrind.%p"]
        h.READY_LIMIT = 600.0
    ai = [s in AI for s in (args.a, args.b)]
    if any(ai) and not all(ai):
        raise SystemExit("compare ai systems with ai systems (they need the AI mock and body)")
    if args.close and any(ai):
        raise SystemExit("--close is for the bench systems")
    if args.tls and "envoy-wasm" in (args.a, args.b):
        raise SystemExit("envoy-wasm is cleartext only")
    os.makedirs(h.RUN, exist_ok=True)
    if args.tls:
        h.make_cert()
    h.setup(need_envoy=bool({"envoy", "envoy-wasm"} & {args.a, args.b}), need_nginx="nginx" in (args.a, args.b))
    h.mock_bin(args)
    if all(ai):
        with open(os.path.join(h.RUN, "ai-chat.lua"), "w") as f:
            f.write(h.AI_LUA.format(path=h.AI_PATH, body=h.AI_BODY, n=len(h.AI_BODY), key=h.AI_CLIENT_KEY))
        mock, mock_port = h.start_ai_mock(args, h.LOAD_CPU)
    else:
        mock, mock_port = h.start_mock(args, workers=1, cpu=h.LOAD_CPU), h.UPSTREAM_PORT
    rounds = []
    try:
        for i in range(args.rounds):
            order = (args.a, args.b) if i % 2 == 0 else (args.b, args.a)
            got = {s: one(s, args, mock, mock_port, cap) for s in order}
            ra, rb = got[args.a], got[args.b]
            noisy = max(h.disturbed(ra), h.disturbed(rb))
            rounds.append((ra, rb, noisy))
            busy = "" if args.count else f", SUT {ra['sut_util']:.0f}/{rb['sut_util']:.0f}% busy"
            print(f"round {i + 1}: {args.a} {ra['us_per_req']:.2f} {unit} ({ra['rps']:.0f} rps), "
                  f"{args.b} {rb['us_per_req']:.2f} {unit} ({rb['rps']:.0f} rps){busy}, "
                  f"diff {rb['us_per_req'] - ra['us_per_req']:+.2f}"
                  + ("" if args.count else
                     f" (user {rb['user_us_per_req'] - ra['user_us_per_req']:+.2f})")
                  + ", "
                  f"others CPU0 {h.fmt(ra['cpu0_others'], 0)}/{h.fmt(rb['cpu0_others'], 0)}% "
                  f"CPU1 {ra['cpu1_others']:.0f}/{rb['cpu1_others']:.0f}%"
                  + ("  (!) disturbed, left out" if noisy else ""), flush=True)
    finally:
        mock.stop()
    kept = [(a, b) for a, b, noisy in rounds if not noisy]
    if not kept:
        print("every round was disturbed: no result", flush=True)
        return 1
    diffs = [b["us_per_req"] - a["us_per_req"] for a, b in kept]
    ratios = [b["us_per_req"] / a["us_per_req"] for a, b in kept]
    qa = statistics.median(a["us_per_req"] for a, _ in kept)
    qb = statistics.median(b["us_per_req"] for _, b in kept)
    print(f"\n{len(kept)} of {len(rounds)} rounds kept; {args.a} {qa:.2f}, {args.b} {qb:.2f} "
          f"{'instructions' if args.count else 'CPU us'}/req (medians)")
    print(f"{args.b} - {args.a}: median {statistics.median(diffs):+.2f} {unit} "
          f"(rounds {min(diffs):+.2f} .. {max(diffs):+.2f})")
    if not args.count:
        # The split: a filter's or plugin's own work is user time; system time (the same system
        # calls on both sides) moves with the machine's noise, and with cache effects.
        users = [b["user_us_per_req"] - a["user_us_per_req"] for a, b in kept]
        systems = [d - u for d, u in zip(diffs, users)]
        print(f"  of which user time: median {statistics.median(users):+.2f} us/req "
              f"(rounds {min(users):+.2f} .. {max(users):+.2f}); system time: median "
              f"{statistics.median(systems):+.2f} (rounds {min(systems):+.2f} .. {max(systems):+.2f})")
    print(f"{args.b} / {args.a}: median {statistics.median(ratios):.3f}x "
          f"(rounds {min(ratios):.3f} .. {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        h.Proc.stop_all()
