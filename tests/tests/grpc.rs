//! gRPC through Weir: a Python echo service (`tests/grpc/server.py`, grpcio) behind a
//! `protocol: h2` cluster, routed by service and method, called by a Python client
//! (`tests/grpc/client.py`) that checks unary calls with metadata both ways and binary trailers,
//! 2 MiB messages, 200 concurrent calls, server streaming (in order, and paced replies arriving one
//! by one), bidirectional streaming with each message echoed before the next is sent, and a
//! non-OK status with its message and `grpc-status-details-bin`. Local errors on gRPC requests
//! (no route, an unreachable cluster, auth, quota) come back as gRPC: HTTP 200, trailers-only,
//! with `grpc-status` and `grpc-message`, checked frame by frame with the `h2` library because
//! the gRPC library maps plain HTTP 404/502/401/429 to the same codes. Then TLS: gRPC over a TLS
//! listener (ALPN h2) and to a TLS upstream. And a Wasm plugin reading and editing the trailers
//! of a call.
//!
//! Needs `python3` with `grpcio`, `grpcio-tools` and `h2` (`tests/run.sh` installs them); the
//! stubs are generated from `tests/grpc/echo.proto` into a temp dir at each start.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sha2::Digest;
use weir_tests::*;

/// The client's checks but `error` (see `upstream_error_status_passes_through`).
const ALL_BUT_ERROR: &str = "unary,large,many,server-stream,paced-stream,bidi";

/// How long one client script may run (it bounds each call by a 30 s deadline itself).
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("grpc")
        .join(name)
}

/// Fails with the install command when the Python side is missing, rather than with a traceback.
fn need_python_grpc() {
    let out = run_bounded(
        Command::new("python3").args(["-c", "import grpc, grpc_tools, h2"]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "the gRPC tests need python3 with grpcio, grpcio-tools and h2 \
         (python3 -m pip install grpcio grpcio-tools h2, or run tests/run.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// === the echo server ===

/// `tests/grpc/server.py` on a free port, killed on drop (and stopping by itself if the test
/// process dies: it exits when its stdin, a pipe held here, closes).
struct GrpcServer {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    /// Holds `NOT_SERVING` while its gRPC health check should fail.
    health: PathBuf,
    _dir: TempDir,
}

impl GrpcServer {
    fn start(tls: Option<&TestPki>) -> GrpcServer {
        need_python_grpc();
        let dir = TempDir::new("grpc-server");
        let err_path = dir.path().join("stderr");
        let health = dir.path().join("health");
        let mut cmd = Command::new("python3");
        cmd.arg(script("server.py"))
            .args(["--port", "0", "--exit-on-stdin-eof", "--health-file"])
            .arg(&health);
        if let Some(pki) = tls {
            cmd.arg("--tls-cert")
                .arg(pki.server_cert())
                .arg("--tls-key")
                .arg(pki.server_key());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning python3 server.py: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = String::new();
            while r.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(port) = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server.py did not start (first line {line:?}): {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        };
        GrpcServer {
            child,
            _stdin: stdin,
            port,
            health,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What its gRPC health service answers from now on.
    fn set_serving(&self, serving: bool) {
        let text = if serving { "SERVING" } else { "NOT_SERVING" };
        std::fs::write(&self.health, text).unwrap();
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === the client ===

/// Runs `client.py --target ADDR ARGS...`; panics with its `FAIL` line and output unless it
/// exits 0. Returns its JSON summary (the last line).
fn client(target: &str, args: &[&str]) -> serde_json::Value {
    let out = run_bounded(
        Command::new("python3")
            .arg(script("client.py"))
            .args(["--target", target])
            .args(args),
        CLIENT_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or("(no FAIL line)");
    assert!(
        out.status.success(),
        "client.py {args:?} exited {:?}: {fail}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("client.py summary {last:?}: {e}"))
}

/// An `h2` cluster named `grpc` on `server`, with extra keys (`tls: ...`).
fn h2_cluster(server: &GrpcServer, extra: &str) -> String {
    format!(
        "{{ name: grpc, protocol: h2, endpoints: [\"{}\"]{extra} }}",
        server.endpoint()
    )
}

fn tls_listener(pki: &TestPki) -> String {
    format!(
        "tls: {{ certificates: [{{ cert: \"{}\", key: \"{}\" }}] }}",
        pki.server_cert().display(),
        pki.server_key().display()
    )
}

fn hex_digest(key: &str) -> String {
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

both_drivers! {
    /// The client suite through an h2 cluster, over cleartext h2 (prior knowledge): unary with
    /// metadata both ways and binary trailers, 2 MiB both ways, 200 concurrent calls, server
    /// streaming in order and paced, bidi interleaved (the non-OK status: see the next test). The
    /// method route and the service route each took their calls, and all of it went over one
    /// upstream connection (one multiplexed connection per endpoint per core).
    fn grpc_through_an_h2_cluster(d) {
        let server = GrpcServer::start(None);
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, ""))
            .route("{ name: echo-unary, match: { path: { exact: /echo.Echo/Unary } }, cluster: grpc }")
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .start();
        let summary = client(&gw.addr().to_string(), &["suite", "--only", ALL_BUT_ERROR]);
        assert_eq!(summary["passed"].as_array().map(Vec::len), Some(6), "{summary}");

        // unary 1 + large 1 + many 200 went by the method route; server-stream, paced-stream
        // and bidi by the service route.
        let lines = gw.wait_access_log(205, Duration::from_secs(10), |_| true);
        let routes = |name: &str| lines.iter().filter(|l| l["route"] == name).count();
        assert_eq!((routes("echo-unary"), routes("echo")), (202, 3), "{:?}", lines.last());
        let opened = metric(&gw.metrics(), "weir_upstream_connections_opened_total", &[("cluster", "grpc")]);
        assert_eq!(opened, Some(1.0), "one multiplexed upstream connection");
    }
}

both_drivers! {
    /// Active health checks of an h2 cluster by the gRPC health protocol
    /// (`grpc.health.v1.Health/Check`): the endpoint is taken out when its service turns
    /// NOT_SERVING and re-admitted when it serves again; a cluster asking about a service the
    /// server does not know (a trailers-only NOT_FOUND answer) never counts it healthy.
    fn grpc_health_checks_eject_and_readmit(d) {
        let server = GrpcServer::start(None);
        let hc = "health_check: { grpc: { service: SERVICE }, interval: 200ms, timeout: 2s, unhealthy_threshold: 1, healthy_threshold: 1 }";
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, &format!(", {}", hc.replace("SERVICE", "echo.Echo"))))
            .cluster_yaml(&h2_cluster(&server, &format!(", {}", hc.replace("SERVICE", "no.Such"))).replacen("name: grpc", "name: ghost", 1))
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .route("{ name: ghost, match: { path: { prefix: /ghost/ } }, cluster: ghost }")
            .start();
        let ep = server.endpoint();
        let healthy = |cluster: &str| metric(&gw.metrics(), "weir_upstream_healthy", &[("cluster", cluster), ("endpoint", &ep)]);
        let summary = client(&gw.addr().to_string(), &["suite", "--only", "unary"]);
        assert_eq!(summary["passed"].as_array().map(Vec::len), Some(1), "{summary}");
        wait_until("the unknown service taken out", Duration::from_secs(10), Duration::from_millis(100), || {
            (healthy("ghost") == Some(0.0)).then_some(())
        });
        assert_eq!(healthy("grpc"), Some(1.0));

        server.set_serving(false);
        wait_until("NOT_SERVING taken out", Duration::from_secs(10), Duration::from_millis(100), || {
            (healthy("grpc") == Some(0.0)).then_some(())
        });
        server.set_serving(true);
        wait_until("SERVING re-admitted", Duration::from_secs(10), Duration::from_millis(100), || {
            (healthy("grpc") == Some(1.0)).then_some(())
        });
        assert_eq!(healthy("ghost"), Some(0.0));
        let summary = client(&gw.addr().to_string(), &["suite", "--only", "unary"]);
        assert_eq!(summary["passed"].as_array().map(Vec::len), Some(1), "{summary}");
    }
}

both_drivers! {
    /// An h2 cluster's path health check is a GET over HTTP/2 (here to a second Weir that speaks
    /// h2 with prior knowledge, in front of a mock whose `/healthz` is set): 503 takes the
    /// endpoint out, 200 brings it back.
    fn h2_clusters_are_health_checked_over_http2(d) {
        let mock = MockUpstream::id("inner").start();
        let inner = Gateway::new()
            .driver(d)
            .cluster("up", &[mock.endpoint()])
            .route("{ name: all, cluster: up }")
            .start();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "name: h2up\nprotocol: h2\nendpoints: [\"{}\"]\nhealth_check: {{ path: /healthz, interval: 200ms, unhealthy_threshold: 1, healthy_threshold: 1 }}",
                inner.addr()
            ))
            .route("{ name: r, cluster: h2up }")
            .start();
        let ep = inner.addr().to_string();
        let healthy = || metric(&gw.metrics(), "weir_upstream_healthy", &[("cluster", "h2up"), ("endpoint", &ep)]);
        assert_eq!(gw.get("/bytes/3").status(), 200);
        mock.set_health(503);
        wait_until("503 taken out", Duration::from_secs(10), Duration::from_millis(100), || {
            (healthy() == Some(0.0)).then_some(())
        });
        mock.set_health(200);
        wait_until("200 re-admitted", Duration::from_secs(10), Duration::from_millis(100), || {
            (healthy() == Some(1.0)).then_some(())
        });
        // The probes went over HTTP/2: the inner gateway logged them as h2 requests.
        let lines = inner.wait_access_log(1, Duration::from_secs(10), |l| l["target"] == "/healthz");
        assert!(lines.iter().all(|l| l["protocol"] == "HTTP/2"), "{:?}", lines.last());
    }
}

/// A Wasm plugin with trailer callbacks (`plugins/host/testdata/trailers.wat`) on a gRPC route
/// to an h2 cluster: it observes the upstream's `grpc-status` in the response trailers and adds
/// fields, which the gRPC client gets as trailing metadata beside the server's own.
#[test]
fn a_plugin_reads_and_edits_grpc_trailers() {
    let server = GrpcServer::start(None);
    let dir = TempDir::new("grpc-trailers");
    let wasm = dir.path().join("trailers.wasm");
    let wat = include_str!("../../plugins/host/testdata/trailers.wat");
    std::fs::write(&wasm, wat::parse_str(wat).unwrap()).unwrap();
    let gw = Gateway::new()
        .driver(Driver::Epoll)
        .cluster_yaml(&h2_cluster(&server, ""))
        .top_yaml(&format!(
            "plugins:\n  - {{ name: trailers, file: \"{}\" }}\n",
            wasm.display()
        ))
        .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc, filters: [ { type: wasm, plugin: trailers } ] }")
        .start();
    let summary = client(&gw.addr().to_string(), &["suite", "--only", "unary"]);
    let t = &summary["unary_trailing"];
    assert_eq!(t["x-seen-status"], "0", "{summary}");
    assert_eq!(t["x-wasm-trailer"], "on", "{summary}");
    assert_eq!(t["x-echo-trailer"], "unary-done", "{summary}");
}

both_drivers! {
    /// A non-OK status of the upstream reaches the client: code, percent-encoded message,
    /// `grpc-status-details-bin` and other trailing metadata (grpcio answers an abort
    /// trailers-only: one HEADERS frame with END_STREAM carrying `grpc-status`).
    fn upstream_error_status_passes_through(d) {
        let server = GrpcServer::start(None);
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, ""))
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .start();
        client(&gw.addr().to_string(), &["suite", "--only", "error"]);
    }
}

both_drivers! {
    /// Local errors on gRPC requests are gRPC answers: HTTP 200, trailers-only, `grpc-status`
    /// 12 UNIMPLEMENTED for a service no route matches, 14 UNAVAILABLE for a cluster whose only
    /// endpoint refuses connections; the gRPC library sees the same codes, and the live
    /// service on the same gateway keeps answering.
    fn local_errors_are_grpc_statuses(d) {
        let server = GrpcServer::start(None);
        let dead = closed_port();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, ""))
            .cluster_yaml(&format!("{{ name: dead, protocol: h2, endpoints: [\"{dead}\"] }}"))
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .route("{ name: dead, match: { path: { prefix: /dead.Dead/ } }, cluster: dead }")
            .start();
        let target = gw.addr().to_string();
        client(&target, &["raw", "--path", "/unknown.Service/Method", "--status", "12"]);
        client(&target, &["expect-code", "--path", "/unknown.Service/Method", "--code", "12"]);
        client(&target, &["raw", "--path", "/dead.Dead/Call", "--status", "14"]);
        client(&target, &["expect-code", "--path", "/dead.Dead/Call", "--code", "14"]);
        client(&target, &["suite", "--only", "unary,bidi"]);
    }
}

both_drivers! {
    /// The `auth` and `quota` filters on gRPC routes answer in gRPC: no key or a wrong one is
    /// 16 UNAUTHENTICATED, the right key (as `authorization` metadata) gets through; past a
    /// one-request limit the call is 8 RESOURCE_EXHAUSTED. Both trailers-only over HTTP 200.
    fn auth_and_quota_refusals_are_grpc_statuses(d) {
        let server = GrpcServer::start(None);
        let key = "grpc-test-key-0123456789";
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&format!(
                "consumers: [{{ name: grpc-user, keys: [{{ id: g1, sha256: \"{}\" }}] }}]",
                hex_digest(key)
            ))
            .cluster_yaml(&h2_cluster(&server, ""))
            .route("{ name: authed, match: { path: { exact: /echo.Echo/Unary } }, cluster: grpc, filters: [{ type: auth, key: { headers: [authorization] } }] }")
            .route("{ name: limited, match: { path: { exact: /echo.Echo/Fail } }, cluster: grpc, filters: [{ type: quota, limits: [{ name: once, requests: 1, per: 87600h }] }] }")
            .start();
        let target = gw.addr().to_string();
        let good = format!("authorization=Bearer {key}");
        client(&target, &["raw", "--path", "/echo.Echo/Unary", "--status", "16"]);
        client(&target, &["--metadata", "authorization=Bearer wrong-key", "expect-code", "--path", "/echo.Echo/Unary", "--code", "16"]);
        client(&target, &["--metadata", &good, "expect-code", "--path", "/echo.Echo/Unary", "--code", "0"]);
        client(&target, &["--metadata", &good, "suite", "--only", "unary"]);
        // Fail with an empty request asks for code 0, which grpcio's abort() turns into 2
        // UNKNOWN: the upstream's answer, using the one request the limit allows. The next call
        // is refused by the gateway.
        client(&target, &["expect-code", "--path", "/echo.Echo/Fail", "--code", "2"]);
        client(&target, &["raw", "--path", "/echo.Echo/Fail", "--status", "8"]);
        client(&target, &["expect-code", "--path", "/echo.Echo/Fail", "--code", "8"]);
    }
}

both_drivers! {
    /// A route's body limit holds on an h2 cluster: a message under it is echoed, one over it is
    /// stopped mid-upload (the upstream stream reset) and answered 8 RESOURCE_EXHAUSTED with the
    /// limit in the message; the connection goes on serving.
    fn body_limit_holds_towards_an_h2_cluster(d) {
        let server = GrpcServer::start(None);
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, ""))
            .route("{ name: small, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc, max_body_bytes: 64KiB }")
            .start();
        let target = gw.addr().to_string();
        client(&target, &["expect-code", "--path", "/echo.Echo/Unary", "--code", "0", "--size", "1000"]);
        client(&target, &["expect-code", "--path", "/echo.Echo/Unary", "--code", "8", "--size", "1000000", "--message-contains", "over the limit"]);
        client(&target, &["expect-code", "--path", "/echo.Echo/Unary", "--code", "0", "--size", "10"]);
    }
}

both_drivers! {
    /// gRPC over a TLS listener: ALPN settles on h2 (checked by the raw client), the client
    /// verifies the test CA, and the suite passes; a local error is still a trailers-only gRPC
    /// answer.
    fn grpc_over_a_tls_listener(d) {
        let pki = TestPki::new();
        let server = GrpcServer::start(None);
        let gw = Gateway::new()
            .driver(d)
            .listener_yaml(&tls_listener(&pki))
            .cluster_yaml(&h2_cluster(&server, ""))
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .start();
        let target = gw.addr().to_string();
        let ca = pki.ca().display().to_string();
        let tls = ["--ca", ca.as_str(), "--server-name", "localhost"];
        client(&target, &[&tls[..], &["suite", "--only", ALL_BUT_ERROR]].concat());
        client(&target, &[&tls[..], &["raw", "--path", "/unknown.Service/Method", "--status", "12"]].concat());
    }
}

both_drivers! {
    /// gRPC to a TLS upstream: an h2 cluster with `tls: { ca_file }` speaks h2 over TLS (ALPN h2)
    /// to a server that only speaks TLS.
    fn grpc_to_a_tls_upstream(d) {
        let pki = TestPki::new();
        let server = GrpcServer::start(Some(&pki));
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&h2_cluster(&server, &format!(", tls: {{ ca_file: \"{}\" }}", pki.ca().display())))
            .route("{ name: echo, match: { path: { prefix: /echo.Echo/ } }, cluster: grpc }")
            .start();
        client(&gw.addr().to_string(), &["suite", "--only", "unary,large,server-stream,bidi"]);
    }
}
