//! Errors of signing and token minting. None of them carries secret material.

/// Why a credential could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The service-account key file is not JSON of the expected shape (position only: the
    /// parser's message could quote the file).
    #[error("service-account key is not valid JSON (line {line}, column {column})")]
    Json {
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
    },
    /// The key file parses but says something unusable.
    #[error("service-account key: {0}")]
    ServiceAccount(&'static str),
    /// The private key is not a PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block.
    #[error("private key: {0}")]
    PrivateKey(&'static str),
    /// ring refused the key (its reason: `InvalidEncoding`, `TooSmall`, …; never key bytes).
    #[error("private key rejected: {0}")]
    KeyRejected(String),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// The token endpoint's answer is not a token.
    #[error("token response: {0}")]
    TokenResponse(&'static str),
    /// The token endpoint refused (`{"error": …, "error_description": …}`).
    #[error("token endpoint refused: {error}: {description}")]
    TokenRefused {
        /// OAuth error code (`invalid_grant`, …).
        error: String,
        /// Its description.
        description: String,
    },
}

impl Error {
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        Error::Json {
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
