//! Errors of the SSE scanner and the event-stream decoder. Every one of them means the upstream
//! sent a stream Weir will not follow further: the scanner or decoder that returned it stays failed
//! (each later call returns the same error), and the caller ends the response.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stream this crate refuses to go on reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An SSE line, or the joined `data` of one event, is longer than the configured limit.
    #[error("SSE event larger than the limit of {limit} bytes")]
    EventTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The stream ended inside an SSE event or an event-stream message.
    #[error("stream ended inside an event")]
    Truncated,
    /// An event-stream message declares a total length below the 16-byte minimum.
    #[error("event-stream message length {0} is below the 16-byte minimum")]
    MessageTooShort(u32),
    /// An event-stream message declares a total length above the configured limit.
    #[error("event-stream message length {len} exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The declared total length.
        len: u32,
        /// The configured limit.
        limit: usize,
    },
    /// The headers length does not fit in the message's total length.
    #[error("event-stream headers length {headers} does not fit a message of {total} bytes")]
    HeadersLength {
        /// Declared headers length.
        headers: u32,
        /// Declared total length.
        total: u32,
    },
    /// The prelude CRC32 does not match the first 8 bytes.
    #[error("event-stream prelude CRC mismatch (sent {sent:#010x}, computed {computed:#010x})")]
    PreludeCrc {
        /// The CRC the message carries.
        sent: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// The message CRC32 does not match the message.
    #[error("event-stream message CRC mismatch (sent {sent:#010x}, computed {computed:#010x})")]
    MessageCrc {
        /// The CRC the message carries.
        sent: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// A header is malformed: unknown value type, a length past the headers' end, invalid UTF-8.
    #[error("malformed event-stream header: {0}")]
    BadHeader(&'static str),
    /// The encoder was asked for something the framing cannot express.
    #[error("cannot encode event-stream message: {0}")]
    Encode(&'static str),
}
