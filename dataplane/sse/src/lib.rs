//! `weir-sse`: the stream framings of LLM responses, scanned in place.
//!
//! - [`SseScanner`] is an incremental Server-Sent Events parser (WHATWG rules). The proxy feeds it
//!   each response chunk as it arrives, split anywhere, and it reports every complete [`Event`]
//!   (type, joined `data`, last event ID, `retry`, and the byte span it occupies in the chunk)
//!   without copying: `data` borrows from the chunk unless the event spans chunks or has several
//!   `data` lines, and then a small buffer reused across events holds it. Lines and events are
//!   bounded ([`SseScanner::with_max_event_size`]) so a hostile upstream cannot grow memory.
//! - [`is_done`] and [`find_usage`] are the two looks the gateway takes into an event's data: the
//!   OpenAI `[DONE]` marker, and the slice of the top-level `usage` object (OpenAI chunks,
//!   Anthropic `message_start` / `message_delta`), found without parsing the JSON.
//! - [`eventstream`] decodes (and encodes) the AWS event-stream binary framing of Bedrock's
//!   `ConverseStream`: [`eventstream::Decoder`] checks both CRCs, the lengths and a size limit, and
//!   reports [`eventstream::Message`]s with their typed headers and payload.
//!
//! Where it sits on the request path: the response-body phase (`on_response_body`, synchronous,
//! per chunk) of the AI filters. Token accounting watches the stream for usage, protocol
//! translation rewrites it event by event, and the chunks themselves flow on to the client
//! untouched: nothing here owns or re-buffers the body.
//!
//! Errors are one [`Error`] enum; a scanner or decoder that returned one stays failed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crc32;
mod error;
pub mod eventstream;
mod sse;
mod usage;

pub use error::{Error, Result};
pub use sse::{Event, SseScanner, DEFAULT_MAX_EVENT_SIZE};
pub use usage::{find_usage, is_done};
