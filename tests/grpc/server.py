#!/usr/bin/env python3
"""The gRPC echo server of the integration tests (service `echo.Echo` of echo.proto).

    server.py [--port 0] [--tls-cert FILE --tls-key FILE] [--health-file FILE] [--exit-on-stdin-eof]

Listens on 127.0.0.1 (port 0: a free one), prints `listening PORT` on stdout once it serves,
and runs until killed (or, with --exit-on-stdin-eof, until its stdin closes, so it never
outlives the test that started it with a pipe). With --tls-cert/--tls-key it serves TLS only (ALPN h2).

It also serves the gRPC health protocol (`grpc.health.v1.Health/Check`, encoded by hand: no
stubs needed) for the service `echo.Echo` and the server as a whole (""): SERVING, or
NOT_SERVING while the --health-file holds `NOT_SERVING`; any other service is NOT_FOUND.
"""

import argparse
import os
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stubs import echo_pb2, echo_pb2_grpc  # noqa: E402

# Binary trailing metadata the client checks byte for byte (all byte values at the edges).
TRAILER_BIN = b"\x00\x01\xfe\xff"


def seen_metadata(context):
    return {k: (v if isinstance(v, str) else v.hex()) for k, v in context.invocation_metadata()}


class Echo(echo_pb2_grpc.EchoServicer):
    def Unary(self, request, context):
        md = dict(context.invocation_metadata())
        context.send_initial_metadata((("x-echo-header", md.get("x-client-meta", "")),))
        context.set_trailing_metadata((
            ("x-echo-trailer", "unary-done"),
            ("x-echo-trailer-bin", TRAILER_BIN),
        ))
        return echo_pb2.EchoReply(message=request.message, metadata=seen_metadata(context))

    def ServerStream(self, request, context):
        for i in range(request.count):
            if i and request.interval_ms:
                time.sleep(request.interval_ms / 1000)
            if not context.is_active():
                return
            yield echo_pb2.EchoReply(message=f"{request.message} #{i}", index=i)
        context.set_trailing_metadata((("x-stream-count", str(request.count)),))

    def BidiStream(self, request_iterator, context):
        for i, req in enumerate(request_iterator):
            yield echo_pb2.EchoReply(message=req.message, index=i)

    def Fail(self, request, context):
        info = echo_pb2.ErrorInfo(reason="ECHO_FAILED", domain="echo.weir.test")
        status = echo_pb2.RpcStatus(code=request.code, message=request.message)
        status.details.add().Pack(info)
        context.set_trailing_metadata((
            ("x-fail-trailer", "failed"),
            ("grpc-status-details-bin", status.SerializeToString()),
        ))
        context.abort(status_code(request.code), request.message)


def health_handler(health_file):
    """grpc.health.v1.Health/Check on raw bytes: HealthCheckRequest {string service = 1} in,
    HealthCheckResponse {ServingStatus status = 1} out (SERVING 1, NOT_SERVING 2)."""

    def check(request, context):
        service = ""
        if request[:1] == b"\x0a":  # field 1, length-delimited (names here are < 128 bytes)
            service = request[2:2 + request[1]].decode()
        if service not in ("", "echo.Echo"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        serving = True
        if health_file and os.path.exists(health_file):
            with open(health_file) as f:
                serving = f.read().strip() != "NOT_SERVING"
        return b"\x08\x01" if serving else b"\x08\x02"

    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check),
    })


def status_code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c
    raise ValueError(f"no gRPC status code {n}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--health-file", help="holds NOT_SERVING while the health check should fail")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="stop when stdin closes (the test holds it as a pipe)")
    a = p.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    server.add_generic_rpc_handlers((health_handler(a.health_file),))
    addr = f"127.0.0.1:{a.port}"
    if a.tls_cert:
        with open(a.tls_key, "rb") as k, open(a.tls_cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(addr, creds)
    else:
        port = server.add_insecure_port(addr)
    if port == 0:
        sys.exit(f"server.py: could not bind {addr}")
    server.start()
    print(f"listening {port}", flush=True)

    # Stop when the parent goes away (stdin is a pipe the test holds) or on a signal.
    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        server.stop(0)

    if a.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
