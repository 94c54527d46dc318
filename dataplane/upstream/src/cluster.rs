//! A cluster on one core: its endpoints with their pools, the load balancer, passive outlier
//! ejection. Everything here is `Rc`/`Cell`: one core, no locks.
//!
//! An endpoint's pool is one LIFO list of idle connections shared by every request of the core.
//! A cluster with `proxy_protocol` keeps, beside it, one list per downstream connection
//! ([`ClientConn`]): its connections start with that client's PROXY header, so they serve that
//! client's requests only, and go when it closes ([`Cluster::close_client`]) or when they idle
//! out. Its shared list holds the gateway's own connections (plugin callouts), whose header
//! declares no client. Other clusters never touch the per-client lists.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_config::LoadBalancing;
use weir_metrics::{bump, EndpointStats, Registry};

use weir_tls::MaybeTls;

use crate::error::{Error, Result};
use crate::lb::{HashOn, Lb};
use crate::proxy_protocol::ClientConn;
use crate::shared::{open_with, SharedCluster, SharedEndpoint};

/// An idle pooled connection.
struct Idle {
    stream: MaybeTls,
    peer: SocketAddr,
    since: Instant,
}

/// An endpoint on one core.
pub struct Endpoint {
    /// Shared facts: address, DNS answer, health verdict.
    pub shared: Arc<SharedEndpoint>,
    /// Counters of this core.
    pub stats: Arc<EndpointStats>,
    idle: RefCell<VecDeque<Idle>>,
    /// Idle connections by the downstream connection they speak for (`proxy_protocol` clusters).
    by_client: RefCell<HashMap<u64, Vec<Idle>>>,
    /// Connections open (busy and idle).
    open: Cell<usize>,
    /// Requests in flight (least-request balancing).
    pub(crate) in_flight: Cell<u32>,
    failures: Cell<u32>,
    ejected_until: Cell<Option<Instant>>,
    ejections: Cell<u32>,
}

impl Endpoint {
    /// The configured `host:port`.
    pub fn address(&self) -> &str {
        &self.shared.address
    }

    /// Usable now: health check passing and not ejected by outlier detection.
    pub fn is_available(&self, now: Instant) -> bool {
        self.shared.healthy.load(Relaxed) && self.ejected_until.get().is_none_or(|t| t <= now)
    }
}

/// A connection to an endpoint, checked out of the pool or new.
pub struct UpstreamConn {
    /// The socket: plain TCP, or TLS for a cluster with `tls` (pooled as such: a reused
    /// connection needs no new handshake).
    pub stream: MaybeTls,
    /// Where it goes.
    pub endpoint: Rc<Endpoint>,
    /// It came from the pool (so it may have been closed by the peer meanwhile).
    pub reused: bool,
    /// The peer address.
    pub peer: SocketAddr,
    /// The downstream connection it is kept for ([`ClientConn::id`]): a `proxy_protocol`
    /// cluster's connection that carries that client's header. `None`: any request's.
    pub client: Option<u64>,
}

/// A cluster on one core.
pub struct Cluster {
    /// Name.
    pub name: Rc<str>,
    /// The shared part this core's cluster was built from.
    pub shared: Arc<SharedCluster>,
    /// Endpoints in config order.
    pub endpoints: Vec<Rc<Endpoint>>,
    lb: Lb,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    max_connections: usize,
    outlier: Option<weir_config::Outlier>,
    /// `protocol: h2` (read once per request on the request path, so kept here).
    h2: bool,
    /// The PROXY header sent first on each connection (connections kept per client).
    proxy_protocol: Option<weir_config::ProxyProtocolVersion>,
}

impl Cluster {
    /// Builds the per-core state of a cluster.
    pub fn new(shared: Arc<SharedCluster>, core: usize, registry: &Registry) -> Self {
        let cfg = &shared.config;
        let endpoints: Vec<Rc<Endpoint>> = shared
            .endpoints
            .iter()
            .map(|e| {
                registry.health(&cfg.name, &e.address, e.healthy.clone());
                Rc::new(Endpoint {
                    shared: e.clone(),
                    stats: registry.endpoint(core, &cfg.name, &e.address),
                    idle: RefCell::new(VecDeque::new()),
                    by_client: RefCell::new(HashMap::new()),
                    open: Cell::new(0),
                    in_flight: Cell::new(0),
                    failures: Cell::new(0),
                    ejected_until: Cell::new(None),
                    ejections: Cell::new(0),
                })
            })
            .collect();
        let weights: Vec<u32> = endpoints.iter().map(|e| e.shared.weight).collect();
        let lb = match &cfg.lb {
            LoadBalancing::RoundRobin => Lb::round_robin(&weights),
            LoadBalancing::LeastRequest => Lb::LeastRequest,
            LoadBalancing::ConsistentHash { hash_on } => {
                let names: Vec<&str> = endpoints.iter().map(|e| e.address()).collect();
                Lb::ring(&names, &weights, HashOn::parse(hash_on))
            }
        };
        Cluster {
            name: cfg.name.as_str().into(),
            lb,
            connect_timeout: cfg.connect_timeout.get(),
            max_idle: cfg.pool.max_idle,
            idle_timeout: cfg.pool.idle_timeout.get(),
            max_connections: cfg.pool.max_connections,
            outlier: cfg.outlier.clone(),
            h2: cfg.protocol == weir_config::UpstreamProtocol::H2,
            proxy_protocol: cfg.proxy_protocol,
            endpoints,
            shared,
        }
    }

    /// The connect timeout (a TCP connect, a TLS handshake; an h2 handshake too).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether the endpoints speak HTTP/2 (`protocol: h2`).
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// Whether connections start with a PROXY header (`proxy_protocol`), so a client's
    /// requests take [`pooled_for`](Cluster::pooled_for) and [`acquire_for`](Cluster::acquire_for).
    #[inline]
    pub fn sends_proxy_header(&self) -> bool {
        self.proxy_protocol.is_some()
    }

    /// What consistent hashing hashes, if this cluster uses it.
    pub fn hash_on(&self) -> Option<&HashOn> {
        self.lb.hash_on()
    }

    /// Picks an endpoint for a request, avoiding `tried` when others are available. `key` is the
    /// consistent-hash key (when the policy has one).
    pub fn pick(&self, key: Option<&[u8]>, tried: &[usize]) -> Result<(usize, Rc<Endpoint>)> {
        self.pick_at(Instant::now(), key, tried)
    }

    /// [`pick`](Cluster::pick) at `now`, a clock reading the caller already has (the request
    /// path reads the clock a few times per request, not once per step: on a VM a reading can
    /// cost as much as a small request's parsing).
    pub fn pick_at(
        &self,
        now: Instant,
        key: Option<&[u8]>,
        tried: &[usize],
    ) -> Result<(usize, Rc<Endpoint>)> {
        let ok = |i: usize| self.endpoints[i].is_available(now) && !tried.contains(&i);
        let idx = self
            .lb
            .pick(&self.endpoints, key, &ok)
            .or_else(|| {
                // Everything untried is down: a retry may go back to one already tried.
                let ok = |i: usize| self.endpoints[i].is_available(now);
                self.lb.pick(&self.endpoints, key, &ok)
            })
            .ok_or_else(|| Error::NoHealthyEndpoint(self.name.to_string()))?;
        Ok((idx, self.endpoints[idx].clone()))
    }

    /// A connection to `ep`: a pooled idle one, or a new one within the connect timeout.
    pub async fn acquire(&self, ep: &Rc<Endpoint>) -> Result<UpstreamConn> {
        self.acquire_at(Instant::now(), ep).await
    }

    /// [`acquire`](Cluster::acquire) at `now` (see [`pick_at`](Cluster::pick_at)). For the
    /// gateway's own requests (a plugin's callout): on a `proxy_protocol` cluster, a new
    /// connection's header declares no client.
    pub async fn acquire_at(&self, now: Instant, ep: &Rc<Endpoint>) -> Result<UpstreamConn> {
        if let Some(c) = self.pooled(now, ep) {
            return Ok(c);
        }
        self.connect_new(ep, None).await
    }

    /// A connection to `ep` for a request of `client`: on a `proxy_protocol` cluster, one kept
    /// for that client connection or a new one that starts with its header; on any other, as
    /// [`acquire_at`](Cluster::acquire_at).
    pub async fn acquire_for(
        &self,
        now: Instant,
        ep: &Rc<Endpoint>,
        client: ClientConn,
    ) -> Result<UpstreamConn> {
        if let Some(c) = self.pooled_for(now, ep, &client) {
            return Ok(c);
        }
        self.connect_new(ep, Some(client)).await
    }

    /// A new connection to `ep` (never a pooled one) within the connect timeout (a `tcp`
    /// listener's connection carries one client's bytes only). On a `proxy_protocol` cluster it
    /// starts with the PROXY header of `client` (`None`: one that declares no client) and is
    /// kept for that client when released.
    pub async fn connect_new(
        &self,
        ep: &Rc<Endpoint>,
        client: Option<ClientConn>,
    ) -> Result<UpstreamConn> {
        if self.max_connections > 0 && ep.open.get() >= self.max_connections {
            return Err(Error::Overflow(ep.address().to_string()));
        }
        let addr = ep
            .shared
            .connect_addr()
            .ok_or_else(|| Error::Resolve(ep.address().to_string(), "no addresses".into()))?;
        ep.open.set(ep.open.get() + 1);
        // TCP connect, the PROXY header and, for TLS, the handshake: all within the connect
        // timeout.
        let tls = self.shared.tls.as_ref();
        let preface = self
            .proxy_protocol
            .map(|v| crate::proxy_protocol::header(v, client.as_ref()));
        let open = open_with(addr, ep.address(), tls, preface);
        let res = monoio::time::timeout(self.connect_timeout, open).await;
        let stream = match res {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ep.open.set(ep.open.get() - 1);
                bump(&ep.stats.connect_failures, 1);
                return Err(e);
            }
            Err(_) => {
                ep.open.set(ep.open.get() - 1);
                bump(&ep.stats.connect_failures, 1);
                return Err(Error::ConnectTimeout(ep.address().to_string()));
            }
        };
        bump(&ep.stats.connects, 1);
        ep.stats.active_add(1);
        Ok(UpstreamConn {
            stream,
            endpoint: ep.clone(),
            reused: false,
            peer: addr,
            client: client
                .filter(|_| self.proxy_protocol.is_some())
                .map(|c| c.id),
        })
    }

    /// A pooled idle connection to `ep` that is not too old at `now`, if there is one: the
    /// no-wait part of [`acquire_at`](Cluster::acquire_at), for callers that await the rest only
    /// when they must.
    pub fn pooled(&self, now: Instant, ep: &Rc<Endpoint>) -> Option<UpstreamConn> {
        let mut idle = ep.idle.borrow_mut();
        while let Some(c) = idle.pop_back() {
            if let Some(conn) = self.checkout(now, ep, c, None) {
                return Some(conn);
            }
        }
        None
    }

    /// [`pooled`](Cluster::pooled) for a request of `client`: on a `proxy_protocol` cluster,
    /// only a connection kept for that client connection.
    #[inline]
    pub fn pooled_for(
        &self,
        now: Instant,
        ep: &Rc<Endpoint>,
        client: &ClientConn,
    ) -> Option<UpstreamConn> {
        if self.proxy_protocol.is_none() {
            return self.pooled(now, ep);
        }
        let mut by_client = ep.by_client.borrow_mut();
        let idle = by_client.get_mut(&client.id)?;
        while let Some(c) = idle.pop() {
            if let Some(conn) = self.checkout(now, ep, c, Some(client.id)) {
                return Some(conn);
            }
        }
        by_client.remove(&client.id);
        None
    }

    /// An idle connection taken off a pool: in use if it is not too old at `now`, else closed.
    #[inline]
    fn checkout(
        &self,
        now: Instant,
        ep: &Rc<Endpoint>,
        c: Idle,
        client: Option<u64>,
    ) -> Option<UpstreamConn> {
        ep.stats.idle_add(-1);
        if now.duration_since(c.since) < self.idle_timeout {
            ep.stats.active_add(1);
            return Some(UpstreamConn {
                stream: c.stream,
                endpoint: ep.clone(),
                reused: true,
                peer: c.peer,
                client,
            });
        }
        ep.open.set(ep.open.get() - 1);
        None
    }

    /// Returns a connection: to the pool when `reusable` and there is room, else it is closed.
    pub fn release(&self, conn: UpstreamConn, reusable: bool) {
        self.release_at(Instant::now(), conn, reusable);
    }

    /// [`release`](Cluster::release) at `now`, when the connection went idle. A connection kept
    /// for a client goes back to that client's list (`pool.max_idle` applies to each list).
    pub fn release_at(&self, now: Instant, conn: UpstreamConn, reusable: bool) {
        let ep = conn.endpoint;
        ep.stats.active_add(-1);
        let idle = Idle {
            stream: conn.stream,
            peer: conn.peer,
            since: now,
        };
        let kept = match conn.client {
            None => {
                let mut list = ep.idle.borrow_mut();
                let room = reusable && list.len() < self.max_idle;
                if room {
                    list.push_back(idle);
                }
                room
            }
            Some(id) if reusable => {
                let mut by_client = ep.by_client.borrow_mut();
                let list = by_client.entry(id).or_default();
                let room = list.len() < self.max_idle;
                if room {
                    list.push(idle);
                }
                room
            }
            Some(_) => false,
        };
        if kept {
            ep.stats.idle_add(1);
        } else {
            ep.open.set(ep.open.get() - 1);
        }
    }

    /// Closes the idle connections kept for the downstream connection `id` (it closed). One that
    /// is busy now comes back to the pool when its response ends, and idles out from there.
    pub fn close_client(&self, id: u64) {
        if self.proxy_protocol.is_none() {
            return;
        }
        for ep in &self.endpoints {
            let gone = ep.by_client.borrow_mut().remove(&id);
            if let Some(list) = gone {
                let n = list.len();
                ep.stats.idle_add(-(n as i64));
                ep.open.set(ep.open.get() - n);
            }
        }
    }

    /// Takes a connection out of the pool's accounting for good (a tunnel after an upgrade owns it
    /// from now on); the stream is the caller's to close.
    pub fn detach(&self, conn: UpstreamConn) -> MaybeTls {
        let ep = conn.endpoint;
        ep.stats.active_add(-1);
        ep.open.set(ep.open.get() - 1);
        conn.stream
    }

    /// Closes idle connections older than the idle timeout; the per-core sweeper calls this.
    pub fn sweep_idle(&self) {
        let now = Instant::now();
        for ep in &self.endpoints {
            let mut idle = ep.idle.borrow_mut();
            let before = idle.len();
            idle.retain(|c| now.duration_since(c.since) < self.idle_timeout);
            let mut closed = before - idle.len();
            let mut by_client = ep.by_client.borrow_mut();
            by_client.retain(|_, list| {
                let before = list.len();
                list.retain(|c| now.duration_since(c.since) < self.idle_timeout);
                closed += before - list.len();
                !list.is_empty()
            });
            if closed > 0 {
                ep.stats.idle_add(-(closed as i64));
                ep.open.set(ep.open.get() - closed);
            }
        }
    }

    /// Closes every idle connection (the cluster left the config, or the process drains).
    pub fn close_idle(&self) {
        for ep in &self.endpoints {
            let mut idle = ep.idle.borrow_mut();
            let mut by_client = ep.by_client.borrow_mut();
            let n = idle.len() + by_client.values().map(Vec::len).sum::<usize>();
            idle.clear();
            by_client.clear();
            ep.stats.idle_add(-(n as i64));
            ep.open.set(ep.open.get() - n);
        }
    }

    /// How many endpoints the cluster has.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// A request to `ep` starts.
    pub fn begin(&self, ep: &Endpoint) {
        ep.in_flight.set(ep.in_flight.get() + 1);
        ep.stats.in_flight_add(1);
        bump(&ep.stats.requests, 1);
    }

    /// A request to `ep` ended; `failed` feeds outlier detection (connect errors, 5xx, resets).
    pub fn end(&self, ep: &Endpoint, failed: bool) {
        ep.in_flight.set(ep.in_flight.get().saturating_sub(1));
        ep.stats.in_flight_add(-1);
        self.outcome(ep, failed);
    }

    /// Records a success or failure of `ep` for outlier detection.
    pub fn outcome(&self, ep: &Endpoint, failed: bool) {
        let Some(o) = &self.outlier else { return };
        if !failed {
            ep.failures.set(0);
            return;
        }
        let n = ep.failures.get() + 1;
        ep.failures.set(n);
        if n < o.consecutive_failures {
            return;
        }
        let now = Instant::now();
        let ejected = self
            .endpoints
            .iter()
            .filter(|e| e.ejected_until.get().is_some_and(|t| t > now))
            .count();
        if (ejected + 1) * 100 > self.endpoints.len() * o.max_ejection_percent as usize {
            return;
        }
        let times = ep.ejections.get() + 1;
        ep.ejections.set(times);
        ep.failures.set(0);
        let d = o.ejection_time.get() * times.min(10);
        ep.ejected_until.set(Some(now + d));
        bump(&ep.stats.ejections, 1);
        tracing::warn!(cluster = %self.name, endpoint = %ep.address(), seconds = d.as_secs_f64(), "endpoint ejected after consecutive failures");
    }
}
