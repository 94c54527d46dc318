//! Scripted behaviour (`/mock/script`), the request log (`/mock/requests`) and the timing flags,
//! against the real binary. Every test starts its own mock: rules and the log are process-wide.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::Mock;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

const OPENAI: (&str, &str) = ("authorization", "Bearer sk-1");
const ANTHROPIC: [(&str, &str); 2] = [("x-api-key", "sk-ant"), ("anthropic-version", "2023-06-01")];

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "one two three"}]})
}

#[test]
fn statuses_times_and_retry_after() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!([{"match": {"path_contains": "/chat/completions"}, "times": 2, "status": 429, "retry_after": 3}]));
    for _ in 0..2 {
        let r = mock.post_json("/v1/chat/completions", &[OPENAI], &chat(false));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(
        mock.post_json("/v1/chat/completions", &[OPENAI], &chat(false))
            .status,
        200
    );

    // Each provider's own error body.
    mock.script(&json!([
        {"match": {"path_contains": "/v1/messages"}, "status": 529},
        {"match": {"path_contains": "generateContent"}, "status": 429},
        {"match": {"path_contains": "/v2/chat"}, "status": 500},
    ]));
    let r = mock.post_json(
        "/v1/messages",
        &ANTHROPIC,
        &json!({"max_tokens": 5, "messages": []}),
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].clone()),
        (529, json!("overloaded_error"))
    );
    assert_eq!(r.json()["type"], "error");
    let r = mock.post_json(
        "/v1beta/models/g:generateContent?key=k",
        &[],
        &json!({"contents": []}),
    );
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (429, json!("RESOURCE_EXHAUSTED"))
    );
    let r = mock.post_json(
        "/v2/chat",
        &[("authorization", "Bearer c")],
        &json!({"messages": []}),
    );
    assert_eq!(r.status, 500);
    assert!(r.json()["message"].is_string());
}

#[test]
fn matching_by_key_and_model_first_rule_wins() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!([
        {"match": {"key": "sk-revoked"}, "status": 401},
        {"match": {"model": "gpt-4o"}, "status": 503, "times": 1},
        {"match": {"model": "gpt-4o"}, "status": 502},
    ]));
    let r = mock.post_json(
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-revoked")],
        &chat(false),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            mock.post_json("/v1/chat/completions", &[OPENAI], &chat(false))
                .status
        })
        .collect();
    assert_eq!(statuses, [503, 502, 502]);
    let mut other = chat(false);
    other["model"] = json!("gpt-4.1");
    assert_eq!(
        mock.post_json("/v1/chat/completions", &[OPENAI], &other)
            .status,
        200
    );

    let live: Vec<Value> = mock.get("/mock/script").json().as_array().unwrap().clone();
    assert_eq!(live.len(), 2);
    assert_eq!(live[1]["match"]["model"], "gpt-4o");
    let r = mock.request("DELETE", "/mock/script", &[], b"");
    assert_eq!(r.json(), json!({"rules": 0}));
    assert_eq!(
        mock.post_json("/v1/chat/completions", &[OPENAI], &chat(false))
            .status,
        200
    );

    // Bad rules are refused whole.
    let r = mock.post("/mock/script", &[], r#"[{"status": 500}, {"stauts": 500}]"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("stauts"));
    assert_eq!(mock.get("/mock/script").json(), json!([]));
}

#[test]
fn reset_after_events() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!([{"match": {"path_contains": "/chat/"}, "reset_after_events": 3}]));
    let mut c = mock.connect();
    c.send_request(
        "POST",
        "/v1/chat/completions",
        &[OPENAI],
        chat(true).to_string().as_bytes(),
    );
    let (status, _) = c.head();
    assert_eq!(status, 200);
    let (chunks, finished) = c.chunks_until_end();
    assert_eq!(chunks.len(), 3);
    assert!(!finished, "the body must not end properly");
    assert!(c.closed());

    // A whole answer: the connection closes before any response.
    let mut c = mock.connect();
    c.send_request(
        "POST",
        "/v1/chat/completions",
        &[OPENAI],
        chat(false).to_string().as_bytes(),
    );
    let mut buf = Vec::new();
    let n = c.reader.read_to_end(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf));
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn hang_until_the_client_gives_up() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!({"match": {"path_contains": "/v1/messages"}, "hang": true, "times": 1}));
    let mut c = mock.connect();
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.send_request(
        "POST",
        "/v1/messages",
        &ANTHROPIC,
        br#"{"max_tokens":5,"messages":[]}"#,
    );
    let t0 = Instant::now();
    let mut b = [0u8; 1];
    let err = c.reader.read(&mut b).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert!(t0.elapsed() >= Duration::from_millis(250));
    drop(c);
    // The rule is spent: the next request is answered.
    let r = mock.post_json(
        "/v1/messages",
        &ANTHROPIC,
        &json!({"max_tokens": 5, "messages": []}),
    );
    assert_eq!(r.status, 200);
    let log = mock.requests();
    assert_eq!(log[0]["status"], Value::Null);
    assert_eq!(log[1]["status"], 200);
}

#[test]
fn error_after_events_and_usage_off() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!([
        {"match": {"path_contains": "/chat/"}, "error_after_events": 2, "times": 1},
        {"match": {"path_contains": "/v1/messages"}, "error_after_events": 1, "status": 529, "times": 1},
        {"usage": false},
    ]));
    let r = mock.post_json("/v1/chat/completions", &[OPENAI], &chat(true));
    let events = r.sse();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].1["error"]["type"], "server_error");
    assert!(!r.text().contains("[DONE]"));

    let body =
        json!({"max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let events = mock.post_json("/v1/messages", &ANTHROPIC, &body).sse();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0.as_deref(), Some("error"));
    assert_eq!(events[1].1["error"]["type"], "overloaded_error");

    // usage: false, for the gateway's estimate path.
    let r = mock.post_json("/v1/chat/completions", &[OPENAI], &chat(true));
    assert!(!r.text().contains("usage"), "{}", r.text());
    assert_eq!(r.sse().last().unwrap().1, "[DONE]");
    let v = mock
        .post_json(
            "/v1/messages",
            &ANTHROPIC,
            &json!({"max_tokens": 50, "messages": []}),
        )
        .json();
    assert!(v.get("usage").is_none());
    let events = mock.post_json("/v1/messages", &ANTHROPIC, &body).sse();
    assert!(events
        .iter()
        .all(|(_, v)| v.get("usage").is_none() && v["message"].get("usage").is_none()));
}

/// Reads a chunked stream, returning the arrival time of each chunk after the request was sent.
fn chunk_times(mock: &Mock, headers: &[(&str, &str)], body: &Value) -> (Duration, Vec<Duration>) {
    let mut c = mock.connect();
    let t0 = Instant::now();
    c.send_request(
        "POST",
        "/v1/chat/completions",
        headers,
        body.to_string().as_bytes(),
    );
    c.head();
    let head_at = t0.elapsed();
    let mut times = Vec::new();
    while c.chunk().is_some() {
        times.push(t0.elapsed());
    }
    (head_at, times)
}

#[test]
fn timings_from_rules_and_headers() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!({"match": {"model": "slow"}, "ttft_ms": 150, "token_interval_ms": 40}));
    let mut body = chat(true);
    body["model"] = json!("slow");
    let (head_at, times) = chunk_times(&mock, &[OPENAI], &body);
    assert!(head_at >= Duration::from_millis(150), "{head_at:?}");
    // 11 tokens: 10 waits between them.
    let total = *times.last().unwrap();
    assert!(total >= Duration::from_millis(150 + 10 * 40), "{total:?}");
    assert!(total < Duration::from_secs(5), "{total:?}");

    // The older per-request headers still work when no rule says otherwise.
    let (head_at, times) = chunk_times(
        &mock,
        &[
            OPENAI,
            ("x-mock-latency-ms", "80"),
            ("x-mock-interval-ms", "0"),
        ],
        &chat(true),
    );
    assert!(head_at >= Duration::from_millis(80));
    assert!(*times.last().unwrap() < Duration::from_secs(2));

    let t0 = Instant::now();
    let mut slow = chat(false);
    slow["model"] = json!("slow");
    assert_eq!(
        mock.post_json("/v1/chat/completions", &[OPENAI], &slow)
            .status,
        200
    );
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[test]
fn command_line_timings() {
    let mock = Mock::epoll(&["--ttft-ms", "100", "--token-interval-ms", "20"]);
    let (head_at, times) = chunk_times(&mock, &[OPENAI], &chat(true));
    assert!(head_at >= Duration::from_millis(100), "{head_at:?}");
    assert!(*times.last().unwrap() >= Duration::from_millis(100 + 10 * 20));
    // The benchmark path is not slowed down.
    let t0 = Instant::now();
    assert_eq!(mock.get("/").body, b"ok");
    assert!(t0.elapsed() < Duration::from_millis(100));
}

#[test]
fn request_log_fields_and_bound() {
    let mock = Mock::epoll(&[]);
    let r = mock.post_json(
        "/v1/chat/completions?trace=1",
        &[OPENAI, ("x-extra", "v")],
        &chat(true),
    );
    assert_eq!(r.status, 200);
    mock.get("/inspect");
    let log = mock.requests();
    assert_eq!(log.len(), 1, "only provider requests are logged");
    let e = &log[0];
    assert_eq!(e["provider"], "openai");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/v1/chat/completions?trace=1");
    assert_eq!(e["model"], "gpt-4o");
    assert_eq!(e["key"], "sk-1");
    assert_eq!(e["stream"], true);
    assert_eq!(e["status"], 200);
    assert_eq!(e["body"], chat(true));
    assert!(e["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-extra", "v"])));

    // Bounded: pipeline 1005 small requests on one connection, keep the last 1000.
    let mut c = mock.connect();
    let one = b"GET /v1/models HTTP/1.1\r\nauthorization: Bearer sk-1\r\n\r\n";
    for _ in 0..5 {
        c.send(&one.repeat(201));
        for _ in 0..201 {
            assert_eq!(c.response().status, 200);
        }
    }
    let log = mock.requests();
    assert_eq!(log.len(), 1000);
    assert!(log.iter().all(|e| e["path"] == "/v1/models"));
    assert_eq!(
        mock.request("DELETE", "/mock/requests", &[], b"").json(),
        json!({"cleared": 1000})
    );
    assert_eq!(mock.requests().len(), 0);
}
