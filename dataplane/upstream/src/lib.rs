//! `weir-upstream`: where requests go.
//!
//! - [`SharedCluster`] / [`SharedEndpoint`]: built once per config change of a cluster and shared by
//!   all cores: resolved addresses (refreshed by [`spawn_dns_refresher`] off the request path) and
//!   the active health verdict (written by [`run_health_checks`]).
//! - [`Cluster`]: the per-core view: endpoints with their keep-alive connection pools (LIFO, limits,
//!   idle expiry), the load balancer (round robin, smooth weighted, least-request P2C, consistent
//!   hash ring), and passive outlier ejection. All `Rc`/`Cell`: nothing is shared on the hot path.
//!
//! The request-path runner asks [`Cluster::pick`] for an endpoint, [`Cluster::acquire`] for a
//! connection, and gives it back with [`Cluster::release`]. A cluster with `tls` connects through
//! `weir-tls` (the handshake within the connect timeout); its connections are [`MaybeTls`]
//! streams, pooled and reused like plain ones.
//!
//! A cluster with `proxy_protocol` starts each connection with a PROXY header (before TLS) that
//! describes one downstream connection, a [`ClientConn`]: the request path asks
//! [`Cluster::pooled_for`] / [`Cluster::acquire_for`], which keep such connections for that
//! client connection alone, and [`Cluster::close_client`] drops them when it closes. Health
//! checks and the gateway's own requests send a header that declares no client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
mod error;
mod health;
mod lb;
mod proxy_protocol;
mod shared;

pub use cluster::{Cluster, Endpoint, UpstreamConn};
pub use error::{Error, Result};
pub use health::{probe, run_health_checks};
pub use lb::{hash, HashOn};
pub use proxy_protocol::ClientConn;
pub use shared::{connector, open, open_with, spawn_dns_refresher, SharedCluster, SharedEndpoint};
pub use weir_tls::{Connector, MaybeTls};

#[cfg(test)]
mod tests;
