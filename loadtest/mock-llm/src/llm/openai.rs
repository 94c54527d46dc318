//! OpenAI's wire format, which the OpenAI-compatible providers (DeepSeek, Qwen, Moonshot, Zhipu,
//! Mistral, Groq, xAI, OpenRouter, Together, Fireworks, Ollama, vLLM) and Azure OpenAI share:
//! chat completions, legacy text completions, embeddings, the Responses API and the model list.
//!
//! Streams are SSE. Chat and text completions send `data: CHUNK` records and `data: [DONE]`;
//! with `stream_options.include_usage` the last chunk before `[DONE]` has empty `choices` and the
//! `usage` (and every other chunk `"usage": null`). The Responses API sends named events with a
//! `sequence_number`, from `response.created` to `response.completed`, and no `[DONE]`. Azure
//! adds its content-filter fields, and its streams open with a chunk of empty `choices` that
//! carries only `prompt_filter_results`.

use super::reply::{self, Chat, Finish, Plan, Tool};
use super::{sse_data, sse_event, Ctx, Family, Records, Reply};
use base64::Engine as _;
use serde_json::{json, Value};

/// What a chat completion request asks: its messages, tools and limits.
pub fn chat_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    let messages = array(req.get("messages"));
    for m in messages {
        chat.count_message(m);
    }
    if let Some(last) = messages.last() {
        if matches!(role(last), "tool" | "function") {
            chat.tool_result = Some(reply::text_of(last.get("content")));
        }
    }
    chat.last_user_text = messages
        .iter()
        .rev()
        .filter(|m| role(m) == "user")
        .map(|m| reply::text_of(m.get("content")))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    for t in array(req.get("tools")) {
        if let Some(f) = t.get("function") {
            chat.tools
                .push(Tool::new(f.get("name"), f.get("parameters")));
        }
    }
    for f in array(req.get("functions")) {
        chat.tools
            .push(Tool::new(f.get("name"), f.get("parameters")));
    }
    chat.max_tokens = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64);
    chat
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn role(m: &Value) -> &str {
    m.get("role").and_then(Value::as_str).unwrap_or_default()
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolUse => "tool_calls",
    }
}

fn usage(plan: &Plan) -> Value {
    json!({
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.total_tokens(),
    })
}

fn call_id(k: usize) -> String {
    format!("call_mock_{k}")
}

fn include_usage(req: &Value, ctx: &Ctx<'_>) -> bool {
    ctx.usage
        && req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// Azure's first stream chunk: no choices, only the prompt's filter results.
fn azure_prompt_chunk() -> Vec<u8> {
    sse_data(&json!({
        "choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }))
}

// === chat completions ===

/// `POST …/chat/completions`.
pub fn chat(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let plan = Plan::new(ctx.family.name(), &chat_request(req));
    let azure = ctx.family == Family::Azure;
    let id = format!("chatcmpl-mock-{}", ctx.id);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let mut message = json!({"role": "assistant", "content": null, "refusal": null});
        if plan.calls.is_empty() {
            message["content"] = json!(plan.text());
        } else {
            let calls: Vec<Value> = plan
                .calls
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    json!({"id": call_id(k), "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            message["tool_calls"] = json!(calls);
        }
        let mut choice = json!({"index": 0, "message": message, "logprobs": null,
                                "finish_reason": finish_reason(plan.finish)});
        let mut doc = json!({
            "id": id, "object": "chat.completion", "created": ctx.created, "model": ctx.model,
            "choices": [], "system_fingerprint": "fp_mock",
        });
        if azure {
            choice["content_filter_results"] = json!({});
            doc["prompt_filter_results"] =
                json!([{"prompt_index": 0, "content_filter_results": {}}]);
        }
        doc["choices"] = json!([choice]);
        if ctx.usage {
            doc["usage"] = usage(&plan);
        }
        return Reply::Json(doc);
    }

    let with_usage = include_usage(req, ctx);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": ctx.created,
            "model": ctx.model, "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        sse_data(&c)
    };
    let mut r = Records::default();
    if azure {
        r.push(azure_prompt_chunk());
    }
    if plan.calls.is_empty() {
        r.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        for t in &plan.text {
            r.token(chunk(json!({ "content": t }), Value::Null));
        }
    } else {
        r.push(chunk(
            json!({"role": "assistant", "content": null}),
            Value::Null,
        ));
        for (k, c) in plan.calls.iter().enumerate() {
            r.push(chunk(
                json!({"tool_calls": [{"index": k, "id": call_id(k), "type": "function",
                                       "function": {"name": c.name, "arguments": ""}}]}),
                Value::Null,
            ));
            for f in &c.fragments {
                r.token(chunk(
                    json!({"tool_calls": [{"index": k, "function": {"arguments": f}}]}),
                    Value::Null,
                ));
            }
        }
    }
    r.push(chunk(json!({}), json!(finish_reason(plan.finish))));
    if with_usage {
        r.push(sse_data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": ctx.created,
            "model": ctx.model, "system_fingerprint": "fp_mock", "choices": [],
            "usage": usage(&plan),
        })));
    }
    r.push(b"data: [DONE]\n\n".to_vec());
    Reply::Stream {
        ctype: "text/event-stream",
        records: r,
    }
}

// === legacy completions ===

/// The prompt of a text completion request: a string, or an array of strings joined by a space.
fn prompt(req: &Value) -> String {
    reply::text_of(req.get("prompt"))
}

/// `POST …/completions` (legacy text completions).
pub fn completions(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let text = prompt(req);
    let mut chat = Chat {
        last_user_text: text.clone(),
        max_tokens: req.get("max_tokens").and_then(Value::as_u64),
        ..Chat::default()
    };
    chat.count_message(&Value::String(text));
    let plan = Plan::new(ctx.family.name(), &chat);
    let id = format!("cmpl-mock-{}", ctx.id);
    let azure = ctx.family == Family::Azure;
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let mut doc = json!({
            "id": id, "object": "text_completion", "created": ctx.created, "model": ctx.model,
            "choices": [{"text": plan.text(), "index": 0, "logprobs": null,
                         "finish_reason": finish_reason(plan.finish)}],
        });
        if ctx.usage {
            doc["usage"] = usage(&plan);
        }
        return Reply::Json(doc);
    }
    let with_usage = include_usage(req, ctx);
    let chunk = |text: &str, finish: Value| {
        let mut c = json!({
            "id": id, "object": "text_completion", "created": ctx.created, "model": ctx.model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        sse_data(&c)
    };
    let mut r = Records::default();
    if azure {
        r.push(azure_prompt_chunk());
    }
    for t in &plan.text {
        r.token(chunk(t, Value::Null));
    }
    r.push(chunk("", json!(finish_reason(plan.finish))));
    if with_usage {
        r.push(sse_data(&json!({
            "id": id, "object": "text_completion", "created": ctx.created, "model": ctx.model,
            "choices": [], "usage": usage(&plan),
        })));
    }
    r.push(b"data: [DONE]\n\n".to_vec());
    Reply::Stream {
        ctype: "text/event-stream",
        records: r,
    }
}

// === embeddings ===

/// The inputs of an embeddings request: a string, strings, a token array or token arrays (whose
/// numbers are taken as words).
fn embedding_inputs(input: Option<&Value>) -> Option<Vec<String>> {
    let tokens = |a: &[Value]| -> Option<String> {
        let words: Option<Vec<String>> = a
            .iter()
            .map(|n| n.as_u64().map(|n| n.to_string()))
            .collect();
        words.map(|w| w.join(" "))
    };
    match input? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_array) && !items.is_empty() => items
            .iter()
            .map(|a| tokens(a.as_array().map_or(&[], Vec::as_slice)))
            .collect(),
        Value::Array(items) if !items.is_empty() => tokens(items).map(|t| vec![t]),
        _ => None,
    }
}

/// `POST …/embeddings`: one vector per input; `encoding_format: "base64"` sends the vector as
/// base64 of little-endian f32s, as OpenAI does (and as its SDKs ask by default).
pub fn embeddings(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let Some(inputs) = embedding_inputs(req.get("input")) else {
        return super::error(
            ctx.family,
            400,
            "'input' must be a non-empty string, array of strings or array of token arrays",
        );
    };
    let dims = reply::dims(req.get("dimensions"));
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = reply::embedding(s, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let words: u64 = inputs.iter().map(|s| reply::words(s)).sum();
    let mut doc = json!({"object": "list", "data": data, "model": ctx.model});
    if ctx.usage {
        doc["usage"] = json!({"prompt_tokens": words, "total_tokens": words});
    }
    Reply::Json(doc)
}

// === Responses API ===

/// What a Responses API request asks: `instructions` counts as a message, `input` is a string or
/// a list of items (messages, `function_call`, `function_call_output`).
pub fn responses_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    if let Some(i) = req.get("instructions").filter(|i| !i.is_null()) {
        chat.count_message(i);
    }
    match req.get("input") {
        Some(Value::String(s)) => {
            chat.count_message(&Value::String(s.clone()));
            chat.last_user_text = s.clone();
        }
        Some(Value::Array(items)) => {
            for item in items {
                chat.count_message(item);
            }
            if let Some(last) = items.last() {
                if last.get("type").and_then(Value::as_str) == Some("function_call_output") {
                    chat.tool_result = Some(reply::text_of(last.get("output")));
                }
            }
            chat.last_user_text = items
                .iter()
                .rev()
                .filter(|m| role(m) == "user")
                .map(|m| reply::text_of(m.get("content")))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
        }
        _ => {}
    }
    for t in array(req.get("tools")) {
        if t.get("type").and_then(Value::as_str) == Some("function") {
            chat.tools
                .push(Tool::new(t.get("name"), t.get("parameters")));
        }
    }
    chat.max_tokens = req.get("max_output_tokens").and_then(Value::as_u64);
    chat
}

/// `POST …/responses`.
pub fn responses(req: &Value, ctx: &Ctx<'_>) -> Reply {
    let plan = Plan::new(ctx.family.name(), &responses_request(req));
    let resp_id = format!("resp_mock_{}", ctx.id);
    let msg_id = format!("msg_mock_{}", ctx.id);
    let complete = plan.finish != Finish::Length;
    let message_item = |status: &str, text: Option<&str>| {
        let content = match text {
            Some(t) => json!([{"type": "output_text", "text": t, "annotations": []}]),
            None => json!([]),
        };
        json!({"type": "message", "id": msg_id, "status": status, "role": "assistant",
               "content": content})
    };
    let call_item = |k: usize, c: &reply::Call, done: bool| {
        json!({"type": "function_call", "id": format!("fc_mock_{k}"), "call_id": call_id(k),
               "name": c.name, "arguments": if done { c.arguments.as_str() } else { "" },
               "status": if done { "completed" } else { "in_progress" }})
    };
    let output: Vec<Value> = if plan.calls.is_empty() {
        let status = if complete { "completed" } else { "incomplete" };
        vec![message_item(status, Some(&plan.text()))]
    } else {
        plan.calls
            .iter()
            .enumerate()
            .map(|(k, c)| call_item(k, c, true))
            .collect()
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": resp_id, "object": "response", "created_at": ctx.created, "status": status,
            "error": null,
            "incomplete_details": if status == "incomplete" {
                json!({"reason": "max_output_tokens"})
            } else {
                Value::Null
            },
            "instructions": req.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": req.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": ctx.model, "output": output, "parallel_tool_calls": true,
            "previous_response_id": null, "temperature": 1.0, "top_p": 1.0,
            "tool_choice": req.get("tool_choice").cloned().unwrap_or(json!("auto")),
            "tools": req.get("tools").cloned().unwrap_or(json!([])),
            "usage": usage, "metadata": {},
        })
    };
    let final_usage = if ctx.usage {
        json!({
            "input_tokens": plan.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": plan.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan.total_tokens(),
        })
    } else {
        Value::Null
    };
    let final_status = if complete { "completed" } else { "incomplete" };
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return Reply::Json(response(final_status, json!(output), final_usage));
    }

    let mut r = Records::default();
    let mut seq = 0u64;
    let mut event = |r: &mut Records, token: bool, name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        let bytes = sse_event(name, &data);
        if token {
            r.token(bytes);
        } else {
            r.push(bytes);
        }
    };
    let start = response("in_progress", json!([]), Value::Null);
    event(
        &mut r,
        false,
        "response.created",
        json!({ "response": start }),
    );
    event(
        &mut r,
        false,
        "response.in_progress",
        json!({ "response": start }),
    );
    if plan.calls.is_empty() {
        let text = plan.text();
        let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
        let at = json!({"item_id": msg_id, "output_index": 0, "content_index": 0});
        let with = |extra: Value| {
            let mut v = at.clone();
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        };
        event(
            &mut r,
            false,
            "response.output_item.added",
            json!({"output_index": 0, "item": message_item("in_progress", None)}),
        );
        event(
            &mut r,
            false,
            "response.content_part.added",
            with(json!({"part": part("")})),
        );
        for t in &plan.text {
            event(
                &mut r,
                true,
                "response.output_text.delta",
                with(json!({"delta": t, "logprobs": []})),
            );
        }
        event(
            &mut r,
            false,
            "response.output_text.done",
            with(json!({"text": text, "logprobs": []})),
        );
        event(
            &mut r,
            false,
            "response.content_part.done",
            with(json!({"part": part(&text)})),
        );
        event(
            &mut r,
            false,
            "response.output_item.done",
            json!({"output_index": 0, "item": output[0]}),
        );
    } else {
        for (k, c) in plan.calls.iter().enumerate() {
            let item_id = format!("fc_mock_{k}");
            event(
                &mut r,
                false,
                "response.output_item.added",
                json!({"output_index": k, "item": call_item(k, c, false)}),
            );
            for f in &c.fragments {
                event(
                    &mut r,
                    true,
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": k, "delta": f}),
                );
            }
            event(
                &mut r,
                false,
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": k, "arguments": c.arguments}),
            );
            event(
                &mut r,
                false,
                "response.output_item.done",
                json!({"output_index": k, "item": call_item(k, c, true)}),
            );
        }
    }
    let last = if complete {
        "response.completed"
    } else {
        "response.incomplete"
    };
    event(
        &mut r,
        false,
        last,
        json!({ "response": response(final_status, json!(output), final_usage) }),
    );
    Reply::Stream {
        ctype: "text/event-stream",
        records: r,
    }
}

/// The `error` event that ends a Responses stream early.
pub fn responses_stream_error(status: u16, message: &str, sequence: usize) -> Vec<u8> {
    let (_, code) = error_kind(status);
    sse_event(
        "error",
        &json!({"type": "error", "code": code, "message": message, "param": null,
                "sequence_number": sequence}),
    )
}

// === models and errors ===

/// `GET …/models`.
pub fn models() -> Value {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"});
    json!({"object": "list", "data": [model("gpt-4o-mini"), model("gpt-4o"), model("text-embedding-3-small")]})
}

/// OpenAI's error `type` and `code` for a status.
fn error_kind(status: u16) -> (&'static str, Value) {
    match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        403 => ("permission_error", Value::Null),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500.. => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    }
}

/// `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(status: u16, message: &str) -> Value {
    let (kind, code) = error_kind(status);
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Azure's `{"error": {"code": "STATUS", "message"}}`.
pub fn azure_error_body(status: u16, message: &str) -> Value {
    json!({"error": {"code": status.to_string(), "message": message}})
}

#[cfg(test)]
mod tests;
