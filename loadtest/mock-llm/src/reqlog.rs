//! The log of provider requests that `GET /mock/requests` returns, oldest first: what the
//! gateway actually sent upstream (family, method, path, model, credential, stream flag, status
//! answered, body, headers). Process-wide, bounded to the last [`CAP`] entries.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Entries kept; older ones are dropped.
pub const CAP: usize = 1000;

/// A bounded log, oldest entry first.
#[derive(Debug)]
pub struct Log {
    entries: VecDeque<Value>,
    cap: usize,
}

impl Log {
    pub const fn new(cap: usize) -> Log {
        Log {
            entries: VecDeque::new(),
            cap,
        }
    }

    /// Appends one entry, dropping the oldest beyond the cap.
    pub fn push(&mut self, entry: Value) {
        if self.entries.len() == self.cap {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The entries as a JSON array.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&e.to_string());
        }
        out.push(']');
        out
    }

    /// Empties the log; returns how many entries it had.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }
}

static LOG: Mutex<Log> = Mutex::new(Log::new(CAP));

fn log() -> std::sync::MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends one entry to the process-wide log.
pub fn record(entry: Value) {
    log().push(entry);
}

/// The process-wide log as a JSON array.
pub fn to_json() -> String {
    log().to_json()
}

/// Empties the process-wide log; returns how many entries it had.
pub fn clear() -> usize {
    log().clear()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    #[test]
    fn bounded_and_ordered() {
        let mut log = Log::new(CAP);
        for i in 0..CAP + 5 {
            log.push(Value::from(i));
        }
        let v: Vec<u64> = serde_json::from_str(&log.to_json()).unwrap();
        assert_eq!(v.len(), CAP);
        assert_eq!((v[0], v[CAP - 1]), (5, CAP as u64 + 4));
        assert_eq!(log.clear(), CAP);
        assert_eq!(log.to_json(), "[]");
    }
}
