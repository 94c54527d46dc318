//! One client connection: read, answer every complete request in the buffer, write once, repeat.
//!
//! The socket is split into owned halves so a streaming response can keep a read pending while it
//! writes and sleeps: that read is how the mock notices a client (or a proxy in between) going
//! away in the middle of an SSE stream, within one event interval, without writing anything.

use crate::http::{self, BodyLen, ChunkedDecoder, Framing, RespCtx};
use crate::routes::{self, Action, Events, Shared, Stream, StreamKind};
use crate::state::{OpenConnection, STATS};
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller, Splitable,
};
use monoio::net::TcpStream;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

/// Initial size of the read and write buffers.
const BUF: usize = 4096;
/// Buffers that grew past this (a large body) are given back once they are empty.
const KEEP: usize = 256 * 1024;
/// Written when a request carries `expect: 100-continue` and its body has not arrived.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Serves one accepted connection until either side closes it.
pub async fn serve(stream: TcpStream, sh: &'static Shared) {
    // Small responses go out at once, as from any server with tcp_nodelay.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    serve_halves(rd, wr, sh).await;
}

/// Serves a connection given as its halves: a TCP socket's, or the inner end of a TLS
/// connection's relay (`tls.rs`).
pub async fn serve_halves<R, W>(rd: R, wr: W, sh: &'static Shared)
where
    R: AsyncReadRent + CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    let _open = OpenConnection::new();
    let mut conn = Conn {
        sh,
        rd,
        wr,
        rbuf: Vec::with_capacity(BUF),
        pos: 0,
        wbuf: Vec::with_capacity(BUF),
        body: Vec::new(),
        chunk: None,
        continue_sent: false,
        want: 0,
    };
    // An I/O error means the peer is gone; nothing to report.
    let _ = conn.run().await;
}

struct Conn<R, W> {
    sh: &'static Shared,
    rd: R,
    wr: W,
    /// Bytes read; `rbuf[pos..]` is not consumed yet.
    rbuf: Vec<u8>,
    pos: usize,
    /// Responses waiting to be written (all answers to one read go out in one write).
    wbuf: Vec<u8>,
    /// The de-chunked body of the current request (chunked requests only).
    body: Vec<u8>,
    /// Decoder of the current chunked body and the raw bytes it consumed so far.
    chunk: Option<(ChunkedDecoder, usize)>,
    continue_sent: bool,
    /// Bytes (from `pos`) the current request needs, when known: sizes the next read.
    want: usize,
}

enum Step {
    /// Nothing complete left in the buffer.
    NeedMore,
    /// A response was buffered; look for the next request.
    Next,
    /// A response was buffered; close after writing it.
    Close,
    /// Flush, then run this streaming response.
    Stream(Stream),
}

impl<R, W> Conn<R, W>
where
    R: AsyncReadRent + CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    async fn run(&mut self) -> io::Result<()> {
        loop {
            loop {
                match self.step() {
                    Step::NeedMore => break,
                    Step::Next => {}
                    Step::Close => return self.flush().await,
                    Step::Stream(s) => {
                        self.flush().await?;
                        if !self.stream(s).await? {
                            return self.flush().await;
                        }
                    }
                }
            }
            self.flush().await?;
            if !self.fill().await? {
                return Ok(());
            }
        }
    }

    /// Parses and answers the next buffered request, if it is complete.
    fn step(&mut self) -> Step {
        let buf = &self.rbuf[self.pos..];
        if buf.is_empty() {
            return Step::NeedMore;
        }
        let mut hdrs = http::header_slots();
        let head = match http::parse_head(buf, &mut hdrs) {
            Ok(Some(head)) => head,
            Ok(None) => return Step::NeedMore,
            Err(e) => return refuse(&mut self.wbuf, e.status(), self.sh),
        };
        let (body, total): (&[u8], usize) = match head.framing {
            Framing::None => (&[], head.len),
            Framing::Length(n) => {
                let end = head.len + n;
                if buf.len() < end {
                    self.want = end;
                    if head.expect_continue && !self.continue_sent {
                        self.wbuf.extend_from_slice(CONTINUE);
                        self.continue_sent = true;
                    }
                    return Step::NeedMore;
                }
                (&buf[head.len..end], end)
            }
            Framing::Chunked => {
                let (decoder, consumed) =
                    self.chunk.get_or_insert_with(|| (ChunkedDecoder::new(), 0));
                match decoder.feed(&buf[head.len + *consumed..], &mut self.body) {
                    Ok(n) => *consumed += n,
                    Err(_) => return refuse(&mut self.wbuf, 400, self.sh),
                }
                if !decoder.is_done() {
                    if head.expect_continue && !self.continue_sent {
                        self.wbuf.extend_from_slice(CONTINUE);
                        self.continue_sent = true;
                    }
                    return Step::NeedMore;
                }
                (&self.body, head.len + *consumed)
            }
        };
        STATS.requests.fetch_add(1, Relaxed);
        let action = routes::handle(self.sh, &head, body, &mut self.wbuf);

        self.pos += total;
        self.want = 0;
        self.continue_sent = false;
        if self.chunk.take().is_some() {
            self.body.clear();
            if self.body.capacity() > KEEP {
                self.body = Vec::new();
            }
        }
        match action {
            Action::Done => Step::Next,
            Action::Close => Step::Close,
            Action::Stream(s) => Step::Stream(s),
        }
    }

    /// Reads more bytes; `false` when the peer closed.
    async fn fill(&mut self) -> io::Result<bool> {
        let len = self.rbuf.len();
        if self.pos == len {
            self.rbuf.clear();
            if self.rbuf.capacity() > KEEP {
                self.rbuf = Vec::with_capacity(BUF);
            }
        } else if self.pos > 0 {
            self.rbuf.copy_within(self.pos.., 0);
            self.rbuf.truncate(len - self.pos);
        }
        self.pos = 0;
        let len = self.rbuf.len();
        let spare = self.rbuf.capacity() - len;
        if self.want > len {
            // A body of known length: make room for all of it, read it in as few calls as can be.
            self.rbuf.reserve(self.want - len);
        } else if spare == 0 {
            self.rbuf.reserve(len.max(BUF));
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (res, slice) = self.rd.read(buf.slice_mut(len..)).await;
        self.rbuf = slice.into_inner();
        Ok(res? > 0)
    }

    async fn flush(&mut self) -> io::Result<()> {
        write_out(&mut self.wr, &mut self.wbuf).await
    }

    /// Runs a streaming response; `true` when the connection may serve another request.
    async fn stream(&mut self, s: Stream) -> io::Result<bool> {
        match s.kind {
            StreamKind::Delayed { after, response } => {
                monoio::time::sleep(after).await;
                self.wbuf.extend_from_slice(&response);
                Ok(s.keep_alive)
            }
            StreamKind::Bytes { head, len, chunk } => {
                self.wbuf.extend_from_slice(&head);
                // Whole chunks per write, so chunk sizes stay as asked across writes.
                let step = chunk.map_or(KEEP, |c| (KEEP / c).max(1) * c);
                let mut done = 0;
                while done < len {
                    let n = step.min(len - done);
                    routes::write_pattern(&mut self.wbuf, done, n, chunk);
                    done += n;
                    self.flush().await?;
                }
                if chunk.is_some() {
                    self.wbuf.extend_from_slice(http::LAST_CHUNK);
                }
                Ok(s.keep_alive)
            }
            StreamKind::Hang { head } => {
                self.wbuf.extend_from_slice(&head);
                self.flush().await?;
                self.drain_until_closed().await;
                Ok(false)
            }
            StreamKind::Events {
                delay,
                head,
                events,
                interval,
                chunked,
                sse_stats,
                reset_after,
            } => {
                if sse_stats {
                    STATS.sse_started.fetch_add(1, Relaxed);
                }
                let pacing = Pacing {
                    delay,
                    interval,
                    chunked,
                    reset_after,
                };
                let outcome = self.events(&head, &events, pacing).await;
                if sse_stats {
                    let counter = if outcome == Outcome::Gone {
                        &STATS.sse_aborted
                    } else {
                        &STATS.sse_completed
                    };
                    counter.fetch_add(1, Relaxed);
                }
                Ok(s.keep_alive && outcome == Outcome::Done { open: true })
            }
        }
    }

    /// Sends an event stream, watching the read side for the client going away.
    async fn events(&mut self, head: &[u8], events: &Events, p: Pacing) -> Outcome {
        if !p.delay.is_zero() {
            monoio::time::sleep(p.delay).await;
        }
        self.wbuf.extend_from_slice(head);
        if self.rbuf.capacity() - self.rbuf.len() < 512 {
            self.rbuf.reserve(BUF);
        }
        // A read kept pending for the whole stream: it completes with 0 when the client closes.
        let canceller = Canceller::new();
        let buf = std::mem::take(&mut self.rbuf);
        let len = buf.len();
        let mut watch = pin!(self
            .rd
            .cancelable_read(buf.slice_mut(len..), canceller.handle()));
        let mut watched: Option<(io::Result<usize>, SliceMut<Vec<u8>>)> = None;
        let total = events.count();
        // Records to send: all of them, or those before a scripted reset.
        let send = p.reset_after.map_or(total, |n| n.min(total));
        let mut gone = false;
        let mut record = Vec::new();
        for i in 0..send {
            if i > 0 && !p.interval.is_zero() && events.paced(i) {
                if write_out(&mut self.wr, &mut self.wbuf).await.is_err() {
                    gone = true;
                    break;
                }
                if watched.is_some() {
                    // The client sent more (a pipelined request): it is buffered, stop watching.
                    monoio::time::sleep(p.interval).await;
                } else if let Either::Left(read) =
                    race(watch.as_mut(), monoio::time::sleep(p.interval)).await
                {
                    gone = !matches!(read.0, Ok(n) if n > 0);
                    watched = Some(read);
                    if gone {
                        break;
                    }
                }
            }
            if p.chunked {
                record.clear();
                events.write(i, &mut record);
                http::write_chunk(&mut self.wbuf, &record);
            } else {
                events.write(i, &mut self.wbuf);
            }
        }
        let reset = p.reset_after.is_some();
        if !gone && p.chunked && !reset {
            self.wbuf.extend_from_slice(http::LAST_CHUNK);
        }
        if !gone && write_out(&mut self.wr, &mut self.wbuf).await.is_err() {
            gone = true;
        }
        let (res, slice) = match watched {
            Some(read) => read,
            None => {
                let _ = canceller.cancel();
                watch.await
            }
        };
        self.rbuf = slice.into_inner();
        if gone {
            self.wbuf.clear();
            return Outcome::Gone;
        }
        if reset {
            return Outcome::Reset;
        }
        Outcome::Done {
            open: match res {
                Ok(n) => n > 0,
                Err(e) => e.raw_os_error() == Some(ECANCELED),
            },
        }
    }

    /// Reads and discards until the peer closes (`/hang`).
    async fn drain_until_closed(&mut self) {
        loop {
            self.rbuf.clear();
            self.pos = 0;
            if self.rbuf.capacity() == 0 {
                self.rbuf.reserve(BUF);
            }
            let buf = std::mem::take(&mut self.rbuf);
            let (res, buf) = self.rd.read(buf).await;
            self.rbuf = buf;
            if !matches!(res, Ok(n) if n > 0) {
                return;
            }
        }
    }
}

/// How an event stream is paced and ended.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// Before the head.
    delay: Duration,
    /// Before each paced record.
    interval: Duration,
    /// Chunked framing (HTTP/1.1) or close-delimited (HTTP/1.0).
    chunked: bool,
    /// Close after this many records without ending the body (a scripted reset).
    reset_after: Option<u64>,
}

/// How an event stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The client went away before the end.
    Gone,
    /// A scripted reset: records sent, body left unfinished; the connection must close.
    Reset,
    /// All sent; `open` tells whether the read side is still usable.
    Done { open: bool },
}

/// The errno of a canceled operation (Linux).
const ECANCELED: i32 = 125;

/// Writes `wbuf` out and clears it, keeping its allocation unless it grew large.
async fn write_out<W: AsyncWriteRent>(wr: &mut W, wbuf: &mut Vec<u8>) -> io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    let (res, mut buf) = wr.write_all(std::mem::take(wbuf)).await;
    buf.clear();
    if buf.capacity() > KEEP {
        buf = Vec::with_capacity(BUF);
    }
    *wbuf = buf;
    res.map(drop)
}

/// Buffers an error response for a request that cannot be served, and closes.
fn refuse(out: &mut Vec<u8>, status: u16, sh: &Shared) -> Step {
    let ctx = RespCtx {
        keep_alive: false,
        minor: 1,
        mock_id: sh.mock_id.as_deref(),
    };
    let body = format!("{{\"error\":\"{}\"}}", http::reason(status));
    http::write_head(
        out,
        status,
        Some("application/json"),
        BodyLen::Length(body.len()),
        &[],
        &ctx,
    );
    out.extend_from_slice(body.as_bytes());
    Step::Close
}

pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures until one is ready; `a` is polled first. `b` is dropped if `a` wins.
pub async fn race<A: Future, B: Future>(mut a: Pin<&mut A>, b: B) -> Either<A::Output, B::Output> {
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}
