//! The typed per-request context: what every filter and the access log may know of a request.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::error::{ErrorFormat, ProxyError};

/// Token counts of one LLM call, from the provider's usage or estimated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
    /// Counted by the gateway's tokenizer because the provider reported none.
    pub estimated: bool,
}

/// What the AI layer knows of a request: for quotas, metrics and logs.
#[derive(Debug, Clone, Default)]
pub struct AiInfo {
    /// The API called (`chat`, `messages`, `embeddings`, ...).
    pub api: &'static str,
    /// The model the client asked for.
    pub requested_model: Option<Rc<str>>,
    /// The provider that answered (or was last tried).
    pub provider: Option<Rc<str>>,
    /// Its `gen_ai.provider.name` (OpenTelemetry), for metrics; empty until a provider is tried.
    pub provider_name: &'static str,
    /// The model name sent to that provider.
    pub model: Option<Rc<str>>,
    /// The answer was streamed.
    pub stream: bool,
    /// Targets tried, in order (`provider/model`).
    pub tried: Vec<Rc<str>>,
    /// Tokens, once the answer ended.
    pub usage: Option<TokenUsage>,
    /// Estimated cost of those tokens in nano-units (1e-9) of the price table's currency, set
    /// when the request ends from the route's prices (None: the model has no price).
    pub cost_nano: Option<u64>,
    /// Time to the first token written to the client.
    pub first_token: Option<Instant>,
    /// Streams: the gaps between the chunks written to the client (inter-token latency).
    pub chunks: weir_metrics::ai::ChunkGaps,
    /// The whole JSON request body, set before the filters' end-of-body phase (so an `auth`
    /// filter can check the model and a `quota` filter can size the prompt). Shared, not copied.
    pub request: Option<bytes::Bytes>,
}

/// The TLS session of the client connection (set on TLS listeners).
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The SNI name the client sent.
    pub sni: Option<Box<str>>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The session was resumed.
    pub resumed: bool,
    /// The client certificate, verified against the listener's client CA (mutual TLS).
    pub client_cert: Option<ClientCert>,
}

/// The identity of a verified client certificate. Its text is safe to put in a header: control
/// characters are replaced when it is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject distinguished name (`CN=client,O=Example`).
    pub subject: Box<str>,
    /// The subject's common name.
    pub common_name: Option<Box<str>>,
    /// Subject alternative names (DNS names, URIs such as SPIFFE ids, e-mails, IP addresses).
    pub sans: Vec<Box<str>>,
    /// SHA-256 of the certificate, lower-case hex.
    pub fingerprint_sha256: Box<str>,
}

/// Moments of a request, for durations in logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// The request head was parsed.
    pub start: Instant,
    /// The upstream connection was ready and the request was sent.
    pub upstream_sent: Option<Instant>,
    /// The first byte of the response head arrived from upstream.
    pub upstream_first_byte: Option<Instant>,
    /// The last byte of the response went downstream.
    pub end: Option<Instant>,
}

/// Per-request context. Filled by the runner as the request advances; filters read it and may add
/// to it. Strings that repeat across requests (route, cluster) are shared `Rc<str>`.
#[derive(Debug)]
pub struct RequestCtx {
    /// `x-request-id`: the client's, or generated.
    pub request_id: String,
    /// The peer address of the client connection.
    pub client_addr: SocketAddr,
    /// The listener that accepted it.
    pub listener: Rc<str>,
    /// The worker (core) index.
    pub worker: usize,
    /// The matched route.
    pub route: Option<Rc<str>>,
    /// The cluster chosen.
    pub cluster: Option<Rc<str>>,
    /// The endpoint of the last attempt.
    pub endpoint: Option<SocketAddr>,
    /// Method, for logs.
    pub method: bytes::Bytes,
    /// Path and query as received, for logs.
    pub target: bytes::Bytes,
    /// Status sent downstream (0 until then).
    pub status: u16,
    /// Request payload bytes received.
    pub request_bytes: u64,
    /// Response payload bytes sent.
    pub response_bytes: u64,
    /// Retries made (attempts after the first).
    pub retries: u32,
    /// Timings.
    pub timings: Timings,
    /// The error that ended the request, if one did.
    pub error: Option<ProxyError>,
    /// The consumer the request was authenticated as (by an `auth` filter).
    pub consumer: Option<Rc<str>>,
    /// The id of the credential it used (a virtual key's id; never the secret).
    pub consumer_key: Option<Rc<str>>,
    /// Set by a quota filter that refused the request: the kind of limit (`requests`, `tokens`,
    /// `budget`, ...; a fixed set, since it becomes a label of
    /// `weir_gen_ai_quota_rejections_total`). Counted and logged when the request ends.
    pub quota_rejected: Option<&'static str>,
    /// The shape error responses take (set by routes that speak an LLM protocol).
    pub error_format: ErrorFormat,
    /// The AI layer's view of the request (None on plain proxy routes).
    pub ai: Option<Box<AiInfo>>,
    /// The client connection's TLS session (None on cleartext listeners).
    pub tls: Option<Rc<TlsInfo>>,
    /// The request came as an HTTP/2 stream (else HTTP/1.x).
    pub http2: bool,
}

impl RequestCtx {
    /// A context for a request that arrives now.
    pub fn new(
        request_id: String,
        client_addr: SocketAddr,
        listener: Rc<str>,
        worker: usize,
    ) -> Self {
        Self::new_at(Instant::now(), request_id, client_addr, listener, worker)
    }

    /// A context for a request that arrived at `start` (the data plane passes its event loop's
    /// reading for the turn that brought the head, so the request costs no clock reading of its own).
    pub fn new_at(
        start: Instant,
        request_id: String,
        client_addr: SocketAddr,
        listener: Rc<str>,
        worker: usize,
    ) -> Self {
        RequestCtx {
            request_id,
            client_addr,
            listener,
            worker,
            route: None,
            cluster: None,
            endpoint: None,
            method: bytes::Bytes::new(),
            target: bytes::Bytes::new(),
            status: 0,
            request_bytes: 0,
            response_bytes: 0,
            retries: 0,
            timings: Timings {
                start,
                upstream_sent: None,
                upstream_first_byte: None,
                end: None,
            },
            error: None,
            consumer: None,
            consumer_key: None,
            quota_rejected: None,
            error_format: ErrorFormat::Gateway,
            ai: None,
            tls: None,
            http2: false,
        }
    }
}
