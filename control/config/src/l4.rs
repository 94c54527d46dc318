//! Below HTTP: a listener's `proxy_protocol` (the PROXY header accepted from trusted balancers),
//! its `tcp` kind (raw TCP to a cluster, TLS pass-through routed by SNI), and a cluster's
//! `proxy_protocol` (the header sent to its endpoints); with their validation.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::listener_tls::valid_sni_name;
use crate::schema::{Config, Listener, UpstreamProtocol};
use crate::units::Dur;

/// The PROXY protocol on a listener: every connection must come from a trusted source and start
/// with a v1 or v2 header, whose client address then stands for the peer's (X-Forwarded-For, IP
/// ACLs, the access log, `source_ip` hashing, the header sent upstream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocolIn {
    /// Source ranges (CIDRs, or single addresses) of the balancers allowed to connect; a
    /// connection from anywhere else is closed and counted.
    pub trusted: Vec<String>,
    /// The header must arrive within this.
    #[serde(default = "header_timeout")]
    pub timeout: Dur,
}

fn header_timeout() -> Dur {
    Dur::secs(5)
}

/// The version of the PROXY header sent to a cluster's endpoints: first on each connection
/// (before TLS), describing the one client connection it serves (HTTP clusters keep such
/// connections per client connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolVersion {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// A `tcp` listener: no HTTP; each connection is proxied whole to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProxy {
    /// The cluster of connections that match no `sni` route (absent: they are closed).
    #[serde(default)]
    pub cluster: Option<String>,
    /// TLS pass-through: the ClientHello's server name picks the cluster (exact names, then
    /// `*.` wildcards of one label); the bytes are forwarded untouched, TLS is not terminated.
    #[serde(default)]
    pub sni: Vec<SniRoute>,
    /// A connection where neither side sent a byte for this long is closed.
    #[serde(default = "tcp_idle")]
    pub idle_timeout: Dur,
    /// With `sni`: the ClientHello must arrive within this.
    #[serde(default = "hello_timeout")]
    pub hello_timeout: Dur,
}

fn tcp_idle() -> Dur {
    Dur::secs(3600)
}
fn hello_timeout() -> Dur {
    Dur::secs(5)
}

/// A pass-through route: these server names go to this cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniRoute {
    /// Names (`db.example.com`, `*.example.com`).
    pub names: Vec<String>,
    /// The cluster.
    pub cluster: String,
}

/// Checks the L4 parts of `config`; each problem goes to `fail(field, message)`.
pub(crate) fn check(config: &Config, fail: &mut dyn FnMut(String, String)) {
    let clusters: HashSet<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    for (i, l) in config.listeners.iter().enumerate() {
        let f = format!("listeners[{i}]");
        if let Some(pp) = &l.proxy_protocol {
            if pp.trusted.is_empty() {
                fail(
                    format!("{f}.proxy_protocol.trusted"),
                    "list the balancers' source ranges (nothing is trusted otherwise)".into(),
                );
            }
            for (j, t) in pp.trusted.iter().enumerate() {
                if parse_cidr(t).is_none() {
                    fail(
                        format!("{f}.proxy_protocol.trusted[{j}]"),
                        format!("`{t}` is not a CIDR or an IP address"),
                    );
                }
            }
        }
        if let Some(tcp) = &l.tcp {
            check_tcp(&f, l, tcp, &clusters, fail);
        }
    }
    // The header describes one client connection: an HTTP/1.1 cluster keeps such connections
    // per client connection, but an h2 cluster multiplexes every client's requests on one.
    for (i, c) in config.clusters.iter().enumerate() {
        if c.proxy_protocol.is_some() && c.protocol == UpstreamProtocol::H2 {
            fail(
                format!("clusters[{i}].proxy_protocol"),
                format!(
                    "cluster `{}` has `protocol: h2`, whose one connection per endpoint carries \
                     every client's requests, and a PROXY header describes one client \
                     connection; use `protocol: http1` (each client connection then gets \
                     upstream connections of its own) or drop `proxy_protocol`",
                    c.name
                ),
            );
        }
    }
}

fn check_tcp(
    f: &str,
    l: &Listener,
    tcp: &TcpProxy,
    clusters: &HashSet<&str>,
    fail: &mut dyn FnMut(String, String),
) {
    if !l.routes.is_empty() {
        fail(
            format!("{f}.routes"),
            "a `tcp` listener has no HTTP routes".into(),
        );
    }
    if l.tls.is_some() {
        fail(
            format!("{f}.tls"),
            "a `tcp` listener does not terminate TLS (use `tcp.sni` to pass it through)".into(),
        );
    }
    if tcp.cluster.is_none() && tcp.sni.is_empty() {
        fail(
            format!("{f}.tcp"),
            "give a `cluster`, `sni` routes, or both".into(),
        );
    }
    if let Some(c) = &tcp.cluster {
        if !clusters.contains(c.as_str()) {
            fail(
                format!("{f}.tcp.cluster"),
                format!("cluster `{c}` is not defined"),
            );
        }
    }
    if tcp.idle_timeout.get().is_zero() {
        fail(
            format!("{f}.tcp.idle_timeout"),
            "must be more than 0".into(),
        );
    }
    for (j, r) in tcp.sni.iter().enumerate() {
        let g = format!("{f}.tcp.sni[{j}]");
        if !clusters.contains(r.cluster.as_str()) {
            fail(
                format!("{g}.cluster"),
                format!("cluster `{}` is not defined", r.cluster),
            );
        }
        if r.names.is_empty() {
            fail(format!("{g}.names"), "at least one name is needed".into());
        }
        for (k, n) in r.names.iter().enumerate() {
            if !valid_sni_name(n) {
                fail(
                    format!("{g}.names[{k}]"),
                    format!("`{n}` is not a DNS name or a wildcard (`*.example.com`)"),
                );
            }
        }
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
}
