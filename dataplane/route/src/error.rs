//! Errors of compiling routes. The control daemon validates configs before they reach a core, so these
//! mostly guard against a snapshot that skipped validation; each names the field at fault.

/// A route condition or rewrite that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A regular expression does not compile (or compiles too large).
    #[error("{field}: invalid regex `{pattern}`: {source}")]
    Regex {
        /// Where in the route, e.g. `match.headers[0].regex`.
        field: String,
        /// The pattern as configured.
        pattern: String,
        /// What the regex compiler said.
        #[source]
        source: Box<regex::Error>,
    },
    /// Any other invalid setting.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where in the route, e.g. `match.host[1]`.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: &'static str) -> Self {
        Error::Invalid {
            field: field.into(),
            reason,
        }
    }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Compiles `pattern` so that it must match the whole input: `^(?:pattern)$`.
pub(crate) fn whole_regex(field: impl Into<String>, pattern: &str) -> Result<regex::bytes::Regex> {
    regex(field, pattern, &format!("^(?:{pattern})$"))
}

/// Compiles `source`, reporting errors against the configured `pattern`.
pub(crate) fn regex(
    field: impl Into<String>,
    pattern: &str,
    source: &str,
) -> Result<regex::bytes::Regex> {
    regex::bytes::Regex::new(source).map_err(|e| Error::Regex {
        field: field.into(),
        pattern: pattern.to_string(),
        source: Box::new(e),
    })
}
