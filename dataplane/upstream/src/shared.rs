//! What all cores share about a cluster: resolved addresses and health verdicts. Written off the
//! request path (the DNS thread, the health checker), read by the cores with plain relaxed loads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use weir_tls::{Connector, MaybeTls};

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
    /// The TLS client config, for a cluster with `tls` (built here, once, from its files).
    pub tls: Option<Connector>,
}

impl SharedCluster {
    /// Resolves every endpoint and builds the TLS config. Fails if an endpoint does not
    /// resolve, or the TLS files do not load.
    pub fn new(config: &weir_config::Cluster) -> Result<Self> {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| SharedEndpoint::new(e.address(), e.weight()).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let tls = match &config.tls {
            Some(t) => {
                let mut c = connector(t).map_err(Error::TlsConfig)?;
                if config.protocol == weir_config::UpstreamProtocol::H2 {
                    c = c.for_h2();
                }
                for e in &endpoints {
                    c.server_name(weir_tls::host_of(&e.address))
                        .map_err(Error::TlsConfig)?;
                }
                Some(c)
            }
            None => None,
        };
        Ok(SharedCluster {
            config: config.clone(),
            endpoints,
            tls,
        })
    }
}

/// The TLS client config of a `tls` object (a cluster's, or a provider's for its key probes).
pub fn connector(tls: &weir_config::UpstreamTls) -> weir_tls::Result<Connector> {
    Connector::new(&weir_tls::ClientOptions {
        sni: tls.sni.clone(),
        ca_file: tls.ca_file.clone(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
        insecure_skip_verify: tls.insecure_skip_verify,
    })
}

/// Opens a connection to `addr` for the endpoint `address` (`host:port`): TCP, then the TLS
/// handshake when `tls` is given (server name: the endpoint's host, or the `sni` override).
/// The caller bounds the whole in time.
pub async fn open(addr: SocketAddr, address: &str, tls: Option<&Connector>) -> Result<MaybeTls> {
    open_with(addr, address, tls, None).await
}

/// [`open`], writing `preface` (a PROXY protocol header) on the TCP connection first: before
/// the TLS handshake, where HAProxy and nginx read it.
pub async fn open_with(
    addr: SocketAddr,
    address: &str,
    tls: Option<&Connector>,
    preface: Option<Vec<u8>>,
) -> Result<MaybeTls> {
    let mut tcp = monoio::net::TcpStream::connect_addr(addr)
        .await
        .map_err(|e| Error::Connect(address.to_string(), e))?;
    let _ = tcp.set_nodelay(true);
    if let Some(p) = preface {
        let (r, _) = monoio::io::AsyncWriteRentExt::write_all(&mut tcp, p).await;
        r.map_err(|e| Error::Connect(address.to_string(), e))?;
    }
    match tls {
        None => Ok(MaybeTls::Plain(tcp)),
        Some(c) => c
            .connect(weir_tls::host_of(address), tcp)
            .await
            .map_err(|e| Error::Tls(address.to_string(), e)),
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
