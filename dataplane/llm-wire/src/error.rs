//! Errors of translation. Both become a 400 in the client's protocol when the client's request is
//! at fault, or a 502 when a provider's answer cannot be carried back.

/// Why a body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The field has no counterpart in the target protocol. Answered with 400 naming the field,
    /// because dropping it would silently change what the client asked for.
    #[error("`{field}` cannot be expressed in the provider's protocol")]
    Untranslatable {
        /// The field, as a path in the source body (`n`, `messages[2].content[1].type=input_audio`).
        field: String,
    },
    /// The field is present but its value is malformed (tool arguments that are not JSON, an
    /// image `data:` URL without base64, …).
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field, as a path in the source body.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn untranslatable(field: impl Into<String>) -> Self {
        Error::Untranslatable {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: &'static str) -> Self {
        Error::Invalid {
            field: field.into(),
            reason,
        }
    }

    /// The offending field.
    pub fn field(&self) -> &str {
        match self {
            Error::Untranslatable { field } | Error::Invalid { field, .. } => field,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
