//! The in-process `mock` provider: canned answers in the OpenAI format — streamed token by token
//! with a pause between tokens, with usage counted by the real tokenizer — so the quickstart
//! answers with no key and no other process. Its answers flow through the same shapers as a real
//! provider's, so an Anthropic client gets exact Anthropic framing.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use weir_config::MockOptions;

use crate::estimate;

/// What the mock answers: a status, and the body in pieces written `interval` apart.
#[derive(Debug)]
pub struct MockAnswer {
    /// HTTP status.
    pub status: u16,
    /// `content-type`.
    pub content_type: &'static str,
    /// Body pieces (one SSE event each when streaming, one piece otherwise).
    pub pieces: Vec<Vec<u8>>,
    /// Pause between pieces.
    pub interval: Duration,
}

/// Answers a call the adapter addressed to the mock: `path` is its API suffix.
pub fn answer(path: &str, body: &[u8], opts: &MockOptions, now: SystemTime) -> MockAnswer {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(400, &format!("invalid JSON: {e}")),
    };
    let created = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if path.ends_with("/embeddings") {
        embeddings(&req, body)
    } else if path.ends_with("/count_tokens") {
        json_answer(json!({"input_tokens": estimate::prompt_tokens(body)}))
    } else {
        chat(&req, body, opts, created)
    }
}

fn error(status: u16, message: &str) -> MockAnswer {
    json_answer_status(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

fn json_answer(v: Value) -> MockAnswer {
    json_answer_status(200, v)
}

fn json_answer_status(status: u16, v: Value) -> MockAnswer {
    MockAnswer {
        status,
        content_type: "application/json",
        pieces: vec![v.to_string().into_bytes()],
        interval: Duration::ZERO,
    }
}

fn last_user_text(req: &Value) -> String {
    let msgs = req.get("messages").and_then(Value::as_array);
    let last = msgs.and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    let content = last.map(|m| &m["content"]);
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Sample arguments from a JSON schema: each required property gets a value of its type.
fn sample_arguments(schema: &Value) -> String {
    let mut args = serde_json::Map::new();
    let props = schema.get("properties").and_then(Value::as_object);
    if let (Some(props), Some(required)) = (props, schema.get("required").and_then(Value::as_array))
    {
        for name in required.iter().filter_map(Value::as_str) {
            let v = match props
                .get(name)
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
            {
                Some("string") => json!("sample"),
                Some("number") | Some("integer") => json!(1),
                Some("boolean") => json!(true),
                _ => Value::Null,
            };
            args.insert(name.to_string(), v);
        }
    }
    Value::Object(args).to_string()
}

fn chat(req: &Value, body: &[u8], opts: &MockOptions, created: u64) -> MockAnswer {
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let prompt = estimate::prompt_tokens(body);
    let last_is_tool = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    let tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|_| !last_is_tool && req["tool_choice"] != "none")
        .map(|t| {
            let f = &t["function"];
            (
                f["name"].as_str().unwrap_or("tool").to_string(),
                sample_arguments(&f["parameters"]),
            )
        });
    let text = match (&tool, &opts.reply) {
        (Some(_), _) => String::new(),
        (None, Some(r)) => r.clone(),
        (None, None) => {
            let said: String = last_user_text(req).chars().take(60).collect();
            format!("Hello from Weir's built-in mock provider. You said: {said}")
        }
    };
    let completion = match &tool {
        Some((name, args)) => estimate::completion_tokens(&[name, args]),
        None => estimate::count(&text),
    };
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    let id = format!("chatcmpl-mock{:016x}", fastrand::u64(..));
    let finish = if tool.is_some() { "tool_calls" } else { "stop" };
    if !stream {
        let message = match &tool {
            Some((name, args)) => json!({
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_mock0", "type": "function",
                                "function": {"name": name, "arguments": args}}]
            }),
            None => json!({"role": "assistant", "content": text}),
        };
        return json_answer(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
            "usage": usage,
        }));
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        let v = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        sse(&v)
    };
    let mut pieces = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    match &tool {
        Some((name, args)) => {
            pieces.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_mock0", "type": "function",
                                       "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            let chars: Vec<char> = args.chars().collect();
            for part in chars.chunks(8) {
                let s: String = part.iter().collect();
                pieces.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": s}}]}),
                    None,
                ));
            }
        }
        None => {
            for t in estimate::split(&text) {
                pieces.push(chunk(json!({"content": t}), None));
            }
        }
    }
    pieces.push(chunk(json!({}), Some(finish)));
    // The adapter always asks for the usage chunk; the shaper hides it from clients that did not.
    if req["stream_options"]["include_usage"] == true {
        pieces.push(sse(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage,
        })));
    }
    pieces.push(b"data: [DONE]\n\n".to_vec());
    MockAnswer {
        status: 200,
        content_type: "text/event-stream",
        pieces,
        interval: opts.token_interval.get(),
    }
}

fn sse(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

fn embeddings(req: &Value, body: &[u8]) -> MockAnswer {
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.to_string()).collect(),
        _ => return error(400, "`input` must be a string or an array"),
    };
    let dims = req["dimensions"].as_u64().unwrap_or(8).clamp(1, 4096) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            // A deterministic unit vector from the text, so equal inputs embed equally.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            let mut v = Vec::with_capacity(dims);
            for b in text.bytes().chain(std::iter::repeat_n(0, dims)) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                if v.len() < dims && b == 0 {
                    v.push(((h >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0);
                }
            }
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
                .max(f64::EPSILON);
            let v: Vec<f64> = v.iter().map(|x| x / norm).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens = estimate::prompt_tokens(body).saturating_sub(3);
    json_answer(json!({
        "object": "list", "data": data, "model": req["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_tokens_with_usage() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]}"#;
        let a = answer(
            "/chat/completions",
            body,
            &MockOptions::default(),
            SystemTime::now(),
        );
        assert_eq!(a.status, 200);
        let text = String::from_utf8(a.pieces.concat()).expect("utf8");
        assert!(text.contains("\"usage\""));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(a.pieces.len() > 10, "one event per token");
    }

    #[test]
    fn calls_the_first_tool() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}"#;
        let a = answer(
            "/chat/completions",
            body,
            &MockOptions::default(),
            SystemTime::now(),
        );
        let v: Value = serde_json::from_slice(&a.pieces[0]).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"sample"}"#
        );
    }

    #[test]
    fn embeds_deterministically() {
        let body = br#"{"model":"e","input":["a","b","a"],"dimensions":4}"#;
        let a = answer(
            "/embeddings",
            body,
            &MockOptions::default(),
            SystemTime::now(),
        );
        let v: Value = serde_json::from_slice(&a.pieces[0]).expect("json");
        assert_eq!(v["data"][0]["embedding"], v["data"][2]["embedding"]);
        assert_ne!(v["data"][0]["embedding"], v["data"][1]["embedding"]);
        assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(4));
    }
}
