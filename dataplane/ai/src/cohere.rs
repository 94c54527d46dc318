//! Cohere v2: chat via `/v2/chat` (SSE events typed by their `type` field) and embeddings via
//! `/v2/embed`. Requests go through the OpenAI pivot; answers come back as OpenAI chunks.

use weir_llm_wire::cohere as co;
use weir_llm_wire::embeddings::EmbeddingsRequest;
use weir_llm_wire::openai as oa;
use weir_llm_wire::translate::cohere as tr;
use weir_llm_wire::Usage;

use crate::api::ClientApi;
use crate::call::{as_openai_chat, CallInput, UpstreamCall};
use crate::shape::{self, ItemSource, ItemStream, Shaper, TranslateJson};
use crate::{Error, Result};

pub(crate) fn build(input: &CallInput<'_>) -> Result<UpstreamCall> {
    let c = input.client;
    let p = input.provider;
    let created = input
        .now
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let protocol = c.api.protocol();
    let base = p.base.as_ref().map_or("", |b| b.path.as_str());
    let (path, body, shaper): (&str, Vec<u8>, Box<dyn Shaper>) = match c.api {
        ClientApi::Chat | ClientApi::Messages => {
            let mut req = as_openai_chat(input)?;
            // The chat endpoint is chosen by `stream` in the body; the translator keeps it.
            req.stream_options = None;
            let body = serde_json::to_vec(&tr::openai_to_cohere_request(req)?)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            let model = input.model.to_string();
            if c.stream {
                let usage = c.include_usage || protocol == crate::Protocol::Anthropic;
                let src = CohereSource {
                    tr: tr::CohereToOpenAiStream::new(model, created, usage),
                    scanner: weir_sse::SseScanner::new(),
                    seen: false,
                };
                ("/v2/chat", body, Box::new(ItemStream::new(src, protocol)))
            } else {
                let f = move |b: &[u8]| {
                    let resp: co::ChatResponse = serde_json::from_slice(b)
                        .map_err(|e| Error::BadUpstream(format!("Cohere answer: {e}")))?;
                    let out = tr::cohere_to_openai_response(resp, &model, created)?;
                    let usage = out.usage.as_ref().map(Usage::from_openai);
                    Ok((shape::chat_json_for_client(protocol, out)?, usage))
                };
                ("/v2/chat", body, Box::new(TranslateJson::new(Box::new(f))))
            }
        }
        ClientApi::Embeddings => {
            let req: EmbeddingsRequest = serde_json::from_slice(&c.body)
                .map_err(|e| Error::BadRequest(format!("embeddings request: {e}")))?;
            let body = serde_json::to_vec(&tr::cohere_embeddings_request(req, input.model)?)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            let model = input.model.to_string();
            let f = move |b: &[u8]| {
                let resp: co::EmbedResponse = serde_json::from_slice(b)
                    .map_err(|e| Error::BadUpstream(format!("Cohere embeddings: {e}")))?;
                let out = tr::cohere_embeddings_response(resp, &model);
                let usage = Usage {
                    input: out.usage.prompt_tokens,
                    ..Default::default()
                };
                let bytes =
                    serde_json::to_vec(&out).map_err(|e| Error::BadUpstream(e.to_string()))?;
                Ok((bytes, Some(usage)))
            };
            ("/v2/embed", body, Box::new(TranslateJson::new(Box::new(f))))
        }
        _ => {
            return Err(Error::Unsupported {
                provider: p.name().to_string(),
                kind: p.config.kind.as_str(),
                api: c.api.as_str(),
            })
        }
    };
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(k) = input.key {
        headers.push(("authorization", format!("Bearer {}", k.secret.expose())));
    }
    Ok(UpstreamCall {
        method: "POST",
        path: format!("{base}{path}"),
        headers,
        body: body.into(),
        shaper,
        binary_stream: false,
    })
}

struct CohereSource {
    tr: tr::CohereToOpenAiStream,
    scanner: weir_sse::SseScanner,
    seen: bool,
}

impl ItemSource for CohereSource {
    fn push_bytes(&mut self, chunk: &[u8], items: &mut Vec<oa::StreamItem>) -> Result<()> {
        let (tr, seen) = (&mut self.tr, &mut self.seen);
        shape::scan(&mut self.scanner, chunk, |_, data| {
            *seen = true;
            let ev: co::StreamEvent = serde_json::from_slice(data)
                .map_err(|e| Error::BadUpstream(format!("Cohere event: {e}")))?;
            tr.push(ev, items);
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
