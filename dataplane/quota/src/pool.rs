//! The process-wide side of a limit: one [`LimitShared`] per limit name, with a pool per key and
//! window that cores take leases from.
//!
//! A core never comes here for a request its lease covers; it comes when its lease is short (at
//! most once per lease), and when it is refused. So the mutex below is taken about
//! `requests / lease` times, not per request. In cluster mode the pool itself leases from Redis
//! through the link's background thread, in chunks, and never waits for it: a pool short of units
//! lends at most one chunk ahead while a fetch is on its way (the *overdraft*), and the units it
//! lent are charged to Redis with the next fetch. Past that chunk a pool whose fetch is not
//! answered yet is *behind*, and follows its limit's `on_redis_error` as if Redis were
//! unreachable, though Redis has failed nothing: a loaded box gets there with a small chunk. So
//! a fail-open limit can go past `processes × cluster_lease` over its limit by the units of its
//! fail-open leases ([`LimitStats::fail_open`]), and a fail-closed one can refuse while it has
//! room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use weir_config::quota::{Amount, FailMode, Limit, Scope, Window};

use crate::redis::RedisLink;

/// What a limit counts, in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Requests.
    Requests,
    /// Input + output tokens.
    Tokens,
    /// Input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// Money, in nano-units (1e-9 of the price table's currency).
    Money,
}

impl Unit {
    /// The name used in the admin API and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
            Unit::InputTokens => "input_tokens",
            Unit::OutputTokens => "output_tokens",
            Unit::Money => "budget",
        }
    }
}

/// Nano-units per unit of money.
pub const NANO: f64 = 1e9;

/// Counters of one limit, read by the metrics scrape. Written only off the fast path (at pool
/// visits, refusals and by the Redis thread), so plain shared atomics are fine here.
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Leases handed to cores.
    pub leases: AtomicU64,
    /// Requests refused because the window's units were spent.
    pub refused_exhausted: AtomicU64,
    /// Requests refused because they need more than the whole limit.
    pub refused_too_large: AtomicU64,
    /// Requests refused because Redis was unreachable, or behind (`on_redis_error: closed`).
    pub refused_unavailable: AtomicU64,
    /// Leases granted while Redis was unreachable, or behind: past the chunk lent ahead, the
    /// fetch not answered yet (`on_redis_error: open`).
    pub fail_open: AtomicU64,
    /// Commands sent to Redis.
    pub redis_commands: AtomicU64,
    /// Commands that failed (connection refused, timeout, error reply).
    pub redis_errors: AtomicU64,
}

/// Why a pool refused a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The window's units are spent (what is left is less than the request needs).
    Exhausted {
        /// Units still in the pool.
        left: u64,
    },
    /// The request needs more than the whole limit: no window will take it.
    TooLarge,
    /// Redis cannot be reached and the limit fails closed.
    Unavailable,
}

/// A lease handed to a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Units granted (at least what was asked).
    pub units: u64,
    /// The entry's epoch (bumped by a reset).
    pub epoch: u64,
    /// The core's lease and its debt are void (the entry was reset since the core last came).
    pub void: bool,
    /// Units left in the pool after this grant (for `x-ratelimit-remaining-*`).
    pub pool_left: u64,
    /// The window's limit with its top-ups.
    pub cap: u64,
}

/// One key's pool in one window.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// Window start (seconds since the epoch).
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// Bumped by every reset; leases of an older epoch are void.
    pub epoch: u64,
    /// Added by top-ups, for this window.
    pub extra: u64,
    /// Units handed to cores in this window.
    pub granted: u64,
    /// Settled use reported by cores (each reports at its next visit).
    pub spent: u64,
    /// Requests admitted (reported with `spent`).
    pub requests: u64,
    // --- cluster mode ---
    /// Units fetched from Redis and not yet handed to a core.
    pub avail: u64,
    /// Units handed out beyond what Redis granted (overdraft, or failing open),
    /// to be charged to Redis with the next fetch.
    pub unsynced: u64,
    /// A fetch is on its way.
    pub pending: bool,
    /// What that fetch charges (lent ahead of Redis and not yet counted there).
    pub in_flight: u64,
    /// Redis said the window is spent.
    pub exhausted: bool,
    /// When the last fetch was sent (ms), to re-check a spent window now and then.
    pub fetched_at: u64,
    /// Units Redis counts as taken by every process, as of the last answer.
    pub remote_used: u64,
    /// The limit with every process's top-ups, as Redis last said.
    pub remote_cap: u64,
}

/// What an entry looks like to the admin API.
#[derive(Debug, Clone)]
pub struct EntryView {
    /// The key (`consumer=alice,model=gpt-4o`).
    pub key: String,
    /// Its state.
    pub entry: Entry,
}

/// A fetch for the Redis thread: want `want` more units, and charge `force` units lent already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The key.
    pub key: Box<str>,
    /// Window start.
    pub start: u64,
    /// Window end.
    pub end: u64,
    /// Epoch the fetch belongs to.
    pub epoch: u64,
    /// Units wanted.
    pub want: u64,
    /// Units already handed out without Redis's grant.
    pub force: u64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Box<str>, Entry>,
    /// Size at which stale windows are swept out.
    sweep_at: usize,
}

/// One limit, shared by every core (and every filter naming it).
#[derive(Debug)]
pub struct LimitShared {
    /// Unique in the process, for the cores' lease registries.
    pub id: u64,
    /// Its name.
    pub name: Arc<str>,
    /// Its config, to tell whether a reload changed it.
    pub def: Limit,
    /// The Redis config of a cluster limit, also compared on reload.
    pub redis_cfg: Option<weir_config::quota::Redis>,
    /// What it counts.
    pub unit: Unit,
    /// The limit per window, in units.
    pub amount: u64,
    /// The window.
    pub window: Window,
    /// Cores that built a filter with it (for lease sizes).
    pub cores: AtomicUsize,
    /// Redis, for cluster limits.
    pub link: Option<Arc<RedisLink>>,
    /// Counters for the metrics.
    pub stats: LimitStats,
    fail_open: bool,
    chunk: u64,
    entries: Mutex<Entries>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl LimitShared {
    /// A limit from its validated config.
    pub fn new(
        def: &Limit,
        redis_cfg: Option<&weir_config::quota::Redis>,
        link: Option<Arc<RedisLink>>,
    ) -> LimitShared {
        let (unit, amount) = match def.amount() {
            Some(Amount::Requests(n)) => (Unit::Requests, n),
            Some(Amount::Tokens(n)) => (Unit::Tokens, n),
            Some(Amount::InputTokens(n)) => (Unit::InputTokens, n),
            Some(Amount::OutputTokens(n)) => (Unit::OutputTokens, n),
            Some(Amount::Budget(b)) => (Unit::Money, (b * NANO).round() as u64),
            // Validation refuses this; an empty limit refuses everything rather than nothing.
            None => (Unit::Requests, 0),
        };
        let cluster = def.scope == Scope::Cluster;
        LimitShared {
            id: NEXT_ID.fetch_add(1, Relaxed),
            name: def.name.as_str().into(),
            def: def.clone(),
            redis_cfg: redis_cfg.filter(|_| cluster).cloned(),
            unit,
            amount,
            window: def.per,
            cores: AtomicUsize::new(1),
            link: link.filter(|_| cluster),
            stats: LimitStats::default(),
            fail_open: def.on_redis_error == FailMode::Open,
            chunk: def
                .cluster_lease
                .unwrap_or(amount / 16)
                .clamp(1, amount.max(1)),
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                sweep_at: 1024,
            }),
        }
    }

    /// The size of a core's lease when `left` units remain and `need` are needed now: the
    /// configured lease (default: limit / (8 × cores)), shrinking to a share of what is left so
    /// that an emptying pool is not stranded on idle cores, never less than `need`.
    fn lease_size(&self, left: u64, need: u64) -> u64 {
        let cores = self.cores.load(Relaxed).max(1) as u64;
        let base = self
            .def
            .lease
            .unwrap_or_else(|| (self.amount / (8 * cores)).max(1));
        base.min(left / (2 * cores)).max(need).min(left)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A core takes a lease for `key` in the window `[start, end)`: `need` units at least (`r`
    /// if the core's lease turns out void), and reports `spent` units of settled use and
    /// `requests` admitted since its last visit. `now_ms` is the time.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        self: &Arc<Self>,
        key: &str,
        (start, end): (u64, u64),
        need: u64,
        r: u64,
        epoch: u64,
        (spent, requests): (u64, u64),
        now_ms: u64,
    ) -> Result<Grant, Refusal> {
        let mut fetch = None;
        let res = {
            let mut g = self.lock();
            let entries = &mut *g;
            if entries.map.len() >= entries.sweep_at {
                let now = now_ms / 1000;
                entries.map.retain(|_, e| e.end > now);
                entries.sweep_at = (entries.map.len() * 2).max(1024);
            }
            let e = match entries.map.get_mut(key) {
                Some(e) => e,
                None => entries.map.entry(key.into()).or_default(),
            };
            if e.start != start {
                *e = Entry {
                    start,
                    end,
                    epoch: e.epoch,
                    ..Entry::default()
                };
            }
            let void = epoch != e.epoch;
            let need = if void { r } else { need };
            if !void {
                e.spent += spent;
                e.requests += requests;
            }
            let cap = self.cap(e);
            let res = if r > cap {
                Err(Refusal::TooLarge)
            } else if self.link.is_some() {
                self.take_cluster(e, need, now_ms, &mut fetch)
            } else {
                let left = cap.saturating_sub(e.granted);
                if need > left {
                    Err(Refusal::Exhausted { left })
                } else {
                    let units = self.lease_size(left, need);
                    e.granted += units;
                    Ok(units)
                }
            };
            res.map(|units| Grant {
                units,
                epoch: e.epoch,
                void,
                pool_left: self.pool_left(e),
                cap,
            })
        };
        if let (Some(f), Some(link)) = (fetch, &self.link) {
            link.send_fetch(
                self.clone(),
                Fetch {
                    key: key.into(),
                    ..f
                },
            );
        }
        match res {
            Ok(_) => self.stats.leases.fetch_add(1, Relaxed),
            Err(Refusal::Exhausted { .. }) => self.stats.refused_exhausted.fetch_add(1, Relaxed),
            Err(Refusal::TooLarge) => self.stats.refused_too_large.fetch_add(1, Relaxed),
            Err(Refusal::Unavailable) => self.stats.refused_unavailable.fetch_add(1, Relaxed),
        };
        res
    }

    /// The window's limit with its top-ups.
    fn cap(&self, e: &Entry) -> u64 {
        (self.amount + e.extra).max(e.remote_cap)
    }

    /// Units left for the whole window as this process sees it.
    fn pool_left(&self, e: &Entry) -> u64 {
        let cap = self.cap(e);
        if self.link.is_some() {
            // Redis's count includes what this process holds in `avail`.
            cap.saturating_sub(e.remote_used + e.unsynced) + e.avail
        } else {
            cap.saturating_sub(e.granted)
        }
    }

    fn take_cluster(
        &self,
        e: &mut Entry,
        need: u64,
        now_ms: u64,
        fetch: &mut Option<Fetch>,
    ) -> Result<u64, Refusal> {
        let up = self.link.as_ref().is_some_and(|l| l.up());
        // What may be lent now: the units fetched, and while Redis answers and has room, up to
        // one chunk ahead of it (the fetch that covers them is on its way or next).
        let ahead = if up && !e.exhausted {
            self.chunk.saturating_sub(e.unsynced + e.in_flight)
        } else {
            0
        };
        let res = if need <= e.avail + ahead {
            let units = self.lease_size(e.avail + ahead, need);
            let from_avail = units.min(e.avail);
            e.avail -= from_avail;
            e.unsynced += units - from_avail;
            Ok(units)
        } else if up && e.exhausted {
            Err(Refusal::Exhausted { left: e.avail })
        } else {
            // Redis is away, or behind (a chunk lent ahead and its fetch not answered yet):
            // either way this request cannot wait for it.
            if self.fail_open {
                // This process alone holds requests to the whole limit, and charges what it
                // lets through to Redis with its next fetch.
                let left = self.cap(e).saturating_sub(e.granted);
                if need > left {
                    Err(Refusal::Exhausted { left })
                } else {
                    let units = self.lease_size(left, need);
                    let from_avail = units.min(e.avail);
                    e.avail -= from_avail;
                    e.unsynced += units - from_avail;
                    self.stats.fail_open.fetch_add(1, Relaxed);
                    Ok(units)
                }
            } else {
                Err(Refusal::Unavailable)
            }
        };
        if let Ok(units) = res {
            e.granted += units;
        }
        // Fetch the next chunk once half of this one is gone, so that at steady load the pool
        // is refilled before it runs dry; a spent window is asked again once a second (another
        // host may have reset or topped it up); an unreachable Redis is retried by the link's
        // own back-off.
        let reachable = up || self.link.as_ref().is_some_and(|l| l.retry_due(now_ms));
        let due = reachable
            && if e.exhausted {
                now_ms.saturating_sub(e.fetched_at) >= 1000
            } else {
                // What was lent ahead goes with the next fetch: no command of its own.
                e.avail < self.chunk.div_ceil(2)
            };
        if !e.pending && due {
            e.pending = true;
            e.fetched_at = now_ms;
            *fetch = Some(Fetch {
                key: Box::from(""),
                start: e.start,
                end: e.end,
                epoch: e.epoch,
                want: self.chunk,
                force: e.unsynced,
            });
            e.in_flight = std::mem::take(&mut e.unsynced);
        }
        res
    }

    /// The Redis thread's answer to a fetch: `granted` units, Redis counting `used` in all.
    pub fn fetched(&self, f: &Fetch, granted: u64, used: u64, cap: u64) {
        let mut g = self.lock();
        if let Some(e) = g.map.get_mut(&*f.key) {
            if e.start == f.start && e.epoch == f.epoch {
                e.avail += granted;
                e.remote_used = used;
                e.remote_cap = cap;
                e.exhausted = granted < f.want;
                e.pending = false;
                e.in_flight = 0;
            }
        }
    }

    /// A fetch failed: what it was to charge stays to be charged.
    pub fn fetch_failed(&self, f: &Fetch) {
        let mut g = self.lock();
        if let Some(e) = g.map.get_mut(&*f.key) {
            if e.start == f.start && e.epoch == f.epoch {
                e.unsynced += f.force;
                e.pending = false;
                e.in_flight = 0;
            }
        }
    }

    /// Every key's entry in the current window (for the admin API).
    pub fn entries(&self, now_s: u64) -> Vec<EntryView> {
        let g = self.lock();
        let mut v: Vec<EntryView> = g
            .map
            .iter()
            .filter(|(_, e)| e.end > now_s)
            .map(|(k, e)| EntryView {
                key: k.to_string(),
                entry: e.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Starts `key`'s current window afresh (or every key's, with `None`). Cores drop their
    /// leases of it at their next visit. Returns the keys reset.
    pub fn reset(&self, key: Option<&str>, now_s: u64) -> Vec<String> {
        let (start, end) = crate::window::bounds(self.window, now_s);
        let mut g = self.lock();
        let mut done = Vec::new();
        if let Some(k) = key {
            g.map.entry(k.into()).or_default();
        }
        for (k, e) in g.map.iter_mut() {
            if key.is_some_and(|want| want != &**k) {
                continue;
            }
            *e = Entry {
                start,
                end,
                epoch: e.epoch + 1,
                ..Entry::default()
            };
            done.push(k.to_string());
        }
        done
    }

    /// Adds `units` to `key`'s current window.
    pub fn top_up(&self, key: &str, units: u64, now_s: u64) -> Entry {
        let (start, end) = crate::window::bounds(self.window, now_s);
        let mut g = self.lock();
        let e = g.map.entry(key.into()).or_default();
        if e.start != start {
            *e = Entry {
                start,
                end,
                epoch: e.epoch,
                ..Entry::default()
            };
        }
        e.extra += units;
        // A spent window in Redis may have room again.
        e.exhausted = false;
        e.clone()
    }

    /// The cap (limit + top-ups) and what is left of `entry`'s window.
    pub fn view(&self, e: &Entry) -> (u64, u64) {
        (self.cap(e), self.pool_left(e))
    }
}

#[cfg(test)]
mod tests;
