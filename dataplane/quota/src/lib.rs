//! `weir-quota`: quotas, rate limits and budgets (the `quota` filter) on sharded per-core
//! counters.
//!
//! Where it sits: a filter on a route. On plain routes it checks request limits in the request
//! head phase; on `ai` routes it checks every limit at the end of the request body, when the
//! model, the prompt and the client's error format are known, and *reserves* the request's
//! tokens and money (prompt estimate + `max_tokens`, priced); it *settles* them with the real
//! usage in `on_log`. A refused request gets a 429 in the client's protocol with `Retry-After`
//! and OpenAI's `x-ratelimit-*` fields; answers carry those fields too.
//!
//! Key types:
//! - [`SharedQuota`]: what every core shares, built per config generation on the main thread;
//!   a [`pool::LimitShared`] per limit name (kept across reloads while the limit's config is
//!   unchanged), with a pool per key and window, and the [`redis::RedisLink`]s of cluster
//!   limits.
//! - [`factory`] builds a core's [`filter::QuotaFactory`]: its leases ([`filter`]) are `Rc` and
//!   `Cell`s, so a request whose lease covers it touches no lock and no shared atomic. A lease
//!   too short is topped up from the pool (a mutex, once per lease); a cluster pool tops itself
//!   up from Redis on a background thread, never on the request path.
//! - [`admin`]: the admin listener's `/quota` endpoints (remaining quota and spend, reset,
//!   top-up) and the `weir_quota_*` metrics.
//!
//! How far a burst can go over a limit, and why, is in the README's quota section.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod filter;
pub mod pool;
pub mod prices;
pub mod redis;
pub mod window;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use weir_filter::FilterFactory;

use crate::pool::LimitShared;
use crate::redis::RedisLink;

/// Why the quota state or a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// What all cores share: built once per generation on the main thread, carried over while the
/// config it comes from is unchanged.
#[derive(Debug, Default)]
pub struct SharedQuota {
    limits: HashMap<String, Arc<LimitShared>>,
    links: Vec<Arc<RedisLink>>,
}

impl SharedQuota {
    /// Builds the shared state of `config`, reusing `prev`'s limits (their pools, leases and
    /// counters) whose definition is unchanged, and its Redis links.
    pub fn new(
        config: &weir_config::Config,
        prev: Option<&Arc<SharedQuota>>,
    ) -> Result<Arc<SharedQuota>, Error> {
        let mut limits: HashMap<String, Arc<LimitShared>> = HashMap::new();
        let mut links: Vec<Arc<RedisLink>> = Vec::new();
        for (_, _, q) in weir_config::quota::quota_filters(config) {
            for l in &q.limits {
                if limits.contains_key(&l.name) {
                    continue;
                }
                let cluster = l.scope == weir_config::quota::Scope::Cluster;
                let redis = q.redis.as_ref().filter(|_| cluster);
                let reuse = prev
                    .and_then(|p| p.limits.get(&l.name))
                    .filter(|old| old.def == *l && old.redis_cfg.as_ref() == redis)
                    .cloned();
                let shared = match reuse {
                    Some(s) => s,
                    None => {
                        let link = match redis {
                            None => None,
                            Some(cfg) => Some(link_for(cfg, &mut links, prev)?),
                        };
                        Arc::new(LimitShared::new(l, redis, link))
                    }
                };
                if let Some(link) = &shared.link {
                    if !links.iter().any(|k| Arc::ptr_eq(k, link)) {
                        links.push(link.clone());
                    }
                }
                limits.insert(l.name.clone(), shared);
            }
        }
        Ok(Arc::new(SharedQuota { limits, links }))
    }

    /// The limit named `name`.
    pub fn limit(&self, name: &str) -> Option<Arc<LimitShared>> {
        self.limits.get(name).cloned()
    }

    /// Every limit, by name.
    pub fn limits(&self) -> impl Iterator<Item = (&String, &Arc<LimitShared>)> {
        self.limits.iter()
    }
}

/// The link to a Redis server: this generation's, the previous one's, or a new one.
fn link_for(
    cfg: &weir_config::quota::Redis,
    links: &mut Vec<Arc<RedisLink>>,
    prev: Option<&Arc<SharedQuota>>,
) -> Result<Arc<RedisLink>, Error> {
    if let Some(l) = links.iter().find(|l| l.cfg == *cfg) {
        return Ok(l.clone());
    }
    let link = match prev.and_then(|p| p.links.iter().find(|l| l.cfg == *cfg)) {
        Some(l) => l.clone(),
        None => RedisLink::start(cfg)?,
    };
    links.push(link.clone());
    Ok(link)
}

/// The factory of one `quota` filter of `route` on one core.
pub fn factory(
    filter: &weir_config::QuotaFilter,
    shared: &Arc<SharedQuota>,
    core: usize,
    route: &weir_config::Route,
) -> Result<Rc<dyn FilterFactory>, Error> {
    Ok(Rc::new(filter::QuotaFactory::new(
        filter, shared, core, route,
    )?))
}
