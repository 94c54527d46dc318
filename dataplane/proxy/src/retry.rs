//! A per-core retry budget: retries may add at most a share of a route's requests over a sliding
//! window, plus a small floor per second, so a failing upstream is not hit by a retry storm.

use std::cell::Cell;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(10);

/// Requests and retries in the current and the previous window.
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    start: Cell<Instant>,
    requests: Cell<(u64, u64)>,
    retries: Cell<(u64, u64)>,
}

impl RetryBudget {
    /// `percent` of requests, and at least `min_per_second` retries per second.
    pub fn new(percent: f64, min_per_second: u32) -> Self {
        RetryBudget {
            ratio: percent / 100.0,
            floor: min_per_second as f64 * WINDOW.as_secs_f64(),
            start: Cell::new(Instant::now()),
            requests: Cell::new((0, 0)),
            retries: Cell::new((0, 0)),
        }
    }

    fn roll(&self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.start.get());
        if elapsed >= WINDOW {
            let keep_prev = elapsed < WINDOW * 2;
            let (r, _) = self.requests.get();
            let (t, _) = self.retries.get();
            self.requests.set((0, if keep_prev { r } else { 0 }));
            self.retries.set((0, if keep_prev { t } else { 0 }));
            self.start.set(now);
        }
    }

    /// A request of the route started.
    pub fn on_request(&self) {
        self.roll();
        let (c, p) = self.requests.get();
        self.requests.set((c + 1, p));
    }

    /// Takes a retry from the budget, if there is one left.
    pub fn try_retry(&self) -> bool {
        self.roll();
        let (rc, rp) = self.requests.get();
        let (tc, tp) = self.retries.get();
        let allowed = ((rc + rp) as f64 * self.ratio).max(self.floor);
        if ((tc + tp) as f64) < allowed {
            self.retries.set((tc + 1, tp));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_retries_to_a_share() {
        let b = RetryBudget::new(20.0, 0);
        for _ in 0..100 {
            b.on_request();
        }
        let granted = (0..100).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 20);
        let floor = RetryBudget::new(0.0, 1);
        assert_eq!((0..100).filter(|_| floor.try_retry()).count(), 10);
    }
}
