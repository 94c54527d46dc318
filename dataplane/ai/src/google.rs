//! Google Gemini (API key) and Vertex AI (OAuth bearer token from a service account): chat via
//! `generateContent` / `streamGenerateContent?alt=sse`, embeddings via `batchEmbedContents`
//! (Gemini API). Requests go through the OpenAI pivot; answers come back as OpenAI chunks.

use weir_llm_wire::embeddings::EmbeddingsRequest;
use weir_llm_wire::gemini as gm;
use weir_llm_wire::openai as oa;
use weir_llm_wire::translate::gemini as tr;
use weir_llm_wire::Usage;

use crate::api::ClientApi;
use crate::call::{as_openai_chat, encode_segment, CallInput, UpstreamCall};
use crate::provider::Dialect;
use crate::shape::{self, ItemSource, ItemStream, Shaper, TranslateJson};
use crate::{estimate, Error, Result};

pub(crate) fn build(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let p = input.provider;
    let created = input
        .now
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let protocol = c.api.protocol();
    let base = p.base.as_ref().map_or("", |b| b.path.as_str());
    let model_path = match (p.dialect, &p.config.vertex) {
        (Dialect::Vertex, Some(v)) => format!(
            "{base}/v1/projects/{}/locations/{}/publishers/google/models/{}",
            encode_segment(&v.project),
            encode_segment(&v.location),
            encode_segment(input.model)
        ),
        _ => format!("{base}/v1beta/models/{}", encode_segment(input.model)),
    };
    let unsupported = || Error::Unsupported {
        provider: p.name().to_string(),
        kind: p.config.kind.as_str(),
        api: c.api.as_str(),
    };
    let (path, body, shaper): (String, Vec<u8>, Box<dyn Shaper>) = match c.api {
        ClientApi::Chat | ClientApi::Messages => {
            let req = as_openai_chat(input)?;
            let body = serde_json::to_vec(&tr::openai_to_gemini_request(req)?)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            let id = format!("chatcmpl-{:016x}", fastrand::u64(..));
            let model = input.model.to_string();
            if c.stream {
                let usage = c.include_usage || protocol == crate::Protocol::Anthropic;
                let src = GeminiSource {
                    tr: tr::GeminiToOpenAiStream::new(model, id, created, usage),
                    scanner: weir_sse::SseScanner::new(),
                    seen: false,
                };
                (
                    format!("{model_path}:streamGenerateContent?alt=sse"),
                    body,
                    Box::new(ItemStream::new(src, protocol)),
                )
            } else {
                let f = move |b: &[u8]| {
                    let resp: gm::GenerateContentResponse = serde_json::from_slice(b)
                        .map_err(|e| Error::BadUpstream(format!("Gemini answer: {e}")))?;
                    let out = tr::gemini_to_openai_response(resp, &model, id, created)?;
                    let usage = out.usage.as_ref().map(Usage::from_openai);
                    Ok((shape::chat_json_for_client(protocol, out)?, usage))
                };
                (
                    format!("{model_path}:generateContent"),
                    body,
                    Box::new(TranslateJson::new(Box::new(f))),
                )
            }
        }
        ClientApi::Embeddings if p.dialect == Dialect::Gemini => {
            let req: EmbeddingsRequest = serde_json::from_slice(&c.body)
                .map_err(|e| Error::BadRequest(format!("embeddings request: {e}")))?;
            // batchEmbedContents reports no token count: it is counted here (and marked so).
            let tokens = req
                .input
                .clone()
                .into_texts()
                .map_or(0, |t| t.iter().map(|s| estimate::count(s)).sum());
            let body = serde_json::to_vec(&tr::gemini_embeddings_request(req, input.model)?)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            let model = input.model.to_string();
            let f = move |b: &[u8]| {
                let resp: gm::BatchEmbedContentsResponse = serde_json::from_slice(b)
                    .map_err(|e| Error::BadUpstream(format!("Gemini embeddings: {e}")))?;
                let out = tr::gemini_embeddings_response(resp, &model, tokens);
                let bytes =
                    serde_json::to_vec(&out).map_err(|e| Error::BadUpstream(e.to_string()))?;
                Ok((bytes, None))
            };
            (
                format!("{model_path}:batchEmbedContents"),
                body,
                Box::new(TranslateJson::new(Box::new(f))),
            )
        }
        _ => return Err(unsupported()),
    };
    let mut headers = vec![("content-type", "application/json".to_string())];
    match (p.dialect, input.bearer, input.key) {
        (Dialect::Vertex, Some(token), _) => {
            headers.push(("authorization", format!("Bearer {token}")))
        }
        (Dialect::Vertex, None, _) => return Err(Error::Auth("no access token for Vertex".into())),
        (_, _, Some(k)) => headers.push(("x-goog-api-key", k.secret.expose().to_string())),
        _ => {}
    }
    Ok(UpstreamCall {
        method: "POST",
        path,
        headers,
        body: body.into(),
        shaper,
        binary_stream: false,
    })
}

struct GeminiSource {
    tr: tr::GeminiToOpenAiStream,
    scanner: weir_sse::SseScanner,
    seen: bool,
}

impl ItemSource for GeminiSource {
    fn push_bytes(&mut self, chunk: &[u8], items: &mut Vec<oa::StreamItem>) -> Result<()> {
        let (tr, seen) = (&mut self.tr, &mut self.seen);
        shape::scan(&mut self.scanner, chunk, |_, data| {
            *seen = true;
            // Each event is a whole GenerateContentResponse, or an error object.
            if let Ok(err) = serde_json::from_slice::<gm::ErrorBody>(data) {
                tr.push_error(err, items);
                return Ok(());
            }
            let resp: gm::GenerateContentResponse = serde_json::from_slice(data)
                .map_err(|e| Error::BadUpstream(format!("Gemini chunk: {e}")))?;
            tr.push(resp, items);
            Ok(())
        })
    }

    fn finish(&mut self, items: &mut Vec<oa::StreamItem>) -> bool {
        self.tr.finish(items)
    }

    fn usage(&self) -> Option<Usage> {
        self.seen.then(|| self.tr.usage())
    }
}
