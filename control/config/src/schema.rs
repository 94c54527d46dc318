//! The configuration schema: what a `weir.yaml` may contain. Every struct refuses unknown fields, so
//! a typo is an error that names the field, never a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Dur};

/// The whole gateway configuration: one snapshot of desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker threads (one per core); `0` or absent means one per available core.
    #[serde(default)]
    pub workers: usize,
    /// The monoio driver.
    #[serde(default)]
    pub driver: Driver,
    /// The admin listener: health and metrics.
    #[serde(default)]
    pub admin: Admin,
    /// The JSON access log on stdout.
    #[serde(default)]
    pub access_log: AccessLog,
    /// Metrics: bounds on label values.
    #[serde(default)]
    pub metrics: Metrics,
    /// Protocol limits applied to every listener (routes may lower the body limit).
    #[serde(default)]
    pub limits: Limits,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: Shutdown,
    /// Where clients connect.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Where requests go.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// LLM providers, used by routes with an `ai` action.
    #[serde(default)]
    pub providers: Vec<crate::ai::Provider>,
    /// Consumers: callers with credentials, permissions and quotas.
    #[serde(default)]
    pub consumers: Vec<crate::auth::Consumer>,
    /// Proxy-Wasm plugins, used by `wasm` filters of routes (or by every route when `global`).
    #[serde(default)]
    pub plugins: Vec<crate::plugin::Plugin>,
}

/// Which io driver the per-core runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    /// io_uring only.
    Uring,
    /// epoll only.
    Epoll,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of `/healthz/*` and `/metrics`; `null` turns the admin listener off.
    pub address: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: Some("127.0.0.1:9901".into()),
        }
    }
}

/// Metrics on the admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Distinct consumers with their own label on LLM series; later ones are counted as `other`.
    #[serde(default = "hundred")]
    pub max_consumers: usize,
    /// Distinct models with their own label on LLM series; later ones are counted as `other`.
    #[serde(default = "hundred")]
    pub max_models: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            max_consumers: 100,
            max_models: 100,
        }
    }
}

fn hundred() -> usize {
    100
}

/// The access log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// One JSON line per request on stdout.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog { enabled: true }
    }
}

fn yes() -> bool {
    true
}

/// HTTP/1.1 protocol limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest request line (method, target, version); longer is 414.
    pub max_request_line: ByteSize,
    /// Most request headers; more is 431.
    pub max_header_count: usize,
    /// Largest request head (request line and headers); larger is 431.
    pub max_header_bytes: ByteSize,
    /// Largest request body unless a route says otherwise; larger is 413.
    pub max_body_bytes: ByteSize,
    /// Largest upstream response head; larger is 502.
    pub max_response_header_bytes: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: ByteSize(8 << 10),
            max_header_count: 100,
            max_header_bytes: ByteSize(64 << 10),
            max_body_bytes: ByteSize(64 << 20),
            max_response_header_bytes: ByteSize(64 << 10),
        }
    }
}

/// Graceful shutdown on SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// How long in-flight requests and streams may take to finish after SIGTERM.
    pub drain_timeout: Dur,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            drain_timeout: Dur::secs(30),
        }
    }
}

/// A listening socket and the routes it serves, tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// `ip:port` to bind on every core (SO_REUSEPORT).
    pub address: String,
    /// Client-side timeouts.
    #[serde(default)]
    pub timeouts: ListenerTimeouts,
    /// TLS towards clients (absent: cleartext HTTP).
    #[serde(default)]
    pub tls: Option<crate::listener_tls::ListenerTls>,
    /// Accept the PROXY protocol from these balancers (and only from them).
    #[serde(default)]
    pub proxy_protocol: Option<crate::l4::ProxyProtocolIn>,
    /// A layer-4 listener: raw TCP (or TLS passed through by SNI) to clusters, no HTTP.
    #[serde(default)]
    pub tcp: Option<crate::l4::TcpProxy>,
    /// HTTP/2 towards clients: by ALPN on TLS, by prior knowledge on cleartext.
    #[serde(default)]
    pub http2: Http2,
    /// Hand a connection to the worker only once the client's first bytes arrived
    /// (`TCP_DEFER_ACCEPT`, one second): a worker wakes once per new connection, not twice.
    /// Absent: on for HTTP listeners (the client speaks first), off for `tcp` listeners (the
    /// server may speak first there). A client silent for a second is handed over without data.
    #[serde(default)]
    pub defer_accept: Option<bool>,
    /// Routes, first match wins.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl Listener {
    /// Whether accepts wait for the client's first bytes (see [`Listener::defer_accept`]).
    pub fn defers_accept(&self) -> bool {
        self.defer_accept.unwrap_or(self.tcp.is_none())
    }
}

/// HTTP/2 on a listener, and the bounds that keep one client from taking a worker: streams at
/// once, windows, frame and header sizes, and how many streams a client may reset before they
/// were answered (the rapid-reset attack) before its connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2 {
    /// Serve HTTP/2 (ALPN `h2` on TLS, the connection preface on cleartext).
    pub enabled: bool,
    /// Streams open at once per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Flow-control window of each stream (bytes a client may send ahead).
    pub initial_stream_window: ByteSize,
    /// Flow-control window of the connection.
    pub initial_connection_window: ByteSize,
    /// Largest frame payload accepted (16KiB..16MiB).
    pub max_frame_size: ByteSize,
    /// Largest header list of a request, decoded (HEADERS plus CONTINUATION frames).
    pub max_header_list_size: ByteSize,
    /// Streams reset by the client before they were answered, pending at once; past it the
    /// connection is closed with GOAWAY (ENHANCE_YOUR_CALM).
    pub max_pending_resets: usize,
    /// Response bytes buffered per stream while the client's window is shut.
    pub max_send_buffer: ByteSize,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            enabled: true,
            max_concurrent_streams: 128,
            initial_stream_window: ByteSize(256 << 10),
            initial_connection_window: ByteSize(1 << 20),
            max_frame_size: ByteSize(16 << 10),
            max_header_list_size: ByteSize(32 << 10),
            max_pending_resets: 32,
            max_send_buffer: ByteSize(256 << 10),
        }
    }
}

/// The protocol spoken to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, a pool of keep-alive connections per endpoint.
    #[default]
    Http1,
    /// HTTP/2 (cleartext with prior knowledge, or TLS with ALPN `h2`): one multiplexed
    /// connection per endpoint per core. gRPC services need it.
    H2,
}

/// Client-side timeouts of a listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerTimeouts {
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle: Dur,
    /// A request head must arrive whole within this (slowloris guard): 408.
    pub request_header: Dur,
}

impl Default for ListenerTimeouts {
    fn default() -> Self {
        ListenerTimeouts {
            idle: Dur::secs(60),
            request_header: Dur::secs(10),
        }
    }
}

/// A route: a match, an action, and the filters that run on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name within the listener, used in metrics and logs.
    pub name: String,
    /// What requests the route takes.
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    /// Proxy to this cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Answer directly.
    #[serde(default)]
    pub direct_response: Option<DirectResponse>,
    /// Answer with a redirect.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Serve the OpenAI and Anthropic APIs, routing each request by its model to a provider.
    #[serde(default)]
    pub ai: Option<crate::ai::AiRoute>,
    /// Rewrite of path and host before proxying.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Filters, in order.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
    /// Upstream-side timeouts.
    #[serde(default)]
    pub timeouts: RouteTimeouts,
    /// Retries of idempotent requests.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Request body limit of this route (overrides `limits.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
}

/// Route match conditions; all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Hosts: `api.example.com`, or `*.example.com` for any subdomain; empty means any host.
    #[serde(default)]
    pub host: Vec<String>,
    /// Path condition; absent means any path.
    #[serde(default)]
    pub path: Option<PathMatch>,
    /// Methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
    /// Query parameter conditions.
    #[serde(default)]
    pub query: Vec<ValueMatch>,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this, at a segment boundary when it ends without `/`.
    Prefix(String),
    /// The whole path matches this regular expression.
    Regex(String),
}

/// A condition on a named header or query parameter: `exact`, `regex`, or just `present`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// Header or parameter name (headers compare case-insensitively).
    pub name: String,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value matches this regular expression (whole value).
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: must be present; `false`: must be absent.
    #[serde(default)]
    pub present: Option<bool>,
}

/// A response made by the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// Status code.
    pub status: u16,
    /// Body text.
    #[serde(default)]
    pub body: String,
    /// Content type of the body.
    #[serde(default = "text_plain")]
    pub content_type: String,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn text_plain() -> String {
    "text/plain".into()
}

/// A redirect; parts not given keep the request's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "found")]
    pub status: u16,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// New host (may include a port).
    #[serde(default)]
    pub host: Option<String>,
    /// New path (the query is kept unless `strip_query`).
    #[serde(default)]
    pub path: Option<String>,
    /// Drop the query string.
    #[serde(default)]
    pub strip_query: bool,
}

fn found() -> u16 {
    302
}

/// Rewrite before proxying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replace the matched path prefix (route must match by prefix) with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Replace the path by a regex substitution (`$1` refers to groups).
    #[serde(default)]
    pub path_regex: Option<RegexRewrite>,
    /// Set the `Host` header sent upstream.
    #[serde(default)]
    pub host: Option<String>,
}

/// A regex substitution on the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    /// Pattern.
    pub pattern: String,
    /// Replacement, with `$1`, `${name}` groups.
    pub substitution: String,
}

/// Upstream-side timeouts of a route. Each answers 504 when it fires before the response began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteTimeouts {
    /// From sending the request to the first byte of the response head.
    pub first_byte: Dur,
    /// Longest silence between two reads while the response streams.
    pub idle: Dur,
    /// The whole exchange, head to last byte; `0` means none (long streams).
    pub total: Dur,
}

impl Default for RouteTimeouts {
    fn default() -> Self {
        RouteTimeouts {
            first_byte: Dur::secs(60),
            idle: Dur::secs(300),
            total: Dur::ms(0),
        }
    }
}

/// Retries: only for idempotent methods (or a request with no body yet sent), within a budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Additional attempts after the first.
    #[serde(default = "one")]
    pub attempts: u32,
    /// When to retry: `connect_failure`, `reset`, `timeout`, or a status code like `503`.
    #[serde(default = "default_retry_on")]
    pub on: Vec<RetryOn>,
    /// Retries may add at most this percentage of the route's requests (per core, 10 s window).
    #[serde(default = "twenty")]
    pub budget_percent: f64,
    /// Retries always allowed per second regardless of the budget (per core).
    #[serde(default = "three")]
    pub min_retries_per_second: u32,
}

fn one() -> u32 {
    1
}
fn twenty() -> f64 {
    20.0
}
fn three() -> u32 {
    3
}
fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::Named(RetryCondition::ConnectFailure)]
}

/// A retry condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryOn {
    /// A status code.
    Status(u16),
    /// A named condition.
    Named(RetryCondition),
}

/// Named retry conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryCondition {
    /// The upstream connection could not be made.
    ConnectFailure,
    /// The upstream closed or reset before a response head.
    Reset,
    /// The first byte did not come in time.
    Timeout,
}

/// A built-in filter on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterConfig {
    /// Add, set and remove request and response headers.
    Headers {
        /// On the request sent upstream.
        #[serde(default)]
        request: HeaderOps,
        /// On the response sent downstream.
        #[serde(default)]
        response: HeaderOps,
    },
    /// Cross-origin resource sharing, preflights answered by the gateway.
    Cors(Cors),
    /// Allow or deny client addresses by CIDR.
    IpAcl {
        /// When non-empty, only these may pass.
        #[serde(default)]
        allow: Vec<String>,
        /// These never pass (checked first).
        #[serde(default)]
        deny: Vec<String>,
    },
    /// Authenticate the caller as a consumer (key, basic, JWT, HMAC) and apply its permissions.
    Auth(crate::auth::AuthFilter),
    /// Limits on requests, tokens and spend.
    Quota(crate::quota::QuotaFilter),
    /// A request body limit (413 past it), for content-length and chunked bodies alike.
    SizeLimit {
        /// Largest body.
        max_request_bytes: ByteSize,
    },
    /// A Proxy-Wasm plugin of the top-level `plugins:` list.
    Wasm {
        /// Its name there.
        plugin: String,
    },
}

/// Header edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    /// Replace (or add) these.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append these, keeping existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove these.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// CORS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins: exact, `*`, or `*.example.com`.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    #[serde(default = "cors_methods")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`*` for any).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Preflight cache lifetime in seconds.
    #[serde(default)]
    pub max_age: Option<u32>,
    /// Allow credentials.
    #[serde(default)]
    pub allow_credentials: bool,
}

fn cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// A cluster of upstream endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// Endpoints: `ip:port` or `dns-name:port`, optionally with a weight.
    pub endpoints: Vec<Endpoint>,
    /// Load balancing.
    #[serde(default)]
    pub lb: LoadBalancing,
    /// TCP connect timeout: a failure is 502 (or a retry).
    #[serde(default = "connect_timeout")]
    pub connect_timeout: Dur,
    /// `http1` (default) or `h2` (gRPC services).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Per-core connection pools.
    #[serde(default)]
    pub pool: Pool,
    /// Active HTTP health checks.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Passive outlier ejection.
    #[serde(default)]
    pub outlier: Option<Outlier>,
    /// How often DNS names are resolved again (off the request path).
    #[serde(default = "dns_refresh")]
    pub dns_refresh: Dur,
    /// TLS towards the endpoints (absent: plain HTTP).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Send a PROXY protocol header (`v1` or `v2`) with the client's address first on each
    /// connection (before TLS). Each connection then serves one client connection: a `tcp`
    /// listener's, or an HTTP client's keep-alive requests (HTTP/1.1 clusters only). Health
    /// checks send a header that declares no client (v2 `LOCAL`, v1 `PROXY UNKNOWN`).
    #[serde(default)]
    pub proxy_protocol: Option<crate::l4::ProxyProtocolVersion>,
}

/// TLS towards upstream endpoints (a cluster's `tls`, or a provider's for an `https` base URL).
/// `tls: {}` is TLS with the system's roots plus the bundled public ones, the endpoint's host as
/// the server name, and no client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Server name sent (SNI) and verified, instead of each endpoint's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM CA bundle trusted *instead of* the default roots (a private CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM certificate chain presented to the upstream (mutual TLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<std::path::PathBuf>,
    /// Accept any certificate. Tests only: the data plane warns whenever it builds such a config.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn connect_timeout() -> Dur {
    Dur::secs(2)
}
fn dns_refresh() -> Dur {
    Dur::secs(30)
}

/// An endpoint, written as `"host:port"` or `{ address: "host:port", weight: 3 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Endpoint {
    /// Just an address, weight 1.
    Plain(String),
    /// An address with a weight.
    Weighted {
        /// `host:port`.
        address: String,
        /// Relative share of requests (1..=1000).
        #[serde(default = "weight_one")]
        weight: u32,
    },
}

fn weight_one() -> u32 {
    1
}

impl Endpoint {
    /// The `host:port` text.
    pub fn address(&self) -> &str {
        match self {
            Endpoint::Plain(a) | Endpoint::Weighted { address: a, .. } => a,
        }
    }
    /// The weight (1 when not given).
    pub fn weight(&self) -> u32 {
        match self {
            Endpoint::Plain(_) => 1,
            Endpoint::Weighted { weight, .. } => *weight,
        }
    }
}

/// Load-balancing policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum LoadBalancing {
    /// Smooth weighted round robin (plain round robin when all weights are equal).
    #[default]
    RoundRobin,
    /// Power of two choices on in-flight requests (per core), weighted.
    LeastRequest,
    /// A ring hash of a request key; the same key goes to the same endpoint while it is healthy.
    ConsistentHash {
        /// `header:NAME`, `cookie:NAME` or `source_ip`.
        hash_on: String,
    },
}

/// Connection pool limits (per core, per endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle: usize,
    /// Idle connections are closed after this.
    pub idle_timeout: Dur,
    /// Connections (busy and idle) per endpoint; `0` means unlimited. Past it: 503.
    pub max_connections: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            max_idle: 128,
            idle_timeout: Dur::secs(60),
            max_connections: 0,
        }
    }
}

/// Active health checking: a GET of `path` (HTTP/1.1, or HTTP/2 on a `protocol: h2` cluster),
/// or the gRPC health protocol (`grpc`, h2 clusters only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path requested with GET (required unless `grpc` is given).
    #[serde(default)]
    pub path: String,
    /// Ask `grpc.health.v1.Health/Check` instead of a GET: the endpoint passes when it answers
    /// `SERVING` with `grpc-status` 0.
    #[serde(default)]
    pub grpc: Option<GrpcHealthCheck>,
    /// Host header sent (default: the endpoint address).
    #[serde(default)]
    pub host: Option<String>,
    /// Time between checks.
    #[serde(default = "hc_interval")]
    pub interval: Dur,
    /// A check that takes longer fails.
    #[serde(default = "hc_timeout")]
    pub timeout: Dur,
    /// Passing checks in a row to re-admit.
    #[serde(default = "two")]
    pub healthy_threshold: u32,
    /// Failing checks in a row to eject.
    #[serde(default = "two")]
    pub unhealthy_threshold: u32,
    /// Statuses that pass (default 200..=399).
    #[serde(default)]
    pub expected_statuses: Vec<u16>,
}

/// The gRPC health protocol's request (`grpc.health.v1.HealthCheckRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcHealthCheck {
    /// The service asked about; empty: the server as a whole.
    pub service: String,
}

fn hc_interval() -> Dur {
    Dur::secs(5)
}
fn hc_timeout() -> Dur {
    Dur::secs(1)
}
fn two() -> u32 {
    2
}

/// Passive outlier ejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outlier {
    /// Consecutive failures (connect errors, 5xx) that eject an endpoint.
    pub consecutive_failures: u32,
    /// How long an ejection lasts (doubled on each repeat, up to 10×).
    pub ejection_time: Dur,
    /// Never eject more than this share of a cluster.
    pub max_ejection_percent: u32,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: 5,
            ejection_time: Dur::secs(30),
            max_ejection_percent: 50,
        }
    }
}
