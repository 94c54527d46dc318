//! What all cores share about a cluster: resolved addresses and health verdicts. Written off the
//! request path (the DNS thread, the health checker), read by the cores with plain relaxed loads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// An endpoint as all cores see it.
#[derive(Debug)]
pub struct SharedEndpoint {
    /// `host:port` as configured.
    pub address: String,
    /// Weight from the config.
    pub weight: u32,
    /// The name is an IP literal: never re-resolved.
    pub literal: bool,
    resolved: Mutex<Arc<[SocketAddr]>>,
    next: AtomicUsize,
    /// Active health check verdict (true when no check is configured).
    pub healthy: Arc<AtomicBool>,
}

impl SharedEndpoint {
    /// Resolves `address` now; an address that does not resolve is an error (the config is refused).
    pub fn new(address: &str, weight: u32) -> Result<Self> {
        let literal = address.parse::<SocketAddr>().is_ok();
        let addrs = resolve(address)?;
        Ok(SharedEndpoint {
            address: address.to_string(),
            weight,
            literal,
            resolved: Mutex::new(addrs),
            next: AtomicUsize::new(0),
            healthy: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The address to connect to next (rotating over what DNS returned). Called per new connection,
    /// not per request.
    pub fn connect_addr(&self) -> Option<SocketAddr> {
        let addrs = self
            .resolved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed) % addrs.len();
        Some(addrs[i])
    }

    /// Resolves again; keeps the old addresses if resolution fails (a DNS hiccup must not take
    /// an endpoint away).
    pub fn refresh(&self) {
        if self.literal {
            return;
        }
        match resolve(&self.address) {
            Ok(addrs) => {
                let mut cur = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
                if *cur != addrs {
                    tracing::info!(endpoint = %self.address, addrs = ?addrs, "DNS answer changed");
                    *cur = addrs;
                }
            }
            Err(e) => {
                tracing::warn!(endpoint = %self.address, error = %e, "DNS refresh failed; keeping the last answer")
            }
        }
    }
}

fn resolve(address: &str) -> Result<Arc<[SocketAddr]>> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| Error::Resolve(address.to_string(), e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Resolve(address.to_string(), "no addresses".into()));
    }
    Ok(addrs.into())
}

/// A cluster as all cores see it, built once per config change of that cluster.
#[derive(Debug)]
pub struct SharedCluster {
    /// The cluster's config (compared on reload: unchanged clusters keep this object).
    pub config: weir_config::Cluster,
    /// Endpoints in config order.
    pub endpoints: Vec<Arc<SharedEndpoint>>,
}

impl SharedCluster {
    /// Resolves every endpoint. Fails if any does not resolve.
    pub fn new(config: &weir_config::Cluster) -> Result<Self> {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| SharedEndpoint::new(e.address(), e.weight()).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SharedCluster {
            config: config.clone(),
            endpoints,
        })
    }
}

/// Re-resolves DNS names of the clusters every `dns_refresh`, on its own thread (getaddrinfo
/// blocks). Stops when `clusters` returns `None`.
pub fn spawn_dns_refresher(
    clusters: impl Fn() -> Option<Vec<Arc<SharedCluster>>> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-dns".into())
        .spawn(move || {
            let mut last: std::collections::HashMap<String, Instant> = Default::default();
            loop {
                let Some(list) = clusters() else { return };
                let now = Instant::now();
                for c in &list {
                    let due = last
                        .get(&c.config.name)
                        .is_none_or(|t| now.duration_since(*t) >= c.config.dns_refresh.get());
                    if due && c.endpoints.iter().any(|e| !e.literal) {
                        for e in &c.endpoints {
                            e.refresh();
                        }
                        last.insert(c.config.name.clone(), now);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
}
