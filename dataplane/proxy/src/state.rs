//! The per-core state of one config generation: compiled routes, filter factories and clusters.
//! Built by each core from a [`Snapshot`] (the *prepare* step of a reload), swapped in whole by
//! [`crate::Worker::commit`]. Clusters whose shared part did not change are carried over with their
//! connection pools.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use weir_config::{Config, RetryCondition, RetryOn};
use weir_filter::{FilterChain, FilterFactory, LocalResponse, Needs};
use weir_http::HeadLimits;
use weir_metrics::{ListenerStats, Registry, RouteStats};
use weir_route::{Rewriter, RouteTable};
use weir_upstream::{Cluster, SharedCluster};

use crate::retry::RetryBudget;

/// What a generation is made of, shared by all cores (built once on the main thread).
#[derive(Debug)]
pub struct Snapshot {
    /// Generation number.
    pub generation: u64,
    /// The validated config.
    pub config: Arc<Config>,
    /// Clusters with resolved endpoints, by name.
    pub clusters: HashMap<String, Arc<SharedCluster>>,
    /// Listener names and the addresses they are bound to (port 0 resolved), in config order.
    pub listen: Vec<(String, std::net::SocketAddr)>,
    /// LLM providers with their key pools, by name.
    pub providers: HashMap<String, Arc<weir_ai::SharedProvider>>,
    /// Consumers and their credentials, shared by the `auth` filters of all cores.
    pub auth: Arc<weir_auth::SharedAuth>,
    /// Quota pools, shared by the `quota` filters of all cores.
    pub quota: Arc<weir_quota::SharedQuota>,
    /// TLS of the listeners that have it, by listener name (certificates loaded, watched).
    pub listener_tls: HashMap<String, Arc<weir_tls::ServerTls>>,
    /// Wasm plugins, compiled, by name.
    pub plugins: HashMap<String, Arc<weir_wasm::Plugin>>,
}

/// What a route does.
pub enum RouteAction {
    /// Proxy to this cluster.
    Proxy(Rc<Cluster>),
    /// Answer this.
    Direct(LocalResponse),
    /// Redirect.
    Redirect(weir_config::Redirect),
    /// Serve the LLM APIs, routing by model to providers.
    Ai(Rc<weir_ai::AiService>),
}

/// Retry policy of a route, compiled.
pub struct RetryPolicy {
    /// Attempts after the first.
    pub attempts: u32,
    /// On connect failure.
    pub connect_failure: bool,
    /// On a reset before the response head.
    pub reset: bool,
    /// On a first-byte timeout.
    pub timeout: bool,
    /// On these statuses.
    pub statuses: Vec<u16>,
    /// Per-core budget.
    pub budget: RetryBudget,
}

/// A route compiled for one core.
pub struct RouteState {
    /// Name.
    pub name: Rc<str>,
    /// Action.
    pub action: RouteAction,
    /// Path/host rewrite.
    pub rewrite: Option<Rewriter>,
    /// Filters (the global plugins first).
    pub filters: FilterChain,
    /// What the filters need beyond streaming (whole bodies): asked once, here.
    pub needs: Needs,
    /// Time to the first byte of the response head.
    pub first_byte_timeout: Duration,
    /// Longest silence while streaming.
    pub idle_timeout: Duration,
    /// The whole exchange (None: unlimited).
    pub total_timeout: Option<Duration>,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// Body limit.
    pub max_body: u64,
    /// Counters.
    pub stats: Arc<RouteStats>,
    /// Cluster name, for logs (empty when not proxying).
    pub cluster_name: Rc<str>,
    /// `ai` routes: the prices that estimate a request's cost (its first quota filter's
    /// `prices` over the shipped table).
    pub prices: Option<Rc<crate::RoutePrices>>,
}

/// A listener's routes on one core.
pub struct ListenerState {
    /// Name.
    pub name: Rc<str>,
    /// Address it is bound to (text, as configured).
    pub address: String,
    /// Route matching.
    pub table: RouteTable,
    /// Routes, in table order.
    pub routes: Vec<RouteState>,
    /// Keep-alive idle timeout.
    pub idle_timeout: Duration,
    /// Request head timeout.
    pub header_timeout: Duration,
    /// Counters of requests that matched no route.
    pub unrouted: Arc<RouteStats>,
    /// TLS towards clients (None: cleartext).
    pub tls: Option<ListenerTls>,
    /// Connection-level counters (TLS, PROXY protocol and `tcp` listeners).
    pub conn_stats: Option<Arc<ListenerStats>>,
    /// The PROXY protocol: which sources may send it (None: not accepted).
    pub proxy_in: Option<ProxyIn>,
    /// A `tcp` listener's clusters (None: HTTP).
    pub tcp: Option<crate::l4::TcpState>,
    /// HTTP/2 limits (None: HTTP/2 off).
    pub http2: Option<weir_h2::ServerLimits>,
    /// Its routes (or its `tcp` clusters) reach a cluster with `proxy_protocol`: the PROXY header
    /// needs the address each connection reached, read at its accept.
    pub proxy_out: bool,
    /// The address it is bound to (port 0 resolved), when the snapshot says.
    pub bound: Option<std::net::SocketAddr>,
}

/// The PROXY protocol accepted on a listener.
pub struct ProxyIn {
    /// Balancers allowed to connect.
    pub trusted: Vec<ipnet::IpNet>,
    /// The header's deadline.
    pub timeout: Duration,
}

/// A listener's TLS on one core.
pub struct ListenerTls {
    /// The listener's TLS, shared by the cores.
    pub shared: Arc<weir_tls::ServerTls>,
    /// This core's acceptor (its own session cache).
    pub acceptor: weir_tls::Acceptor,
    /// The header that carries the client certificate's subject upstream.
    pub forward_header: Option<Box<str>>,
}

/// Everything one core needs to serve a generation.
pub struct CoreState {
    /// Generation.
    pub generation: u64,
    /// Listeners in config order.
    pub listeners: Vec<ListenerState>,
    /// Clusters by name.
    pub clusters: HashMap<String, Rc<Cluster>>,
    /// Head limits.
    pub limits: HeadLimits,
    /// Largest upstream response head.
    pub max_response_head: usize,
    /// Access log on.
    pub access_log: bool,
    /// This core's plugin instances, by name (kept by the next generation when unchanged).
    pub plugins: HashMap<String, Rc<weir_wasm::PluginCore>>,
    /// The clusters with `proxy_protocol`, whose pools keep connections per client connection.
    pub proxy_clusters: Vec<Rc<Cluster>>,
}

/// Why a core could not prepare a generation.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A route table did not compile.
    #[error("listener `{0}`: {1}")]
    Routes(String, String),
    /// A filter could not be built.
    #[error("route `{0}`: filter: {1}")]
    Filter(String, String),
    /// A route names a cluster that is not in the snapshot.
    #[error("route `{0}`: cluster `{1}` is not available")]
    Cluster(String, String),
    /// An `ai` route could not be compiled.
    #[error("route `{0}`: {1}")]
    Ai(String, String),
    /// A Wasm plugin could not start on this core.
    #[error("{0}")]
    Plugin(String),
}

impl CoreState {
    /// Builds this core's state for `snap`, reusing clusters of `prev` whose shared part is the same.
    pub fn build(
        snap: &Snapshot,
        core: usize,
        registry: &Registry,
        prev: Option<&CoreState>,
    ) -> Result<CoreState, PrepareError> {
        let cfg = &snap.config;
        let mut clusters = HashMap::new();
        for (name, shared) in &snap.clusters {
            let reuse = prev
                .and_then(|p| p.clusters.get(name))
                .filter(|c| Arc::ptr_eq(&c.shared, shared))
                .cloned();
            let cluster =
                reuse.unwrap_or_else(|| Rc::new(Cluster::new(shared.clone(), core, registry)));
            clusters.insert(name.clone(), cluster);
        }
        let mut plugins = HashMap::new();
        for (name, plugin) in &snap.plugins {
            let reuse = prev
                .and_then(|p| p.plugins.get(name))
                .filter(|c| Arc::ptr_eq(c.plugin(), plugin))
                .cloned();
            let core_plugin = match reuse {
                Some(c) => c,
                None => weir_wasm::PluginCore::new(
                    plugin.clone(),
                    core,
                    Some(Rc::new(crate::callout::ClusterCallouts::new(&clusters))),
                )
                .map_err(|e| PrepareError::Plugin(e.to_string()))?,
            };
            plugins.insert(name.clone(), core_plugin);
        }
        // Global plugins in config order, run before each route's own filters.
        let global: Vec<Rc<dyn FilterFactory>> = cfg
            .plugins
            .iter()
            .filter(|p| p.global)
            .filter_map(|p| plugins.get(&p.name))
            .map(|c| Rc::new(weir_wasm::WasmFactory::new(c.clone())) as Rc<dyn FilterFactory>)
            .collect();
        let mut listeners = Vec::with_capacity(cfg.listeners.len());
        for l in &cfg.listeners {
            let matches: Vec<&weir_config::RouteMatch> =
                l.routes.iter().map(|r| &r.matches).collect();
            let table = RouteTable::new(&matches)
                .map_err(|e| PrepareError::Routes(l.name.clone(), e.to_string()))?;
            let mut routes = Vec::with_capacity(l.routes.len());
            for r in &l.routes {
                routes.push(build_route(
                    r, &l.name, snap, &clusters, &plugins, &global, core, registry,
                )?);
            }
            let tls = snap.listener_tls.get(&l.name).map(|shared| {
                // Same TLS as before: keep this core's acceptor and its session cache.
                let acceptor = prev
                    .and_then(|p| p.listeners.iter().find(|pl| pl.name.as_ref() == l.name))
                    .and_then(|pl| pl.tls.as_ref())
                    .filter(|t| Arc::ptr_eq(&t.shared, shared))
                    .map_or_else(|| shared.acceptor(), |t| t.acceptor.clone());
                ListenerTls {
                    shared: shared.clone(),
                    acceptor,
                    forward_header: l
                        .tls
                        .as_ref()
                        .and_then(|t| t.client_auth.as_ref())
                        .and_then(|c| c.forward_header.as_deref())
                        .map(|h| h.to_ascii_lowercase().into_boxed_str()),
                }
            });
            let proxy_in = l.proxy_protocol.as_ref().map(|p| ProxyIn {
                trusted: p
                    .trusted
                    .iter()
                    .filter_map(|t| weir_config::l4::parse_cidr(t))
                    .collect(),
                timeout: p.timeout.get(),
            });
            let tcp = l
                .tcp
                .as_ref()
                .map(|t| crate::l4::TcpState::new(t, &clusters))
                .transpose()
                .map_err(|c| PrepareError::Cluster(l.name.clone(), c))?;
            let conn_stats = (tls.is_some() || proxy_in.is_some() || tcp.is_some())
                .then(|| registry.listener(core, &l.name));
            let sends = |name: &String| clusters.get(name).is_some_and(|c| c.sends_proxy_header());
            let proxy_out = l
                .routes
                .iter()
                .filter_map(|r| r.cluster.as_ref())
                .any(sends)
                || l.tcp.as_ref().is_some_and(|t| {
                    t.cluster
                        .iter()
                        .chain(t.sni.iter().map(|r| &r.cluster))
                        .any(sends)
                });
            listeners.push(ListenerState {
                tls,
                conn_stats,
                proxy_in,
                tcp,
                name: l.name.as_str().into(),
                address: l.address.clone(),
                table,
                routes,
                idle_timeout: l.timeouts.idle.get(),
                header_timeout: l.timeouts.request_header.get(),
                unrouted: registry.route(core, &l.name, "", ""),
                http2: l.http2.enabled.then(|| http2_limits(&l.http2)),
                proxy_out,
                bound: snap
                    .listen
                    .iter()
                    .find(|(n, _)| *n == l.name)
                    .map(|(_, a)| *a),
            });
        }
        let proxy_clusters = clusters
            .values()
            .filter(|c| c.sends_proxy_header())
            .cloned()
            .collect();
        Ok(CoreState {
            proxy_clusters,
            generation: snap.generation,
            listeners,
            clusters,
            limits: HeadLimits {
                max_request_line: cfg.limits.max_request_line.0 as usize,
                max_header_count: cfg.limits.max_header_count,
                max_header_bytes: cfg.limits.max_header_bytes.0 as usize,
            },
            max_response_head: cfg.limits.max_response_header_bytes.0 as usize,
            access_log: cfg.access_log.enabled,
            plugins,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn build_route(
    r: &weir_config::Route,
    listener: &str,
    snap: &Snapshot,
    clusters: &HashMap<String, Rc<Cluster>>,
    plugins: &HashMap<String, Rc<weir_wasm::PluginCore>>,
    global: &[Rc<dyn FilterFactory>],
    core: usize,
    registry: &Registry,
) -> Result<RouteState, PrepareError> {
    let cfg: &Config = &snap.config;
    let action = if let Some(c) = &r.cluster {
        let cl = clusters
            .get(c)
            .ok_or_else(|| PrepareError::Cluster(r.name.clone(), c.clone()))?;
        RouteAction::Proxy(cl.clone())
    } else if let Some(d) = &r.direct_response {
        let mut resp = LocalResponse::empty(d.status);
        resp.headers.append(
            Bytes::from_static(b"content-type"),
            Bytes::from(d.content_type.clone()),
        );
        for (k, v) in &d.headers {
            resp.headers
                .append(Bytes::from(k.to_ascii_lowercase()), Bytes::from(v.clone()));
        }
        resp.body = Bytes::from(d.body.clone());
        RouteAction::Direct(resp)
    } else if let Some(rd) = &r.redirect {
        RouteAction::Redirect(rd.clone())
    } else if let Some(ai) = &r.ai {
        let svc = weir_ai::AiService::new(ai, &snap.providers)
            .map_err(|e| PrepareError::Ai(r.name.clone(), e.to_string()))?;
        RouteAction::Ai(svc)
    } else {
        // Validation guarantees one action; an empty route answers 404 rather than failing a core.
        RouteAction::Direct(LocalResponse::empty(404))
    };
    let rewrite = r
        .rewrite
        .as_ref()
        .map(|rw| Rewriter::new(rw, &r.matches))
        .transpose()
        .map_err(|e| PrepareError::Routes(r.name.clone(), e.to_string()))?;
    let own = r
        .filters
        .iter()
        .map(|f| {
            let built = match f {
                weir_config::FilterConfig::Wasm { plugin } => plugins
                    .get(plugin)
                    .map(|c| {
                        Rc::new(weir_wasm::WasmFactory::new(c.clone())) as Rc<dyn FilterFactory>
                    })
                    .ok_or_else(|| format!("no plugin `{plugin}`")),
                weir_config::FilterConfig::Auth(a) => {
                    weir_auth::factory(a, &snap.auth, core).map_err(|e| e.to_string())
                }
                weir_config::FilterConfig::Quota(q) => {
                    weir_quota::factory(q, &snap.quota, core, r).map_err(|e| e.to_string())
                }
                other => weir_filters::build(other).map_err(|e| e.to_string()),
            };
            built.map_err(|e| PrepareError::Filter(r.name.clone(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filters: Vec<Rc<dyn FilterFactory>> = global.iter().cloned().chain(own).collect();
    let needs = filters
        .iter()
        .fold(Needs::default(), |n, f| n.union(f.needs()));
    let retry = r.retry.as_ref().map(|rt| RetryPolicy {
        attempts: rt.attempts,
        connect_failure: rt
            .on
            .contains(&RetryOn::Named(RetryCondition::ConnectFailure)),
        reset: rt.on.contains(&RetryOn::Named(RetryCondition::Reset)),
        timeout: rt.on.contains(&RetryOn::Named(RetryCondition::Timeout)),
        statuses: rt
            .on
            .iter()
            .filter_map(|o| match o {
                RetryOn::Status(s) => Some(*s),
                RetryOn::Named(_) => None,
            })
            .collect(),
        budget: RetryBudget::new(rt.budget_percent, rt.min_retries_per_second),
    });
    let cluster_name: Rc<str> = r.cluster.as_deref().unwrap_or("").into();
    let prices = r.ai.as_ref().map(|_| {
        let own = r.filters.iter().find_map(|f| match f {
            weir_config::FilterConfig::Quota(q) => Some(&q.prices),
            _ => None,
        });
        Rc::new(crate::RoutePrices::new(weir_quota::prices::Prices::new(
            own.unwrap_or(&Default::default()),
        )))
    });
    let total = r.timeouts.total.get();
    Ok(RouteState {
        name: r.name.as_str().into(),
        action,
        rewrite,
        filters: filters.into(),
        needs,
        first_byte_timeout: r.timeouts.first_byte.get(),
        idle_timeout: r.timeouts.idle.get(),
        total_timeout: (!total.is_zero()).then_some(total),
        retry,
        max_body: r.max_body_bytes.unwrap_or(cfg.limits.max_body_bytes).0,
        stats: registry.route(core, listener, &r.name, &cluster_name),
        cluster_name,
        prices,
    })
}

/// A listener's `http2` as the h2 server's limits (validated ranges: every value fits).
fn http2_limits(h: &weir_config::Http2) -> weir_h2::ServerLimits {
    let u32_of = |b: weir_config::ByteSize| u32::try_from(b.0).unwrap_or(u32::MAX);
    weir_h2::ServerLimits {
        max_concurrent_streams: h.max_concurrent_streams,
        initial_stream_window: u32_of(h.initial_stream_window),
        initial_connection_window: u32_of(h.initial_connection_window),
        max_frame_size: u32_of(h.max_frame_size),
        max_header_list_size: u32_of(h.max_header_list_size),
        max_pending_resets: h.max_pending_resets,
        max_send_buffer: usize::try_from(h.max_send_buffer.0).unwrap_or(usize::MAX),
    }
}
