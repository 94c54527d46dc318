#!/usr/bin/env python3
"""Envoy configurations that load the example Proxy-Wasm plugins (envoy.filters.http.wasm, V8).

  check   one listener per example plugin, each in front of the same upstream, plus the cluster
          `authz` (the upstream again) that http_callout calls. Free ports are picked here; the
          chosen ports are printed as JSON: {"admin": P, "plugins": {"add_headers": P, ...}}.
  bench   the benchmark's Envoy: one listener, ONLY the add_headers plugin (or none with
          `--plugin none`) on the plain proxy path, set up like loadtest/harness.py's Envoy row
          (same cluster, same circuit breakers, HTTP/1.1 both sides).

  gen_envoy_wasm.py check --wasm-dir plugins/examples/wasm --upstream-port 18080 -o /tmp/envoy-check.yaml
  gen_envoy_wasm.py bench --wasm-dir plugins/examples/wasm --upstream-port 18080 --port 10000 \\
      --admin-port 9901 -o /tmp/envoy-wasm-bench.yaml [--plugin none]

Standard library only; importable (`envoy_bench_config`, `BENCH_PLUGIN_CONFIG`).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The header rewrite both Envoy and Weir run in the side-by-side benchmark (also in
# add_headers.bench.json beside this file, which is what a Weir config should load).
with open(os.path.join(HERE, "add_headers.bench.json")) as f:
    BENCH_PLUGIN_CONFIG = json.dumps(json.load(f), separators=(",", ":"))

# What check_envoy.sh expects of each plugin; the C plugin strips x-secret.
CHECK_CONFIGS = {
    "add_headers": {"request_add": {"x-plugin": "on"}, "request_remove": ["x-secret"],
                    "response_add": {"x-plugin-resp": "on"}, "response_remove": ["x-upstream-secret"]},
    "auth_check": {"header": "x-api-token", "tokens": ["tok-1", "tok-2"]},
    "body_rewrite": {"replace": [{"from": "hello", "to": "goodbye"}], "content_types": ["text/"]},
    "chat_guard": {"blocked_words": ["forbidden"], "max_tokens": 100, "max_body_bytes": 4096},
    "http_callout": {"cluster": "authz", "path": "/authz", "authority": "authz", "timeout_ms": 2000,
                     "forward_headers": ["x-api-key"], "copy_headers": ["x-user"]},
    "shared_counter": {"key": "shared_counter.requests", "tick_ms": 200},
    "c_add_header": {"remove": "x-secret"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wasm_filter(name: str, wasm_path: str, config_json: str) -> str:
    # The configuration goes to the plugin as raw bytes (a StringValue), the usual Envoy way.
    return f"""          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {json.dumps(config_json)}
                fail_open: false
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {json.dumps(os.path.abspath(wasm_path))} }} }}
"""


def listener(name: str, port: int, filters: str) -> str:
    return f"""  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          codec_type: HTTP1
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: mock, timeout: 0s }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def cluster(name: str, port: int) -> str:
    return f"""  - name: {name}
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds: [{{ max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000 }}]
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"""


def document(admin_port: int, listeners: list[str], clusters: list[str], header: str) -> str:
    return (f"# {header}\nadmin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}\n"
            "static_resources:\n  listeners:\n" + "".join(listeners) + "  clusters:\n" + "".join(clusters))


def envoy_bench_config(wasm_dir: str, upstream_port: int, port: int, admin_port: int,
                       plugin: str = "add_headers") -> str:
    """The benchmark's Envoy: the harness's Envoy row plus (unless plugin == "none") add_headers."""
    filters = "" if plugin == "none" else wasm_filter(
        "add_headers", os.path.join(wasm_dir, "add_headers.wasm"), BENCH_PLUGIN_CONFIG)
    what = "no plugin" if plugin == "none" else f"add_headers.wasm with {BENCH_PLUGIN_CONFIG}"
    return document(admin_port, [listener("main", port, filters)], [cluster("mock", upstream_port)],
                    f"Generated by loadtest/envoy-wasm/gen_envoy_wasm.py: 127.0.0.1:{port} -> "
                    f"127.0.0.1:{upstream_port}, HTTP/1.1 both sides, {what}")


def envoy_check_config(wasm_dir: str, upstream_port: int) -> tuple[str, dict]:
    ports = {"admin": free_port(), "plugins": {}}
    listeners = []
    for name, cfg in CHECK_CONFIGS.items():
        path = os.path.join(wasm_dir, f"{name}.wasm")
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: run plugins/examples/build.sh")
        port = free_port()
        ports["plugins"][name] = port
        listeners.append(listener(name, port, wasm_filter(name, path, json.dumps(cfg, separators=(",", ":")))))
    yaml = document(ports["admin"], listeners, [cluster("mock", upstream_port), cluster("authz", upstream_port)],
                    "Generated by loadtest/envoy-wasm/gen_envoy_wasm.py check: one listener per example plugin")
    return yaml, ports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "bench"])
    ap.add_argument("--wasm-dir", required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--port", type=int, default=10000, help="bench: listener port")
    ap.add_argument("--admin-port", type=int, default=9901, help="bench: admin port")
    ap.add_argument("--plugin", choices=["add_headers", "none"], default="add_headers", help="bench only")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    if a.mode == "bench":
        yaml = envoy_bench_config(a.wasm_dir, a.upstream_port, a.port, a.admin_port, a.plugin)
        ports = {"admin": a.admin_port, "port": a.port}
    else:
        yaml, ports = envoy_check_config(a.wasm_dir, a.upstream_port)
    with open(a.out, "w") as f:
        f.write(yaml)
    print(json.dumps(ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
