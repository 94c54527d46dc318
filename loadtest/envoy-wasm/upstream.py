#!/usr/bin/env python3
"""A small HTTP/1.1 upstream for checking the example plugins in Envoy (standard library only).

Listens on 127.0.0.1 (port 0 picks one) and prints `listening 127.0.0.1:PORT` once ready.

  GET  /inspect               200 JSON {"method","path","headers":{lower-case name: value}} as received
  GET  /text                  200 text/plain with content-length: "hello world, hello wasm\n"
  GET  /text-chunked          200 text/plain, chunked, in small chunks written apart, with "hello"
                              split across two chunks (a rewrite must see the whole body)
  GET  /json                  200 application/json {"greeting":"hello"}
  GET  /authz                 200 with `x-user: alice` when `x-api-key: letmein`, else 403
  POST /v1/chat/completions   200 JSON {"ok":true,"received_bytes":N}
  anything else               200 "ok"
Every response carries `x-upstream-secret: s3` (for a plugin to strip).
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body: bytes, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream-secret", "s3")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/inspect":
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()}},
                              sort_keys=True, separators=(",", ":")).encode()
            self._send(200, body, "application/json")
        elif path == "/text":
            self._send(200, b"hello world, hello wasm\n")
        elif path == "/text-chunked":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("x-upstream-secret", "s3")
            self.end_headers()
            for part in (b"say hel", b"lo to ", b"the hello ", b"plugin\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.02)  # separate reads on the proxy side: separate body callbacks
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/json":
            self._send(200, b'{"greeting":"hello"}', "application/json")
        elif path == "/authz":
            if self.headers.get("x-api-key") == "letmein":
                self._send(200, b"yes", extra=[("x-user", "alice")])
            else:
                self._send(403, b"no")
        else:
            self._send(200, b"ok")

    def do_POST(self):
        body = self._body()
        if self.path.split("?")[0] == "/v1/chat/completions":
            self._send(200, json.dumps({"ok": True, "received_bytes": len(body)}).encode(), "application/json")
        else:
            self._send(200, b"ok")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print(f"listening 127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
