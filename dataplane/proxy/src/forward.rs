//! The request path of one request: route, filters, upstream attempts, response streaming, log.
//! See `PHASES.md` beside this file for the phase chart.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use weir_filter::{Action, Filter, LocalResponse, ProxyError, RequestCtx, Side};
use weir_http::{BodyDecoder, BodyKind, RequestHead, ResponseHead, Version};
use weir_upstream::{Cluster, HashOn, UpstreamConn};

use crate::conn::Downstream;
use crate::io::{reserve, BODY_READ, HEAD_BUF, STREAM_READ};
use crate::log;
use crate::state::{CoreState, ListenerState, RouteAction, RouteState};
use crate::worker::Worker;

/// A fresh request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = fastrand::u128(..);
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> (124 - i * 4)) & 15) as usize];
    }
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

fn request_id(head: &RequestHead) -> String {
    match head.headers.get("x-request-id") {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => new_request_id(),
    }
}

/// Handles one request; returns whether the client connection may be kept alive.
pub async fn handle(
    worker: &Worker,
    state: &CoreState,
    lst: &ListenerState,
    d: &mut Downstream,
    mut head: RequestHead,
) -> bool {
    let base = Scope {
        worker,
        state,
        lst,
        route: None,
    };
    let mut ctx = RequestCtx::new(request_id(&head), d.peer, lst.name.clone(), worker.index);
    ctx.method = head.method.clone();
    ctx.target = head.target.clone();
    let Some(ri) = lst.table.find(&head) else {
        let e = ProxyError::new(
            404,
            "no_route",
            Side::Downstream,
            "no route matches this request",
        );
        ctx.error = Some(e.clone());
        let resp = e.to_response(&ctx.request_id, ctx.error_format);
        let keep = head.keep_alive && !drop_body(d, &head);
        return send_local(base, d, &mut ctx, &mut [], resp, head.is_head(), keep).await;
    };
    let route = &lst.routes[ri];
    let scope = Scope {
        route: Some(route),
        ..base
    };
    ctx.route = Some(route.name.clone());
    let mut filters: Vec<Box<dyn Filter>> = route.filters.iter().map(|f| f.create()).collect();
    for i in 0..filters.len() {
        let verdict = filters[i].on_request_headers(&mut ctx, &mut head);
        match verdict {
            Ok(Action::Continue) => {}
            Ok(Action::Respond(resp)) => {
                let keep = head.keep_alive && !drop_body(d, &head);
                return send_local(scope, d, &mut ctx, &mut filters, resp, head.is_head(), keep)
                    .await;
            }
            Err(e) => return fail(scope, d, &mut ctx, &mut filters, e, &head).await,
        }
    }
    if let BodyKind::Length(n) = head.body {
        if n > route.max_body {
            let e = ProxyError::new(
                413,
                "body_too_large",
                Side::Downstream,
                format!(
                    "request body of {n} bytes is over the limit of {}",
                    route.max_body
                ),
            );
            ctx.error = Some(e.clone());
            let resp = e.to_response(&ctx.request_id, ctx.error_format);
            return send_local(
                scope,
                d,
                &mut ctx,
                &mut filters,
                resp,
                head.is_head(),
                false,
            )
            .await;
        }
    }
    match &route.action {
        RouteAction::Direct(resp) => {
            let keep = head.keep_alive && !drop_body(d, &head);
            send_local(
                scope,
                d,
                &mut ctx,
                &mut filters,
                resp.clone(),
                head.is_head(),
                keep,
            )
            .await
        }
        RouteAction::Redirect(rd) => {
            let location = weir_route::redirect_location(rd, &head, "http");
            let mut resp = LocalResponse::empty(rd.status);
            resp.headers
                .append(Bytes::from_static(b"location"), Bytes::from(location));
            let keep = head.keep_alive && !drop_body(d, &head);
            send_local(scope, d, &mut ctx, &mut filters, resp, head.is_head(), keep).await
        }
        RouteAction::Ai(svc) => crate::ai::serve(scope, d, &mut ctx, &mut filters, head, svc).await,
        RouteAction::Proxy(cluster) => {
            ctx.cluster = Some(cluster.name.clone());
            proxy(
                worker,
                state,
                lst,
                route,
                cluster,
                d,
                &mut ctx,
                &mut filters,
                head,
            )
            .await
        }
    }
}

/// Where a request is being served: what answering it locally and logging it need.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The core.
    pub worker: &'a Worker,
    /// The state the request took at its start.
    pub state: &'a CoreState,
    /// The listener.
    pub lst: &'a ListenerState,
    /// The matched route, if one matched.
    pub route: Option<&'a RouteState>,
}

/// Whether the request body must be given up on (it is not read when answering locally). A body
/// already wholly in the buffer is skipped so the connection can be kept.
fn drop_body(d: &mut Downstream, head: &RequestHead) -> bool {
    match head.body {
        BodyKind::Empty => false,
        BodyKind::Length(n) if (d.reader.buf().len() as u64) >= n => {
            let _ = d.reader.buf().split_to(n as usize);
            false
        }
        _ => true,
    }
}

/// Ends a request with an error response.
pub(crate) async fn fail(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    e: ProxyError,
    head: &RequestHead,
) -> bool {
    if e.side != Side::Downstream {
        tracing::warn!(request_id = %ctx.request_id, route = ?ctx.route.as_deref(), error = %e, "request failed");
    }
    let resp = e.to_response(&ctx.request_id, ctx.error_format);
    ctx.error = Some(e);
    send_local(scope, d, ctx, filters, resp, head.is_head(), false).await
}

/// Sends a response made by the gateway, then logs. Returns whether the connection stays open.
pub async fn send_local(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    mut resp: LocalResponse,
    head_request: bool,
    keep_alive: bool,
) -> bool {
    for f in filters.iter_mut() {
        f.on_local_response(ctx, &mut resp);
    }
    let close = !keep_alive || scope.worker.draining();
    d.out.clear();
    weir_http::write_response_head(
        &mut d.out,
        resp.status,
        b"",
        &resp.headers,
        BodyKind::Length(resp.body.len() as u64),
        close,
    );
    push_request_id(&mut d.out, &ctx.request_id);
    if !head_request {
        d.out.extend_from_slice(&resp.body);
    }
    ctx.status = resp.status;
    let ok = d.write_out().await.is_ok();
    if !head_request {
        ctx.response_bytes = resp.body.len() as u64;
    }
    finish(scope, ctx, filters);
    ok && !close
}

/// Logs and counts a finished request.
pub(crate) fn finish(scope: Scope<'_>, ctx: &mut RequestCtx, filters: &mut [Box<dyn Filter>]) {
    let Scope {
        worker,
        state,
        lst,
        route,
    } = scope;
    let now = Instant::now();
    ctx.timings.end = Some(now);
    for f in filters.iter_mut() {
        f.on_log(ctx);
    }
    let stats = route.map_or(&lst.unrouted, |r| &r.stats);
    stats.record(ctx.status, now.duration_since(ctx.timings.start));
    weir_metrics::bump(&stats.request_bytes, ctx.request_bytes);
    weir_metrics::bump(&stats.response_bytes, ctx.response_bytes);
    if let (Some(sent), Some(first)) = (ctx.timings.upstream_sent, ctx.timings.upstream_first_byte)
    {
        stats.upstream_latency.observe(first.duration_since(sent));
    }
    let prices = route.and_then(|r| r.prices.as_deref());
    crate::ai_metrics::record(&worker.ai_stats, ctx, now, prices);
    if state.access_log {
        worker.log_line(|buf| log::write_line(buf, ctx));
    }
}

/// How an upstream attempt failed before a response head was taken.
enum AttemptError {
    /// No connection could be made: nothing was sent.
    Connect(ProxyError),
    /// The connection closed or failed before a response head.
    Reset { reused: bool, body_sent: bool },
    /// No response head within the first-byte timeout.
    Timeout { body_sent: bool },
    /// Anything else: not retryable.
    Fatal(ProxyError),
    /// The client went away while the request body was read.
    ClientGone,
}

/// Proxies one request: attempts, retries, response.
#[allow(clippy::too_many_arguments)]
async fn proxy(
    worker: &Worker,
    state: &CoreState,
    lst: &ListenerState,
    route: &RouteState,
    cluster: &Rc<Cluster>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut Vec<Box<dyn Filter>>,
    mut head: RequestHead,
) -> bool {
    let scope = Scope {
        worker,
        state,
        lst,
        route: Some(route),
    };
    if let Some(rw) = &route.rewrite {
        rw.apply(&mut head);
    }
    let upgrade = head.upgrade.clone();
    // The connection's scratch buffer for upstream heads: no allocation per request.
    let mut up_head = std::mem::take(&mut d.up_out);
    write_upstream_head(&mut up_head, &mut head, &d.peer_ip, ctx);
    let key = hash_key(cluster.hash_on(), &head, d);
    let deadline = route.total_timeout.map(|t| ctx.timings.start + t);
    if let Some(r) = &route.retry {
        r.budget.on_request();
    }

    // Endpoints tried by earlier attempts (retries are few: no allocation).
    let mut tried = Tried::default();
    let mut retries_left = route.retry.as_ref().map_or(0, |r| r.attempts);
    let mut fresh_retry_used = false;
    let mut body_consumed = false;
    let keep = loop {
        let (idx, ep) = match cluster.pick(key.as_deref(), tried.as_slice()) {
            Ok(p) => p,
            Err(e) => {
                let pe = ProxyError::new(503, "no_healthy_upstream", Side::Upstream, e.to_string());
                break fail(scope, d, ctx, filters, pe, &head).await;
            }
        };
        tried.push(idx);
        ctx.endpoint = None;
        let attempt = attempt(
            state,
            route,
            cluster,
            &ep,
            d,
            ctx,
            filters,
            &head,
            &mut up_head,
            deadline,
            &mut body_consumed,
        )
        .await;
        let (mut conn, resp, ubuf) = match attempt {
            Ok(x) => x,
            Err(err) => {
                let idempotent_ok =
                    (head.is_idempotent() || head.body == BodyKind::Empty) && !body_consumed;
                let policy = route.retry.as_ref();
                let (pe, retry) = match err {
                    AttemptError::ClientGone => {
                        ctx.status = 499;
                        ctx.error = Some(ProxyError::new(
                            499,
                            "client_closed",
                            Side::Downstream,
                            "client closed the connection",
                        ));
                        finish(scope, ctx, filters);
                        break false;
                    }
                    AttemptError::Connect(pe) => {
                        let r = policy.is_some_and(|p| p.connect_failure);
                        (pe, r)
                    }
                    AttemptError::Reset { reused, body_sent } => {
                        // A pooled connection the upstream had closed: one free retry on a new one.
                        if reused && !body_sent && idempotent_ok && !fresh_retry_used {
                            fresh_retry_used = true;
                            tried.pop();
                            continue;
                        }
                        let pe = ProxyError::new(
                            502,
                            "upstream_reset",
                            Side::Upstream,
                            "upstream closed the connection before a response",
                        );
                        (
                            pe,
                            policy.is_some_and(|p| p.reset) && idempotent_ok && !body_sent,
                        )
                    }
                    AttemptError::Timeout { body_sent } => {
                        let pe = ProxyError::new(
                            504,
                            "upstream_timeout",
                            Side::Upstream,
                            format!("no response within {:?}", route.first_byte_timeout),
                        );
                        (
                            pe,
                            policy.is_some_and(|p| p.timeout) && idempotent_ok && !body_sent,
                        )
                    }
                    AttemptError::Fatal(pe) => (pe, false),
                };
                if retry && retries_left > 0 && policy.is_some_and(|p| p.budget.try_retry()) {
                    retries_left -= 1;
                    ctx.retries += 1;
                    weir_metrics::bump(&route.stats.retries, 1);
                    continue;
                }
                break fail(scope, d, ctx, filters, pe, &head).await;
            }
        };
        // Retry on a status, when the policy asks and the request can be sent again.
        if let Some(p) = &route.retry {
            let can = (head.is_idempotent() || head.body == BodyKind::Empty) && !body_consumed;
            if can && retries_left > 0 && p.statuses.contains(&resp.status) && p.budget.try_retry()
            {
                retries_left -= 1;
                ctx.retries += 1;
                weir_metrics::bump(&route.stats.retries, 1);
                cluster.end(&conn.endpoint, true);
                cluster.release(conn, false);
                continue;
            }
        }
        let failed = resp.status >= 500;
        match respond(
            worker,
            state,
            lst,
            route,
            d,
            ctx,
            filters,
            &head,
            &mut conn,
            resp,
            ubuf,
            deadline,
            upgrade.is_some(),
        )
        .await
        {
            Responded::Done {
                client_keep,
                upstream_reusable,
            } => {
                cluster.end(&conn.endpoint, failed);
                cluster.release(conn, upstream_reusable);
                break client_keep && head.keep_alive;
            }
            Responded::Upgraded(ubuf) => {
                cluster.end(&conn.endpoint, false);
                let stream = cluster.detach(conn);
                tunnel(d, stream, ubuf).await;
                finish(scope, ctx, filters);
                break false;
            }
        }
    };
    up_head.clear();
    d.up_out = up_head;
    keep
}

/// The endpoints an exchange tried, inline: a request makes at most 1 + 10 attempts.
#[derive(Default)]
struct Tried {
    idx: [usize; 12],
    len: usize,
}

impl Tried {
    fn push(&mut self, i: usize) {
        if self.len < self.idx.len() {
            self.idx[self.len] = i;
            self.len += 1;
        }
    }
    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
    fn as_slice(&self) -> &[usize] {
        &self.idx[..self.len]
    }
}

/// How a response ended.
enum Responded {
    /// Sent (or failed); whether each side's connection may be reused.
    Done {
        client_keep: bool,
        upstream_reusable: bool,
    },
    /// `101 Switching Protocols` went out: tunnel from now on, with these bytes from the upstream.
    Upgraded(BytesMut),
}

/// Adds `x-request-id` to a response head already written into `out` (before its final CRLF).
fn push_request_id(out: &mut Vec<u8>, id: &str) {
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Writes the head sent upstream: the client's end-to-end fields, then the forwarding fields
/// (`X-Forwarded-For` appended to, `X-Forwarded-Proto`, `Via` appended to, `X-Request-Id`) and the
/// upgrade fields, written straight into the buffer rather than stored as fields.
fn write_upstream_head(out: &mut Vec<u8>, head: &mut RequestHead, peer_ip: &str, ctx: &RequestCtx) {
    let mut xff = None;
    let mut via = None;
    head.headers.retain(|h| {
        let n = &h.name[..];
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            xff = Some(h.value.clone());
            false
        } else if n.eq_ignore_ascii_case(b"via") {
            via = Some(h.value.clone());
            false
        } else {
            !(n.eq_ignore_ascii_case(b"x-forwarded-proto")
                || n.eq_ignore_ascii_case(b"x-request-id"))
        }
    });
    out.clear();
    weir_http::write_request_head(out, &head.method, &head.target, &head.headers, head.body);
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prev) = xff {
        out.extend_from_slice(&prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\nvia: ");
    if let Some(prev) = via {
        out.extend_from_slice(&prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"1.1 weir\r\nx-request-id: ");
    out.extend_from_slice(ctx.request_id.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(proto) = &head.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        out.extend_from_slice(proto);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn hash_key(on: Option<&HashOn>, head: &RequestHead, d: &Downstream) -> Option<Vec<u8>> {
    match on? {
        HashOn::Header(h) => head.headers.get(h).map(|v| v.to_vec()),
        HashOn::SourceIp => Some(d.peer.ip().to_string().into_bytes()),
        HashOn::Cookie(name) => head.headers.get_all("cookie").find_map(|v| {
            v.split(|b| *b == b';').find_map(|kv| {
                let kv = kv.trim_ascii();
                let (k, val) = kv.split_at(kv.iter().position(|b| *b == b'=')?);
                (k == name.as_bytes()).then(|| val[1..].to_vec())
            })
        }),
    }
}

fn remaining(deadline: Option<Instant>, d: Duration) -> Duration {
    match deadline {
        Some(t) => d.min(t.saturating_duration_since(Instant::now())),
        None => d,
    }
}

/// One attempt: connect (or reuse), send the head and body, read the response head.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    state: &CoreState,
    route: &RouteState,
    cluster: &Cluster,
    ep: &Rc<weir_upstream::Endpoint>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
    up_head: &mut Vec<u8>,
    deadline: Option<Instant>,
    body_consumed: &mut bool,
) -> Result<(UpstreamConn, ResponseHead, BytesMut), AttemptError> {
    let mut conn = cluster.acquire(ep).await.map_err(|e| {
        cluster.outcome(ep, true);
        let (status, kind) = match &e {
            weir_upstream::Error::ConnectTimeout(_) => (504, "upstream_connect_timeout"),
            weir_upstream::Error::Overflow(_) => (503, "upstream_overflow"),
            _ => (502, "upstream_connect_failed"),
        };
        AttemptError::Connect(
            ProxyError::new(status, kind, Side::Upstream, e.to_string()).retryable(),
        )
    })?;
    ctx.endpoint = Some(conn.peer);
    cluster.begin(ep);
    let reused = conn.reused;
    let undo = |cluster: &Cluster, conn: UpstreamConn, failed: bool| {
        cluster.end(&conn.endpoint, failed);
        cluster.release(conn, false);
    };
    ctx.timings.upstream_sent = Some(Instant::now());
    let (r, buf) = conn.stream.write_all(std::mem::take(up_head)).await;
    *up_head = buf;
    if r.is_err() {
        undo(cluster, conn, !reused);
        return Err(AttemptError::Reset {
            reused,
            body_sent: false,
        });
    }
    let mut body_sent = false;
    if head.body != BodyKind::Empty {
        if *body_consumed {
            // The body went to an earlier attempt and was not kept: this attempt cannot be made.
            undo(cluster, conn, false);
            return Err(AttemptError::Fatal(ProxyError::new(
                502,
                "upstream_reset",
                Side::Upstream,
                "upstream failed after the request body was sent",
            )));
        }
        *body_consumed = true;
        body_sent = true;
        if head.expect_continue && d.reader.buf().is_empty() {
            d.out.clear();
            d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if d.write_out().await.is_err() {
                undo(cluster, conn, false);
                return Err(AttemptError::ClientGone);
            }
        }
        if let Err(e) = send_body(route, d, &mut conn, ctx, filters, head.body).await {
            undo(cluster, conn, false);
            return Err(e);
        }
    }
    let mut ubuf = BytesMut::with_capacity(HEAD_BUF);
    let first_byte = remaining(deadline, route.first_byte_timeout);
    let slot = &mut ubuf;
    let read_head = async {
        loop {
            let mut buf = std::mem::take(slot);
            reserve(&mut buf, HEAD_BUF);
            let len = buf.len();
            let cap = buf.capacity();
            let (r, slice) = conn.stream.read(buf.slice_mut(len..cap)).await;
            *slot = slice.into_inner();
            match r {
                Ok(0) | Err(_) => return Err(AttemptError::Reset { reused, body_sent }),
                Ok(_) => {}
            }
            if ctx.timings.upstream_first_byte.is_none() {
                ctx.timings.upstream_first_byte = Some(Instant::now());
            }
            match weir_http::parse_response(slot, state.max_response_head, head.is_head()) {
                Ok(Some(resp)) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    continue
                }
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => continue,
                Err(e) => return Err(AttemptError::Fatal(ProxyError::from_codec(&e))),
            }
        }
    };
    match monoio::time::timeout(first_byte, read_head).await {
        Ok(Ok(resp)) => Ok((conn, resp, ubuf)),
        Ok(Err(e)) => {
            let failed = !matches!(e, AttemptError::Reset { reused: true, .. });
            undo(cluster, conn, failed);
            Err(e)
        }
        Err(_) => {
            undo(cluster, conn, true);
            Err(AttemptError::Timeout { body_sent })
        }
    }
}

/// Streams the request body from the client to the upstream as it arrives.
async fn send_body(
    route: &RouteState,
    d: &mut Downstream,
    conn: &mut UpstreamConn,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    kind: BodyKind,
) -> Result<(), AttemptError> {
    let mut dec = BodyDecoder::new(kind);
    loop {
        if !d.reader.buf().is_empty() {
            let mut verdict: Option<Result<Action, ProxyError>> = None;
            let buf = d.reader.buf();
            let scan = dec
                .scan(buf, |r| {
                    if verdict.is_none() {
                        for f in filters.iter_mut() {
                            match f.on_request_body(ctx, &buf[r.clone()], false) {
                                Ok(Action::Continue) => {}
                                other => {
                                    verdict = Some(other);
                                    break;
                                }
                            }
                        }
                    }
                })
                .map_err(|e| AttemptError::Fatal(ProxyError::from_codec(&e)))?;
            ctx.request_bytes = dec.payload_bytes();
            if let Some(v) = verdict {
                return Err(AttemptError::Fatal(match v {
                    Err(e) => e,
                    Ok(Action::Respond(r)) => ProxyError::new(
                        r.status,
                        "filter_refused_body",
                        Side::Downstream,
                        String::from_utf8_lossy(&r.body).into_owned(),
                    ),
                    Ok(Action::Continue) => {
                        ProxyError::new(500, "internal", Side::Internal, "filter verdict lost")
                    }
                }));
            }
            if dec.payload_bytes() > route.max_body {
                return Err(AttemptError::Fatal(ProxyError::new(
                    413,
                    "body_too_large",
                    Side::Downstream,
                    format!("request body is over the limit of {} bytes", route.max_body),
                )));
            }
            let piece = d.reader.buf().split_to(scan.consumed).freeze();
            if !piece.is_empty() {
                let (r, _) = conn.stream.write_all(piece).await;
                if r.is_err() {
                    return Err(AttemptError::Reset {
                        reused: false,
                        body_sent: true,
                    });
                }
            }
            if scan.done {
                for f in filters.iter_mut() {
                    if let Err(e) = f.on_request_body(ctx, &[], true) {
                        return Err(AttemptError::Fatal(e));
                    }
                }
                return Ok(());
            }
        }
        match monoio::time::timeout(route.idle_timeout, d.reader.fill(BODY_READ)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(AttemptError::ClientGone),
            Err(_) => {
                return Err(AttemptError::Fatal(ProxyError::new(
                    408,
                    "request_body_timeout",
                    Side::Downstream,
                    "the request body stopped arriving",
                )))
            }
        }
    }
}

/// Sends the response head and streams the body. Returns (client keep-alive, upstream reusable).
#[allow(clippy::too_many_arguments)]
async fn respond(
    worker: &Worker,
    state: &CoreState,
    lst: &ListenerState,
    route: &RouteState,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
    conn: &mut UpstreamConn,
    mut resp: ResponseHead,
    mut ubuf: BytesMut,
    deadline: Option<Instant>,
    upgrade: bool,
) -> Responded {
    let scope = Scope {
        worker,
        state,
        lst,
        route: Some(route),
    };
    let done = |client_keep, upstream_reusable| Responded::Done {
        client_keep,
        upstream_reusable,
    };
    for i in 0..filters.len() {
        let verdict = filters[i].on_response_headers(ctx, &mut resp);
        match verdict {
            Ok(Action::Continue) => {}
            Ok(Action::Respond(r)) => {
                let keep = send_local(scope, d, ctx, filters, r, head.is_head(), false).await;
                return done(keep, false);
            }
            Err(e) => {
                let keep = fail(scope, d, ctx, filters, e, head).await;
                return done(keep, false);
            }
        }
    }
    let switching = upgrade && resp.status == 101;
    if switching {
        resp.headers.append(
            Bytes::from_static(b"connection"),
            Bytes::from_static(b"upgrade"),
        );
    }
    // A body delimited by the upstream closing can only be delimited the same way downstream.
    // An HTTP/1.0 client cannot read chunked framing: its body is de-chunked and ends with the
    // connection (the only re-encoding on this path, and only for such clients).
    let dechunk = head.version == Version::Http10 && resp.body == BodyKind::Chunked;
    let close =
        !head.keep_alive || resp.body == BodyKind::UntilClose || dechunk || worker.draining();
    ctx.status = resp.status;
    d.out.clear();
    weir_http::write_response_head(
        &mut d.out,
        resp.status,
        &resp.reason,
        &resp.headers,
        // HEAD and 304 carry no body: no framing unless the upstream's Content-Length was kept.
        if dechunk || head.is_head() || resp.status == 304 {
            BodyKind::UntilClose
        } else {
            resp.body
        },
        close && !switching,
    );
    push_request_id(&mut d.out, &ctx.request_id);
    let mut dec = BodyDecoder::new(resp.body);
    let upstream_keep = resp.keep_alive;
    drop(resp);

    if switching {
        if d.write_out().await.is_err() {
            finish(scope, ctx, filters);
            return done(false, false);
        }
        return Responded::Upgraded(ubuf);
    }

    // Small bodies that came with the head go out in the same write.
    let mut head_pending = true;
    let mut reads = 0u32;
    let mut bulk = false;
    let outcome: Result<bool, ProxyError> = loop {
        if !ubuf.is_empty() || dec.is_done() {
            let mut filter_err = None;
            let mut payload = dechunk.then(BytesMut::new);
            let scan = match dec.scan(&ubuf, |r| {
                if let Some(p) = payload.as_mut() {
                    p.extend_from_slice(&ubuf[r.clone()]);
                }
                for f in filters.iter_mut() {
                    if let Err(e) = f.on_response_body(ctx, &ubuf[r.clone()], false) {
                        filter_err.get_or_insert(e);
                    }
                }
            }) {
                Ok(s) => s,
                Err(e) => {
                    break Err(ProxyError::new(
                        502,
                        "upstream_bad_body",
                        Side::Upstream,
                        e.to_string(),
                    ))
                }
            };
            if let Some(e) = filter_err {
                break Err(e);
            }
            ctx.response_bytes = dec.payload_bytes();
            let framed = ubuf.split_to(scan.consumed);
            let piece = payload.unwrap_or(framed);
            let wrote = if head_pending {
                head_pending = false;
                if piece.len() <= 64 << 10 {
                    d.out.extend_from_slice(&piece);
                    d.write_out().await
                } else {
                    match d.write_out().await {
                        Ok(()) => d.write_bytes(piece.freeze()).await,
                        Err(e) => Err(e),
                    }
                }
            } else if piece.is_empty() {
                Ok(())
            } else {
                d.write_bytes(piece.freeze()).await
            };
            if wrote.is_err() {
                break Err(ProxyError::new(
                    499,
                    "client_closed",
                    Side::Downstream,
                    "client closed the connection",
                ));
            }
            if scan.done {
                // Bytes past the end of the response: the upstream broke framing; do not reuse.
                break Ok(ubuf.is_empty());
            }
        }
        // Need more from the upstream. From the second read on, watch the client: a client that
        // hangs up mid-stream cancels the upstream request at once.
        reads += 1;
        if reads > 1 && !d.reader.is_watching() && d.reader.buf().is_empty() {
            d.reader.watch();
        }
        // Small reads while the upstream trickles (an SSE stream holds little memory while it
        // waits), large ones once a read fills its buffer (bulk bodies take few syscalls).
        reserve(&mut ubuf, if bulk { BODY_READ } else { STREAM_READ });
        let len = ubuf.len();
        let cap = ubuf.capacity();
        let wait = remaining(deadline, route.idle_timeout);
        let read = monoio::time::timeout(wait, conn.stream.read(ubuf.slice_mut(len..cap)));
        let mut read = std::pin::pin!(read);
        let got = loop {
            if d.reader.is_watching() {
                monoio::select! {
                    r = &mut read => break Some(r),
                    w = d.reader.settle() => {
                        if !matches!(w, Ok(n) if n > 0) {
                            break None;
                        }
                    }
                }
            } else {
                break Some((&mut read).await);
            }
        };
        match got {
            None => {
                break Err(ProxyError::new(
                    499,
                    "client_closed",
                    Side::Downstream,
                    "client closed the connection mid-response",
                ))
            }
            Some(Err(_)) => {
                break Err(ProxyError::new(
                    504,
                    "upstream_idle_timeout",
                    Side::Upstream,
                    "the upstream stopped sending",
                ))
            }
            Some(Ok((r, slice))) => {
                ubuf = slice.into_inner();
                match r {
                    Ok(0) if dec.kind() == BodyKind::UntilClose => {
                        // The end of a close-delimited body.
                        break Ok(false);
                    }
                    Ok(0) | Err(_) => {
                        break Err(ProxyError::new(
                            502,
                            "upstream_reset",
                            Side::Upstream,
                            "upstream closed mid-response",
                        ))
                    }
                    Ok(n) => bulk = n == cap - len,
                }
            }
        }
    };
    match outcome {
        Ok(reusable) => {
            for f in filters.iter_mut() {
                let _ = f.on_response_body(ctx, &[], true);
            }
            finish(scope, ctx, filters);
            done(!close, reusable && upstream_keep)
        }
        Err(e) => {
            if head_pending && e.side == Side::Upstream {
                // Nothing reached the client yet: a clean error response is still possible.
                let keep = fail(scope, d, ctx, filters, e, head).await;
                return done(keep, false);
            }
            if e.side == Side::Downstream {
                ctx.status = 499;
            } else {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "response aborted mid-stream");
            }
            ctx.error = Some(e);
            finish(scope, ctx, filters);
            done(false, false)
        }
    }
}

/// After `101 Switching Protocols`: bytes both ways until either side closes.
async fn tunnel(d: &mut Downstream, stream: weir_upstream::MaybeTls, ubuf: BytesMut) {
    use monoio::io::AsyncWriteRent;
    // Bytes the upstream sent right after its head go first.
    if !ubuf.is_empty() && d.write_bytes(ubuf.freeze()).await.is_err() {
        return;
    }
    let (mut urd, mut uwr) = stream.into_split();
    let pending = std::mem::take(d.reader.buf());
    if !pending.is_empty() {
        let (r, _) = uwr.write_all(pending.freeze()).await;
        if r.is_err() {
            return;
        }
    }
    let writer = &mut d.writer;
    let reader = &mut d.reader;
    let up_to_client = async {
        let mut buf = BytesMut::with_capacity(BODY_READ);
        loop {
            reserve(&mut buf, BODY_READ);
            let len = buf.len();
            let cap = buf.capacity();
            let (r, slice) = urd.read(buf.slice_mut(len..cap)).await;
            buf = slice.into_inner();
            match r {
                Ok(n) if n > 0 => {}
                _ => break,
            }
            let (r, _) = writer.write_all(buf.split().freeze()).await;
            if r.is_err() {
                break;
            }
        }
    };
    let client_to_up = async {
        loop {
            match reader.fill(BODY_READ).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
            let piece = reader.buf().split().freeze();
            let (r, _) = uwr.write_all(piece).await;
            if r.is_err() {
                break;
            }
        }
        let _ = uwr.shutdown().await;
    };
    monoio::select! {
        _ = up_to_client => {},
        _ = client_to_up => {},
    }
}
