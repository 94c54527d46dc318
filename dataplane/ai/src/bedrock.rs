//! AWS Bedrock: Converse and ConverseStream (binary event stream) with SigV4, and Titan text
//! embeddings through InvokeModel. Requests go through the OpenAI pivot: a client request is
//! made an OpenAI chat request, then a Converse request; answers come back as OpenAI chunks and
//! are written in the client's protocol.

use bytes::BytesMut;
use weir_ai_auth::sigv4;
use weir_llm_wire::openai as oa;
use weir_llm_wire::translate::bedrock as tr;
use weir_llm_wire::Usage;

use crate::api::ClientApi;
use crate::call::{as_openai_chat, encode_segment, CallInput, UpstreamCall};
use crate::shape::{self, ItemSource, ItemStream, Shaper, TranslateJson};
use crate::{Error, Result};

/// Largest event-stream frame accepted (AWS caps messages at 16 MiB).
const MAX_FRAME: usize = 16 << 20;

pub(crate) fn build(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let p = input.provider;
    let created = input
        .now
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let protocol = c.api.protocol();
    let model_path = format!("/model/{}", encode_segment(input.model));
    let (path, body, shaper, binary): (String, Vec<u8>, Box<dyn Shaper>, bool) = match c.api {
        ClientApi::Chat | ClientApi::Messages => {
            let req = as_openai_chat(input)?;
            let conv = tr::openai_to_bedrock_request(req)?;
            let body = serde_json::to_vec(&conv).map_err(|e| Error::BadRequest(e.to_string()))?;
            let id = format!("chatcmpl-{:016x}", fastrand::u64(..));
            if c.stream {
                // An Anthropic client needs the usage chunk to write its `message_delta`.
                let usage = c.include_usage || protocol == crate::Protocol::Anthropic;
                let src = FrameSource {
                    buf: BytesMut::new(),
                    tr: tr::BedrockToOpenAiStream::new(input.model.to_string(), id, created, usage),
                    seen: false,
                };
                (
                    format!("{model_path}/converse-stream"),
                    body,
                    Box::new(ItemStream::new(src, protocol)),
                    true,
                )
            } else {
                let model = input.model.to_string();
                let f = move |b: &[u8]| {
                    let resp: weir_llm_wire::bedrock::ConverseResponse = serde_json::from_slice(b)
                        .map_err(|e| Error::BadUpstream(format!("Converse answer: {e}")))?;
                    let out = tr::bedrock_to_openai_response(resp, &model, id, created)?;
                    let usage = out.usage.as_ref().map(Usage::from_openai);
                    Ok((shape::chat_json_for_client(protocol, out)?, usage))
                };
                (
                    format!("{model_path}/converse"),
                    body,
                    Box::new(TranslateJson::new(Box::new(f))),
                    false,
                )
            }
        }
        ClientApi::Embeddings => {
            #[derive(serde::Deserialize)]
            struct Req {
                input: serde_json::Value,
                #[serde(default)]
                dimensions: Option<u32>,
            }
            let req: Req = serde_json::from_slice(&c.body)
                .map_err(|e| Error::BadRequest(format!("embeddings request: {e}")))?;
            let text = match &req.input {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) if a.len() == 1 && a[0].is_string() => {
                    a[0].as_str().unwrap_or_default().to_string()
                }
                _ => {
                    return Err(Error::Untranslatable(
                        "`input`: Titan embeds one string per call; send a single string".into(),
                    ))
                }
            };
            let body = tr::titan_embeddings_request(&text, req.dimensions)
                .to_string()
                .into_bytes();
            let model = input.model.to_string();
            let f = move |b: &[u8]| {
                let (vector, tokens) = tr::titan_embeddings_response(b)?;
                let out = serde_json::json!({
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                });
                let usage = Usage {
                    input: tokens,
                    ..Default::default()
                };
                Ok((out.to_string().into_bytes(), Some(usage)))
            };
            (
                format!("{model_path}/invoke"),
                body,
                Box::new(TranslateJson::new(Box::new(f))),
                false,
            )
        }
        _ => {
            return Err(Error::Unsupported {
                provider: p.name().to_string(),
                kind: p.config.kind.as_str(),
                api: c.api.as_str(),
            })
        }
    };
    let base = p
        .base
        .as_ref()
        .ok_or_else(|| Error::Config("bedrock without a base URL".into()))?;
    let path = format!("{}{path}", base.path);
    let key = input
        .key
        .ok_or_else(|| Error::Auth("a Bedrock call needs a key".into()))?;
    let mut creds = sigv4::Credentials::new(
        key.access_key_id.clone().unwrap_or_default(),
        key.secret.expose().to_string(),
    );
    if let Some(t) = &key.session_token {
        creds = creds.with_session_token(t.expose().to_string());
    }
    let region = p
        .config
        .bedrock
        .as_ref()
        .map_or("us-east-1", |b| b.region.as_str());
    let host = base.host_header();
    let content_type = "application/json";
    let accept = if binary {
        "application/vnd.amazon.eventstream"
    } else {
        "application/json"
    };
    let signed = sigv4::sign(
        "POST",
        &host,
        &path,
        "",
        &[("content-type", content_type), ("accept", accept)],
        &body,
        &creds,
        region,
        "bedrock",
        input.now,
    );
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("accept", accept.to_string()),
    ];
    headers.extend(signed);
    Ok(UpstreamCall {
        method: "POST",
        path,
        headers,
        body: body.into(),
        shaper,
        binary_stream: binary,
    })
}

/// ConverseStream's binary frames, decoded one whole frame at a time.
struct FrameSource {
    buf: BytesMut,
    tr: tr::BedrockToOpenAiStream,
    seen: bool,
}

impl ItemSource for FrameSource {
    fn push_bytes(&mut self, chunk: &[u8], items: &mut Vec<oa::StreamItem>) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        while self.buf.len() >= 4 {
            let total =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if !(16..=MAX_FRAME).contains(&total) {
                return Err(Error::BadUpstream(format!(
                    "event-stream frame of {total} bytes"
                )));
            }
            if self.buf.len() < total {
                break;
            }
            let frame = self.buf.split_to(total);
            let msg = weir_sse::eventstream::Message::parse(&frame)
                .map_err(|e| Error::BadUpstream(format!("event stream: {e}")))?;
            let kind = match msg.message_type() {
                Some("exception") | Some("error") => {
                    msg.exception_type().unwrap_or("internalServerException")
                }
                _ => msg.event_type().unwrap_or(""),
            };
            self.seen = true;
            self.tr.push(kind, msg.payload(), items)?;
        }
        Ok(())
    }

    fn finish(&mut self, items: &mut Vec<oa::StreamItem>) -> bool {
        self.buf.is_empty() && self.tr.finish(items)
    }

    fn usage(&self) -> Option<Usage> {
        self.seen.then(|| self.tr.usage())
    }
}
