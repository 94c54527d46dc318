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
    /// TCP connect (and the TLS handshake, for a TLS cluster) took longer than the connect
    /// timeout.
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    /// The TLS handshake failed (the certificate did not verify, an alert, a reset).
    #[error("TLS to {0}: {1}")]
    Tls(String, weir_tls::Error),
    /// The cluster's TLS config could not be built (a CA file that does not parse, a server
    /// name that is not one).
    #[error("TLS config: {0}")]
    TlsConfig(weir_tls::Error),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
