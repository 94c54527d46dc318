#!/usr/bin/env python3
"""Reload under load: config changes through weir-control while traffic and SSE streams flow.

  python3 loadtest/reload.py                    # 200 changes, wrk -c32 keep-alive, 100 SSE streams
  python3 loadtest/reload.py --upgrade          # plus a binary upgrade (SIGUSR2) half-way
  python3 loadtest/reload.py --changes 50 --dur 20

What runs (all on 127.0.0.1, every process started here and stopped by PID):
  two weir-mock-llm upstreams (ids a, b); weir-control on a temp state dir and socket;
  weir --control (2 workers) with a temp plane state dir; wrk on `GET /` (keep-alive) for the whole
  run; 100 SSE streams through weir (`/sse`, an event every 100 ms) that must each receive every
  event in order and `[DONE]`.
What changes: CHANGES times, a new config is applied with `weirctl apply -f FILE --wait 5`: a route
`/rN` is added (and the oldest of the last five removed), the weights of the two endpoints change.
What is measured:
  - apply: how long `weirctl apply` took (validate, persist, push, every core of every plane ACKed);
  - visible: the time from `weirctl apply` returning to `/rN` answering on all of 16 keep-alive probe
    connections asked at once (opened before the run, SO_REUSEPORT spread them over the cores);
  - failures: wrk's non-2xx responses and socket errors, SSE streams that broke or missed an event.
Needs target/release/{weir,weir-control,weirctl,weir-mock-llm} (cargo build --release) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (Proc, process trees, wrk parsing)

ROOT = os.path.dirname(HERE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(proc: harness.Proc, pattern: str, limit: float = 20) -> re.Match:
    t0 = time.time()
    while time.time() - t0 < limit:
        with open(proc.log_path) as f:
            m = re.search(pattern, f.read())
        if m:
            return m
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name}: no line matching {pattern!r} in {limit}s: {proc.log_tail()}")


def config(port: int, admin: int, a: int, b: int, i: int, keep: int = 5) -> str:
    dyn = "".join(
        f"""      - name: r{k}
        match: {{ path: {{ exact: /r{k} }} }}
        direct_response: {{ status: 200, body: "r{k}" }}
"""
        for k in range(max(1, i - keep + 1), i + 1)
    )
    return f"""workers: 2
admin: {{ address: 127.0.0.1:{admin} }}
access_log: {{ enabled: false }}
shutdown: {{ drain_timeout: 60s }}
listeners:
  - name: main
    address: 127.0.0.1:{port}
    routes:
{dyn}      - name: base
        match: {{ path: {{ prefix: / }} }}
        cluster: pool
clusters:
  - name: pool
    endpoints:
      - {{ address: "127.0.0.1:{a}", weight: {1 + i % 3} }}
      - {{ address: "127.0.0.1:{b}", weight: 1 }}
"""


def get(port: int, path: str, timeout: float = 2) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: reload\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


class Probes:
    """Keep-alive connections opened once (SO_REUSEPORT spread them over the cores), used to ask
    every core for a path at the same moment: all requests are written first, then all answers
    read. A connection the server closes (a draining process) is opened again."""

    def __init__(self, port: int, n: int):
        self.port = port
        self.socks: list[socket.socket | None] = [None] * n
        self.bufs = [b""] * n

    def _sock(self, k: int) -> socket.socket:
        if self.socks[k] is None:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks[k], self.bufs[k] = s, b""
        return self.socks[k]

    def _read_one(self, k: int) -> tuple[int, bytes]:
        s = self.socks[k]
        buf = self.bufs[k]
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            rest += chunk
        body, self.bufs[k] = rest[:n], rest[n:]
        if re.search(rb"(?im)^connection: *close", head):
            s.close()
            self.socks[k] = None
        return int(head.split(b" ", 2)[1]), body

    def ask(self, path: str) -> list[tuple[int, bytes]]:
        req = f"GET {path} HTTP/1.1\r\nHost: reload\r\n\r\n".encode()
        for k in range(len(self.socks)):
            try:
                self._sock(k).sendall(req)
            except OSError:
                self.socks[k] = None
                self._sock(k).sendall(req)
        out = []
        for k in range(len(self.socks)):
            try:
                out.append(self._read_one(k))
            except (OSError, ConnectionError, ValueError):
                self.socks[k] = None
                out.append((0, b""))
        return out


class Streams:
    """SSE streams read in a background asyncio loop; each must see every event in order."""

    def __init__(self, port: int, n: int, events: int, interval_ms: int):
        self.port, self.n, self.events, self.interval = port, n, events, interval_ms
        self.ok = 0
        self.broken: list[str] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run()), daemon=True)

    async def one(self, k: int) -> None:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", self.port)
            w.write(f"GET /sse?events={self.events}&interval_ms={self.interval} HTTP/1.1\r\n"
                    f"Host: reload\r\n\r\n".encode())
            buf = b""
            seen = 0
            deadline = time.time() + self.events * self.interval / 1000 + 60
            while time.time() < deadline:
                chunk = await asyncio.wait_for(r.read(65536), 30)
                if not chunk:
                    break
                buf += chunk
                for m in re.finditer(rb'data: \{"i":(\d+)', buf):
                    i = int(m.group(1))
                    if i != seen:
                        raise ValueError(f"event {i} after {seen - 1}")
                    seen += 1
                buf = buf[buf.rfind(b"\n\n") + 2:] if b"\n\n" in buf else buf
                if b"[DONE]" in chunk or b"[DONE]" in buf:
                    break
            w.close()
            if seen != self.events:
                raise ValueError(f"{seen}/{self.events} events")
            self.ok += 1
        except Exception as e:  # any failure is a broken stream
            self.broken.append(f"stream {k}: {type(e).__name__}: {e}")

    async def run(self) -> None:
        await asyncio.gather(*(self.one(k) for k in range(self.n)))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--conns", type=int, default=32, help="wrk keep-alive connections")
    ap.add_argument("--dur", type=int, default=40, help="seconds of load (wrk and the SSE streams)")
    ap.add_argument("--upgrade", action="store_true", help="binary upgrade (SIGUSR2) half-way")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release"))
    args = ap.parse_args()

    run = tempfile.mkdtemp(prefix="weir-reload-")
    harness.RUN = run
    b = lambda name: os.path.join(args.bin, name)  # noqa: E731
    for name in ("weir", "weir-control", "weirctl", "weir-mock-llm"):
        if not os.path.exists(b(name)):
            print(f"missing {b(name)}: cargo build --release --workspace --bins", file=sys.stderr)
            return 2
    sock = os.path.join(run, "control.sock")
    port, admin = free_port(), free_port()
    result: dict = {"changes": args.changes, "streams": args.streams, "upgrade": args.upgrade}
    try:
        mocks = []
        for mid in ("a", "b"):
            m = harness.Proc(f"mock-{mid}", [b("weir-mock-llm"), "--listen", "127.0.0.1:0", "--id", mid])
            mocks.append(int(wait_line(m, r"listening 127\.0\.0\.1:(\d+)").group(1)))
        cfg = os.path.join(run, "weir.yaml")
        with open(cfg, "w") as f:
            f.write(config(port, admin, mocks[0], mocks[1], 0))
        daemon = harness.Proc("weir-control", [b("weir-control"), "--config", cfg, "--socket", sock,
                                               "--state-dir", os.path.join(run, "state")])
        t0 = time.time()
        while not os.path.exists(sock):
            if time.time() - t0 > 20 or not daemon.alive():
                raise RuntimeError(f"weir-control did not start: {daemon.log_tail()}")
            time.sleep(0.05)
        plane = harness.Proc("weir", [b("weir"), "--control", sock, "--plane-state", os.path.join(run, "plane"),
                                      "--upgrade-socket", os.path.join(run, "upgrade.sock")])
        harness.wait_ready(f"http://127.0.0.1:{admin}/healthz/ready", plane, want_200=True)
        assert get(port, "/")[0] == 200, "base route does not answer"

        streams = Streams(port, args.streams, events=args.dur * 10, interval_ms=100)
        streams.thread.start()
        wrk = subprocess.Popen(["timeout", str(args.dur + 30), "wrk", "-t1", f"-c{args.conns}",
                                f"-d{args.dur}s", "--timeout", "10s", "--latency", f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        applies, visible, nacks = [], [], 0
        probes = Probes(port, 16)
        spec = os.path.join(run, "next.yaml")
        upgraded_pid = None
        for i in range(1, args.changes + 1):
            with open(spec, "w") as f:
                f.write(config(port, admin, mocks[0], mocks[1], i))
            t = time.time()
            out = subprocess.run([b("weirctl"), "--socket", sock, "-o", "json", "apply", "-f", spec, "--wait", "5"],
                                 capture_output=True, text=True, timeout=30)
            done = time.time()
            if out.returncode != 0:
                raise RuntimeError(f"apply {i} failed: {out.stdout}{out.stderr}")
            if '"nack"' in out.stdout:
                nacks += 1
            applies.append((done - t) * 1e3)
            # Every probe connection (spread over the cores) asks at once; again until all answer
            # the new route.
            want = f"r{i}".encode()
            while True:
                if time.time() - done > 10:
                    raise RuntimeError(f"/r{i} not answering 10 s after apply")
                if all(st == 200 and body == want for st, body in probes.ask(f"/r{i}")):
                    break
            visible.append((time.time() - done) * 1e3)
            if args.upgrade and i == args.changes // 2:
                os.kill(plane.pid, signal.SIGUSR2)
                t_up = time.time()
                while upgraded_pid is None and time.time() - t_up < 20:
                    for pid in harness.proc_tree(plane.pid)[1:]:
                        try:
                            if b"--takeover" in open(f"/proc/{pid}/cmdline", "rb").read():
                                upgraded_pid = pid
                        except OSError:
                            pass
                    time.sleep(0.05)
                if upgraded_pid is None:
                    raise RuntimeError("no successor process after SIGUSR2")
                result["upgrade_pid"] = upgraded_pid
        changes_done = time.time()
        out, _ = wrk.communicate(timeout=args.dur + 60)
        streams.thread.join(timeout=args.dur + 90)
        w = harness.parse_wrk(out)
        result.update({
            "wrk_requests": w["requests"],
            "wrk_rps": w["rps"],
            "wrk_socket_errors": w["socket_errors"],
            "wrk_socket_errors_detail": w["socket_errors_detail"],
            "wrk_non_2xx": w["non2xx"],
            "streams_ok": streams.ok,
            "streams_broken": streams.broken[:10],
            "nacks": nacks,
            "apply_ms_p50": statistics.median(applies),
            "apply_ms_p99": pct(applies, 99),
            "visible_ms_p50": statistics.median(visible),
            "visible_ms_p99": pct(visible, 99),
            "changes_seconds": round(changes_done - t0, 1),
        })
        if upgraded_pid:
            try:
                os.kill(upgraded_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    finally:
        harness.Proc.stop_all()
    print(json.dumps(result, indent=2))
    failed = (result.get("wrk_socket_errors", 1) or result.get("wrk_non_2xx", 1)
              or result.get("streams_ok") != args.streams)
    print(f"\n{args.changes} changes under load: {result.get('wrk_requests')} requests, "
          f"{result.get('wrk_non_2xx')} non-2xx, {result.get('wrk_socket_errors')} socket errors; "
          f"{result.get('streams_ok')}/{args.streams} SSE streams complete; "
          f"apply p50/p99 {result.get('apply_ms_p50', 0):.1f}/{result.get('apply_ms_p99', 0):.1f} ms; "
          f"visible on every core after apply returned p50/p99 "
          f"{result.get('visible_ms_p50', 0):.1f}/{result.get('visible_ms_p99', 0):.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
