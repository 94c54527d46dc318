//! `weir-http`: Weir's strict HTTP/1.1 codec, on `httparse`.
//!
//! - [`parse_request`] / [`parse_response`] read a head from the front of a `BytesMut` without
//!   copying: the head is split off and its fields are kept as spans of it ([`Headers`]), written
//!   back verbatim unless a filter asks for them as `Bytes` or changes them.
//!   Framing is decided here once ([`BodyKind`]), hop-by-hop fields are stripped, and everything a
//!   request smuggler relies on is refused: CL together with TE, duplicate CL, a TE other than a lone
//!   `chunked`, bare CR/LF, obs-fold, missing or duplicate Host.
//! - [`BodyDecoder`] scans a body as it streams (Content-Length, chunked, until-close), reporting
//!   payload ranges and where the message ends, so the proxy forwards the very buffers it read.
//!   Where a filter reads trailers, it also keeps a chunked body's trailer section
//!   ([`parse_trailers`] reads it, [`write_trailers`] writes it back without the fields a trailer
//!   may not carry).
//! - [`write_request_head`] / [`write_response_head`] serialize heads with fresh framing fields.
//!
//! It sits at both ends of the request path: downstream requests in, upstream responses back.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod body;
mod error;
mod head;
mod headers;

pub use body::{
    is_forbidden_trailer, parse_trailers, write_chunk_header, write_trailers, BodyDecoder, Scan,
};
pub use error::{Error, Result};
pub use head::{
    parse_request, parse_response, push_header, reason_phrase, write_request_head,
    write_request_head_except, write_response_head, BodyKind, HeadLimits, RequestHead,
    ResponseHead, Version,
};
pub use headers::{has_token, Fields, Header, Headers, HOP_BY_HOP};

#[cfg(test)]
mod tests;
