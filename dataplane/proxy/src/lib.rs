//! `weir-proxy`: the request-path runner.
//!
//! [`spawn`] starts driving one downstream HTTP/1.1 connection on its core: it reads request heads (strict,
//! with limits and timeouts), and for each request takes the core's current [`CoreState`] once,
//! matches a route, runs the route's filters phase by phase (see `PHASES.md`), and then answers
//! locally (direct response, redirect, error) or proxies: picks an endpoint, takes a pooled
//! connection, streams the request body up and the response body down chunk by chunk as owned
//! buffers, retries within budget, and logs. Errors of every kind become a response in one place
//! ([`weir_filter::ProxyError::to_response`]).
//!
//! [`Worker`] is the per-core slot: the current state (swapped by prepare/commit on reload), the
//! drain signal for graceful shutdown, counters and the access-log buffer.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ai;
mod ai_metrics;
mod callout;
mod conn;
mod forward;
mod h2_upstream;
mod hold;
mod http2;
mod io;
mod l4;
mod log;
mod retry;
mod state;
mod trailers;
mod worker;

pub use ai_metrics::RoutePrices;
pub use conn::{spawn, wait_idle};
pub use retry::RetryBudget;
pub use state::{
    CoreState, ListenerState, ListenerTls, PrepareError, RouteAction, RouteState, Snapshot,
};
pub use worker::{Signal, SignalWait, Worker};
