//! The daemon's shared state: the current generation, the store, the connected data planes, and
//! the one place where a config becomes a generation ([`Shared::commit`]).
//!
//! One mutex guards it all and one condition variable announces every change (a new generation, a
//! plane's answer, a plane gone). This is the control plane, not the request path: simplicity and
//! an obvious order of events beat lock-free cleverness. A generation is persisted while the lock
//! is held, so numbers are gap-free and every plane sees generations in order.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use weir_config::Config;

use crate::error::{ApiError, ApiProblem};
use crate::store::{now_rfc3339, Generation, Meta, Source, Store};

/// Disconnected planes stay listed this long.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// At most this many disconnected planes stay listed.
const MAX_GONE: usize = 64;

/// What a plane last answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Applied on every core.
    Ack,
    /// Refused; it runs the previous generation.
    Nack,
}

/// A data plane that is (or recently was) attached.
#[derive(Debug, Clone, Serialize)]
pub struct Plane {
    /// Connection number, unique for the daemon's life.
    #[serde(skip)]
    pub conn: u64,
    /// The plane's own id (from its Hello).
    pub plane_id: String,
    /// Its process id.
    pub pid: u32,
    /// Its `weir` version.
    pub version: String,
    /// Whether the link is up.
    pub connected: bool,
    /// When it attached (RFC 3339).
    pub connected_at: String,
    /// When the link went down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<String>,
    /// Why the link went down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// The generation it runs: the one in its Hello, then each one it ACKed.
    pub generation: u64,
    /// Its last answer to a snapshot.
    pub last_result: Option<Answer>,
    /// The generation that answer was about.
    pub last_result_generation: Option<u64>,
    /// The reason of the last NACK.
    pub last_reason: Option<String>,
    /// The last generation pushed to it.
    pub last_generation_sent: Option<u64>,
    /// Last frame received from it.
    #[serde(skip)]
    pub last_seen: Instant,
    #[serde(skip)]
    gone_since: Option<Instant>,
}

impl Plane {
    /// Whether the plane has answered for generation `n` (or runs it, or a later one).
    pub fn answered(&self, n: u64) -> bool {
        self.generation >= n || self.last_result_generation.is_some_and(|g| g >= n)
    }

    /// Its outcome for generation `n`: `ack`, `nack`, `pending` or `disconnected`.
    pub fn outcome(&self, n: u64) -> PlaneOutcome {
        let (result, reason) = if self.last_result == Some(Answer::Nack)
            && self.last_result_generation.is_some_and(|g| g >= n)
        {
            ("nack", self.last_reason.clone())
        } else if self.generation >= n {
            ("ack", None)
        } else if !self.connected {
            ("disconnected", self.disconnect_reason.clone())
        } else {
            ("pending", None)
        };
        PlaneOutcome {
            plane_id: self.plane_id.clone(),
            result,
            reason,
        }
    }
}

/// How one plane took a generation, in the answer of a change made with `?wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaneOutcome {
    /// The plane.
    pub plane_id: String,
    /// `ack`, `nack`, `pending` (no answer in time) or `disconnected`.
    pub result: &'static str,
    /// The NACK reason, or why the link went down.
    pub reason: Option<String>,
}

/// The watched config file, as last seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileStatus {
    /// The path given with `--config`.
    pub path: Option<PathBuf>,
    /// Fingerprint of the file content that the running state accounts for: last applied, or
    /// found equal to the running config. Every new generation records it (see
    /// [`Generation::file_hash`]).
    #[serde(skip)]
    pub settled_hash: Option<String>,
    /// When it was last read (RFC 3339).
    pub checked_at: Option<String>,
    /// Why the file's content is not running (unreadable or invalid), if it is not.
    pub error: Option<String>,
    /// The problems of an invalid file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ApiProblem>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub struct State {
    /// Kept generations on disk.
    pub store: Store,
    /// The generation in force.
    pub current: Arc<Generation>,
    /// Attached planes, then recently detached ones.
    pub planes: Vec<Plane>,
    /// The watched file.
    pub file: FileStatus,
    next_conn: u64,
}

/// Whether a commit made a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The config equals the current one: nothing was written.
    Unchanged(u64),
    /// A new generation was persisted.
    New(u64),
}

impl Commit {
    /// The generation in force after the commit.
    pub fn generation(self) -> u64 {
        match self {
            Commit::Unchanged(n) | Commit::New(n) => n,
        }
    }
}

/// The state, its lock and its condition variable.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    /// Wraps a loaded store and its current generation.
    pub fn new(store: Store, current: Generation, file: Option<PathBuf>) -> Shared {
        let settled_hash = current.file_hash.clone();
        Shared {
            state: Mutex::new(State {
                store,
                current: Arc::new(current),
                planes: Vec::new(),
                file: FileStatus {
                    path: file,
                    settled_hash,
                    ..FileStatus::default()
                },
                next_conn: 1,
            }),
            changed: Condvar::new(),
        }
    }

    /// Locks the state. A panic while it was held leaves it consistent (every mutation is a
    /// single assignment after the fallible work), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a change announced with [`Shared::notify`], at most `timeout`.
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    /// Wakes every waiter: plane writers, `?wait` requests.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// The generation in force.
    pub fn current(&self) -> Arc<Generation> {
        self.lock().current.clone()
    }

    /// Makes `change(current config)` the next generation: validated by `change`, persisted
    /// durably, then announced. An unchanged config makes no generation.
    pub fn commit(
        &self,
        source: Source,
        comment: Option<String>,
        file_hash: Option<String>,
        change: impl FnOnce(&Config) -> Result<Config, ApiError>,
    ) -> Result<Commit, ApiError> {
        let mut st = self.lock();
        let config = change(&st.current.config)?;
        let settled = file_hash.or_else(|| st.file.settled_hash.clone());
        if config == *st.current.config {
            // When it was the file, the file says what already runs: its hash is recorded with the
            // next generation that is made.
            st.file.settled_hash = settled;
            return Ok(Commit::Unchanged(st.current.meta.generation));
        }
        let n = st.current.meta.generation + 1;
        let g = Generation {
            meta: Meta {
                generation: n,
                created_at: now_rfc3339(),
                source,
                comment,
            },
            file_hash: settled.clone(),
            config: Arc::new(config),
        };
        st.store
            .write(&g)
            .map_err(|e| ApiError::internal(format!("cannot persist generation {n}: {e}")))?;
        st.current = Arc::new(g);
        st.file.settled_hash = settled;
        drop(st);
        tracing::info!(generation = n, source = source.as_str(), "new generation");
        self.notify();
        Ok(Commit::New(n))
    }

    // === planes ===

    /// Registers an attached plane; returns its connection number.
    pub fn attach(&self, plane_id: String, pid: u32, version: String, generation: u64) -> u64 {
        let mut st = self.lock();
        let conn = st.next_conn;
        st.next_conn += 1;
        // A plane that comes back replaces its old, disconnected entry.
        st.planes.retain(|p| p.connected || p.plane_id != plane_id);
        st.planes.push(Plane {
            conn,
            plane_id,
            pid,
            version,
            connected: true,
            connected_at: now_rfc3339(),
            disconnected_at: None,
            disconnect_reason: None,
            generation,
            last_result: None,
            last_result_generation: None,
            last_reason: None,
            last_generation_sent: None,
            last_seen: Instant::now(),
            gone_since: None,
        });
        drop(st);
        self.notify();
        conn
    }

    /// Applies `f` to the plane on connection `conn`, then wakes the waiters.
    pub fn update_plane(&self, conn: u64, f: impl FnOnce(&mut Plane)) {
        let mut st = self.lock();
        if let Some(p) = st.planes.iter_mut().find(|p| p.conn == conn) {
            f(p);
        }
        drop(st);
        self.notify();
    }

    /// Marks the plane on `conn` as gone (once; the first reason wins).
    pub fn detach(&self, conn: u64, reason: &str) {
        self.update_plane(conn, |p| {
            if p.connected {
                tracing::info!(plane = %p.plane_id, reason, "plane detached");
                p.connected = false;
                p.disconnected_at = Some(now_rfc3339());
                p.disconnect_reason = Some(reason.to_string());
                p.gone_since = Some(Instant::now());
            }
        });
    }

    /// Every plane: attached ones first, then recently detached ones.
    pub fn planes(&self) -> Vec<Plane> {
        let mut st = self.lock();
        forget_old(&mut st.planes);
        let mut v = st.planes.clone();
        v.sort_by_key(|p| (!p.connected, p.conn));
        v
    }

    /// Waits up to `timeout` until every plane attached now (or during the wait) has answered for
    /// generation `n`; returns each one's outcome.
    pub fn wait_for_planes(&self, n: u64, timeout: Duration) -> Vec<PlaneOutcome> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        let mut watched: Vec<u64> = st
            .planes
            .iter()
            .filter(|p| p.connected)
            .map(|p| p.conn)
            .collect();
        loop {
            for p in st.planes.iter().filter(|p| p.connected) {
                if !watched.contains(&p.conn) {
                    watched.push(p.conn);
                }
            }
            let done = st
                .planes
                .iter()
                .filter(|p| watched.contains(&p.conn))
                .all(|p| !p.connected || p.answered(n));
            let now = Instant::now();
            if done || now >= deadline {
                break;
            }
            st = self.wait(st, deadline - now);
        }
        st.planes
            .iter()
            .filter(|p| watched.contains(&p.conn))
            .map(|p| p.outcome(n))
            .collect()
    }
}

fn forget_old(planes: &mut Vec<Plane>) {
    planes.retain(|p| p.gone_since.is_none_or(|t| t.elapsed() < FORGET_AFTER));
    let gone = planes.iter().filter(|p| !p.connected).count();
    if gone > MAX_GONE {
        let mut drop_n = gone - MAX_GONE;
        // Oldest first: planes are kept in attach order.
        planes.retain(|p| {
            if !p.connected && drop_n > 0 {
                drop_n -= 1;
                false
            } else {
                true
            }
        });
    }
}
