//! `weir-metrics`: counters that cost a core nothing to keep, summed only when scraped.
//!
//! Each core owns its own [`RouteStats`], [`EndpointStats`] and [`CoreStats`]: plain atomics written
//! by that core only (a relaxed load and store, no locked instruction, no cache line shared with
//! another writer) and read by the admin listener's scrape. The [`Registry`] hands them out when a
//! core builds its state from a config generation; asking again for the same labels on the same core
//! returns the same object, so counters survive a reload and stay monotonic.
//! [`Registry::render`] writes the Prometheus text exposition format. The series of LLM calls
//! (tokens, time to first token, errors per route, provider, model and consumer) are in [`ai`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ai;
mod listener;

pub use listener::{ListenerStats, HANDSHAKE_ERRORS};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Adds to a counter that only the calling core writes.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    // Single writer: load+store is exact and avoids a locked read-modify-write.
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

#[inline]
fn gauge_add(g: &AtomicI64, n: i64) {
    g.store(g.load(Relaxed) + n, Relaxed);
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A latency histogram owned by one core.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        bump(&self.buckets[i], 1);
        bump(&self.sum_micros, d.as_micros() as u64);
    }
}

/// Requests of one (listener, route, cluster) on one core.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// By status class: index 0 for no response, 1..=5 for 1xx..5xx.
    pub requests: [AtomicU64; 6],
    /// Whole-request latency.
    pub latency: Histogram,
    /// Time from the request sent upstream to the response head.
    pub upstream_latency: Histogram,
    /// Retries.
    pub retries: AtomicU64,
    /// Request payload bytes.
    pub request_bytes: AtomicU64,
    /// Response payload bytes.
    pub response_bytes: AtomicU64,
}

impl RouteStats {
    /// Counts a finished request.
    #[inline]
    pub fn record(&self, status: u16, total: Duration) {
        let class = if (100..600).contains(&status) {
            (status / 100) as usize
        } else {
            0
        };
        bump(&self.requests[class], 1);
        self.latency.observe(total);
    }
}

/// One upstream endpoint on one core.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Connections opened.
    pub connects: AtomicU64,
    /// Connection attempts that failed or timed out.
    pub connect_failures: AtomicU64,
    /// Connections in use.
    pub active: AtomicI64,
    /// Idle connections in the pool.
    pub idle: AtomicI64,
    /// Requests in flight.
    pub in_flight: AtomicI64,
    /// Outlier ejections.
    pub ejections: AtomicU64,
}

impl EndpointStats {
    /// Changes the active-connection gauge.
    #[inline]
    pub fn active_add(&self, n: i64) {
        gauge_add(&self.active, n);
    }
    /// Changes the idle-connection gauge.
    #[inline]
    pub fn idle_add(&self, n: i64) {
        gauge_add(&self.idle, n);
    }
    /// Changes the in-flight gauge.
    #[inline]
    pub fn in_flight_add(&self, n: i64) {
        gauge_add(&self.in_flight, n);
    }
}

/// Connection-level figures of one core.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// Downstream connections open.
    pub connections: AtomicI64,
    /// Downstream connections accepted.
    pub accepted: AtomicU64,
    /// Requests refused by the codec (400/413/414/431/501/505), and HTTP/2 connections closed
    /// for a protocol error (a flood, a reset storm, a bad frame).
    pub protocol_errors: AtomicU64,
    /// HTTP/2 connections served.
    pub h2_connections: AtomicU64,
    /// HTTP/2 streams (requests) accepted.
    pub h2_streams: AtomicU64,
    /// Ticks of the core's housekeeping task: a core whose count stops moving is stuck (the
    /// systemd watchdog is fed only while every core's count moves).
    pub heartbeat: AtomicU64,
}

impl CoreStats {
    /// Changes the open-connection gauge.
    #[inline]
    pub fn connections_add(&self, n: i64) {
        gauge_add(&self.connections, n);
    }
}

type RouteKey = (usize, String, String, String);
type EndpointKey = (usize, String, String);

#[derive(Default)]
struct Inner {
    routes: BTreeMap<RouteKey, Arc<RouteStats>>,
    endpoints: BTreeMap<EndpointKey, Arc<EndpointStats>>,
    cores: BTreeMap<usize, Arc<CoreStats>>,
    listeners: BTreeMap<(usize, String), Arc<ListenerStats>>,
    health: BTreeMap<(String, String), Arc<std::sync::atomic::AtomicBool>>,
}

/// Hands out per-core stats and renders them. Shared by all cores; locked only when state is
/// built and when scraped.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    ai: Arc<ai::AiShared>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stats of a route on a core.
    pub fn route(
        &self,
        core: usize,
        listener: &str,
        route: &str,
        cluster: &str,
    ) -> Arc<RouteStats> {
        self.lock()
            .routes
            .entry((core, listener.into(), route.into(), cluster.into()))
            .or_default()
            .clone()
    }

    /// The stats of an endpoint on a core.
    pub fn endpoint(&self, core: usize, cluster: &str, endpoint: &str) -> Arc<EndpointStats> {
        self.lock()
            .endpoints
            .entry((core, cluster.into(), endpoint.into()))
            .or_default()
            .clone()
    }

    /// The AI series of all cores (limits, rendering, `weirctl top`'s JSON).
    pub fn ai(&self) -> &Arc<ai::AiShared> {
        &self.ai
    }

    /// The AI series recorder of a core.
    pub fn ai_recorder(&self, core: usize) -> ai::AiRecorder {
        ai::AiRecorder::new(core, self.ai.clone())
    }

    /// The connection stats of a listener on a core (TLS and PROXY protocol listeners).
    pub fn listener(&self, core: usize, listener: &str) -> Arc<ListenerStats> {
        self.lock()
            .listeners
            .entry((core, listener.into()))
            .or_default()
            .clone()
    }

    /// The connection stats of a core.
    pub fn core(&self, core: usize) -> Arc<CoreStats> {
        self.lock().cores.entry(core).or_default().clone()
    }

    /// Every core's heartbeat count, by core index.
    pub fn heartbeats(&self) -> Vec<(usize, u64)> {
        self.lock()
            .cores
            .iter()
            .map(|(i, c)| (*i, c.heartbeat.load(Relaxed)))
            .collect()
    }

    /// Whether every core's heartbeat moved since `last` (the previous call's counts, updated
    /// here); the first call says yes. This is what the systemd watchdog is fed on.
    pub fn all_cores_turning(&self, last: &mut Vec<(usize, u64)>) -> bool {
        let now = self.heartbeats();
        let turning = last.is_empty()
            || now
                .iter()
                .all(|(i, n)| last.iter().find(|(j, _)| j == i).is_none_or(|(_, m)| n > m));
        *last = now;
        turning
    }

    /// Publishes an endpoint's health flag (set by the health checker).
    pub fn health(&self, cluster: &str, endpoint: &str, flag: Arc<std::sync::atomic::AtomicBool>) {
        self.lock()
            .health
            .insert((cluster.into(), endpoint.into()), flag);
    }

    /// The Prometheus text exposition of everything, summed over cores.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(8192);

        let mut routes: BTreeMap<(&str, &str, &str), Vec<&RouteStats>> = BTreeMap::new();
        for ((_, l, r, c), s) in &inner.routes {
            routes.entry((l, r, c)).or_default().push(s);
        }
        let sum =
            |v: &[&RouteStats], f: &dyn Fn(&RouteStats) -> u64| v.iter().map(|s| f(s)).sum::<u64>();

        out.push_str("# HELP weir_http_requests_total HTTP requests answered, by route, cluster and status class.\n# TYPE weir_http_requests_total counter\n");
        for ((l, r, c), v) in &routes {
            for (i, class) in ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .enumerate()
            {
                let n = sum(v, &|s| s.requests[i].load(Relaxed));
                let _ = writeln!(
                    out,
                    "weir_http_requests_total{{listener=\"{}\",route=\"{}\",cluster=\"{}\",status_class=\"{class}\"}} {n}",
                    esc(l), esc(r), esc(c)
                );
            }
        }
        for (name, help, pick) in [
            (
                "weir_http_request_duration_seconds",
                "Time from request head to last response byte.",
                0,
            ),
            (
                "weir_upstream_response_duration_seconds",
                "Time from request sent upstream to response head.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for ((l, r, c), v) in &routes {
                let labels = format!(
                    "listener=\"{}\",route=\"{}\",cluster=\"{}\"",
                    esc(l),
                    esc(r),
                    esc(c)
                );
                fn pick_hist(s: &RouteStats, pick: u8) -> &Histogram {
                    if pick == 0 {
                        &s.latency
                    } else {
                        &s.upstream_latency
                    }
                }
                let mut acc = 0u64;
                for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                    acc += sum(v, &|s| pick_hist(s, pick).buckets[i].load(Relaxed));
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {acc}");
                }
                acc += sum(v, &|s| {
                    pick_hist(s, pick).buckets[LATENCY_BUCKETS.len()].load(Relaxed)
                });
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {acc}");
                let micros = sum(v, &|s| pick_hist(s, pick).sum_micros.load(Relaxed));
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", micros as f64 / 1e6);
                let _ = writeln!(out, "{name}_count{{{labels}}} {acc}");
            }
        }
        for (name, help, f) in [
            (
                "weir_http_retries_total",
                "Retries of upstream requests.",
                (|s: &RouteStats| s.retries.load(Relaxed)) as fn(&RouteStats) -> u64,
            ),
            (
                "weir_http_request_body_bytes_total",
                "Request payload bytes received.",
                |s: &RouteStats| s.request_bytes.load(Relaxed),
            ),
            (
                "weir_http_response_body_bytes_total",
                "Response payload bytes sent.",
                |s: &RouteStats| s.response_bytes.load(Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((l, r, c), v) in &routes {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",route=\"{}\",cluster=\"{}\"}} {}",
                    esc(l),
                    esc(r),
                    esc(c),
                    sum(v, &f)
                );
            }
        }

        let mut eps: BTreeMap<(&str, &str), Vec<&EndpointStats>> = BTreeMap::new();
        for ((_, c, e), s) in &inner.endpoints {
            eps.entry((c, e)).or_default().push(s);
        }
        type EpField = fn(&EndpointStats) -> i64;
        let ep_metrics: [(&str, &str, &str, EpField); 7] = [
            (
                "weir_upstream_requests_total",
                "counter",
                "Requests sent to the endpoint.",
                |s| s.requests.load(Relaxed) as i64,
            ),
            (
                "weir_upstream_connections_opened_total",
                "counter",
                "Upstream connections opened.",
                |s| s.connects.load(Relaxed) as i64,
            ),
            (
                "weir_upstream_connect_failures_total",
                "counter",
                "Upstream connection attempts that failed.",
                |s| s.connect_failures.load(Relaxed) as i64,
            ),
            (
                "weir_upstream_ejections_total",
                "counter",
                "Outlier ejections of the endpoint.",
                |s| s.ejections.load(Relaxed) as i64,
            ),
            (
                "weir_upstream_pool_active_connections",
                "gauge",
                "Upstream connections in use.",
                |s| s.active.load(Relaxed),
            ),
            (
                "weir_upstream_pool_idle_connections",
                "gauge",
                "Idle upstream connections in the pools.",
                |s| s.idle.load(Relaxed),
            ),
            (
                "weir_upstream_requests_in_flight",
                "gauge",
                "Requests waiting on the endpoint.",
                |s| s.in_flight.load(Relaxed),
            ),
        ];
        for (name, kind, help, f) in ep_metrics {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((c, e), v) in &eps {
                let n: i64 = v.iter().map(|s| f(s)).sum();
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",endpoint=\"{}\"}} {n}",
                    esc(c),
                    esc(e)
                );
            }
        }
        out.push_str("# HELP weir_upstream_healthy Active health check verdict (1 healthy, 0 not).\n# TYPE weir_upstream_healthy gauge\n");
        for ((c, e), flag) in &inner.health {
            let _ = writeln!(
                out,
                "weir_upstream_healthy{{cluster=\"{}\",endpoint=\"{}\"}} {}",
                esc(c),
                esc(e),
                u8::from(flag.load(Relaxed))
            );
        }

        let conns: i64 = inner
            .cores
            .values()
            .map(|c| c.connections.load(Relaxed))
            .sum();
        let accepted: u64 = inner.cores.values().map(|c| c.accepted.load(Relaxed)).sum();
        let proto: u64 = inner
            .cores
            .values()
            .map(|c| c.protocol_errors.load(Relaxed))
            .sum();
        let h2c: u64 = inner
            .cores
            .values()
            .map(|c| c.h2_connections.load(Relaxed))
            .sum();
        let h2s: u64 = inner
            .cores
            .values()
            .map(|c| c.h2_streams.load(Relaxed))
            .sum();
        let _ = writeln!(out, "# HELP weir_downstream_h2_connections_total Client connections served with HTTP/2.\n# TYPE weir_downstream_h2_connections_total counter\nweir_downstream_h2_connections_total {h2c}");
        let _ = writeln!(out, "# HELP weir_downstream_h2_streams_total HTTP/2 streams (requests) accepted from clients.\n# TYPE weir_downstream_h2_streams_total counter\nweir_downstream_h2_streams_total {h2s}");
        let _ = writeln!(out, "# HELP weir_downstream_connections Client connections open.\n# TYPE weir_downstream_connections gauge\nweir_downstream_connections {conns}");
        let _ = writeln!(out, "# HELP weir_downstream_connections_accepted_total Client connections accepted.\n# TYPE weir_downstream_connections_accepted_total counter\nweir_downstream_connections_accepted_total {accepted}");
        let _ = writeln!(out, "# HELP weir_downstream_protocol_errors_total Requests refused as malformed or over a limit.\n# TYPE weir_downstream_protocol_errors_total counter\nweir_downstream_protocol_errors_total {proto}");
        let _ = writeln!(out, "# HELP weir_workers Worker threads (cores) serving traffic.\n# TYPE weir_workers gauge\nweir_workers {}", inner.cores.len());
        if !inner.listeners.is_empty() {
            listener::render(&mut out, &inner.listeners);
        }
        drop(inner);
        self.ai.render(&mut out);
        out
    }
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_sees_a_stuck_core() {
        let r = Registry::default();
        let (a, b) = (r.core(0), r.core(1));
        let mut last = Vec::new();
        assert!(r.all_cores_turning(&mut last));
        bump(&a.heartbeat, 1);
        bump(&b.heartbeat, 1);
        assert!(r.all_cores_turning(&mut last));
        bump(&a.heartbeat, 1);
        assert!(!r.all_cores_turning(&mut last), "core 1 did not turn");
    }

    #[test]
    fn sums_cores_and_keeps_counters_across_lookups() {
        let r = Registry::default();
        let a = r.route(0, "main", "api", "backend");
        let b = r.route(1, "main", "api", "backend");
        a.record(200, Duration::from_millis(3));
        b.record(503, Duration::from_millis(40));
        assert!(Arc::ptr_eq(&a, &r.route(0, "main", "api", "backend")));
        let text = r.render();
        assert!(text.contains(
            "weir_http_requests_total{listener=\"main\",route=\"api\",cluster=\"backend\",status_class=\"2xx\"} 1"
        ));
        assert!(text.contains("status_class=\"5xx\"} 1"));
        assert!(text.contains("weir_http_request_duration_seconds_count{listener=\"main\",route=\"api\",cluster=\"backend\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
    }
}
