//! OpenAI, OpenAI-compatible and Azure OpenAI endpoints against the real binary.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{concat, Mock};
use serde_json::{json, Value};

const AUTH: (&str, &str) = ("authorization", "Bearer sk-test-1");

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn weather_tools() -> Value {
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}, "celsius": {"type": "boolean"}},
            "required": ["city", "celsius"]}}})
    };
    json!([tool("get_weather"), tool("get_forecast")])
}

#[test]
fn chat_completions_json_and_stream() {
    let mock = Mock::epoll(&[]);
    // Any path ending in /chat/completions: DeepSeek, Zhipu, DashScope compatible mode...
    for path in [
        "/v1/chat/completions",
        "/api/paas/v4/chat/completions",
        "/compatible-mode/v1/chat/completions",
    ] {
        let r = mock.post_json(
            path,
            &[AUTH],
            &json!({"model": "deepseek-chat", "messages": user("What is Rust?")}),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["model"], "deepseek-chat");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello from the mock of openai: you said: What is Rust?"
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18})
        );
    }

    let r = mock.post_json(
        "/v1/chat/completions",
        &[AUTH],
        &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": user("hi")}),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let events = r.sse();
    let n = events.len();
    assert_eq!(events[n - 1].1, "[DONE]");
    assert_eq!(events[n - 2].1["choices"], json!([]));
    assert_eq!(events[n - 2].1["usage"]["completion_tokens"], 9);
    let text = concat(
        events[..n - 2]
            .iter()
            .map(|(_, v)| v["choices"][0]["delta"]["content"].clone()),
    );
    assert_eq!(text, "Hello from the mock of openai: you said: hi");

    // Without include_usage: no usage anywhere.
    let r = mock.post_json(
        "/v1/chat/completions",
        &[AUTH],
        &json!({"stream": true, "messages": user("hi")}),
    );
    let events = r.sse();
    assert!(events.iter().all(|(_, v)| v.get("usage").is_none()));
    assert_eq!(
        events[events.len() - 2].1["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn chat_tool_calls_round_trip() {
    let mock = Mock::epoll(&[]);
    let r = mock.post_json(
        "/v1/chat/completions",
        &[AUTH],
        &json!({"stream": true, "tools": weather_tools(), "messages": user("weather in parallel please")}),
    );
    let events = r.sse();
    let mut args = vec![String::new(); 2];
    for (_, v) in &events[..events.len() - 1] {
        for c in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            args[c["index"].as_u64().unwrap() as usize]
                .push_str(c["function"]["arguments"].as_str().unwrap());
        }
    }
    for a in &args {
        assert_eq!(
            serde_json::from_str::<Value>(a).unwrap(),
            json!({"city": "sample", "celsius": true})
        );
    }
    assert_eq!(
        events[events.len() - 2].1["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The tool's result comes back: the reply quotes it.
    let messages = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"sample\",\"celsius\":true}"}}]},
        {"role": "tool", "tool_call_id": "call_mock_0", "content": "{\"temp\": 21}"}]);
    let v = mock
        .post_json(
            "/v1/chat/completions",
            &[AUTH],
            &json!({"tools": weather_tools(), "messages": messages}),
        )
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "tool result: {\"temp\": 21}"
    );
}

#[test]
fn completions_embeddings_responses_models() {
    let mock = Mock::epoll(&[]);
    let v = mock
        .post_json(
            "/v1/completions",
            &[AUTH],
            &json!({"model": "i", "prompt": "Say this"}),
        )
        .json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["text"],
        "Hello from the mock of openai: you said: Say this"
    );
    let r = mock.post_json(
        "/v1/completions",
        &[AUTH],
        &json!({"prompt": "x", "stream": true}),
    );
    let events = r.sse();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert_eq!(
        concat(events.iter().map(|(_, v)| v["choices"][0]["text"].clone())),
        "Hello from the mock of openai: you said: x"
    );

    let v = mock
        .post_json(
            "/v1/embeddings",
            &[AUTH],
            &json!({"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 16}),
        )
        .json();
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 16);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let again = mock
        .post_json(
            "/v1/embeddings",
            &[AUTH],
            &json!({"input": "a b", "dimensions": 16}),
        )
        .json();
    assert_eq!(again["data"][0]["embedding"], v["data"][0]["embedding"]);

    let r = mock.post_json(
        "/v1/responses",
        &[AUTH],
        &json!({"model": "gpt-4.1", "input": "hello", "stream": true}),
    );
    let events = r.sse();
    assert_eq!(events[0].0.as_deref(), Some("response.created"));
    let (last, done) = events.last().unwrap();
    assert_eq!(last.as_deref(), Some("response.completed"));
    assert_eq!(done["response"]["usage"]["output_tokens"], 9);
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "Hello from the mock of openai: you said: hello"
    );
    let deltas = concat(
        events
            .iter()
            .filter(|(e, _)| e.as_deref() == Some("response.output_text.delta"))
            .map(|(_, v)| v["delta"].clone()),
    );
    assert_eq!(deltas, "Hello from the mock of openai: you said: hello");
    assert!(!r.text().contains("[DONE]"));
    let v = mock
        .post_json("/v1/responses", &[AUTH], &json!({"input": "hello"}))
        .json();
    assert_eq!(v["status"], "completed");

    let r = mock.request("GET", "/v1/models", &[AUTH], b"");
    assert_eq!(r.json()["object"], "list");
}

#[test]
fn auth_is_required() {
    let mock = Mock::epoll(&[]);
    for path in [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/completions",
    ] {
        let r = mock.post_json(path, &[], &json!({"input": "x"}));
        assert_eq!(r.status, 401, "{path}");
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error");
        assert!(e.get("param").is_some());
    }
    assert_eq!(mock.get("/v1/models").status, 401);
    let r = mock.post("/v1/chat/completions", &[AUTH], "{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn azure_deployments() {
    let mock = Mock::epoll(&[]);
    let path = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";
    let r = mock.post_json(
        path,
        &[("api-key", "az-1")],
        &json!({"messages": user("hi")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "gpt4o-prod");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock of azure: you said: hi"
    );
    assert!(v["prompt_filter_results"].is_array());

    let r = mock.post_json(
        path,
        &[("api-key", "az-1")],
        &json!({"stream": true, "messages": user("hi")}),
    );
    let events = r.sse();
    assert_eq!(events[0].1["choices"], json!([]));
    assert!(events[0].1["prompt_filter_results"].is_array());

    let r = mock.post_json(
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        &[("authorization", "Bearer entra-token")],
        &json!({"input": "x"}),
    );
    assert_eq!(r.json()["model"], "emb");

    let r = mock.post_json(
        "/openai/deployments/gpt4o-prod/chat/completions",
        &[("api-key", "az-1")],
        &json!({}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": {"code": "404", "message": "Resource not found"}})
        )
    );
    let r = mock.post_json(path, &[], &json!({}));
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, json!("401"))
    );

    // The model list (the gateway's key probe).
    let r = mock.request(
        "GET",
        "/openai/models?api-version=2024-10-21",
        &[("api-key", "az-1")],
        b"",
    );
    assert_eq!((r.status, r.json()["object"].clone()), (200, json!("list")));

    let log = mock.requests();
    assert_eq!(log[0]["provider"], "azure");
    assert_eq!(log[0]["model"], "gpt4o-prod");
    assert_eq!(log[0]["key"], "az-1");
    assert_eq!(log[2]["key"], "entra-token");
}
