//! Shapers: how a provider's successful answer becomes the client's, chunk by chunk.
//!
//! A stream is translated one event at a time: the upstream's framing (SSE or AWS event stream) is
//! scanned incrementally, each event decoded, translated and written in the client's framing at
//! once, so nothing but the event in flight is held. A same-protocol stream is passed through
//! event by event, its usage read in place (the one OpenAI usage chunk the gateway asked for on
//! the client's behalf is held back). A JSON answer is read whole (it is one object) and then
//! passed or translated.

use weir_llm_wire::{anthropic as an, openai as oa, translate, Usage};
use weir_sse::SseScanner;

use crate::api::Protocol;
use crate::{Error, Result};

/// Largest JSON answer read into memory (a larger one is a provider fault).
pub const MAX_JSON_ANSWER: usize = 32 << 20;

/// Turns the bytes of a provider's 2xx body into the client's.
pub trait Shaper {
    /// The `content-type` of the client's answer.
    fn content_type(&self) -> &'static str;
    /// Whether the answer streams (written as it comes) or is one JSON document.
    fn streaming(&self) -> bool;
    /// A piece of the upstream payload; client bytes are appended to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()>;
    /// The upstream body ended; trailing client bytes go to `out`. `Ok(false)`: it ended before
    /// the provider said the answer was complete.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool>;
    /// Token counts, once the provider reported them.
    fn usage(&self) -> Option<Usage>;
}

/// The event that ends a client stream on a failure after bytes were sent.
pub fn stream_error_event(protocol: Protocol, status: u16, message: &str, out: &mut Vec<u8>) {
    let body = match protocol {
        Protocol::OpenAi => serde_json::json!({"error": {
            "message": message,
            "type": weir_filter::openai_type(status),
            "param": null,
            "code": "stream_interrupted",
        }}),
        Protocol::Anthropic => serde_json::json!({"type": "error", "error": {
            "type": weir_filter::anthropic_type(status),
            "message": message,
        }}),
    };
    let event = (protocol == Protocol::Anthropic).then_some("error");
    let _ = weir_llm_wire::sse::write_sse_json(out, event, &body);
}

fn json_err(what: &str, e: serde_json::Error) -> Error {
    Error::BadUpstream(format!("{what}: {e}"))
}

/// Feeds `chunk` to `scanner`, handing each complete event's type and data to `on`; the first
/// error stops the handling.
pub fn scan(
    scanner: &mut SseScanner,
    chunk: &[u8],
    mut on: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let mut failed = None;
    scanner
        .feed(chunk, |ev| {
            if failed.is_none() {
                if let Err(e) = on(ev.event_type(), ev.data()) {
                    failed = Some(e);
                }
            }
        })
        .map_err(|e| Error::BadUpstream(format!("event stream: {e}")))?;
    failed.map_or(Ok(()), Err)
}

fn openai_usage(data: &[u8]) -> Option<Usage> {
    let raw = weir_sse::find_usage(data)?;
    serde_json::from_slice::<oa::Usage>(raw)
        .ok()
        .map(|u| Usage::from_openai(&u))
}

// === same protocol ===

/// An OpenAI-format stream passed to an OpenAI client.
pub struct OpenAiPassStream {
    scanner: SseScanner,
    /// The client did not ask for the usage chunk; the gateway did.
    hide_usage_chunk: bool,
    usage: Option<Usage>,
    done: bool,
    finished: bool,
}

impl OpenAiPassStream {
    /// A pass-through; `client_wants_usage` keeps the usage chunk.
    pub fn new(client_wants_usage: bool) -> Self {
        OpenAiPassStream {
            scanner: SseScanner::new(),
            hide_usage_chunk: !client_wants_usage,
            usage: None,
            done: false,
            finished: false,
        }
    }
}

impl Shaper for OpenAiPassStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (usage, done, hide) = (&mut self.usage, &mut self.done, self.hide_usage_chunk);
        scan(&mut self.scanner, chunk, |event, data| {
            if weir_sse::is_done(data) {
                *done = true;
            } else if let Some(u) = openai_usage(data) {
                *usage = Some(u);
                // The usage-only chunk has no choices; a client that did not ask never sees it.
                if hide && memchr::memmem::find(data, b"\"choices\":[]").is_some() {
                    return Ok(());
                }
            } else if memchr::memmem::find(data, b"\"choices\":[]").is_some()
                && memchr::memmem::find(data, b"\"error\"").is_none()
            {
                // A chunk with no choices and no usage (Azure's `prompt_filter_results`): OpenAI
                // never sends one, and clients read `choices[0]` of every chunk.
                return Ok(());
            }
            let name = (event != b"message").then(|| String::from_utf8_lossy(event).into_owned());
            weir_llm_wire::sse::write_sse(out, name.as_deref(), data);
            Ok(())
        })
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<bool> {
        self.finished = true;
        Ok(self.done)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// An Anthropic stream passed to an Anthropic client, its usage read on the way.
pub struct AnthropicPassStream {
    scanner: SseScanner,
    usage: Option<Usage>,
    stopped: bool,
}

impl AnthropicPassStream {
    /// A pass-through.
    pub fn new() -> Self {
        AnthropicPassStream {
            scanner: SseScanner::new(),
            usage: None,
            stopped: false,
        }
    }
}

impl Default for AnthropicPassStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Shaper for AnthropicPassStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (usage, stopped) = (&mut self.usage, &mut self.stopped);
        scan(&mut self.scanner, chunk, |event, data| {
            match event {
                b"message_start" => {
                    if let Some(u) = weir_sse::find_usage(data)
                        .and_then(|raw| serde_json::from_slice::<an::Usage>(raw).ok())
                    {
                        *usage = Some(Usage::from_anthropic(&u));
                    }
                }
                b"message_delta" => {
                    if let Some(d) = weir_sse::find_usage(data)
                        .and_then(|raw| serde_json::from_slice::<an::DeltaUsage>(raw).ok())
                    {
                        usage
                            .get_or_insert_with(Usage::default)
                            .merge_anthropic_delta(&d);
                    }
                }
                b"message_stop" => *stopped = true,
                _ => {}
            }
            weir_llm_wire::sse::write_sse(out, Some(&String::from_utf8_lossy(event)), data);
            Ok(())
        })
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<bool> {
        Ok(self.stopped)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// A JSON answer passed as it is; usage read from its top-level `usage`.
pub struct PassJson {
    buf: Vec<u8>,
    protocol: Protocol,
    usage: Option<Usage>,
}

impl PassJson {
    /// A pass-through of a JSON answer in `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        PassJson {
            buf: Vec::new(),
            protocol,
            usage: None,
        }
    }
}

impl Shaper for PassJson {
    fn content_type(&self) -> &'static str {
        "application/json"
    }
    fn streaming(&self) -> bool {
        false
    }
    fn feed(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        if self.buf.len() + chunk.len() > MAX_JSON_ANSWER {
            return Err(Error::BadUpstream("answer larger than 32 MiB".into()));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        self.usage = json_usage(self.protocol, &self.buf);
        out.append(&mut self.buf);
        Ok(true)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// The top-level usage of a JSON answer.
pub fn json_usage(protocol: Protocol, body: &[u8]) -> Option<Usage> {
    let raw = weir_sse::find_usage(body)?;
    match protocol {
        Protocol::OpenAi => serde_json::from_slice::<oa::Usage>(raw)
            .ok()
            .map(|u| Usage::from_openai(&u)),
        Protocol::Anthropic => serde_json::from_slice::<an::Usage>(raw)
            .ok()
            .map(|u| Usage::from_anthropic(&u)),
    }
}

/// A JSON answer translated whole by a function that also returns the usage.
pub struct TranslateJson {
    buf: Vec<u8>,
    f: Option<JsonFn>,
    usage: Option<Usage>,
}

/// A translation of a whole JSON answer: bytes in, client bytes and usage out.
pub type JsonFn = Box<dyn FnOnce(&[u8]) -> Result<(Vec<u8>, Option<Usage>)>>;

impl TranslateJson {
    /// A translator running `f` on the whole body.
    pub fn new(f: JsonFn) -> Self {
        TranslateJson {
            buf: Vec::new(),
            f: Some(f),
            usage: None,
        }
    }
}

impl Shaper for TranslateJson {
    fn content_type(&self) -> &'static str {
        "application/json"
    }
    fn streaming(&self) -> bool {
        false
    }
    fn feed(&mut self, chunk: &[u8], _out: &mut Vec<u8>) -> Result<()> {
        if self.buf.len() + chunk.len() > MAX_JSON_ANSWER {
            return Err(Error::BadUpstream("answer larger than 32 MiB".into()));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let f = self
            .f
            .take()
            .ok_or_else(|| Error::BadUpstream("answer finished twice".into()))?;
        let (bytes, usage) = f(&self.buf)?;
        self.usage = usage;
        out.extend_from_slice(&bytes);
        Ok(true)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

// === OpenAI chunks to the client ===

/// Where OpenAI stream items go: written as OpenAI chunks, or translated to Anthropic events.
pub enum ItemSink {
    /// An OpenAI client.
    OpenAi,
    /// An Anthropic client.
    Anthropic(Box<translate::OpenAiToAnthropicStream>),
}

impl ItemSink {
    /// The sink for a client protocol.
    pub fn for_client(protocol: Protocol) -> Self {
        match protocol {
            Protocol::OpenAi => ItemSink::OpenAi,
            Protocol::Anthropic => {
                ItemSink::Anthropic(Box::new(translate::OpenAiToAnthropicStream::new()))
            }
        }
    }

    fn push(&mut self, items: &mut Vec<oa::StreamItem>, out: &mut Vec<u8>) -> Result<()> {
        match self {
            ItemSink::OpenAi => {
                for item in items.drain(..) {
                    weir_llm_wire::sse::write_openai_item(out, &item)
                        .map_err(|e| json_err("writing a chunk", e))?;
                }
            }
            ItemSink::Anthropic(tr) => {
                let mut events = Vec::new();
                for item in items.drain(..) {
                    tr.push(item, &mut events);
                }
                write_anthropic(&events, out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        match self {
            ItemSink::OpenAi => {
                weir_llm_wire::sse::write_openai_done(out);
                Ok(true)
            }
            ItemSink::Anthropic(tr) => {
                let mut events = Vec::new();
                let complete = tr.finish(&mut events);
                write_anthropic(&events, out)?;
                Ok(complete)
            }
        }
    }
}

fn write_anthropic(events: &[an::StreamEvent], out: &mut Vec<u8>) -> Result<()> {
    for ev in events {
        weir_llm_wire::sse::write_anthropic_event(out, ev)
            .map_err(|e| json_err("writing an event", e))?;
    }
    Ok(())
}

/// An OpenAI-format stream to an Anthropic client.
pub struct OpenAiToAnthropic {
    scanner: SseScanner,
    tr: translate::OpenAiToAnthropicStream,
    events: Vec<an::StreamEvent>,
}

impl OpenAiToAnthropic {
    /// A translator for one stream.
    pub fn new() -> Self {
        OpenAiToAnthropic {
            scanner: SseScanner::new(),
            tr: translate::OpenAiToAnthropicStream::new(),
            events: Vec::new(),
        }
    }
}

impl Default for OpenAiToAnthropic {
    fn default() -> Self {
        Self::new()
    }
}

impl Shaper for OpenAiToAnthropic {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (tr, events) = (&mut self.tr, &mut self.events);
        scan(&mut self.scanner, chunk, |_, data| {
            if weir_sse::is_done(data) {
                return Ok(());
            }
            let item: oa::StreamItem =
                serde_json::from_slice(data).map_err(|e| json_err("OpenAI chunk", e))?;
            tr.push(item, events);
            write_anthropic(events, out)?;
            events.clear();
            Ok(())
        })
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let complete = self.tr.finish(&mut self.events);
        write_anthropic(&self.events, out)?;
        self.events.clear();
        Ok(complete)
    }
    fn usage(&self) -> Option<Usage> {
        self.tr.usage()
    }
}

/// An Anthropic stream to an OpenAI client.
pub struct AnthropicToOpenAi {
    scanner: SseScanner,
    tr: translate::AnthropicToOpenAiStream,
    items: Vec<oa::StreamItem>,
    saw_usage: bool,
}

impl AnthropicToOpenAi {
    /// A translator; `include_usage` as the client asked.
    pub fn new(include_usage: bool, created: u64) -> Self {
        AnthropicToOpenAi {
            scanner: SseScanner::new(),
            tr: translate::AnthropicToOpenAiStream::new(include_usage, created),
            items: Vec::new(),
            saw_usage: false,
        }
    }
}

impl Shaper for AnthropicToOpenAi {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (tr, items, saw) = (&mut self.tr, &mut self.items, &mut self.saw_usage);
        scan(&mut self.scanner, chunk, |event, data| {
            if event == b"ping" {
                return Ok(());
            }
            let ev: an::StreamEvent =
                serde_json::from_slice(data).map_err(|e| json_err("Anthropic event", e))?;
            if matches!(
                ev,
                an::StreamEvent::MessageStart { .. } | an::StreamEvent::MessageDelta { .. }
            ) {
                *saw = true;
            }
            tr.push(ev, items);
            ItemSink::OpenAi.push(items, out)
        })
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let complete = self.tr.finish(&mut self.items);
        ItemSink::OpenAi.push(&mut self.items, out)?;
        weir_llm_wire::sse::write_openai_done(out);
        Ok(complete)
    }
    fn usage(&self) -> Option<Usage> {
        self.saw_usage.then(|| self.tr.usage())
    }
}

// === OpenAI Responses API ===

/// Usage of the Responses API: `input_tokens`, `output_tokens` and their details.
#[derive(serde::Deserialize)]
struct ResponsesUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<CachedDetails>,
    #[serde(default)]
    output_tokens_details: Option<ReasoningDetails>,
}

#[derive(serde::Deserialize)]
struct CachedDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(serde::Deserialize)]
struct ReasoningDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

fn responses_usage(raw: &[u8]) -> Option<Usage> {
    let u: ResponsesUsage = serde_json::from_slice(raw).ok()?;
    Some(Usage {
        input: u.input_tokens,
        output: u.output_tokens,
        cached_input: u.input_tokens_details.map_or(0, |d| d.cached_tokens),
        cache_write: 0,
        reasoning: u.output_tokens_details.map_or(0, |d| d.reasoning_tokens),
    })
}

/// A Responses API stream, passed through; usage from `response.completed`.
pub struct ResponsesPassStream {
    scanner: SseScanner,
    usage: Option<Usage>,
    completed: bool,
}

impl ResponsesPassStream {
    /// A pass-through.
    pub fn new() -> Self {
        ResponsesPassStream {
            scanner: SseScanner::new(),
            usage: None,
            completed: false,
        }
    }
}

impl Default for ResponsesPassStream {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(serde::Deserialize)]
struct CompletedEvent<'a> {
    #[serde(borrow)]
    response: Option<&'a serde_json::value::RawValue>,
}

impl Shaper for ResponsesPassStream {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (usage, completed) = (&mut self.usage, &mut self.completed);
        scan(&mut self.scanner, chunk, |event, data| {
            if matches!(
                event,
                b"response.completed" | b"response.incomplete" | b"response.failed"
            ) {
                *completed = true;
                if let Some(resp) = serde_json::from_slice::<CompletedEvent<'_>>(data)
                    .ok()
                    .and_then(|e| e.response)
                {
                    *usage = weir_sse::find_usage(resp.get().as_bytes()).and_then(responses_usage);
                }
            }
            let name = (event != b"message").then(|| String::from_utf8_lossy(event).into_owned());
            weir_llm_wire::sse::write_sse(out, name.as_deref(), data);
            Ok(())
        })
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<bool> {
        Ok(self.completed)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// A Responses API JSON answer, passed through.
pub struct ResponsesPassJson {
    inner: PassJson,
    usage: Option<Usage>,
}

impl ResponsesPassJson {
    /// A pass-through.
    pub fn new() -> Self {
        ResponsesPassJson {
            inner: PassJson::new(Protocol::OpenAi),
            usage: None,
        }
    }
}

impl Default for ResponsesPassJson {
    fn default() -> Self {
        Self::new()
    }
}

impl Shaper for ResponsesPassJson {
    fn content_type(&self) -> &'static str {
        "application/json"
    }
    fn streaming(&self) -> bool {
        false
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.inner.feed(chunk, out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        self.usage = weir_sse::find_usage(&self.inner.buf).and_then(responses_usage);
        self.inner.finish(out)
    }
    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

// === translated streams of other protocols, through OpenAI chunks ===

/// A provider stream decoded into OpenAI stream items (Gemini, Bedrock, Cohere).
pub trait ItemSource {
    /// Decodes a piece of the upstream payload into items.
    fn push_bytes(&mut self, chunk: &[u8], items: &mut Vec<oa::StreamItem>) -> Result<()>;
    /// The upstream ended; last items. `false`: it ended before the answer was complete.
    fn finish(&mut self, items: &mut Vec<oa::StreamItem>) -> bool;
    /// Token counts so far.
    fn usage(&self) -> Option<Usage>;
}

/// A provider stream in another protocol, translated through OpenAI chunks to the client.
pub struct ItemStream<S> {
    src: S,
    sink: ItemSink,
    items: Vec<oa::StreamItem>,
}

impl<S: ItemSource> ItemStream<S> {
    /// Items from `src`, written for `protocol`.
    pub fn new(src: S, protocol: Protocol) -> Self {
        ItemStream {
            src,
            sink: ItemSink::for_client(protocol),
            items: Vec::new(),
        }
    }
}

impl<S: ItemSource> Shaper for ItemStream<S> {
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    fn streaming(&self) -> bool {
        true
    }
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.src.push_bytes(chunk, &mut self.items)?;
        self.sink.push(&mut self.items, out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let complete = self.src.finish(&mut self.items);
        self.sink.push(&mut self.items, out)?;
        Ok(self.sink.finish(out)? && complete)
    }
    fn usage(&self) -> Option<Usage> {
        self.src.usage()
    }
}

/// An OpenAI chat answer, written for the client's protocol.
pub fn chat_json_for_client(protocol: Protocol, resp: oa::ChatCompletion) -> Result<Vec<u8>> {
    let out = match protocol {
        Protocol::OpenAi => serde_json::to_vec(&resp),
        Protocol::Anthropic => serde_json::to_vec(&translate::openai_to_anthropic_response(resp)?),
    };
    out.map_err(|e| Error::BadUpstream(e.to_string()))
}
