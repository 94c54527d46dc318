//! The downstream connection's read side. Reads append to one buffer that holds whatever the client
//! sent ahead (pipelined requests). While a response streams, the read side can be *watched*: a read
//! stays posted, so a client that hangs up is seen at once and the upstream request is cancelled; if
//! that read brings a pipelined request instead, the bytes are kept for the next loop.
//!
//! Every wait of a connection is bounded by its one timer ([`within`]) rather than a timer per read:
//! a deadline that moves later (the usual case, request after request) only updates the timer's
//! target, and the timer wheel sees the connection again only when that target is reached.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use monoio::buf::IoBuf;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Sleep;

/// The client connection's read half: plain or TLS, settled at the accept; or an HTTP/2
/// stream's request, through the pipe of its bridge.
pub enum ClientIn {
    /// A connection of its own.
    Conn(weir_tls::ClientRead),
    /// An h2 stream.
    Stream(weir_h2::pipe::PipeReader),
}

/// The client's write half (see [`ClientIn`]).
pub enum ClientOut {
    /// A connection of its own.
    Conn(weir_tls::ClientWrite),
    /// An h2 stream.
    Stream(weir_h2::pipe::PipeWriter),
}

impl AsyncReadRent for ClientIn {
    #[inline]
    async fn read<T: IoBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            ClientIn::Conn(c) => c.read(buf).await,
            ClientIn::Stream(s) => s.read(buf).await,
        }
    }

    async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            ClientIn::Conn(c) => c.readv(buf).await,
            ClientIn::Stream(s) => s.readv(buf).await,
        }
    }
}

impl ClientOut {
    /// The next write is the connection's last (see `weir_tls::ClientWrite::last_write_next`):
    /// a TLS connection's `close_notify` leaves with it. An h2 stream has nothing to do.
    pub fn last_write_next(&self) {
        if let ClientOut::Conn(c) = self {
            c.last_write_next();
        }
    }
}

impl AsyncWriteRent for ClientOut {
    #[inline]
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            ClientOut::Conn(c) => c.write(buf).await,
            ClientOut::Stream(s) => s.write(buf).await,
        }
    }

    async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        match self {
            ClientOut::Conn(c) => c.writev(buf).await,
            ClientOut::Stream(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientOut::Conn(c) => c.flush().await,
            ClientOut::Stream(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientOut::Conn(c) => c.shutdown().await,
            ClientOut::Stream(s) => s.shutdown().await,
        }
    }
}

type ReadHalf = ClientIn;
type Pending = Pin<Box<dyn Future<Output = (io::Result<usize>, BytesMut, ReadHalf)>>>;

/// Initial buffer for request and response heads; grows for larger heads.
pub const HEAD_BUF: usize = 2048;
/// Read size of a response body while the upstream sends little at a time (SSE).
pub const STREAM_READ: usize = 2048;
/// Read size while a body streams.
pub const BODY_READ: usize = 16 << 10;

/// The read side of a client connection and its buffer.
pub struct ClientReader {
    half: Option<ReadHalf>,
    buf: Option<BytesMut>,
    pending: Option<Pending>,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection read side lost")
}

impl ClientReader {
    /// Wraps the read half.
    pub fn new(half: ReadHalf) -> Self {
        ClientReader {
            half: Some(half),
            buf: Some(BytesMut::with_capacity(HEAD_BUF)),
            pending: None,
        }
    }

    /// Wraps the read half, with bytes already read from the connection (after a PROXY
    /// protocol header) as the start of its buffer.
    pub fn with_bytes(half: ReadHalf, early: &[u8]) -> Self {
        let mut r = ClientReader::new(half);
        if !early.is_empty() {
            r.buf().extend_from_slice(early);
        }
        r
    }

    /// The read half and the bytes read ahead (`None` while a watch read is posted).
    pub fn into_parts(self) -> Option<(ReadHalf, BytesMut)> {
        match (self.half, self.buf, self.pending) {
            (Some(h), buf, None) => Some((h, buf.unwrap_or_default())),
            _ => None,
        }
    }

    /// The buffered bytes. Empty while a watch read is posted (it owns the buffer then).
    pub fn buf(&mut self) -> &mut BytesMut {
        // The buffer is only absent while a read owns it; callers read it after `fill`/`settle`.
        self.buf.get_or_insert_with(BytesMut::new)
    }

    /// Whether a watch read is posted.
    pub fn is_watching(&self) -> bool {
        self.pending.is_some()
    }

    /// Reads more bytes into the buffer (finishing a posted watch read first). `Ok(0)`: the client
    /// closed its side.
    pub async fn fill(&mut self, want: usize) -> io::Result<usize> {
        if self.pending.is_some() {
            return self.settle().await;
        }
        let mut buf = self.buf.take().ok_or_else(broken)?;
        let half = self.half.as_mut().ok_or_else(broken)?;
        reserve(&mut buf, want);
        let len = buf.len();
        let cap = buf.capacity();
        let (r, slice) = half.read(buf.slice_mut(len..cap)).await;
        self.buf = Some(slice.into_inner());
        r
    }

    /// Posts a read that stays in flight across awaits elsewhere (see the module doc).
    pub fn watch(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let (Some(mut buf), Some(mut half)) = (self.buf.take(), self.half.take()) else {
            return;
        };
        reserve(&mut buf, 512);
        self.pending = Some(Box::pin(async move {
            let len = buf.len();
            let cap = buf.capacity();
            let (r, slice) = half.read(buf.slice_mut(len..cap)).await;
            (r, slice.into_inner(), half)
        }));
    }

    /// Waits for the posted watch read to complete and takes its result. Cancel-safe: if this
    /// future is dropped, the read stays posted.
    pub async fn settle(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_settle(cx)).await
    }

    /// [`settle`](ClientReader::settle) as a poll, for a wait on several things at once.
    pub fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(p) = self.pending.as_mut() else {
            return Poll::Ready(Ok(self.buf.as_ref().map_or(0, |b| b.len()).min(1)));
        };
        let (r, buf, half) = std::task::ready!(p.as_mut().poll(cx));
        self.pending = None;
        self.buf = Some(buf);
        self.half = Some(half);
        Poll::Ready(r)
    }
}

/// Makes room for at least `want` more bytes; reclaims the buffer's space when nothing else
/// holds it.
pub fn reserve(buf: &mut BytesMut, want: usize) {
    if buf.capacity() - buf.len() < want / 2 {
        buf.reserve(want);
    }
}

/// A connection's one timer. A wait sets its *target*; the sleep underneath is moved only when the
/// target comes before it, which is rare: deadlines move later, request after request. When the
/// sleep fires before the target, it is aimed at the target then. So a connection costs the timer
/// wheel one entry and about one firing per timeout period, not two updates per request.
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    target: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        // Not in the timer wheel until first polled.
        let far = far_future();
        Timer {
            sleep: Box::pin(monoio::time::sleep_until(far)),
            target: far.into_std(),
        }
    }
}

impl Timer {
    /// Sets the deadline of the next waits.
    pub fn aim(&mut self, deadline: Instant) {
        self.target = deadline;
        if deadline < self.sleep.deadline().into_std() {
            self.sleep
                .as_mut()
                .reset(monoio::time::Instant::from_std(deadline));
        }
    }

    /// Ready once the deadline has passed.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            // The sleep fired at its own deadline: the target, or an earlier one it still had.
            if self.sleep.deadline().into_std() >= self.target {
                return Poll::Ready(());
            }
            self.sleep
                .as_mut()
                .reset(monoio::time::Instant::from_std(self.target));
        }
    }
}

fn far_future() -> monoio::time::Instant {
    monoio::time::Instant::now() + std::time::Duration::from_secs(86400 * 365)
}

/// Awaits `fut` until `deadline` (on the connection's [`Timer`]): `None` if the deadline came first
/// (`fut` is then dropped). A macro, so that it is written out at the await point and the caller's
/// own future holds the I/O future in place (a future level, and two copies of it, fewer than a
/// call to an `async fn`).
macro_rules! within {
    ($timer:expr, $deadline:expr, $fut:expr) => {{
        let timer: &mut $crate::io::Timer = $timer;
        timer.aim($deadline);
        let mut fut = std::pin::pin!($fut);
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
                return std::task::Poll::Ready(Some(v));
            }
            timer.poll_expired(cx).map(|()| None)
        })
        .await
    }};
}
pub(crate) use within;

/// `now + d`, or the far future when that does not fit an `Instant`.
pub fn after(now: Instant, d: std::time::Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| far_future().into_std())
}

/// Writes all of `buf`: one write op takes a head whole almost always, and only the rest (if
/// any) goes through `write_all` (one future level fewer than `write_all` for the usual case).
pub async fn write_whole<W: AsyncWriteRent>(w: &mut W, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    let len = buf.len();
    let (r, buf) = w.write(buf).await;
    match r {
        Ok(n) if n < len => {
            let (r, rest) = w.write_all(buf.slice(n..)).await;
            (r.map(|_| ()), rest.into_inner())
        }
        Ok(_) => (Ok(()), buf),
        Err(e) => (Err(e), buf),
    }
}

/// Reads from an upstream connection. A plain socket's read is awaited in place; a TLS stream's
/// (a future several times larger) is boxed, so that the request path's future, sized for its
/// largest await, does not carry it for plain connections.
pub async fn read_upstream<T: IoBufMut + 'static>(
    s: &mut weir_upstream::MaybeTls,
    buf: T,
) -> monoio::BufResult<usize, T> {
    match s {
        weir_upstream::MaybeTls::Plain(tcp) => tcp.read(buf).await,
        tls => Box::pin(tls.read(buf)).await,
    }
}

/// [`write_whole`] to an upstream connection, the TLS case boxed (see [`read_upstream`]).
pub async fn write_upstream(
    s: &mut weir_upstream::MaybeTls,
    buf: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    match s {
        weir_upstream::MaybeTls::Plain(tcp) => write_whole(tcp, buf).await,
        tls => Box::pin(write_whole(tls, buf)).await,
    }
}
