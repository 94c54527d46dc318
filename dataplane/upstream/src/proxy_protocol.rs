//! The PROXY protocol header a cluster with `proxy_protocol` sends first on each connection.
//!
//! Such a connection speaks for one downstream connection, as Envoy and HAProxy do it: its
//! header declares that client's address (the one a trusted balancer declared, when the
//! listener accepted a PROXY header) and the address the client connected to, and the pool keeps
//! it for that client connection alone ([`ClientConn::id`]): reused by the client's next
//! requests, never handed to another client. The gateway's own connections (active health
//! checks, plugin callouts) carry a header that declares no client: v2 `LOCAL`, v1
//! `PROXY UNKNOWN`, which an upstream that requires the header accepts and reads as the
//! sender's own connection. The header goes first on the TCP connection, before a TLS
//! handshake.

use std::net::SocketAddr;

use weir_config::ProxyProtocolVersion;

/// The downstream connection an upstream connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConn {
    /// The connection's number, unique on its core for the life of the process: the key of its
    /// own pool.
    pub id: u64,
    /// The client: the peer, or the address a trusted balancer's PROXY header declared.
    pub src: SocketAddr,
    /// The address the client connected to (the balancer's declared destination, if any).
    pub dst: SocketAddr,
}

impl ClientConn {
    /// Connection `id` from `src` to `dst`.
    pub fn new(id: u64, src: SocketAddr, dst: SocketAddr) -> Self {
        ClientConn { id, src, dst }
    }
}

/// The version number of `v`.
fn version(v: ProxyProtocolVersion) -> u8 {
    match v {
        ProxyProtocolVersion::V1 => 1,
        ProxyProtocolVersion::V2 => 2,
    }
}

/// The header of a connection for `client`, or of the gateway's own connection (`None`).
/// IPv4-mapped IPv6 addresses (an IPv4 client of a dual-stack listener) are written as IPv4, so
/// the header says `TCP4` when it can.
pub(crate) fn header(v: ProxyProtocolVersion, client: Option<&ClientConn>) -> Vec<u8> {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    match client {
        Some(c) => weir_l4::proxy_protocol::encode(version(v), canon(c.src), canon(c.dst)),
        None => weir_l4::proxy_protocol::encode_local(version(v)),
    }
}
