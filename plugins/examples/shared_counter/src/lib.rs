//! `shared_counter`: counts requests process-wide with shared data, publishes the count on a tick,
//! and shows it on every response.
//!
//! - Every request increments the decimal counter under `key` in the host's shared data with
//!   compare-and-swap (get with its CAS token, set with it, retry on a mismatch, at most 64 times),
//!   so every instance of the plugin (one per worker, per core) adds to the same number.
//! - The response carries `x-request-count: N`, N being the count right after this request's own
//!   increment.
//! - The root context ticks every `tick_ms` (`set_tick_period`): it reads the count, writes
//!   `<count> <unix ms>` under `<key>.published` and logs it with the requests seen since this
//!   instance's previous tick (at info level when there were some, at debug level otherwise).
//! - A counter metric `shared_counter_requests_total` (defined with `define_metric`) is incremented
//!   once per request by the instance that served it: the host sums it across instances.
//!
//! Configuration (every field optional):
//! ```json
//! {"key": "shared_counter.requests", "tick_ms": 1000}
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { shared: Rc::new(Shared { key: default_key(), metric: Cell::new(None) }), last: 0 })
    });
}}

const CAS_ATTEMPTS: usize = 64;
const METRIC: &str = "shared_counter_requests_total";

fn default_key() -> String {
    "shared_counter.requests".to_string()
}

fn default_tick() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_key")]
    key: String,
    #[serde(default = "default_tick")]
    tick_ms: u64,
}

/// What the HTTP contexts of this instance share with the root.
struct Shared {
    key: String,
    metric: Cell<Option<u32>>,
}

fn parse(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Adds one to the process-wide counter under `key`; the new value, or `None` when other instances
/// kept winning the race for `CAS_ATTEMPTS` rounds (the request is then not counted).
fn increment(key: &str) -> Option<u64> {
    for _ in 0..CAS_ATTEMPTS {
        let (value, cas) = hostcalls::get_shared_data(key).ok()?;
        let next = parse(value.as_deref()) + 1;
        // No value yet: there is no CAS token to hold, so the first write is unconditional (cas 0).
        match hostcalls::set_shared_data(key, Some(next.to_string().as_bytes()), cas) {
            Ok(()) => return Some(next),
            Err(Status::CasMismatch) => continue,
            Err(_) => return None,
        }
    }
    log::warn!("shared_counter: lost the CAS race {CAS_ATTEMPTS} times; request not counted");
    None
}

struct Root {
    shared: Rc<Shared>,
    /// The count at the previous tick.
    last: u64,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_str::<Config>("{}")
        } else {
            serde_json::from_slice::<Config>(&bytes)
        };
        let config = match parsed {
            Ok(c) if c.tick_ms > 0 && !c.key.is_empty() => c,
            Ok(_) => {
                log::error!("shared_counter: `tick_ms` and `key` must not be zero or empty");
                return false;
            }
            Err(e) => {
                log::error!("shared_counter: bad configuration: {e}");
                return false;
            }
        };
        let metric = match hostcalls::define_metric(MetricType::Counter, METRIC) {
            Ok(id) => Some(id),
            Err(e) => {
                log::warn!("shared_counter: no metric ({e:?})");
                None
            }
        };
        self.shared = Rc::new(Shared {
            key: config.key,
            metric: Cell::new(metric),
        });
        self.set_tick_period(Duration::from_millis(config.tick_ms));
        log::info!(
            "shared_counter: counting under {:?}, tick every {} ms",
            self.shared.key,
            config.tick_ms
        );
        true
    }

    fn on_tick(&mut self) {
        let (value, _) = self.get_shared_data(&self.shared.key);
        let count = parse(value.as_deref());
        let now_ms = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let published = format!("{count} {now_ms}");
        let key = format!("{}.published", self.shared.key);
        if let Err(e) = self.set_shared_data(&key, Some(published.as_bytes()), None) {
            log::warn!("shared_counter: could not publish ({e:?})");
        }
        // Info only when something changed: an idle gateway does not fill its log.
        let since = count.saturating_sub(self.last);
        if since > 0 {
            log::info!("shared_counter: {count} requests in total, {since} since the last tick");
        } else {
            log::debug!("shared_counter: {count} requests in total, none since the last tick");
        }
        self.last = count;
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Count {
            shared: Rc::clone(&self.shared),
            count: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Count {
    shared: Rc<Shared>,
    count: Option<u64>,
}

impl Context for Count {}

impl HttpContext for Count {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.count = increment(&self.shared.key);
        if let Some(id) = self.shared.metric.get() {
            if hostcalls::increment_metric(id, 1).is_err() {
                self.shared.metric.set(None);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(n) = self.count {
            self.set_http_response_header("x-request-count", Some(&n.to_string()));
        }
        Action::Continue
    }
}
