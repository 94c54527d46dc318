//! The downstream connection's read side. Reads append to one buffer that holds whatever the client
//! sent ahead (pipelined requests). While a response streams, the read side can be *watched*: a read
//! stays posted, so a client that hangs up is seen at once and the upstream request is cancelled; if
//! that read brings a pipelined request instead, the bytes are kept for the next loop.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, OwnedReadHalf};
use monoio::net::TcpStream;

type ReadHalf = OwnedReadHalf<TcpStream>;
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
        let Some(p) = self.pending.as_mut() else {
            return Ok(self.buf.as_ref().map_or(0, |b| b.len()).min(1));
        };
        let (r, buf, half) = p.await;
        self.pending = None;
        self.buf = Some(buf);
        self.half = Some(half);
        r
    }
}

/// Makes room for at least `want` more bytes; reclaims the buffer's space when nothing else
/// holds it.
pub fn reserve(buf: &mut BytesMut, want: usize) {
    if buf.capacity() - buf.len() < want / 2 {
        buf.reserve(want);
    }
}
