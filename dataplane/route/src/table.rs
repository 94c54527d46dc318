//! An ordered list of routes with a host index: [`RouteTable`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use weir_config::RouteMatch;
use weir_http::RequestHead;

use crate::error::Result;
use crate::host::{wild_matches, with_host};
use crate::matcher::{first_segment, Prepared, RouteMatcher};

/// The routes of a listener, tried in order; the first that matches wins.
///
/// Built once per core per config generation. A lookup normalizes the request host once (lowercase,
/// no port, on the stack), then uses a host index so that only routes that can take that host are
/// tried:
///
/// - every exact host named by some route maps to the ordered list of routes that accept it (those
///   naming it, those with a `*.suffix` it falls under, and those with no host condition), whose
///   host condition then needs no further check;
/// - any other host is tried against the routes with no host condition or a wildcard.
///
/// Each entry of those lists also carries a fingerprint of the first path segment its route
/// requires (`api` for a prefix `/api/v1`), so a route for another segment is skipped without
/// touching the route itself. First-match-wins order is kept because every list is in route order.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Box<[RouteMatcher]>,
    by_host: HashMap<Box<[u8]>, Box<[Candidate]>, BuildHasherDefault<Fx>>,
    other_hosts: Box<[Candidate]>,
    /// No route has a host condition: skip host normalization entirely.
    any_host: bool,
}

/// A route to try, with the fingerprint of the first path segment it requires (0: any).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    route: u32,
    segment: u32,
}

impl RouteTable {
    /// Compiles the `match` blocks of a listener's routes, in order. An error names the route's
    /// position in its field, e.g. `routes[3].match.path.regex`.
    pub fn new(matches: &[&RouteMatch]) -> Result<RouteTable> {
        let routes = matches
            .iter()
            .enumerate()
            .map(|(i, m)| RouteMatcher::new(m).map_err(|e| prefix_field(i, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_matchers(routes))
    }

    /// Builds a table from routes already compiled, in order.
    pub fn from_matchers(routes: Vec<RouteMatcher>) -> RouteTable {
        let mut by_host: HashMap<Box<[u8]>, Vec<Candidate>, BuildHasherDefault<Fx>> =
            HashMap::default();
        for r in &routes {
            if let Some(h) = &r.hosts {
                for e in &h.exact {
                    by_host.entry(e.clone()).or_default();
                }
            }
        }
        let mut other_hosts = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let c = Candidate {
                // Route indices fit in u32: a listener with four billion routes is not a config.
                route: i as u32,
                segment: r.first_segment().map_or(0, fingerprint),
            };
            match &r.hosts {
                None => {
                    other_hosts.push(c);
                    by_host.values_mut().for_each(|l| l.push(c));
                }
                Some(h) => {
                    if !h.suffixes.is_empty() {
                        other_hosts.push(c);
                    }
                    for (name, list) in by_host.iter_mut() {
                        let takes = h.exact.iter().any(|e| e == name)
                            || h.suffixes.iter().any(|s| wild_matches(s, name));
                        if takes {
                            list.push(c);
                        }
                    }
                }
            }
        }
        let any_host = routes.iter().all(|r| r.hosts.is_none());
        RouteTable {
            routes: routes.into_boxed_slice(),
            by_host: by_host
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            other_hosts: other_hosts.into_boxed_slice(),
            any_host,
        }
    }

    /// The index of the first route that matches `req`, if any.
    pub fn find(&self, req: &RequestHead) -> Option<usize> {
        if self.any_host {
            return self.scan(&self.other_hosts, req, b"", true);
        }
        with_host(&req.host, |host| match self.by_host.get(host) {
            Some(list) => self.scan(list, req, host, true),
            None => self.scan(&self.other_hosts, req, host, false),
        })
    }

    fn scan(
        &self,
        list: &[Candidate],
        req: &RequestHead,
        host: &[u8],
        host_checked: bool,
    ) -> Option<usize> {
        let at = Prepared::new(req, host);
        // A path without a leading `/` (`OPTIONS *`) has no segment: then nothing is skipped.
        let seg = first_segment(at.path).map_or(0, fingerprint);
        list.iter()
            .filter(|c| c.segment == 0 || seg == 0 || c.segment == seg)
            .map(|c| c.route as usize)
            .find(|i| {
                self.routes
                    .get(*i)
                    .is_some_and(|r| r.matches_prepared(req, &at, host_checked))
            })
    }

    /// The compiled route at `index`.
    pub fn get(&self, index: usize) -> Option<&RouteMatcher> {
        self.routes.get(index)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// No routes (every lookup misses).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn prefix_field(i: usize, e: crate::Error) -> crate::Error {
    use crate::Error;
    match e {
        Error::Regex {
            field,
            pattern,
            source,
        } => Error::Regex {
            field: format!("routes[{i}].{field}"),
            pattern,
            source,
        },
        Error::Invalid { field, reason } => Error::Invalid {
            field: format!("routes[{i}].{field}"),
            reason,
        },
    }
}

/// A non-zero 32-bit fingerprint of a path segment; two segments with the same one only cost a
/// full check.
fn fingerprint(segment: &[u8]) -> u32 {
    let mut h = Fx::default();
    h.write(segment);
    h.write_usize(segment.len());
    match (h.finish() >> 32) as u32 {
        0 => 1,
        f => f,
    }
}

/// FxHash (as in rustc), a word at a time: hosts are short, and SipHash's flood resistance buys
/// nothing here, because the table's keys come from the config, never from clients; a client's host
/// only ever looks one up. Byte-at-a-time FNV was a third of a whole lookup in `route_match`.
#[derive(Default)]
struct Fx(u64);

impl Fx {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
