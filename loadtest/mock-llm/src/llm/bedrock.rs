//! AWS Bedrock Runtime: `POST /model/MODEL/converse` (JSON), `/converse-stream` (binary
//! event-stream frames, see [`super::eventstream`]) and `/invoke` (Titan text embeddings).
//!
//! Authentication is SigV4's shape: `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/
//! REGION/bedrock/aws4_request, SignedHeaders=…, Signature=<64 hex>`, plus `x-amz-date`
//! (`YYYYMMDDTHHMMSSZ`, same day as the credential) and `x-amz-content-sha256` equal to the
//! SHA-256 of the body. The signature itself is not verified (the mock knows no secret).
//!
//! The stream sends `messageStart`, per content block `contentBlockStart` (tool calls only, as
//! Bedrock does), `contentBlockDelta`s (`text`, or `toolUse.input` fragments) and
//! `contentBlockStop`, then `messageStop` with the `stopReason` and `metadata` with `usage` and
//! `metrics`. Every payload carries a `p` padding field, as Bedrock's do. Errors before the
//! stream are JSON `{"message"}` with the `x-amzn-ErrorType` header; errors inside it are
//! `exception` frames.

use super::eventstream;
use super::reply::{self, Chat, Finish, Plan, Tool};
use super::{header, Ctx, Records, Reply};
use crate::http::Head;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The padding Bedrock adds to every event payload.
const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

/// The access key id of a SigV4 `Authorization` header.
pub fn access_key<'a>(head: &'a Head<'_, '_>) -> Option<&'a str> {
    let auth = header(head, "authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let cred = sigv4_param(rest, "Credential")?;
    cred.split('/').next().filter(|k| !k.is_empty())
}

fn sigv4_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks the shape of a SigV4-signed request: `Err((status, x-amzn-ErrorType, message))`.
pub fn check_auth(head: &Head<'_, '_>, body: &[u8]) -> Result<(), (u16, &'static str, String)> {
    let denied = |why: &str| (403, "UnrecognizedClientException", why.to_owned());
    let auth =
        header(head, "authorization").ok_or_else(|| denied("Missing Authentication Token"))?;
    let params = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| denied("Authorization is not AWS4-HMAC-SHA256"))?;
    let cred = sigv4_param(params, "Credential").ok_or_else(|| denied("no Credential="))?;
    let scope: Vec<&str> = cred.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(denied(
            "Credential is not AKID/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    if akid.is_empty() || !date_ok || region.is_empty() || terminator != "aws4_request" {
        return Err(denied("malformed Credential scope"));
    }
    if service != "bedrock" {
        return Err(denied("the Credential scope's service is not bedrock"));
    }
    let signed = sigv4_param(params, "SignedHeaders").unwrap_or_default();
    if signed.is_empty()
        || signed
            .split(';')
            .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
        || !signed.split(';').any(|h| h == "host")
    {
        return Err(denied(
            "SignedHeaders must be lowercase names and include host",
        ));
    }
    if !sigv4_param(params, "Signature").is_some_and(is_hex64) {
        return Err(denied("Signature must be 64 hex digits"));
    }
    let amz_date = header(head, "x-amz-date").unwrap_or_default();
    let d = amz_date.as_bytes();
    let amz_ok = d.len() == 16
        && d[8] == b'T'
        && d[15] == b'Z'
        && d[..8].iter().chain(&d[9..15]).all(u8::is_ascii_digit);
    if !amz_ok || &d[..8] != date.as_bytes() {
        return Err(denied(
            "x-amz-date must be YYYYMMDDTHHMMSSZ of the Credential's day",
        ));
    }
    let sha = header(head, "x-amz-content-sha256").unwrap_or_default();
    let want = hex(&Sha256::digest(body));
    if !sha.eq_ignore_ascii_case(&want) {
        return Err((
            403,
            "AccessDeniedException",
            "x-amz-content-sha256 is not the SHA-256 of the body".to_owned(),
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a Converse request asks.
pub fn chat_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    if let Some(system) = req
        .get("system")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        chat.count_message(system);
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for m in messages {
        chat.count_message(m);
    }
    let blocks = |m: &Value| -> Vec<Value> {
        m.get("content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if let Some(last) = messages.last() {
        if let Some(result) = blocks(last)
            .iter()
            .filter_map(|b| b.get("toolResult"))
            .next_back()
        {
            chat.tool_result = Some(reply::text_of(result.get("content")));
        }
    }
    chat.last_user_text = messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| reply::text_of(m.get("content")))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    for t in req
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        if let Some(spec) = t.get("toolSpec") {
            chat.tools.push(Tool::new(
                spec.get("name"),
                spec.pointer("/inputSchema/json"),
            ));
        }
    }
    chat.max_tokens = req
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    chat
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolUse => "tool_use",
    }
}

fn tool_id(k: usize) -> String {
    format!("tooluse_mock_{k}")
}

fn usage(plan: &Plan) -> Value {
    json!({"inputTokens": plan.input_tokens, "outputTokens": plan.output_tokens,
           "totalTokens": plan.total_tokens()})
}

/// `converse` and `converse-stream`.
pub fn converse(req: &Value, ctx: &Ctx<'_>, stream: bool) -> Reply {
    let plan = Plan::new(ctx.family.name(), &chat_request(req));
    if !stream {
        let content: Vec<Value> = if plan.calls.is_empty() {
            vec![json!({ "text": plan.text() })]
        } else {
            plan.calls
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    json!({"toolUse": {"toolUseId": tool_id(k), "name": c.name, "input": c.input()}})
                })
                .collect()
        };
        let mut doc = json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason(plan.finish),
            "metrics": {"latencyMs": 0},
        });
        if ctx.usage {
            doc["usage"] = usage(&plan);
        }
        return Reply::Json(doc);
    }

    let ev = |kind: &str, mut payload: Value| {
        payload["p"] = json!(PAD);
        eventstream::event(kind, payload.to_string().as_bytes())
    };
    let mut r = Records::default();
    r.push(ev("messageStart", json!({"role": "assistant"})));
    if plan.calls.is_empty() {
        for t in &plan.text {
            r.token(ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": t}}),
            ));
        }
        r.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
    }
    for (k, c) in plan.calls.iter().enumerate() {
        r.push(ev(
            "contentBlockStart",
            json!({"contentBlockIndex": k,
                   "start": {"toolUse": {"toolUseId": tool_id(k), "name": c.name}}}),
        ));
        for f in &c.fragments {
            r.token(ev(
                "contentBlockDelta",
                json!({"contentBlockIndex": k, "delta": {"toolUse": {"input": f}}}),
            ));
        }
        r.push(ev("contentBlockStop", json!({ "contentBlockIndex": k })));
    }
    r.push(ev(
        "messageStop",
        json!({"stopReason": stop_reason(plan.finish)}),
    ));
    let mut metadata = json!({"metrics": {"latencyMs": 0}});
    if ctx.usage {
        metadata["usage"] = usage(&plan);
    }
    r.push(ev("metadata", metadata));
    Reply::Stream {
        ctype: "application/vnd.amazon.eventstream",
        records: r,
    }
}

/// `invoke` with a Titan text-embeddings body: `{"inputText", "dimensions"?}` →
/// `{"embedding", "inputTextTokenCount"}`.
pub fn invoke(req: &Value) -> Reply {
    let Some(text) = req.get("inputText").and_then(Value::as_str) else {
        return super::error(
            super::Family::Bedrock,
            400,
            "mock: invoke supports Titan text embeddings ({\"inputText\": ...}) only",
        );
    };
    let dims = reply::dims(req.get("dimensions"));
    Reply::Json(json!({
        "embedding": reply::embedding(text, dims),
        "inputTextTokenCount": reply::words(text),
    }))
}

/// The exception name for a status: `x-amzn-ErrorType` and, lower-camel-cased, a stream
/// exception's `:exception-type`.
fn exception_name(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500.. => "InternalServerException",
        _ => "ValidationException",
    }
}

/// `{"message"}` and the `x-amzn-ErrorType` header.
pub fn error_body(status: u16, message: &str) -> (Value, Vec<(&'static str, String)>) {
    (
        json!({ "message": message }),
        vec![("x-amzn-errortype", exception_name(status).to_owned())],
    )
}

/// An `exception` frame that ends a stream early.
pub fn exception_frame(status: u16, message: &str) -> Vec<u8> {
    let name = exception_name(status);
    let kind = match status {
        400 | 429 | 500.. => lower_first(name),
        _ => "modelStreamErrorException".to_owned(),
    };
    eventstream::exception(&kind, json!({ "message": message }).to_string().as_bytes())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
