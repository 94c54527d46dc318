//! Errors of building a TLS client config and of a TLS handshake.

use std::path::PathBuf;

/// Why TLS towards an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file was read but holds nothing usable (no certificate, no key, bad base64).
    #[error("`{path}`: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Only one of the client certificate and key was given.
    #[error("a client certificate needs its key and a key its certificate")]
    ClientAuthIncomplete,
    /// rustls refused part of the config (a key that does not fit the certificate, say).
    #[error("TLS config: {0}")]
    Config(rustls::Error),
    /// No trusted roots: the system store and the bundled roots were both empty.
    #[error("no trusted root certificates")]
    NoRoots,
    /// The host (or `sni` override) is not a DNS name or an IP address.
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    /// The server's certificate did not verify (unknown issuer, wrong name, expired...).
    #[error("certificate verification failed: {0}")]
    Certificate(rustls::Error),
    /// The handshake failed for another TLS reason (an alert, a protocol error).
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// The connection failed during the handshake.
    #[error("TLS handshake failed: {0}")]
    Io(std::io::Error),
}

impl Error {
    /// Sorts a handshake failure reported by monoio-rustls: rustls errors travel inside an
    /// `io::Error`, and a certificate problem deserves its own words.
    pub(crate) fn from_handshake(e: monoio_rustls::TlsError) -> Error {
        let io = match e {
            monoio_rustls::TlsError::Rustls(r) => return Error::from_rustls(r),
            monoio_rustls::TlsError::Io(io) => io,
        };
        match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(r) => Error::from_rustls(r.clone()),
            None => Error::Io(io),
        }
    }

    fn from_rustls(e: rustls::Error) -> Error {
        match e {
            rustls::Error::InvalidCertificate(_) => Error::Certificate(e),
            other => Error::Handshake(other),
        }
    }

    /// Whether the server's certificate was refused.
    pub fn is_certificate(&self) -> bool {
        matches!(self, Error::Certificate(_))
    }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
