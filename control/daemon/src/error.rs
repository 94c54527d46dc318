//! The daemon's errors: [`Error`] for starting up and persisting, [`ApiError`] for what the admin API
//! answers (it becomes a JSON error response in one place, [`ApiError::to_response`]).

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::http::Response;

/// Why the daemon could not start, or could not persist a generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`create state dir`, `write`, `bind`, ...).
        what: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A stored generation could not be encoded.
    #[error("cannot encode generation {generation}: {source}")]
    Encode {
        /// Generation number.
        generation: u64,
        /// The cause.
        source: serde_json::Error,
    },
    /// The config file given at start-up is invalid and there is no stored generation to run.
    #[error("{0}")]
    Config(#[from] weir_config::Error),
    /// Nothing to run: no stored generation and no `--config`.
    #[error("no generation stored in {} and no --config given", .0.display())]
    NothingToRun(PathBuf),
    /// Another daemon answers on the socket path.
    #[error("{}: another weir-control is already listening there", .0.display())]
    SocketInUse(PathBuf),
    /// A setting is out of range.
    #[error("{0}")]
    Setting(String),
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// Result with the daemon's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem with a submitted config, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiProblem {
    /// 1-based line in the submitted body, when known.
    pub line: Option<usize>,
    /// Field path (`listeners[0].routes[1].cluster`); empty when the whole document is wrong.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<weir_config::Problem> for ApiProblem {
    fn from(p: weir_config::Problem) -> Self {
        ApiProblem {
            line: p.line,
            field: p.field,
            message: p.message,
        }
    }
}

/// An error answer of the admin API: `{"error":{"type", "message", "problems"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable kind: `invalid_config`, `not_found`, `bad_request`, ...
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Problems of an invalid config (empty otherwise).
    pub problems: Vec<ApiProblem>,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// 422 with the problems found.
    pub fn invalid(problems: Vec<ApiProblem>) -> Self {
        let message = match problems.len() {
            1 => "the config is invalid: 1 problem".to_string(),
            n => format!("the config is invalid: {n} problems"),
        };
        ApiError {
            status: 422,
            kind: "invalid_config",
            message,
            problems,
        }
    }

    /// Any status and kind.
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "type": self.kind,
                "message": self.message,
                "problems": self.problems,
            }
        })
    }

    /// The response.
    pub fn to_response(&self) -> Response {
        Response::json(self.status, &self.to_json())
    }
}

impl From<weir_config::Error> for ApiError {
    fn from(e: weir_config::Error) -> Self {
        match e {
            weir_config::Error::Invalid { problems, .. } => {
                ApiError::invalid(problems.into_iter().map(ApiProblem::from).collect())
            }
            weir_config::Error::Read { .. } => ApiError::internal(e.to_string()),
        }
    }
}
