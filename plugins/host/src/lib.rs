//! `weir-wasm`: Weir's Proxy-Wasm 0.2.1 host on wasmtime. A plugin is one more filter in a
//! route's chain (or in every route's, when `global`), ordered among the native ones.
//!
//! - [`Plugin`] is a plugin as the process shares it: its module compiled once (and cached on
//!   disk by the SHA-256 of its bytes, [`engine::load`]) on the one [`engine::engine`] of the
//!   process (epoch interruption, pooling allocator), built while a config generation is
//!   prepared. A module that does not compile or is not Proxy-Wasm 0.2.x is an [`Error`]: the
//!   generation is refused and the previous one keeps running.
//! - [`PluginCore`] is that plugin on one core: one instance (a wasmtime `Store`, never shared
//!   between threads), its memory capped, each callback bounded by an epoch deadline. A trap, a
//!   deadline overrun, a memory-cap hit or an ABI misuse fails that request open or closed
//!   (`on_error`), is counted in `weir_wasm_failures_total{plugin,kind}`, and the core makes a
//!   new instance for the next request.
//! - [`WasmFactory`]/[`WasmFilter`] implement `weir_filter`'s interface: request and response
//!   headers and bodies (streamed chunk by chunk, or whole when the plugin's `buffer` asks, then
//!   writable), request and response trailers (when the module exports the trailer callbacks:
//!   maps 1 and 3, writable in them), local responses, HTTP callouts (the request
//!   [`weir_filter::Action::Wait`]s for them), properties from the typed request context.
//! - [`host`] and [`wasi`] are the functions a module imports; [`shared`] the process-wide shared
//!   data and queues; [`metrics`] the plugins' metrics on `/metrics`.
//!
//! A config generation makes new `PluginCore`s (or keeps those whose plugin did not change);
//! requests in flight hold their instance and finish on it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod abi;
pub mod context;
pub mod engine;
mod error;
pub mod filter;
pub mod host;
pub mod instance;
mod memory;
pub mod metrics;
pub mod plugin;
pub mod props;
pub mod shared;
pub mod state;
pub mod wasi;

pub use context::{CallAnswer, Callout};
pub use error::{Error, Result};
pub use filter::{Callouts, PluginCore, WasmFactory, WasmFilter};
pub use instance::Failure;
pub use plugin::Plugin;

#[cfg(test)]
mod tests;
