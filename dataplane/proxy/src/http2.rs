//! HTTP/2 towards clients: a connection driven by the `h2` crate, each stream served by the
//! HTTP/1.1 request path through a bridge.
//!
//! The bridge gives every stream its own [`Downstream`] whose halves are two in-process pipes
//! ([`weir_h2::pipe`]): the stream's request goes in as an HTTP/1.1 head (and its DATA frames as
//! the body, chunked when the length is unknown, its trailing HEADERS as the chunked trailer
//! section), and the request path's HTTP/1.1 response comes
//! out, its head turned into an h2 HEADERS frame and its body (de-chunked) into DATA frames as it
//! arrives, trailers included. So routes, every filter, AI routes, quotas, Wasm plugins, SSE
//! streaming, retries and the access log are the same code for both protocols, and gRPC (whose
//! `protocol: h2` clusters are spoken to by [`crate::h2_upstream`]) keeps its trailers end to end.
//!
//! The h2 crate enforces the protocol's bounds with the listener's limits (see
//! [`weir_h2::server`]): streams at once, windows, frame and header-list sizes (a CONTINUATION
//! flood ends at `max_header_list_size`), pending client resets (rapid reset: GOAWAY), and it
//! answers SETTINGS and PING frames without queueing more than one of each.
//!
//! A gRPC request that the gateway answers itself (no route, a refused credential, a quota, an
//! unreachable upstream) gets a trailers-only gRPC answer with the matching `grpc-status`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use monoio::io::AsyncWriteRent;
use smallvec::SmallVec;
use weir_filter::TlsInfo;
use weir_h2::head::{self, RequestBody};
use weir_h2::pipe::{pipe, PipeReader, PipeWriter};
use weir_http::{BodyDecoder, BodyKind};
use weir_metrics::bump;

use crate::conn::{serve_http1, Downstream};
use crate::io::{after, ClientIn, ClientOut, ClientReader, Timer};
use crate::worker::Worker;

/// Bytes buffered in each direction of a stream's bridge before its writer waits.
const PIPE_LIMIT: usize = 64 << 10;
/// Largest error body read to make a gRPC answer's `grpc-message`.
const GRPC_ERROR_BODY: usize = 16 << 10;
/// How long a client may keep a connection open after GOAWAY once its streams are done.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long the preface and the first SETTINGS may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves an HTTP/2 connection until it closes: accepts streams (each one its own task), and
/// closes with GOAWAY when the core drains or the connection stays idle.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    worker: &Rc<Worker>,
    listener: &Rc<str>,
    rd: weir_tls::ClientRead,
    wr: weir_tls::ClientWrite,
    early: Vec<u8>,
    client: weir_upstream::ClientConn,
    tls: Option<Rc<TlsInfo>>,
) {
    let peer = client.src;
    let (limits, idle) = {
        let state = worker.state();
        match state.listeners.iter().find(|l| l.name == *listener) {
            Some(l) => match &l.http2 {
                Some(h) => (h.clone(), l.idle_timeout),
                None => return,
            },
            None => return,
        }
    };
    let io = weir_h2::Io::new(rd, wr, early);
    let mut conn = match monoio::time::timeout(
        HANDSHAKE,
        weir_h2::server(&limits).handshake::<_, Bytes>(io),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            bump(&worker.stats.protocol_errors, 1);
            tracing::debug!(client = %peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "HTTP/2 preface did not arrive in time");
            return;
        }
    };
    bump(&worker.stats.h2_connections, 1);
    let open = Rc::new(Cell::new(0usize));
    let mut drain = worker.drained();
    let mut timer = Timer::default();
    // The idle timeout counts from the end of the last stream (or the start): the timer is aimed
    // there, and when it fires with streams open, or a stream ended since, it is aimed again.
    let last_end = Rc::new(Cell::new(Instant::now()));
    // Once GOAWAY went out: when the connection is dropped if the client has not closed it (a
    // client that never acknowledges the PING of the graceful close would hold it forever).
    let mut close_by: Option<Instant> = None;
    loop {
        let closing = close_by.is_some();
        timer.aim(close_by.unwrap_or_else(|| after(last_end.get(), idle)));
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = conn.poll_accept(cx) {
                return Poll::Ready(Event::Stream(r));
            }
            if !closing && Pin::new(&mut drain).poll(cx).is_ready() {
                return Poll::Ready(Event::Close);
            }
            if timer.poll_expired(cx).is_ready() {
                return Poll::Ready(Event::Tick);
            }
            Poll::Pending
        })
        .await;
        match next {
            Event::Tick => {
                let now = Instant::now();
                if closing {
                    if open.get() == 0 {
                        tracing::debug!(client = %peer, "HTTP/2 client did not close after GOAWAY: dropped");
                        break;
                    }
                    // Streams still finishing (a drain): look again shortly.
                    close_by = Some(now + Duration::from_secs(1));
                } else if open.get() > 0 {
                    last_end.set(now);
                } else if now >= after(last_end.get(), idle) {
                    close_by = Some(now + CLOSE_GRACE);
                    conn.graceful_shutdown();
                }
            }
            Event::Stream(None) => break,
            Event::Stream(Some(Err(e))) => {
                // A protocol error (a flood, a reset storm, a bad frame): h2 sent GOAWAY.
                bump(&worker.stats.protocol_errors, 1);
                tracing::debug!(client = %peer, error = %e, "HTTP/2 connection error");
                break;
            }
            Event::Stream(Some(Ok((req, respond)))) => {
                bump(&worker.stats.h2_streams, 1);
                open.set(open.get() + 1);
                let task = stream(
                    worker.clone(),
                    listener.clone(),
                    client,
                    tls.clone(),
                    req,
                    respond,
                );
                let (open, last_end) = (open.clone(), last_end.clone());
                monoio::spawn(async move {
                    task.await;
                    open.set(open.get() - 1);
                    last_end.set(Instant::now());
                });
            }
            Event::Close => {
                // GOAWAY: streams in flight finish, then `poll_accept` ends.
                close_by = Some(Instant::now() + CLOSE_GRACE);
                conn.graceful_shutdown();
            }
        }
    }
}

/// A stream the client opened: its request and where its response goes.
type Opened = (http::Request<RecvStream>, SendResponse<Bytes>);

/// What the connection's wait ended with. (Not boxed: made once per stream, matched at once.)
#[allow(clippy::large_enum_variant)]
enum Event {
    Stream(Option<Result<Opened, h2::Error>>),
    /// The idle timer fired.
    Tick,
    Close,
}

/// One stream: its request through the HTTP/1.1 request path, its response back as h2.
async fn stream(
    worker: Rc<Worker>,
    listener: Rc<str>,
    client: weir_upstream::ClientConn,
    tls: Option<Rc<TlsInfo>>,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, body) = req.into_parts();
    let grpc = head::is_grpc(
        parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
    );
    let is_head = parts.method == http::Method::HEAD;
    let mut h1 = Vec::with_capacity(512);
    let framing = head::write_request(&parts, body.is_end_stream(), &mut h1);
    let (mut req_w, req_r) = pipe(PIPE_LIMIT);
    let (resp_w, resp_r) = pipe(PIPE_LIMIT);
    req_w.push(&h1);
    let mut d = Downstream::new(
        ClientReader::new(ClientIn::Stream(req_r)),
        ClientOut::Stream(resp_w),
        client,
        tls,
        worker.drained(),
    );
    d.http2 = true;
    let max_head = worker.state().max_response_head;
    let (closer, resp_closer) = (req_w.closer(), resp_r.closer());
    // The request path, the upload and the download, driven together by this one task. The
    // request path goes first in each poll, so what it wrote is read in the same poll; when the
    // download is done (or the client broke off), the request pipe ends, and the request path's
    // loop with it (its access-log line is written by then).
    let outcome = {
        let mut path = std::pin::pin!(async {
            let _ = serve_http1(&worker, &listener, &mut d).await;
            // Ends the response pipe (a close-delimited body ends here).
            let _ = d.writer.shutdown().await;
        });
        let mut up = std::pin::pin!(upload(&mut req_w, body, framing));
        let mut down = std::pin::pin!(download(resp_r, &mut respond, grpc, is_head, max_head));
        let (mut path_done, mut uploading) = (false, true);
        let mut outcome: Option<Result<(), ()>> = None;
        std::future::poll_fn(|cx| {
            if !path_done {
                path_done = path.as_mut().poll(cx).is_ready();
            }
            if outcome.is_none() && uploading {
                if let Poll::Ready(r) = up.as_mut().poll(cx) {
                    uploading = false;
                    if r.is_err() {
                        // The client reset the stream or broke its body: the request path sees
                        // its client gone and cancels the upstream request.
                        outcome = Some(Err(()));
                        closer.close();
                        resp_closer.close();
                    }
                }
            }
            if outcome.is_none() {
                if let Poll::Ready(r) = down.as_mut().poll(cx) {
                    outcome = Some(r);
                    closer.close();
                    if r.is_err() {
                        // Reset, or a broken response: the request path's writes fail now.
                        resp_closer.close();
                    }
                }
                if outcome.is_some() && !path_done {
                    path_done = path.as_mut().poll(cx).is_ready();
                }
            }
            match outcome {
                Some(r) if path_done => Poll::Ready(r),
                _ => Poll::Pending,
            }
        })
        .await
    };
    if outcome.is_err() {
        respond.send_reset(h2::Reason::CANCEL);
    }
}

/// The stream's request body into the request pipe, as HTTP/1.1 (chunked when its length is
/// unknown). Keeps the pipe open at the end: only the stream's end closes it. `Err` when the
/// client broke the stream off; a request path that stopped reading (it answered without the
/// body) just ends the upload.
async fn upload(w: &mut PipeWriter, mut body: RecvStream, framing: RequestBody) -> Result<(), ()> {
    if framing == RequestBody::None {
        return Ok(());
    }
    let mut size = Vec::with_capacity(16);
    while let Some(data) = body.data().await {
        let data = data.map_err(|_| ())?;
        let n = data.len();
        if w.ready().await.is_err() {
            return Ok(());
        }
        if framing == RequestBody::Chunked && n > 0 {
            size.clear();
            weir_http::write_chunk_header(&mut size, n);
            w.push(&size);
            w.push(&data);
            w.push(b"\r\n");
        } else {
            w.push(&data);
        }
        let _ = body.flow_control().release_capacity(n);
    }
    if framing == RequestBody::Chunked {
        // The stream's trailing HEADERS, if it had them, as the chunked trailer section (a body
        // of known length has no room for them: they are dropped there).
        let trailers = body.trailers().await.map_err(|_| ())?;
        w.push(b"0\r\n");
        for (n, v) in trailers.iter().flat_map(|t| t.iter()) {
            if head::is_connection_field(n.as_str().as_bytes()) {
                continue;
            }
            w.push(n.as_str().as_bytes());
            w.push(b": ");
            w.push(v.as_bytes());
            w.push(b"\r\n");
        }
        w.push(b"\r\n");
    }
    Ok(())
}

/// Reads the request path's HTTP/1.1 response from the pipe and sends it as h2. `Err` when the
/// stream cannot go on (the client reset it, or the response broke off).
async fn download(
    mut r: PipeReader,
    respond: &mut SendResponse<Bytes>,
    grpc: bool,
    is_head: bool,
    max_head: usize,
) -> Result<(), ()> {
    let mut buf = BytesMut::new();
    let resp = loop {
        match weir_http::parse_response(&mut buf, max_head, is_head) {
            Ok(Some(resp)) if (100..200).contains(&resp.status) => continue,
            Ok(Some(resp)) => break resp,
            Ok(None) => {}
            Err(_) => return Err(()),
        }
        match next_chunk(&mut r, |cx| respond.poll_reset(cx)).await? {
            Some(c) => buf.extend_from_slice(&c),
            None => return Err(()),
        }
    };
    let resp_grpc = head::is_grpc(resp.headers.value("content-type"));
    if grpc && !(resp.status == 200 && resp_grpc) {
        // The gateway's own answer to a gRPC client: trailers-only, with the status.
        let mut body = Vec::new();
        let mut dec = BodyDecoder::new(resp.body);
        loop {
            let scan = dec
                .scan(&buf, |range| {
                    if body.len() < GRPC_ERROR_BODY {
                        body.extend_from_slice(&buf[range]);
                    }
                })
                .map_err(|_| ())?;
            let _ = buf.split_to(scan.consumed);
            if scan.done {
                break;
            }
            match next_chunk(&mut r, |cx| respond.poll_reset(cx)).await? {
                Some(c) => buf.extend_from_slice(&c),
                None => break,
            }
        }
        respond
            .send_response(head::grpc_error_response(resp.status, &body), true)
            .map_err(|_| ())?;
        return Ok(());
    }
    let empty = resp.body == BodyKind::Empty || is_head;
    let mut send = respond
        .send_response(head::response_from(&resp), empty)
        .map_err(|_| ())?;
    if empty {
        return Ok(());
    }
    let mut dec = BodyDecoder::new(resp.body);
    // The framing bytes since the last payload (for a chunked body: its trailers at the end).
    let mut tail: Vec<u8> = Vec::new();
    let chunked = resp.body == BodyKind::Chunked;
    loop {
        if !buf.is_empty() {
            let mut ranges: SmallVec<[std::ops::Range<usize>; 4]> = SmallVec::new();
            let scan = dec.scan(&buf, |range| ranges.push(range)).map_err(|_| ())?;
            let bytes = buf.split_to(scan.consumed).freeze();
            if chunked {
                match ranges.last() {
                    Some(last) => {
                        tail.clear();
                        tail.extend_from_slice(&bytes[last.end..]);
                    }
                    None if tail.len() < 64 << 10 => tail.extend_from_slice(&bytes),
                    None => {}
                }
            }
            for range in ranges {
                send_data(&mut send, bytes.slice(range)).await?;
            }
            if scan.done {
                break;
            }
        }
        match next_chunk(&mut r, |cx| send.poll_reset(cx)).await? {
            Some(c) => {
                if buf.is_empty() {
                    buf = BytesMut::from(c);
                } else {
                    buf.extend_from_slice(&c);
                }
            }
            // The end of a close-delimited body; any other framing ended early.
            None if dec.kind() == BodyKind::UntilClose => break,
            None => return Err(()),
        }
    }
    let trailers = if chunked {
        head::chunked_trailers(&tail)
    } else {
        http::HeaderMap::new()
    };
    if trailers.is_empty() {
        send.send_data(Bytes::new(), true).map_err(|_| ())?;
    } else {
        send.send_trailers(trailers).map_err(|_| ())?;
    }
    Ok(())
}

/// The next bytes of the response, or the client's reset first (`Err`): `reset` polls for it on
/// the stream's response handle, or on its send stream once the head went out.
async fn next_chunk<R>(
    r: &mut PipeReader,
    mut reset: impl FnMut(&mut std::task::Context<'_>) -> Poll<R>,
) -> Result<Option<Bytes>, ()> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(c) = r.poll_chunk(cx) {
            return Poll::Ready(Ok(c));
        }
        reset(cx).map(|_| Err(()))
    })
    .await
}

/// Sends `data` as the client's flow-control window allows.
pub(crate) async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), ()> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let cap = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            _ => return Err(()),
        };
        if cap == 0 {
            continue;
        }
        let piece = data.split_to(cap.min(data.len()));
        send.send_data(piece, false).map_err(|_| ())?;
    }
    Ok(())
}
