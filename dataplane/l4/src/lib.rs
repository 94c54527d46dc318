//! `weir-l4`: what a listener needs below HTTP.
//!
//! - [`proxy_protocol`]: the PROXY protocol header a fronting load balancer puts before the
//!   client's bytes (v1 text and v2 binary): [`proxy_protocol::parse`] reads one from the start of
//!   a connection, [`proxy_protocol::encode`] writes one towards an upstream (and
//!   [`proxy_protocol::encode_local`] one that declares no client, for the gateway's own
//!   connections).
//! - [`sni`]: the server name of a TLS ClientHello, read without terminating TLS, so a
//!   pass-through listener can route by it and forward the bytes untouched.
//! - [`copy`]: a bidirectional copy between two monoio streams with an idle timeout, each
//!   direction's write awaited before its next read (the backpressure of a TCP proxy).
//!
//! Where it sits: `weir-proxy` reads a PROXY header right after the accept (before TLS and
//! HTTP) on listeners that trust their source, and serves `tcp` listeners (raw TCP and TLS
//! pass-through) with these pieces; `weir-upstream` writes the header first on the connections
//! of clusters with `proxy_protocol`. The parsers are pure functions over byte slices, fuzzable
//! and unit-tested here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod copy;
pub mod proxy_protocol;
pub mod sni;
