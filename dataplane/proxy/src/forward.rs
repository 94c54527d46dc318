//! The request path of one request: route, filters, upstream attempts, response streaming, log.
//! See `PHASES.md` beside this file for the phase chart.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::time::turn_now;
use weir_filter::{Action, Filter, LocalResponse, ProxyError, RequestCtx, Side, Waiting};
use weir_http::{BodyDecoder, BodyKind, RequestHead, ResponseHead, Version};
use weir_upstream::{Cluster, HashOn, UpstreamConn};

use crate::conn::Downstream;
use crate::io::{
    after, read_upstream, reserve, within, write_upstream, BODY_READ, HEAD_BUF, STREAM_READ,
};
use crate::log;
use crate::state::{CoreState, ListenerState, RouteAction, RouteState};
use crate::worker::Worker;

/// A fresh request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    let v = fastrand::u128(..);
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let word = (v >> (96 - 32 * i)) as u32;
        chunk.copy_from_slice(&hex8(word).to_be_bytes());
    }
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// The 8 lower-case hex digits of `x`, most significant first (as the bytes of a big-endian
/// word), computed on the whole word at once.
fn hex8(x: u32) -> u64 {
    // One nibble per byte...
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // ...then '0'..'9' for 0..9 and 'a'..'f' for 10..15 (a byte is 1 where its nibble is > 9).
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)
}

fn request_id(head: &RequestHead) -> String {
    match head.headers.value("x-request-id") {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => new_request_id(),
    }
}

/// Handles one request; returns whether the client connection may be kept alive. A proxied
/// request's attempts, retries and response are written out here.
///
/// One flat future on purpose, the largest on the request path, awaited in place by the
/// connection's (so every keep-alive connection carries its room). Its size is that room, so it is
/// kept down:
/// - the exchange is written out here rather than awaited as futures of its own, because a future
///   is copied (whole) into its parent each time it nests;
/// - only small I/O futures are awaited in place; the answers made by the gateway, a request
///   body's upload, a new upstream connection and a tunnel are boxed;
/// - no large value lives across two awaits: the compiler gives such a value room of its own in
///   the future (even after it was moved out) instead of sharing it with the others, so each
///   answer is awaited at one point, and the attempt's outcome is matched as a temporary;
/// - the head is borrowed from the slot the connection parsed it into, not moved in (a move copies
///   its 368 bytes); only the AI and HTTP/2-cluster paths, boxed, take it out;
/// - not an `async fn`: one of those keeps a by-value argument twice in its state (the argument
///   and the local it is moved to); an `async move` block uses what it captured in place.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn handle<'a>(
    worker: &'a Worker,
    state: &'a CoreState,
    lst: &'a ListenerState,
    d: &'a mut Downstream,
    head: &'a mut RequestHead,
) -> impl Future<Output = bool> + 'a {
    async move {
        let mut ctx = RequestCtx::new_at(
            turn_now(),
            request_id(head),
            d.peer,
            lst.name.clone(),
            worker.index,
        );
        ctx.tls = d.tls.clone();
        ctx.http2 = d.http2;
        ctx.method = head.method.clone();
        ctx.target = head.target.clone();
        let route = lst.table.find(head).map(|ri| &lst.routes[ri]);
        let mut filters: Vec<Box<dyn Filter>> = match route {
            Some(r) => {
                ctx.route = Some(r.name.clone());
                r.filters.iter().map(|f| f.create()).collect()
            }
            None => Vec::new(),
        };
        let scope = Scope {
            worker,
            state,
            lst,
            route,
        };
        // (Matched as a temporary and consumed whole: see above.)
        let (route, cluster) = match route_action(scope, d, &mut ctx, &mut filters, head) {
            Next::Proxy(route, cluster) => (route, cluster),
            Next::Wait(r, i, w) => {
                // Only on routes with a filter that waits (boxed: off the plain path).
                let at = (r, i, w);
                match Box::pin(wait_then_route(at, d, &mut ctx, &mut filters, head)).await {
                    Next::Proxy(route, cluster) => (route, cluster),
                    other => return other.answer(scope, d, &mut ctx, &mut filters, head).await,
                }
            }
            other => return other.answer(scope, d, &mut ctx, &mut filters, head).await,
        };
        if route.needs.request_body && head.body != BodyKind::Empty {
            // A filter rewrites the request body: it is read whole first (boxed: off the plain
            // path), then sent from the client buffer as a content-length body.
            match Box::pin(buffer_request(route, d, &mut ctx, &mut filters, head)).await {
                Ok(None) => {}
                Ok(Some(resp)) => {
                    let next = Next::Local(resp, false);
                    return next.answer(scope, d, &mut ctx, &mut filters, head).await;
                }
                Err(e) => {
                    return Next::Fail(e)
                        .answer(scope, d, &mut ctx, &mut filters, head)
                        .await
                }
            }
        }

        // A filter may hold the request body's pieces back (a plugin's `StopIterationAndBuffer`):
        // it is read through the chain until something comes out, before anything goes upstream
        // (boxed, as above). An HTTP/2 cluster's exchange runs the chain itself (`h2_upstream`).
        let mut held: Option<Box<crate::hold::HeldUpload>> = None;
        let mut held_whole = false;
        if route.needs.request_body_hold
            && !route.needs.request_body
            && head.body != BodyKind::Empty
            && !cluster.is_h2()
        {
            let read = crate::hold::hold_request(route, d, &mut ctx, &mut filters, head);
            match Box::pin(read).await {
                Ok(crate::hold::Upload::Whole) => held_whole = true,
                Ok(crate::hold::Upload::Part(up)) => held = Some(up),
                Ok(crate::hold::Upload::Respond(resp)) => {
                    let next = Next::Local(*resp, false);
                    return next.answer(scope, d, &mut ctx, &mut filters, head).await;
                }
                Err(e) => {
                    return Next::Fail(e)
                        .answer(scope, d, &mut ctx, &mut filters, head)
                        .await
                }
            }
        }

        // === a proxied request ===
        ctx.cluster = Some(cluster.name.clone());
        if let Some(rw) = &route.rewrite {
            rw.apply(head);
        }
        if cluster.is_h2() {
            // An HTTP/2 cluster (gRPC): its own exchange, boxed off the HTTP/1.1 path.
            let h2 = crate::h2_upstream::proxy(
                scope,
                d,
                &mut ctx,
                &mut filters,
                std::mem::take(head),
                route,
                cluster,
            );
            return Box::pin(h2).await;
        }
        let upgrade = head.upgrade.is_some();
        // The connection's scratch buffer for upstream heads: no allocation per request.
        let mut up_head = std::mem::take(&mut d.up_out);
        let cert_header = lst.tls.as_ref().and_then(|t| t.forward_header.as_deref());
        write_upstream_head(&mut up_head, head, &d.peer_ip, &ctx, cert_header);
        let key = hash_key(cluster.hash_on(), head, d);
        let deadline = route.total_timeout.map(|t| ctx.timings.start + t);
        if let Some(r) = &route.retry {
            r.budget.on_request();
        }
        let mut attempts = Attempts::new(route);
        // One clock reading serves every step up to the first await that can suspend (a pooled
        // connection is taken without one), so the first attempt uses the request's start; a
        // retry reads the clock again.
        let mut now = ctx.timings.start;
        let mut first = true;
        let keep = loop {
            if !std::mem::take(&mut first) {
                now = Instant::now();
            }
            let ep = match cluster.pick_at(now, key.as_deref(), attempts.tried.as_slice()) {
                Ok((idx, ep)) => {
                    attempts.tried.push(idx);
                    ep
                }
                Err(e) => {
                    let pe =
                        ProxyError::new(503, "no_healthy_upstream", Side::Upstream, e.to_string());
                    break fail(scope, d, &mut ctx, &mut filters, pe, head).await;
                }
            };
            ctx.endpoint = None;

            // --- the attempt: connect (or reuse), send the head and body, read the response head
            let mut ubuf = worker.take_buf();
            // The attempt's value and the step made of it live only inside this block, and the
            // step is consumed whole: neither keeps room in this future past this point.
            #[allow(clippy::blocks_in_conditions)] // on purpose: see above
            let mut b = match {
                let attempt: Result<(UpstreamConn, ResponseHead), AttemptError> = 'attempt: {
                    // A pooled connection without a wait; a new one (a connect, a TLS handshake) boxed.
                    // A `proxy_protocol` cluster keeps its connections per client connection, so
                    // a retry reconnects with this client's header too.
                    let mut conn = match cluster.pooled_for(now, &ep, &d.client) {
                        Some(c) => c,
                        None => match Box::pin(cluster.acquire_for(now, &ep, d.client)).await {
                            Ok(c) => c,
                            Err(e) => break 'attempt Err(connect_error(cluster, &ep, e)),
                        },
                    };
                    ctx.endpoint = Some(conn.peer);
                    cluster.begin(&ep);
                    let reused = conn.reused;
                    // A pooled connection came without a wait: `now` is still current.
                    ctx.timings.upstream_sent = Some(if reused { now } else { turn_now() });
                    let (r, buf) =
                        write_upstream(&mut conn.stream, std::mem::take(&mut up_head)).await;
                    up_head = buf;
                    if r.is_err() {
                        undo(cluster, now, conn, !reused);
                        break 'attempt Err(AttemptError::Reset {
                            reused,
                            body_sent: false,
                        });
                    }
                    let body_sent = head.body != BodyKind::Empty;
                    if body_sent {
                        if attempts.body_consumed {
                            // The body went to an earlier attempt and was not kept: this attempt
                            // cannot be made.
                            undo(cluster, now, conn, false);
                            break 'attempt Err(AttemptError::Fatal(ProxyError::new(
                                502,
                                "upstream_reset",
                                Side::Upstream,
                                "upstream failed after the request body was sent",
                            )));
                        }
                        attempts.body_consumed = true;
                        // A body read whole beforehand was shown to the filters then.
                        let shown: &mut [Box<dyn Filter>] =
                            if route.needs.request_body || held_whole {
                                &mut []
                            } else {
                                &mut filters
                            };
                        let sent = match held.as_mut() {
                            Some(up) => Box::pin(crate::hold::send_held_body(
                                route, d, &mut conn, &mut ctx, shown, up,
                            ))
                            .await
                            .map_err(AttemptError::Fatal),
                            None => {
                                Box::pin(send_body(route, d, &mut conn, &mut ctx, shown, head))
                                    .await
                            }
                        };
                        if let Err(e) = sent {
                            undo(cluster, now, conn, false);
                            break 'attempt Err(e);
                        }
                    }
                    // The first-byte timeout counts from the end of the request (the head's write,
                    // or the body's).
                    let sent = match (body_sent, ctx.timings.upstream_sent) {
                        (false, Some(t)) => t,
                        _ => turn_now(),
                    };
                    let first_byte = until(deadline, sent, route.first_byte_timeout);
                    let resp = loop {
                        reserve(&mut ubuf, HEAD_BUF);
                        let len = ubuf.len();
                        let cap = ubuf.capacity();
                        let read = read_upstream(&mut conn.stream, ubuf.slice_mut(len..cap));
                        let Some((r, slice)) = within!(&mut d.timer, first_byte, read) else {
                            // The buffer went with the cancelled read.
                            ubuf = BytesMut::new();
                            undo(cluster, now, conn, true);
                            break 'attempt Err(AttemptError::Timeout { body_sent });
                        };
                        ubuf = slice.into_inner();
                        if !matches!(r, Ok(n) if n > 0) {
                            undo(cluster, now, conn, !reused);
                            break 'attempt Err(AttemptError::Reset { reused, body_sent });
                        }
                        if ctx.timings.upstream_first_byte.is_none() {
                            ctx.timings.upstream_first_byte = Some(turn_now());
                        }
                        match weir_http::parse_response(
                            &mut ubuf,
                            state.max_response_head,
                            head.is_head(),
                        ) {
                            Ok(Some(resp))
                                if (100..200).contains(&resp.status) && resp.status != 101 => {}
                            Ok(Some(resp)) => break resp,
                            Ok(None) => {}
                            Err(e) => {
                                undo(cluster, now, conn, true);
                                break 'attempt Err(AttemptError::Fatal(ProxyError::from_codec(
                                    &e,
                                )));
                            }
                        }
                    };
                    Ok((conn, resp))
                };

                // --- what comes of it: a retry, an answer made here, a tunnel, or the response body
                // (the attempt matched as a temporary, the step consumed whole: see above)
                match attempt {
                    Err(err) => match attempts.after_error(err, route, head, &mut ctx) {
                        AfterError::Again => continue,
                        AfterError::ClientGone => {
                            finish(scope, &mut ctx, &mut filters);
                            break false;
                        }
                        AfterError::Fail(pe) => Step::Fail(pe),
                    },
                    Ok((conn, mut resp)) => {
                        if attempts.retry_status(route, head, resp.status, &mut ctx) {
                            cluster.end(&conn.endpoint, true);
                            cluster.release_at(now, conn, false);
                            continue;
                        }
                        let failed = resp.status >= 500;
                        if let Some(refused) = response_filters(&mut ctx, &mut filters, &mut resp) {
                            cluster.end(&conn.endpoint, failed);
                            cluster.release_at(now, conn, false);
                            Step::Refused(refused)
                        } else if route.needs.response_body
                            && resp.body != BodyKind::Empty
                            && !head.is_head()
                            && !(upgrade && resp.status == 101)
                        {
                            Step::Whole(Box::new(Whole {
                                conn,
                                resp,
                                ubuf: std::mem::take(&mut ubuf),
                                failed,
                                cluster: cluster.clone(),
                            }))
                        } else if route.needs.response_body_hold
                            && !filters.is_empty()
                            && resp.body != BodyKind::Empty
                            && !head.is_head()
                            && resp.status != 304
                            && !(upgrade && resp.status == 101)
                        {
                            Step::Held(Box::new(Whole {
                                conn,
                                resp,
                                ubuf: std::mem::take(&mut ubuf),
                                failed,
                                cluster: cluster.clone(),
                            }))
                        } else {
                            let switching = upgrade && resp.status == 101;
                            let framing = write_response_head(
                                worker, d, &mut ctx, head, &mut resp, switching,
                            );
                            if switching {
                                cluster.end(&conn.endpoint, false);
                                Step::Tunnel(cluster.detach(conn), ubuf)
                            } else {
                                // A de-chunked body (an HTTP/1.0 client) has no trailers to show.
                                let trailers = route.needs.response_trailers && !framing.dechunk;
                                Step::Body(Body {
                                    dec: decoder(resp.body, trailers),
                                    upstream_keep: resp.keep_alive,
                                    framing,
                                    failed,
                                    conn,
                                    ubuf,
                                })
                            }
                        }
                    }
                }
            } {
                Step::Body(b) => b,
                other => break other.answer(scope, d, &mut ctx, &mut filters, head).await,
            };

            // --- the response body, as it comes; small bodies that came with the head go out in
            // the same write
            let mut head_pending = true;
            let mut reads = 0u32;
            let mut bulk = false;
            // The filters saw `end` with the body's last piece (no empty call after it).
            let mut told_end = false;
            let outcome: Result<bool, ProxyError> = loop {
                if !b.ubuf.is_empty() || b.dec.is_done() {
                    let (scan, piece) = match take_piece(
                        &mut told_end,
                        &mut ctx,
                        &mut filters,
                        &mut b.dec,
                        &mut b.ubuf,
                        b.framing.dechunk,
                    ) {
                        Ok(x) => x,
                        Err(e) => break Err(e),
                    };
                    // (One await for every write here: see above.)
                    let small = std::mem::take(&mut head_pending) && piece.len() <= 64 << 10;
                    if small {
                        d.out.extend_from_slice(&piece);
                    }
                    // The connection's last bytes: a TLS client's close_notify goes with them.
                    let last = scan.done && b.framing.close;
                    let wrote = if small {
                        if last {
                            d.writer.last_write_next();
                        }
                        d.write_out().await
                    } else {
                        d.write_out_then(piece, last).await
                    };
                    if wrote.is_err() {
                        break Err(client_gone());
                    }
                    if scan.done {
                        // Bytes past the end of the response: the upstream broke framing; do not
                        // reuse.
                        break Ok(b.ubuf.is_empty());
                    }
                }
                // Need more from the upstream. From the second read on, watch the client: a client
                // that hangs up mid-stream cancels the upstream request at once.
                reads += 1;
                if reads > 1 && !d.reader.is_watching() && d.reader.buf().is_empty() {
                    d.reader.watch();
                }
                // Small reads while the upstream trickles (an SSE stream holds little memory while
                // it waits), large ones once a read fills its buffer (bulk bodies take few
                // syscalls).
                reserve(&mut b.ubuf, if bulk { BODY_READ } else { STREAM_READ });
                let len = b.ubuf.len();
                let cap = b.ubuf.capacity();
                let wait = until(deadline, turn_now(), route.idle_timeout);
                let Downstream { reader, timer, .. } = &mut *d;
                timer.aim(wait);
                let read = read_upstream(&mut b.conn.stream, b.ubuf.slice_mut(len..cap));
                let mut read = std::pin::pin!(read);
                // One await for all: the upstream's read, the deadline, and the client's read (a
                // hang-up, or pipelined bytes, kept for later).
                let got = std::future::poll_fn(|cx| {
                    if let Poll::Ready(r) = read.as_mut().poll(cx) {
                        return Poll::Ready(Some(Some(r)));
                    }
                    if timer.poll_expired(cx).is_ready() {
                        return Poll::Ready(Some(None));
                    }
                    if reader.is_watching() {
                        if let Poll::Ready(w) = reader.poll_settle(cx) {
                            if !matches!(w, Ok(n) if n > 0) {
                                return Poll::Ready(None);
                            }
                        }
                    }
                    Poll::Pending
                })
                .await;
                let Some(Some((r, slice))) = got else {
                    // The buffer went with the cancelled read.
                    b.ubuf = BytesMut::new();
                    break Err(match got {
                        None => ProxyError::new(
                            499,
                            "client_closed",
                            Side::Downstream,
                            "client closed the connection mid-response",
                        ),
                        _ => ProxyError::new(
                            504,
                            "upstream_idle_timeout",
                            Side::Upstream,
                            "the upstream stopped sending",
                        ),
                    });
                };
                b.ubuf = slice.into_inner();
                match r {
                    Ok(0) if b.dec.kind() == BodyKind::UntilClose => {
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
            };
            let (client_keep, upstream_reusable) = match outcome {
                Ok(reusable) => {
                    if !told_end {
                        for f in filters.iter_mut() {
                            let _ = f.on_response_body(&mut ctx, &[], true);
                        }
                    }
                    finish(scope, &mut ctx, &mut filters);
                    (!b.framing.close, reusable && b.upstream_keep)
                }
                Err(e) if head_pending && e.side == Side::Upstream => {
                    // Nothing reached the client yet: a clean error response is still possible.
                    (fail(scope, d, &mut ctx, &mut filters, e, head).await, false)
                }
                Err(e) => {
                    if e.side == Side::Downstream {
                        ctx.status = 499;
                    } else {
                        tracing::warn!(request_id = %ctx.request_id, error = %e, "response aborted mid-stream");
                    }
                    ctx.error = Some(e);
                    finish(scope, &mut ctx, &mut filters);
                    (false, false)
                }
            };
            cluster.end(&b.conn.endpoint, b.failed);
            // The connection went idle when the response ended.
            let idle_since = ctx.timings.end.unwrap_or(now);
            cluster.release_at(idle_since, b.conn, upstream_reusable);
            worker.put_buf(b.ubuf);
            break client_keep && head.keep_alive;
        };
        up_head.clear();
        d.up_out = up_head;
        keep
    }
}

/// What a request turns into once routed and past its request-head filters.
// Not boxed: made once per request, and matched as a temporary.
#[allow(clippy::large_enum_variant)]
enum Next<'r> {
    /// Proxy it on this route to this cluster.
    Proxy(&'r RouteState, &'r Rc<Cluster>),
    /// An AI route.
    Ai(&'r Rc<weir_ai::AiService>),
    /// An answer made here (no route, a filter's, a direct response or redirect), and whether the
    /// connection may be kept.
    Local(LocalResponse, bool),
    /// An error answer.
    Fail(ProxyError),
    /// The request-head filter at this index waits (a plugin's callout): resume it, then run the
    /// filters after it and the route's action.
    Wait(&'r RouteState, usize, Waiting),
}

impl Next<'_> {
    /// The future of everything but a proxied request.
    fn answer<'a>(
        self,
        scope: Scope<'a>,
        d: &'a mut Downstream,
        ctx: &'a mut RequestCtx,
        filters: &'a mut Vec<Box<dyn Filter>>,
        head: &'a mut RequestHead,
    ) -> Answer<'a>
    where
        Self: 'a,
    {
        match self {
            // Boxed: the AI path's future is large, and a plain request should not carry (and
            // copy) its state. It takes the head out of the connection's slot.
            Next::Ai(svc) => Box::pin(crate::ai::serve(
                scope,
                d,
                ctx,
                filters,
                std::mem::take(head),
                svc,
            )),
            Next::Local(resp, keep) => {
                send_local(scope, d, ctx, filters, resp, head.is_head(), keep)
            }
            Next::Fail(e) => fail(scope, d, ctx, filters, e, head),
            Next::Proxy(..) | Next::Wait(..) => Box::pin(std::future::ready(false)),
        }
    }
}

/// Routes the request through its request-head filters and the route's action.
fn route_action<'r>(
    scope: Scope<'r>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &mut RequestHead,
) -> Next<'r> {
    let Some(route) = scope.route else {
        let e = ProxyError::new(
            404,
            "no_route",
            Side::Downstream,
            "no route matches this request",
        );
        ctx.error = Some(e.clone());
        let resp = e.to_response(&ctx.request_id, ctx.error_format);
        return Next::Local(resp, head.keep_alive && !drop_body(d, head));
    };
    route_from(route, 0, d, ctx, filters, head)
}

/// The request-head filters from `start` on, then the route's action.
fn route_from<'r>(
    route: &'r RouteState,
    start: usize,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &mut RequestHead,
) -> Next<'r> {
    for (i, f) in filters.iter_mut().enumerate().skip(start) {
        match f.on_request_headers(ctx, head) {
            Ok(Action::Continue) => {}
            Ok(Action::Respond(resp)) => {
                return Next::Local(resp, head.keep_alive && !drop_body(d, head))
            }
            Ok(Action::Wait(w)) => return Next::Wait(route, i, w),
            Err(e) => return Next::Fail(e),
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
            return Next::Local(e.to_response(&ctx.request_id, ctx.error_format), false);
        }
    }
    match &route.action {
        RouteAction::Direct(resp) => {
            Next::Local(resp.clone(), head.keep_alive && !drop_body(d, head))
        }
        RouteAction::Redirect(rd) => {
            let location = weir_route::redirect_location(rd, head, "http");
            let mut resp = LocalResponse::empty(rd.status);
            resp.headers
                .append(Bytes::from_static(b"location"), Bytes::from(location));
            Next::Local(resp, head.keep_alive && !drop_body(d, head))
        }
        RouteAction::Ai(svc) => Next::Ai(svc),
        RouteAction::Proxy(cluster) => Next::Proxy(route, cluster),
    }
}

/// Awaits what a request-head filter waits on, asks it to resume, then goes on with the filters
/// after it and the route's action (waiting again if one of them does). Only routes with a filter
/// that waits (a Wasm plugin's callout) come here.
async fn wait_then_route<'r>(
    mut at: (&'r RouteState, usize, Waiting),
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &mut RequestHead,
) -> Next<'r> {
    loop {
        let (route, i, w) = at;
        w.0.await;
        let next = match filters.get_mut(i).map(|f| f.on_resume(ctx, head)) {
            Some(Ok(Action::Wait(w))) => Next::Wait(route, i, w),
            Some(Ok(Action::Respond(resp))) => {
                Next::Local(resp, head.keep_alive && !drop_body(d, head))
            }
            Some(Err(e)) => Next::Fail(e),
            Some(Ok(Action::Continue)) | None => route_from(route, i + 1, d, ctx, filters, head),
        };
        match next {
            Next::Wait(r, i, w) => at = (r, i, w),
            other => return other,
        }
    }
}

/// The retry state of one exchange.
struct Attempts {
    /// Endpoints tried by earlier attempts (retries are few: no allocation).
    tried: Tried,
    retries_left: u32,
    fresh_retry_used: bool,
    /// The request body went to an attempt (and cannot be sent again).
    body_consumed: bool,
}

/// What to do after a failed attempt.
enum AfterError {
    /// Try again.
    Again,
    /// The client went away (the context says so): log and close.
    ClientGone,
    /// Answer with this error.
    Fail(ProxyError),
}

impl Attempts {
    fn new(route: &RouteState) -> Self {
        Attempts {
            tried: Tried::default(),
            retries_left: route.retry.as_ref().map_or(0, |r| r.attempts),
            fresh_retry_used: false,
            body_consumed: false,
        }
    }

    /// Takes a retry when the policy has one left and the budget allows it.
    fn take_retry(&mut self, route: &RouteState, ctx: &mut RequestCtx) -> bool {
        let Some(p) = &route.retry else { return false };
        if self.retries_left > 0 && p.budget.try_retry() {
            self.retries_left -= 1;
            ctx.retries += 1;
            weir_metrics::bump(&route.stats.retries, 1);
            true
        } else {
            false
        }
    }

    /// Whether the request can be sent again (and was not consumed by an attempt).
    fn resendable(&self, head: &RequestHead) -> bool {
        (head.is_idempotent() || head.body == BodyKind::Empty) && !self.body_consumed
    }

    fn after_error(
        &mut self,
        err: AttemptError,
        route: &RouteState,
        head: &RequestHead,
        ctx: &mut RequestCtx,
    ) -> AfterError {
        let idempotent_ok = self.resendable(head);
        let policy = route.retry.as_ref();
        let (pe, retry) = match err {
            AttemptError::ClientGone => {
                ctx.status = 499;
                ctx.error = Some(client_gone());
                return AfterError::ClientGone;
            }
            AttemptError::Connect(pe) => {
                let r = policy.is_some_and(|p| p.connect_failure);
                (pe, r)
            }
            AttemptError::Reset { reused, body_sent } => {
                // A pooled connection the upstream had closed: one free retry on a new one.
                if reused && !body_sent && idempotent_ok && !self.fresh_retry_used {
                    self.fresh_retry_used = true;
                    self.tried.pop();
                    return AfterError::Again;
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
        if retry && self.take_retry(route, ctx) {
            return AfterError::Again;
        }
        AfterError::Fail(pe)
    }

    /// Retry on a status, when the policy asks and the request can be sent again.
    fn retry_status(
        &mut self,
        route: &RouteState,
        head: &RequestHead,
        status: u16,
        ctx: &mut RequestCtx,
    ) -> bool {
        route
            .retry
            .as_ref()
            .is_some_and(|p| p.statuses.contains(&status))
            && self.resendable(head)
            && self.take_retry(route, ctx)
    }
}

/// An attempt's response, from its head on.
enum Step {
    /// The response body follows (its head is written into the connection's buffer).
    Body(Body),
    /// Answer with this error instead.
    Fail(ProxyError),
    /// A filter refused the response: answer with this instead.
    Refused(Result<LocalResponse, ProxyError>),
    /// `101 Switching Protocols` (its head in the connection's buffer): tunnel from now on, with
    /// these bytes from the upstream.
    Tunnel(weir_upstream::MaybeTls, BytesMut),
    /// A filter rewrites the response body: read it whole, then answer.
    Whole(Box<Whole>),
    /// A filter may hold the response body's pieces back: stream it through the chain.
    Held(Box<Whole>),
}

/// A response to be read whole before anything goes downstream.
pub(crate) struct Whole {
    pub(crate) conn: UpstreamConn,
    pub(crate) resp: ResponseHead,
    pub(crate) ubuf: BytesMut,
    pub(crate) failed: bool,
    pub(crate) cluster: Rc<Cluster>,
}

impl Step {
    /// The future of everything but a body: whether the client connection may be kept.
    fn answer<'a>(
        self,
        scope: Scope<'a>,
        d: &'a mut Downstream,
        ctx: &'a mut RequestCtx,
        filters: &'a mut [Box<dyn Filter>],
        head: &'a RequestHead,
    ) -> Answer<'a> {
        match self {
            Step::Fail(pe) => fail(scope, d, ctx, filters, pe, head),
            Step::Refused(refused) => {
                let answer = answer_refused(scope, d, ctx, filters, head, refused);
                Box::pin(async move { answer.await && head.keep_alive })
            }
            Step::Tunnel(stream, ubuf) => Box::pin(async move {
                tunnel(d, stream, ubuf).await;
                finish(scope, ctx, filters);
                false
            }),
            Step::Whole(w) => Box::pin(whole_response(scope, d, ctx, filters, head, w)),
            Step::Held(w) => Box::pin(crate::hold::held_response(scope, d, ctx, filters, head, w)),
            Step::Body(_) => Box::pin(std::future::ready(false)),
        }
    }
}

/// A response whose body is on its way.
struct Body {
    dec: BodyDecoder,
    upstream_keep: bool,
    framing: Framing,
    failed: bool,
    conn: UpstreamConn,
    ubuf: BytesMut,
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

/// The future of an answer made by the gateway. Boxed: answers are off the hot path, and keeping
/// their state out of the request path's own futures keeps those small (a future is copied each
/// time it nests in another).
pub type Answer<'a> = Pin<Box<dyn Future<Output = bool> + 'a>>;

/// Ends a request with an error response.
pub(crate) fn fail<'a>(
    scope: Scope<'a>,
    d: &'a mut Downstream,
    ctx: &'a mut RequestCtx,
    filters: &'a mut [Box<dyn Filter>],
    e: ProxyError,
    head: &RequestHead,
) -> Answer<'a> {
    if e.side != Side::Downstream {
        tracing::warn!(request_id = %ctx.request_id, route = ?ctx.route.as_deref(), error = %e, "request failed");
    }
    let resp = e.to_response(&ctx.request_id, ctx.error_format);
    ctx.error = Some(e);
    send_local(scope, d, ctx, filters, resp, head.is_head(), false)
}

/// Sends a response made by the gateway, then logs. Returns whether the connection stays open.
pub fn send_local<'a>(
    scope: Scope<'a>,
    d: &'a mut Downstream,
    ctx: &'a mut RequestCtx,
    filters: &'a mut [Box<dyn Filter>],
    resp: LocalResponse,
    head_request: bool,
    keep_alive: bool,
) -> Answer<'a> {
    Box::pin(send_local_now(
        scope,
        d,
        ctx,
        filters,
        resp,
        head_request,
        keep_alive,
    ))
}

async fn send_local_now(
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
    let ok = if close {
        d.write_out_last().await
    } else {
        d.write_out().await
    }
    .is_ok();
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
    let now = turn_now();
    ctx.timings.end = Some(now);
    worker.last_end.set(now);
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

/// An attempt's connection goes back unused (closed).
fn undo(cluster: &Cluster, now: Instant, conn: UpstreamConn, failed: bool) {
    cluster.end(&conn.endpoint, failed);
    cluster.release_at(now, conn, false);
}

/// A connection to the endpoint could not be had.
fn connect_error(
    cluster: &Cluster,
    ep: &weir_upstream::Endpoint,
    e: weir_upstream::Error,
) -> AttemptError {
    cluster.outcome(ep, true);
    let (status, kind) = match &e {
        weir_upstream::Error::ConnectTimeout(_) => (504, "upstream_connect_timeout"),
        weir_upstream::Error::Overflow(_) => (503, "upstream_overflow"),
        _ => (502, "upstream_connect_failed"),
    };
    AttemptError::Connect(ProxyError::new(status, kind, Side::Upstream, e.to_string()).retryable())
}

/// The response-head phase of the filters: `Some` when one refused the response (with what to
/// answer instead, or the error).
fn response_filters(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    resp: &mut ResponseHead,
) -> Option<Result<LocalResponse, ProxyError>> {
    for f in filters.iter_mut() {
        match f.on_response_headers(ctx, resp) {
            // A response head cannot wait (see `Action::Wait`).
            Ok(Action::Continue) | Ok(Action::Wait(_)) => {}
            Ok(Action::Respond(r)) => return Some(Ok(r)),
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Answers in place of a response a filter refused.
fn answer_refused<'a>(
    scope: Scope<'a>,
    d: &'a mut Downstream,
    ctx: &'a mut RequestCtx,
    filters: &'a mut [Box<dyn Filter>],
    head: &RequestHead,
    refused: Result<LocalResponse, ProxyError>,
) -> Answer<'a> {
    match refused {
        Ok(r) => send_local(scope, d, ctx, filters, r, head.is_head(), false),
        Err(e) => fail(scope, d, ctx, filters, e, head),
    }
}

/// How the response head written downstream frames the body.
pub(crate) struct Framing {
    /// An HTTP/1.0 client gets a chunked body de-chunked.
    pub(crate) dechunk: bool,
    /// The client connection closes after this response.
    pub(crate) close: bool,
}

/// Writes the response head for the client into `d.out`.
pub(crate) fn write_response_head(
    worker: &Worker,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    head: &RequestHead,
    resp: &mut ResponseHead,
    switching: bool,
) -> Framing {
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
    Framing { dechunk, close }
}

/// Takes the next piece of the response body out of `ubuf` (what the decoder says is framed body,
/// de-chunked for an HTTP/1.0 client), showing its payload to the filters. When the piece surely
/// ends a length-delimited body, the filters see it with `end` and `told_end` is set (as a
/// Proxy-Wasm host passes `end_of_stream` with the last data: one plugin call, not two).
fn take_piece(
    told_end: &mut bool,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    dec: &mut BodyDecoder,
    ubuf: &mut BytesMut,
    dechunk: bool,
) -> Result<(weir_http::Scan, BytesMut), ProxyError> {
    let mut filter_err = None;
    let mut payload = dechunk.then(BytesMut::new);
    let kept = dec.trailer_len();
    let last = dec.ends_within(ubuf.len());
    let scan = dec
        .scan(ubuf, |r| {
            if let Some(p) = payload.as_mut() {
                p.extend_from_slice(&ubuf[r.clone()]);
            }
            *told_end |= last;
            for f in filters.iter_mut() {
                if let Err(e) = f.on_response_body(ctx, &ubuf[r.clone()], last) {
                    filter_err.get_or_insert(e);
                }
            }
        })
        .map_err(|e| ProxyError::new(502, "upstream_bad_body", Side::Upstream, e.to_string()))?;
    if let Some(e) = filter_err {
        return Err(e);
    }
    ctx.response_bytes = dec.payload_bytes();
    let mut framed = ubuf.split_to(scan.consumed);
    if dec.keeps_trailers() {
        // The trailer section is held back, and written anew at the end (see `trailers`).
        framed.truncate(framed.len() - (dec.trailer_len() - kept));
        if scan.done {
            let section = crate::trailers::response_section(ctx, filters, dec.take_trailers())?;
            framed.extend_from_slice(&section);
        }
    }
    Ok((scan, payload.unwrap_or(framed)))
}

/// A body decoder that keeps the trailer section when the route's filters read trailers.
pub(crate) fn decoder(kind: BodyKind, trailers: bool) -> BodyDecoder {
    let mut dec = BodyDecoder::new(kind);
    if trailers {
        dec.keep_trailers();
    }
    dec
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

/// Adds `x-request-id` to a response head already written into `out` (before its final CRLF).
fn push_request_id(out: &mut Vec<u8>, id: &str) {
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The fields Weir writes itself on the way upstream (from what the client sent, where they
/// append to it): `X-Forwarded-For` (1), `Via` (2), `X-Forwarded-Proto` and `X-Request-Id` (3).
fn forwarding_field(name: &[u8]) -> u8 {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        15 if is(b"x-forwarded-for") => 1,
        3 if is(b"via") => 2,
        12 if is(b"x-request-id") => 3,
        17 if is(b"x-forwarded-proto") => 3,
        _ => 0,
    }
}

/// Writes the head sent upstream: the client's end-to-end fields, then the forwarding fields
/// (`X-Forwarded-For` appended to, `X-Forwarded-Proto`, `Via` appended to, `X-Request-Id`) and the
/// upgrade fields, written straight into the buffer rather than stored as fields. On a TLS
/// listener that forwards client certificates, `cert_header` (lower case) carries the verified
/// subject, and whatever the client sent under that name is dropped.
fn write_upstream_head(
    out: &mut Vec<u8>,
    head: &RequestHead,
    peer_ip: &str,
    ctx: &RequestCtx,
    cert_header: Option<&str>,
) {
    // Every earlier value of a list field, in order, then ours.
    fn append_to(out: &mut Vec<u8>, head: &RequestHead, field: u8, ours: &[u8]) {
        for (n, v) in head.headers.fields() {
            if forwarding_field(n) == field {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(ours);
    }
    let mut seen = [false; 4];
    out.clear();
    weir_http::write_request_head_except(
        out,
        &head.method,
        &head.target,
        &head.headers,
        head.body,
        |n| {
            let f = forwarding_field(n);
            seen[f as usize] = true;
            f != 0 || cert_header.is_some_and(|h| n.eq_ignore_ascii_case(h.as_bytes()))
        },
    );
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"x-forwarded-for: ");
    if seen[1] {
        append_to(out, head, 1, peer_ip.as_bytes());
    } else {
        out.extend_from_slice(peer_ip.as_bytes());
    }
    out.extend_from_slice(if ctx.tls.is_some() {
        b"\r\nx-forwarded-proto: https\r\nvia: "
    } else {
        b"\r\nx-forwarded-proto: http\r\nvia: "
    });
    if seen[2] {
        append_to(out, head, 2, b"1.1 weir");
    } else {
        out.extend_from_slice(b"1.1 weir");
    }
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(ctx.request_id.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let (Some(h), Some(cert)) = (
        cert_header,
        ctx.tls.as_ref().and_then(|t| t.client_cert.as_ref()),
    ) {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(cert.subject.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(proto) = &head.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        out.extend_from_slice(proto);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn hash_key(on: Option<&HashOn>, head: &RequestHead, d: &Downstream) -> Option<Vec<u8>> {
    match on? {
        HashOn::Header(h) => head.headers.value(h).map(<[u8]>::to_vec),
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

/// `from + d`, or the request's total deadline if that comes first.
fn until(deadline: Option<Instant>, from: Instant, d: Duration) -> Instant {
    let t = after(from, d);
    deadline.map_or(t, |dl| t.min(dl))
}

/// Shows a piece of the request body to each filter's `on_request_body` until one answers other
/// than `Continue` (a streamed piece cannot wait: `Wait` counts as `Continue`); that answer.
pub(crate) fn body_piece_verdict(
    filters: &mut [Box<dyn Filter>],
    ctx: &mut RequestCtx,
    piece: &[u8],
) -> Option<Result<Action, ProxyError>> {
    for f in filters.iter_mut() {
        match f.on_request_body(ctx, piece, false) {
            Ok(Action::Continue) | Ok(Action::Wait(_)) => {}
            other => return Some(other),
        }
    }
    None
}

/// A filter's answer that stops a streamed upload, as the error that answers the request.
pub(crate) fn refused_body(verdict: Result<Action, ProxyError>) -> ProxyError {
    match verdict {
        Err(e) => e,
        Ok(Action::Respond(r)) => ProxyError::new(
            r.status,
            "filter_refused_body",
            Side::Downstream,
            String::from_utf8_lossy(&r.body).into_owned(),
        ),
        Ok(Action::Continue) | Ok(Action::Wait(_)) => {
            ProxyError::new(500, "internal", Side::Internal, "filter verdict lost")
        }
    }
}

/// The body's limit on a route, passed.
pub(crate) fn body_too_large(route: &RouteState) -> ProxyError {
    ProxyError::new(
        413,
        "body_too_large",
        Side::Downstream,
        format!("request body is over the limit of {} bytes", route.max_body),
    )
}

/// One pass of the body decoder over the client's buffer for a body read whole: each payload
/// piece is added to `body` and shown to the filters' `on_request_body` until one answers other
/// than `Continue` (a streamed chunk cannot wait: `Wait` counts as `Continue`). The scan, and that
/// answer.
pub(crate) fn scan_whole(
    dec: &mut BodyDecoder,
    buf: &[u8],
    body: &mut BytesMut,
    filters: &mut [Box<dyn Filter>],
    ctx: &mut RequestCtx,
) -> Result<(weir_http::Scan, Option<Result<Action, ProxyError>>), ProxyError> {
    let mut verdict: Option<Result<Action, ProxyError>> = None;
    let scan = dec
        .scan(buf, |r| {
            body.extend_from_slice(&buf[r.clone()]);
            if verdict.is_none() {
                verdict = body_piece_verdict(filters, ctx, &buf[r]);
            }
        })
        .map_err(|e| ProxyError::from_codec(&e))?;
    Ok((scan, verdict))
}

/// `on_request_body_whole` of each filter in order, awaiting a filter that waits (a callout) and
/// asking it again with `on_resume`. `Some` is a filter's answer.
pub(crate) async fn whole_body_phase(
    filters: &mut [Box<dyn Filter>],
    ctx: &mut RequestCtx,
    body: &mut BytesMut,
    head: &mut RequestHead,
) -> Result<Option<LocalResponse>, ProxyError> {
    for f in filters.iter_mut() {
        let mut act = f.on_request_body_whole(ctx, body)?;
        loop {
            match act {
                Action::Continue => break,
                Action::Respond(r) => return Ok(Some(r)),
                Action::Wait(w) => {
                    w.0.await;
                    act = f.on_resume(ctx, head)?;
                }
            }
        }
    }
    Ok(None)
}

/// Largest response body read whole for a filter that rewrites it.
const MAX_WHOLE_RESPONSE: usize = 16 << 20;

/// Reads the request body whole for the filters that rewrite it (`Needs::request_body`): every
/// filter sees its chunks, then `on_request_body_whole` runs in order (a filter may wait on a
/// callout there). The result is put back in front of the client's buffer as a content-length
/// body, which `send_body` then sends as it would any body. `Some` is a filter's answer.
async fn buffer_request(
    route: &RouteState,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &mut RequestHead,
) -> Result<Option<LocalResponse>, ProxyError> {
    if head.expect_continue && d.reader.buf().is_empty() {
        d.out.clear();
        d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if d.write_out().await.is_err() {
            return Err(client_gone());
        }
    }
    let mut dec = decoder(head.body, route.needs.request_trailers);
    let mut body = BytesMut::new();
    loop {
        if !d.reader.buf().is_empty() {
            let (scan, verdict) = scan_whole(&mut dec, d.reader.buf(), &mut body, filters, ctx)?;
            ctx.request_bytes = dec.payload_bytes();
            match verdict {
                Some(Err(e)) => return Err(e),
                Some(Ok(Action::Respond(r))) => return Ok(Some(r)),
                _ => {}
            }
            if dec.payload_bytes() > route.max_body {
                return Err(body_too_large(route));
            }
            let _ = d.reader.buf().split_to(scan.consumed);
            if scan.done {
                break;
            }
        }
        let idle = after(turn_now(), route.idle_timeout);
        match within!(&mut d.timer, idle, d.reader.fill(BODY_READ)) {
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return Err(client_gone()),
            None => {
                return Err(ProxyError::new(
                    408,
                    "request_body_timeout",
                    Side::Downstream,
                    "the request body stopped arriving",
                ))
            }
        }
    }
    // Trailers, on routes whose filters read them: nothing went upstream yet, so a filter's
    // answer is sent as it is.
    let mut trailers = None;
    if dec.keeps_trailers() {
        let section = dec.take_trailers();
        if section != b"\r\n" {
            let mut t = weir_http::parse_trailers(Bytes::from(section))
                .map_err(|e| ProxyError::from_codec(&e))?;
            match crate::trailers::request_phase(ctx, filters, &mut t) {
                Some(Ok(Action::Respond(r))) => return Ok(Some(r)),
                Some(Err(e)) => return Err(e),
                _ => {}
            }
            trailers = Some(crate::trailers::section_of(ctx, &t));
        }
    }
    for f in filters.iter_mut() {
        if let Action::Respond(r) = f.on_request_body(ctx, &[], true)? {
            return Ok(Some(r));
        }
    }
    if let Some(r) = whole_body_phase(filters, ctx, &mut body, head).await? {
        return Ok(Some(r));
    }
    match trailers.filter(|t| t != b"\r\n") {
        // Trailers left: the body goes as one chunk, then the trailer section.
        Some(section) => {
            head.body = BodyKind::Chunked;
            let mut framed = BytesMut::with_capacity(body.len() + section.len() + 32);
            if !body.is_empty() {
                let mut size = Vec::with_capacity(16);
                weir_http::write_chunk_header(&mut size, body.len());
                framed.extend_from_slice(&size);
                framed.extend_from_slice(&body);
                framed.extend_from_slice(b"\r\n");
            }
            framed.extend_from_slice(b"0\r\n");
            framed.extend_from_slice(&section);
            body = framed;
        }
        None => head.body = BodyKind::Length(body.len() as u64),
    }
    head.expect_continue = false;
    let rest = d.reader.buf().split();
    body.extend_from_slice(&rest);
    *d.reader.buf() = body;
    Ok(None)
}

/// The error of a request whose client closed the connection.
pub(crate) fn client_gone() -> ProxyError {
    ProxyError::new(
        499,
        "client_closed",
        Side::Downstream,
        "client closed the connection",
    )
}

/// Reads a response whole for the filters that rewrite it (`Needs::response_body`), then sends
/// the (maybe rewritten) head and body with a content length; whether the client connection stays.
async fn whole_response(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
    w: Box<Whole>,
) -> bool {
    let Whole {
        mut conn,
        mut resp,
        mut ubuf,
        failed,
        cluster,
    } = *w;
    let idle = scope
        .route
        .map_or(Duration::from_secs(60), |r| r.idle_timeout);
    // Trailers are kept for the filters that read them, unless the client cannot take them.
    let trailers_read = scope.route.is_some_and(|r| r.needs.response_trailers)
        && head.version == Version::Http11
        && !head.is_head();
    let mut dec = decoder(resp.body, trailers_read);
    let mut body = BytesMut::new();
    let mut reads = 0;
    let read: Result<bool, ProxyError> = loop {
        let scan = match dec.scan(&ubuf, |r| body.extend_from_slice(&ubuf[r])) {
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
        let _ = ubuf.split_to(scan.consumed);
        if scan.done {
            break Ok(ubuf.is_empty());
        }
        if body.len() > MAX_WHOLE_RESPONSE {
            break Err(ProxyError::new(
                502,
                "upstream_body_too_large",
                Side::Upstream,
                format!(
                    "a response read whole for a filter is limited to {MAX_WHOLE_RESPONSE} bytes"
                ),
            ));
        }
        match read_more(
            &mut conn,
            &mut ubuf,
            idle,
            dec.kind(),
            &mut d.reader,
            &mut reads,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => break Ok(false),
            Err(e) => break Err(e),
        }
    };
    let reusable = matches!(read, Ok(true)) && resp.keep_alive;
    cluster.end(&conn.endpoint, failed || read.is_err());
    cluster.release_at(Instant::now(), conn, reusable);
    if let Err(e) = read {
        return fail(scope, d, ctx, filters, e, head).await;
    }
    ctx.response_bytes = dec.payload_bytes();
    let mut verdict = Ok(Action::Continue);
    for f in filters.iter_mut() {
        if let Err(e) = f.on_response_body(ctx, &body, false) {
            verdict = Err(e);
            break;
        }
    }
    // Nothing went downstream yet: the trailer phase runs before the whole-body one, and its
    // error is answered cleanly.
    let mut trailers = Vec::new();
    if verdict.is_ok() && dec.keeps_trailers() {
        match crate::trailers::response_section(ctx, filters, dec.take_trailers()) {
            Ok(section) => trailers = section,
            Err(e) => verdict = Err(e),
        }
    }
    if verdict.is_ok() {
        for f in filters.iter_mut() {
            verdict = f.on_response_body_whole(ctx, &mut resp, &mut body);
            if !matches!(verdict, Ok(Action::Continue) | Ok(Action::Wait(_))) {
                break;
            }
        }
    }
    match verdict {
        Err(e) => return fail(scope, d, ctx, filters, e, head).await,
        Ok(Action::Respond(r)) => {
            return send_local(scope, d, ctx, filters, r, head.is_head(), false).await
        }
        Ok(_) => {}
    }
    if trailers.len() > 2 {
        // Trailers left: the body goes as one chunk, then the trailer section.
        resp.body = BodyKind::Chunked;
        let framing = write_response_head(scope.worker, d, ctx, head, &mut resp, false);
        if !body.is_empty() {
            weir_http::write_chunk_header(&mut d.out, body.len());
            d.out.extend_from_slice(&body);
            d.out.extend_from_slice(b"\r\n");
        }
        d.out.extend_from_slice(b"0\r\n");
        d.out.extend_from_slice(&trailers);
        return sent_whole(scope, d, ctx, filters, head, framing).await;
    }
    resp.body = BodyKind::Length(body.len() as u64);
    let framing = write_response_head(scope.worker, d, ctx, head, &mut resp, false);
    d.out.extend_from_slice(&body);
    sent_whole(scope, d, ctx, filters, head, framing).await
}

/// One more read of an upstream body into `ubuf` for the whole and held response paths: `true`
/// when bytes came, `false` at the end of a close-delimited body. From the second read of a body
/// on (`reads`), the client is watched as on the streaming path: one that hangs up while the
/// upstream is quiet ends the exchange at once (`client_closed`), bytes it sends are kept.
pub(crate) async fn read_more(
    conn: &mut UpstreamConn,
    ubuf: &mut BytesMut,
    idle: Duration,
    kind: BodyKind,
    client: &mut crate::io::ClientReader,
    reads: &mut u32,
) -> Result<bool, ProxyError> {
    *reads += 1;
    if *reads > 1 && !client.is_watching() && client.buf().is_empty() {
        client.watch();
    }
    reserve(ubuf, BODY_READ);
    let len = ubuf.len();
    let cap = ubuf.capacity();
    let read = read_upstream(&mut conn.stream, std::mem::take(ubuf).slice_mut(len..cap));
    let mut read = std::pin::pin!(read);
    let mut quiet = std::pin::pin!(monoio::time::sleep(idle));
    let got = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = read.as_mut().poll(cx) {
            return Poll::Ready(Ok(r));
        }
        if quiet.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(ProxyError::new(
                504,
                "upstream_idle_timeout",
                Side::Upstream,
                "the upstream stopped sending",
            )));
        }
        if client.is_watching() {
            if let Poll::Ready(w) = client.poll_settle(cx) {
                if !matches!(w, Ok(n) if n > 0) {
                    return Poll::Ready(Err(ProxyError::new(
                        499,
                        "client_closed",
                        Side::Downstream,
                        "client closed the connection mid-response",
                    )));
                }
            }
        }
        Poll::Pending
    })
    .await;
    // (On an error the buffer went with the cancelled read; the exchange ends.)
    let (r, slice) = got?;
    *ubuf = slice.into_inner();
    match r {
        Ok(0) if kind == BodyKind::UntilClose => Ok(false),
        Ok(0) | Err(_) => Err(ProxyError::new(
            502,
            "upstream_reset",
            Side::Upstream,
            "upstream closed mid-response",
        )),
        Ok(_) => Ok(true),
    }
}

/// Writes a whole response made in `d.out`, then ends the request; whether the client
/// connection stays.
async fn sent_whole(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
    framing: Framing,
) -> bool {
    let ok = if framing.close || !head.keep_alive {
        d.write_out_last().await
    } else {
        d.write_out().await
    }
    .is_ok();
    if !ok {
        ctx.status = 499;
    }
    for f in filters.iter_mut() {
        let _ = f.on_response_body(ctx, &[], true);
    }
    finish(scope, ctx, filters);
    ok && !framing.close && head.keep_alive
}

/// Streams the request body from the client to the upstream as it arrives (after `100 Continue`
/// when the client waits for it).
async fn send_body(
    route: &RouteState,
    d: &mut Downstream,
    conn: &mut UpstreamConn,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
) -> Result<(), AttemptError> {
    if head.expect_continue && d.reader.buf().is_empty() {
        d.out.clear();
        d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if d.write_out().await.is_err() {
            return Err(AttemptError::ClientGone);
        }
    }
    // (A body read whole beforehand comes with no filters to show: its trailers were shown then.)
    let mut dec = decoder(
        head.body,
        route.needs.request_trailers && !filters.is_empty(),
    );
    loop {
        // (A body a filter emptied is `Length(0)`: done without a read.)
        if !d.reader.buf().is_empty() || dec.is_done() {
            let mut verdict: Option<Result<Action, ProxyError>> = None;
            let kept = dec.trailer_len();
            let buf = d.reader.buf();
            let scan = dec
                .scan(buf, |r| {
                    if verdict.is_none() {
                        verdict = body_piece_verdict(filters, ctx, &buf[r]);
                    }
                })
                .map_err(|e| AttemptError::Fatal(ProxyError::from_codec(&e)))?;
            ctx.request_bytes = dec.payload_bytes();
            if let Some(v) = verdict {
                return Err(AttemptError::Fatal(refused_body(v)));
            }
            if dec.payload_bytes() > route.max_body {
                return Err(AttemptError::Fatal(body_too_large(route)));
            }
            let mut piece = d.reader.buf().split_to(scan.consumed);
            if dec.keeps_trailers() {
                // The trailer section is held back, and written anew at the end (see `trailers`):
                // the upstream sees no end of the body before the filters had their say.
                piece.truncate(piece.len() - (dec.trailer_len() - kept));
                if scan.done {
                    match crate::trailers::request_section(ctx, filters, dec.take_trailers()) {
                        Ok(section) => piece.extend_from_slice(&section),
                        Err(e) => return Err(AttemptError::Fatal(e)),
                    }
                }
            }
            let piece = piece.freeze();
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
        let idle = after(turn_now(), route.idle_timeout);
        match within!(&mut d.timer, idle, d.reader.fill(BODY_READ)) {
            Some(Ok(n)) if n > 0 => {}
            Some(_) => return Err(AttemptError::ClientGone),
            None => {
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

/// After `101 Switching Protocols`: bytes both ways until either side closes.
/// The `101` head (in `d.out`) goes first.
async fn tunnel(d: &mut Downstream, stream: weir_upstream::MaybeTls, ubuf: BytesMut) {
    use monoio::io::AsyncWriteRent;
    if d.write_out().await.is_err() {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits() {
        for x in [0u32, 1, 9, 10, 15, 0x1234_abcd, 0xdead_beef, u32::MAX] {
            let got = hex8(x).to_be_bytes();
            assert_eq!(std::str::from_utf8(&got).unwrap(), format!("{x:08x}"));
        }
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
