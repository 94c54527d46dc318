//! `weir-h2`: the HTTP/2 plumbing of Weir's data plane, on monoio.
//!
//! - [`Io`]: a monoio connection's halves as the `tokio::io` traits the `h2` crate drives (no
//!   tokio runtime runs; h2 only needs the traits).
//! - [`pipe`]: the bounded in-process pipe through which each h2 stream is served by the
//!   HTTP/1.1 request path, so every route, filter, AI feature and quota works the same over h2.
//! - [`head`]: h2 heads to and from HTTP/1.1, and the gRPC status of an answer the gateway made.
//! - [`server`]: an h2 server builder from a listener's limits (streams, windows, frame and
//!   header sizes, and the rapid-reset bound).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod head;
mod io;
pub mod pipe;

pub use io::Io;

/// The HTTP/2 limits of a listener, as the server's settings and protections.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// Initial window of each stream.
    pub initial_stream_window: u32,
    /// Initial window of the connection.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a larger header list (over any number of CONTINUATION
    /// frames) is refused.
    pub max_header_list_size: u32,
    /// Client resets of unanswered streams pending at once before GOAWAY (rapid reset).
    pub max_pending_resets: usize,
    /// Response bytes buffered per stream.
    pub max_send_buffer: usize,
}

/// An h2 server builder with these limits.
pub fn server(l: &ServerLimits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(l.max_concurrent_streams)
        .initial_window_size(l.initial_stream_window)
        .initial_connection_window_size(l.initial_connection_window)
        .max_frame_size(l.max_frame_size)
        .max_header_list_size(l.max_header_list_size)
        .max_pending_accept_reset_streams(l.max_pending_resets)
        // Streams the server itself resets for protocol errors, before the connection goes.
        .max_local_error_reset_streams(Some(l.max_pending_resets.saturating_mul(8)))
        .max_send_buffer_size(l.max_send_buffer)
        // Resets remembered so late frames of a reset stream are not connection errors.
        .max_concurrent_reset_streams(l.max_pending_resets.saturating_mul(4));
    b
}

/// The HTTP/2 connection preface a cleartext client with prior knowledge sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` starts (or, while shorter, could start) with the connection preface.
pub fn is_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(PREFACE.len());
    n > 0 && buf[..n] == PREFACE[..n]
}
