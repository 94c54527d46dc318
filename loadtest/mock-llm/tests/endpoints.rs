//! Starts the real `weir-mock-llm` binary on port 0, on each driver, and talks to it with a raw
//! `std::net::TcpStream` client: the framing itself is under test, so no HTTP client library.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::Mock;
use std::io::Read;
use std::time::{Duration, Instant};

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

fn all_endpoints(driver: &str) {
    let Some(mock) = Mock::start(driver, &[]) else {
        return;
    };

    // GET /, and the id header.
    let r = mock.get("/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("x-mock-id"), Some("test-mock"));
    assert_eq!(r.header("connection"), None);

    // Keep-alive and pipelining: three requests in one write, answers in order.
    let mut c = mock.connect();
    c.send(b"GET / HTTP/1.1\r\n\r\nGET /bytes/5 HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\ncontent-length: 3\r\n\r\nxyz");
    assert_eq!(c.response().body, b"ok");
    assert_eq!(c.response().body, b"abcde");
    let r = c.response();
    assert_eq!(r.body, b"xyz");
    assert_eq!(r.header("x-request-transfer"), Some("length"));
    // ... and the same connection still serves.
    c.send(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());

    // Chunked request body, sent in pieces.
    let mut c = mock.connect();
    c.send(b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b"lo\r\n6;x=y\r\n world\r\n0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("x-received-bytes"), Some("11"));
    assert_eq!(r.header("x-request-transfer"), Some("chunked"));

    // Chunked echo and chunked bodies.
    c.send(b"POST /echo-chunked HTTP/1.1\r\ncontent-length: 4\r\n\r\nabcd");
    let r = c.response();
    assert_eq!(
        (r.header("transfer-encoding"), r.body.as_slice()),
        (Some("chunked"), &b"abcd"[..])
    );
    let r = mock.get("/chunked/100000?chunk=999");
    assert_eq!(r.body.len(), 100_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(k, &b)| b == b'a' + (k % 26) as u8));
    let r = mock.get("/bytes/1000000");
    assert_eq!(r.body.len(), 1_000_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(k, &b)| b == b'a' + (k % 26) as u8));

    // /inspect: method, target, headers as received.
    let mut c = mock.connect();
    c.send(b"DELETE /inspect/x?q=1 HTTP/1.1\r\nX-One: 1\r\nhost: h\r\ncontent-length: 2\r\n\r\nhi");
    let v: serde_json::Value = serde_json::from_slice(&c.response().body).unwrap();
    assert_eq!(v["method"], "DELETE");
    assert_eq!(v["path"], "/inspect/x?q=1");
    assert_eq!(v["headers"][0], serde_json::json!(["X-One", "1"]));
    assert_eq!(v["body_len"], 2);
    assert_eq!(v["http_version"], "1.1");

    // HTTP/1.0 closes; status, 404, bad requests.
    let mut c = mock.connect();
    c.send(b"GET /status/418 HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (418, Some("close")));
    assert!(c.closed());
    assert_eq!(mock.get("/no/such/path").status, 404);
    let mut c = mock.connect();
    c.send(b"POST /echo HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_eq!(c.response().status, 400);

    // Flaky and health switches.
    let codes: Vec<u16> = (0..3)
        .map(|_| mock.get("/flaky/k1?fail=2&status=502").status)
        .collect();
    assert_eq!(codes, [502, 502, 200]);
    assert_eq!(mock.get("/healthz").status, 200);
    let mut c = mock.connect();
    c.send(b"POST /control/health/503 HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(mock.get("/healthz").status, 503);

    // Delay and hang-body.
    let t0 = Instant::now();
    assert_eq!(mock.get("/delay/150").body, b"ok");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let mut c = mock.connect();
    c.send(b"GET /hang-body HTTP/1.1\r\n\r\n");
    let (status, headers) = c.head();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "10".into())));
    let mut five = [0u8; 5];
    c.reader.read_exact(&mut five).unwrap();
    assert_eq!(&five, b"hello");

    // SSE to the end.
    let r = mock.get("/sse?events=3&interval_ms=5&size=64");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].len() + 2, 64);
    assert_eq!(events[3], "data: [DONE]");

    // SSE aborted by the client: noticed from the read side, during the sleep.
    let mut c = mock.connect();
    c.send(b"GET /sse?events=100&interval_ms=1000 HTTP/1.1\r\n\r\n");
    c.head();
    assert!(c.chunk().unwrap().starts_with(b"data: {\"i\":0"));
    let open_before = mock.stats()["connections_open"].as_u64().unwrap();
    drop(c);
    let took = wait_for("sse_aborted", Duration::from_millis(900), || {
        mock.stats()["sse_aborted"] == 1
    });
    eprintln!("{driver}: abort noticed after {took:?}");
    let st = mock.stats();
    assert_eq!(
        (st["sse_started"].as_u64(), st["sse_completed"].as_u64()),
        (Some(2), Some(1))
    );
    // Connections of earlier `/stats` polls may still be closing on the other worker: wait.
    wait_for("connections_open to drop", Duration::from_secs(2), || {
        mock.stats()["connections_open"].as_u64().unwrap() < open_before
    });

    // OpenAI chat completions (every provider endpoint has its own tests in the other files).
    let body = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}]}"#;
    let mut c = mock.connect();
    c.send(format!("POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer sk-test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let r = c.response();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["object"].as_str(), v["model"].as_str()),
        (Some("chat.completion"), Some("gpt-test"))
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock of openai: you said: hello there"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    let body = r#"{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer sk-test\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let r = c.response();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks: Vec<serde_json::Value> = text
        .split_terminator("\n\n")
        .filter_map(|e| serde_json::from_str(e.strip_prefix("data: ")?).ok())
        .collect();
    let finals: Vec<&serde_json::Value> = chunks
        .iter()
        .filter(|v| v["choices"][0]["finish_reason"] == "stop")
        .collect();
    assert_eq!(finals.len(), 1);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);

    let st = mock.stats();
    assert!(st["requests"].as_u64().unwrap() > 20);
    assert!(st["connections_accepted"].as_u64().unwrap() > 10);
}

#[test]
fn epoll_driver() {
    all_endpoints("epoll");
}

#[test]
fn io_uring_driver() {
    all_endpoints("uring");
}
