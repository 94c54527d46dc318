//! Connection-level figures of one listener on one core: TLS handshakes and their failures, and
//! PROXY protocol headers refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::bump;

/// Reasons a TLS handshake fails, in label order (see `weir_tls::HandshakeError`).
pub const HANDSHAKE_ERRORS: [&str; 8] = [
    "timeout",
    "closed",
    "io",
    "protocol",
    "client_certificate",
    "incompatible",
    "alert",
    "other",
];

/// One listener's counters on one core.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// Of those, resumed sessions.
    pub tls_resumed: AtomicU64,
    /// TLS handshakes failed, by [`HANDSHAKE_ERRORS`] index.
    pub tls_errors: [AtomicU64; HANDSHAKE_ERRORS.len()],
    /// Connections refused for their PROXY protocol header (from an untrusted source, or
    /// malformed).
    pub proxy_refused: AtomicU64,
    /// Connections of a `tcp` listener proxied (or attempted).
    pub tcp_connections: AtomicU64,
    /// Of those, the ones that failed (no cluster for the name, no endpoint reached, a bad
    /// ClientHello).
    pub tcp_failed: AtomicU64,
}

impl ListenerStats {
    /// Counts a failed handshake by its reason (unknown reasons count as `other`).
    pub fn handshake_failed(&self, reason: &str) {
        let i = HANDSHAKE_ERRORS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HANDSHAKE_ERRORS.len() - 1);
        bump(&self.tls_errors[i], 1);
    }
}

/// Writes the listener series, summed over cores.
pub(crate) fn render(out: &mut String, all: &BTreeMap<(usize, String), Arc<ListenerStats>>) {
    let mut by: BTreeMap<&str, Vec<&ListenerStats>> = BTreeMap::new();
    for ((_, l), s) in all {
        by.entry(l).or_default().push(s);
    }
    let sum = |v: &[&ListenerStats], f: &dyn Fn(&ListenerStats) -> u64| -> u64 {
        v.iter().map(|s| f(s)).sum()
    };
    out.push_str("# HELP weir_tls_handshakes_total TLS handshakes completed with clients.\n# TYPE weir_tls_handshakes_total counter\n");
    for (l, v) in &by {
        let n = sum(v, &|s| s.tls_handshakes.load(Relaxed));
        let _ = writeln!(
            out,
            "weir_tls_handshakes_total{{listener=\"{}\"}} {n}",
            crate::esc(l)
        );
    }
    out.push_str("# HELP weir_tls_resumed_total TLS handshakes that resumed a session.\n# TYPE weir_tls_resumed_total counter\n");
    for (l, v) in &by {
        let n = sum(v, &|s| s.tls_resumed.load(Relaxed));
        let _ = writeln!(
            out,
            "weir_tls_resumed_total{{listener=\"{}\"}} {n}",
            crate::esc(l)
        );
    }
    out.push_str("# HELP weir_tls_handshake_errors_total TLS handshakes with clients that failed, by reason.\n# TYPE weir_tls_handshake_errors_total counter\n");
    for (l, v) in &by {
        for (i, reason) in HANDSHAKE_ERRORS.iter().enumerate() {
            let n = sum(v, &|s| s.tls_errors[i].load(Relaxed));
            let _ = writeln!(
                out,
                "weir_tls_handshake_errors_total{{listener=\"{}\",reason=\"{reason}\"}} {n}",
                crate::esc(l)
            );
        }
    }
    out.push_str("# HELP weir_tcp_connections_total Connections of tcp listeners, and those that failed.\n# TYPE weir_tcp_connections_total counter\n");
    for (l, v) in &by {
        let n = sum(v, &|s| s.tcp_connections.load(Relaxed));
        let f = sum(v, &|s| s.tcp_failed.load(Relaxed));
        let _ = writeln!(
            out,
            "weir_tcp_connections_total{{listener=\"{}\",outcome=\"ok\"}} {}",
            crate::esc(l),
            n - f.min(n)
        );
        let _ = writeln!(
            out,
            "weir_tcp_connections_total{{listener=\"{}\",outcome=\"failed\"}} {f}",
            crate::esc(l)
        );
    }
    out.push_str("# HELP weir_proxy_protocol_refused_total Connections closed for their PROXY protocol header (untrusted source or malformed).\n# TYPE weir_proxy_protocol_refused_total counter\n");
    for (l, v) in &by {
        let n = sum(v, &|s| s.proxy_refused.load(Relaxed));
        let _ = writeln!(
            out,
            "weir_proxy_protocol_refused_total{{listener=\"{}\"}} {n}",
            crate::esc(l)
        );
    }
}
