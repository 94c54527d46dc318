//! HTTP/2 towards upstreams: the exchange of a request routed to a `protocol: h2` cluster (gRPC
//! services), over one multiplexed connection per endpoint per core.
//!
//! The request comes from the HTTP/1.1 request path (a client's own connection, or an h2 stream
//! through its bridge): its head becomes h2 HEADERS (forwarding fields added as on the HTTP/1.1
//! path), and its body is streamed up while the response streams down, both at once, so a
//! bidirectional gRPC stream flows message by message. The response goes to the client as
//! HTTP/1.1, chunked when its length is unknown, its trailers (`grpc-status`) in the chunked
//! trailer section, which the h2 bridge turns back into a trailing HEADERS frame. On routes whose
//! filters read trailers (`Needs`), the response's trailers pass their trailer phase first, and
//! the client's request trailers go up as HTTP/2 trailers after theirs.
//!
//! Connections are opened with the cluster's connect timeout and TLS (ALPN `h2`), kept in the
//! worker's map while they live, and shared by every request of the core to that endpoint; h2
//! queues a request while the server's stream limit is reached.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use monoio::io::Splitable;
use smallvec::SmallVec;
use weir_filter::{Action, Filter, LocalResponse, ProxyError, RequestCtx, Side};
use weir_http::{BodyKind, Headers, RequestHead, ResponseHead, Version};
use weir_upstream::{Cluster, Endpoint, SharedCluster};

use crate::conn::Downstream;
use crate::forward::{
    body_piece_verdict, body_too_large, client_gone, fail, finish, refused_body, Scope,
};
use crate::hold::{framing, BodyHead, Out, Reframe, Stages};
use crate::io::{within, BODY_READ};
use crate::state::RouteState;

/// A live connection to one endpoint.
struct Conn {
    send: SendRequest<Bytes>,
    /// The endpoint's address (the access log's `endpoint`).
    peer: std::net::SocketAddr,
    /// False once the connection's driver ended.
    alive: Rc<Cell<bool>>,
    /// The cluster config it was opened under (a changed config opens new ones).
    cluster: Weak<SharedCluster>,
}

/// The core's h2 upstream connections, by cluster config and endpoint.
#[derive(Default)]
pub struct H2Pool {
    conns: RefCell<HashMap<(usize, usize), Conn>>,
}

impl H2Pool {
    /// The key of an endpoint of a cluster config: both addresses of their shared parts (no
    /// allocation per request). The cluster's `Weak` in the entry keeps its allocation, so an
    /// address is never reused by a later config while its entry stands.
    fn key(cluster: &Cluster, ep: &Endpoint) -> (usize, usize) {
        (
            Arc::as_ptr(&cluster.shared) as usize,
            Arc::as_ptr(&ep.shared) as usize,
        )
    }

    fn get(
        &self,
        cluster: &Cluster,
        ep: &Endpoint,
    ) -> Option<(SendRequest<Bytes>, std::net::SocketAddr)> {
        let key = Self::key(cluster, ep);
        let mut conns = self.conns.borrow_mut();
        let c = conns.get(&key)?;
        if c.alive.get() && std::ptr::eq(c.cluster.as_ptr(), Arc::as_ptr(&cluster.shared)) {
            return Some((c.send.clone(), c.peer));
        }
        conns.remove(&key);
        None
    }

    fn put(&self, cluster: &Cluster, ep: &Endpoint, conn: Conn) {
        let key = Self::key(cluster, ep);
        let mut conns = self.conns.borrow_mut();
        // Connections of configs that are gone.
        conns.retain(|_, c| c.alive.get() && c.cluster.strong_count() > 0);
        conns.insert(key, conn);
    }
}

/// Opens an h2 connection to `ep` and starts its driver on this core.
async fn open(
    worker: &crate::worker::Worker,
    cluster: &Cluster,
    ep: &Rc<Endpoint>,
) -> Result<(SendRequest<Bytes>, std::net::SocketAddr), ProxyError> {
    let conn = cluster.acquire_at(Instant::now(), ep).await.map_err(|e| {
        ProxyError::new(
            502,
            "upstream_connect_failed",
            Side::Upstream,
            e.to_string(),
        )
    })?;
    let peer = conn.peer;
    let stream = cluster.detach(conn);
    let (rd, wr) = stream.into_split();
    let io = weir_h2::Io::new(rd, wr, Vec::new());
    let handshake = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .handshake::<_, Bytes>(io);
    let (send, connection) = match monoio::time::timeout(cluster.connect_timeout(), handshake).await
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Err(ProxyError::new(
                502,
                "upstream_protocol_error",
                Side::Upstream,
                format!("HTTP/2 handshake with {} failed: {e}", ep.address()),
            ))
        }
        Err(_) => {
            return Err(ProxyError::new(
                504,
                "upstream_connect_timeout",
                Side::Upstream,
                format!("HTTP/2 handshake with {} timed out", ep.address()),
            ))
        }
    };
    let alive = Rc::new(Cell::new(true));
    let flag = alive.clone();
    let address = ep.address().to_owned();
    monoio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(upstream = %address, error = %e, "HTTP/2 upstream connection ended");
        }
        flag.set(false);
    });
    worker.h2_pool.put(
        cluster,
        ep,
        Conn {
            send: send.clone(),
            peer,
            alive,
            cluster: Arc::downgrade(&cluster.shared),
        },
    );
    Ok((send, peer))
}

/// The request's head as h2: the authority from `host`, the client's end-to-end fields, then the
/// forwarding fields; `te: trailers` kept (gRPC needs it), the other connection fields dropped.
fn request_of(
    head: &RequestHead,
    d: &Downstream,
    ctx: &RequestCtx,
    tls: bool,
) -> Result<http::Request<()>, ProxyError> {
    let bad = |what: &str| ProxyError::new(400, "bad_request", Side::Downstream, what.to_owned());
    let scheme = if tls { "https" } else { "http" };
    let authority = std::str::from_utf8(&head.host).map_err(|_| bad("host is not text"))?;
    let target = std::str::from_utf8(&head.target).map_err(|_| bad("target is not text"))?;
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(if authority.is_empty() {
            "localhost"
        } else {
            authority
        })
        .path_and_query(target)
        .build()
        .map_err(|_| bad("the request target is not a URI path"))?;
    let mut req = http::Request::builder()
        .method(http::Method::from_bytes(&head.method).map_err(|_| bad("bad method"))?)
        .uri(uri)
        .body(())
        .map_err(|_| bad("bad request head"))?;
    let h = req.headers_mut();
    let mut forwarded_for = String::new();
    for f in head.headers.iter() {
        let name = &f.name[..];
        if name.eq_ignore_ascii_case(b"host") {
            continue;
        }
        if name.eq_ignore_ascii_case(b"te") {
            if weir_http::has_token(&f.value, "trailers") {
                h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
            }
            continue;
        }
        if weir_h2::head::is_connection_field(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            forwarded_for.push_str(&String::from_utf8_lossy(&f.value));
            forwarded_for.push_str(", ");
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-request-id")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_maybe_shared(f.value.clone()),
        ) {
            h.append(n, v);
        }
    }
    // gRPC servers require `te: trailers`; the HTTP/1.1 codec drops `te` as a hop-by-hop field.
    if weir_h2::head::is_grpc(head.headers.value("content-type")) {
        h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
    forwarded_for.push_str(&d.peer_ip);
    if let Ok(v) = http::HeaderValue::from_str(&forwarded_for) {
        h.insert("x-forwarded-for", v);
    }
    h.insert(
        "x-forwarded-proto",
        http::HeaderValue::from_static(if ctx.tls.is_some() { "https" } else { "http" }),
    );
    if let Ok(v) = http::HeaderValue::from_str(&ctx.request_id) {
        h.insert("x-request-id", v);
    }
    Ok(req)
}

/// An h2 response head as the request path's [`ResponseHead`] (what response filters see).
fn response_head(parts: &http::response::Parts) -> ResponseHead {
    let mut headers = Headers::with_capacity(parts.headers.len() + 1);
    for (n, v) in parts.headers.iter() {
        headers.append(
            Bytes::copy_from_slice(n.as_str().as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        );
    }
    let body = match parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
        None => BodyKind::Chunked,
    };
    ResponseHead {
        status: parts.status.as_u16(),
        reason: Bytes::from_static(weir_http::reason_phrase(parts.status.as_u16()).as_bytes()),
        version: Version::Http11,
        headers,
        body,
        keep_alive: true,
        head_len: 0,
    }
}

/// The client's request trailers (a kept section) as HTTP/2 trailers, after the filters'
/// trailer phase (`shown`: it ran already, on a body read whole); `None` when there were none.
/// A filter's answer stops the upload as a streamed body's refusal does.
fn request_trailers(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    section: Vec<u8>,
    shown: bool,
) -> Result<Option<http::HeaderMap>, ProxyError> {
    if section == b"\r\n" {
        return Ok(None);
    }
    let mut fields =
        weir_http::parse_trailers(Bytes::from(section)).map_err(|e| ProxyError::from_codec(&e))?;
    if !shown {
        if let Some(v) = crate::trailers::request_phase(ctx, filters, &mut fields) {
            return Err(refused_body(v));
        }
    }
    Ok(Some(crate::trailers::to_h2(&fields)))
}

/// Whether the request body passes through a chain that may hold its pieces (not when it is
/// read whole first: `Needs::request_body`).
fn holds_upload(route: &RouteState) -> bool {
    route.needs.request_body_hold && !route.needs.request_body
}

/// The upstream reset the request stream while its body went up.
fn upstream_reset() -> ProxyError {
    ProxyError::new(
        502,
        "upstream_reset",
        Side::Upstream,
        "the upstream reset the request stream",
    )
}

/// The upstream reset the stream (or the connection broke) mid-exchange.
fn reset_error(e: &h2::Error) -> ProxyError {
    ProxyError::new(
        502,
        "upstream_reset",
        Side::Upstream,
        format!("HTTP/2 upstream reset the stream: {e}"),
    )
}

/// Nothing came from the upstream for the route's idle timeout.
fn idle_error() -> ProxyError {
    ProxyError::new(
        504,
        "upstream_idle_timeout",
        Side::Upstream,
        "the upstream stopped sending",
    )
}

/// Proxies the request to an h2 cluster; returns whether the client connection may be kept.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn proxy(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut Vec<Box<dyn Filter>>,
    head: RequestHead,
    route: &RouteState,
    cluster: &Rc<Cluster>,
) -> bool {
    let worker = scope.worker;
    let ep = match cluster.pick(None, &[]) {
        Ok((_, ep)) => ep,
        Err(e) => {
            let pe = ProxyError::new(503, "no_healthy_upstream", Side::Upstream, e.to_string());
            return fail(scope, d, ctx, filters, pe, &head).await;
        }
    };
    let send = match worker.h2_pool.get(cluster, &ep) {
        Some(s) => Ok(s),
        None => open(worker, cluster, &ep).await,
    };
    let mut send = match send {
        Ok((s, peer)) => {
            ctx.endpoint = Some(peer);
            s
        }
        Err(e) => {
            cluster.outcome(&ep, true);
            return fail(scope, d, ctx, filters, e, &head).await;
        }
    };
    let mut req = match request_of(&head, d, ctx, cluster.shared.tls.is_some()) {
        Ok(r) => r,
        Err(e) => return fail(scope, d, ctx, filters, e, &head).await,
    };
    if holds_upload(route) {
        // The chain may change the body's length: its DATA frames and their END_STREAM say
        // where it ends (HTTP/2 needs no length).
        req.headers_mut().remove(http::header::CONTENT_LENGTH);
    }
    let deadline = route.total_timeout.map(|t| ctx.timings.start + t);
    let first_byte = crate::io::after(Instant::now(), route.first_byte_timeout);
    let first_byte = deadline.map_or(first_byte, |t| t.min(first_byte));
    // The server's stream limit may make a request wait for a free stream.
    let ready = within!(
        &mut d.timer,
        first_byte,
        std::future::poll_fn(|cx| send.poll_ready(cx))
    );
    let sent = match ready {
        Some(Ok(())) => {
            ctx.timings.upstream_sent = Some(monoio::time::turn_now());
            send.send_request(req, head.body == BodyKind::Empty)
        }
        Some(Err(e)) => Err(e),
        None => {
            let pe = ProxyError::new(
                504,
                "upstream_timeout",
                Side::Upstream,
                "no HTTP/2 stream became free in time",
            );
            return fail(scope, d, ctx, filters, pe, &head).await;
        }
    };
    let (response, body_tx) = match sent {
        Ok(pair) => pair,
        Err(e) => {
            cluster.outcome(&ep, true);
            let pe = ProxyError::new(
                502,
                "upstream_reset",
                Side::Upstream,
                format!("HTTP/2 upstream refused the request: {e}"),
            );
            return fail(scope, d, ctx, filters, pe, &head).await;
        }
    };
    if head.expect_continue && d.reader.buf().is_empty() {
        d.out.clear();
        d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if d.write_out().await.is_err() {
            finish(scope, ctx, filters);
            return false;
        }
    }
    cluster.begin(&ep);
    let failed = Cell::new(true);
    let keep = exchange(
        scope, d, ctx, filters, &head, route, response, body_tx, first_byte, &failed,
    )
    .await;
    cluster.end(&ep, failed.get());
    keep
}

/// The request body up and the response down, at once.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut Vec<Box<dyn Filter>>,
    head: &RequestHead,
    route: &RouteState,
    response: h2::client::ResponseFuture,
    body_tx: h2::SendStream<Bytes>,
    first_byte: Instant,
    failed: &Cell<bool>,
) -> bool {
    let (result, head_sent, body_read, refused) = {
        let ctx_cell = RefCell::new(&mut *ctx);
        let filters_cell = RefCell::new(&mut *filters);
        let Downstream {
            reader,
            writer,
            timer,
            out,
            ..
        } = &mut *d;
        let idle = route.idle_timeout;
        // Whether bytes of the response went to the client (an error is then an abort, not an
        // answer), and whether the request body was read to its end (else the connection goes).
        let head_sent = Cell::new(false);
        let body_read = Cell::new(head.body == BodyKind::Empty);
        let refused: RefCell<Option<weir_filter::LocalResponse>> = RefCell::new(None);
        // Up: the client's body (HTTP/1.1 framing decoded) as DATA frames.
        let upload = async {
            let mut tx = body_tx;
            if head.body == BodyKind::Empty {
                return Ok::<(), ProxyError>(());
            }
            let mut stages = holds_upload(route).then(|| Stages::new(filters_cell.borrow().len()));
            // On routes whose filters read trailers, the client's go up as HTTP/2 trailers
            // (elsewhere a body's trailer section is not sent to an h2 upstream).
            let mut dec = crate::forward::decoder(head.body, route.needs.request_trailers);
            loop {
                if !reader.buf().is_empty() {
                    let buf = reader.buf();
                    let mut ranges: SmallVec<[std::ops::Range<usize>; 4]> = SmallVec::new();
                    let scan = dec
                        .scan(buf, |r| ranges.push(r))
                        .map_err(|e| ProxyError::from_codec(&e))?;
                    let bytes = buf.split_to(scan.consumed).freeze();
                    // A trailer section is shown before the body's end.
                    let mut trailers = None;
                    if let Some(stages) = stages.as_mut() {
                        // Through the chain, which may hold pieces and rewrite them: what comes
                        // out goes up.
                        let mut piece = BytesMut::new();
                        for r in ranges {
                            piece.extend_from_slice(&bytes[r]);
                        }
                        let out = {
                            let mut c = ctx_cell.borrow_mut();
                            let mut filters = filters_cell.borrow_mut();
                            c.request_bytes += piece.len() as u64;
                            let shown = if c.request_bytes > route.max_body {
                                Err(body_too_large(route))
                            } else if scan.done && dec.keeps_trailers() {
                                request_trailers(&mut c, &mut filters, dec.take_trailers(), false)
                                    .map(|t| trailers = t)
                            } else {
                                Ok(())
                            };
                            // (The request's head went up first: nothing waits for the body.)
                            let up = BodyHead::Request(None);
                            shown.and_then(|()| {
                                stages.push(up, &mut filters, &mut c, piece, scan.done)
                            })
                        };
                        let out = match out {
                            Ok(Out::Bytes(b)) => b,
                            Ok(Out::Respond(r)) => {
                                // Answered as the filter said (`refused` is looked at first).
                                tx.send_reset(h2::Reason::CANCEL);
                                *refused.borrow_mut() = Some(*r);
                                return Err(ProxyError::new(
                                    500,
                                    "filter_refused_body",
                                    Side::Downstream,
                                    "a filter answered the request",
                                ));
                            }
                            Err(e) => {
                                tx.send_reset(h2::Reason::CANCEL);
                                return Err(e);
                            }
                        };
                        if !out.is_empty() {
                            crate::http2::send_data(&mut tx, out.freeze())
                                .await
                                .map_err(|()| upstream_reset())?;
                        }
                    } else {
                        for r in ranges {
                            let piece = bytes.slice(r);
                            let refused = {
                                let mut c = ctx_cell.borrow_mut();
                                c.request_bytes += piece.len() as u64;
                                let mut filters = filters_cell.borrow_mut();
                                match body_piece_verdict(&mut filters, &mut c, &piece) {
                                    Some(v) => Some(refused_body(v)),
                                    None if c.request_bytes > route.max_body => {
                                        Some(body_too_large(route))
                                    }
                                    None => None,
                                }
                            };
                            if let Some(e) = refused {
                                tx.send_reset(h2::Reason::CANCEL);
                                return Err(e);
                            }
                            crate::http2::send_data(&mut tx, piece)
                                .await
                                .map_err(|()| upstream_reset())?;
                        }
                    }
                    if scan.done {
                        body_read.set(true);
                        if stages.is_none() {
                            // The end, told here (a chain of holds was told with the last piece).
                            let mut c = ctx_cell.borrow_mut();
                            let mut filters = filters_cell.borrow_mut();
                            if dec.keeps_trailers() {
                                match request_trailers(
                                    &mut c,
                                    &mut filters,
                                    dec.take_trailers(),
                                    route.needs.request_body,
                                ) {
                                    Ok(t) => trailers = t,
                                    Err(e) => {
                                        tx.send_reset(h2::Reason::CANCEL);
                                        return Err(e);
                                    }
                                }
                            }
                            for f in filters.iter_mut() {
                                if let Err(e) = f.on_request_body(&mut c, &[], true) {
                                    tx.send_reset(h2::Reason::CANCEL);
                                    return Err(e);
                                }
                            }
                        }
                        match trailers {
                            Some(t) if !t.is_empty() => {
                                let _ = tx.send_trailers(t);
                            }
                            _ => {
                                let _ = tx.send_data(Bytes::new(), true);
                            }
                        }
                        return Ok(());
                    }
                }
                let got = monoio::time::timeout(idle, reader.fill(BODY_READ)).await;
                match got {
                    Ok(Ok(n)) if n > 0 => {}
                    Ok(_) => {
                        tx.send_reset(h2::Reason::CANCEL);
                        return Err(client_gone());
                    }
                    Err(_) => {
                        tx.send_reset(h2::Reason::CANCEL);
                        return Err(ProxyError::new(
                            408,
                            "request_body_timeout",
                            Side::Downstream,
                            "the request body stopped arriving",
                        ));
                    }
                }
            }
        };
        // Down: the response head, its DATA as chunks (or as is with a length), its trailers.
        let download = async {
            let resp = match within!(timer, first_byte, response) {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(reset_error(&e)),
                None => {
                    return Err(ProxyError::new(
                        504,
                        "upstream_timeout",
                        Side::Upstream,
                        "the upstream did not answer in time",
                    ))
                }
            };
            ctx_cell.borrow_mut().timings.upstream_first_byte = Some(monoio::time::turn_now());
            let (parts, mut recv) = resp.into_parts();
            let mut rh = response_head(&parts);
            // HEADERS that ended the stream (gRPC's trailers-only answer: `grpc-status` in the head):
            // a bodiless response, so the bridge ends its HEADERS frame with the stream too.
            let head_only = recv.is_end_stream();
            if head_only {
                rh.body = BodyKind::Empty;
            }
            {
                let mut c = ctx_cell.borrow_mut();
                for f in filters_cell.borrow_mut().iter_mut() {
                    match f.on_response_headers(&mut c, &mut rh) {
                        // A response head cannot wait (see `Action::Wait`).
                        Ok(Action::Continue) | Ok(Action::Wait(_)) => {}
                        Ok(Action::Respond(r)) => {
                            *refused.borrow_mut() = Some(r);
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                c.status = rh.status;
            }
            failed.set(rh.status >= 500);
            let http10 = head.version == Version::Http10;
            let chunked = rh.body == BodyKind::Chunked && !head.is_head() && !http10;
            // The head as HTTP/1.1, framed as `framing` says, with the request id.
            let head_bytes = |out: &mut Vec<u8>, rh: &ResponseHead, framing: BodyKind| {
                out.clear();
                let close = !head.keep_alive || http10;
                weir_http::write_response_head(
                    out,
                    rh.status,
                    &rh.reason,
                    &rh.headers,
                    framing,
                    close,
                );
                out.truncate(out.len() - 2);
                out.extend_from_slice(b"x-request-id: ");
                out.extend_from_slice(ctx_cell.borrow().request_id.as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
            };
            // On routes whose chain may hold the body's pieces, they pass through it and the
            // head waits for its first output (see `crate::hold`); elsewhere the head goes now.
            let mut held = (route.needs.response_body_hold && !head_only && !head.is_head())
                .then(|| HeldDown::new(filters_cell.borrow().len(), rh.body, http10));
            // The waiting head, written once the chain let something out (a body callback may
            // have changed its status).
            let write_held_head = |p: &mut Vec<u8>, rh: &ResponseHead, f| {
                ctx_cell.borrow_mut().status = rh.status;
                head_bytes(p, rh, f);
                head_sent.set(true);
            };
            let mut pending = std::mem::take(out);
            if held.is_none() {
                let framing = if head.is_head() || http10 {
                    BodyKind::UntilClose
                } else {
                    rh.body
                };
                head_bytes(&mut pending, &rh, framing);
                head_sent.set(true);
            }
            let mut size = Vec::with_capacity(16);
            loop {
                let data = match monoio::time::timeout(idle, recv.data()).await {
                    Ok(Some(Ok(b))) => b,
                    Ok(Some(Err(e))) => return Err(reset_error(&e)),
                    Ok(None) => break,
                    Err(_) => return Err(idle_error()),
                };
                let _ = recv.flow_control().release_capacity(data.len());
                if let Some(h) = held.as_mut() {
                    // The last DATA frame (no trailers follow) carries the end.
                    let end = recv.is_end_stream();
                    let (ctx, filters) = (&ctx_cell, &filters_cell);
                    let piece = (&data[..], end, &b""[..]);
                    if let Some(r) =
                        h.pass(filters, ctx, piece, &mut rh, &mut pending, write_held_head)?
                    {
                        *refused.borrow_mut() = Some(*r);
                        return Ok(());
                    }
                    if pending.is_empty() {
                        continue;
                    }
                } else {
                    {
                        let mut c = ctx_cell.borrow_mut();
                        for f in filters_cell.borrow_mut().iter_mut() {
                            f.on_response_body(&mut c, &data, false)?;
                        }
                    }
                    if data.is_empty() {
                        continue;
                    }
                    if chunked {
                        size.clear();
                        weir_http::write_chunk_header(&mut size, data.len());
                        pending.extend_from_slice(&size);
                        pending.extend_from_slice(&data);
                        pending.extend_from_slice(b"\r\n");
                    } else {
                        pending.extend_from_slice(&data);
                    }
                }
                let (r, mut buf) = crate::io::write_whole(writer, pending).await;
                buf.clear();
                pending = buf;
                if r.is_err() {
                    return Err(client_gone());
                }
            }
            let trailers = match monoio::time::timeout(idle, recv.trailers()).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(reset_error(&e)),
                Err(_) => return Err(idle_error()),
            };
            // The trailer section (its fields, then the final CRLF): shown to the filters that
            // read trailers and written from what they left, else as received.
            let section = match trailers {
                _ if !chunked && held.is_none() => Vec::new(),
                Some(t) if route.needs.response_trailers && !t.is_empty() => {
                    let mut fields = crate::trailers::from_h2(&t);
                    let mut c = ctx_cell.borrow_mut();
                    crate::trailers::response_phase(
                        &mut c,
                        &mut filters_cell.borrow_mut(),
                        &mut fields,
                    )?;
                    crate::trailers::section_of(&c, &fields)
                }
                t => {
                    let mut section = Vec::new();
                    for (n, v) in t.iter().flat_map(|t| t.iter()) {
                        section.extend_from_slice(n.as_str().as_bytes());
                        section.extend_from_slice(b": ");
                        section.extend_from_slice(v.as_bytes());
                        section.extend_from_slice(b"\r\n");
                    }
                    section.extend_from_slice(b"\r\n");
                    section
                }
            };
            match held.as_mut() {
                // The end did not come with a DATA frame (trailers followed, or an empty END_STREAM).
                Some(h) if !h.ended => {
                    let (ctx, filters) = (&ctx_cell, &filters_cell);
                    let piece = (&[][..], true, &section[..]);
                    if let Some(r) =
                        h.pass(filters, ctx, piece, &mut rh, &mut pending, write_held_head)?
                    {
                        *refused.borrow_mut() = Some(*r);
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => {
                    if chunked {
                        pending.extend_from_slice(b"0\r\n");
                        pending.extend_from_slice(&section);
                    }
                    let mut c = ctx_cell.borrow_mut();
                    for f in filters_cell.borrow_mut().iter_mut() {
                        let _ = f.on_response_body(&mut c, &[], true);
                    }
                }
            }
            let (r, mut buf) = crate::io::write_whole(writer, pending).await;
            buf.clear();
            *out = buf;
            if r.is_err() {
                return Err(client_gone());
            }
            Ok(())
        };
        let mut up = std::pin::pin!(upload);
        let mut down = std::pin::pin!(download);
        let mut uploading = true;
        let result = std::future::poll_fn(|cx| {
            if uploading {
                if let Poll::Ready(r) = up.as_mut().poll(cx) {
                    uploading = false;
                    if let Err(e) = r {
                        return Poll::Ready(Err(e));
                    }
                }
            }
            down.as_mut().poll(cx)
        })
        .await;
        let refused = refused.borrow_mut().take();
        (result, head_sent.get(), body_read.get(), refused)
    };
    let keep = head.keep_alive && head.version != Version::Http10 && body_read;
    if let Some(resp) = refused {
        return crate::forward::send_local(scope, d, ctx, filters, resp, head.is_head(), keep)
            .await;
    }
    match result {
        Ok(()) => {
            finish(scope, ctx, filters);
            keep
        }
        // Nothing went to the client yet: a clean error answer.
        Err(e) if !head_sent => fail(scope, d, ctx, filters, e, head).await && keep,
        Err(e) => {
            if e.side == Side::Downstream {
                ctx.status = 499;
            } else {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "HTTP/2 upstream response aborted mid-stream");
            }
            ctx.error = Some(e);
            finish(scope, ctx, filters);
            false
        }
    }
}

/// A response body on its way to the client through a chain that may hold its pieces: the head
/// waits for the chain's first output and is framed for what is really sent (see `crate::hold`).
struct HeldDown {
    stages: Stages,
    /// Set once the head went out, with the framing it announced.
    reframe: Option<Reframe>,
    /// The received framing, and whether the client is HTTP/1.0 (a body until close).
    declared: BodyKind,
    http10: bool,
    /// Payload bytes in, and out of the chain.
    payload_in: u64,
    out_total: u64,
    /// The chain was told the body's end.
    ended: bool,
}

impl HeldDown {
    fn new(filters: usize, declared: BodyKind, http10: bool) -> Self {
        HeldDown {
            stages: Stages::new(filters),
            reframe: None,
            declared,
            http10,
            payload_in: 0,
            out_total: 0,
            ended: false,
        }
    }

    /// Passes `data` (`end`: the body ends with it; `section`: the trailer section at the end)
    /// through the chain, and what comes out to `pending` (see [`HeldDown::emit`]); `rh` is the
    /// waiting head, which the filters may edit until it is written. `Some` when a filter
    /// answered while nothing went to the client yet: that answer is sent instead.
    fn pass(
        &mut self,
        filters: &RefCell<&mut Vec<Box<dyn Filter>>>,
        ctx: &RefCell<&mut RequestCtx>,
        (data, end, section): (&[u8], bool, &[u8]),
        rh: &mut ResponseHead,
        pending: &mut Vec<u8>,
        write_head: impl FnOnce(&mut Vec<u8>, &ResponseHead, BodyKind),
    ) -> Result<Option<Box<LocalResponse>>, ProxyError> {
        self.payload_in += data.len() as u64;
        self.ended |= end;
        let piece = BytesMut::from(data);
        let waiting = self.reframe.is_none().then_some(&mut *rh);
        // (Borrowed for the chain only: `write_head` reads the request id.)
        let out = self.stages.push(
            BodyHead::Response(waiting),
            &mut filters.borrow_mut(),
            &mut ctx.borrow_mut(),
            piece,
            end,
        )?;
        self.emit(out, end, section, pending, |p, k| write_head(p, rh, k))
    }

    /// Appends what came out to `pending`, after the head (written by `write_head` with its
    /// framing) when this is the first output or the end; at the end (`done`), the body's last
    /// chunk and `section` (the trailer section, fields and final CRLF), or the length check.
    fn emit(
        &mut self,
        out: Out,
        done: bool,
        section: &[u8],
        pending: &mut Vec<u8>,
        write_head: impl FnOnce(&mut Vec<u8>, BodyKind),
    ) -> Result<Option<Box<LocalResponse>>, ProxyError> {
        let bytes = match out {
            Out::Bytes(b) => b,
            Out::Respond(r) if self.reframe.is_none() => return Ok(Some(r)),
            Out::Respond(r) => return Err(refused_body(Ok(Action::Respond(*r)))),
        };
        self.out_total += bytes.len() as u64;
        if self.reframe.is_none() && (!bytes.is_empty() || done) {
            let same = self.payload_in == self.out_total;
            let trailers = section.len() > 2;
            let kind = match framing(self.declared, done, self.out_total, same, trailers) {
                _ if self.http10 => BodyKind::UntilClose,
                k => k,
            };
            write_head(pending, kind);
            self.reframe = Some(Reframe::new(kind));
        }
        if let Some(r) = self.reframe.as_mut() {
            r.frame(pending, &bytes)?;
            if done {
                r.end(pending, section)?;
            }
        }
        Ok(None)
    }
}
