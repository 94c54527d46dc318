//! Cohere's v2 chat and embed endpoints against the real binary.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{concat, Mock};
use serde_json::{json, Value};

const AUTH: (&str, &str) = ("authorization", "Bearer co-test");

#[test]
fn chat_json_and_stream() {
    let mock = Mock::epoll(&[]);
    let body = json!({"model": "command-a-03-2025", "messages": [{"role": "user", "content": "What is an LLM?"}]});
    let v = mock.post_json("/v2/chat", &[AUTH], &body).json();
    assert_eq!(
        v["message"]["content"][0]["text"],
        "Hello from the mock of cohere: you said: What is an LLM?"
    );
    assert_eq!(v["finish_reason"], "COMPLETE");
    assert_eq!(
        v["usage"]["billed_units"],
        json!({"input_tokens": 8, "output_tokens": 12})
    );

    let mut body = body;
    body["stream"] = json!(true);
    let events = mock.post_json("/v2/chat", &[AUTH], &body).sse();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(names[..2], ["message-start", "content-start"]);
    assert_eq!(names[names.len() - 2..], ["content-end", "message-end"]);
    let text = concat(
        events
            .iter()
            .map(|(_, v)| v["delta"]["message"]["content"]["text"].clone()),
    );
    assert_eq!(
        text,
        "Hello from the mock of cohere: you said: What is an LLM?"
    );
    let end = &events.last().unwrap().1["delta"];
    assert_eq!(end["finish_reason"], "COMPLETE");
    assert_eq!(end["usage"]["tokens"]["output_tokens"], 12);
}

#[test]
fn tool_calls_stream() {
    let mock = Mock::epoll(&[]);
    let tools = json!([{"type": "function", "function": {"name": "query_db", "parameters": {
        "type": "object", "properties": {"sql": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["sql", "limit"]}}}]);
    let body = json!({"stream": true, "tools": tools, "messages": [{"role": "user", "content": "count rows"}]});
    let events = mock.post_json("/v2/chat", &[AUTH], &body).sse();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert!(names.contains(&"tool-plan-delta"));
    let start = events
        .iter()
        .find(|(e, _)| e.as_deref() == Some("tool-call-start"))
        .unwrap();
    assert_eq!(
        start.1["delta"]["message"]["tool_calls"]["function"]["name"],
        "query_db"
    );
    let args = concat(
        events
            .iter()
            .filter(|(e, _)| e.as_deref() == Some("tool-call-delta"))
            .map(|(_, v)| v["delta"]["message"]["tool_calls"]["function"]["arguments"].clone()),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"sql": "sample", "limit": 1})
    );
    assert_eq!(
        events.last().unwrap().1["delta"]["finish_reason"],
        "TOOL_CALL"
    );
}

#[test]
fn embed_and_auth() {
    let mock = Mock::epoll(&[]);
    let v = mock
        .post_json("/v2/embed", &[AUTH], &json!({"model": "embed-v4.0", "texts": ["hello world"],
                                                "input_type": "search_query", "embedding_types": ["float"]}))
        .json();
    assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 8);
    assert_eq!(v["meta"]["billed_units"]["input_tokens"], 2);
    let r = mock.post_json("/v2/chat", &[], &json!({"messages": []}));
    assert_eq!(
        (r.status, r.json()),
        (401, json!({"message": "no api key supplied"}))
    );
}
