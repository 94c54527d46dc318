//! Anthropic's Messages API against the real binary.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{concat, Mock};
use serde_json::{json, Value};

const KEY: (&str, &str) = ("x-api-key", "sk-ant-test");
const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

fn req(extra: Value) -> Value {
    let mut r = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                       "messages": [{"role": "user", "content": "Tell me a joke"}]});
    r.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    r
}

#[test]
fn messages_json_and_count_tokens() {
    let mock = Mock::epoll(&[]);
    let r = mock.post_json(
        "/v1/messages",
        &[KEY, VERSION],
        &req(json!({"system": "You are terse."})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"][0]["text"],
        "Hello from the mock of anthropic: you said: Tell me a joke"
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 7 + 8);
    assert_eq!(v["usage"]["output_tokens"], 12);
    let r = mock.post_json(
        "/v1/messages/count_tokens",
        &[KEY, VERSION],
        &req(json!({"system": "You are terse."})),
    );
    assert_eq!(r.json(), json!({"input_tokens": 15}));
}

#[test]
fn stream_exact_sequence() {
    let mock = Mock::epoll(&[]);
    let r = mock.post_json(
        "/v1/messages",
        &[KEY, VERSION],
        &req(json!({"stream": true})),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    let n = names.len();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert!(names[3..n - 3].iter().all(|e| *e == "content_block_delta"));
    assert_eq!(
        names[n - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text = concat(
        events[3..n - 3]
            .iter()
            .map(|(_, v)| v["delta"]["text"].clone()),
    );
    assert_eq!(
        text,
        "Hello from the mock of anthropic: you said: Tell me a joke"
    );
    assert_eq!(events[n - 2].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[n - 2].1["usage"]["output_tokens"], (n - 6) as u64);
}

#[test]
fn stream_thinking_then_tool_use() {
    let mock = Mock::epoll(&[]);
    let tools = json!([{"name": "get_stock", "input_schema": {"type": "object",
        "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]}}]);
    let body = req(
        json!({"stream": true, "tools": tools, "thinking": {"type": "enabled", "budget_tokens": 512}}),
    );
    let events = mock.post_json("/v1/messages", &[KEY, VERSION], &body).sse();
    let blocks: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_start"))
        .map(|(_, v)| &v["content_block"])
        .collect();
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(
        blocks[1],
        &json!({"type": "tool_use", "id": "toolu_mock_0", "name": "get_stock", "input": {}})
    );
    let of = |kind: &str, field: &str| {
        concat(
            events
                .iter()
                .filter(|(_, v)| v["delta"]["type"] == kind)
                .map(|(_, v)| v["delta"][field].clone()),
        )
    };
    assert_eq!(
        of("thinking_delta", "thinking"),
        "Let me think about: Tell me a joke"
    );
    assert!(!of("signature_delta", "signature").is_empty());
    let input: Value = serde_json::from_str(&of("input_json_delta", "partial_json")).unwrap();
    assert_eq!(input, json!({"ticker": "sample"}));
    let delta = events
        .iter()
        .find(|(e, _)| e.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

    // The tool result comes back as a user message.
    let messages = json!([
        {"role": "user", "content": "price?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_0", "name": "get_stock",
                                           "input": {"ticker": "sample"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_0", "content": "42.10 USD"}]}]);
    let v = mock
        .post_json(
            "/v1/messages",
            &[KEY, VERSION],
            &json!({"model": "c", "max_tokens": 10, "tools": tools, "messages": messages}),
        )
        .json();
    assert_eq!(v["content"][0]["text"], "tool result: 42.10 USD");
}

#[test]
fn header_errors() {
    let mock = Mock::epoll(&[]);
    let r = mock.post_json("/v1/messages", &[VERSION], &req(json!({})));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error",
                                                           "message": "x-api-key header is required"}})
    );
    let r = mock.post_json("/v1/messages", &[KEY], &req(json!({})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    // The model list (the gateway's key probe) shares OpenAI's path: x-api-key makes it Anthropic's.
    let r = mock.request("GET", "/v1/models", &[KEY, VERSION], b"");
    assert_eq!(r.json()["data"][0]["type"], "model");
    assert_eq!(mock.request("GET", "/v1/models", &[KEY], b"").status, 400);
    let log = mock.requests();
    assert_eq!(log[2]["provider"], "anthropic");
    assert_eq!(
        (log[0]["status"].clone(), log[0]["key"].clone()),
        (json!(401), Value::Null)
    );
    assert_eq!(
        (log[1]["status"].clone(), log[1]["key"].clone()),
        (json!(400), json!("sk-ant-test"))
    );
}
