//! Load-balancing policies over the available endpoints of one core.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::cluster::Endpoint;

/// What a consistent-hash policy hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A request header (lowercase name).
    Header(String),
    /// A cookie.
    Cookie(String),
    /// The client IP.
    SourceIp,
}

impl HashOn {
    /// Parses `header:NAME`, `cookie:NAME`, `source_ip` (already validated by the config).
    pub fn parse(s: &str) -> HashOn {
        if let Some(h) = s.strip_prefix("header:") {
            HashOn::Header(h.to_ascii_lowercase())
        } else if let Some(c) = s.strip_prefix("cookie:") {
            HashOn::Cookie(c.to_string())
        } else {
            HashOn::SourceIp
        }
    }
}

/// The policy and its per-core state.
pub(crate) enum Lb {
    /// Equal weights: a rotating index.
    RoundRobin { next: Cell<usize> },
    /// Smooth weighted round robin (nginx's): even spread, no bursts to one endpoint.
    Weighted {
        weights: Vec<i64>,
        current: RefCell<Vec<i64>>,
    },
    /// Power of two random choices on in-flight requests per weight.
    LeastRequest,
    /// A ring of virtual nodes.
    Ring {
        ring: Vec<(u64, usize)>,
        hash_on: HashOn,
    },
}

/// Virtual nodes per unit of weight on the ring.
const VNODES: u32 = 100;

impl Lb {
    pub(crate) fn round_robin(weights: &[u32]) -> Lb {
        if weights.iter().all(|w| *w == weights[0]) {
            Lb::RoundRobin {
                next: Cell::new(fastrand::usize(..weights.len().max(1))),
            }
        } else {
            Lb::Weighted {
                weights: weights.iter().map(|w| *w as i64).collect(),
                current: RefCell::new(vec![0; weights.len()]),
            }
        }
    }

    pub(crate) fn ring(names: &[&str], weights: &[u32], hash_on: HashOn) -> Lb {
        let mut ring = Vec::new();
        for (i, (name, w)) in names.iter().zip(weights).enumerate() {
            for v in 0..w * VNODES {
                ring.push((hash(format!("{name}#{v}").as_bytes()), i));
            }
        }
        ring.sort_unstable();
        Lb::Ring { ring, hash_on }
    }

    pub(crate) fn hash_on(&self) -> Option<&HashOn> {
        match self {
            Lb::Ring { hash_on, .. } => Some(hash_on),
            _ => None,
        }
    }

    pub(crate) fn pick(
        &self,
        eps: &[Rc<Endpoint>],
        key: Option<&[u8]>,
        ok: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = eps.len();
        match self {
            Lb::RoundRobin { next } => {
                let start = next.get();
                next.set((start + 1) % n);
                (0..n).map(|k| (start + k) % n).find(|i| ok(*i))
            }
            Lb::Weighted { weights, current } => {
                let mut cur = current.borrow_mut();
                let mut total = 0;
                let mut best: Option<usize> = None;
                for i in 0..n {
                    if !ok(i) {
                        continue;
                    }
                    cur[i] += weights[i];
                    total += weights[i];
                    if best.is_none_or(|b| cur[i] > cur[b]) {
                        best = Some(i);
                    }
                }
                if let Some(b) = best {
                    cur[b] -= total;
                }
                best
            }
            Lb::LeastRequest => {
                let nth = |k: usize| (0..n).filter(|i| ok(*i)).nth(k);
                let m = (0..n).filter(|i| ok(*i)).count();
                match m {
                    0 => None,
                    1 => nth(0),
                    _ => {
                        let i = fastrand::usize(..m);
                        let mut j = fastrand::usize(..m - 1);
                        if j >= i {
                            j += 1;
                        }
                        let (a, b) = (nth(i)?, nth(j)?);
                        let load = |e: usize| {
                            (eps[e].in_flight.get() as u64 + 1) * 1000
                                / eps[e].shared.weight.max(1) as u64
                        };
                        Some(if load(b) < load(a) { b } else { a })
                    }
                }
            }
            Lb::Ring { ring, .. } => {
                let Some(key) = key else {
                    // No key in this request: spread at random.
                    let m = (0..n).filter(|i| ok(*i)).count();
                    return (m > 0)
                        .then(|| fastrand::usize(..m))
                        .and_then(|k| (0..n).filter(|i| ok(*i)).nth(k));
                };
                let h = hash(key);
                let start = ring.partition_point(|(p, _)| *p < h);
                (0..ring.len())
                    .map(|k| ring[(start + k) % ring.len()].1)
                    .find(|i| ok(*i))
            }
        }
    }
}

/// FNV-1a with a final avalanche (stable across processes and versions, unlike `DefaultHasher`).
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ceb9fe1a85ec53);
    h ^ (h >> 33)
}
