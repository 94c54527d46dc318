//! Wasm plugins end to end, with the real `weir`: the example plugins of `plugins/examples/`
//! (built by `plugins/examples/build.sh`, which `tests/run.sh` runs first) each doing what it
//! promises; plugins that trap, loop, allocate without bound or misuse the ABI failing only their
//! own request; a plugin hot-swapped under load without a dropped request; plugin metrics on
//! `/metrics`, valid for promtool.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use weir_tests::*;

/// A built example plugin; panics with how to build it when it is missing.
fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/examples/wasm")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run plugins/examples/build.sh (tests/run.sh does)",
        p.display()
    );
    p.canonicalize().unwrap().display().to_string()
}

/// `plugins/host/testdata/probe.wat` compiled into `dir`.
fn probe(dir: &TempDir) -> String {
    let wat = include_str!("../../plugins/host/testdata/probe.wat");
    let path = dir.path().join("probe.wasm");
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.display().to_string()
}

/// A gateway with one plugin (`yaml`: the rest of its entry) on a catch-all route to the mock.
fn with_plugin(m: &MockUpstream, d: Driver, name: &str, file: &str, rest: &str) -> GatewayBuilder {
    Gateway::new()
        .driver(d)
        .workers(2)
        .cluster("mock", &[m.endpoint()])
        .top_yaml(&format!(
            "plugins:\n  - {{ name: {name}, file: \"{file}\", {rest} }}\n"
        ))
        .route(&format!(
            "{{ name: all, cluster: mock, filters: [ {{ type: wasm, plugin: {name} }} ] }}"
        ))
}

both_drivers! {
    /// `add_headers` (the benchmark's header-rewrite plugin): request fields added and removed
    /// before the upstream sees them, response fields added.
    fn add_headers(d) {
        let m = MockUpstream::start();
        let cfg = r#"config: { request_add: { x-plugin: "on" }, request_remove: [x-secret], response_add: { x-plugin-resp: "on" } }"#;
        let gw = with_plugin(&m, d, "add", &example("add_headers"), cfg).start();
        let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: t\r\nx-secret: s3\r\n\r\n");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.inspected("x-plugin"), vec!["on"]);
        assert!(r.inspected("x-secret").is_empty());
        assert_eq!(r.header("x-plugin-resp"), Some("on"));
    }
}

#[test]
fn auth_check_refuses_without_a_token() {
    let m = MockUpstream::start();
    let cfg = r#"config: { header: x-api-token, tokens: [tok-1, tok-2] }"#;
    let gw = with_plugin(&m, Driver::Epoll, "auth", &example("auth_check"), cfg).start();
    let r = gw.get("/inspect");
    assert_eq!(r.status(), 401);
    assert_eq!(r.json()["error"]["code"], 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: t\r\nx-api-token: tok-2\r\n\r\n");
    assert_eq!(r.status(), 200);
    assert!(
        r.inspected("x-api-token").is_empty(),
        "the token was not stripped"
    );
}

#[test]
fn body_rewrite_rewrites_a_buffered_response() {
    let m = MockUpstream::start();
    let cfg =
        r#"config: { replace: [ { from: hello, to: goodbye } ] }, buffer: { response: true }"#;
    let gw = with_plugin(&m, Driver::Epoll, "rewrite", &example("body_rewrite"), cfg).start();
    let body = "hello world, hello wasm";
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = gw.request(raw.as_bytes());
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "goodbye world, goodbye wasm");
    assert_eq!(r.header("content-length"), Some("27"));
}

#[test]
fn chat_guard_judges_a_buffered_request_body() {
    let m = MockUpstream::start();
    let cfg =
        r#"config: { blocked_words: [forbidden], max_tokens: 100 }, buffer: { request: true }"#;
    let gw = with_plugin(&m, Driver::Epoll, "guard", &example("chat_guard"), cfg).start();
    let post = |body: &str| {
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nauthorization: Bearer sk-test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        gw.request(raw.as_bytes())
    };
    let clean = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post(clean);
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = post(r#"{"model":"m","messages":[{"role":"user","content":"a FORBIDDEN word"}]}"#);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"]["code"], "content_blocked");
    let r = post(r#"{"model":"m","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"]["code"], "max_tokens_exceeded");
    let r = post("not json");
    assert_eq!(r.status(), 400);
}

/// A one-thread authorizer: 200 with `x-user: alice` for `x-api-key: letmein`, else 403.
fn authz() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let seen = seen.clone();
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        buf.drain(..end + 4);
                        seen.fetch_add(1, Ordering::Relaxed);
                        let answer: &[u8] = if head.contains("x-api-key: letmein") {
                            b"HTTP/1.1 200 OK\r\nx-user: alice\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
                        };
                        if s.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, calls)
}

#[test]
fn http_callout_holds_the_request_until_the_answer() {
    let m = MockUpstream::start();
    let (authz_addr, calls) = authz();
    let cfg = r#"config: { cluster: authz, path: /authz, authority: authz, timeout_ms: 2000, forward_headers: [x-api-key], copy_headers: [x-user] }"#;
    let gw = with_plugin(&m, Driver::Epoll, "callout", &example("http_callout"), cfg)
        .cluster("authz", &[authz_addr.to_string()])
        .start();
    let r = gw.request(
        b"GET /inspect HTTP/1.1\r\nHost: t\r\nx-api-key: letmein\r\nx-user: mallory\r\n\r\n",
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.inspected("x-user"), vec!["alice"]);
    let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: t\r\nx-api-key: wrong\r\n\r\n");
    assert_eq!(r.status(), 403);
    assert!(calls.load(Ordering::Relaxed) >= 2);
}

#[test]
fn shared_counter_counts_across_workers_and_exports_its_metric() {
    let m = MockUpstream::start();
    let cfg = r#"config: { key: wasm-test.requests, tick_ms: 50 }"#;
    let gw = with_plugin(
        &m,
        Driver::Epoll,
        "counter",
        &example("shared_counter"),
        cfg,
    )
    .start();
    let mut last = 0u64;
    // New connections, so both workers take some.
    for _ in 0..8 {
        let r = gw.get("/");
        assert_eq!(r.status(), 200);
        let n: u64 = r.header("x-request-count").unwrap().parse().unwrap();
        assert!(n > last, "the shared count went from {last} to {n}");
        last = n;
    }
    assert_eq!(last, 8);
    let text = gw.metrics();
    assert!(
        text.contains("weir_wasm_shared_counter_requests_total{plugin=\"counter\"} 8"),
        "{text}"
    );
    // Its tick (every 50 ms on each core) logs the total.
    wait_until(
        "the plugin's tick to log",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || gw.stderr().contains("requests in total").then_some(()),
    );
    // The plugin named its metric `shared_counter_...`: promtool's lint frowns on a type name
    // inside a metric name, which is the plugin's choice; the exposition itself must parse.
    promtool_check_allowing(&text, "should not include type 'counter'");
}

#[test]
fn c_plugin_runs_unmodified() {
    let m = MockUpstream::start();
    let gw = with_plugin(
        &m,
        Driver::Epoll,
        "c",
        &example("c_add_header"),
        r#"config: { remove: x-secret }"#,
    )
    .start();
    let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: t\r\nx-secret: s\r\n\r\n");
    assert_eq!(r.status(), 200);
    assert_eq!(r.inspected("x-c-plugin"), vec!["1"]);
    assert!(r.inspected("x-secret").is_empty());
    assert_eq!(r.header("x-c-plugin"), Some("1"));
}

both_drivers! {
    /// A plugin that traps, spins forever, grows its memory without bound or hands the host a
    /// bad pointer fails that request (503 JSON, counted by kind); the next requests on the same
    /// workers are served by a new instance. Fail-open lets the request through instead.
    fn failures_stay_with_their_request(d) {
        let m = MockUpstream::start();
        let dir = TempDir::new("wasm");
        let file = probe(&dir);
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .cluster("mock", &[m.endpoint()])
            .top_yaml(&format!(
                "plugins:\n  - {{ name: probe, file: \"{file}\", max_memory: 4MiB, callback_deadline: 50ms }}\n  - {{ name: lenient, file: \"{file}\", on_error: open }}\n"
            ))
            .route("{ name: open, match: { path: { prefix: /open } }, cluster: mock, filters: [ { type: wasm, plugin: lenient } ] }")
            .route("{ name: all, cluster: mock, filters: [ { type: wasm, plugin: probe } ] }")
            .start();
        for mode in ["trap", "loop", "grow", "abi"] {
            let r = gw.request(format!("GET /inspect HTTP/1.1\r\nHost: t\r\nx-mode: {mode}\r\n\r\n").as_bytes());
            assert_eq!(r.status(), 503, "{mode}: {}", r.text());
            assert_eq!(r.json()["error"]["type"], "plugin_failed", "{mode}");
            let r = gw.get("/inspect");
            assert_eq!(r.status(), 200, "after {mode}");
            assert_eq!(r.inspected("x-wasm"), vec!["on"], "after {mode}");
        }
        let text = gw.metrics();
        for kind in ["trap", "deadline", "memory", "abi"] {
            assert!(
                text.contains(&format!("weir_wasm_failures_total{{plugin=\"probe\",kind=\"{kind}\"}} 1")),
                "{kind} not counted:\n{text}"
            );
        }
        promtool_check(&text);
        let r = gw.request(b"GET /open HTTP/1.1\r\nHost: t\r\nx-mode: trap\r\n\r\n");
        assert_eq!(r.status(), 404, "fail-open lets the request reach the upstream (which has no /open)");
    }
}

#[test]
fn a_module_that_is_not_proxy_wasm_is_refused_and_the_old_config_keeps_serving() {
    let m = MockUpstream::start();
    let dir = TempDir::new("wasm");
    let file = probe(&dir);
    let base = with_plugin(&m, Driver::Epoll, "probe", &file, "config: one");
    let gw = base.clone().start();
    let r = gw.get("/inspect?q=1");
    assert_eq!(r.header("x-wasm-resp"), Some("one"));
    // Properties: `route_name`, and `request.path` (an Envoy path: segments split by NUL).
    assert_eq!(r.header("x-route"), Some("all"));
    assert_eq!(r.header("x-path"), Some("/inspect?q=1"));
    let bad = dir.path().join("bad.wasm");
    std::fs::write(
        &bad,
        wat::parse_str("(module (memory (export \"memory\") 1))").unwrap(),
    )
    .unwrap();
    let broken = with_plugin(
        &m,
        Driver::Epoll,
        "probe",
        &bad.display().to_string(),
        "config: two",
    );
    gw.write_config(&broken.yaml());
    gw.sighup();
    wait_until(
        "the reload to be refused",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || gw.stderr().contains("reload refused").then_some(()),
    );
    assert!(
        gw.stderr().contains("proxy_abi_version_0_2_1"),
        "{}",
        gw.stderr()
    );
    assert_eq!(gw.get("/inspect").header("x-wasm-resp"), Some("one"));
}

#[test]
fn hot_swap_under_load_drops_nothing() {
    let m = MockUpstream::start();
    let dir = TempDir::new("wasm");
    let file = probe(&dir);
    let base =
        |cfg: &str| with_plugin(&m, Driver::Epoll, "probe", &file, &format!("config: {cfg}"));
    let gw = Arc::new(base("gen-a").start());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let gw = gw.clone();
        let stop = stop.clone();
        load.push(thread::spawn(move || {
            let mut c = gw.connect();
            let (mut n, mut seen_b) = (0u64, false);
            // Bounded: at most 20 s of requests.
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                let r = c.get("/inspect");
                assert_eq!(
                    r.status(),
                    200,
                    "a request failed during the swap: {}",
                    r.text()
                );
                let v = r.header("x-wasm-resp").unwrap().to_owned();
                assert!(v == "gen-a" || v == "gen-b", "{v}");
                seen_b |= v == "gen-b";
                n += 1;
            }
            (n, seen_b)
        }));
    }
    thread::sleep(Duration::from_millis(300));
    gw.write_config(&base("gen-b").yaml());
    gw.sighup();
    wait_until(
        "the new plugin config to serve",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || (gw.get("/inspect").header("x-wasm-resp") == Some("gen-b")).then_some(()),
    );
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in load {
        let (n, seen_b) = t.join().unwrap();
        assert!(seen_b, "a kept-alive connection never saw the new plugin");
        total += n;
    }
    assert!(
        total > 20,
        "too little load to say anything: {total} requests"
    );
}

/// Checks `text` with `promtool check metrics` when promtool is installed; prints a note when not.
fn promtool_check(text: &str) {
    promtool_check_allowing(text, "\0");
}

/// [`promtool_check`], where lint findings (exit 3) that all contain `allowed` pass; a parse
/// error (exit 1) never does.
fn promtool_check_allowing(text: &str, allowed: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("note: promtool is not on PATH: skipping `promtool check metrics`");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let only_allowed = out.status.code() == Some(3)
        && report
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.contains(allowed));
    assert!(
        out.status.success() || only_allowed,
        "promtool check metrics: {report}"
    );
}

#[test]
fn the_control_daemon_ships_module_bytes_with_their_hash() {
    let m = MockUpstream::start();
    let dir = TempDir::new("wasm");
    let file = probe(&dir);
    let cfg = with_plugin(&m, Driver::Epoll, "probe", &file, "config: shipped");
    let daemon = ControlDaemon::start(&cfg.yaml());
    let state = TempDir::new("plane");
    let gw = Gateway::new()
        .driver(Driver::Epoll)
        .control(&daemon)
        .plane_id("wasm")
        .plane_state(state.path())
        .start();
    assert_eq!(gw.get("/inspect").header("x-wasm-resp"), Some("shipped"));
    // The snapshot the plane received (and kept) holds the bytes and their SHA-256, not a path.
    let snap = std::fs::read_to_string(state.path().join("snapshot.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&snap).unwrap();
    let p = doc
        .pointer("/config/plugins/0")
        .unwrap_or_else(|| panic!("no plugin in the snapshot: {snap}"));
    assert!(p.get("file").is_none(), "{p}");
    assert!(p["module"].as_str().is_some_and(|s| s.len() > 100), "{p}");
    let bytes = std::fs::read(&file).unwrap();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(p["sha256"], sha.as_str());
}

#[test]
fn chat_guard_judges_the_body_on_an_ai_route_too() {
    let file = example("chat_guard");
    let gw = Gateway::new()
        .driver(Driver::Epoll)
        .top_yaml(&format!(
            "providers: [{{ name: m, type: mock }}]\nplugins:\n  - {{ name: guard, file: \"{file}\", config: {{ blocked_words: [forbidden] }}, buffer: {{ request: true }} }}\n"
        ))
        .route("{ name: llm, ai: { models: [{ model: \"gpt-*\", targets: [{ provider: m }] }] }, filters: [ { type: wasm, plugin: guard } ] }")
        .start();
    let post = |body: &str| {
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        gw.request(raw.as_bytes())
    };
    let r = post(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = post(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"forbidden"}]}"#);
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "content_blocked");
}
