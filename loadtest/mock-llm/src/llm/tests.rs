#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::http;

#[test]
fn routes_by_path() {
    use Family::*;
    let r = |m: &str, p: &str| route(m, p).map(|r| (r.family, r.op, r.model, r.stream));
    assert_eq!(
        r("POST", "/v1/chat/completions"),
        Some((OpenAi, Op::Chat, None, false))
    );
    assert_eq!(
        r("POST", "/api/paas/v4/chat/completions"),
        Some((OpenAi, Op::Chat, None, false))
    );
    assert_eq!(
        r("POST", "/compatible-mode/v1/completions"),
        Some((OpenAi, Op::Completions, None, false))
    );
    assert_eq!(
        r("POST", "/v1/embeddings"),
        Some((OpenAi, Op::Embeddings, None, false))
    );
    assert_eq!(
        r("POST", "/openai/v1/responses"),
        Some((OpenAi, Op::Responses, None, false))
    );
    assert_eq!(
        r("GET", "/v1/models"),
        Some((OpenAi, Op::Models, None, false))
    );
    assert_eq!(
        r("GET", "/openai/models"),
        Some((Azure, Op::Models, None, false))
    );
    assert_eq!(r("GET", "/v1/chat/completions"), None);
    assert_eq!(
        r("POST", "/openai/deployments/my%20dep/chat/completions"),
        Some((Azure, Op::Chat, Some("my dep".into()), false))
    );
    assert_eq!(
        r("POST", "/openai/deployments/d/embeddings"),
        Some((Azure, Op::Embeddings, Some("d".into()), false))
    );
    assert_eq!(r("POST", "/openai/deployments/d/images"), None);
    assert_eq!(
        r("POST", "/v1/messages"),
        Some((Anthropic, Op::Chat, None, false))
    );
    assert_eq!(
        r("POST", "/v1/messages/count_tokens"),
        Some((Anthropic, Op::CountTokens, None, false))
    );
    assert_eq!(
        r(
            "POST",
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        ),
        Some((Gemini, Op::Chat, Some("gemini-2.0-flash".into()), true))
    );
    assert_eq!(
        r("POST", "/v1beta/models/e:batchEmbedContents").unwrap().1,
        Op::BatchEmbed
    );
    assert_eq!(
        r("POST", "/v1/models/g:countTokens").unwrap().1,
        Op::CountTokens
    );
    assert_eq!(
        r("GET", "/v1beta/models"),
        Some((Gemini, Op::Models, None, false))
    );
    assert_eq!(r("POST", "/v1beta/models/g:unknownAction"), None);
    assert_eq!(
        r("POST", "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-pro:generateContent"),
        Some((Vertex, Op::Chat, Some("gemini-pro".into()), false))
    );
    assert!(
        r(
            "POST",
            "/v1beta1/projects/p/locations/l/publishers/google/models/g:streamGenerateContent"
        )
        .unwrap()
        .3
    );
    assert_eq!(
        r(
            "POST",
            "/v1/projects/p/locations/l/publishers/google/models/g:embedContent"
        ),
        None
    );
    assert_eq!(r("POST", "/token"), Some((Vertex, Op::Token, None, false)));
    assert_eq!(
        r(
            "POST",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse-stream"
        ),
        Some((
            Bedrock,
            Op::Chat,
            Some("arn:aws:bedrock:us-east-1:1:inference-profile/us.x".into()),
            true
        ))
    );
    assert_eq!(
        r("POST", "/model/amazon.titan-embed-text-v2:0/invoke")
            .unwrap()
            .1,
        Op::Invoke
    );
    assert_eq!(r("POST", "/model/m/other"), None);
    assert_eq!(r("POST", "/v2/chat"), Some((Cohere, Op::Chat, None, false)));
    assert_eq!(
        r("POST", "/v2/embed"),
        Some((Cohere, Op::Embeddings, None, false))
    );
    assert_eq!(r("POST", "/echo"), None);
    assert_eq!(r("GET", "/"), None);
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%2Fb%3a"), "a/b:");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz+"), "%zz+");
    assert_eq!(percent_decode_with("a+b%20c", true), "a b c");
}

#[test]
fn records_pace_tokens_after_the_first() {
    let mut r = Records::default();
    r.push(b"a".to_vec());
    r.token(b"b".to_vec());
    r.push(b"c".to_vec());
    r.token(b"d".to_vec());
    let p: Vec<bool> = r.list.iter().map(|r| r.pause).collect();
    assert_eq!(p, [false, false, false, true]);
    assert_eq!(
        sse_event("e", &json!({"a": 1})),
        b"event: e\ndata: {\"a\":1}\n\n"
    );
}

/// Parses `raw` (a head without its blank line) and answers it under `effect` (the process-wide
/// rules are left alone: tests run in parallel).
fn answer_with(raw: &str, body: &str, effect: &Effect) -> Answer {
    let full = format!("{raw}\r\ncontent-length: {}\r\n\r\n", body.len());
    let mut slots = http::header_slots();
    let head = http::parse_head(full.as_bytes(), &mut slots)
        .unwrap()
        .unwrap();
    let route = route(head.method, head.path()).unwrap();
    let parsed: Option<Value> = serde_json::from_slice(body.as_bytes()).ok();
    let key = credential(route.family, &head);
    let req = Request {
        route: &route,
        head: &head,
        body: body.as_bytes(),
        parsed: parsed.as_ref(),
        key: key.as_deref(),
        model: None,
    };
    if let Err(reply) = check_auth(&req) {
        return render(reply, Duration::ZERO, Duration::ZERO, None);
    }
    apply(&Defaults::default(), &req, effect)
}

fn whole(a: &Answer) -> Value {
    match &a.body {
        Body::Whole(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("expected a whole body, got {other:?}"),
    }
}

fn header_of<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn auth_failures_per_provider() {
    let none = Effect::default();
    let a = answer_with("POST /v1/chat/completions HTTP/1.1", "{}", &none);
    assert_eq!(a.status, 401);
    assert!(whole(&a)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("API key"));
    let a = answer_with(
        "POST /openai/deployments/d/chat/completions HTTP/1.1\r\napi-key: k",
        "{}",
        &none,
    );
    assert_eq!(
        (a.status, whole(&a)),
        (
            404,
            json!({"error": {"code": "404", "message": "Resource not found"}})
        )
    );
    let a = answer_with(
        "POST /openai/deployments/d/chat/completions?api-version=2024-10-21 HTTP/1.1",
        "{}",
        &none,
    );
    assert_eq!(
        (a.status, whole(&a)["error"]["code"].clone()),
        (401, json!("401"))
    );
    let a = answer_with(
        "POST /v1/messages HTTP/1.1\r\nanthropic-version: 2023-06-01",
        "{}",
        &none,
    );
    assert_eq!(
        (a.status, whole(&a)["error"]["type"].clone()),
        (401, json!("authentication_error"))
    );
    let a = answer_with("POST /v1/messages HTTP/1.1\r\nx-api-key: k", "{}", &none);
    assert_eq!(
        (a.status, whole(&a)["error"]["type"].clone()),
        (400, json!("invalid_request_error"))
    );
    assert_eq!(whole(&a)["type"], "error");
    let a = answer_with(
        "POST /v1beta/models/g:generateContent HTTP/1.1",
        "{}",
        &none,
    );
    assert_eq!(
        (a.status, whole(&a)["error"]["status"].clone()),
        (403, json!("PERMISSION_DENIED"))
    );
    let a = answer_with("POST /v1/projects/p/locations/l/publishers/google/models/g:generateContent HTTP/1.1\r\nauthorization: Bearer ya29.never-issued", "{}", &none);
    assert_eq!(
        (a.status, whole(&a)["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    let a = answer_with("POST /model/m/converse HTTP/1.1", "{}", &none);
    assert_eq!(a.status, 403);
    assert_eq!(
        header_of(&a, "x-amzn-errortype"),
        Some("UnrecognizedClientException")
    );
    assert!(whole(&a)["message"].is_string());
    let a = answer_with("POST /v2/chat HTTP/1.1", "{}", &none);
    assert_eq!(
        (a.status, whole(&a)),
        (401, json!({"message": "no api key supplied"}))
    );
}

const CHAT: &str = "POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k";
const STREAM_BODY: &str = r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn effects() {
    let effect = |f: &dyn Fn(&mut Effect)| {
        let mut e = Effect::default();
        f(&mut e);
        e
    };
    let a = answer_with(
        CHAT,
        "{}",
        &effect(&|e| {
            e.status = Some(429);
            e.retry_after = Some(7);
        }),
    );
    assert_eq!(a.status, 429);
    assert_eq!(header_of(&a, "retry-after"), Some("7"));
    assert_eq!(whole(&a)["error"]["code"], "rate_limit_exceeded");

    let a = answer_with(
        "POST /v1/messages HTTP/1.1\r\nx-api-key: k\r\nanthropic-version: 1",
        "{}",
        &effect(&|e| e.status = Some(529)),
    );
    assert_eq!(
        (a.status, whole(&a)["error"]["type"].clone()),
        (529, json!("overloaded_error"))
    );

    let a = answer_with(CHAT, STREAM_BODY, &effect(&|e| e.hang = true));
    assert!(matches!(a.body, Body::Hang));

    let a = answer_with(CHAT, "{}", &effect(&|e| e.reset_after_events = Some(0)));
    assert!(matches!(a.body, Body::Close));
    let a = answer_with(
        CHAT,
        STREAM_BODY,
        &effect(&|e| e.reset_after_events = Some(2)),
    );
    assert!(matches!(a.body, Body::Events(_)));
    assert_eq!(a.reset_after, Some(2));

    let a = answer_with(
        CHAT,
        STREAM_BODY,
        &effect(&|e| {
            e.error_after_events = Some(2);
            e.status = Some(503);
        }),
    );
    let Body::Events(records) = &a.body else {
        panic!()
    };
    assert_eq!((a.status, records.len()), (200, 3));
    let last = std::str::from_utf8(&records[2].bytes).unwrap();
    assert!(last.starts_with("data: {\"error\""), "{last}");
    assert!(last.contains("server_error"));

    // The same rule on a whole answer: its status.
    let a = answer_with(
        CHAT,
        "{}",
        &effect(&|e| {
            e.error_after_events = Some(2);
            e.status = Some(503);
        }),
    );
    assert_eq!(a.status, 503);

    let a = answer_with(CHAT, STREAM_BODY, &effect(&|e| e.usage = false));
    let Body::Events(records) = &a.body else {
        panic!()
    };
    assert!(records
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.bytes).contains("usage")));

    let a = answer_with(CHAT, "not json", &Effect::default());
    assert_eq!(
        (a.status, whole(&a)["error"]["type"].clone()),
        (400, json!("invalid_request_error"))
    );
}

#[test]
fn timings_rule_then_header_then_default() {
    let e = Effect {
        ttft_ms: Some(5),
        ..Effect::default()
    };
    let a = answer_with(
        &format!("{CHAT}\r\nx-mock-latency-ms: 9\r\nx-mock-interval-ms: 3"),
        "{}",
        &e,
    );
    assert_eq!(
        (a.ttft, a.interval),
        (Duration::from_millis(5), Duration::from_millis(3))
    );
    let a = answer_with(CHAT, "{}", &Effect::default());
    assert_eq!((a.ttft, a.interval), (Duration::ZERO, Duration::ZERO));
}

#[test]
fn stream_errors_per_provider() {
    let route = |p: &str| super::route("POST", p).unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    assert!(
        text(stream_error(&route("/v1/messages"), "", 529, "m", 3)).starts_with(
            "event: error\ndata: {\"error\":{\"message\":\"m\",\"type\":\"overloaded_error\"}"
        )
    );
    assert!(text(stream_error(&route("/v1/responses"), "", 500, "m", 3))
        .contains("\"sequence_number\":3"));
    assert!(text(stream_error(&route("/v2/chat"), "", 500, "m", 3)).contains("ERROR"));
    let b = stream_error(&route("/model/m/converse-stream"), "", 429, "m", 3);
    let (m, _) = eventstream::decode(&b).unwrap();
    assert_eq!(m.headers[2].1, "exception");
}
