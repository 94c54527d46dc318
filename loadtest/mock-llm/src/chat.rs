//! The OpenAI-compatible `POST /v1/chat/completions` of the mock.
//!
//! Shapes copy what OpenAI sends (key order included, see `mock_chat.json` and `mock_stream.sse`
//! in the peer benchmark): a `chat.completion` object, or with `"stream": true` a run of
//! `chat.completion.chunk` events ending in `data: [DONE]`. The reply text is fixed, one token per
//! piece of [`PIECES`]; `max_tokens` (or `max_completion_tokens`) cuts it short with
//! `finish_reason: "length"`. Token counts are deterministic so tests can assert on them:
//! prompt tokens = ceil(characters of all message text / 4), at least 1.
//!
//! Not the hot path: the body is parsed with `serde_json` into a `Value`.

use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// The reply, one completion token per piece.
pub const PIECES: [&str; 11] = [
    "Hello",
    "!",
    " This",
    " is",
    " a",
    " mock",
    " reply",
    " from",
    " the",
    " upstream",
    ".",
];

/// What the mock answers to one chat request.
#[derive(Debug)]
pub enum Reply {
    /// A `chat.completion` JSON document (status 200).
    Json(String),
    /// SSE events, each a complete `data: ...\n\n` record, `data: [DONE]` last.
    Stream(Vec<Vec<u8>>),
    /// An OpenAI-style error document with this status.
    Error(u16, String),
}

/// Builds the reply to a chat completion request body.
pub fn reply(body: &[u8]) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return invalid("request body must be a JSON object"),
        Err(e) => return invalid(&format!("invalid JSON body: {e}")),
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-4o-mini");
    let model = serde_json::to_string(model).unwrap_or_else(|_| "\"gpt-4o-mini\"".into());
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let limit = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64)
        .map_or(PIECES.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
    let pieces = &PIECES[..PIECES.len().min(limit)];
    let finish = if pieces.len() < PIECES.len() {
        "length"
    } else {
        "stop"
    };
    let prompt = prompt_tokens(&req);
    let usage = format!(
        "{{\"prompt_tokens\":{prompt},\"completion_tokens\":{},\"total_tokens\":{}}}",
        pieces.len(),
        prompt + pieces.len() as u64
    );
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = "chatcmpl-mock123";

    if !stream {
        let content = serde_json::to_string(&pieces.concat()).unwrap_or_default();
        return Reply::Json(format!(
            "{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"created\":{created},\"model\":{model},\
             \"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{content}}},\
             \"logprobs\":null,\"finish_reason\":\"{finish}\"}}],\"usage\":{usage},\
             \"system_fingerprint\":\"fp_mock\"}}"
        ));
    }

    let chunk = |delta: &str, finish: &str, tail: &str| {
        format!(
            "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\
             \"model\":{model},\"system_fingerprint\":\"fp_mock\",\"choices\":[{{\"index\":0,\
             \"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{tail}}}\n\n"
        )
        .into_bytes()
    };
    let mut events = Vec::with_capacity(pieces.len() + 3);
    events.push(chunk(r#"{"role":"assistant","content":""}"#, "null", ""));
    for piece in pieces {
        let text = serde_json::to_string(piece).unwrap_or_default();
        events.push(chunk(&format!("{{\"content\":{text}}}"), "null", ""));
    }
    let usage_tail = if include_usage {
        format!(",\"usage\":{usage}")
    } else {
        String::new()
    };
    events.push(chunk("{}", &format!("\"{finish}\""), &usage_tail));
    events.push(b"data: [DONE]\n\n".to_vec());
    Reply::Stream(events)
}

/// ceil(characters of message text / 4), at least 1. Text is a string `content` or the `text`
/// of content parts.
fn prompt_tokens(req: &Value) -> u64 {
    let mut chars = 0usize;
    for msg in req
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match msg.get("content") {
            Some(Value::String(s)) => chars += s.chars().count(),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        chars += t.chars().count();
                    }
                }
            }
            _ => {}
        }
    }
    (chars as u64).div_ceil(4).max(1)
}

fn invalid(message: &str) -> Reply {
    let message = serde_json::to_string(message).unwrap_or_default();
    Reply::Error(
        400,
        format!(
            "{{\"error\":{{\"message\":{message},\"type\":\"invalid_request_error\",\
             \"param\":null,\"code\":null}}}}"
        ),
    )
}

/// The `GET /v1/models` list.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"mock"},{"id":"gpt-4o","object":"model","created":1700000000,"owned_by":"mock"}]}"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn completion_echoes_model_and_counts_tokens() {
        let body = br#"{"model":"m-1","messages":[{"role":"user","content":"12345678"}]}"#;
        let Reply::Json(s) = reply(body) else {
            panic!("expected JSON")
        };
        let v = json(&s);
        assert_eq!(v["model"], "m-1");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], PIECES.concat());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        assert_eq!(v["usage"]["completion_tokens"], 11);
        assert_eq!(v["usage"]["total_tokens"], 13);
        assert!(s.starts_with(r#"{"id":"chatcmpl-mock123","object":"chat.completion","created":"#));
    }

    #[test]
    fn max_tokens_truncates() {
        let Reply::Json(s) = reply(br#"{"model":"m","max_tokens":2,"messages":[]}"#) else {
            panic!("expected JSON")
        };
        let v = json(&s);
        assert_eq!(v["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn stream_shape() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":[{"type":"text","text":"abcd"}]}]}"#;
        let Reply::Stream(events) = reply(body) else {
            panic!("expected a stream")
        };
        assert_eq!(events.len(), PIECES.len() + 3);
        let data: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| {
                let s = std::str::from_utf8(e).unwrap();
                assert!(s.starts_with("data: ") && s.ends_with("\n\n"));
                json(&s[6..])
            })
            .collect();
        assert_eq!(data[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = data[1..=PIECES.len()]
            .iter()
            .map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text, PIECES.concat());
        let last = data.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["usage"]["prompt_tokens"], 1);
        assert_eq!(last["usage"]["total_tokens"], 12);
        assert_eq!(events.last().unwrap(), b"data: [DONE]\n\n");
    }

    #[test]
    fn stream_without_usage_has_none() {
        let Reply::Stream(events) = reply(br#"{"stream":true}"#) else {
            panic!("expected a stream")
        };
        assert!(events
            .iter()
            .all(|e| !e.windows(7).any(|w| w == b"\"usage\"")));
    }

    #[test]
    fn bad_bodies() {
        assert!(matches!(reply(b"{"), Reply::Error(400, _)));
        assert!(matches!(reply(b"[1]"), Reply::Error(400, _)));
        let Reply::Error(_, s) = reply(b"nope") else {
            panic!("expected an error")
        };
        assert_eq!(json(&s)["error"]["type"], "invalid_request_error");
    }
}
