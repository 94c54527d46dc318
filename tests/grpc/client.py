#!/usr/bin/env python3
"""The gRPC client of the integration tests: calls the echo service (echo.proto) through Weir
and checks what comes back. Exits 0 when every check passed, 1 with a `FAIL ...` line naming the
check, what was expected and what came, 2 on a usage or environment error.

    client.py [--target 127.0.0.1:PORT] [--ca FILE --server-name NAME] [--metadata K=V ...] COMMAND

Commands:
  suite [--only CHECK,...]   the service's own behaviour: unary (message, initial metadata,
                             trailing metadata text and binary), large (2 MiB both ways), many
                             (200 concurrent calls on one channel), server-stream (1000 replies in
                             order), paced-stream (5 replies 200 ms apart arrive one by one),
                             bidi (each message echoed before the next is sent), error (a non-OK
                             status with its message, details and trailing metadata)
  expect-code --path /svc/Method --code N [--message-contains TEXT] [--size BYTES]
                             one unary call with an empty message (or one of BYTES); its status
                             must be N
  raw --path /svc/Method --status N [--message-contains TEXT]
                             one call spoken with the `h2` library, to see what the gRPC library
                             hides: the answer must be HTTP 200, content-type application/grpc,
                             and trailers-only (one HEADERS frame with END_STREAM) carrying
                             grpc-status N and a grpc-message

--ca turns TLS on (ALPN h2), verifying against that CA with --server-name as the expected name
(and SNI). The last line on stdout is a JSON summary.
"""

import argparse
import json
import os
import queue
import socket
import ssl
import sys
import time
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stubs import echo_pb2, echo_pb2_grpc  # noqa: E402

TRAILER_BIN = b"\x00\x01\xfe\xff"
DEADLINE = 30.0


class Fail(Exception):
    pass


def expect(check, what, want, got):
    if want != got:
        raise Fail(f"{check}: {what}: expected {want!r}, got {got!r}")


def channel(a):
    opts = [
        ("grpc.max_receive_message_length", 16 << 20),
        ("grpc.max_send_message_length", 16 << 20),
        # No retries or hedging by the library: a failure must show.
        ("grpc.enable_retries", 0),
    ]
    if a.ca:
        with open(a.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        opts.append(("grpc.ssl_target_name_override", a.server_name))
        return grpc.secure_channel(a.target, creds, options=opts)
    return grpc.insecure_channel(a.target, options=opts)


def metadata(a):
    out = []
    for kv in a.metadata:
        k, _, v = kv.partition("=")
        out.append((k.lower(), v))
    return tuple(out)


# === suite ===


def check_unary(stub, a, summary):
    md = metadata(a) + (("x-client-meta", "m1"),)
    reply, call = stub.Unary.with_call(echo_pb2.EchoRequest(message="hello"), metadata=md, timeout=DEADLINE)
    expect("unary", "message", "hello", reply.message)
    expect("unary", "metadata the server saw (x-client-meta)", "m1", reply.metadata.get("x-client-meta"))
    initial = dict(call.initial_metadata())
    expect("unary", "initial metadata x-echo-header", "m1", initial.get("x-echo-header"))
    trailing = dict(call.trailing_metadata())
    expect("unary", "trailing metadata x-echo-trailer", "unary-done", trailing.get("x-echo-trailer"))
    expect("unary", "binary trailing metadata x-echo-trailer-bin", TRAILER_BIN, trailing.get("x-echo-trailer-bin"))
    expect("unary", "status", grpc.StatusCode.OK, call.code())
    summary["unary_metadata"] = dict(reply.metadata)
    # Text trailing metadata as the client got it (a plugin's trailer edits show here).
    summary["unary_trailing"] = {k: v for k, v in trailing.items() if isinstance(v, str)}


def check_large(stub, a, summary):
    # Above the default windows (256 KiB stream, 1 MiB connection) both ways.
    text = "".join(chr(ord("a") + (i * 7919) % 26) for i in range(2 << 20))
    reply = stub.Unary(echo_pb2.EchoRequest(message=text), metadata=metadata(a), timeout=DEADLINE)
    if reply.message != text:
        raise Fail(f"large: 2 MiB echo differs (got {len(reply.message)} bytes)")


def check_many(stub, a, summary):
    calls = [
        stub.Unary.future(echo_pb2.EchoRequest(message=f"many {i}"), metadata=metadata(a), timeout=DEADLINE)
        for i in range(200)
    ]
    for i, f in enumerate(calls):
        expect("many", f"reply {i}", f"many {i}", f.result().message)


def check_server_stream(stub, a, summary):
    call = stub.ServerStream(echo_pb2.StreamRequest(message="s", count=1000), metadata=metadata(a), timeout=DEADLINE)
    got = [(r.index, r.message) for r in call]
    expect("server-stream", "replies", [(i, f"s #{i}") for i in range(1000)], got)
    expect("server-stream", "status", grpc.StatusCode.OK, call.code())
    expect("server-stream", "trailing metadata x-stream-count", "1000", dict(call.trailing_metadata()).get("x-stream-count"))


def check_paced_stream(stub, a, summary):
    # Produced 200 ms apart: a proxy that buffers the stream delivers them in one go at the end.
    start = time.monotonic()
    call = stub.ServerStream(
        echo_pb2.StreamRequest(message="p", count=5, interval_ms=200), metadata=metadata(a), timeout=DEADLINE
    )
    times = []
    for r in call:
        times.append(time.monotonic() - start)
        expect("paced-stream", f"reply {len(times) - 1}", f"p #{len(times) - 1}", r.message)
    expect("paced-stream", "replies", 5, len(times))
    summary["paced_stream_ms"] = [round(t * 1000) for t in times]
    if times[-1] - times[0] < 0.4:
        raise Fail(f"paced-stream: 5 replies 200 ms apart arrived within {times[-1] - times[0]:.3f} s "
                   f"(at {summary['paced_stream_ms']} ms): buffered")


def check_bidi(stub, a, summary):
    q = queue.Queue()

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield echo_pb2.EchoRequest(message=m)

    call = stub.BidiStream(requests(), metadata=metadata(a), timeout=DEADLINE)
    rtt = []
    try:
        for i in range(10):
            sent = time.monotonic()
            q.put(f"bidi {i}")
            # The next message is sent only after this echo: a proxy that holds either direction
            # back until the stream ends deadlocks here until the deadline.
            try:
                r = next(call)
            except grpc.RpcError as e:
                raise Fail(f"bidi: no echo of message {i} ({e.code()}: {e.details()}): "
                           f"a direction is buffered until the end of the stream?")
            except StopIteration:
                raise Fail(f"bidi: the stream ended before the echo of message {i}")
            rtt.append(round((time.monotonic() - sent) * 1000, 1))
            expect("bidi", f"echo {i}", (i, f"bidi {i}"), (r.index, r.message))
    finally:
        q.put(None)
    rest = list(call)
    expect("bidi", "replies after the client half-closed", [], rest)
    expect("bidi", "status", grpc.StatusCode.OK, call.code())
    summary["bidi_rtt_ms"] = rtt


def check_error(stub, a, summary):
    message = "precondition failed: ümlaut 100%\tand more"
    try:
        stub.Fail(echo_pb2.FailRequest(code=9, message=message), metadata=metadata(a), timeout=DEADLINE)
    except grpc.RpcError as e:
        expect("error", "status", grpc.StatusCode.FAILED_PRECONDITION, e.code())
        expect("error", "message (percent-encoded on the wire)", message, e.details())
        trailing = dict(e.trailing_metadata())
        expect("error", "trailing metadata x-fail-trailer", "failed", trailing.get("x-fail-trailer"))
        raw = trailing.get("grpc-status-details-bin")
        if raw is None:
            raise Fail(f"error: no grpc-status-details-bin in the trailers: {trailing}")
        st = echo_pb2.RpcStatus.FromString(raw)
        info = echo_pb2.ErrorInfo()
        expect("error", "details code", 9, st.code)
        expect("error", "details message", message, st.message)
        if len(st.details) != 1 or not st.details[0].Unpack(info):
            raise Fail(f"error: details do not hold one ErrorInfo: {st}")
        expect("error", "details ErrorInfo", ("ECHO_FAILED", "echo.weir.test"), (info.reason, info.domain))
    else:
        raise Fail("error: Fail(9) succeeded")
    # A second code, on the same channel, to see it is not stuck on the first.
    try:
        stub.Fail(echo_pb2.FailRequest(code=5, message="nothing here"), metadata=metadata(a), timeout=DEADLINE)
    except grpc.RpcError as e:
        expect("error", "status", grpc.StatusCode.NOT_FOUND, e.code())
        expect("error", "message", "nothing here", e.details())
    else:
        raise Fail("error: Fail(5) succeeded")


CHECKS = {
    "unary": check_unary,
    "large": check_large,
    "many": check_many,
    "server-stream": check_server_stream,
    "paced-stream": check_paced_stream,
    "bidi": check_bidi,
    "error": check_error,
}


def run_suite(a, summary):
    names = a.only.split(",") if a.only else list(CHECKS)
    for n in names:
        if n not in CHECKS:
            print(f"client.py: unknown check {n!r} (known: {', '.join(CHECKS)})", file=sys.stderr)
            sys.exit(2)
    with channel(a) as ch:
        stub = echo_pb2_grpc.EchoStub(ch)
        for n in names:
            t = time.monotonic()
            try:
                CHECKS[n](stub, a, summary)
            except grpc.RpcError as e:
                raise Fail(f"{n}: call failed: {e.code()}: {e.details()}")
            print(f"ok {n} ({time.monotonic() - t:.2f} s)", flush=True)
            summary["passed"].append(n)


# === one call ===


def run_expect_code(a, summary):
    with channel(a) as ch:
        call = ch.unary_unary(a.path, request_serializer=None, response_deserializer=None)
        try:
            _, c = call.with_call(b"x" * a.size, metadata=metadata(a), timeout=DEADLINE)
            code, details = c.code(), c.details()
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
    summary.update(code=code.value[0], code_name=code.name, message=details)
    expect(f"call {a.path}", "status", a.code, code.value[0])
    if a.message_contains and a.message_contains not in (details or ""):
        raise Fail(f"call {a.path}: message {details!r} lacks {a.message_contains!r}")
    print(f"ok {a.path}: {code.name} {details!r}", flush=True)


def run_raw(a, summary):
    try:
        import h2.config
        import h2.connection
        import h2.events
    except ImportError:
        print("client.py: the h2 library is missing (python3 -m pip install h2)", file=sys.stderr)
        sys.exit(2)
    host, _, port = a.target.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    scheme = "http"
    if a.ca:
        ctx = ssl.create_default_context(cafile=a.ca)
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname=a.server_name)
        if sock.selected_alpn_protocol() != "h2":
            raise Fail(f"raw: ALPN settled on {sock.selected_alpn_protocol()!r}, not h2")
        scheme = "https"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    headers = [
        (":method", "POST"),
        (":scheme", scheme),
        (":authority", a.server_name if a.ca else a.target),
        (":path", a.path),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] + list(metadata(a))
    conn.send_headers(sid, headers)
    conn.send_data(sid, b"\x00\x00\x00\x00\x00", end_stream=True)  # one empty message
    sock.sendall(conn.data_to_send())
    frames = []  # what came on our stream, in order
    head, trailers, data, done = None, None, b"", False
    while not done:
        chunk = sock.recv(65536)
        if not chunk:
            raise Fail(f"raw: connection closed before the answer ended (seen: {frames})")
        for ev in conn.receive_data(chunk):
            if getattr(ev, "stream_id", None) != sid:
                if isinstance(ev, h2.events.ConnectionTerminated):
                    raise Fail(f"raw: GOAWAY {ev.error_code} before the answer ended (seen: {frames})")
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                head = dict(ev.headers)
                frames.append({"headers": head, "end_stream": ev.stream_ended is not None})
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                frames.append({"data": len(ev.data)})
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict(ev.headers)
                frames.append({"trailers": trailers})
            elif isinstance(ev, h2.events.StreamReset):
                raise Fail(f"raw: stream reset with {ev.error_code} (seen: {frames})")
            if isinstance(ev, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
    sock.close()
    summary["frames"] = frames
    what = f"raw {a.path}"
    if head is None:
        raise Fail(f"{what}: no response head (seen: {frames})")
    expect(what, ":status", "200", head.get(":status"))
    if not head.get("content-type", "").startswith("application/grpc"):
        raise Fail(f"{what}: content-type {head.get('content-type')!r} is not application/grpc")
    if len(frames) != 1 or not frames[0]["end_stream"]:
        raise Fail(f"{what}: not trailers-only (one HEADERS frame with END_STREAM); frames: {frames}")
    expect(what, "grpc-status", str(a.status), head.get("grpc-status"))
    message = urllib.parse.unquote(head.get("grpc-message", ""))
    if not message:
        raise Fail(f"{what}: no grpc-message in {head}")
    if a.message_contains and a.message_contains not in message:
        raise Fail(f"{what}: grpc-message {message!r} lacks {a.message_contains!r}")
    summary.update(status=head.get("grpc-status"), message=message)
    print(f"ok {what}: HTTP 200 trailers-only grpc-status {head.get('grpc-status')} {message!r}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HOST:PORT")
    p.add_argument("--ca", help="TLS: the CA to verify the server with")
    p.add_argument("--server-name", default="localhost", help="TLS: SNI and the expected name")
    p.add_argument("--metadata", action="append", default=[], help="K=V sent on every call")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("suite")
    s.add_argument("--only", help="comma-separated checks: " + ",".join(CHECKS))
    e = sub.add_parser("expect-code")
    e.add_argument("--path", required=True)
    e.add_argument("--code", type=int, required=True)
    e.add_argument("--message-contains")
    e.add_argument("--size", type=int, default=0, help="bytes of the request message")
    r = sub.add_parser("raw")
    r.add_argument("--path", required=True)
    r.add_argument("--status", type=int, required=True)
    r.add_argument("--message-contains")
    a = p.parse_args()

    summary = {"command": a.command, "passed": []}
    code = 0
    try:
        {"suite": run_suite, "expect-code": run_expect_code, "raw": run_raw}[a.command](a, summary)
    except Fail as f:
        print(f"FAIL {f}", flush=True)
        summary["failure"] = str(f)
        code = 1
    except (OSError, ssl.SSLError) as e:
        print(f"FAIL {a.command}: {type(e).__name__}: {e}", flush=True)
        summary["failure"] = str(e)
        code = 1
    print(json.dumps(summary), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
