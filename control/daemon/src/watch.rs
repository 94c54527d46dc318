//! The watched config file. Polled, not inotify'd: editors and config managers replace the file
//! (write a new one, rename it over), which an inotify watch on the old inode misses. Every tick
//! re-opens the path and hashes its bytes, so a replaced, rewritten or touched file are all seen;
//! configs are small and the tick is 500 ms, so this costs nothing worth saving.
//!
//! A changed file is parsed and validated; a valid one that differs from the running config
//! becomes a generation (source `file`), an invalid one is logged and shown in `/v1/status`, and
//! the running generation stays.

use std::fs;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiProblem;
use crate::state::{Commit, Shared};
use crate::store::{now_rfc3339, Source};

/// 64-bit FNV-1a of `bytes`, as 16 hex digits. A fingerprint to notice change, not a defence:
/// anyone who can write the file can change the config anyway.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The watcher's memory of the file.
#[derive(Debug)]
pub struct Watcher {
    path: PathBuf,
    last_seen: Option<String>,
    last_error: Option<String>,
}

impl Watcher {
    /// Watches `path`.
    pub fn new(path: PathBuf) -> Self {
        Watcher {
            path,
            last_seen: None,
            last_error: None,
        }
    }

    /// Looks at the file once. Unless `force`d (SIGHUP), content already seen, or already
    /// accounted for by the running generation, is not parsed again.
    pub fn check(&mut self, shared: &Shared, force: bool) {
        let file = self.path.display().to_string();
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("cannot read {file}: {e}");
                if force || self.last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("{msg}; the running generation stays");
                }
                self.record(shared, Some(msg.clone()), Vec::new());
                self.last_error = Some(msg);
                // Re-read in full once it is back.
                self.last_seen = None;
                return;
            }
        };
        let hash = fingerprint(&bytes);
        if !force && self.last_seen.as_ref() == Some(&hash) {
            return;
        }
        self.last_seen = Some(hash.clone());
        if !force && shared.lock().file.settled_hash.as_ref() == Some(&hash) {
            // Unchanged since it was last applied (typically: a restart). Changes made through
            // the API since then stay.
            self.record(shared, None, Vec::new());
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let config = match weir_config::parse(&text, &file) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{file} is invalid; the running generation stays:\n{e}");
                let problems = match e {
                    weir_config::Error::Invalid { problems, .. } => {
                        problems.into_iter().map(ApiProblem::from).collect()
                    }
                    weir_config::Error::Read { .. } => Vec::new(),
                };
                let msg = format!("{file} is invalid ({} problems)", problems.len());
                self.record(shared, Some(msg.clone()), problems);
                self.last_error = Some(msg);
                return;
            }
        };
        // Keys made through the API are API state: an edit of the file keeps them.
        let keep = |cur: &weir_config::Config| {
            crate::api::checked(crate::api::consumers::carry_managed_keys(config, cur))
        };
        match shared.commit(Source::File, None, Some(hash), keep) {
            Ok(Commit::New(n)) => tracing::info!(generation = n, "applied {file}"),
            Ok(Commit::Unchanged(n)) => {
                tracing::info!(generation = n, "{file} matches the running generation")
            }
            Err(e) => {
                tracing::error!("cannot apply {file}: {}", e.message);
                self.record(shared, Some(e.message.clone()), e.problems);
                self.last_error = Some(e.message);
                // Try again on the next tick.
                self.last_seen = None;
                return;
            }
        }
        self.last_error = None;
        self.record(shared, None, Vec::new());
    }

    fn record(&self, shared: &Shared, error: Option<String>, problems: Vec<ApiProblem>) {
        let mut st = shared.lock();
        st.file.checked_at = Some(now_rfc3339());
        st.file.error = error;
        st.file.problems = problems;
    }

    /// Polls every `interval`; a message on `wake` (SIGHUP) forces a re-read at once. Returns when
    /// every sender is gone.
    pub fn run(mut self, shared: Arc<Shared>, wake: Receiver<()>, interval: Duration) {
        loop {
            let force = match wake.recv_timeout(interval) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if force {
                tracing::info!(file = %self.path.display(), "re-reading the config file");
            }
            self.check(&shared, force);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable() {
        // Stored in generation files: it must never change between builds.
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
    }
}
