//! `weir-filter`: the one interface every feature of the request path implements.
//!
//! A [`Filter`] has phases, called in this order for each request:
//!
//! ```text
//! on_request_headers → on_request_body (per chunk) → [on_request_trailers] → (upstream chosen) →
//! on_response_headers → on_response_body (per chunk, synchronous) → [on_response_trailers] →
//! on_log (always)
//! ```
//!
//! A request-side phase returns [`Action::Continue`] or [`Action::Respond`] (stop and answer: an
//! error, a redirect, a preflight, a cached response). A [`FilterFactory`] is built once per core
//! from a config snapshot and makes one filter per request, so a filter keeps per-request state in
//! `self` without locks. [`RequestCtx`] is the typed per-request context shared by all filters.
//!
//! Native filters stream. A filter that must see a body whole (to rewrite it) says so once, in
//! [`FilterFactory::needs`]; the runner checks a route's [`Needs`] once when the chain is built
//! and buffers that body only on such routes, calling [`Filter::on_request_body_whole`] /
//! [`Filter::on_response_body_whole`] with the body as `&mut BytesMut`. A request-head phase may
//! also return [`Action::Wait`] (a Wasm plugin's HTTP callout): the runner awaits the future, then
//! calls [`Filter::on_resume`], which decides as the phase would have. Routes whose filters need
//! neither run exactly the streaming path.
//!
//! A filter may also hold streamed body pieces back at run time (a Proxy-Wasm plugin answering
//! `StopIterationAndBuffer`): one that can says so in [`Needs`] (`request_body_hold`,
//! `response_body_hold`). On such routes the runner passes each piece of payload through the
//! chain as owned bytes, [`Filter::on_request_body_held`] / [`Filter::on_response_body_held`]:
//! a filter sees what it holds with the new piece after it, may rewrite it, and answers
//! [`Flow::Hold`] (keep it, show me the next piece with it) or [`Flow::Pass`] (it goes on, to the
//! next filter and out). The runner keeps each filter's held bytes, sends a head only once
//! something passed the whole chain (or the body ended), and frames what comes out anew; until
//! then the body callbacks are handed that waiting head, and may edit it.
//!
//! Trailers work the same way: a filter that reads or edits them says so in [`Needs`]
//! (`request_trailers`, `response_trailers`). On such routes only, when a chunked body (an
//! HTTP/1.1 one, or one bridged from an HTTP/2 stream or an HTTP/2 upstream) ends with a trailer
//! section, its fields are parsed and [`Filter::on_request_trailers`] /
//! [`Filter::on_response_trailers`] run (after the body's last chunk, before its end); the section
//! is written anew from what the filters left. A body without trailers calls neither. Other
//! routes forward the section as received, with the rest of the body.
//!
//! [`ProxyError`] is the single error of the request path: it knows which [`Side`] failed and
//! whether a retry may help, and it becomes an HTTP response in exactly one place,
//! [`ProxyError::to_response`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod context;
mod error;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

pub use context::{AiInfo, ClientCert, RequestCtx, Timings, TlsInfo, TokenUsage};
pub use error::{anthropic_type, openai_type, ErrorFormat, ProxyError, Side};

use bytes::{Bytes, BytesMut};
use weir_http::{Headers, RequestHead, ResponseHead};

/// What a request-side phase decided.
// Not boxed: `Continue` is returned by every phase of every filter, and only its tag is written;
// a box would cost an allocation on each `Respond`. (The size is `LocalResponse`'s, whose headers
// keep a parsed head's field positions inline.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Go on to the next filter and phase.
    Continue,
    /// Stop the request and send this response instead of proxying.
    Respond(LocalResponse),
    /// Suspend the request until this future is done, then ask [`Filter::on_resume`]. Allowed
    /// from `on_request_headers`, `on_request_body_whole` and `on_resume`; the streaming phases
    /// treat it as `Continue`.
    Wait(Waiting),
}

/// What a filter waits on (an HTTP callout, say); it keeps its own result for `on_resume`.
pub struct Waiting(pub Pin<Box<dyn Future<Output = ()>>>);

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiting")
    }
}

/// What a filter needs beyond the streaming phases. Asked once per route when its chain is built;
/// the default needs nothing, and a route whose filters need nothing takes the plain path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The whole request body, to read or rewrite it before it goes upstream.
    pub request_body: bool,
    /// The whole response body, to read or rewrite it before it goes downstream.
    pub response_body: bool,
    /// The request's trailer fields ([`Filter::on_request_trailers`]).
    pub request_trailers: bool,
    /// The response's trailer fields ([`Filter::on_response_trailers`]).
    pub response_trailers: bool,
    /// To hold request body pieces back at run time ([`Filter::on_request_body_held`]).
    pub request_body_hold: bool,
    /// To hold response body pieces back at run time ([`Filter::on_response_body_held`]).
    pub response_body_hold: bool,
}

impl Needs {
    /// Both: what either needs.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            request_body: self.request_body || other.request_body,
            response_body: self.response_body || other.response_body,
            request_trailers: self.request_trailers || other.request_trailers,
            response_trailers: self.response_trailers || other.response_trailers,
            request_body_hold: self.request_body_hold || other.request_body_hold,
            response_body_hold: self.response_body_hold || other.response_body_hold,
        }
    }

    /// Nothing beyond streaming.
    pub fn is_none(self) -> bool {
        self == Needs::default()
    }
}

/// What a filter decided on a body piece it may hold back ([`Filter::on_request_body_held`]).
// Not boxed, as `Action`: `Pass` is the common answer, and only its tag is written.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Flow {
    /// What the filter was shown (as it left it) goes on.
    Pass,
    /// Keep it: the filter is shown it again, with the next piece after it. At the body's end a
    /// hold passes (nothing more will come).
    Hold,
    /// Stop and answer with this response instead (when nothing went out yet; else the
    /// exchange is aborted with its status).
    Respond(LocalResponse),
}

/// A response made by the gateway (an error, a redirect, a preflight answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// Status code.
    pub status: u16,
    /// Fields (framing is added when written).
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

impl LocalResponse {
    /// A response with a body of the given content type.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = Headers::with_capacity(4);
        headers.append(
            Bytes::from_static(b"content-type"),
            Bytes::from_static(content_type.as_bytes()),
        );
        LocalResponse {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        LocalResponse {
            status,
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }
}

/// A filter: one instance per request, made by its [`FilterFactory`]. Every phase has a default
/// that does nothing, so a filter implements only the phases it needs.
pub trait Filter {
    /// The request head arrived; `req` may be changed (headers, target) before it is sent upstream.
    fn on_request_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        _req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// A piece of the request body payload passed (`end`: it was the last). Chunk framing is not
    /// included. Returning `Respond` stops the upload and answers instead.
    fn on_request_body(
        &mut self,
        _ctx: &mut RequestCtx,
        _chunk: &[u8],
        _end: bool,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// The upstream's response head arrived; it may be changed before it is sent downstream.
    fn on_response_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        _resp: &mut ResponseHead,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// A piece of the response payload is about to be written downstream. Synchronous and on the
    /// streaming hot path: inspect, count, never block. An error aborts the stream. `end`: the
    /// body ends here, said once per response: with the last piece when that piece is known to
    /// be the last (a length-delimited body), else in an empty piece after it.
    fn on_response_body(
        &mut self,
        _ctx: &mut RequestCtx,
        _chunk: &[u8],
        _end: bool,
    ) -> Result<(), ProxyError> {
        Ok(())
    }

    /// The request body ended with these trailer fields (only on routes whose chain needs
    /// request trailers, and only when the body had at least one). They may be read, changed,
    /// removed or added to; what is left is sent upstream in their place, less the fields a
    /// trailer may not carry (framing, hop-by-hop, `host`: see `weir_http::is_forbidden_trailer`),
    /// which are dropped. Called after the last `on_request_body` chunk, before its `end`.
    ///
    /// `Respond` answers with that response when the body was read whole first (the route also
    /// needs the request body: nothing was sent upstream yet). On a streamed upload the head and
    /// payload are already upstream: the upload is abandoned unfinished (the upstream never sees
    /// its end) and the client gets the response's status as an error, as a `Respond` from
    /// `on_request_body` does. `Wait` counts as `Continue`.
    fn on_request_trailers(
        &mut self,
        _ctx: &mut RequestCtx,
        _trailers: &mut Headers,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// The response body ended with these trailer fields (only on routes whose chain needs
    /// response trailers, and only when the body had at least one), before they are written
    /// downstream; they may be edited as in [`Filter::on_request_trailers`]. The head and payload
    /// are out: an error aborts the response (the client never sees its end). Called after the
    /// last `on_response_body` chunk, before its `end`.
    fn on_response_trailers(
        &mut self,
        _ctx: &mut RequestCtx,
        _trailers: &mut Headers,
    ) -> Result<(), ProxyError> {
        Ok(())
    }

    /// A piece of the request payload on a route whose chain may hold pieces back
    /// ([`Needs::request_body_hold`]), in place of [`Filter::on_request_body`]: `held` is what
    /// this filter held so far followed by the new piece (or just the new piece), and may be
    /// rewritten; `end`: the body ends with it. `head` is the request head while it still waits
    /// (nothing of the body has gone on yet), and the filter may edit it: it leaves with the
    /// first bytes out of the chain. `None` once it has left, or where the gateway makes the
    /// upstream's head itself (the AI path). The default shows the piece to `on_request_body`
    /// and passes it.
    fn on_request_body_held(
        &mut self,
        ctx: &mut RequestCtx,
        held: &mut BytesMut,
        end: bool,
        _head: Option<&mut RequestHead>,
    ) -> Result<Flow, ProxyError> {
        Ok(match self.on_request_body(ctx, held, end)? {
            Action::Respond(r) => Flow::Respond(r),
            Action::Continue | Action::Wait(_) => Flow::Pass,
        })
    }

    /// The response side of [`Filter::on_request_body_held`] ([`Needs::response_body_hold`]), in
    /// place of [`Filter::on_response_body`]: `head` is the response head while it waits for the
    /// chain's first bytes out (editable, status included). The default shows the piece to
    /// `on_response_body` and passes it.
    fn on_response_body_held(
        &mut self,
        ctx: &mut RequestCtx,
        held: &mut BytesMut,
        end: bool,
        _head: Option<&mut ResponseHead>,
    ) -> Result<Flow, ProxyError> {
        self.on_response_body(ctx, held, end)?;
        Ok(Flow::Pass)
    }

    /// The whole request body (only on routes whose chain needs it, after every chunk went past
    /// `on_request_body`); it may be rewritten in place. May `Respond` or `Wait`.
    fn on_request_body_whole(
        &mut self,
        _ctx: &mut RequestCtx,
        _body: &mut BytesMut,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// The whole response body (only on routes whose chain needs it), before its head is sent:
    /// head and body may be rewritten (the framing is made anew). May `Respond`.
    fn on_response_body_whole(
        &mut self,
        _ctx: &mut RequestCtx,
        _resp: &mut ResponseHead,
        _body: &mut BytesMut,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// What an [`Action::Wait`] waited on is done: decide as the phase that waited would have
    /// (`req` is the request head, which may still be changed).
    fn on_resume(
        &mut self,
        _ctx: &mut RequestCtx,
        _req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        Ok(Action::Continue)
    }

    /// The response went out (or failed); always called once. For logs and statistics.
    fn on_log(&mut self, _ctx: &RequestCtx) {}

    /// A local response (made by any filter or by the gateway) is about to be sent; a filter may add
    /// fields to it (CORS headers on an error, say). Default: leave it.
    fn on_local_response(&mut self, _ctx: &RequestCtx, _resp: &mut LocalResponse) {}
}

/// Makes the filter of one request. Built once per core per config generation.
pub trait FilterFactory {
    /// A short name for logs and metrics (`cors`, `ip_acl`, ...).
    fn name(&self) -> &'static str;
    /// A new filter for one request.
    fn create(&self) -> Box<dyn Filter>;
    /// What its filters need beyond streaming (see [`Needs`]). Asked once per route.
    fn needs(&self) -> Needs {
        Needs::default()
    }
}

/// The filters of one route, in order.
pub type FilterChain = Rc<[Rc<dyn FilterFactory>]>;
