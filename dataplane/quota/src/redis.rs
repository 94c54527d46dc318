//! Cluster mode: a limit's counters in Redis, shared by every process that names the same server.
//!
//! One background thread per Redis server and process owns the connection (the `redis` crate's
//! sync API) and works through a queue. Nothing on the request path waits for it: the pools
//! queue a fetch when they are half empty (see [`crate::pool`]) and go on lending from what they
//! hold. A fetch is one `EVALSHA` of [`SCRIPT`]: charge what the process lent beyond its grants,
//! then grant up to a chunk of what is left in the window, atomically. So Redis sees one command
//! per chunk a process uses, whatever the request rate.
//!
//! While Redis cannot be reached, the thread retries at most every 250 ms (each queued command
//! fails at once in between) and the pools apply their limit's `on_redis_error`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::pool::{Fetch, LimitShared};
use crate::window::now_ms;

/// Charge `ARGV[2]` units lent already, then grant up to `ARGV[1]` of the window's limit
/// (`ARGV[3]` plus the top-ups kept under `KEYS[2]`); the counter expires `ARGV[4]` seconds
/// later. Returns `{granted, used, cap}`.
pub const SCRIPT: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local extra = tonumber(redis.call('GET', KEYS[2]) or '0')
local cap = tonumber(ARGV[3]) + extra
used = used + tonumber(ARGV[2])
local grant = tonumber(ARGV[1])
if cap - used < grant then grant = cap - used end
if grant < 0 then grant = 0 end
used = used + grant
redis.call('SET', KEYS[1], used, 'EX', ARGV[4])
return {grant, used, cap}
";

/// How long an unreachable Redis is left alone before the next try.
const RETRY: u64 = 250;

enum Job {
    Fetch(Arc<LimitShared>, Fetch),
    /// One key's window, or (`None`) every key's current window of the limit, including keys
    /// only other processes have seen.
    Reset {
        limit: Arc<str>,
        start: u64,
        key: Option<String>,
    },
    TopUp {
        limit: Arc<str>,
        start: u64,
        end: u64,
        key: String,
        units: u64,
    },
}

#[derive(Debug)]
struct LinkState {
    up: AtomicBool,
    /// When down: the earliest time (ms) of the next connection attempt.
    retry_at: AtomicU64,
    commands: AtomicU64,
    errors: AtomicU64,
}

/// The link to one Redis server: a queue to its thread, and whether it answered last time.
#[derive(Debug)]
pub struct RedisLink {
    /// Its config.
    pub cfg: weir_config::quota::Redis,
    tx: mpsc::Sender<Job>,
    state: Arc<LinkState>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl RedisLink {
    /// Starts the link's thread (it connects on first use and ends when the link is dropped).
    pub fn start(cfg: &weir_config::quota::Redis) -> Result<Arc<RedisLink>, crate::Error> {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(LinkState {
            up: AtomicBool::new(true),
            retry_at: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| crate::Error(format!("redis url: {e}")))?;
        let st = state.clone();
        let timeout = cfg.timeout.get();
        std::thread::Builder::new()
            .name("weir-quota-redis".into())
            .spawn(move || run(client, timeout, rx, st))
            .map_err(|e| crate::Error(format!("starting the redis thread: {e}")))?;
        Ok(Arc::new(RedisLink {
            cfg: cfg.clone(),
            tx,
            state,
        }))
    }

    /// Whether the last command got an answer.
    pub fn up(&self) -> bool {
        self.state.up.load(Relaxed)
    }

    /// Whether a down Redis may be tried again.
    pub fn retry_due(&self, now_ms: u64) -> bool {
        now_ms >= self.state.retry_at.load(Relaxed)
    }

    /// Commands sent and failed, for the metrics.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.state.commands.load(Relaxed),
            self.state.errors.load(Relaxed),
        )
    }

    /// Queues a fetch for `limit`'s pool.
    pub fn send_fetch(&self, limit: Arc<LimitShared>, f: Fetch) {
        if let Err(mpsc::SendError(Job::Fetch(l, f))) = self.tx.send(Job::Fetch(limit, f)) {
            l.fetch_failed(&f);
        }
    }

    /// Queues a reset of a key's current window (`None`: every key's, found in Redis).
    pub fn send_reset(&self, limit: Arc<str>, start: u64, key: Option<String>) {
        let _ = self.tx.send(Job::Reset { limit, start, key });
    }

    /// Queues a top-up of a key's window.
    pub fn send_top_up(&self, limit: Arc<str>, (start, end): (u64, u64), key: String, units: u64) {
        let _ = self.tx.send(Job::TopUp {
            limit,
            start,
            end,
            key,
            units,
        });
    }
}

/// The Redis keys of a limit's counter and its top-ups for one key and window. The braces make
/// both hash to one slot of a Redis Cluster.
pub fn keys(limit: &str, start: u64, key: &str) -> (String, String) {
    let tag = format!("{{{limit}:{start}:{key}}}");
    (format!("weir:quota:u:{tag}"), format!("weir:quota:x:{tag}"))
}

/// `s` matched literally by a Redis glob pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn run(client: redis::Client, timeout: Duration, rx: mpsc::Receiver<Job>, st: Arc<LinkState>) {
    let script = redis::Script::new(SCRIPT);
    let mut con: Option<redis::Connection> = None;
    while let Ok(job) = rx.recv() {
        let now = now_ms();
        if con.is_none() && now >= st.retry_at.load(Relaxed) {
            match client.get_connection_with_timeout(timeout) {
                Ok(c) => {
                    let _ = c.set_read_timeout(Some(timeout));
                    let _ = c.set_write_timeout(Some(timeout));
                    con = Some(c);
                }
                Err(e) => {
                    if st.up.swap(false, Relaxed) {
                        tracing::warn!(error = %e, "quota: redis unreachable");
                    }
                    st.retry_at.store(now + RETRY, Relaxed);
                }
            }
        }
        let result = match &mut con {
            None => Err(None),
            Some(c) => {
                st.commands.fetch_add(1, Relaxed);
                execute(c, &script, &job).map_err(Some)
            }
        };
        match result {
            Ok(()) => {
                if !st.up.swap(true, Relaxed) {
                    tracing::info!("quota: redis reachable again");
                }
            }
            Err(e) => {
                st.errors.fetch_add(1, Relaxed);
                if let Some(e) = e {
                    tracing::warn!(error = %e, "quota: redis command failed");
                    con = None;
                    st.up.store(false, Relaxed);
                    st.retry_at.store(now + RETRY, Relaxed);
                }
                if let Job::Fetch(l, f) = &job {
                    l.stats.redis_errors.fetch_add(1, Relaxed);
                    l.fetch_failed(f);
                }
            }
        }
    }
}

fn execute(
    con: &mut redis::Connection,
    script: &redis::Script,
    job: &Job,
) -> redis::RedisResult<()> {
    match job {
        Job::Fetch(l, f) => {
            l.stats.redis_commands.fetch_add(1, Relaxed);
            let (used_key, extra_key) = keys(&l.name, f.start, &f.key);
            let ttl = f.end.saturating_sub(now_ms() / 1000) + 60;
            let (granted, used, cap): (i64, i64, i64) = script
                .key(used_key)
                .key(extra_key)
                .arg(f.want)
                .arg(f.force)
                .arg(l.amount)
                .arg(ttl)
                .invoke(con)?;
            let u = |x: i64| u64::try_from(x).unwrap_or(0);
            l.fetched(f, u(granted), u(used), u(cap));
            Ok(())
        }
        Job::Reset {
            limit,
            start,
            key: Some(key),
        } => {
            let (a, b) = keys(limit, *start, key);
            redis::cmd("DEL")
                .arg(a)
                .arg(b)
                .query::<i64>(con)
                .map(|_| ())
        }
        Job::Reset {
            limit,
            start,
            key: None,
        } => {
            // SCAN rather than KEYS: it never blocks the server for long.
            let pattern = format!("weir:quota:[ux]:{{{}:{start}:*}}", glob_escape(limit));
            let mut cursor = 0u64;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)?;
                for k in &found {
                    redis::cmd("DEL").arg(k).query::<i64>(con)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        }
        Job::TopUp {
            limit,
            start,
            end,
            key,
            units,
        } => {
            let (_, extra) = keys(limit, *start, key);
            let ttl = end.saturating_sub(now_ms() / 1000) + 60;
            redis::pipe()
                .atomic()
                .cmd("INCRBY")
                .arg(&extra)
                .arg(*units)
                .ignore()
                .cmd("EXPIRE")
                .arg(&extra)
                .arg(ttl)
                .ignore()
                .query::<()>(con)
        }
    }
}
