//! `weir-tls`: TLS towards upstreams (clusters and LLM providers), on rustls with the *ring*
//! provider and monoio-rustls streams.
//!
//! - [`ClientOptions`] → [`Connector`]: a `rustls::ClientConfig` built once per config change of
//!   a cluster (never on a request): the trusted roots (the system store plus the bundled
//!   Mozilla roots by default; a `ca_file` replaces them), an optional client certificate
//!   (mutual TLS), an optional server-name override, ALPN `http/1.1`, and, for tests only, a
//!   verifier that accepts anything (`insecure_skip_verify`, logged as a warning).
//! - [`MaybeTls`]: an upstream connection that is plain TCP or TLS, implementing monoio's
//!   `AsyncReadRent`/`AsyncWriteRent` and `Splitable`, so the proxy reads, writes, pools and
//!   tunnels both kinds alike.
//!
//! Where it sits: `weir-upstream` opens a connection (TCP connect, then
//! [`Connector::connect`], both within the cluster's connect timeout) and pools the resulting
//! [`MaybeTls`]; a keep-alive TLS connection is reused without a new handshake. The health
//! checker and the AI key probe connect the same way.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod stream;

pub use config::{default_roots, load_certs, load_key, server_name, ClientOptions, Connector};
pub use error::{Error, Result};
pub use stream::{MaybeTls, MaybeTlsReadHalf, MaybeTlsWriteHalf, TlsStream};

/// The host part of `host:port` (`[v6]:port` gives `v6`), for the server name of an endpoint.
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests;
