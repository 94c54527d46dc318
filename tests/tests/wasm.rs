//! Wasm plugins end to end, with the real `weir`: the example plugins of `plugins/examples/`
//! (built by `plugins/examples/build.sh`, which `tests/run.sh` runs first) each doing what it
//! promises; plugins that trap, loop, allocate without bound or misuse the ABI failing only their
//! own request; a plugin hot-swapped under load without a dropped request; plugin metrics on
//! `/metrics`, valid for promtool; trailer callbacks (`plugins/host/testdata/trailers.wat`)
//! editing an upload's and a response's trailers (to an HTTP/1.1 and an HTTP/2 client), and
//! trailers passing byte for byte where no plugin reads them.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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

/// A test plugin of `plugins/host/testdata` (`name.wat`, its text) compiled into `dir`; the
/// `.wasm` file's path.
fn wat_plugin(dir: &TempDir, name: &str, wat: &str) -> String {
    let path = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.display().to_string()
}

/// `plugins/host/testdata/probe.wat` compiled into `dir`.
fn probe(dir: &TempDir) -> String {
    wat_plugin(
        dir,
        "probe",
        include_str!("../../plugins/host/testdata/probe.wat"),
    )
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
fn plugins_run_under_a_virtual_memory_limit() {
    // The instance pool reserves address space for every instance at once; under a limit on
    // virtual memory (here 16 GiB, `ulimit -v`) that reservation is refused and the engine
    // allocates instances on demand instead of refusing every plugin.
    let m = MockUpstream::start();
    let cfg = r#"config: { request_add: { x-plugin: "on" } }"#;
    let gw = with_plugin(&m, Driver::Epoll, "add", &example("add_headers"), cfg)
        .wrapper(&["prlimit", "--as=17179869184"])
        .start();
    let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.inspected("x-plugin"), vec!["on"]);
    assert!(
        gw.stderr().contains("instances are allocated on demand"),
        "{}",
        gw.stderr()
    );
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

both_drivers! {
    /// Without `buffer`, a response body is held at run time: `body_rewrite` answers `Pause`
    /// (`StopIterationAndBuffer`) until the body's end, and the client gets the rewritten body
    /// with its real length; a body over the plugin's limit is let out as it was, with its own.
    /// The head waits for the body, so the body callback's header edit (`mark`: the number of
    /// replacements) reaches the client.
    fn body_rewrite_holds_a_response_at_run_time(d) {
        let m = MockUpstream::start();
        let cfg = r#"config: { replace: [ { from: hello, to: goodbye }, { from: xyz, to: "XYZ!!" } ], max_body_bytes: 150000, mark: x-rewritten }"#;
        let gw = with_plugin(&m, d, "rewrite", &example("body_rewrite"), cfg).start();
        let body = "hello world, hello wasm";
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = gw.request(raw.as_bytes());
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "goodbye world, goodbye wasm");
        assert_eq!(r.header("content-length"), Some("27"));
        assert_eq!(r.header("x-rewritten"), Some("2"));

        // A chunked response over many reads, rewritten across its chunk boundaries.
        let r = gw.get("/chunked/100000?chunk=1000");
        assert_eq!(r.status(), 200);
        let text = String::from_utf8(pattern(100000)).unwrap();
        let want = text.replace("xyz", "XYZ!!");
        assert_eq!(r.text(), want);
        assert_eq!(r.head.content_length(), Some(want.len() as u64));
        let count = text.matches("xyz").count().to_string();
        assert_eq!(r.header("x-rewritten"), Some(count.as_str()));

        // Over the limit: what was held goes out unchanged, then the rest streams; the lengths
        // did not change, so the upstream's length stays, and nothing was marked.
        let r = gw.get("/bytes/200000");
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, pattern(200000));
        assert_eq!(r.head.content_length(), Some(200000));
        assert_eq!(r.header("x-rewritten"), None);
    }
}

both_drivers! {
    /// The same for uploads (`requests: true`): the body goes upstream rewritten, whole when it
    /// ended inside the plugin (a chunked upload arrives with a length), streamed on once the
    /// plugin lets it go.
    fn body_rewrite_holds_an_upload_at_run_time(d) {
        let m = MockUpstream::start();
        let cfg = r#"config: { replace: [ { from: hello, to: goodbye }, { from: "bye!", to: "" } ], requests: true, max_body_bytes: 150000, content_types: [x/none], mark: x-rewritten }"#;
        let gw = with_plugin(&m, d, "rewrite", &example("body_rewrite"), cfg).start();
        let r = gw.request(
            b"POST /echo HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nthere\r\n0\r\n\r\n",
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "goodbye there");
        // The head waited upstream for the body: the body callback's edit went up with it.
        let r = gw.request(b"POST /inspect HTTP/1.1\r\nHost: t\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.inspected("content-length"), vec!["7"]);
        assert_eq!(r.inspected("x-rewritten"), vec!["1"]);
        // Rewritten to nothing: sent with a length of 0, at once.
        let r = gw.request(b"POST /inspect HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nbye!");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.inspected("content-length"), vec!["0"]);
        // Over the limit: released unchanged, then streamed with its own length.
        let big = pattern(200000);
        let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\ncontent-length: 200000\r\n\r\n".to_vec();
        raw.extend_from_slice(&big);
        let r = gw.request(&raw);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, big);
    }
}

both_drivers! {
    /// The same towards an HTTP/2 cluster (a second Weir, in cleartext with prior knowledge, in
    /// front of the mock): a response rewritten whole gets its new length, one over the limit is
    /// framed as received; an upload is rewritten before it goes up (its DATA frames end it: the length field
    /// is dropped), and one rewritten to nothing arrives empty.
    fn body_rewrite_holds_bodies_towards_an_h2_cluster(d) {
        let m = MockUpstream::start();
        let front = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let h2 = |cfg: &str| {
            Gateway::new()
                .driver(d)
                .workers(2)
                .cluster_yaml(&format!(
                    "{{ name: up, protocol: h2, endpoints: [\"{}\"] }}",
                    front.addr()
                ))
                .top_yaml(&format!(
                    "plugins:\n  - {{ name: rewrite, file: \"{}\", {cfg} }}\n",
                    example("body_rewrite")
                ))
                .route("{ name: all, cluster: up, filters: [ { type: wasm, plugin: rewrite } ] }")
                .start()
        };

        let gw = h2(r#"config: { replace: [ { from: hello, to: goodbye }, { from: xyz, to: "XYZ!!" } ], max_body_bytes: 150000, mark: x-rewritten }"#);
        let body = "hello world, hello wasm";
        let raw = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = gw.request(raw.as_bytes());
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "goodbye world, goodbye wasm");
        assert_eq!(r.header("content-length"), Some("27"));
        assert_eq!(r.header("x-rewritten"), Some("2"));
        let r = gw.get("/chunked/100000?chunk=1000");
        assert_eq!(r.status(), 200);
        let want = String::from_utf8(pattern(100000)).unwrap().replace("xyz", "XYZ!!");
        assert_eq!(r.text(), want);
        assert_eq!(r.head.content_length(), Some(want.len() as u64));
        // Over the limit: let out unchanged part-way, so framed as received (the front's h2
        // answer has no length field: chunked).
        let r = gw.get("/bytes/200000");
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, pattern(200000));
        assert_eq!((r.head.content_length(), r.head.is_chunked()), (None, true));

        let gw = h2(r#"config: { replace: [ { from: hello, to: goodbye }, { from: "bye!", to: "" } ], requests: true, max_body_bytes: 150000, content_types: [x/none] }"#);
        let r = gw.request(
            b"POST /echo HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nthere\r\n0\r\n\r\n",
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "goodbye there");
        let r = gw.request(b"POST /echo HTTP/1.1\r\nHost: t\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "goodbye");
        let r = gw.request(b"POST /echo HTTP/1.1\r\nHost: t\r\ncontent-length: 4\r\n\r\nbye!");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "");
        let big = pattern(200000);
        let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\ncontent-length: 200000\r\n\r\n".to_vec();
        raw.extend_from_slice(&big);
        let r = gw.request(&raw);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, big);
    }
}

/// A plugin's answer from a held upload towards an HTTP/2 cluster reaches the client whole (the
/// upstream stream is reset), and a clean body goes up.
#[test]
fn chat_guard_answers_from_a_held_upload_towards_an_h2_cluster() {
    let m = MockUpstream::start();
    let front = Gateway::new()
        .cluster("mock", &[m.endpoint()])
        .route("{ name: all, cluster: mock }")
        .start();
    let gw = Gateway::new()
        .cluster_yaml(&format!(
            "{{ name: up, protocol: h2, endpoints: [\"{}\"] }}",
            front.addr()
        ))
        .top_yaml(&format!(
            "plugins:\n  - {{ name: guard, file: \"{}\", config: {{ blocked_words: [forbidden], max_tokens: 100 }} }}\n",
            example("chat_guard")
        ))
        .route("{ name: all, cluster: up, filters: [ { type: wasm, plugin: guard } ] }")
        .start();
    let post = |body: &str| {
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nauthorization: Bearer sk-test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        gw.request(raw.as_bytes())
    };
    let r = post(r#"{"model":"m","messages":[{"role":"user","content":"a FORBIDDEN word"}]}"#);
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "content_blocked");
    let r = post(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status(), 200, "{}", r.text());
}

both_drivers! {
    /// On a route whose plugin has a response-body callback (the body passes through the chain),
    /// a client that hangs up while the upstream is quiet ends the exchange at once, as on the
    /// streaming path (which watches the client from a body's second read on): logged 499 long
    /// before the upstream's next event (3 s away) would have shown the gateway a failed write.
    fn a_client_hang_up_ends_a_held_response_at_once(d) {
        let m = MockUpstream::start();
        let cfg = r#"config: { response_add: { x-plugin-resp: "on" } }"#;
        let gw = with_plugin(&m, d, "add", &example("add_headers"), cfg).start();
        let mut c = gw.connect();
        c.send(b"GET /sse?events=10&interval_ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut s = c.into_sse();
        let e0 = s.next_event().unwrap();
        let e1 = s.next_event().unwrap();
        assert!(e0.data().starts_with("{\"i\":0") && e1.data().starts_with("{\"i\":1"));
        drop(s);
        let dropped = Instant::now();
        let log = gw.wait_access_log(1, Duration::from_secs(10), |l| {
            l["target"].as_str().is_some_and(|t| t.starts_with("/sse"))
        });
        assert_eq!(log[0]["status"], 499, "{}", log[0]);
        assert!(
            dropped.elapsed() < Duration::from_millis(2000),
            "the hang-up was noticed after {:?}",
            dropped.elapsed()
        );
    }
}

#[test]
fn chat_guard_judges_a_request_body_held_at_run_time() {
    // The same plugin without `buffer`: it answers `Pause` until the body's end.
    let m = MockUpstream::start();
    let cfg = r#"config: { blocked_words: [forbidden], max_tokens: 100 }"#;
    let gw = with_plugin(&m, Driver::Epoll, "guard", &example("chat_guard"), cfg).start();
    let post = |body: &str| {
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nauthorization: Bearer sk-test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        gw.request(raw.as_bytes())
    };
    let r = post(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = post(r#"{"model":"m","messages":[{"role":"user","content":"a FORBIDDEN word"}]}"#);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"]["code"], "content_blocked");
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
    // (The plane serves the generation as soon as it is applied; the snapshot may land just after.)
    let snap = wait_until(
        "the plane's snapshot",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || std::fs::read_to_string(state.path().join("snapshot.json")).ok(),
    );
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
    // Buffered by config, then held at run time (the plugin answers `Pause` until the end).
    for buffer in [", buffer: { request: true }", ""] {
        chat_guard_on_an_ai_route(buffer);
    }
}

fn chat_guard_on_an_ai_route(buffer: &str) {
    let file = example("chat_guard");
    let gw = Gateway::new()
        .driver(Driver::Epoll)
        .top_yaml(&format!(
            "providers: [{{ name: m, type: mock }}]\nplugins:\n  - {{ name: guard, file: \"{file}\", config: {{ blocked_words: [forbidden] }}{buffer} }}\n"
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

// === trailers ===

/// `plugins/host/testdata/trailers.wat` (the trailer callbacks: see its header) compiled into
/// `dir`.
fn trailer_plugin(dir: &TempDir) -> String {
    wat_plugin(
        dir,
        "trailers",
        include_str!("../../plugins/host/testdata/trailers.wat"),
    )
}

/// The chunked response body of the raw upstream's `/trailers`: odd spacing on purpose, so a
/// section passed as received is told from one written anew.
const UP_TRAILERS: &[u8] =
    b"5\r\nhello\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\nX-Up:  spaced \r\n\r\n";

/// A raw HTTP/1.1 upstream: keeps each request's body exactly as it arrived (framing and trailer
/// section included), and answers `/trailers` with [`UP_TRAILERS`], `/no-trailers` with a
/// chunked body without trailers, anything else with `ok`.
fn raw_upstream() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use std::io::BufRead;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let seen = seen.clone();
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = std::io::BufReader::new(s);
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = Vec::new();
                        if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.extend_from_slice(&line);
                        if line == b"\r\n" {
                            break;
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let mut body = Vec::new();
                    if head.contains("transfer-encoding: chunked") {
                        loop {
                            let mut line = Vec::new();
                            if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            body.extend_from_slice(&line);
                            let text = String::from_utf8_lossy(&line);
                            let size = text.trim().split(';').next().unwrap_or("");
                            let size = usize::from_str_radix(size, 16).unwrap();
                            if size == 0 {
                                break;
                            }
                            let mut data = vec![0u8; size + 2];
                            if r.read_exact(&mut data).is_err() {
                                return;
                            }
                            body.extend_from_slice(&data);
                        }
                        // The trailer section, to its empty line.
                        loop {
                            let mut line = Vec::new();
                            if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            body.extend_from_slice(&line);
                            if line == b"\r\n" {
                                break;
                            }
                        }
                    } else if let Some(n) = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                    {
                        body.resize(n, 0);
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                    }
                    seen.lock().unwrap().push(body);
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let mut answer = Vec::new();
                    match path.as_str() {
                        "/trailers" | "/no-trailers" => {
                            answer.extend_from_slice(
                                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n",
                            );
                            answer.extend_from_slice(if path == "/trailers" {
                                UP_TRAILERS
                            } else {
                                b"5\r\nhello\r\n0\r\n\r\n"
                            });
                        }
                        _ => answer
                            .extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
                    }
                    if w.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, bodies)
}

/// `plugins/host/testdata/body_calls.wat` (counts its response-body callbacks) compiled into `dir`.
fn body_calls_plugin(dir: &TempDir) -> String {
    wat_plugin(
        dir,
        "body_calls",
        include_str!("../../plugins/host/testdata/body_calls.wat"),
    )
}

both_drivers! {
    /// `proxy_on_response_body` is told `end_of_stream` exactly once per response: with the
    /// payload when the body has a length (one call, as Envoy makes), in an empty call after the
    /// payload when the body is chunked (its end is known only at the last chunk).
    fn the_response_body_end_is_told_once(d) {
        let (up, _) = raw_upstream();
        let dir = TempDir::new("wasm-body-calls");
        let file = body_calls_plugin(&dir);
        let gw = Gateway::new()
            .driver(d)
            .workers(1)
            .cluster("raw", &[up.to_string()])
            .top_yaml(&format!("plugins:\n  - {{ name: bodies, file: \"{file}\" }}\n"))
            .route("{ name: all, cluster: raw, filters: [ { type: wasm, plugin: bodies } ] }")
            .start();
        // (calls, ends, bytes) once the request's last callback ran: a chunked body's end is
        // told after its last byte went to the client, so the client may read it first.
        let counts_after = |want: (u64, u64, u64)| -> (u64, u64, u64) {
            let read = || {
                let text = gw.metrics();
                let count = |name: &str| {
                    let line = format!("weir_wasm_{name}_total{{plugin=\"bodies\"}} ");
                    text.lines()
                        .find_map(|l| l.strip_prefix(&line))
                        .map_or(0, |v| v.parse().unwrap())
                };
                (count("body_calls"), count("body_ends"), count("body_bytes"))
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while read() != want && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Settled: a call too many would show now.
            std::thread::sleep(Duration::from_millis(100));
            read()
        };

        let r = gw.request(b"GET /length HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status(), r.text()), (200, "ok".to_owned()));
        assert_eq!(
            counts_after((1, 1, 2)),
            (1, 1, 2),
            "a body with a length: one call, with its end and its 2 bytes"
        );

        let r = gw.request(b"GET /no-trailers HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status(), r.text()), (200, "hello".to_owned()));
        // A chunked body's end is known at its last chunk: told with the payload when both came
        // in one read, else in an empty call after it; either way once.
        let after = counts_after((3, 2, 7));
        assert!(
            after == (2, 2, 7) || after == (3, 2, 7),
            "a chunked body: its payload and its end once: {after:?}"
        );
    }
}

/// `plugins/host/testdata/pause.wat` (pauses every request; its tick continues them) compiled
/// into `dir`.
fn pause_plugin(dir: &TempDir) -> String {
    wat_plugin(
        dir,
        "pause",
        include_str!("../../plugins/host/testdata/pause.wat"),
    )
}

both_drivers! {
    /// A request the plugin pauses without a callout waits until the plugin continues it (here
    /// from its tick: `proxy_set_effective_context` to the request, `proxy_continue_stream`),
    /// then goes upstream; one it never continues is answered 504 after the plugin's
    /// `pause_limit`, and never reaches the upstream.
    fn a_paused_request_waits_until_the_plugin_continues_it(d) {
        let m = MockUpstream::start();
        let dir = TempDir::new("wasm-pause");
        let file = pause_plugin(&dir);
        let gw = with_plugin(&m, d, "pause", &file, "pause_limit: 300ms").start();
        let before = m.stat("requests");
        for _ in 0..5 {
            let r = gw.get("/");
            assert_eq!(r.status(), 200, "{}", r.text());
            assert_eq!(r.header("x-mock-id"), m.mock_id());
        }
        // (The mock counts each `/stats` request too.)
        assert_eq!(m.stat("requests"), before + 5 + 1);

        let r = gw.request(b"GET / HTTP/1.1\r\nHost: t\r\nx-hold: 1\r\n\r\n");
        assert_eq!(r.status(), 504, "{}", r.text());
        assert!(r.text().contains("plugin_pause_timeout"), "{}", r.text());
        assert_eq!(
            m.stat("requests"),
            before + 5 + 2,
            "a request never continued stays here"
        );
        // The worker goes on serving, and the next paused request is continued as before.
        assert_eq!(gw.get("/").status(), 200);
    }
}

/// Sends `raw` (which asks to close) and returns the response's status line and head, and its
/// body bytes exactly as they came (framing and trailers included).
fn exchange_raw(gw: &Gateway, raw: &[u8]) -> (String, Vec<u8>) {
    let mut c = gw.connect();
    c.send(raw);
    let (bytes, closed) = c.read_until_close(Duration::from_secs(10));
    assert!(
        closed,
        "the gateway did not close: {}",
        String::from_utf8_lossy(&bytes)
    );
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {}", String::from_utf8_lossy(&bytes)));
    (
        String::from_utf8_lossy(&bytes[..end + 4]).into_owned(),
        bytes[end + 4..].to_vec(),
    )
}

/// The trailer lines of a chunked body that ends with `0\r\n<lines>\r\n`, lower case.
fn trailer_lines(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let at = text.rfind("\r\n0\r\n").expect("a last chunk") + 5;
    assert!(
        text.ends_with("\r\n\r\n") || &text[at..] == "\r\n",
        "{text:?}"
    );
    text[at..]
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A chunked upload `hello` with this trailer section, asking to close.
fn upload(path: &str, section: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n{section}\r\n"
    )
    .into_bytes()
}

both_drivers! {
    /// A plugin with trailer callbacks reads and edits a chunked upload's trailers (the upstream
    /// sees the edited section, without the `host` field it tried to add) and a chunked
    /// response's trailers (the client sees `grpc-status` observed and `grpc-message` replaced);
    /// a body without trailers calls no trailer callback and ends as it came; a plugin's answer
    /// from its request-trailer callback refuses the upload.
    fn a_plugin_edits_trailers_both_ways(d) {
        let (up, bodies) = raw_upstream();
        let dir = TempDir::new("wasm-trailers");
        let file = trailer_plugin(&dir);
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .cluster("raw", &[up.to_string()])
            .top_yaml(&format!("plugins:\n  - {{ name: trailers, file: \"{file}\" }}\n"))
            .route("{ name: all, cluster: raw, filters: [ { type: wasm, plugin: trailers } ] }")
            .start();

        let (head, body) = exchange_raw(
            &gw,
            &upload("/trailers", "x-in: hi\r\nX-Replace: old\r\nx-drop: 1\r\n"),
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // Upstream: the payload as sent, the trailers as the plugin left them.
        let sent = bodies.lock().unwrap().pop().expect("the upstream got the upload");
        assert!(sent.starts_with(b"5\r\nhello\r\n0\r\n"), "{}", String::from_utf8_lossy(&sent));
        let lines = trailer_lines(&sent);
        for want in ["x-in: hi", "x-replace: new", "x-in-seen: hi", "x-count: 3"] {
            assert!(lines.iter().any(|l| l == want), "no `{want}` upstream: {lines:?}");
        }
        for gone in ["x-drop", "host", "content-length"] {
            assert!(
                !lines.iter().any(|l| l.starts_with(&format!("{gone}:"))),
                "`{gone}` reached the upstream: {lines:?}"
            );
        }
        // Client: the payload as the upstream sent it, the trailers edited.
        assert!(body.starts_with(b"5\r\nhello\r\n0\r\n"), "{}", String::from_utf8_lossy(&body));
        let lines = trailer_lines(&body);
        for want in [
            "grpc-status: 0",
            "grpc-message: edited",
            "x-up: spaced",
            "x-seen-status: 0",
            "x-wasm-trailer: on",
            "x-count: 3",
        ] {
            assert!(lines.iter().any(|l| l == want), "no `{want}` downstream: {lines:?}");
        }
        assert!(!lines.iter().any(|l| l.contains("fine")), "{lines:?}");

        // No trailers either way: no callback, and the body ends as it came.
        let (head, body) = exchange_raw(&gw, &upload("/no-trailers", ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(bodies.lock().unwrap().pop().as_deref(), Some(&b"5\r\nhello\r\n0\r\n\r\n"[..]));
        assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n");

        // The plugin answers from its request-trailer callback: the upload is refused.
        let (head, _) = exchange_raw(&gw, &upload("/trailers", "x-deny: 1\r\n"));
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    }
}

both_drivers! {
    /// Where no plugin has trailer callbacks (the probe exports none), trailers pass byte for
    /// byte both ways, odd spacing and all.
    fn trailers_pass_unchanged_without_trailer_callbacks(d) {
        let (up, bodies) = raw_upstream();
        let dir = TempDir::new("wasm-trailers-plain");
        let file = probe(&dir);
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .cluster("raw", &[up.to_string()])
            .top_yaml(&format!("plugins:\n  - {{ name: probe, file: \"{file}\" }}\n"))
            .route("{ name: all, cluster: raw, filters: [ { type: wasm, plugin: probe } ] }")
            .start();
        let section = "X-In:  hi \r\nx-drop: 1\r\n";
        let (head, body) = exchange_raw(&gw, &upload("/trailers", section));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("x-wasm-resp"), "the probe ran: {head}");
        let sent = bodies.lock().unwrap().pop().expect("the upstream got the upload");
        assert_eq!(
            String::from_utf8_lossy(&sent),
            format!("5\r\nhello\r\n0\r\n{section}\r\n")
        );
        assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(UP_TRAILERS));
    }
}

/// Response trailers a plugin edited reach an HTTP/2 client as its trailing HEADERS (the h2
/// bridge turns the edited chunked section back into trailers).
#[test]
fn trailers_edited_by_a_plugin_reach_an_h2_client() {
    let (up, _) = raw_upstream();
    let dir = TempDir::new("wasm-trailers-h2");
    let file = trailer_plugin(&dir);
    let gw = Gateway::new()
        .driver(Driver::Epoll)
        .cluster("raw", &[up.to_string()])
        .top_yaml(&format!(
            "plugins:\n  - {{ name: trailers, file: \"{file}\" }}\n"
        ))
        .route("{ name: all, cluster: raw, filters: [ { type: wasm, plugin: trailers } ] }")
        .start();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("h2/h2probe.py");
    let out = run_bounded(
        Command::new("python3")
            .arg(script)
            .args(["--target", &gw.addr().to_string(), "--timeout", "30"])
            .args(["get", "--path", "/trailers"]),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "h2probe.py (python3 -m pip install h2?): {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body_len"], 5, "{v}");
    let t = &v["trailers"];
    assert_eq!(t["grpc-status"], "0", "{v}");
    assert_eq!(t["grpc-message"], "edited", "{v}");
    assert_eq!(t["x-seen-status"], "0", "{v}");
    assert_eq!(t["x-wasm-trailer"], "on", "{v}");
    assert_eq!(t["x-up"], "spaced", "{v}");
}
