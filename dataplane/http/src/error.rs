//! Codec errors. Each knows the status it becomes when the client caused it; after any of them the
//! connection is closed, because the framing of what follows can no longer be trusted (RFC 9112 §6.3).

/// A request or response the codec refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed syntax or ambiguous framing: 400.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Request line longer than the limit: 414.
    #[error("request line too long")]
    UriTooLong,
    /// Too many header fields or too many header bytes: 431.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// Body longer than the limit: 413.
    #[error("request body too large")]
    BodyTooLarge,
    /// A transfer coding or method the gateway does not implement: 501.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// HTTP version other than 1.0 or 1.1: 505.
    #[error("HTTP version not supported")]
    VersionNotSupported,
    /// The upstream sent something that is not valid HTTP/1.1: becomes 502.
    #[error("invalid upstream response: {0}")]
    BadResponse(&'static str),
}

impl Error {
    /// The status sent to the client.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::UriTooLong => 414,
            Error::HeadersTooLarge => 431,
            Error::BodyTooLarge => 413,
            Error::NotImplemented(_) => 501,
            Error::VersionNotSupported => 505,
            Error::BadResponse(_) => 502,
        }
    }
}

/// Result with the codec's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
