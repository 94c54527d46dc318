//! Why a filter could not be built from its config.
//!
//! weir-config validates a config before it reaches the data plane, so these are rare; but a
//! snapshot is data from another process, and a core that cannot build a filter must refuse the
//! generation (NACK with this message) rather than panic.

/// A filter config that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The filter is not one this crate builds (`auth` and `quota` need the runtime's shared state).
    #[error("{0}")]
    NotHere(&'static str),
    /// A header name is not an RFC 9110 token.
    #[error("{filter}: `{name}` is not a valid header name")]
    HeaderName {
        /// The filter (`headers`, `cors`).
        filter: &'static str,
        /// The name as configured.
        name: String,
    },
    /// A header value holds a control character (CR, LF, NUL...), which would let it forge fields.
    #[error("headers: the value of `{name}` contains a control character")]
    HeaderValue {
        /// The field the value belongs to.
        name: String,
    },
    /// The `headers` filter may not touch this field: framing and hop-by-hop fields are made by the
    /// codec (editing them would let a request be read two ways), and `host` may only be set.
    #[error("headers: `{name}` cannot be {op} by a filter ({why})")]
    ReservedHeader {
        /// The field.
        name: String,
        /// `set`, `added` or `removed`.
        op: &'static str,
        /// Why not.
        why: &'static str,
    },
    /// CORS with no allowed origin.
    #[error("cors: allow_origins lists no origin")]
    NoOrigins,
    /// A CORS origin pattern that is neither `*`, `*.domain`, nor an origin.
    #[error("cors: `{0}` is not an origin pattern (use `*`, `https://app.example.com` or `*.example.com`)")]
    Origin(String),
    /// Credentials together with the `*` origin: browsers refuse it, and echoing any origin with
    /// credentials would let every site read the user's data.
    #[error("cors: credentials cannot be allowed for origin `*`")]
    CredentialsWithAnyOrigin,
    /// A CORS method that is not an HTTP token.
    #[error("cors: `{0}` is not a valid method")]
    Method(String),
    /// An IP ACL entry that is neither an address nor a CIDR.
    #[error("ip_acl: `{0}` is not an IP address or CIDR")]
    Cidr(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
