//! Google's Gemini API (`/v1beta/models/MODEL:ACTION`, key in `x-goog-api-key` or `key=`) and
//! Vertex AI (`/v1/projects/P/locations/L/publishers/google/models/MODEL:ACTION`, OAuth bearer
//! token), which share the `GenerateContentResponse` body, and the OAuth 2 token endpoint that
//! issues Vertex tokens for a service account's signed JWT.
//!
//! `:streamGenerateContent?alt=sse` sends one whole `GenerateContentResponse` per SSE `data:`
//! record (records end with CRLF CRLF, as Google's do), one text token each; the last also has
//! `finishReason` and `usageMetadata`. Without `alt=sse` the same objects form a JSON array that
//! is streamed piece by piece. Gemini sends a function call whole, in one response, with
//! `finishReason: STOP` (there is no tool-call finish reason).

use super::reply::{self, Chat, Finish, Plan, Tool};
use super::{Ctx, Records, Reply};
use crate::http;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// A field by its JSON name or its proto (snake_case) name: Google accepts both.
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// What a `generateContent` request asks.
pub fn chat_request(req: &Value) -> Chat {
    let mut chat = Chat::default();
    if let Some(system) = field(req, "systemInstruction", "system_instruction") {
        chat.count_message(system);
    }
    let contents = list(req.get("contents"));
    for c in contents {
        chat.count_message(c);
    }
    if let Some(last) = contents.last() {
        let response = list(last.get("parts"))
            .iter()
            .filter_map(|p| field(p, "functionResponse", "function_response"))
            .next_back();
        if let Some(r) = response {
            chat.tool_result = Some(r.get("response").map_or_else(String::new, Value::to_string));
        }
    }
    chat.last_user_text = contents
        .iter()
        .rev()
        .filter(|c| {
            c.get("role")
                .and_then(Value::as_str)
                .is_none_or(|r| r == "user")
        })
        .map(|c| reply::text_of(c.get("parts")))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    for tool in list(req.get("tools")) {
        for f in list(field(tool, "functionDeclarations", "function_declarations")) {
            let schema = f
                .get("parameters")
                .or_else(|| field(f, "parametersJsonSchema", "parameters_json_schema"));
            chat.tools.push(Tool::new(f.get("name"), schema));
        }
    }
    chat.max_tokens = field(req, "generationConfig", "generation_config")
        .and_then(|g| field(g, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64);
    chat
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Length => "MAX_TOKENS",
        Finish::Stop | Finish::ToolUse => "STOP",
    }
}

/// `:generateContent` and `:streamGenerateContent`.
pub fn generate(req: &Value, ctx: &Ctx<'_>, stream: bool) -> Reply {
    let plan = Plan::new(ctx.family.name(), &chat_request(req));
    let response = |parts: Value, last: bool| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let mut doc = json!({"candidates": [], "modelVersion": ctx.model,
                             "responseId": format!("mock-{}", ctx.id)});
        if last {
            candidate["finishReason"] = json!(finish_reason(plan.finish));
            if ctx.usage {
                doc["usageMetadata"] = json!({
                    "promptTokenCount": plan.input_tokens,
                    "candidatesTokenCount": plan.output_tokens,
                    "totalTokenCount": plan.total_tokens(),
                });
            }
        }
        doc["candidates"] = json!([candidate]);
        doc
    };
    let call_parts = || -> Value {
        plan.calls
            .iter()
            .map(|c| json!({"functionCall": {"name": c.name, "args": c.input()}}))
            .collect()
    };
    if !stream {
        let parts = if plan.calls.is_empty() {
            json!([{ "text": plan.text() }])
        } else {
            call_parts()
        };
        return Reply::Json(response(parts, true));
    }

    let sse = http::query_param(ctx.query, "alt") == Some("sse");
    let mut docs: Vec<(Value, bool)> = Vec::new();
    if !plan.calls.is_empty() {
        docs.push((response(call_parts(), true), false));
    } else if plan.text.is_empty() {
        docs.push((response(json!([{"text": ""}]), true), false));
    } else {
        let n = plan.text.len();
        for (i, t) in plan.text.iter().enumerate() {
            docs.push((response(json!([{ "text": t }]), i + 1 == n), true));
        }
    }
    let mut r = Records::default();
    for (i, (doc, token)) in docs.iter().enumerate() {
        let bytes = if sse {
            format!("data: {doc}\r\n\r\n").into_bytes()
        } else if i == 0 {
            format!("[{doc}").into_bytes()
        } else {
            format!(",\r\n{doc}").into_bytes()
        };
        if *token {
            r.token(bytes);
        } else {
            r.push(bytes);
        }
    }
    if !sse {
        r.push(b"]".to_vec());
    }
    Reply::Stream {
        ctype: if sse {
            "text/event-stream"
        } else {
            "application/json"
        },
        records: r,
    }
}

/// The record that ends a stream early with an error: an SSE `data:` record, or the error as
/// the array's last element.
pub fn stream_error(query: &str, status: u16, message: &str, first: bool) -> Vec<u8> {
    let body = error_body(status, message);
    if http::query_param(query, "alt") == Some("sse") {
        format!("data: {body}\r\n\r\n").into_bytes()
    } else if first {
        format!("[{body}]").into_bytes()
    } else {
        format!(",\r\n{body}]").into_bytes()
    }
}

/// `:countTokens`: of `contents`, or of a whole `generateContentRequest`.
pub fn count_tokens(req: &Value) -> Reply {
    let inner = field(req, "generateContentRequest", "generate_content_request").unwrap_or(req);
    let n = chat_request(inner).input_tokens;
    Reply::Json(
        json!({"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}),
    )
}

fn content_embedding(req: &Value) -> Value {
    let text = reply::text_of(req.pointer("/content/parts"));
    // Newer requests put it in `embedContentConfig`; the top-level field is the older place.
    let dims = reply::dims(
        field(req, "outputDimensionality", "output_dimensionality").or_else(|| {
            field(req, "embedContentConfig", "embed_content_config")
                .and_then(|c| field(c, "outputDimensionality", "output_dimensionality"))
        }),
    );
    json!({ "values": reply::embedding(&text, dims) })
}

/// `:embedContent`.
pub fn embed(req: &Value) -> Reply {
    Reply::Json(json!({ "embedding": content_embedding(req) }))
}

/// `:batchEmbedContents`.
pub fn batch_embed(req: &Value) -> Reply {
    let embeddings: Vec<Value> = list(req.get("requests"))
        .iter()
        .map(content_embedding)
        .collect();
    Reply::Json(json!({ "embeddings": embeddings }))
}

/// `GET /v1beta/models`.
pub fn models() -> Value {
    json!({"models": [
        {"name": "models/gemini-2.0-flash", "version": "001", "displayName": "Gemini 2.0 Flash (mock)",
         "inputTokenLimit": 1_048_576, "outputTokenLimit": 8192,
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/text-embedding-004", "version": "004", "displayName": "Text Embedding 004 (mock)",
         "inputTokenLimit": 2048, "outputTokenLimit": 1,
         "supportedGenerationMethods": ["embedContent"]},
    ]})
}

/// `{"error": {"code", "message", "status"}}` with the canonical status name for the code.
pub fn error_body(status: u16, message: &str) -> Value {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500.. => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    };
    json!({"error": {"code": status, "message": message, "status": name}})
}

// === OAuth 2 token endpoint ===

/// The JWT-bearer grant type of a service-account token request.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

static ISSUED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// Whether the mock issued this access token.
pub fn issued(token: &str) -> bool {
    ISSUED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|set| set.contains(token))
}

/// A form body (`a=1&b=2`) as a JSON object of strings.
pub fn form_json(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let map = text
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                super::percent_decode_with(k, true),
                Value::String(super::percent_decode_with(v, true)),
            )
        })
        .collect();
    Value::Object(map)
}

/// `{"error", "error_description"}`, OAuth's error body.
pub fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::Status {
        status,
        body: json!({"error": error, "error_description": description}),
        headers: Vec::new(),
    }
}

/// `POST /token`: a JWT-bearer grant whose assertion is three base64url parts and whose header
/// says `alg: RS256` gets `ya29.mock-N` (N counts from 1). The signature is not verified.
pub fn token(form: &Value) -> Reply {
    let grant = form
        .get("grant_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if grant != JWT_BEARER {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let assertion = form
        .get("assertion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Err(why) = check_jwt(assertion) {
        return oauth_error(400, "invalid_grant", &format!("Invalid JWT: {why}"));
    }
    let n = TOKENS.fetch_add(1, Relaxed) + 1;
    let token = format!("ya29.mock-{n}");
    ISSUED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(token.clone());
    Reply::Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}

/// Checks the shape of a signed JWT: header and payload are base64url JSON objects, the header's
/// `alg` is RS256, the signature is non-empty base64url.
pub fn check_jwt(jwt: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("expected three dot-separated parts");
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()
    };
    let object = |part: &str| {
        decode(part)
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(Value::is_object)
    };
    let header = object(header).ok_or("the header is not base64url JSON")?;
    object(payload).ok_or("the payload is not base64url JSON")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("the header's alg is not RS256");
    }
    match decode(signature) {
        Some(sig) if !sig.is_empty() => Ok(()),
        _ => Err("the signature is not base64url"),
    }
}

#[cfg(test)]
mod tests;
