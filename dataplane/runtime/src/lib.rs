//! `weir-runtime`: the process around the request path.
//!
//! [`Gateway::start`] turns a validated config into a running data plane: it resolves clusters
//! into a [`Snapshot`], starts one pinned worker thread per core (each with its own monoio runtime
//! on the chosen driver and its own `SO_REUSEPORT` listeners: the kernel spreads connections, the
//! cores share nothing), and an admin thread for health, metrics and active health checks.
//!
//! [`Gateway::reload`] applies a new config with *prepare on every core, commit only if all
//! prepared*: in-flight requests finish on the state they started with, new ones see the new
//! generation, and clusters that did not change keep their pools. [`Gateway::shutdown`] drains:
//! stop accepting, let requests and streams finish within the drain timeout.
// One `setsockopt` that no safe wrapper offers (`worker::set_defer_accept`), with its SAFETY note.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod driver;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use weir_config::{Config, Driver};
use weir_metrics::Registry;
use weir_proxy::Snapshot;
use weir_upstream::SharedCluster;

pub use driver::{uring_available, Chosen};
pub use worker::InheritedSocket;

use admin::{AdminCommand, Health};
use worker::Command;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cluster could not be built (an endpoint did not resolve).
    #[error("cluster `{0}`: {1}")]
    Cluster(String, String),
    /// A listener's TLS could not be set up (a certificate or key file is bad).
    #[error("listener `{0}`: tls: {1}")]
    ListenerTls(String, String),
    /// An LLM provider could not be set up (a key's secret is missing).
    #[error("{0}")]
    Provider(String),
    /// A listener address could not be bound.
    #[error("listener `{0}` on {1}: {2}")]
    Bind(String, String, std::io::Error),
    /// A worker could not start or prepare.
    #[error("worker {0}: {1}")]
    Worker(usize, String),
    /// The reload changes something that needs a restart.
    #[error("{0}")]
    NeedsRestart(String),
    /// A thread could not be spawned.
    #[error("spawning a thread: {0}")]
    Spawn(std::io::Error),
    /// A Wasm plugin could not be read or compiled, or is not a Proxy-Wasm module.
    #[error("{0}")]
    Plugin(String),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Start-up overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Worker count (overrides the config; 0 = one per core).
    pub workers: Option<usize>,
    /// Driver (overrides the config).
    pub driver: Option<Driver>,
}

struct WorkerHandle {
    tx: flume::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// A running data plane.
pub struct Gateway {
    workers: Vec<WorkerHandle>,
    admin_tx: flume::Sender<AdminCommand>,
    admin_thread: Option<JoinHandle<()>>,
    health: Arc<Health>,
    snapshot: Mutex<Arc<Snapshot>>,
    dns_clusters: Arc<Mutex<Option<Vec<Arc<SharedCluster>>>>>,
    /// Where each listener is bound (port 0 resolved), in config order.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin listener's address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The driver the workers run on.
    pub driver: Chosen,
    /// Metrics of all cores.
    pub registry: Arc<Registry>,
}

/// Builds the shared part of a generation, reusing clusters whose config did not change.
fn snapshot(
    config: Arc<Config>,
    generation: u64,
    prev: Option<&Snapshot>,
    listen: Vec<(String, SocketAddr)>,
) -> Result<Snapshot> {
    let mut clusters = HashMap::new();
    for c in &config.clusters {
        let reuse = prev
            .and_then(|p| p.clusters.get(&c.name))
            .filter(|old| old.config == *c)
            .cloned();
        let shared = match reuse {
            Some(s) => s,
            None => Arc::new(
                SharedCluster::new(c).map_err(|e| Error::Cluster(c.name.clone(), e.to_string()))?,
            ),
        };
        clusters.insert(c.name.clone(), shared);
    }
    let mut providers = HashMap::new();
    for p in &config.providers {
        // Kept while its config is unchanged: key health and cached tokens survive a reload.
        let reuse = prev
            .and_then(|s| s.providers.get(&p.name))
            .filter(|old| old.config == *p)
            .cloned();
        let shared = match reuse {
            Some(s) => s,
            None => weir_ai::SharedProvider::new(p).map_err(|e| Error::Provider(e.to_string()))?,
        };
        if let Some(cc) = shared.cluster_config() {
            let reuse = prev
                .and_then(|s| s.clusters.get(&cc.name))
                .filter(|old| old.config == cc)
                .cloned();
            let cluster = match reuse {
                Some(c) => c,
                None => Arc::new(
                    SharedCluster::new(&cc)
                        .map_err(|e| Error::Cluster(cc.name.clone(), e.to_string()))?,
                ),
            };
            clusters.insert(cc.name.clone(), cluster);
        }
        providers.insert(p.name.clone(), shared);
    }
    let mut listener_tls = HashMap::new();
    for l in &config.listeners {
        let Some(tls) = &l.tls else { continue };
        // Kept while its config is unchanged: the certificates are watched on disk anyway.
        let reuse = prev
            .filter(|p| {
                p.config.listeners.iter().any(|pl| {
                    pl.name == l.name
                        && pl.tls.as_ref() == Some(tls)
                        && pl.http2.enabled == l.http2.enabled
                })
            })
            .and_then(|p| p.listener_tls.get(&l.name))
            .cloned();
        let shared = match reuse {
            Some(s) => {
                // A new generation also looks at the files now, not at the watcher's next poll.
                s.certs().reload_changed();
                s
            }
            None => Arc::new(
                weir_tls::ServerTls::new(&l.name, &server_options(tls, l.http2.enabled))
                    .map_err(|e| Error::ListenerTls(l.name.clone(), e.to_string()))?,
            ),
        };
        listener_tls.insert(l.name.clone(), shared);
    }
    let auth = weir_auth::SharedAuth::new(&config, prev.map(|p| &p.auth))
        .map_err(|e| Error::Provider(e.to_string()))?;
    let quota = weir_quota::SharedQuota::new(&config, prev.map(|p| &p.quota))
        .map_err(|e| Error::Provider(e.to_string()))?;
    // Compiled once here, on the main thread, for every core (a plugin whose bytes and settings
    // did not change is kept as it is); the disk cache spares a restart the compile.
    let cache = weir_wasm::engine::default_cache_dir();
    let mut plugins = HashMap::new();
    for p in &config.plugins {
        let plugin =
            weir_wasm::Plugin::build(p, Some(&cache), prev.and_then(|s| s.plugins.get(&p.name)))
                .map_err(|e| Error::Plugin(e.to_string()))?;
        plugins.insert(p.name.clone(), plugin);
    }
    Ok(Snapshot {
        generation,
        config,
        clusters,
        listen,
        providers,
        auth,
        quota,
        listener_tls,
        plugins,
    })
}

/// A listener's `tls` config as weir-tls options.
fn server_options(t: &weir_config::ListenerTls, http2: bool) -> weir_tls::ServerOptions {
    weir_tls::ServerOptions {
        certificates: t
            .certificates
            .iter()
            .map(|c| weir_tls::CertSpec {
                cert: c.cert.clone(),
                key: c.key.clone(),
                names: c.names.clone(),
            })
            .collect(),
        tls13_only: t.min_version == weir_config::TlsVersion::Tls13,
        // `h2` only while the listener serves HTTP/2.
        alpn: t
            .alpn
            .iter()
            .filter(|p| http2 || p.as_str() != "h2")
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        session_tickets: t.session_tickets,
        session_cache: t.session_cache,
        handshake_timeout: t.handshake_timeout.get(),
        client_ca: t.client_auth.as_ref().map(|c| c.ca_file.clone()),
        client_cert_optional: t
            .client_auth
            .as_ref()
            .is_some_and(|c| c.mode == weir_config::ClientAuthMode::Optional),
    }
}

/// The admin listener, with SO_REUSEPORT: during a binary upgrade the new process binds it while
/// the old one still answers health checks on it.
fn bind_admin(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::other(format!("`{addr}` is not ip:port")))?;
    let s = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    s.bind(&sa.into())?;
    s.listen(128)?;
    Ok(s.into())
}

/// Whether a configured listener address (maybe with port 0) is the bound `addr`.
fn addr_matches(configured: &str, addr: SocketAddr) -> bool {
    match configured.parse::<SocketAddr>() {
        Ok(c) => c.ip() == addr.ip() && (c.port() == 0 || c.port() == addr.port()),
        Err(_) => false,
    }
}

/// Binds a listener address once on the main thread to learn its port when it is 0; workers then
/// bind the same port with SO_REUSEPORT. The probe socket never listens, so it takes no connection.
fn resolve_listener(name: &str, addr: &str) -> Result<(SocketAddr, Option<std::net::TcpListener>)> {
    let sa: SocketAddr = addr.parse().map_err(|_| {
        Error::Bind(
            name.into(),
            addr.into(),
            std::io::Error::other("not ip:port"),
        )
    })?;
    if sa.port() != 0 {
        return Ok((sa, None));
    }
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        None,
    )
    .and_then(|s| {
        s.set_reuse_port(true)?;
        s.set_reuse_address(true)?;
        s.bind(&sa.into())?;
        Ok(s)
    })
    .map_err(|e| Error::Bind(name.into(), addr.into(), e))?;
    let bound = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| {
            Error::Bind(
                name.into(),
                addr.into(),
                std::io::Error::other("no local address"),
            )
        })?;
    Ok((bound, Some(sock.into())))
}

impl Gateway {
    /// Starts workers, listeners and the admin thread on `config` as generation `generation`.
    /// `inherited` are listening sockets handed over by a previous process (binary upgrade): they
    /// are spread over the workers, and listeners they do not cover are bound anew.
    pub fn start(
        config: Config,
        generation: u64,
        opts: &Options,
        inherited: Vec<InheritedSocket>,
    ) -> Result<Gateway> {
        let config = Arc::new(config);
        let registry = Arc::new(Registry::default());
        registry
            .ai()
            .set_limits(config.metrics.max_consumers, config.metrics.max_models);
        let n = match opts.workers.unwrap_or(config.workers) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let driver = opts.driver.unwrap_or(config.driver);
        let cores = core_affinity::get_core_ids().unwrap_or_default();

        let mut probes = Vec::new();
        let mut listeners = Vec::new();
        for l in &config.listeners {
            // A listener handed over keeps the address it had (its port 0 was resolved then).
            let (addr, probe) = match inherited
                .iter()
                .find(|s| s.name == l.name && addr_matches(&l.address, s.addr))
            {
                Some(s) => (s.addr, None),
                None => resolve_listener(&l.name, &l.address)?,
            };
            probes.extend(probe);
            listeners.push((l.name.clone(), addr));
        }
        let snap = Arc::new(snapshot(
            config.clone(),
            generation,
            None,
            listeners.clone(),
        )?);
        // Spread inherited sockets over the workers; a worker may get several.
        let mut per_worker: Vec<Vec<InheritedSocket>> = (0..n).map(|_| Vec::new()).collect();
        for (k, s) in inherited.into_iter().enumerate() {
            per_worker[k % n].push(s);
        }

        let (started_tx, started_rx) = flume::unbounded();
        let mut workers = Vec::with_capacity(n);
        for (i, inherited) in per_worker.into_iter().enumerate() {
            let (tx, rx) = flume::unbounded();
            let spec = worker::SendSpec {
                index: i,
                core: (!cores.is_empty()).then(|| cores[i % cores.len()]),
                driver,
                snapshot: snap.clone(),
                registry: registry.clone(),
                inherited,
            };
            let st = started_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("weir-worker-{i}"))
                .spawn(move || worker::run(spec, rx, st))
                .map_err(Error::Spawn)?;
            workers.push(WorkerHandle {
                tx,
                thread: Some(thread),
            });
        }
        let mut chosen = Chosen::Epoll;
        let mut failure = None;
        for i in 0..n {
            match started_rx.recv() {
                Ok(Ok(c)) => chosen = c,
                Ok(Err(e)) => failure = Some(Error::Worker(i, e)),
                Err(_) => failure = Some(Error::Worker(i, "exited".into())),
            }
        }
        drop(probes);

        let health = Arc::new(Health {
            ready: false.into(),
            draining: false.into(),
        });
        let (admin_tx, admin_rx) = flume::unbounded();
        let mut admin_addr = None;
        let mut admin_listener = None;
        if failure.is_none() {
            if let Some(a) = &config.admin.address {
                match bind_admin(a) {
                    Ok(l) => {
                        admin_addr = l.local_addr().ok();
                        let _ = l.set_nonblocking(true);
                        admin_listener = Some(l);
                    }
                    Err(e) => failure = Some(Error::Bind("admin".into(), a.clone(), e)),
                }
            }
        }
        let mut gw = Gateway {
            workers,
            admin_tx,
            admin_thread: None,
            health: health.clone(),
            snapshot: Mutex::new(snap.clone()),
            dns_clusters: Arc::new(Mutex::new(Some(snap.clusters.values().cloned().collect()))),
            listeners,
            admin_addr,
            driver: chosen,
            registry: registry.clone(),
        };
        if let Some(e) = failure {
            gw.stop_workers(Duration::ZERO);
            return Err(e);
        }
        let reg = registry.clone();
        let admin_thread = std::thread::Builder::new()
            .name("weir-admin".into())
            .spawn(move || admin::run(admin_listener, reg, health, admin_rx))
            .map_err(Error::Spawn)?;
        gw.admin_thread = Some(admin_thread);
        let _ = gw.admin_tx.send(AdminCommand::Clusters(
            snap.clusters.values().cloned().collect(),
        ));
        let _ = gw.admin_tx.send(AdminCommand::Providers(
            snap.providers.values().cloned().collect(),
        ));
        let dns = gw.dns_clusters.clone();
        weir_upstream::spawn_dns_refresher(move || {
            dns.lock().unwrap_or_else(PoisonError::into_inner).clone()
        })
        .map_err(Error::Spawn)?;
        weir_quota::admin::publish(&snap.quota);
        gw.health.ready.store(true, Relaxed);
        Ok(gw)
    }

    /// The generation being served.
    pub fn generation(&self) -> u64 {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Applies a new validated config as `generation` on every core, or on none: every core
    /// prepares (routes, filters, clusters, new listeners bound), and only if all did, every core
    /// commits; the call returns once every core serves the new generation.
    pub fn reload(&self, config: Config, generation: u64) -> Result<u64> {
        let mut cur = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        if config.workers != cur.config.workers || config.driver != cur.config.driver {
            return Err(Error::NeedsRestart(
                "`workers` and `driver` take effect at the next start".into(),
            ));
        }
        if config.admin != cur.config.admin {
            return Err(Error::NeedsRestart(
                "`admin` takes effect at the next start".into(),
            ));
        }
        // Listeners that stay keep their bound address; new ones get theirs (port 0 resolved).
        let mut probes = Vec::new();
        let mut listen = Vec::new();
        for l in &config.listeners {
            let kept = cur
                .listen
                .iter()
                .zip(&cur.config.listeners)
                .find(|((n, _), old)| *n == l.name && old.address == l.address)
                .map(|((_, a), _)| *a);
            let addr = match kept {
                Some(a) => a,
                None => {
                    let (a, probe) = resolve_listener(&l.name, &l.address)?;
                    probes.extend(probe);
                    a
                }
            };
            listen.push((l.name.clone(), addr));
        }
        let next = Arc::new(snapshot(Arc::new(config), generation, Some(&cur), listen)?);
        let (tx, rx) = flume::unbounded();
        for w in &self.workers {
            let _ = w.tx.send(Command::Prepare(next.clone(), tx.clone()));
        }
        let mut failure = None;
        for i in 0..self.workers.len() {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(Error::Worker(i, e)),
                Err(_) => failure = Some(Error::Worker(i, "did not answer prepare".into())),
            }
        }
        drop(probes);
        if let Some(e) = failure {
            for w in &self.workers {
                let _ = w.tx.send(Command::Abort);
            }
            return Err(e);
        }
        let (done_tx, done_rx) = flume::unbounded();
        for w in &self.workers {
            let _ = w.tx.send(Command::Commit(done_tx.clone()));
        }
        for _ in 0..self.workers.len() {
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
        let clusters: Vec<_> = next.clusters.values().cloned().collect();
        *self
            .dns_clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(clusters.clone());
        let _ = self.admin_tx.send(AdminCommand::Clusters(clusters));
        let _ = self.admin_tx.send(AdminCommand::Providers(
            next.providers.values().cloned().collect(),
        ));
        self.registry.ai().set_limits(
            next.config.metrics.max_consumers,
            next.config.metrics.max_models,
        );
        weir_quota::admin::publish(&next.quota);
        *cur = next;
        Ok(cur.generation)
    }

    /// The config being served.
    pub fn config(&self) -> Arc<Config> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .clone()
    }

    /// Duplicates of every listening socket of every worker, for a new process taking over.
    pub fn export_listeners(&self) -> Vec<InheritedSocket> {
        let (tx, rx) = flume::unbounded();
        for w in &self.workers {
            let _ = w.tx.send(Command::Export(tx.clone()));
        }
        let mut out = Vec::new();
        for _ in 0..self.workers.len() {
            if let Ok(mut v) = rx.recv_timeout(Duration::from_secs(5)) {
                out.append(&mut v);
            }
        }
        out
    }

    fn stop_workers(&mut self, drain: Duration) {
        for w in &self.workers {
            let _ = w.tx.send(Command::Drain(drain));
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Graceful shutdown: readiness turns 503, workers stop accepting and finish what is in flight
    /// within the config's drain timeout; then everything stops.
    pub fn shutdown(mut self) {
        self.health.draining.store(true, Relaxed);
        let drain = self
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .shutdown
            .drain_timeout
            .get();
        self.stop_workers(drain);
        *self
            .dns_clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let _ = self.admin_tx.send(AdminCommand::Stop);
        if let Some(t) = self.admin_thread.take() {
            let _ = t.join();
        }
    }
}
