//! A provider's key pool, shared by all cores of the process: which keys may be used now.
//!
//! A key that gets 401/403 is *disabled* until a probe (or, for providers without a probe
//! endpoint, a trial request after `key_probe_interval`) shows it works again; a key that gets 429
//! *cools down* for the provider's `Retry-After` (or `key_cooldown`). The state is a few atomics
//! per key, read with relaxed loads on the request path; each core keeps its own round-robin
//! cursor, so picking a key writes nothing shared.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};

use weir_config::KeySelection;

/// A provider credential. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The secret, to put into a request header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// What a key is made from: its id, secret and weight, as read from the config.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Name for logs and metrics.
    pub id: String,
    /// The secret.
    pub secret: Secret,
    /// AWS access key id (Bedrock).
    pub access_key_id: Option<String>,
    /// AWS session token (Bedrock).
    pub session_token: Option<Secret>,
    /// Share under weighted selection.
    pub weight: u32,
}

/// One key of the pool.
#[derive(Debug)]
pub struct Key {
    /// Name for logs and metrics.
    pub id: String,
    /// The secret (API key, AWS secret access key, or a service-account JSON).
    pub secret: Secret,
    /// AWS access key id (Bedrock).
    pub access_key_id: Option<String>,
    /// AWS session token (Bedrock).
    pub session_token: Option<Secret>,
    weight: u32,
    state: AtomicU8,
    /// Milliseconds since the pool's epoch until which the key rests (cooling) or until its next
    /// trial (disabled).
    until: AtomicU64,
}

const ACTIVE: u8 = 0;
const COOLING: u8 = 1;
const DISABLED: u8 = 2;

/// The health of a key, as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHealth {
    /// Usable.
    Active,
    /// Rate-limited; usable again after the time given.
    Cooling,
    /// Refused by the provider (401/403); waits for a probe.
    Disabled,
}

/// The keys of one provider.
#[derive(Debug)]
pub struct KeyPool {
    keys: Vec<Key>,
    selection: KeySelection,
    cooldown: Duration,
    probe_interval: Duration,
    total_weight: u32,
    epoch: Instant,
}

/// Why no key could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysDown {
    /// When the first cooling key is usable again (None: all are disabled).
    pub retry_after: Option<Duration>,
}

impl KeyPool {
    /// A pool of these keys (all active).
    pub fn new(
        keys: Vec<KeySpec>,
        selection: KeySelection,
        cooldown: Duration,
        probe_interval: Duration,
    ) -> Self {
        let keys: Vec<Key> = keys
            .into_iter()
            .map(|k| Key {
                id: k.id,
                secret: k.secret,
                access_key_id: k.access_key_id,
                session_token: k.session_token,
                weight: k.weight.max(1),
                state: AtomicU8::new(ACTIVE),
                until: AtomicU64::new(0),
            })
            .collect();
        let total_weight = keys.iter().map(|k| k.weight).sum();
        KeyPool {
            keys,
            selection,
            cooldown,
            probe_interval,
            total_weight,
            epoch: Instant::now(),
        }
    }

    /// No keys at all (providers that need none).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The key's health now.
    pub fn health(&self, i: usize) -> KeyHealth {
        let k = &self.keys[i];
        match k.state.load(Relaxed) {
            ACTIVE => KeyHealth::Active,
            COOLING if k.until.load(Relaxed) <= self.now_ms() => KeyHealth::Active,
            COOLING => KeyHealth::Cooling,
            _ => KeyHealth::Disabled,
        }
    }

    fn usable(&self, i: usize, now: u64, trials: bool) -> bool {
        let k = &self.keys[i];
        match k.state.load(Relaxed) {
            ACTIVE => true,
            COOLING => k.until.load(Relaxed) <= now,
            // A disabled key is tried again by a real request only where no probe can re-admit it.
            _ => trials && k.until.load(Relaxed) <= now,
        }
    }

    /// Picks a usable key not in `tried`. `cursor` is the core's own round-robin position.
    /// `trials`: a disabled key whose probe time has come may be tried by this request.
    pub fn pick(
        &self,
        cursor: &Cell<u32>,
        tried: &[usize],
        trials: bool,
    ) -> Result<usize, KeysDown> {
        let n = self.keys.len();
        let now = self.now_ms();
        let start = cursor.get();
        cursor.set(start.wrapping_add(1));
        let ok = |i: usize| !tried.contains(&i) && self.usable(i, now, trials);
        match self.selection {
            KeySelection::RoundRobin => {
                for step in 0..n {
                    let i = (start as usize + step) % n;
                    if ok(i) {
                        return Ok(i);
                    }
                }
            }
            KeySelection::Weighted => {
                // A point on the weight line, then the first usable key from there on.
                let mut point = fastrand::u32(0..self.total_weight.max(1));
                let mut first = 0;
                for (i, k) in self.keys.iter().enumerate() {
                    if point < k.weight {
                        first = i;
                        break;
                    }
                    point -= k.weight;
                }
                for step in 0..n {
                    let i = (first + step) % n;
                    if ok(i) {
                        return Ok(i);
                    }
                }
            }
        }
        let retry_after = self
            .keys
            .iter()
            .filter(|k| k.state.load(Relaxed) == COOLING)
            .map(|k| Duration::from_millis(k.until.load(Relaxed).saturating_sub(now)))
            .min();
        Err(KeysDown { retry_after })
    }

    /// The provider refused the key (401/403): out of the pool until a probe re-admits it.
    pub fn disable(&self, i: usize) {
        let k = &self.keys[i];
        if k.state.swap(DISABLED, Relaxed) != DISABLED {
            tracing::warn!(key = %k.id, "provider refused the key; disabled until a probe passes");
        }
        k.until.store(
            self.now_ms() + self.probe_interval.as_millis() as u64,
            Relaxed,
        );
    }

    /// The provider rate-limited the key (429): it rests for `retry_after` or the cooldown.
    pub fn cool_down(&self, i: usize, retry_after: Option<Duration>) {
        let k = &self.keys[i];
        let rest = retry_after
            .unwrap_or(self.cooldown)
            .min(Duration::from_secs(3600));
        k.until
            .store(self.now_ms() + rest.as_millis() as u64, Relaxed);
        // A disabled key stays disabled: a 429 says nothing about its validity.
        let _ = k.state.compare_exchange(ACTIVE, COOLING, Relaxed, Relaxed);
    }

    /// The key worked: active again (ends a trial or a cooldown early).
    pub fn succeeded(&self, i: usize) {
        let k = &self.keys[i];
        if k.state.swap(ACTIVE, Relaxed) == DISABLED {
            tracing::info!(key = %k.id, "key re-admitted");
        }
    }

    /// Disabled keys whose probe is due, for the prober.
    pub fn due_for_probe(&self) -> Vec<usize> {
        let now = self.now_ms();
        (0..self.keys.len())
            .filter(|&i| {
                let k = &self.keys[i];
                k.state.load(Relaxed) == DISABLED && k.until.load(Relaxed) <= now
            })
            .collect()
    }

    /// A probe of a disabled key failed: wait another interval.
    pub fn probe_failed(&self, i: usize) {
        self.keys[i].until.store(
            self.now_ms() + self.probe_interval.as_millis() as u64,
            Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, weight: u32) -> KeySpec {
        KeySpec {
            id: id.into(),
            secret: Secret::new(format!("sk-{id}")),
            access_key_id: None,
            session_token: None,
            weight,
        }
    }

    fn pool(n: usize, sel: KeySelection) -> KeyPool {
        KeyPool::new(
            (0..n).map(|i| spec(&i.to_string(), 1)).collect(),
            sel,
            Duration::from_secs(30),
            Duration::from_millis(0),
        )
    }

    #[test]
    fn round_robin_skips_bad_keys() {
        let p = pool(3, KeySelection::RoundRobin);
        let c = Cell::new(0);
        let picks: Vec<usize> = (0..3)
            .map(|_| p.pick(&c, &[], false).expect("key"))
            .collect();
        assert_eq!(picks, [0, 1, 2]);
        p.disable(1);
        p.cool_down(2, Some(Duration::from_secs(60)));
        for _ in 0..4 {
            assert_eq!(p.pick(&c, &[], false), Ok(0));
        }
        assert_eq!(p.health(1), KeyHealth::Disabled);
        assert_eq!(p.health(2), KeyHealth::Cooling);
        let down = p.pick(&c, &[0], false).expect_err("none left");
        assert!(down
            .retry_after
            .is_some_and(|d| d > Duration::from_secs(50)));
        // The probe interval is 0: the disabled key may be tried again by a real request.
        assert_eq!(p.pick(&c, &[0], true), Ok(1));
        assert_eq!(p.due_for_probe(), vec![1]);
        p.succeeded(1);
        assert_eq!(p.health(1), KeyHealth::Active);
    }

    #[test]
    fn cooldown_ends_by_itself() {
        let p = pool(1, KeySelection::RoundRobin);
        p.cool_down(0, Some(Duration::ZERO));
        assert_eq!(p.pick(&Cell::new(0), &[], false), Ok(0));
    }

    #[test]
    fn weighted_follows_weights() {
        let p = KeyPool::new(
            vec![spec("a", 9), spec("b", 1)],
            KeySelection::Weighted,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let c = Cell::new(0);
        let a = (0..2000)
            .filter(|_| p.pick(&c, &[], false) == Ok(0))
            .count();
        assert!((1600..2000).contains(&a), "{a}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let p = pool(1, KeySelection::RoundRobin);
        assert!(!format!("{p:?}").contains("sk-0"));
    }
}
