//! Cohere's v2 API: `POST /v2/chat` (JSON, or with `"stream": true` SSE events with `event:`
//! names) and `POST /v2/embed`.
//!
//! The stream is `message-start`, then for text `content-start`, `content-delta`s and
//! `content-end`; for tool calls `tool-plan-delta`s (the plan `I will call NAME.`) and per call
//! `tool-call-start`, `tool-call-delta`s (argument fragments) and `tool-call-end`; then
//! `message-end` with the `finish_reason` (`COMPLETE`, `MAX_TOKENS`, `TOOL_CALL`) and the usage
//! as `billed_units` and `tokens`. The tool plan's tokens count as output tokens.

use super::reply::{self, Chat, Finish, Plan, Tool};
use super::{sse_event, Ctx, Records, Reply};
use serde_json::{json, Value};

/// What a v2 chat request asks.
pub fn chat_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for m in messages {
        chat.count_message(m);
    }
    let role = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(last) = messages.last().filter(|m| role(m) == "tool") {
        chat.tool_result = Some(reply::text_of(last.get("content")));
    }
    chat.last_user_text = messages
        .iter()
        .rev()
        .filter(|m| role(m) == "user")
        .map(|m| reply::text_of(m.get("content")))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        if let Some(f) = t.get("function") {
            chat.tools
                .push(Tool::new(f.get("name"), f.get("parameters")));
        }
    }
    chat.max_tokens = req.get("max_tokens").and_then(Value::as_u64);
    chat
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "COMPLETE",
        Finish::Length => "MAX_TOKENS",
        Finish::ToolUse => "TOOL_CALL",
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({"billed_units": {"input_tokens": input, "output_tokens": output},
           "tokens": {"input_tokens": input, "output_tokens": output}})
}

fn call_id(name: &str, k: usize) -> String {
    format!("{name}_mock_{k}")
}

/// `POST /v2/chat`.
pub fn chat(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let plan = Plan::new(ctx.family.name(), &chat_request(req));
    let id = format!("mock-{}", ctx.id);
    let tool_plan = if plan.calls.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = plan.calls.iter().map(|c| c.name.as_str()).collect();
        reply::word_tokens(&format!("I will call {}.", names.join(" and ")))
    };
    let output_tokens = plan.output_tokens + tool_plan.len() as u64;
    let calls = || -> Vec<Value> {
        plan.calls
            .iter()
            .enumerate()
            .map(|(k, c)| {
                json!({"id": call_id(&c.name, k), "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect()
    };
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let message = if plan.calls.is_empty() {
            json!({"role": "assistant", "content": [{"type": "text", "text": plan.text()}]})
        } else {
            json!({"role": "assistant", "tool_plan": tool_plan.concat(), "tool_calls": calls()})
        };
        let mut doc =
            json!({"id": id, "finish_reason": finish_reason(plan.finish), "message": message});
        if ctx.usage {
            doc["usage"] = usage(plan.input_tokens, output_tokens);
        }
        return Reply::Json(doc);
    }

    let mut r = Records::default();
    let ev = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        sse_event(name, &data)
    };
    r.push(ev(
        "message-start",
        json!({"id": id, "delta": {"message": {"role": "assistant", "content": [],
               "tool_plan": "", "tool_calls": [], "citations": []}}}),
    ));
    if plan.calls.is_empty() {
        r.push(ev(
            "content-start",
            json!({"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        ));
        for t in &plan.text {
            r.token(ev(
                "content-delta",
                json!({"index": 0, "delta": {"message": {"content": {"text": t}}}}),
            ));
        }
        r.push(ev("content-end", json!({"index": 0})));
    } else {
        for t in &tool_plan {
            r.token(ev(
                "tool-plan-delta",
                json!({"delta": {"message": {"tool_plan": t}}}),
            ));
        }
        for (k, c) in plan.calls.iter().enumerate() {
            r.push(ev(
                "tool-call-start",
                json!({"index": k, "delta": {"message": {"tool_calls": {
                    "id": call_id(&c.name, k), "type": "function",
                    "function": {"name": c.name, "arguments": ""}}}}}),
            ));
            for f in &c.fragments {
                r.token(ev(
                    "tool-call-delta",
                    json!({"index": k, "delta": {"message": {"tool_calls": {
                        "function": {"arguments": f}}}}}),
                ));
            }
            r.push(ev("tool-call-end", json!({ "index": k })));
        }
    }
    let mut delta = json!({ "finish_reason": finish_reason(plan.finish) });
    if ctx.usage {
        delta["usage"] = usage(plan.input_tokens, output_tokens);
    }
    r.push(ev("message-end", json!({ "delta": delta })));
    Reply::Stream {
        ctype: "text/event-stream",
        records: r,
    }
}

/// The `message-end` with `finish_reason: ERROR` that ends a stream early.
pub fn stream_error(message: &str) -> Vec<u8> {
    sse_event(
        "message-end",
        &json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}),
    )
}

/// `POST /v2/embed`: float embeddings of `texts` (or of the text items of `inputs`), with
/// `output_dimension` values each.
pub fn embed(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let texts: Vec<String> = match req.get("texts").and_then(Value::as_array) {
        Some(texts) => texts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        None => req
            .get("inputs")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|i| reply::text_of(i.get("content")))
            .collect(),
    };
    if texts.is_empty() {
        return super::error(ctx.family, 400, "invalid request: texts must not be empty");
    }
    let dims = reply::dims(req.get("output_dimension"));
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| reply::embedding(t, dims)).collect();
    let words: u64 = texts.iter().map(|t| reply::words(t)).sum();
    let mut meta = json!({"api_version": {"version": "2"}});
    if ctx.usage {
        meta["billed_units"] = json!({ "input_tokens": words });
    }
    Reply::Json(json!({
        "id": format!("mock-{}", ctx.id),
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": meta,
        "response_type": "embeddings_by_type",
    }))
}

/// `{"message"}`, Cohere's error body.
pub fn error_body(message: &str) -> Value {
    json!({ "message": message })
}

#[cfg(test)]
mod tests;
