//! Body pieces held back at run time, on routes whose chain may hold them
//! (`Needs::request_body_hold` / `response_body_hold`: a Proxy-Wasm plugin with a body callback
//! and no `buffer` setting, whose callback may answer `StopIterationAndBuffer`).
//!
//! There the body's payload passes through the filters as owned pieces ([`Stages`]): each filter
//! is shown what it holds with the new piece after it, may rewrite it, and holds it or passes
//! it to the next. What comes out of the last filter is what is sent. The head waits until
//! something came out (or the body ended), so its framing can say what is really sent:
//!
//! - the body ended inside the chain: a content length of what came out (chunked when trailers
//!   are left to send);
//! - the lengths are unchanged so far and the body had a length: that length (a filter that
//!   changes a length later aborts the exchange: the head already announced it);
//! - otherwise chunked (towards an HTTP/1.0 client, until the connection closes).
//!
//! What comes out after the head is framed anew ([`Reframe`]), and a chunked body's trailer
//! section is written after its last chunk (as received, or as the trailer filters left it).
//! The plain streaming path of other routes never comes here.

use std::future::Future;
use std::time::Instant;

use bytes::BytesMut;
use monoio::io::AsyncWriteRentExt;
use weir_filter::{Action, Filter, Flow, LocalResponse, ProxyError, RequestCtx, Side};
use weir_http::{BodyDecoder, BodyKind, RequestHead, ResponseHead, Version};
use weir_upstream::UpstreamConn;

use crate::conn::Downstream;
use crate::forward::{
    body_too_large, client_gone, decoder, fail, finish, read_more, send_local, write_response_head,
    Scope, Whole,
};
use crate::io::{after, within, BODY_READ};
use crate::state::RouteState;

/// Which body the pieces are of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
}

/// Which body a piece is of, with its head while that still waits (nothing of the body has gone
/// on yet): the filters' body callbacks may edit it then ([`Filter::on_request_body_held`]).
pub(crate) enum BodyHead<'h> {
    Request(Option<&'h mut RequestHead>),
    Response(Option<&'h mut ResponseHead>),
}

/// What a piece pushed through the chain gave.
pub(crate) enum Out {
    /// What came out of the last filter (empty while one holds).
    Bytes(BytesMut),
    /// A filter answered instead (boxed: off the usual path).
    Respond(Box<LocalResponse>),
}

/// The filters' held bytes: `Some` for a filter that holds (what it holds). (A route's few
/// filters fit inline: no allocation per body.)
pub(crate) struct Stages {
    held: smallvec::SmallVec<[Option<BytesMut>; 4]>,
}

impl Stages {
    pub(crate) fn new(filters: usize) -> Self {
        Stages {
            held: (0..filters).map(|_| None).collect(),
        }
    }

    /// Passes `piece` (payload; `end`: the body ends with it) through the filters in order.
    pub(crate) fn push(
        &mut self,
        body: BodyHead<'_>,
        filters: &mut [Box<dyn Filter>],
        ctx: &mut RequestCtx,
        piece: BytesMut,
        end: bool,
    ) -> Result<Out, ProxyError> {
        self.run(body, filters, ctx, piece, end, None)
    }

    /// Tells the body's end only to the filters that may hold pieces (`holds[i]`), the others
    /// passing what comes to them untold: the AI path tells those the end once the model is read
    /// from what came out.
    pub(crate) fn end_holding(
        &mut self,
        body: BodyHead<'_>,
        filters: &mut [Box<dyn Filter>],
        ctx: &mut RequestCtx,
        holds: &[bool],
    ) -> Result<Out, ProxyError> {
        self.run(body, filters, ctx, BytesMut::new(), true, Some(holds))
    }

    fn run(
        &mut self,
        mut body: BodyHead<'_>,
        filters: &mut [Box<dyn Filter>],
        ctx: &mut RequestCtx,
        piece: BytesMut,
        end: bool,
        only: Option<&[bool]>,
    ) -> Result<Out, ProxyError> {
        let mut input = piece;
        for (i, (f, slot)) in filters.iter_mut().zip(self.held.iter_mut()).enumerate() {
            if only.is_some_and(|o| !o.get(i).copied().unwrap_or(false)) {
                continue;
            }
            let mut shown = match slot.take() {
                Some(mut h) if !h.is_empty() => {
                    h.extend_from_slice(&input);
                    h
                }
                // Nothing new to show, and not the end: the filters after see nothing either.
                _ if input.is_empty() && !end => return Ok(Out::Bytes(input)),
                _ => input,
            };
            let flow = match &mut body {
                BodyHead::Request(h) => {
                    f.on_request_body_held(ctx, &mut shown, end, h.as_deref_mut())?
                }
                BodyHead::Response(h) => {
                    f.on_response_body_held(ctx, &mut shown, end, h.as_deref_mut())?
                }
            };
            match flow {
                Flow::Hold if !end => {
                    *slot = Some(shown);
                    return Ok(Out::Bytes(BytesMut::new()));
                }
                // At the end a hold passes: nothing more will come.
                Flow::Hold | Flow::Pass => input = shown,
                Flow::Respond(r) => return Ok(Out::Respond(Box::new(r))),
            }
        }
        Ok(Out::Bytes(input))
    }
}

/// The framing of a body whose head waited for the chain's first output: `declared` is the
/// received framing, `done` whether the whole body came out (`sent` bytes), `same` whether
/// every byte so far came out as many as went in, `trailers` whether a trailer section is left
/// to send.
pub(crate) fn framing(
    declared: BodyKind,
    done: bool,
    sent: u64,
    same: bool,
    trailers: bool,
) -> BodyKind {
    match declared {
        _ if done && !trailers => BodyKind::Length(sent),
        BodyKind::Length(_) if same => declared,
        _ => BodyKind::Chunked,
    }
}

/// Frames what comes out of the chain after the head, as the head said.
pub(crate) struct Reframe {
    kind: BodyKind,
    sent: u64,
}

impl Reframe {
    /// `kind`: the framing the head announced (`UntilClose` for a de-chunked body).
    pub(crate) fn new(kind: BodyKind) -> Self {
        Reframe { kind, sent: 0 }
    }

    /// Appends `data`, framed, to `out`. A length-delimited body may not get longer than its
    /// head said.
    pub(crate) fn frame(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ProxyError> {
        if data.is_empty() {
            return Ok(());
        }
        self.sent += data.len() as u64;
        match self.kind {
            BodyKind::Chunked => {
                weir_http::write_chunk_header(out, data.len());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            BodyKind::Length(n) if self.sent > n => return Err(length_changed(n, self.sent)),
            _ => out.extend_from_slice(data),
        }
        Ok(())
    }

    /// The body's end: the last chunk and the trailer section (`\r\n` when none), or the check
    /// that a length-delimited body is as long as its head said.
    pub(crate) fn end(&mut self, out: &mut Vec<u8>, section: &[u8]) -> Result<(), ProxyError> {
        match self.kind {
            BodyKind::Chunked => {
                out.extend_from_slice(b"0\r\n");
                out.extend_from_slice(if section.is_empty() { b"\r\n" } else { section });
            }
            BodyKind::Length(n) if self.sent != n => return Err(length_changed(n, self.sent)),
            _ => {}
        }
        Ok(())
    }
}

fn length_changed(announced: u64, sent: u64) -> ProxyError {
    ProxyError::new(
        502,
        "filter_changed_length",
        Side::Plugin,
        format!(
            "a filter changed the body's length after its head announced {announced} bytes \
             (now {sent}+); hold the body from its first piece to rewrite it"
        ),
    )
}

/// The trailer section to send at a kept chunked body's end: as the trailer filters left it on
/// routes that read trailers, else as received.
fn section(
    dir: Dir,
    route: &RouteState,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    dec: &mut BodyDecoder,
) -> Result<Vec<u8>, ProxyError> {
    if !dec.keeps_trailers() {
        // Not chunked (no trailers), or towards an HTTP/1.0 client.
        return Ok(Vec::new());
    }
    let kept = dec.take_trailers();
    match dir {
        Dir::Request if route.needs.request_trailers => {
            crate::trailers::request_section(ctx, filters, kept)
        }
        Dir::Response if route.needs.response_trailers => {
            crate::trailers::response_section(ctx, filters, kept)
        }
        _ => Ok(kept),
    }
}

/// One pass of the decoder over the client's buffer, for a body read whole on a route whose
/// filters may hold its pieces (the AI path): the piece goes through the chain (never with
/// `end`: see [`Stages::end_holding`]), and what comes out is added to `body`. The scan, and a
/// filter's answer.
pub(crate) fn scan_held(
    dec: &mut BodyDecoder,
    buf: &[u8],
    body: &mut BytesMut,
    stages: &mut Stages,
    filters: &mut [Box<dyn Filter>],
    ctx: &mut RequestCtx,
) -> Result<(weir_http::Scan, Option<Result<Action, ProxyError>>), ProxyError> {
    let mut piece = BytesMut::new();
    let scan = dec
        .scan(buf, |r| piece.extend_from_slice(&buf[r]))
        .map_err(|e| ProxyError::from_codec(&e))?;
    if piece.is_empty() {
        return Ok((scan, None));
    }
    let verdict = match stages.push(BodyHead::Request(None), filters, ctx, piece, false) {
        Ok(Out::Bytes(b)) => {
            body.extend_from_slice(&b);
            None
        }
        Ok(Out::Respond(r)) => Some(Ok(Action::Respond(*r))),
        Err(e) => Some(Err(e)),
    };
    Ok((scan, verdict))
}

/// A request body part-way through: the chain released its first bytes before the body ended.
pub(crate) struct HeldUpload {
    dec: BodyDecoder,
    stages: Stages,
    reframe: Reframe,
    /// What came out of the chain before the attempt, framed: sent first.
    first: Vec<u8>,
}

/// What [`hold_request`] read.
pub(crate) enum Upload {
    /// The whole body came out of the chain; it is in front of the client's buffer as a body
    /// of the (rewritten) head's framing, shown to the filters already.
    Whole,
    /// Its first part came out: [`send_held_body`] sends it and the rest.
    Part(Box<HeldUpload>),
    /// A filter answered.
    Respond(Box<LocalResponse>),
}

/// Reads the request body through the chain until something comes out of it (or the body ends),
/// before anything goes upstream; sets the head's framing to what will be sent.
pub(crate) async fn hold_request(
    route: &RouteState,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &mut RequestHead,
) -> Result<Upload, ProxyError> {
    if head.expect_continue && d.reader.buf().is_empty() {
        d.out.clear();
        d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if d.write_out().await.is_err() {
            return Err(client_gone());
        }
    }
    head.expect_continue = false;
    let mut dec = decoder(head.body, true);
    let mut stages = Stages::new(filters.len());
    let mut out = BytesMut::new();
    loop {
        let (piece, done) = next_piece(route, d, ctx, &mut dec).await?;
        // Trailers are shown before the body's end, as on the streaming path.
        let section = match done {
            true => self::section(Dir::Request, route, ctx, filters, &mut dec)?,
            false => Vec::new(),
        };
        // Nothing went upstream yet: the head still waits, and the filters may edit it.
        match stages.push(
            BodyHead::Request(Some(&mut *head)),
            filters,
            ctx,
            piece,
            done,
        )? {
            Out::Respond(r) => return Ok(Upload::Respond(r)),
            Out::Bytes(b) => out.extend_from_slice(&b),
        }
        if !done && out.is_empty() {
            continue;
        }
        let trailers = section.len() > 2;
        // Something came out, so nothing is held: every byte so far came out.
        let same = dec.payload_bytes() == out.len() as u64;
        head.body = framing(head.body, done, out.len() as u64, same, trailers);
        let mut reframe = Reframe::new(head.body);
        let mut first = Vec::with_capacity(out.len() + 32);
        reframe.frame(&mut first, &out)?;
        if done {
            reframe.end(&mut first, &section)?;
            // In front of what the client sent next (a pipelined request).
            let rest = d.reader.buf().split();
            let buf = d.reader.buf();
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&rest);
            return Ok(Upload::Whole);
        }
        return Ok(Upload::Part(Box::new(HeldUpload {
            dec,
            stages,
            reframe,
            first,
        })));
    }
}

/// The next piece of request payload out of the client's buffer (read when empty), and whether
/// the body ended with it.
async fn next_piece(
    route: &RouteState,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    dec: &mut BodyDecoder,
) -> Result<(BytesMut, bool), ProxyError> {
    loop {
        if !d.reader.buf().is_empty() || dec.is_done() {
            let buf = d.reader.buf();
            let mut piece = BytesMut::new();
            let scan = dec
                .scan(buf, |r| piece.extend_from_slice(&buf[r]))
                .map_err(|e| ProxyError::from_codec(&e))?;
            let _ = buf.split_to(scan.consumed);
            ctx.request_bytes = dec.payload_bytes();
            if dec.payload_bytes() > route.max_body {
                return Err(body_too_large(route));
            }
            if !piece.is_empty() || scan.done {
                return Ok((piece, scan.done));
            }
        }
        let idle = after(Instant::now(), route.idle_timeout);
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
}

/// Sends the rest of a request body [`hold_request`] began: its first part, then each piece
/// as it comes out of the chain.
pub(crate) async fn send_held_body(
    route: &RouteState,
    d: &mut Downstream,
    conn: &mut UpstreamConn,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    up: &mut HeldUpload,
) -> Result<(), ProxyError> {
    let mut wire = std::mem::take(&mut up.first);
    loop {
        if !wire.is_empty() {
            let (r, _) = conn.stream.write_all(std::mem::take(&mut wire)).await;
            if r.is_err() {
                return Err(ProxyError::new(
                    502,
                    "upstream_reset",
                    Side::Upstream,
                    "upstream closed while the request body was sent",
                ));
            }
        }
        if up.dec.is_done() {
            return Ok(());
        }
        let (piece, done) = next_piece(route, d, ctx, &mut up.dec).await?;
        let section = match done {
            true => section(Dir::Request, route, ctx, filters, &mut up.dec)?,
            false => Vec::new(),
        };
        match up
            .stages
            .push(BodyHead::Request(None), filters, ctx, piece, done)?
        {
            Out::Respond(r) => return Err(crate::forward::refused_body(Ok(Action::Respond(*r)))),
            Out::Bytes(b) => up.reframe.frame(&mut wire, &b)?,
        }
        if done {
            up.reframe.end(&mut wire, &section)?;
        }
    }
}

/// Streams a response through a chain that may hold its pieces (the head waits for the first
/// bytes out, see above); whether the client connection stays.
pub(crate) async fn held_response(
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
    let Some(route) = scope.route else {
        let e = ProxyError::new(500, "internal", Side::Internal, "no route");
        return fail(scope, d, ctx, filters, e, head).await;
    };
    let idle = route.idle_timeout;
    // A chunked body's trailer section is kept, to follow the chunks made anew (an HTTP/1.0
    // client gets none).
    let http11 = head.version == Version::Http11;
    let mut dec = decoder(resp.body, http11);
    let mut stages = Stages::new(filters.len());
    let declared = resp.body;
    let mut reframe: Option<(Reframe, bool)> = None;
    let mut out_total = 0u64;
    let mut eof = false;
    let mut reads = 0;
    let result: Result<bool, ProxyError> = loop {
        let mut piece = BytesMut::new();
        let scan = match dec.scan(&ubuf, |r| piece.extend_from_slice(&ubuf[r])) {
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
        ctx.response_bytes = dec.payload_bytes();
        let done = scan.done || eof;
        if !piece.is_empty() || done {
            // Trailers are shown before the body's end, as on the streaming path.
            let section = match done {
                true => match self::section(Dir::Response, route, ctx, filters, &mut dec) {
                    Ok(s) => s,
                    Err(e) => break Err(e),
                },
                false => Vec::new(),
            };
            // Until something came out, the head waits, and the filters may edit it.
            let waiting = reframe.is_none().then_some(&mut resp);
            let out = match stages.push(BodyHead::Response(waiting), filters, ctx, piece, done) {
                Ok(Out::Bytes(b)) => b,
                Ok(Out::Respond(r)) if reframe.is_none() => {
                    cluster.end(&conn.endpoint, failed);
                    cluster.release_at(Instant::now(), conn, false);
                    let keep = head.keep_alive;
                    return send_local(scope, d, ctx, filters, *r, false, keep).await;
                }
                Ok(Out::Respond(r)) => {
                    break Err(crate::forward::refused_body(Ok(Action::Respond(*r))));
                }
                Err(e) => break Err(e),
            };
            out_total += out.len() as u64;
            if reframe.is_none() && (!out.is_empty() || done) {
                // Something came out, so nothing is held: every byte so far came out.
                let same = dec.payload_bytes() == out_total;
                resp.body = framing(declared, done, out_total, same, section.len() > 2);
                let f = write_response_head(scope.worker, d, ctx, head, &mut resp, false);
                let kind = if f.dechunk {
                    BodyKind::UntilClose
                } else {
                    resp.body
                };
                reframe = Some((Reframe::new(kind), f.close));
            }
            if let Some((r, _)) = reframe.as_mut() {
                let mut res = r.frame(&mut d.out, &out);
                if done && res.is_ok() {
                    res = r.end(&mut d.out, &section);
                }
                if let Err(e) = res {
                    break Err(e);
                }
            }
            if !d.out.is_empty() {
                let close = reframe.as_ref().is_some_and(|(_, c)| *c);
                let wrote = if done && close {
                    d.write_out_last().await
                } else {
                    d.write_out().await
                };
                if wrote.is_err() {
                    break Err(client_gone());
                }
            }
        }
        if done {
            break Ok(!eof && ubuf.is_empty());
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
            // The end of a close-delimited body.
            Ok(false) => eof = true,
            Err(e) => break Err(e),
        }
    };
    let reusable = matches!(result, Ok(true)) && resp.keep_alive;
    cluster.end(&conn.endpoint, failed || result.is_err());
    cluster.release_at(Instant::now(), conn, reusable);
    match result {
        Ok(_) => {
            finish(scope, ctx, filters);
            let close = reframe.is_none_or(|(_, c)| c);
            !close && head.keep_alive
        }
        // Nothing reached the client yet: a clean error response is still possible.
        Err(e) if reframe.is_none() => fail(scope, d, ctx, filters, e, head).await,
        Err(e) => {
            if e.side == Side::Downstream {
                ctx.status = 499;
            } else {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "response aborted mid-stream");
            }
            ctx.error = Some(e);
            finish(scope, ctx, filters);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// Holds until it has `at` bytes (or the end), then lets them out upper-cased.
    struct HoldUntil {
        at: usize,
        shown: Vec<(usize, bool)>,
    }

    impl Filter for HoldUntil {
        fn on_request_body_held(
            &mut self,
            _ctx: &mut RequestCtx,
            held: &mut BytesMut,
            end: bool,
            _head: Option<&mut RequestHead>,
        ) -> Result<Flow, ProxyError> {
            self.shown.push((held.len(), end));
            if held.len() < self.at && !end {
                return Ok(Flow::Hold);
            }
            held.make_ascii_uppercase();
            Ok(Flow::Pass)
        }
    }

    /// A streaming filter: records what `on_request_body` was shown; answers 403 to `STOP`.
    #[derive(Default, Clone)]
    struct Seen(Rc<RefCell<Shown>>);

    /// Pieces shown, with their `end`.
    type Shown = Vec<(Vec<u8>, bool)>;

    impl Filter for Seen {
        fn on_request_body(
            &mut self,
            _ctx: &mut RequestCtx,
            chunk: &[u8],
            end: bool,
        ) -> Result<Action, ProxyError> {
            self.0.borrow_mut().push((chunk.to_vec(), end));
            if chunk == b"STOP" {
                return Ok(Action::Respond(LocalResponse::empty(403)));
            }
            Ok(Action::Continue)
        }
    }

    fn ctx() -> RequestCtx {
        RequestCtx::new("r".into(), "127.0.0.1:1".parse().unwrap(), "l".into(), 0)
    }

    fn bytes(out: Out) -> Vec<u8> {
        match out {
            Out::Bytes(b) => b.to_vec(),
            Out::Respond(r) => panic!("answered {}", r.status),
        }
    }

    fn push(st: &mut Stages, f: &mut [Box<dyn Filter>], piece: &[u8], end: bool) -> Out {
        st.push(
            BodyHead::Request(None),
            f,
            &mut ctx(),
            BytesMut::from(piece),
            end,
        )
        .unwrap()
    }

    #[test]
    fn a_held_piece_comes_out_with_the_next_ones_when_released() {
        let mut filters: Vec<Box<dyn Filter>> = vec![Box::new(HoldUntil {
            at: 6,
            shown: Vec::new(),
        })];
        let mut st = Stages::new(1);
        assert_eq!(bytes(push(&mut st, &mut filters, b"abc", false)), b"");
        assert_eq!(bytes(push(&mut st, &mut filters, b"de", false)), b"");
        assert_eq!(bytes(push(&mut st, &mut filters, b"fg", false)), b"ABCDEFG");
        // Released: the next piece is shown alone.
        assert_eq!(bytes(push(&mut st, &mut filters, b"h", false)), b"");
        // At the end a hold passes.
        assert_eq!(bytes(push(&mut st, &mut filters, b"", true)), b"H");
    }

    #[test]
    fn filters_after_a_hold_see_only_what_it_lets_out() {
        let (before, after) = (Seen::default(), Seen::default());
        let mut filters: Vec<Box<dyn Filter>> = vec![
            Box::new(before.clone()),
            Box::new(HoldUntil {
                at: 4,
                shown: Vec::new(),
            }),
            Box::new(after.clone()),
        ];
        let mut st = Stages::new(3);
        assert_eq!(bytes(push(&mut st, &mut filters, b"ab", false)), b"");
        assert!(after.0.borrow().is_empty());
        assert_eq!(bytes(push(&mut st, &mut filters, b"cd", false)), b"ABCD");
        assert_eq!(bytes(push(&mut st, &mut filters, b"", true)), b"");
        let seen = |s: &Seen| s.0.borrow().clone();
        assert_eq!(
            seen(&before),
            vec![
                (b"ab".to_vec(), false),
                (b"cd".to_vec(), false),
                (Vec::new(), true)
            ]
        );
        assert_eq!(
            seen(&after),
            vec![(b"ABCD".to_vec(), false), (Vec::new(), true)]
        );
    }

    #[test]
    fn an_answer_stops_the_chain() {
        let mut filters: Vec<Box<dyn Filter>> = vec![Box::new(Seen::default())];
        let mut st = Stages::new(1);
        match push(&mut st, &mut filters, b"STOP", false) {
            Out::Respond(r) => assert_eq!(r.status, 403),
            Out::Bytes(_) => panic!("not answered"),
        }
    }

    #[test]
    fn the_end_is_told_to_the_holding_filters_only_when_asked() {
        let mut filters: Vec<Box<dyn Filter>> = vec![
            Box::new(HoldUntil {
                at: 100,
                shown: Vec::new(),
            }),
            Box::new(Seen::default()),
        ];
        let mut st = Stages::new(2);
        assert_eq!(bytes(push(&mut st, &mut filters, b"ab", false)), b"");
        let out = st
            .end_holding(
                BodyHead::Request(None),
                &mut filters,
                &mut ctx(),
                &[true, false],
            )
            .unwrap();
        assert_eq!(bytes(out), b"AB");
    }

    #[test]
    fn the_head_says_what_will_be_sent() {
        // Whole: its length (chunked when trailers are left).
        assert_eq!(
            framing(BodyKind::Chunked, true, 7, false, false),
            BodyKind::Length(7)
        );
        assert_eq!(
            framing(BodyKind::Length(9), true, 7, false, true),
            BodyKind::Chunked
        );
        // Part-way, lengths unchanged: the declared length stays.
        assert_eq!(
            framing(BodyKind::Length(9), false, 4, true, false),
            BodyKind::Length(9)
        );
        // Part-way, changed: chunked.
        assert_eq!(
            framing(BodyKind::Length(9), false, 5, false, false),
            BodyKind::Chunked
        );
        assert_eq!(
            framing(BodyKind::UntilClose, false, 5, true, false),
            BodyKind::Chunked
        );
    }

    #[test]
    fn reframing_chunks_and_checks_a_length() {
        let mut out = Vec::new();
        let mut r = Reframe::new(BodyKind::Chunked);
        r.frame(&mut out, b"hello").unwrap();
        r.frame(&mut out, b"").unwrap();
        r.end(&mut out, b"x-t: 1\r\n\r\n").unwrap();
        assert_eq!(out, b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n");
        let mut out = Vec::new();
        let mut r = Reframe::new(BodyKind::Chunked);
        r.end(&mut out, b"").unwrap();
        assert_eq!(out, b"0\r\n\r\n");

        let mut out = Vec::new();
        let mut r = Reframe::new(BodyKind::Length(4));
        r.frame(&mut out, b"ab").unwrap();
        let e = r.end(&mut out, b"").unwrap_err();
        assert_eq!(e.kind, "filter_changed_length");
        let mut r = Reframe::new(BodyKind::Length(4));
        r.frame(&mut out, b"abcd").unwrap();
        assert!(r.frame(&mut out, b"e").is_err());
        let mut r = Reframe::new(BodyKind::UntilClose);
        let mut out = Vec::new();
        r.frame(&mut out, b"raw").unwrap();
        r.end(&mut out, b"").unwrap();
        assert_eq!(out, b"raw");
    }
}
