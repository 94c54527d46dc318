//! Errors of the AI layer. Each becomes a [`weir_filter::ProxyError`] (and so an error in the
//! client's protocol) through [`Error::to_proxy`].

use weir_filter::{ProxyError, Side};

/// What went wrong building or answering an LLM call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The config cannot be compiled (a missing secret, a bad pattern).
    #[error("{0}")]
    Config(String),
    /// The client's body is not valid JSON or misses a required field.
    #[error("invalid request body: {0}")]
    BadRequest(String),
    /// The request asks for something the chosen provider's protocol cannot express.
    #[error("{0}")]
    Untranslatable(String),
    /// The provider has no such API (embeddings from Anthropic, say).
    #[error("provider `{provider}` ({kind}) has no {api} API")]
    Unsupported {
        /// Provider name.
        provider: String,
        /// Provider type.
        kind: &'static str,
        /// The API asked for.
        api: &'static str,
    },
    /// The provider's answer could not be read or carried back.
    #[error("provider answer unreadable: {0}")]
    BadUpstream(String),
    /// Credentials could not be made (a service account that does not sign).
    #[error("provider credentials: {0}")]
    Auth(String),
}

impl Error {
    /// The request-path error the client gets.
    pub fn to_proxy(&self) -> ProxyError {
        let (status, kind, side) = match self {
            Error::Config(_) => (500, "ai_config", Side::Internal),
            Error::BadRequest(_) => (400, "invalid_request", Side::Downstream),
            Error::Untranslatable(_) => (400, "untranslatable_field", Side::Downstream),
            Error::Unsupported { .. } => (400, "unsupported_api", Side::Downstream),
            Error::BadUpstream(_) => (502, "provider_bad_response", Side::Upstream),
            Error::Auth(_) => (502, "provider_auth", Side::Internal),
        };
        ProxyError::new(status, kind, side, self.to_string())
    }
}

impl From<weir_llm_wire::Error> for Error {
    fn from(e: weir_llm_wire::Error) -> Self {
        match e {
            weir_llm_wire::Error::Untranslatable { .. } => Error::Untranslatable(e.to_string()),
            weir_llm_wire::Error::Invalid { .. } => Error::BadRequest(e.to_string()),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
