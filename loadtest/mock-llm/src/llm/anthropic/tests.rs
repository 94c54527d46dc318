#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::llm::testing::{ctx, json as body, pauses, sse};
use crate::llm::Family;

fn tool() -> Value {
    json!({"name": "lookup", "description": "d", "input_schema": {"type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "number"}}, "required": ["q", "n"]}})
}

#[test]
fn reads_requests() {
    let req = json!({"system": [{"type": "text", "text": "sys prompt", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "find it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "found"}]}]}],
        "tools": [tool()], "max_tokens": 50, "thinking": {"type": "enabled", "budget_tokens": 10}});
    let chat = chat_request(&req);
    assert_eq!(chat.tool_result.as_deref(), Some("found"));
    assert_eq!(chat.last_user_text, "find it");
    assert_eq!(chat.tools[0].name, "lookup");
    assert!(chat.thinking);
    // system 4+2, user 4+2, assistant 4+3 (t1 lookup, and no words in {}), user 4+2 (t1 found)
    assert_eq!(chat.input_tokens, 6 + 6 + 6 + 6);
    assert_eq!(chat.max_tokens, Some(50));
}

#[test]
fn message_json() {
    let req = json!({"model": "m-1", "max_tokens": 100, "messages": [{"role": "user", "content": "hey"}]});
    let v = body(&messages(&req, &ctx(Family::Anthropic))).clone();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_mock_7");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from the mock of anthropic: you said: hey"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 9);

    let req = json!({"max_tokens": 100, "tools": [tool()], "thinking": {"type": "enabled"},
                     "messages": [{"role": "user", "content": "go"}]});
    let v = body(&messages(&req, &ctx(Family::Anthropic))).clone();
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][0]["thinking"], "Let me think about: go");
    assert_eq!(v["content"][0]["signature"], reply::SIGNATURE);
    assert_eq!(
        v["content"][1],
        json!({"type": "tool_use", "id": "toolu_mock_0", "name": "lookup",
                                       "input": {"q": "sample", "n": 1}})
    );
    assert_eq!(v["stop_reason"], "tool_use");

    let mut c = ctx(Family::Anthropic);
    c.usage = false;
    let req = json!({"max_tokens": 2, "messages": [{"role": "user", "content": "go"}]});
    let v = body(&messages(&req, &c)).clone();
    assert!(v.get("usage").is_none());
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["content"][0]["text"], "Hello from");
}

#[test]
fn stream_event_sequence() {
    let req = json!({"stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "hey"}]});
    let reply = messages(&req, &ctx(Family::Anthropic));
    let events = sse(&reply);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    let mut want = vec!["message_start", "content_block_start", "ping"];
    want.extend(["content_block_delta"; 9]);
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, want);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_deref().unwrap());
    }
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 5);
    assert_eq!(events[0].1["message"]["usage"]["output_tokens"], 1);
    assert_eq!(events[0].1["message"]["content"], json!([]));
    let text: String = events[3..12]
        .iter()
        .map(|(_, v)| {
            assert_eq!(v["delta"]["type"], "text_delta");
            v["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the mock of anthropic: you said: hey");
    let delta = &events[13].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 9);
    assert_eq!(pauses(&reply).iter().filter(|&&p| p).count(), 8);
}

#[test]
fn stream_thinking_and_tools() {
    let req = json!({"stream": true, "max_tokens": 100, "tools": [tool(), tool()],
                     "thinking": {"type": "enabled", "budget_tokens": 64},
                     "messages": [{"role": "user", "content": "parallel lookups"}]});
    let events = sse(&messages(&req, &ctx(Family::Anthropic)));
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_start"))
        .map(|(_, v)| &v["content_block"])
        .collect();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0]["type"], "thinking");
    assert_eq!(starts[1]["type"], "tool_use");
    assert_eq!(starts[2]["id"], "toolu_mock_1");
    let deltas = |index: u64, kind: &str, field: &str| -> String {
        events
            .iter()
            .filter(|(_, v)| v["type"] == "content_block_delta" && v["index"] == index)
            .filter(|(_, v)| v["delta"]["type"] == kind)
            .map(|(_, v)| v["delta"][field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        deltas(0, "thinking_delta", "thinking"),
        "Let me think about: parallel lookups"
    );
    assert_eq!(deltas(0, "signature_delta", "signature"), reply::SIGNATURE);
    for i in [1, 2] {
        let input: Value =
            serde_json::from_str(&deltas(i, "input_json_delta", "partial_json")).unwrap();
        assert_eq!(input, json!({"q": "sample", "n": 1}));
    }
    let md = events
        .iter()
        .find(|(e, _)| e.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(md.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[2].0.as_deref(), Some("ping"));
}

#[test]
fn count_tokens_and_errors() {
    let req = json!({"system": "one two", "messages": [{"role": "user", "content": "three"}]});
    assert_eq!(body(&count_tokens(&req)), &json!({"input_tokens": 6 + 5}));
    assert_eq!(
        error_body(529, "Overloaded"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(error_body(429, "x")["error"]["type"], "rate_limit_error");
    assert_eq!(
        error_body(401, "x")["error"]["type"],
        "authentication_error"
    );
    assert_eq!(error_body(503, "x")["error"]["type"], "api_error");
}
