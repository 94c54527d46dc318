//! Errors of building clusters and of reaching endpoints.

/// Why an upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A DNS name did not resolve when the cluster was built.
    #[error("endpoint `{0}` does not resolve: {1}")]
    Resolve(String, String),
    /// Every endpoint is unhealthy or ejected.
    #[error("no healthy endpoint in cluster `{0}`")]
    NoHealthyEndpoint(String),
    /// The endpoint's connection limit is reached.
    #[error("connection limit of {0} reached")]
    Overflow(String),
    /// TCP connect failed.
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    /// TCP connect took longer than the connect timeout.
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
