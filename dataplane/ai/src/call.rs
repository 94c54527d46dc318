//! Provider adapters: how one client request becomes a call to one provider — URL, auth, body in
//! the provider's schema — and which [`Shaper`] carries the answer back in the client's protocol.

use std::time::SystemTime;

use bytes::Bytes;
use weir_llm_wire::{anthropic as an, openai as oa, translate};

use crate::api::{ClientApi, Protocol};
use crate::client::{rewrite_top_level, ClientRequest};
use crate::keys::Key;
use crate::provider::{Dialect, SharedProvider};
use crate::shape::{self, Shaper};
use crate::{Error, Result};

/// A call to make: what to send, and how to read the answer.
pub struct UpstreamCall {
    /// `POST` or `GET`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Fields to send besides host, content-length and the gateway's own.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
    /// Turns a 2xx answer into the client's.
    pub shaper: Box<dyn Shaper>,
    /// The provider's answer is an AWS event stream (Bedrock), not SSE or JSON.
    pub binary_stream: bool,
}

/// What a call is made of.
pub struct CallInput<'a> {
    /// The client's request.
    pub client: &'a ClientRequest,
    /// The provider.
    pub provider: &'a SharedProvider,
    /// The model name to ask for.
    pub model: &'a str,
    /// The key picked from the pool (None for providers without keys).
    pub key: Option<&'a Key>,
    /// A bearer token minted for the key (Vertex).
    pub bearer: Option<&'a str>,
    /// Now, for signatures and `created` fields.
    pub now: SystemTime,
}

const JSON: &str = "application/json";

fn unix(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Result<Bytes> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| Error::BadRequest(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("{what}: {e}")))
}

/// Builds the call of `input`.
pub fn build(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let p = input.provider;
    let api = input.client.api;
    let unsupported = || Error::Unsupported {
        provider: p.name().to_string(),
        kind: p.config.kind.as_str(),
        api: api.as_str(),
    };
    match (api.protocol(), p.dialect) {
        (_, Dialect::OpenAi | Dialect::Azure | Dialect::Mock) => openai_family(input),
        (Protocol::Anthropic, Dialect::Anthropic) => anthropic_native(input),
        (Protocol::OpenAi, Dialect::Anthropic) => match api {
            ClientApi::Chat => openai_to_anthropic(input),
            _ => Err(unsupported()),
        },
        (_, Dialect::Gemini | Dialect::Vertex) => crate::google::build(input),
        (_, Dialect::Bedrock) => crate::bedrock::build(input),
        (_, Dialect::Cohere) => crate::cohere::build(input),
    }
}

/// The request as an OpenAI chat request, whatever protocol the client spoke (for providers
/// reached through the OpenAI pivot).
pub fn as_openai_chat(input: &CallInput<'_>) -> Result<oa::ChatCompletionRequest> {
    let c = input.client;
    let mut req = match c.api {
        ClientApi::Chat => parse::<oa::ChatCompletionRequest>(&c.body, "chat request")?,
        ClientApi::Messages => {
            let req: an::MessagesRequest = parse(&c.body, "messages request")?;
            translate::anthropic_to_openai_request(req, &translate::ToOpenAiOptions::default())?
        }
        _ => {
            return Err(Error::Unsupported {
                provider: input.provider.name().to_string(),
                kind: input.provider.config.kind.as_str(),
                api: c.api.as_str(),
            })
        }
    };
    req.model = input.model.to_string();
    Ok(req)
}

/// Where OpenAI-format answers go for this client.
pub fn openai_answer_shaper(client: &ClientRequest, created: u64) -> Box<dyn Shaper> {
    match (client.api.protocol(), client.stream) {
        (Protocol::OpenAi, true) => Box::new(shape::OpenAiPassStream::new(client.include_usage)),
        (Protocol::OpenAi, false) => Box::new(shape::PassJson::new(Protocol::OpenAi)),
        (Protocol::Anthropic, true) => Box::new(shape::OpenAiToAnthropic::new()),
        (Protocol::Anthropic, false) => Box::new(shape::TranslateJson::new(Box::new(move |b| {
            let resp: oa::ChatCompletion = serde_json::from_slice(b)
                .map_err(|e| Error::BadUpstream(format!("OpenAI answer: {e}")))?;
            let usage = resp.usage.as_ref().map(weir_llm_wire::Usage::from_openai);
            let _ = created;
            let msg = translate::openai_to_anthropic_response(resp)?;
            let out = serde_json::to_vec(&msg).map_err(|e| Error::BadUpstream(e.to_string()))?;
            Ok((out, usage))
        }))),
    }
}

fn key_secret(input: &CallInput<'_>) -> Option<String> {
    input.key.map(|k| k.secret.expose().to_string())
}

/// OpenAI and every OpenAI-compatible provider, Azure, and the in-process mock.
fn openai_family(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let p = input.provider;
    let created = unix(input.now);
    let stream_usage: &[(&str, &str)] = if c.stream {
        // Always asked upstream so every stream ends with exact counts; hidden from a client
        // that did not ask.
        &[("stream_options", r#"{"include_usage":true}"#)]
    } else {
        &[]
    };
    let (suffix, mut body, shaper): (&str, Bytes, Box<dyn Shaper>) = match c.api {
        ClientApi::Chat => (
            "/chat/completions",
            rewrite_top_level(&c.body, Some(input.model), &[], stream_usage)?.into(),
            openai_answer_shaper(c, created),
        ),
        ClientApi::Messages => {
            let mut req = as_openai_chat(input)?;
            if c.stream {
                req.stream = Some(true);
                req.stream_options = Some(oa::StreamOptions {
                    include_usage: Some(true),
                    ..Default::default()
                });
            }
            (
                "/chat/completions",
                to_bytes(&req)?,
                openai_answer_shaper(c, created),
            )
        }
        ClientApi::Completions if p.dialect != Dialect::Mock => (
            "/completions",
            rewrite_top_level(&c.body, Some(input.model), &[], stream_usage)?.into(),
            if c.stream {
                Box::new(shape::OpenAiPassStream::new(c.include_usage))
            } else {
                Box::new(shape::PassJson::new(Protocol::OpenAi))
            },
        ),
        ClientApi::Embeddings => (
            "/embeddings",
            rewrite_top_level(&c.body, Some(input.model), &[], &[])?.into(),
            Box::new(shape::PassJson::new(Protocol::OpenAi)),
        ),
        ClientApi::Responses if p.dialect != Dialect::Mock => (
            "/responses",
            rewrite_top_level(&c.body, Some(input.model), &[], &[])?.into(),
            if c.stream {
                Box::new(shape::ResponsesPassStream::new())
            } else {
                Box::new(shape::ResponsesPassJson::new())
            },
        ),
        ClientApi::CountTokens if p.dialect == Dialect::Mock => (
            "/messages/count_tokens",
            c.body.clone(),
            Box::new(shape::PassJson::new(Protocol::Anthropic)),
        ),
        _ => {
            return Err(Error::Unsupported {
                provider: p.name().to_string(),
                kind: p.config.kind.as_str(),
                api: c.api.as_str(),
            })
        }
    };
    let base = p.base.as_ref().map_or("", |b| b.path.as_str());
    let mut headers = vec![("content-type", JSON.to_string())];
    let path = match p.dialect {
        Dialect::Azure => {
            let az = p
                .config
                .azure
                .as_ref()
                .ok_or_else(|| Error::Config("azure options missing".into()))?;
            let deployment = az
                .deployments
                .get(input.model)
                .map_or(input.model, String::as_str);
            if let Some(k) = key_secret(input) {
                headers.push(("api-key", k));
            }
            if c.api == ClientApi::Responses {
                // Azure's Responses API is not per deployment: the deployment is the body's model.
                body = rewrite_top_level(&c.body, Some(deployment), &[], &[])?.into();
                format!(
                    "{base}/openai/responses?api-version={}",
                    encode_segment(&az.api_version)
                )
            } else {
                format!(
                    "{base}/openai/deployments/{}{suffix}?api-version={}",
                    encode_segment(deployment),
                    encode_segment(&az.api_version)
                )
            }
        }
        _ => {
            if let Some(k) = key_secret(input) {
                headers.push(("authorization", format!("Bearer {k}")));
            }
            format!("{base}{suffix}")
        }
    };
    Ok(UpstreamCall {
        method: "POST",
        path,
        headers,
        body,
        shaper,
        binary_stream: false,
    })
}

fn anthropic_headers(input: &CallInput<'_>) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("content-type", JSON.to_string()),
        (
            "anthropic-version",
            input
                .provider
                .config
                .anthropic_version
                .clone()
                .unwrap_or_else(|| "2023-06-01".into()),
        ),
    ];
    if let Some(k) = key_secret(input) {
        h.push(("x-api-key", k));
    }
    h
}

fn anthropic_path(p: &SharedProvider, suffix: &str) -> String {
    let base = p.base.as_ref().map_or("", |b| b.path.as_str());
    format!("{base}/v1/messages{suffix}")
}

/// An Anthropic client to Anthropic: the body passes with the model renamed.
fn anthropic_native(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let (suffix, shaper): (&str, Box<dyn Shaper>) = match (c.api, c.stream) {
        (ClientApi::CountTokens, _) => (
            "/count_tokens",
            Box::new(shape::PassJson::new(Protocol::Anthropic)),
        ),
        (_, true) => ("", Box::new(shape::AnthropicPassStream::new())),
        (_, false) => ("", Box::new(shape::PassJson::new(Protocol::Anthropic))),
    };
    Ok(UpstreamCall {
        method: "POST",
        path: anthropic_path(input.provider, suffix),
        headers: anthropic_headers(input),
        body: rewrite_top_level(&c.body, Some(input.model), &[], &[])?.into(),
        shaper,
        binary_stream: false,
    })
}

/// An OpenAI client to Anthropic: the request and answer are translated.
fn openai_to_anthropic(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let req = as_openai_chat(input)?;
    let msg =
        translate::openai_to_anthropic_request(req, &translate::ToAnthropicOptions::default())?;
    let created = unix(input.now);
    let shaper: Box<dyn Shaper> = if c.stream {
        Box::new(shape::AnthropicToOpenAi::new(c.include_usage, created))
    } else {
        Box::new(shape::TranslateJson::new(Box::new(move |b| {
            let resp: an::MessagesResponse = serde_json::from_slice(b)
                .map_err(|e| Error::BadUpstream(format!("Anthropic answer: {e}")))?;
            let usage = weir_llm_wire::Usage::from_anthropic(&resp.usage);
            let out = translate::anthropic_to_openai_response(resp, created)?;
            let bytes = serde_json::to_vec(&out).map_err(|e| Error::BadUpstream(e.to_string()))?;
            Ok((bytes, Some(usage)))
        })))
    };
    Ok(UpstreamCall {
        method: "POST",
        path: anthropic_path(input.provider, ""),
        headers: anthropic_headers(input),
        body: to_bytes(&msg)?,
        shaper,
        binary_stream: false,
    })
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters pass).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
