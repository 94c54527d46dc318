//! `weir-tls`: TLS on rustls with the aws-lc-rs provider and monoio-rustls streams, towards clients
//! (listeners) and towards upstreams (clusters and LLM providers).
//!
//! Towards clients:
//! - [`ServerOptions`] → [`ServerTls`]: a listener's `rustls::ServerConfig`, built once per config
//!   change: certificates picked by SNI ([`CertStore`], exact and wildcard names, RSA and ECDSA,
//!   the first as the default) and reloaded when their files change (a watcher thread,
//!   [`watch`]), TLS 1.2 and 1.3 or 1.3 only, ALPN, session tickets shared by every core
//!   (AES-256-GCM, keys rotated every six hours: `ticket`), and client certificates (mutual TLS,
//!   required or optional).
//! - [`Acceptor`]: a core's copy with its own session cache; [`Acceptor::accept`] runs the
//!   handshake and says what it settled ([`SessionInfo`]: SNI, ALPN, version, resumption, the
//!   client's [`PeerIdentity`]) or why it failed ([`HandshakeError`], with a metric reason).
//! - [`ClientRead`]/[`ClientWrite`]: the halves of a client connection, plain or TLS.
//!
//! Towards upstreams:
//! - [`ClientOptions`] → [`Connector`]: a `rustls::ClientConfig` built once per config change of
//!   a cluster (never on a request): the trusted roots (the system store plus the bundled
//!   Mozilla roots by default; a `ca_file` replaces them), an optional client certificate
//!   (mutual TLS), an optional server-name override, ALPN `http/1.1`, and, for tests only, a
//!   verifier that accepts anything (`insecure_skip_verify`, logged as a warning).
//! - [`MaybeTls`]: an upstream connection that is plain TCP or TLS, implementing monoio's
//!   `AsyncReadRent`/`AsyncWriteRent` and `Splitable`, so the proxy reads, writes, pools and
//!   tunnels both kinds alike.
//!
//! Both ways, the crypto is aws-lc-rs's, with two changes for the handshake's cost: TLS 1.3 key
//! schedules key HMAC once per secret (`hkdf`), and random bytes (X25519 keys included) come from
//! a per-thread pool of the generator's output (`random`).
//!
//! Where it sits: `weir-upstream` opens a connection (TCP connect, then
//! [`Connector::connect`], both within the cluster's connect timeout) and pools the resulting
//! [`MaybeTls`]; a keep-alive TLS connection is reused without a new handshake. The health
//! checker and the AI key probe connect the same way.
//!
//! No `unsafe` but one call: `random` registers a `pthread_atfork` child handler (a fork
//! counter), which is cheaper than a `getpid` system call per draw.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod certs;
mod config;
mod downstream;
mod error;
mod hkdf;
mod identity;
mod random;
mod server;
mod stream;
mod ticket;
pub mod watch;

pub use certs::{CertSpec, CertStore};
pub use config::{default_roots, load_certs, load_key, server_name, ClientOptions, Connector};
pub use downstream::{split_plain, split_tls, ClientRead, ClientWrite};
pub use error::{Error, Result};
pub use identity::{dns_names, peer_identity, PeerIdentity};
pub use server::{Acceptor, HandshakeError, ServerOptions, ServerStream, ServerTls, SessionInfo};
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
