//! Anthropic's Messages API: `POST /v1/messages` (a `message` object, or with `"stream": true`
//! SSE events) and `POST /v1/messages/count_tokens`.
//!
//! The stream is `message_start`, then per content block `content_block_start`, its
//! `content_block_delta`s and `content_block_stop` (a `ping` follows the first block start),
//! then `message_delta` with the `stop_reason` and the cumulative `usage.output_tokens`, and
//! `message_stop`. Text blocks stream `text_delta`s, tool calls `input_json_delta`s, and thinking
//! blocks (when the request has `thinking: {type: enabled}`) `thinking_delta`s then one
//! `signature_delta`. As the API does, `message_start` says `output_tokens: 1`.

use super::reply::{self, Chat, Finish, Plan, Tool, SIGNATURE};
use super::{sse_event, Ctx, Records, Reply};
use serde_json::{json, Value};

/// What a Messages request asks.
pub fn chat_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    if let Some(system) = req.get("system").filter(|s| !s.is_null()) {
        chat.count_message(system);
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for m in messages {
        chat.count_message(m);
    }
    let is_user = |m: &&Value| m.get("role").and_then(Value::as_str) == Some("user");
    if let Some(last) = messages.last().filter(is_user) {
        let mut results = last
            .get("content")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
        if let Some(result) = results.next_back() {
            chat.tool_result = Some(reply::text_of(result.get("content")));
        }
    }
    chat.last_user_text = messages
        .iter()
        .rev()
        .filter(is_user)
        .map(|m| reply::text_of(m.get("content")))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        chat.tools
            .push(Tool::new(t.get("name"), t.get("input_schema")));
    }
    chat.max_tokens = req.get("max_tokens").and_then(Value::as_u64);
    chat.thinking = req.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled");
    chat
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolUse => "tool_use",
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output,
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn tool_id(k: usize) -> String {
    format!("toolu_mock_{k}")
}

/// `POST /v1/messages`.
pub fn messages(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let plan = Plan::new(ctx.family.name(), &chat_request(req));
    let id = format!("msg_mock_{}", ctx.id);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let message = |content: Value, stop: Value, usage: Option<Value>| {
        let mut m = json!({"id": id, "type": "message", "role": "assistant", "model": ctx.model,
                           "content": content, "stop_reason": stop, "stop_sequence": null});
        if let Some(u) = usage.filter(|_| ctx.usage) {
            m["usage"] = u;
        }
        m
    };
    if !stream {
        let mut content = Vec::new();
        if !plan.thinking.is_empty() {
            content.push(json!({"type": "thinking", "thinking": plan.thinking_text(),
                                "signature": SIGNATURE}));
        }
        if plan.calls.is_empty() {
            content.push(json!({"type": "text", "text": plan.text()}));
        }
        for (k, c) in plan.calls.iter().enumerate() {
            content.push(json!({"type": "tool_use", "id": tool_id(k), "name": c.name,
                                "input": c.input()}));
        }
        return Reply::Json(message(
            json!(content),
            json!(stop_reason(plan.finish)),
            Some(usage(plan.input_tokens, plan.output_tokens)),
        ));
    }

    let mut r = Records::default();
    let ev = |name: &str, data: Value| sse_event(name, &data);
    r.push(ev(
        "message_start",
        json!({"type": "message_start", "message": message(json!([]), Value::Null,
                                                            Some(usage(plan.input_tokens, 1)))}),
    ));
    let mut index = 0usize;
    let mut start = |r: &mut Records, block: Value| {
        r.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        if index == 0 {
            r.push(ev("ping", json!({"type": "ping"})));
        }
        index += 1;
        index - 1
    };
    let delta = |i: usize, d: Value| {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": d}),
        )
    };
    let stop = |i: usize| {
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        )
    };
    if !plan.thinking.is_empty() {
        let i = start(
            &mut r,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        );
        for t in &plan.thinking {
            r.token(delta(i, json!({"type": "thinking_delta", "thinking": t})));
        }
        r.push(delta(
            i,
            json!({"type": "signature_delta", "signature": SIGNATURE}),
        ));
        r.push(stop(i));
    }
    if plan.calls.is_empty() {
        let i = start(&mut r, json!({"type": "text", "text": ""}));
        for t in &plan.text {
            r.token(delta(i, json!({"type": "text_delta", "text": t})));
        }
        r.push(stop(i));
    }
    for (k, c) in plan.calls.iter().enumerate() {
        let i = start(
            &mut r,
            json!({"type": "tool_use", "id": tool_id(k), "name": c.name, "input": {}}),
        );
        for f in &c.fragments {
            r.token(delta(
                i,
                json!({"type": "input_json_delta", "partial_json": f}),
            ));
        }
        r.push(stop(i));
    }
    let mut md = json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason(plan.finish), "stop_sequence": null}});
    if ctx.usage {
        md["usage"] = json!({ "output_tokens": plan.output_tokens });
    }
    r.push(ev("message_delta", md));
    r.push(ev("message_stop", json!({"type": "message_stop"})));
    Reply::Stream {
        ctype: "text/event-stream",
        records: r,
    }
}

/// `POST /v1/messages/count_tokens`: the input tokens the same request would be charged.
pub fn count_tokens(req: &Value) -> Reply {
    Reply::Json(json!({ "input_tokens": chat_request(req).input_tokens }))
}

/// `GET /v1/models` (with `x-api-key`).
pub fn models() -> Value {
    let model = |id: &str, name: &str| {
        json!({"type": "model", "id": id, "display_name": name,
               "created_at": "2025-01-01T00:00:00Z"})
    };
    json!({
        "data": [model("claude-sonnet-4-5", "Claude Sonnet 4.5 (mock)"),
                 model("claude-3-5-haiku-20241022", "Claude Haiku 3.5 (mock)")],
        "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-3-5-haiku-20241022",
    })
}

/// `{"type": "error", "error": {"type", "message"}}` with Anthropic's type for the status.
pub fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

#[cfg(test)]
mod tests;
