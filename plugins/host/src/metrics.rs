//! Plugin metrics (`proxy_define_metric` and friends) and the host's own failure counters, for the
//! admin listener's `/metrics`. Process-wide: a metric defined by a plugin on any core is one
//! series (per plugin), as a Prometheus scrape expects; a plugin's update is one relaxed atomic.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::abi::{metric, Status};

/// Upper bounds of the histogram buckets plugins record into (their own unit).
const BUCKETS: [u64; 12] = [
    1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000,
];

/// One metric of one plugin.
pub struct Metric {
    kind: i32,
    value: AtomicI64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum: AtomicU64,
}

#[derive(Default)]
struct Registry {
    /// By id - 1.
    all: Vec<Arc<Metric>>,
    /// (exposition name, plugin) → id.
    by_name: BTreeMap<(String, String), u32>,
    /// (plugin, kind) → count.
    failures: BTreeMap<(String, &'static str), Arc<AtomicU64>>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The exposition name of a plugin's metric: `weir_wasm_` and the name with characters
/// Prometheus does not allow replaced by `_`; counters end in `_total`.
fn exposition_name(kind: i32, name: &[u8]) -> String {
    let mut s = String::from("weir_wasm_");
    for &b in name {
        s.push(if b.is_ascii_alphanumeric() || b == b'_' {
            char::from(b)
        } else {
            '_'
        });
    }
    if kind == metric::COUNTER && !s.ends_with("_total") {
        s.push_str("_total");
    }
    s
}

/// Defines (or finds) a metric; its id is process-wide.
pub fn define(plugin: &str, kind: i32, name: &[u8]) -> Result<u32, Status> {
    if !(metric::COUNTER..=metric::HISTOGRAM).contains(&kind) || name.is_empty() {
        return Err(Status::BadArgument);
    }
    let full = exposition_name(kind, name);
    let mut r = registry();
    // One name, one type, whichever plugin defined it first.
    if let Some((_, id)) = r.by_name.iter().find(|((n, _), _)| *n == full) {
        if r.all[*id as usize - 1].kind != kind {
            return Err(Status::BadArgument);
        }
    }
    if let Some(id) = r.by_name.get(&(full.clone(), plugin.to_owned())) {
        return Ok(*id);
    }
    r.all.push(Arc::new(Metric {
        kind,
        value: AtomicI64::new(0),
        buckets: Default::default(),
        sum: AtomicU64::new(0),
    }));
    let id = r.all.len() as u32;
    r.by_name.insert((full, plugin.to_owned()), id);
    Ok(id)
}

/// The metric with this id.
pub fn get(id: u32) -> Option<Arc<Metric>> {
    let r = registry();
    id.checked_sub(1)
        .and_then(|i| r.all.get(i as usize))
        .cloned()
}

impl Metric {
    /// `proxy_increment_metric`.
    pub fn increment(&self, by: i64) -> Status {
        match self.kind {
            metric::COUNTER if by < 0 => Status::BadArgument,
            metric::COUNTER | metric::GAUGE => {
                self.value.fetch_add(by, Relaxed);
                Status::Ok
            }
            _ => Status::BadArgument,
        }
    }

    /// `proxy_record_metric`.
    pub fn record(&self, v: u64) -> Status {
        match self.kind {
            metric::GAUGE => self.value.store(v as i64, Relaxed),
            metric::COUNTER => self.value.store(v as i64, Relaxed),
            _ => {
                let i = BUCKETS
                    .iter()
                    .position(|b| v <= *b)
                    .unwrap_or(BUCKETS.len());
                self.buckets[i].fetch_add(1, Relaxed);
                self.sum.fetch_add(v, Relaxed);
            }
        }
        Status::Ok
    }

    /// `proxy_get_metric`: the value of a counter or gauge; a histogram's count.
    pub fn value(&self) -> u64 {
        match self.kind {
            metric::HISTOGRAM => self.buckets.iter().map(|b| b.load(Relaxed)).sum(),
            _ => self.value.load(Relaxed) as u64,
        }
    }
}

/// Kinds of plugin failure, the `kind` label of `weir_wasm_failures_total`.
pub mod kind {
    /// The module trapped (`unreachable`, out-of-bounds access, a panic in the guest).
    pub const TRAP: &str = "trap";
    /// A callback ran past `callback_deadline`.
    pub const DEADLINE: &str = "deadline";
    /// Linear memory would grow past `max_memory`.
    pub const MEMORY: &str = "memory";
    /// The module broke the ABI (a bad pointer, a wrong export signature).
    pub const ABI: &str = "abi";
    /// The instance could not be recreated after a failure.
    pub const RESTART: &str = "restart";
}

/// The failure counter of a plugin and kind.
pub fn failures(plugin: &str, kind: &'static str) -> Arc<AtomicU64> {
    registry()
        .failures
        .entry((plugin.to_owned(), kind))
        .or_default()
        .clone()
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the Prometheus text of every plugin metric and failure counter to `out`.
pub fn render(out: &mut String) {
    let r = registry();
    let _ = writeln!(
        out,
        "# HELP weir_wasm_failures_total Plugin callbacks that failed (the request failed open or closed), by plugin and kind.\n# TYPE weir_wasm_failures_total counter"
    );
    for ((p, k), n) in &r.failures {
        let _ = writeln!(
            out,
            "weir_wasm_failures_total{{plugin=\"{}\",kind=\"{k}\"}} {}",
            esc(p),
            n.load(Relaxed)
        );
    }
    let mut last = "";
    for ((name, plugin), id) in &r.by_name {
        let m = &r.all[*id as usize - 1];
        let labels = format!("plugin=\"{}\"", esc(plugin));
        if name != last {
            let t = match m.kind {
                metric::COUNTER => "counter",
                metric::GAUGE => "gauge",
                _ => "histogram",
            };
            let _ = writeln!(
                out,
                "# HELP {name} Defined by a Wasm plugin.\n# TYPE {name} {t}"
            );
            last = name;
        }
        if m.kind == metric::HISTOGRAM {
            let mut acc = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                acc += m.buckets[i].load(Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {acc}");
            }
            acc += m.buckets[BUCKETS.len()].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {acc}");
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", m.sum.load(Relaxed));
            let _ = writeln!(out, "{name}_count{{{labels}}} {acc}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {}", m.value.load(Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defines_updates_and_renders() {
        let c = define("p1", metric::COUNTER, b"hits.count").expect("counter");
        assert_eq!(define("p1", metric::COUNTER, b"hits.count"), Ok(c));
        assert_eq!(
            define("p1", metric::GAUGE, b"hits.count_total"),
            Err(Status::BadArgument)
        );
        let m = get(c).expect("there");
        assert_eq!(m.increment(3), Status::Ok);
        assert_eq!(m.increment(-1), Status::BadArgument);
        assert_eq!(m.value(), 3);
        let h = define("p1", metric::HISTOGRAM, b"size").expect("histogram");
        let hm = get(h).expect("there");
        hm.record(7);
        hm.record(70_000_000);
        assert_eq!(hm.value(), 2);
        failures("p1", kind::TRAP).fetch_add(1, Relaxed);
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("weir_wasm_hits_count_total{plugin=\"p1\"} 3"),
            "{out}"
        );
        assert!(out.contains("weir_wasm_size_bucket{plugin=\"p1\",le=\"10\"} 1"));
        assert!(out.contains("weir_wasm_size_count{plugin=\"p1\"} 2"));
        assert!(out.contains("weir_wasm_failures_total{plugin=\"p1\",kind=\"trap\"} 1"));
        assert!(get(0).is_none());
    }
}
