//! The data of one instance's `Store`: the plugin, the memory cap, the exchange of the callback
//! running now, and what the module did wrong.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use wasmtime::{Memory, ResourceLimiter, TypedFunc};

use crate::context::{Exchange, Paused};
use crate::plugin::Plugin;
use crate::shared::Ready;

/// `Store` data of an instance.
pub struct HostState {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// The module's memory (set once instantiated).
    pub memory: Option<Memory>,
    /// Its allocator (`proxy_on_memory_allocate` or `malloc`); shared, since cloning a
    /// `TypedFunc` per call costs an atomic count and a registry visit.
    pub alloc: Option<std::rc::Rc<TypedFunc<i32, i32>>>,
    /// The callback's exchange (empty between callbacks and in root callbacks).
    pub ex: Exchange,
    /// The context the plugin runs in (changed by `proxy_set_effective_context`).
    pub effective: u32,
    /// The contexts alive in this instance: the root one and the HTTP ones not yet finished (a
    /// B-tree: ids are small integers, one inserted and removed per request, without hashing).
    pub contexts: BTreeSet<u32>,
    /// The HTTP contexts whose request the plugin paused (no callout), by id: a
    /// `proxy_continue_stream` with one of them effective continues it.
    pub paused: HashMap<u32, Rc<Paused>>,
    /// Where the shared queues this instance registers report new items (its core's).
    pub ready: Arc<Ready>,
    /// Tick period asked for, ms (0: none).
    pub tick_ms: u32,
    /// The memory cap (the store's resource limiter).
    pub limiter: MemoryCap,
    /// Set when the module broke the ABI (the callback then fails).
    pub misuse: Option<String>,
    /// Next callout token.
    pub next_token: u32,
    /// Worker index (`weir.worker` property).
    pub worker: usize,
}

impl HostState {
    /// A fresh state for an instance of `plugin` on `worker`, its queues reporting to `ready`.
    pub fn new(plugin: Arc<Plugin>, worker: usize, ready: Arc<Ready>) -> Self {
        HostState {
            plugin: plugin.clone(),
            memory: None,
            alloc: None,
            ex: Exchange::default(),
            effective: 0,
            contexts: BTreeSet::new(),
            paused: HashMap::new(),
            ready,
            tick_ms: 0,
            limiter: MemoryCap {
                max: plugin_max(&plugin),
                hit: false,
            },
            misuse: None,
            next_token: 1,
            worker,
        }
    }

    /// Records an ABI misuse (the first one is kept).
    pub fn misuse(&mut self, what: impl Into<String>) {
        self.misuse.get_or_insert_with(|| what.into());
    }
}

fn plugin_max(p: &Plugin) -> usize {
    p.max_memory
}

/// Refuses linear memory growth past the plugin's `max_memory` and remembers that it did (a
/// grow past it traps, so the failure is counted as `memory`).
pub struct MemoryCap {
    max: usize,
    /// Set when a grow was refused.
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "linear memory would grow to {desired} bytes, past the plugin's max_memory"
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
