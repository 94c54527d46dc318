#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::llm::testing::{ctx, json as body, pauses, sse, status};

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"]}}})
}

#[test]
fn reads_chat_requests() {
    let req = json!({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "part"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "it is sunny"},
    ], "tools": [weather_tool()], "functions": [{"name": "legacy"}], "max_tokens": 9});
    let chat = chat_request(&req);
    assert_eq!(chat.last_user_text, "first part");
    assert_eq!(chat.tool_result.as_deref(), Some("it is sunny"));
    let names: Vec<&str> = chat.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["get_weather", "legacy"]);
    assert_eq!(chat.max_tokens, Some(9));
    // 4 per message + words: 2, 2, (c1 f {}) 3, (c1 + 3 words) 4.
    assert_eq!(chat.input_tokens, 16 + 2 + 2 + 3 + 4);
}

#[test]
fn chat_json_text() {
    let req = json!({"model": "m-1", "messages": [{"role": "user", "content": "hi you"}]});
    let reply = chat(&req, &ctx(Family::OpenAi));
    let v = body(&reply);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-mock-7");
    assert_eq!(v["model"], "m-1");
    let choice = &v["choices"][0];
    assert_eq!(
        choice["message"]["content"],
        "Hello from the mock of openai: you said: hi you"
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 10, "total_tokens": 16})
    );
    assert!(v.get("prompt_filter_results").is_none());
}

#[test]
fn chat_json_tool_calls_and_azure() {
    let req =
        json!({"messages": [{"role": "user", "content": "weather"}], "tools": [weather_tool()]});
    let mut c = ctx(Family::Azure);
    c.usage = false;
    let reply = chat(&req, &c);
    let v = body(&reply);
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(msg["tool_calls"][0]["id"], "call_mock_0");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        msg["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"sample","days":1}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v.get("usage").is_none());
    assert_eq!(v["prompt_filter_results"][0]["prompt_index"], 0);
    assert_eq!(v["choices"][0]["content_filter_results"], json!({}));
}

#[test]
fn chat_stream_with_usage_chunk() {
    let req = json!({"stream": true, "stream_options": {"include_usage": true},
                     "messages": [{"role": "user", "content": "hello"}]});
    let reply = chat(&req, &ctx(Family::OpenAi));
    let events = sse(&reply);
    assert!(events.iter().all(|(e, _)| e.is_none()));
    let n = events.len();
    assert_eq!(events[n - 1].1, "[DONE]");
    let usage = &events[n - 2].1;
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 9);
    assert_eq!(usage["usage"]["prompt_tokens"], 5);
    let finish = &events[n - 3].1;
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);
    assert_eq!(events[0].1["choices"][0]["delta"]["role"], "assistant");
    let text: String = events[1..n - 3]
        .iter()
        .map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the mock of openai: you said: hello");
    // Only tokens after the first wait.
    let p = pauses(&reply);
    assert_eq!(p.iter().filter(|&&p| p).count(), 9 - 1);
    assert!(!p[0] && !p[1] && p[2]);
}

#[test]
fn chat_stream_without_usage() {
    let req = json!({"stream": true, "messages": [{"role": "user", "content": "hello"}]});
    for c in [ctx(Family::OpenAi), ctx(Family::Azure)] {
        let events = sse(&chat(&req, &c));
        assert!(events.iter().all(|(_, v)| v.get("usage").is_none()));
        if c.family == Family::Azure {
            assert_eq!(events[0].1["choices"], json!([]));
            assert!(events[0].1["prompt_filter_results"].is_array());
        }
    }
    // include_usage, but a rule dropped the usage.
    let req = json!({"stream": true, "stream_options": {"include_usage": true}, "messages": []});
    let mut c = ctx(Family::OpenAi);
    c.usage = false;
    let events = sse(&chat(&req, &c));
    assert!(events.iter().all(|(_, v)| v.get("usage").is_none()));
}

#[test]
fn chat_stream_parallel_tool_calls() {
    let mut second = weather_tool();
    second["function"]["name"] = json!("get_time");
    let req = json!({"stream": true, "tools": [weather_tool(), second],
                     "messages": [{"role": "user", "content": "both in parallel"}]});
    let events = sse(&chat(&req, &ctx(Family::OpenAi)));
    let mut args = [String::new(), String::new()];
    let mut names = Vec::new();
    for (_, v) in &events[..events.len() - 1] {
        for call in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let k = call["index"].as_u64().unwrap() as usize;
            if let Some(name) = call["function"]["name"].as_str() {
                names.push(name.to_owned());
                assert_eq!(call["id"], format!("call_mock_{k}"));
            }
            args[k].push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(names, ["get_weather", "get_time"]);
    for a in &args {
        assert_eq!(
            serde_json::from_str::<Value>(a).unwrap(),
            json!({"city": "sample", "days": 1})
        );
    }
    let finish = &events[events.len() - 2].1;
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn tool_result_reply() {
    let req = json!({"tools": [weather_tool()], "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "tool", "tool_call_id": "call_mock_0",
         "content": "21 degrees and sunny all over the city of Paris today"}]});
    let v = body(&chat(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "tool result: 21 degrees and sunny all over the city o"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn max_tokens_cut() {
    let req = json!({"max_completion_tokens": 2, "messages": [{"role": "user", "content": "x"}]});
    let v = body(&chat(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn legacy_completions() {
    let req = json!({"model": "davinci", "prompt": "say this"});
    let v = body(&completions(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["text"],
        "Hello from the mock of openai: you said: say this"
    );
    assert_eq!(v["usage"]["prompt_tokens"], 4 + 2);
    let req =
        json!({"prompt": ["a", "b"], "stream": true, "stream_options": {"include_usage": true}});
    let events = sse(&completions(&req, &ctx(Family::OpenAi)));
    let n = events.len();
    let text: String = events[..n - 3]
        .iter()
        .map(|(_, v)| v["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello from the mock of openai: you said: a b");
    assert_eq!(events[n - 3].1["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[n - 2].1["choices"], json!([]));
    assert_eq!(events[n - 2].1["usage"]["completion_tokens"], 10);
    assert_eq!(events[n - 1].1, "[DONE]");
}

#[test]
fn embeddings_float_base64_and_dims() {
    let req = json!({"model": "e", "input": ["one two", "three"]});
    let v = body(&embeddings(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let floats: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(floats, reply::embedding("one two", 8));

    let req = json!({"input": "one two", "dimensions": 4, "encoding_format": "base64"});
    let v = body(&embeddings(&req, &ctx(Family::OpenAi))).clone();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, reply::embedding("one two", 4));

    let v = body(&embeddings(
        &json!({"input": [[1, 2, 3], [4]]}),
        &ctx(Family::OpenAi),
    ))
    .clone();
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    let bad = embeddings(&json!({"input": 5}), &ctx(Family::OpenAi));
    let (code, err) = status(&bad);
    assert_eq!(
        (code, &err["error"]["type"]),
        (400, &json!("invalid_request_error"))
    );
}

#[test]
fn responses_json() {
    let req = json!({"model": "m-1", "instructions": "be nice", "input": "hello there"});
    let v = body(&responses(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "Hello from the mock of openai: you said: hello there"
    );
    assert_eq!(v["usage"]["input_tokens"], 4 + 2 + 4 + 2);
    assert_eq!(v["usage"]["output_tokens"], 10);
    assert_eq!(v["usage"]["total_tokens"], 22);

    let req = json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "go"}]}],
                     "tools": [{"type": "function", "name": "f", "parameters": {
                         "type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]}}]});
    let v = body(&responses(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["output"][0]["type"], "function_call");
    assert_eq!(v["output"][0]["call_id"], "call_mock_0");
    assert_eq!(v["output"][0]["arguments"], r#"{"b":true}"#);

    let req = json!({"input": [{"role": "user", "content": "go"},
                               {"type": "function_call_output", "call_id": "call_mock_0", "output": "done"}],
                     "max_output_tokens": 100});
    let v = body(&responses(&req, &ctx(Family::OpenAi))).clone();
    assert_eq!(v["output"][0]["content"][0]["text"], "tool result: done");
}

#[test]
fn responses_stream_events() {
    let req = json!({"stream": true, "input": "hi"});
    let events = sse(&responses(&req, &ctx(Family::OpenAi)));
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    let n = names.len();
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        names[n - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_deref().unwrap());
        assert_eq!(data["sequence_number"], i);
    }
    let text: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("response.output_text.delta"))
        .map(|(_, v)| v["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello from the mock of openai: you said: hi");
    let done = &events[n - 1].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["output_tokens"], 9);
    assert_eq!(events[0].1["response"]["usage"], Value::Null);

    let req = json!({"stream": true, "input": "hi", "tools": [{"type": "function", "name": "f"}]});
    let events = sse(&responses(&req, &ctx(Family::OpenAi)));
    let args: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("response.function_call_arguments.delta"))
        .map(|(_, v)| v["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{}");
    let req = json!({"stream": true, "input": "hi", "max_output_tokens": 1});
    let events = sse(&responses(&req, &ctx(Family::OpenAi)));
    let (last, data) = events.last().unwrap();
    assert_eq!(last.as_deref(), Some("response.incomplete"));
    assert_eq!(
        data["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn errors_and_models() {
    let v = error_body(429, "slow down");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(error_body(503, "x")["error"]["type"], "server_error");
    assert_eq!(
        azure_error_body(429, "x"),
        json!({"error": {"code": "429", "message": "x"}})
    );
    assert_eq!(models()["data"][0]["object"], "model");
    let e = responses_stream_error(500, "boom", 3);
    let text = String::from_utf8(e).unwrap();
    assert!(text.starts_with("event: error\ndata: "));
    assert!(text.contains(r#""sequence_number":3"#));
}
