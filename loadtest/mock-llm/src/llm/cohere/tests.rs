#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::llm::testing::{ctx, json as body, sse};
use crate::llm::Family;

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}})
}

#[test]
fn chat_json() {
    let req = json!({"model": "command-r", "messages": [
        {"role": "system", "content": "be kind"}, {"role": "user", "content": [{"type": "text", "text": "hello"}]}]});
    let v = body(&chat(&req, &ctx(Family::Cohere))).clone();
    assert_eq!(v["finish_reason"], "COMPLETE");
    assert_eq!(
        v["message"]["content"][0]["text"],
        "Hello from the mock of cohere: you said: hello"
    );
    assert_eq!(
        v["usage"]["tokens"],
        json!({"input_tokens": 11, "output_tokens": 9})
    );
    assert_eq!(v["usage"]["billed_units"], v["usage"]["tokens"]);

    let req = json!({"messages": [{"role": "user", "content": "search"}], "tools": [tool("web")]});
    let v = body(&chat(&req, &ctx(Family::Cohere))).clone();
    assert_eq!(v["finish_reason"], "TOOL_CALL");
    assert_eq!(v["message"]["tool_plan"], "I will call web.");
    let call = &v["message"]["tool_calls"][0];
    assert_eq!(call["id"], "web_mock_0");
    assert_eq!(call["function"]["arguments"], r#"{"q":"sample"}"#);
    // 4 plan tokens + 4 fragments of {"q":"sample"} (14 chars).
    assert_eq!(v["usage"]["tokens"]["output_tokens"], 4 + 4);

    let req = json!({"tools": [tool("web")], "messages": [
        {"role": "user", "content": "search"},
        {"role": "assistant", "tool_calls": [{"id": "web_mock_0", "type": "function",
            "function": {"name": "web", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "web_mock_0",
         "content": [{"type": "document", "document": {"data": "{\"hits\":2}"}}]}]});
    let v = body(&chat(&req, &ctx(Family::Cohere))).clone();
    assert_eq!(
        v["message"]["content"][0]["text"],
        r#"tool result: {"hits":2}"#
    );
}

#[test]
fn stream_events() {
    let req = json!({"stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let events = sse(&chat(&req, &ctx(Family::Cohere)));
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    let mut want = vec!["message-start", "content-start"];
    want.extend(["content-delta"; 9]);
    want.extend(["content-end", "message-end"]);
    assert_eq!(names, want);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_deref().unwrap());
    }
    let text: String = events[2..11]
        .iter()
        .map(|(_, v)| {
            v["delta"]["message"]["content"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the mock of cohere: you said: hello");
    let end = &events[12].1["delta"];
    assert_eq!(end["finish_reason"], "COMPLETE");
    assert_eq!(end["usage"]["billed_units"]["output_tokens"], 9);

    let req = json!({"stream": true, "tools": [tool("a"), tool("b")],
                     "messages": [{"role": "user", "content": "parallel"}]});
    let events = sse(&chat(&req, &ctx(Family::Cohere)));
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "tool-call-start").count(), 2);
    assert_eq!(names.iter().filter(|n| **n == "tool-call-end").count(), 2);
    let plan: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("tool-plan-delta"))
        .map(|(_, v)| {
            v["delta"]["message"]["tool_plan"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(plan, "I will call a and b.");
    let args: String = events
        .iter()
        .filter(|(_, v)| v["type"] == "tool-call-delta" && v["index"] == 1)
        .map(|(_, v)| {
            v["delta"]["message"]["tool_calls"]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(args, r#"{"q":"sample"}"#);
    assert_eq!(
        events.last().unwrap().1["delta"]["finish_reason"],
        "TOOL_CALL"
    );
}

#[test]
fn embed_and_errors() {
    let req = json!({"model": "embed-v4.0", "texts": ["a b", "c"], "input_type": "search_document",
                     "embedding_types": ["float"], "output_dimension": 5});
    let v = body(&embed(&req, &ctx(Family::Cohere))).clone();
    assert_eq!(v["embeddings"]["float"].as_array().unwrap().len(), 2);
    assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 5);
    assert_eq!(v["meta"]["billed_units"]["input_tokens"], 3);
    assert_eq!(v["response_type"], "embeddings_by_type");
    let v = body(&embed(
        &json!({"inputs": [{"content": [{"type": "text", "text": "x y"}]}]}),
        &ctx(Family::Cohere),
    ))
    .clone();
    assert_eq!(v["texts"], json!(["x y"]));
    assert!(matches!(
        embed(&json!({}), &ctx(Family::Cohere)),
        Reply::Status { status: 400, .. }
    ));
    assert_eq!(error_body("bad"), json!({"message": "bad"}));
    let e = String::from_utf8(stream_error("boom")).unwrap();
    assert!(e.starts_with("event: message-end\ndata: "));
    assert!(e.contains(r#""finish_reason":"ERROR""#));
}
