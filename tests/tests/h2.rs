//! HTTP/2 towards clients, to an ordinary HTTP/1.1 upstream (`weir-mock-llm`): curl with prior
//! knowledge on a cleartext listener and with ALPN over TLS (`%{http_version}` 2), bodies both
//! ways, what the upstream hears, h1 beside h2 on one listener, an SSE stream and a streamed chat
//! completion over h2, `h2load` with no failed request, many streams on one connection within
//! the advertised limits, the stream limit enforced; and the attack patterns, written frame by
//! frame by `tests/h2/h2probe.py` (the `h2` and `hpack` Python libraries): rapid reset
//! (CVE-2023-44487), a CONTINUATION flood, SETTINGS and PING floods, an oversized header list.
//! Each attack must end in a closed connection or bounded memory, and the gateway must go on
//! serving.
//!
//! Needs `curl` with HTTP/2, `h2load` (Debian `nghttp2-client`) and `python3` with `h2`
//! (`tests/run.sh` installs them).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_tests::*;

/// What a flood or attack may add to the gateway's resident memory (peak over the baseline).
/// Generous for a debug build with its allocator's slack; an unbounded queue of 2 million
/// frames or their answers is far above it.
const MEMORY_BOUND_KIB: u64 = 64 * 1024;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("h2")
        .join("h2probe.py")
}

// === h2probe.py ===

/// Runs `h2probe.py --target ADDR --pid PID --timeout 40 ARGS...` and returns its JSON report.
fn probe(gw: &Gateway, addr: std::net::SocketAddr, tls: Option<&TestPki>, args: &[&str]) -> Value {
    probe_at(addr, gw.pid(), tls.map(TestPki::ca).as_deref(), args)
}

/// [`probe`] without a [`Gateway`] at hand (from another thread): its address, pid, CA.
fn probe_at(addr: std::net::SocketAddr, pid: u32, ca: Option<&Path>, args: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(script())
        .args(["--target", &addr.to_string()])
        .args(["--pid", &pid.to_string(), "--timeout", "40"]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca).args(["--server-name", "localhost"]);
    }
    let out = run_bounded(cmd.args(args), Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "h2probe.py {args:?} exited {:?} (python3 -m pip install h2?)\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or("");
    let v: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("h2probe.py {args:?}: {e}\n{stdout}\n{stderr}"));
    assert!(
        v.get("error").is_none(),
        "h2probe.py {args:?}: {v}\n{stderr}"
    );
    v
}

/// Peak resident memory during the exchange over the baseline before it, in KiB.
fn memory_growth(report: &Value, after: &str) -> u64 {
    let before = report["mem_before"]["VmRSS"].as_u64().unwrap();
    let peak = report[after]["VmHWM"].as_u64().unwrap();
    peak.saturating_sub(before)
}

// === curl ===

#[derive(Debug)]
struct Curl {
    code: u16,
    version: String,
    body: Vec<u8>,
    stderr: String,
}

/// `curl -sS -v ARGS... URL`, the body kept, `%{http_code} %{http_version}` parsed.
fn curl(args: &[&str], url: &str) -> Curl {
    let dir = TempDir::new("curl");
    let body = dir.path().join("body");
    let out = run_bounded(
        Command::new("curl")
            .args(["-sS", "-v", "--max-time", "30", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code} %{http_version}"])
            .args(args)
            .arg(url),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?} {url} failed: {stderr}");
    let (code, version) = stdout.split_once(' ').unwrap_or(("0", ""));
    Curl {
        code: code.parse().unwrap_or(0),
        version: version.to_owned(),
        body: std::fs::read(&body).unwrap_or_default(),
        stderr,
    }
}

/// curl over h2 with prior knowledge to a cleartext listener.
fn curl_h2c(addr: std::net::SocketAddr, path: &str, extra: &[&str]) -> Curl {
    let args = [&["--http2-prior-knowledge"][..], extra].concat();
    curl(&args, &format!("http://{addr}{path}"))
}

/// curl to a TLS listener as `localhost` with the test CA; `version` is `--http2` or `--http1.1`.
fn curl_tls(
    pki: &TestPki,
    addr: std::net::SocketAddr,
    version: &str,
    path: &str,
    extra: &[&str],
) -> Curl {
    let ca = pki.ca().display().to_string();
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let args = [
        &[version, "--cacert", &ca, "--resolve", &resolve][..],
        extra,
    ]
    .concat();
    curl(&args, &format!("https://localhost:{}{path}", addr.port()))
}

/// The values of request header `name` the mock's `/inspect` reports.
fn inspected(body: &[u8], name: &str) -> Vec<String> {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("/inspect body: {e}: {}", String::from_utf8_lossy(body)));
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|h| h[1].as_str().map(str::to_owned))
        .collect()
}

/// A second listener is put on 127.0.0.2: two listeners may not both say `127.0.0.1:0`.
fn tls_yaml(pki: &TestPki) -> String {
    format!(
        "tls: {{ certificates: [{{ cert: \"{}\", key: \"{}\" }}] }}",
        pki.server_cert().display(),
        pki.server_key().display()
    )
}

/// A gateway whose listener `main` (with `listener` keys) routes everything to `mock`.
fn proxy_to(d: Driver, mock: &MockUpstream, listener: &str) -> Gateway {
    let mut b = Gateway::new()
        .driver(d)
        .cluster("mock", &[mock.endpoint()])
        .route("{ name: all, cluster: mock }");
    if !listener.is_empty() {
        b = b.listener_yaml(listener);
    }
    b.start()
}

/// After an attack: a fresh connection is served (h2 and h1), so the worker is alive.
fn still_serves(gw: &Gateway) {
    let r = curl_h2c(gw.addr(), "/bytes/10", &[]);
    assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
    assert_eq!(r.body, pattern(10));
    assert_eq!(gw.get("/bytes/3").body, b"abc");
}

both_drivers! {
    /// curl with prior knowledge on a cleartext listener: GET 100 KB byte-exact, a 1 MiB POST
    /// echoed byte-exact, the upstream hears HTTP/1.1 with `Host` from `:authority` and
    /// `x-forwarded-proto: http`; an HTTP/1.1 client is served on the same listener.
    fn curl_prior_knowledge(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let r = curl_h2c(gw.addr(), "/bytes/100000", &[]);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        assert!(r.body == pattern(100_000), "GET body differs ({} bytes)", r.body.len());

        let dir = TempDir::new("post");
        let file = dir.path().join("body");
        let data = random_bytes(1 << 20, 7);
        std::fs::write(&file, &data).unwrap();
        let at_file = format!("@{}", file.display());
        let r = curl_h2c(gw.addr(), "/echo", &["--data-binary", &at_file, "-H", "content-type: application/octet-stream"]);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        assert!(r.body == data, "POST echo differs ({} bytes back)", r.body.len());

        let r = curl_h2c(gw.addr(), "/inspect/x?y=1", &["-H", "x-custom: one"]);
        assert_eq!(r.code, 200, "{}", r.stderr);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["http_version"], "1.1", "{v}");
        assert_eq!(v["method"], "GET", "{v}");
        assert_eq!(v["path"], "/inspect/x?y=1", "{v}");
        assert_eq!(inspected(&r.body, "host"), [gw.addr().to_string()], "{v}");
        assert_eq!(inspected(&r.body, "x-custom"), ["one"], "{v}");
        assert_eq!(inspected(&r.body, "x-forwarded-proto"), ["http"], "{v}");

        // HTTP/1.1 on the same listener.
        let r = gw.get("/bytes/5");
        assert_eq!((r.status(), r.body.as_slice()), (200, &b"abcde"[..]));
        // The access log tells the two apart.
        let lines = wait_until("the access log lines", Duration::from_secs(5), Duration::from_millis(50), || {
            let l = gw.access_log_lines();
            (l.len() >= 4).then_some(l)
        });
        let protocols: Vec<&str> = lines.iter().map(|l| l["protocol"].as_str().unwrap_or("?")).collect();
        assert_eq!(protocols, ["HTTP/2", "HTTP/2", "HTTP/2", "HTTP/1.1"], "{lines:?}");
    }
}

both_drivers! {
    /// curl `--http2` over TLS: ALPN settles on h2 and the exchange is HTTP/2; the upstream hears
    /// `x-forwarded-proto: https`; a 300 KB POST is echoed; `--http1.1` on the same listener
    /// settles on http/1.1.
    fn curl_over_tls_alpn_h2(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, &tls_yaml(&pki));
        let r = curl_tls(&pki, gw.addr(), "--http2", "/inspect", &[]);
        assert!(r.stderr.contains("ALPN: server accepted h2"), "{}", r.stderr);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        assert_eq!(inspected(&r.body, "x-forwarded-proto"), ["https"]);

        let dir = TempDir::new("post");
        let file = dir.path().join("body");
        let data = random_bytes(300_000, 11);
        std::fs::write(&file, &data).unwrap();
        let r = curl_tls(&pki, gw.addr(), "--http2", "/echo", &["--data-binary", &format!("@{}", file.display())]);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        assert!(r.body == data, "POST echo differs ({} bytes back)", r.body.len());

        let r = curl_tls(&pki, gw.addr(), "--http1.1", "/bytes/3", &[]);
        assert!(r.stderr.contains("ALPN: server accepted http/1.1"), "{}", r.stderr);
        assert_eq!((r.code, r.version.as_str(), r.body.as_slice()), (200, "1.1", &b"abc"[..]));
    }
}

both_drivers! {
    /// `http2: { enabled: false }`: TLS offers only http/1.1 (curl `--http2` gets HTTP/1.1), and
    /// a cleartext h2 preface is not taken for HTTP/2.
    fn http2_disabled(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .listener_yaml(&format!("{}\nhttp2: {{ enabled: false }}", tls_yaml(&pki)))
            .extra_listener("{ name: plain, address: \"127.0.0.2:0\", http2: { enabled: false }, routes: [{ name: p, cluster: mock }] }")
            .cluster("mock", &[mock.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let r = curl_tls(&pki, gw.addr(), "--http2", "/bytes/3", &[]);
        assert_eq!((r.code, r.version.as_str()), (200, "1.1"), "{}", r.stderr);
        // curl fails or gets an HTTP/1.1 answer (a 400): either way not an HTTP/2 exchange.
        let plain = gw.listener("plain");
        let out = run_bounded(
            Command::new("curl")
                .args(["-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_version}"])
                .arg(format!("http://{plain}/bytes/3")),
            Duration::from_secs(30),
        );
        assert_ne!(String::from_utf8_lossy(&out.stdout), "2", "h2 answered with http2 disabled");
        assert_eq!(Client::connect(plain).get("/bytes/3").body, b"abc");
    }
}

both_drivers! {
    /// Streaming over h2: SSE events 200 ms apart arrive one by one (not buffered into one
    /// DATA frame at the end), and a streamed OpenAI chat completion (the mock as provider on an
    /// `ai` route) comes through curl whole, `[DONE]` last; a non-streamed one too.
    fn streaming_over_h2(d) {
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&format!(
                "providers: [{{ name: o, type: openai, base_url: \"http://{}/v1\", keys: [{{ value: sk-test }}] }}]",
                mock.addr()
            ))
            .cluster("mock", &[mock.endpoint()])
            .route("{ name: llm, match: { path: { prefix: /v1/ } }, ai: { models: [{ model: \"*\", targets: [{ provider: o }] }] } }")
            .route("{ name: all, cluster: mock }")
            .start();

        let mut last_err = String::new();
        let mut paced = false;
        // A descheduled test process can read two events at once: the timing may be retried.
        for _ in 0..3 {
            let r = probe(&gw, gw.addr(), None, &["sse", "--path", "/sse?events=5&interval_ms=200"]);
            assert_eq!(r["status"], 200, "{r}");
            assert!(r["content_type"].as_str().unwrap_or("").starts_with("text/event-stream"), "{r}");
            let events = r["events"].as_array().unwrap();
            assert_eq!(events.len(), 6, "{r}");
            assert_eq!(events[5]["data"], "[DONE]", "{r}");
            assert!(r["ended"].as_bool().unwrap(), "{r}");
            let at: Vec<f64> = events.iter().map(|e| e["at_ms"].as_f64().unwrap()).collect();
            if at[5] - at[0] >= 500.0 && at.windows(2).all(|w| w[1] - w[0] >= 80.0) {
                paced = true;
                break;
            }
            last_err = format!("events at {at:?} ms: buffered?");
        }
        assert!(paced, "{last_err}");

        let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"ping"}]}"#;
        let r = curl_h2c(gw.addr(), "/v1/chat/completions", &["-N", "-H", "content-type: application/json", "--data-binary", body]);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        assert!(r.stderr.to_ascii_lowercase().contains("content-type: text/event-stream"), "{}", r.stderr);
        let text = String::from_utf8_lossy(&r.body);
        let datas: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(datas.last(), Some(&"[DONE]"), "{text}");
        assert!(datas.len() > 2, "{text}");
        for d in &datas[..datas.len() - 1] {
            let v: Value = serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"));
            assert_eq!(v["object"], "chat.completion.chunk", "{d}");
        }

        let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}"#;
        let r = curl_h2c(gw.addr(), "/v1/chat/completions", &["-H", "content-type: application/json", "--data-binary", body]);
        assert_eq!((r.code, r.version.as_str()), (200, "2"), "{}", r.stderr);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["object"], "chat.completion", "{v}");
    }
}

both_drivers! {
    /// Flow control towards a slow client: a 64 MiB body read with 64 KiB windows (ours, so the
    /// gateway waits for every WINDOW_UPDATE) arrives whole and byte-exact, and the gateway does
    /// not buffer it meanwhile (peak RSS growth under 32 MiB: the upstream is held back).
    fn flow_control_towards_a_slow_client(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let len = 64u64 << 20;
        let r = probe(&gw, gw.addr(), None, &["get", "--path", &format!("/bytes/{len}"), "--window", "65535", "--check-pattern"]);
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["body_len"], len, "{r}");
        assert_eq!(r["pattern_ok"], true, "{r}");
        let growth = memory_growth(&r, "mem_after");
        assert!(growth < 32 * 1024, "memory grew by {growth} KiB while a slow client read 64 MiB: {r}");
    }
}

both_drivers! {
    /// A client's RST_STREAM (CANCEL) mid-SSE cancels the upstream stream (the mock counts it
    /// aborted), and the connection goes on: the next stream on it is answered.
    fn client_reset_cancels_the_upstream_stream(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let r = probe(&gw, gw.addr(), None, &["sse-cancel", "--path", "/sse?events=50&interval_ms=100", "--events", "2"]);
        assert_eq!(r["status"], 200, "{r}");
        assert!(r.get("ended_early").is_none(), "{r}");
        assert_eq!((r["after"]["status"].as_u64(), r["after"]["body_len"].as_u64()), (Some(200), Some(10)), "{r}");
        assert!(r["goaway"].is_null(), "{r}");
        wait_until("the mock to see the stream aborted", Duration::from_secs(5), Duration::from_millis(50), || {
            (mock.stat("sse_aborted") >= 1).then_some(())
        });
        assert_eq!(mock.stat("sse_completed"), 0);
    }
}

both_drivers! {
    /// Graceful drain with an h2 client: SIGTERM during an SSE stream over h2. The stream gets
    /// every event and `[DONE]`, the client is told GOAWAY with NO_ERROR (so it opens no new
    /// stream there), the connection is closed once the stream is done, and `weir` exits 0.
    fn drain_sends_goaway_and_finishes_the_stream(d) {
        let mock = MockUpstream::start();
        let mut gw = Gateway::new()
            .driver(d)
            .top_yaml("shutdown: { drain_timeout: 20s }")
            .cluster("mock", &[mock.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let (addr, pid) = (gw.addr(), gw.pid());
        let stream = std::thread::spawn(move || {
            probe_at(addr, pid, None, &["sse", "--path", "/sse?events=10&interval_ms=200", "--linger", "10"])
        });
        wait_until("the stream to start", Duration::from_secs(10), Duration::from_millis(20), || {
            (mock.stat("sse_started") >= 1).then_some(())
        });
        gw.sigterm();
        let r = stream.join().unwrap();
        let events = r["events"].as_array().unwrap();
        assert_eq!(events.len(), 11, "{r}");
        assert_eq!(events[10]["data"], "[DONE]", "{r}");
        assert_eq!(r["ended"], true, "{r}");
        assert_eq!(r["goaway"], 0, "no GOAWAY (NO_ERROR) while draining: {r}");
        assert_eq!(r["closed"], true, "the connection was kept open after its stream while draining: {r}");
        let status = gw.wait_exit(Duration::from_secs(15)).unwrap_or_else(|| panic!("weir did not exit after draining:\n{}", gw.stderr()));
        assert!(status.success(), "exit status {status:?}; stderr:\n{}", gw.stderr());
    }
}

/// The figures of an `h2load` run: `(done, succeeded, failed, errored, timeout, 2xx)`.
fn h2load_figures(text: &str) -> Option<(u64, u64, u64, u64, u64, u64)> {
    let req = text.lines().find(|l| l.starts_with("requests:"))?;
    let num = |line: &str, what: &str| -> Option<u64> {
        line.split(',')
            .map(str::trim)
            .map(|p| p.trim_start_matches("requests:").trim())
            .find_map(|p| p.strip_suffix(what)?.trim().parse().ok())
    };
    let codes = text.lines().find(|l| l.starts_with("status codes:"))?;
    let codes = codes.trim_start_matches("status codes:");
    Some((
        num(req, "done")?,
        num(req, "succeeded")?,
        num(req, "failed")?,
        num(req, "errored")?,
        num(req, "timeout")?,
        num(codes, "2xx")?,
    ))
}

fn h2load(args: &[&str], url: &str) -> String {
    let out = run_bounded(
        Command::new("h2load").args(args).arg(url),
        Duration::from_secs(180),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "h2load {args:?} {url}: {text}\n{err}");
    text
}

fn need_h2load() {
    let ok = Command::new("h2load")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "h2load is missing: apt-get install nghttp2-client (tests/run.sh does)"
    );
}

both_drivers! {
    /// `h2load -n 2000 -c 4 -m 10` (cleartext, prior knowledge) and `-n 1000 -c 2 -m 20` over TLS
    /// (ALPN h2), 2 workers: every request done and 2xx, none failed, errored or timed out.
    fn h2load_without_failures(d) {
        need_h2load();
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .cluster("mock", &[mock.endpoint()])
            .route("{ name: all, cluster: mock }")
            .extra_listener(&format!(
                "{{ name: tls, address: \"127.0.0.2:0\", {}, routes: [{{ name: t, cluster: mock }}] }}",
                tls_yaml(&pki)
            ))
            .start();
        let text = h2load(&["-n", "2000", "-c", "4", "-m", "10"], &format!("http://{}/", gw.addr()));
        assert!(text.contains("Application protocol: h2c"), "{text}");
        assert_eq!(h2load_figures(&text), Some((2000, 2000, 0, 0, 0, 2000)), "{text}");
        let tls = gw.listener("tls");
        let text = h2load(&["-n", "1000", "-c", "2", "-m", "20"], &format!("https://{tls}/bytes/1000"));
        assert!(text.contains("Application protocol: h2"), "{text}");
        assert_eq!(h2load_figures(&text), Some((1000, 1000, 0, 0, 0, 1000)), "{text}");
    }
}

both_drivers! {
    /// 300 GETs of up to 70 KB on one connection, as many in flight as the server allows: all
    /// byte-exact, 128 in flight at once. The server advertises the defaults of `http2`
    /// (128 streams, 256 KiB stream window, 16 KiB frames, 32 KiB header list) and opens the
    /// connection window to 1 MiB. Over TLS the same, with 100.
    fn many_streams_on_one_connection(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .access_log(false)
            .cluster("mock", &[mock.endpoint()])
            .route("{ name: all, cluster: mock }")
            .extra_listener(&format!(
                "{{ name: tls, address: \"127.0.0.2:0\", {}, routes: [{{ name: t, cluster: mock }}] }}",
                tls_yaml(&pki)
            ))
            .start();
        let r = probe(&gw, gw.addr(), None, &["streams", "--count", "300"]);
        assert_eq!(r["ok"], 300, "{r}");
        assert_eq!(r["max_in_flight"], 128, "{r}");
        let s = &r["remote_settings"];
        assert_eq!(s["max_concurrent_streams"], 128, "{r}");
        assert_eq!(s["initial_window_size"], 256 * 1024, "{r}");
        assert_eq!(s["max_header_list_size"], 32 * 1024, "{r}");
        // 16 KiB is the protocol's default: advertising it is optional.
        assert!(s.get("max_frame_size").is_none_or(|v| v == 16384), "{r}");
        assert_eq!(r["connection_window"], 1 << 20, "{r}");
        assert!(r["goaway"].is_null(), "{r}");

        let r = probe(&gw, gw.listener("tls"), Some(&pki), &["streams", "--count", "100"]);
        assert_eq!(r["ok"], 100, "{r}");
    }
}

both_drivers! {
    /// `max_concurrent_streams: 8` (and a 1 MiB stream window) are advertised, and 20 requests
    /// opened at once after the SETTINGS exchange get 8 answers and 12 stream errors
    /// (REFUSED_STREAM or PROTOCOL_ERROR, RFC 9113 §5.1.2); the connection stays up.
    fn stream_limit_is_enforced(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "http2: { max_concurrent_streams: 8, initial_stream_window: 1MiB }");
        let r = probe(&gw, gw.addr(), None, &["refused", "--count", "20", "--path", "/delay/1000"]);
        assert_eq!(r["remote_settings"]["max_concurrent_streams"], 8, "{r}");
        assert_eq!(r["remote_settings"]["initial_window_size"], 1 << 20, "{r}");
        assert_eq!((r["ok"].as_u64(), r["refused"].as_u64()), (Some(8), Some(12)), "{r}");
        assert!(r["goaway"].is_null(), "{r}");
        still_serves(&gw);
    }
}

both_drivers! {
    /// Rapid reset (CVE-2023-44487): 1000 × (HEADERS, RST_STREAM) in a burst. The gateway
    /// closes the connection (GOAWAY) instead of serving the churn: it is closed within 10 s,
    /// fewer than the 1000 requests reached the upstream, memory stayed bounded, and a fresh
    /// connection is served.
    fn rapid_reset_closes_the_connection(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let r = probe(&gw, gw.addr(), None, &["rapid-reset", "--count", "1000", "--path", "/bytes/10"]);
        assert!(r["closed"].as_bool().unwrap(), "the connection survived 1000 rapid resets: {r}");
        let upstream = mock.stat("requests");
        assert!(upstream < 1000, "{upstream} requests reached the upstream: {r}");
        assert!(memory_growth(&r, "mem_after") < MEMORY_BOUND_KIB, "{r}");
        eprintln!("rapid reset: {r}; upstream requests {upstream}");
        still_serves(&gw);
    }
}

both_drivers! {
    /// CONTINUATION flood: HEADERS without END_HEADERS, then 16 KB CONTINUATION frames without
    /// end. The connection is closed long before 16 MiB were written (the header list limit is
    /// 32 KiB), memory stays bounded, and a fresh connection is served.
    fn continuation_flood_is_cut_off(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let r = probe(&gw, gw.addr(), None, &["continuation-flood", "--max-bytes", &(64u64 << 20).to_string()]);
        eprintln!("continuation flood: {r}");
        assert!(r["closed"].as_bool().unwrap() || !r["goaway"].is_null(), "not closed: {r}");
        assert!(!r["stalled"].as_bool().unwrap() || r["closed"].as_bool().unwrap(), "{r}");
        assert!(r["sent_bytes"].as_u64().unwrap() < 16 << 20, "{r}");
        assert!(memory_growth(&r, "mem_after") < MEMORY_BOUND_KIB, "{r}");
        still_serves(&gw);
    }
}

/// A SETTINGS or PING flood with nothing read back: the gateway closes the connection, or stops
/// reading it, or keeps answering with bounded memory; meanwhile (one worker) a fresh
/// connection is served.
fn flood_is_bounded(d: Driver, command: &str) {
    let mock = MockUpstream::start();
    let gw = proxy_to(d, &mock, "");
    let r = probe(
        &gw,
        gw.addr(),
        None,
        &[
            command,
            "--count",
            "2000000",
            "--flood-time",
            "10",
            "--probe-path",
            "/bytes/10",
        ],
    );
    assert_eq!(
        r["probe"]["status"], 200,
        "the worker did not serve a fresh connection during the flood: {r}"
    );
    assert_eq!(r["probe"]["body_len"], 10, "{r}");
    let growth = memory_growth(&r, "mem_after");
    assert!(
        growth < MEMORY_BOUND_KIB,
        "memory grew by {growth} KiB: {r}"
    );
    // Whatever it chose, the connection is not left in a state that is neither closed nor
    // answering: closed, GOAWAY, or a PING of ours still answered.
    let closed = r["closed"].as_bool().unwrap() || !r["goaway"].is_null();
    assert!(closed || r["alive_after"] == true, "{r}");
    eprintln!("{command}: {r}");
    still_serves(&gw);
}

both_drivers! {
    /// SETTINGS flood: 2 million SETTINGS frames (or 10 s of them), none of the ACKs read.
    fn settings_flood_is_bounded(d) {
        flood_is_bounded(d, "settings-flood");
    }
}

both_drivers! {
    /// PING flood: 2 million PINGs (or 10 s of them), none of the ACKs read.
    fn ping_flood_is_bounded(d) {
        flood_is_bounded(d, "ping-flood");
    }
}

both_drivers! {
    /// A header list of 40 KB, over the advertised 32 KiB `max_header_list_size`: refused (431,
    /// a stream reset, or the connection closed). If the connection stays open, a request with
    /// 8 KB of headers on it is still answered (the HPACK state stayed in step), and so is one on
    /// a fresh connection.
    fn oversized_header_list_is_refused(d) {
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "");
        let r = probe(&gw, gw.addr(), None, &["big-headers", "--size", "40000"]);
        eprintln!("big headers: {r}");
        assert_eq!(r["remote_settings"]["max_header_list_size"], 32 * 1024, "{r}");
        let big = &r["big"];
        let refused = big["status"] == 431 || big.get("reset").is_some() || big.get("closed") == Some(&Value::Bool(true)) || big.get("goaway").is_some_and(|g| !g.is_null());
        assert!(refused, "a 40 KB header list was not refused: {r}");
        assert_ne!(big["status"], 200, "{r}");
        if let Some(same) = r.get("small_same_connection") {
            assert_eq!(same["status"], 200, "{r}");
        }
        assert_eq!(r["small"]["status"], 200, "{r}");
        // The small ones, and the `/stats` request that reads the counter (it counts itself).
        let want = 1 + u64::from(r.get("small_same_connection").is_some()) + 1;
        assert_eq!(mock.stat("requests"), want, "the big one reached the upstream? {r}");
        still_serves(&gw);
    }
}

/// Reads HTTP/2 frames from `s` until the peer closes: `(type, stream id)` of each, in order.
fn frames_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (Vec<(u8, u32)>, Duration) {
    use std::io::Read;
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    loop {
        assert!(
            start.elapsed() < limit,
            "still open after {limit:?}; frames {frames:?}"
        );
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        }
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], id));
            buf.drain(..9 + len);
        }
    }
    (frames, start.elapsed())
}

both_drivers! {
    /// An h2 connection with no stream open for `timeouts.idle` is told GOAWAY and closed, counted
    /// from the end of its last stream (here one GET, answered first); a connection that never
    /// opened a stream likewise.
    fn idle_connection_gets_goaway(d) {
        use std::io::Write;
        let mock = MockUpstream::start();
        let gw = proxy_to(d, &mock, "timeouts: { idle: 1s }");
        // Preface, empty SETTINGS, then HEADERS (END_STREAM | END_HEADERS) on stream 1:
        // :method GET, :scheme http, :path / (static table), :authority literal.
        let mut block = vec![0x82, 0x86, 0x84, 0x41, 9];
        block.extend_from_slice(b"127.0.0.1");
        let mut req = weir_h2_preface();
        req.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        req.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x5, 0, 0, 0, 1]);
        req.extend_from_slice(&block);
        let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
        s.write_all(&req).unwrap();
        let (frames, took) = frames_until_closed(&mut s, Duration::from_secs(15));
        let answered = frames.iter().position(|&(t, id)| t == 1 && id == 1).expect("a HEADERS answer on stream 1");
        let goaway = frames.iter().position(|&(t, _)| t == 7).unwrap_or_else(|| panic!("no GOAWAY: {frames:?}"));
        assert!(goaway > answered, "GOAWAY before the answer: {frames:?}");
        assert!(took >= Duration::from_millis(900), "closed after {took:?}, before the idle timeout");

        let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
        let mut hello = weir_h2_preface();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        s.write_all(&hello).unwrap();
        let (frames, _) = frames_until_closed(&mut s, Duration::from_secs(15));
        assert!(frames.iter().any(|&(t, _)| t == 7), "no GOAWAY: {frames:?}");
        still_serves(&gw);
    }
}

fn weir_h2_preface() -> Vec<u8> {
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
}
