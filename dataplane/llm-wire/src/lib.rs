//! `weir-llm-wire`: the wire formats of the OpenAI Chat Completions and Anthropic Messages APIs,
//! and translation between them in both directions, as pure functions (no I/O, no clock).
//!
//! - [`openai`] and [`anthropic`]: serde types for requests, responses, stream items and error
//!   bodies. Open-ended objects keep unknown fields in `extra`, so a body that is parsed and
//!   written again (pass-through with a model rename) loses nothing.
//! - [`translate`]: requests ([`translate::openai_to_anthropic_request`],
//!   [`translate::anthropic_to_openai_request`]), responses, errors and statuses, stop reasons,
//!   and streams event by event ([`translate::OpenAiToAnthropicStream`],
//!   [`translate::AnthropicToOpenAiStream`]). A request field the target cannot express is an
//!   [`Error::Untranslatable`] naming it, which the gateway answers with 400: never a silent drop.
//! - [`Usage`]: token counts normalized across both formats, for quotas, metrics and logs.
//! - [`sse`]: writing server-sent events in each protocol's framing.
//!
//! On the request path this sits inside the AI provider filter: the client's request body is
//! parsed into the client protocol's types and translated (or passed through) in the request-body
//! phase; the provider's answer is translated back in the response-body phase, one SSE event at a
//! time for streams, and provider errors become errors in the client's protocol in the one place
//! where errors become responses.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod embeddings;
mod error;
pub mod gemini;
pub mod openai;
pub mod sse;
pub mod translate;
mod usage;

pub use error::{Error, Result};
pub use usage::Usage;
