//! Process-wide state of the mock, shared by every worker: counters for `/stats`, the `/healthz`
//! status and the per-key counters of `/flaky`. Atomics and one mutex: this is a test peer, and
//! none of it sits on the `GET /` fast path except the request counter (one relaxed add).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Counters reported by `GET /stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub sse_started: AtomicU64,
    pub sse_completed: AtomicU64,
    pub sse_aborted: AtomicU64,
    pub tls_handshakes: AtomicU64,
}

pub static STATS: Stats = Stats {
    requests: AtomicU64::new(0),
    connections_accepted: AtomicU64::new(0),
    connections_open: AtomicU64::new(0),
    sse_started: AtomicU64::new(0),
    sse_completed: AtomicU64::new(0),
    sse_aborted: AtomicU64::new(0),
    tls_handshakes: AtomicU64::new(0),
};

/// The server names TLS clients sent (SNI), oldest first; `""` for a handshake without one.
/// Only the last [`SNI_KEPT`] are kept.
static TLS_SNI: Mutex<Vec<String>> = Mutex::new(Vec::new());
const SNI_KEPT: usize = 64;

/// Counts a TLS handshake and notes the name it asked for.
pub fn tls_hello(sni: Option<&str>) {
    STATS.tls_handshakes.fetch_add(1, Relaxed);
    let mut seen = TLS_SNI.lock().unwrap_or_else(PoisonError::into_inner);
    if seen.len() == SNI_KEPT {
        seen.remove(0);
    }
    seen.push(sni.unwrap_or_default().to_owned());
}

impl Stats {
    /// The `/stats` JSON document.
    pub fn to_json(&self) -> String {
        let sni = serde_json::to_string(&*TLS_SNI.lock().unwrap_or_else(PoisonError::into_inner))
            .unwrap_or_else(|_| "[]".into());
        format!(
            "{{\"requests\":{},\"connections_accepted\":{},\"connections_open\":{},\
             \"sse_started\":{},\"sse_completed\":{},\"sse_aborted\":{},\
             \"tls_handshakes\":{},\"tls_sni\":{sni}}}",
            self.requests.load(Relaxed),
            self.connections_accepted.load(Relaxed),
            self.connections_open.load(Relaxed),
            self.sse_started.load(Relaxed),
            self.sse_completed.load(Relaxed),
            self.sse_aborted.load(Relaxed),
            self.tls_handshakes.load(Relaxed),
        )
    }
}

/// Keeps `connections_open` right however a connection task ends.
pub struct OpenConnection;

impl OpenConnection {
    pub fn new() -> Self {
        STATS.connections_accepted.fetch_add(1, Relaxed);
        STATS.connections_open.fetch_add(1, Relaxed);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        STATS.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Status `GET /healthz` answers with; set by `POST /control/health/CODE`.
pub static HEALTH: AtomicU16 = AtomicU16::new(200);

static FLAKY: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Counts one request for `key` and returns how many came before it.
pub fn flaky_hit(key: &str) -> u64 {
    let mut map = FLAKY.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = map
        .get_or_insert_with(HashMap::new)
        .entry(key.to_owned())
        .or_insert(0);
    let before = *seen;
    *seen += 1;
    before
}
