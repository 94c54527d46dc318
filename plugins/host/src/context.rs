//! What a callback may see and change: the parts of the request or response moved in for the
//! duration of the call (no copies), the body buffer, the values behind properties, and what the
//! plugin asked for (a local response, callouts, continue).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use weir_filter::{LocalResponse, RequestCtx};
use weir_http::Headers;

/// Fields the gateway makes itself: a plugin cannot set them (no second framing smuggled in).
pub const MANAGED: [&[u8]; 8] = [
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
];

/// Whether `name` is a field a plugin may not set.
pub fn managed(name: &[u8]) -> bool {
    MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name))
}

/// The request head's parts, moved in while a request callback runs.
#[derive(Debug, Default)]
pub struct ReqParts {
    /// `:method`.
    pub method: Bytes,
    /// `:path` (with the query).
    pub target: Bytes,
    /// `:authority`.
    pub host: Bytes,
    /// The other fields.
    pub headers: Headers,
    /// Whether a plugin changed anything.
    pub changed: bool,
}

/// The response head's parts.
#[derive(Debug, Default)]
pub struct RespParts {
    /// `:status`.
    pub status: u16,
    /// The other fields.
    pub headers: Headers,
    /// Whether a plugin changed anything.
    pub changed: bool,
}

/// A body the plugin looks at: a chunk (read-only) or a whole buffered body (read-write).
#[derive(Debug)]
pub struct BodyBuf {
    /// `buffer::HTTP_REQUEST_BODY` or `HTTP_RESPONSE_BODY`.
    pub kind: i32,
    /// The bytes.
    pub data: BytesMut,
    /// `set_buffer_bytes` is allowed (a buffered body).
    pub writable: bool,
    /// Whether a plugin changed it.
    pub changed: bool,
}

/// The trailers of the request or the response, moved in while its trailer callback runs (the
/// only time map 1 or 3 holds fields).
#[derive(Debug)]
pub struct TrailerMap {
    /// `map::HTTP_REQUEST_TRAILERS` or `HTTP_RESPONSE_TRAILERS`.
    pub map: i32,
    /// The fields.
    pub fields: Headers,
}

/// A callout's answer, while `proxy_on_http_call_response` runs.
#[derive(Debug, Default)]
pub struct CallAnswer {
    /// Fields, `:status` first.
    pub headers: Vec<(Bytes, Bytes)>,
    /// Body.
    pub body: Bytes,
}

/// A callout a plugin dispatched.
#[derive(Debug)]
pub struct Callout {
    /// Token handed to the plugin.
    pub token: u32,
    /// Cluster name.
    pub cluster: String,
    /// Fields, pseudo-headers included.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout.
    pub timeout: std::time::Duration,
}

/// The request's values behind properties, taken from the [`RequestCtx`] (shared strings, no
/// copies).
#[derive(Debug, Default, Clone)]
pub struct Props {
    /// `source.address`.
    pub source: Option<SocketAddr>,
    /// `request.id`.
    pub request_id: Option<Rc<str>>,
    /// `route_name`.
    pub route: Option<Rc<str>>,
    /// `cluster_name`.
    pub cluster: Option<Rc<str>>,
    /// The consumer (`weir.consumer`).
    pub consumer: Option<Rc<str>>,
    /// Requested model (`weir.model`), provider (`weir.provider`).
    pub model: Option<Rc<str>>,
    /// Provider that answered.
    pub provider: Option<Rc<str>>,
    /// Input and output tokens.
    pub tokens: Option<(u64, u64)>,
    /// Method and target (kept for response-side callbacks).
    pub method: Bytes,
    /// Path and query.
    pub target: Bytes,
    /// Response status, once known.
    pub status: u16,
    /// The request came as an HTTP/2 stream (`request.protocol`).
    pub http2: bool,
    /// The client connection is TLS (`request.scheme`).
    pub tls: bool,
}

impl Props {
    /// Brings the values up to `ctx`'s now. A shared string or byte string is cloned only when
    /// `ctx` holds another one than last time (most callbacks of a request change nothing), and
    /// the request id is made once per request.
    pub fn refresh(&mut self, ctx: &RequestCtx) {
        fn shared(mine: &mut Option<Rc<str>>, now: Option<&Rc<str>>) {
            let same = match (mine.as_ref(), now) {
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                *mine = now.cloned();
            }
        }
        fn bytes(mine: &mut Bytes, now: &Bytes) {
            if mine.as_ptr() != now.as_ptr() || mine.len() != now.len() {
                *mine = now.clone();
            }
        }
        if self.request_id.is_none() {
            self.request_id = Some(ctx.request_id.as_str().into());
        }
        let ai = ctx.ai.as_deref();
        self.source = Some(ctx.client_addr);
        shared(&mut self.route, ctx.route.as_ref());
        shared(&mut self.cluster, ctx.cluster.as_ref());
        shared(&mut self.consumer, ctx.consumer.as_ref());
        shared(&mut self.model, ai.and_then(|a| a.requested_model.as_ref()));
        shared(&mut self.provider, ai.and_then(|a| a.provider.as_ref()));
        self.tokens = ai.and_then(|a| a.usage).map(|u| (u.input, u.output));
        bytes(&mut self.method, &ctx.method);
        bytes(&mut self.target, &ctx.target);
        self.status = ctx.status;
        self.http2 = ctx.http2;
        self.tls = ctx.tls.is_some();
    }
}

/// A request the plugin paused from a request callback without a callout: it waits until the
/// plugin continues it (`proxy_continue_stream`, or the 0.2.0 `proxy_continue_request`, from any
/// callback with its context effective, say a tick or a queue callback after
/// `proxy_set_effective_context`).
#[derive(Debug, Default)]
pub struct Paused {
    resumed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Paused {
    /// The plugin continued the request.
    pub fn resume(&self) {
        self.resumed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Whether it was continued.
    pub fn is_resumed(&self) -> bool {
        self.resumed.get()
    }

    /// Done once the plugin continues the request.
    pub fn resumed(self: Rc<Self>) -> Resumed {
        Resumed(self)
    }
}

/// See [`Paused::resumed`].
pub struct Resumed(Rc<Paused>);

impl Future for Resumed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_resumed() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Everything of the request a callback works on.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Request head (request-header callback).
    pub req: Option<ReqParts>,
    /// Response head (response-header callback).
    pub resp: Option<RespParts>,
    /// Body (body callbacks).
    pub body: Option<BodyBuf>,
    /// Trailers (trailer callbacks).
    pub trailers: Option<TrailerMap>,
    /// A callout's answer.
    pub answer: Option<CallAnswer>,
    /// Properties (the request's, shared with its filter; none in root callbacks).
    pub props: Option<Rc<Props>>,
    /// Set by `proxy_send_local_response`.
    pub local: Option<LocalResponse>,
    /// Dispatched callouts not yet sent.
    pub callouts: Vec<Callout>,
    /// `proxy_continue_stream` was called.
    pub resumed: bool,
    /// `proxy_close_stream` was called.
    pub closed: bool,
    /// Properties set by the plugin.
    pub set_props: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Exchange {
    /// Empties it for the next callback, field by field (resetting it whole would build an empty
    /// one and copy it over this one, per callback).
    pub fn clear(&mut self) {
        let Exchange {
            req,
            resp,
            body,
            trailers,
            answer,
            props,
            local,
            callouts,
            resumed,
            closed,
            set_props,
        } = self;
        *req = None;
        *resp = None;
        *body = None;
        *trailers = None;
        *answer = None;
        *props = None;
        *local = None;
        callouts.clear();
        *resumed = false;
        *closed = false;
        set_props.clear();
    }
}
