#!/usr/bin/env python3
"""HTTP/2 client of the integration tests (tests/tests/h2.rs): ordinary exchanges with the `h2`
library (pip `h2`), and attack patterns written frame by frame. It reports what it saw as one
JSON object on the last line of stdout; the Rust test holds the expectations. Exit 0 when the
exchange ran (whatever the server did), 2 on a usage or environment error.

    h2probe.py --target 127.0.0.1:PORT [--ca FILE --server-name NAME] [--pid PID]
               [--timeout S] COMMAND [options]

--ca: TLS with ALPN h2, verified against FILE for --server-name (default localhost).
--pid: the gateway's pid; its VmRSS/VmHWM (KiB) are reported before and after the exchange.
--timeout: the bound on the whole command (default 20 s); every wait is bounded by it.

Commands (all on one connection unless said otherwise):
  get --path P [--header K:V ...]  one GET: status, headers, body length, trailers; --window W: our
      [--window W] [--check-pattern] windows (a small one makes the server wait for our
                                   WINDOW_UPDATEs); --check-pattern: is it the mock's /bytes body
  streams --count N                N GETs of /bytes/SIZE (sizes vary up to ~70 KB), as many in
                                   flight as the server's SETTINGS_MAX_CONCURRENT_STREAMS
                                   allows; bodies checked against the mock's pattern; reports
                                   the server's settings and connection window
  sse --path P [--linger S]        a streamed response: each SSE event's data and arrival time;
                                   then S seconds more on the connection (GOAWAY? closed?)
  sse-cancel --path P [--events N] RST_STREAM (CANCEL) after N events, then a GET on the same
                                   connection
  refused --count N --path P       N requests opened at once after the SETTINGS exchange, not
                                   caring about the server's stream limit: each one's status or
                                   RST_STREAM code
  big-headers --size BYTES         a GET whose header list is ~BYTES (HEADERS + CONTINUATION),
                                   then a GET with 8 KB of headers: each one's outcome
  rapid-reset --count N            N x (HEADERS with END_STREAM, RST_STREAM CANCEL) in a burst
                                   (CVE-2023-44487), then reads until closed or the bound
  continuation-flood --max-bytes B HEADERS without END_HEADERS, then CONTINUATION frames
                                   (16 KB each) until the server closes, writes stall, or B sent
  settings-flood --count N         N SETTINGS frames (at most --flood-time s of them) without
  ping-flood --count N             reading a byte; then, with that connection still open and
                                   unread, a GET on a fresh connection ("probe"); then whether
                                   the flooded connection was closed or still answers a PING
"""

import argparse
import json
import os
import select
import socket
import ssl
import struct
import sys
import time

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.settings
    import hpack
except ImportError:
    print("h2probe.py: the h2 library is missing (python3 -m pip install h2)", file=sys.stderr)
    sys.exit(2)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL = 0x8
SETTING_NAMES = {
    1: "header_table_size",
    2: "enable_push",
    3: "max_concurrent_streams",
    4: "initial_window_size",
    5: "max_frame_size",
    6: "max_header_list_size",
}


class Args:
    """The parsed arguments, plus the deadline of the whole command."""

    def __init__(self, a):
        self.__dict__.update(vars(a))
        self.deadline = time.monotonic() + a.timeout

    def left(self):
        return max(0.0, self.deadline - time.monotonic())


def mem(pid):
    """VmRSS and VmHWM of pid in KiB, or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}
    except (OSError, KeyError, ValueError):
        return None


def connect(a, timeout=None):
    host, _, port = a.target.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout or max(a.left(), 0.1))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.ca:
        ctx = ssl.create_default_context(cafile=a.ca)
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname=a.server_name)
        if sock.selected_alpn_protocol() != "h2":
            raise SystemExit(f"h2probe.py: ALPN settled on {sock.selected_alpn_protocol()!r}, not h2")
    return sock


def authority(a):
    return a.server_name if a.ca else a.target


def scheme(a):
    return "https" if a.ca else "http"


def request_headers(a, method, path, extra=()):
    return [(":method", method), (":scheme", scheme(a)), (":authority", authority(a)), (":path", path)] + list(extra)


# === the h2 library: ordinary exchanges ===


class Client:
    """One connection driven by the h2 library, with a large receive window."""

    def __init__(self, a, window=1 << 24):
        self.a = a
        self.sock = connect(a)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.increment_flow_control_window(window)
        self.remote_settings = {}
        self.connection_window_updates = []
        self.goaway = None
        self.closed = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait_settings(self):
        while not self.remote_settings and not self.closed:
            self.events()

    def events(self):
        """Reads once (bounded by the deadline) and returns the events."""
        self.sock.settimeout(max(self.a.left(), 0.01))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise SystemExit(f"h2probe.py: timed out after {self.a.timeout} s")
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return []
        evs = self.conn.receive_data(chunk)
        for ev in evs:
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                for code, ch in ev.changed_settings.items():
                    self.remote_settings[SETTING_NAMES.get(int(code), str(int(code)))] = ch.new_value
            elif isinstance(ev, h2.events.WindowUpdated) and ev.stream_id == 0:
                self.connection_window_updates.append(ev.delta)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        self.flush()
        return evs


def one_get(a, path, headers=(), window=1 << 24, keep_body=False):
    c = Client(a, window)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, request_headers(a, "GET", path, headers), end_stream=True)
    c.flush()
    out = {"status": None, "headers": {}, "body_len": 0}
    body = bytearray()
    done = False
    while not done and not c.closed:
        for ev in c.events():
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                out["headers"] = dict(ev.headers)
                out["status"] = int(out["headers"].get(":status", 0))
            elif isinstance(ev, h2.events.DataReceived):
                out["body_len"] += len(ev.data)
                if keep_body:
                    body += ev.data
            elif isinstance(ev, h2.events.TrailersReceived):
                out["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamReset):
                out["reset"] = int(ev.error_code)
                done = True
            if isinstance(ev, h2.events.StreamEnded):
                done = True
    if not done:
        out["error"] = f"connection closed (GOAWAY {c.goaway})"
    if keep_body:
        out["pattern_ok"] = pattern_ok(body)
    c.sock.close()
    return out


def cmd_get(a):
    headers = [tuple(h.split(":", 1)) for h in a.header]
    m0 = mem(a.pid)
    out = one_get(a, a.path, headers, window=a.window, keep_body=a.check_pattern)
    out.update(mem_before=m0, mem_after=mem(a.pid))
    return out


def cmd_sse_cancel(a):
    c = Client(a)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, request_headers(a, "GET", a.path, [("accept", "text/event-stream")]), end_stream=True)
    c.flush()
    out = {"status": None, "events_before_cancel": 0}
    buf = b""
    while out["events_before_cancel"] < a.events and not c.closed:
        for ev in c.events():
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = int(dict(ev.headers).get(":status", 0))
            elif isinstance(ev, h2.events.DataReceived):
                buf += ev.data
                out["events_before_cancel"] = buf.count(b"\n\n")
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                out["ended_early"] = True
                return out
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    # The connection outlives the stream: another request on it.
    sid2 = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid2, request_headers(a, "GET", "/bytes/10"), end_stream=True)
    c.flush()
    after = {"status": None, "body_len": 0}
    done = False
    while not done and not c.closed:
        for ev in c.events():
            if getattr(ev, "stream_id", None) != sid2:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                after["status"] = int(dict(ev.headers).get(":status", 0))
            elif isinstance(ev, h2.events.DataReceived):
                after["body_len"] += len(ev.data)
            elif isinstance(ev, h2.events.StreamReset):
                after["reset"] = int(ev.error_code)
                done = True
            if isinstance(ev, h2.events.StreamEnded):
                done = True
    out["after"] = after
    out["goaway"] = c.goaway
    c.sock.close()
    return out


def pattern_ok(body):
    """Whether `body` is the mock's `/bytes/N` body: byte k is b'a' + k % 26."""
    return bytes(body) == (b"abcdefghijklmnopqrstuvwxyz" * (len(body) // 26 + 1))[: len(body)]


def cmd_streams(a):
    c = Client(a)
    c.wait_settings()
    sizes = [(i * 7919) % 70000 for i in range(a.count)]
    pending = list(range(a.count))
    open_streams = {}  # sid -> (index, size, body, status)
    results = {}
    max_open = 0
    while (pending or open_streams) and not c.closed:
        limit = c.conn.remote_settings.max_concurrent_streams
        while pending and len(open_streams) < limit:
            i = pending.pop(0)
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, request_headers(a, "GET", f"/bytes/{sizes[i]}"), end_stream=True)
            open_streams[sid] = [i, sizes[i], bytearray(), None]
        max_open = max(max_open, len(open_streams))
        c.flush()
        for ev in c.events():
            s = open_streams.get(getattr(ev, "stream_id", None))
            if s is None:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                s[3] = int(dict(ev.headers).get(":status", 0))
            elif isinstance(ev, h2.events.DataReceived):
                s[2] += ev.data
            elif isinstance(ev, h2.events.StreamReset):
                results[s[0]] = f"reset {int(ev.error_code)}"
                del open_streams[ev.stream_id]
            if isinstance(ev, h2.events.StreamEnded):
                i, size, body, status = s
                if status != 200:
                    results[i] = f"status {status}"
                elif len(body) != size or not pattern_ok(body):
                    results[i] = f"body of /bytes/{size}: {len(body)} bytes, pattern ok {pattern_ok(body)}"
                else:
                    results[i] = "ok"
                del open_streams[ev.stream_id]
    c.sock.close()
    errors = {i: r for i, r in results.items() if r != "ok"}
    return {
        "count": a.count,
        "ok": sum(1 for r in results.values() if r == "ok"),
        "errors": {str(k): v for k, v in list(errors.items())[:20]},
        "unfinished": len(pending) + len(open_streams),
        "max_in_flight": max_open,
        "goaway": c.goaway,
        "remote_settings": c.remote_settings,
        "connection_window": 65535 + sum(c.connection_window_updates),
    }


def cmd_sse(a):
    # Raw frames rather than the h2 library: the library takes a GOAWAY for the end of the
    # connection, while a draining server sends GOAWAY (and PINGs) and then finishes the open
    # streams.
    raw = Raw(a)
    raw.handshake()
    out = {"status": None, "content_type": None, "events": []}
    start = time.monotonic()
    buf = bytearray()

    def on_data(sid, payload):
        if sid != 1:
            return
        buf.extend(payload)
        at = round((time.monotonic() - start) * 1000, 1)
        while b"\n\n" in buf:
            i = buf.index(b"\n\n")
            event = bytes(buf[:i])
            del buf[: i + 2]
            data = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
            out["events"].append({"data": b"\n".join(data).decode(), "at_ms": at})

    raw.on_data = on_data
    raw.send(raw.headers(1, request_headers(a, "GET", a.path, [("accept", "text/event-stream")])))

    def finished():
        st = raw.streams.get(1, {})
        return st.get("ended") or "reset" in st

    while not finished() and not raw.closed and a.left() > 0:
        raw.poll(min(0.5, a.left()))
    st = raw.streams.get(1, {})
    out["status"] = st.get("status")
    out["content_type"] = st.get("headers", {}).get("content-type")
    if "reset" in st:
        out["reset"] = st["reset"]
    out["ended"] = bool(st.get("ended"))
    out["goaways_during_stream"] = list(raw.goaways)
    # Then keep the connection a while: does the server say GOAWAY, or close it?
    raw.wait_close(min(a.linger, a.left()))
    out["goaways"] = raw.goaways
    out["goaway"] = raw.goaway
    out["closed"] = raw.closed
    raw.sock.close()
    return out


# === raw frames: attacks and edge cases ===


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


class Raw:
    """A connection written frame by frame; reads parse frames and note GOAWAY and close."""

    def __init__(self, a, settings=b""):
        self.a = a
        self.sock = connect(a)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 1 << 16
        self.buf = b""
        self.goaway = None
        self.closed = False
        self.remote_settings = {}
        self.settings_acked = False
        self.streams = {}  # sid -> {"status", "reset", "ended"}
        self.pending_block = None  # (sid, flags, bytes) while CONTINUATION frames are due
        self.ping_acks = set()
        self.goaways = []  # (last stream id, error code) of every GOAWAY, in order
        self.on_data = None  # called with (sid, payload) for each DATA frame
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        """Sends; returns False when the connection is gone."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False

    def headers(self, sid, hdrs, end_stream=True):
        block = self.enc.encode(hdrs)
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block)

    def poll(self, wait):
        """Reads what is there within `wait` seconds (at least one read attempt)."""
        end = time.monotonic() + wait
        while not self.closed:
            r, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
            if not r:
                return
            try:
                chunk = self.sock.recv(1 << 16)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except ssl.SSLWantReadError:
                continue
            if not chunk:
                self.closed = True
                return
            self.buf += chunk
            self.parse()
            if time.monotonic() >= end:
                return

    def parse(self):
        buf, at = self.buf, 0
        while len(buf) - at >= 9:
            length = int.from_bytes(buf[at : at + 3], "big")
            if len(buf) - at < 9 + length:
                break
            ftype, flags = buf[at + 3], buf[at + 4]
            sid = int.from_bytes(buf[at + 5 : at + 9], "big") & 0x7FFFFFFF
            payload = buf[at + 9 : at + 9 + length]
            at += 9 + length
            self.on_frame(ftype, flags, sid, payload)
        self.buf = buf[at:]

    def on_frame(self, ftype, flags, sid, payload):
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acked = True
            else:
                for i in range(0, len(payload) - 5, 6):
                    code, value = struct.unpack(">HI", payload[i : i + 6])
                    self.remote_settings[SETTING_NAMES.get(code, str(code))] = value
                self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING:
            if flags & ACK:
                self.ping_acks.add(payload)
            else:
                self.send(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = struct.unpack(">I", payload[4:8])[0] if len(payload) >= 8 else -1
            last = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF if len(payload) >= 4 else -1
            self.goaways.append((last, self.goaway))
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & 0x8:  # PADDED
                    pad = payload[0]
                    payload = payload[1 : len(payload) - pad]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                self.pending_block = (sid, flags, payload)
            elif self.pending_block:
                s, f, b = self.pending_block
                self.pending_block = (s, f | flags & END_HEADERS, b + payload)
            s, f, block = self.pending_block
            if f & END_HEADERS:
                self.pending_block = None
                hdrs = dict(self.dec.decode(block))
                st = self.streams.setdefault(s, {})
                if ":status" in hdrs and "status" not in st:
                    st["status"] = int(hdrs[":status"])
                    st["headers"] = hdrs
                if f & END_STREAM:
                    st["ended"] = True
        elif ftype == DATA:
            st = self.streams.setdefault(sid, {})
            st["data"] = st.get("data", 0) + len(payload)
            if self.on_data:
                self.on_data(sid, payload)
            if flags & END_STREAM:
                st["ended"] = True
            if payload:  # keep the peer's windows open
                inc = struct.pack(">I", len(payload))
                self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc))
        elif ftype == RST_STREAM:
            self.streams.setdefault(sid, {})["reset"] = struct.unpack(">I", payload[:4])[0]

    def handshake(self):
        """Waits for the server's SETTINGS and its ACK of ours."""
        while not (self.remote_settings and self.settings_acked) and not self.closed and self.a.left() > 0:
            self.poll(min(0.5, self.a.left()))

    def wait_streams(self, sids):
        def finished(s):
            st = self.streams.get(s, {})
            return st.get("ended") or "reset" in st

        while not all(finished(s) for s in sids) and not self.closed and self.a.left() > 0:
            self.poll(min(0.5, self.a.left()))
            if self.goaway is not None:
                # Streams above the GOAWAY's last id will not be answered; give the rest a moment.
                self.poll(min(0.5, self.a.left()))
                break

    def wait_close(self, limit):
        end = time.monotonic() + limit
        while not self.closed and time.monotonic() < end:
            self.poll(min(0.5, end - time.monotonic()))


def outcome(raw, sid):
    st = raw.streams.get(sid, {})
    out = {}
    if "status" in st:
        out["status"] = st["status"]
    if "reset" in st:
        out["reset"] = st["reset"]
    if not out:
        out["goaway"] = raw.goaway
        out["closed"] = raw.closed
    return out


def cmd_refused(a):
    raw = Raw(a)
    raw.handshake()
    sids = [1 + 2 * i for i in range(a.count)]
    raw.send(b"".join(raw.headers(s, request_headers(a, "GET", a.path)) for s in sids))
    raw.wait_streams(sids)
    res = [outcome(raw, s) for s in sids]
    raw.sock.close()
    return {
        "remote_settings": raw.remote_settings,
        "streams": res,
        "ok": sum(1 for r in res if r.get("status") == 200),
        "refused": sum(1 for r in res if r.get("reset") in (1, 7)),  # PROTOCOL_ERROR, REFUSED_STREAM
        "goaway": raw.goaway,
    }


def header_frames(raw, sid, block, end_stream=True, max_frame=16384):
    parts = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = []
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if i == 0:
            flags = (END_STREAM if end_stream else 0) | (END_HEADERS if last else 0)
            out.append(frame(HEADERS, flags, sid, p))
        else:
            out.append(frame(CONTINUATION, END_HEADERS if last else 0, sid, p))
    return b"".join(out)


def cmd_big_headers(a):
    raw = Raw(a)
    raw.handshake()
    n = max(1, a.size // 1000)
    # 32 + 968 = 1000 bytes each, as RFC 9113 counts a header list.
    big = [(f"x-big-{i}", "a" * 968) for i in range(n)]
    small = [(f"x-small-{i}", "b" * 968) for i in range(8)]
    raw.send(header_frames(raw, 1, raw.enc.encode(request_headers(a, "GET", "/") + big)))
    raw.wait_streams([1])
    result = {"remote_settings": raw.remote_settings, "header_list_bytes": 1000 * n, "big": outcome(raw, 1)}
    # Below the limit on the same connection, when it is still open: the server must have kept
    # its HPACK state in step with ours through the refused block (or closed the connection).
    if not raw.closed and raw.goaway is None:
        raw.send(header_frames(raw, 3, raw.enc.encode(request_headers(a, "GET", "/") + small)))
        raw.wait_streams([3])
        result["small_same_connection"] = outcome(raw, 3)
    raw.sock.close()
    raw2 = Raw(a)
    raw2.handshake()
    raw2.send(header_frames(raw2, 1, raw2.enc.encode(request_headers(a, "GET", "/") + small)))
    raw2.wait_streams([1])
    result["small"] = outcome(raw2, 1)
    raw2.sock.close()
    return result


def cmd_rapid_reset(a):
    raw = Raw(a)
    raw.handshake()
    m0 = mem(a.pid)
    start = time.monotonic()
    sent = 0
    batch = 50
    hdrs = request_headers(a, "GET", a.path)
    while sent < a.count and not raw.closed:
        chunk = []
        for i in range(sent, min(a.count, sent + batch)):
            sid = 1 + 2 * i
            chunk.append(raw.headers(sid, hdrs) + frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
        if not raw.send(b"".join(chunk)):
            break
        sent = min(a.count, sent + batch)
        raw.poll(0)
    burst = time.monotonic() - start
    # Then: is it closed? A PING tells a live connection from a dead one.
    raw.send(frame(PING, 0, 0, b"rapidrst"))
    raw.wait_close(min(a.left(), a.close_wait))
    answered = sum(1 for s in raw.streams.values() if "status" in s)
    return {
        "sent_pairs": sent,
        "burst_s": round(burst, 3),
        "closed": raw.closed,
        "goaway": raw.goaway,
        "responses": answered,
        "elapsed_s": round(time.monotonic() - start, 3),
        "mem_before": m0,
        "mem_after": mem(a.pid),
    }


def cmd_continuation_flood(a):
    raw = Raw(a)
    raw.handshake()
    m0 = mem(a.pid)
    start = time.monotonic()
    raw.send(frame(HEADERS, END_STREAM, 1, raw.enc.encode(request_headers(a, "GET", "/"))))
    entry = b"\x00\x07x-flood\x64" + b"a" * 100  # literal, new name, not indexed: 110 bytes
    body = entry * (16384 // len(entry) + 2)
    sent = 0
    stalled = False
    raw.sock.settimeout(2.0)
    off = 0
    while sent < a.max_bytes and not raw.closed and raw.goaway is None and a.left() > 0:
        payload = (body[off:] + body)[:16384]
        off = (off + 16384) % len(entry)
        try:
            raw.sock.sendall(frame(CONTINUATION, 0, 1, payload))
        except socket.timeout:
            stalled = True  # the server stopped reading without closing
            break
        except (BrokenPipeError, ConnectionResetError):
            raw.closed = True
            break
        sent += 16384
        if sent % (16384 * 16) == 0:
            raw.poll(0)
    write_stopped = time.monotonic() - start
    raw.wait_close(min(a.left(), a.close_wait))
    return {
        "sent_bytes": sent,
        "stalled": stalled,
        "closed": raw.closed,
        "goaway": raw.goaway,
        "write_stopped_s": round(write_stopped, 3),
        "elapsed_s": round(time.monotonic() - start, 3),
        "mem_before": m0,
        "mem_after": mem(a.pid),
    }


def flood(a, make):
    raw = Raw(a)
    raw.handshake()
    m0 = mem(a.pid)
    start = time.monotonic()
    raw.sock.settimeout(2.0)
    sent = 0
    stalled = False
    batch = 1000
    frames = b"".join(make(i) for i in range(batch))
    flood_end = time.monotonic() + min(a.flood_time, a.left())
    while sent < a.count and time.monotonic() < flood_end:
        try:
            raw.sock.sendall(frames if a.count - sent >= batch else frames[: len(frames) // batch * (a.count - sent)])
        except socket.timeout:
            stalled = True  # the server stopped reading (its replies are not being read)
            break
        except (BrokenPipeError, ConnectionResetError):
            raw.closed = True
            break
        sent = min(a.count, sent + batch)
    flood_s = time.monotonic() - start
    m1 = mem(a.pid)
    # The worker must still serve others while this connection sits unread.
    probe = one_get(a, a.probe_path) if a.left() > 1 else {"error": "no time left"}
    # Now read it: did it close (GOAWAY) or is it alive and answering a PING?
    raw.sock.settimeout(None)
    if not raw.closed:
        raw.poll(min(a.left(), 2.0))
    # Drain what the server queued, then see whether a PING of our own is answered.
    alive = None
    if not raw.closed and raw.goaway is None:
        raw.send(frame(PING, 0, 0, b"probe!!!"))
        # Behind it may sit megabytes of flood the server has yet to read and answer.
        end = time.monotonic() + min(a.left(), 15.0)
        while not raw.closed and b"probe!!!" not in raw.ping_acks and time.monotonic() < end:
            raw.poll(0.2)
        alive = b"probe!!!" in raw.ping_acks
    return {
        "sent": sent,
        "stalled": stalled,
        "closed": raw.closed,
        "goaway": raw.goaway,
        "alive_after": alive,
        "flood_s": round(flood_s, 3),
        "probe": probe,
        "mem_before": m0,
        "mem_after_flood": m1,
        "mem_after": mem(a.pid),
    }


def cmd_settings_flood(a):
    # Each SETTINGS frame asks for an ACK; none of the ACKs is read.
    return flood(a, lambda i: frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535 + (i % 2))))


def cmd_ping_flood(a):
    return flood(a, lambda i: frame(PING, 0, 0, struct.pack(">Q", i)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HOST:PORT")
    p.add_argument("--ca")
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--pid", type=int)
    p.add_argument("--timeout", type=float, default=20.0)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("get")
    g.add_argument("--path", default="/")
    g.add_argument("--header", action="append", default=[])
    g.add_argument("--window", type=int, default=1 << 24, help="our stream and connection windows")
    g.add_argument("--check-pattern", action="store_true", help="is the body the mock's /bytes pattern")
    sc = sub.add_parser("sse-cancel")
    sc.add_argument("--path", required=True)
    sc.add_argument("--events", type=int, default=2, help="cancel after this many events")
    s = sub.add_parser("streams")
    s.add_argument("--count", type=int, default=100)
    e = sub.add_parser("sse")
    e.add_argument("--path", required=True)
    e.add_argument("--linger", type=float, default=0.0, help="read on this long after the stream")
    r = sub.add_parser("refused")
    r.add_argument("--count", type=int, default=20)
    r.add_argument("--path", default="/delay/1000")
    b = sub.add_parser("big-headers")
    b.add_argument("--size", type=int, default=40000)
    rr = sub.add_parser("rapid-reset")
    rr.add_argument("--count", type=int, default=1000)
    rr.add_argument("--path", default="/")
    rr.add_argument("--close-wait", type=float, default=10.0)
    cf = sub.add_parser("continuation-flood")
    cf.add_argument("--max-bytes", type=int, default=64 << 20)
    cf.add_argument("--close-wait", type=float, default=10.0)
    for name in ("settings-flood", "ping-flood"):
        f = sub.add_parser(name)
        f.add_argument("--count", type=int, default=2_000_000)
        f.add_argument("--flood-time", type=float, default=10.0, help="stop sending after this long")
        f.add_argument("--probe-path", default="/")
    a = Args(p.parse_args())
    run = {
        "get": cmd_get,
        "streams": cmd_streams,
        "sse": cmd_sse,
        "sse-cancel": cmd_sse_cancel,
        "refused": cmd_refused,
        "big-headers": cmd_big_headers,
        "rapid-reset": cmd_rapid_reset,
        "continuation-flood": cmd_continuation_flood,
        "settings-flood": cmd_settings_flood,
        "ping-flood": cmd_ping_flood,
    }[a.command]
    try:
        out = run(a)
    except (OSError, h2.exceptions.ProtocolError) as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    out["command"] = a.command
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
