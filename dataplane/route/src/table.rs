//! An ordered list of routes with a host index: [`RouteTable`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use weir_config::RouteMatch;
use weir_http::RequestHead;

use crate::error::Result;
use crate::host::{wild_matches, with_host};
use crate::matcher::{Prepared, RouteMatcher};

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
/// First-match-wins order is kept because every list is in route order.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Box<[RouteMatcher]>,
    by_host: HashMap<Box<[u8]>, Box<[u32]>, BuildHasherDefault<Fnv>>,
    other_hosts: Box<[u32]>,
    /// No route has a host condition: skip host normalization entirely.
    any_host: bool,
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
        let mut by_host: HashMap<Box<[u8]>, Vec<u32>, BuildHasherDefault<Fnv>> = HashMap::default();
        for r in &routes {
            if let Some(h) = &r.hosts {
                for e in &h.exact {
                    by_host.entry(e.clone()).or_default();
                }
            }
        }
        let mut other_hosts = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            // Route indices fit in u32: a listener with four billion routes is not a config.
            let i = i as u32;
            match &r.hosts {
                None => {
                    other_hosts.push(i);
                    by_host.values_mut().for_each(|l| l.push(i));
                }
                Some(h) => {
                    if !h.suffixes.is_empty() {
                        other_hosts.push(i);
                    }
                    for (name, list) in by_host.iter_mut() {
                        let takes = h.exact.iter().any(|e| e == name)
                            || h.suffixes.iter().any(|s| wild_matches(s, name));
                        if takes {
                            list.push(i);
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
            let at = Prepared::new(req, b"");
            return self
                .routes
                .iter()
                .position(|r| r.matches_prepared(req, &at, true));
        }
        with_host(&req.host, |host| {
            let at = Prepared::new(req, host);
            let (candidates, host_checked) = match self.by_host.get(host) {
                Some(list) => (list, true),
                None => (&self.other_hosts, false),
            };
            candidates.iter().map(|i| *i as usize).find(|i| {
                self.routes
                    .get(*i)
                    .is_some_and(|r| r.matches_prepared(req, &at, host_checked))
            })
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

/// FNV-1a: hosts are short, and SipHash's flood resistance buys nothing here, because the table's
/// keys come from the config, never from clients; a client's host only ever looks one up.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
