//! [`Io`]: a monoio connection's two halves as the `tokio::io` traits the h2 crate is written
//! against.
//!
//! monoio's I/O owns its buffers (an io_uring op may outlive the future that posted it), while
//! h2 lends slices to `poll_read`/`poll_write`. So each half keeps one owned buffer and at most
//! one operation in flight: a read fills the buffer and `poll_read` copies out of it; a write
//! copies h2's bytes into the buffer and is posted at once, `poll_flush` waits for it. h2 writes
//! whole frames from its own buffer, so the copy is per write, not per byte of ceremony.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// Read size: one TLS record, or many small frames.
const READ_SIZE: usize = 16 << 10;

type ReadOp<R> = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>, R)>>>;
type WriteOp<W> = Pin<Box<dyn Future<Output = (io::Result<()>, Vec<u8>, W)>>>;
type ShutdownOp<W> = Pin<Box<dyn Future<Output = (io::Result<()>, W)>>>;

enum ReadSide<R> {
    Idle(R),
    Busy(ReadOp<R>),
    Broken,
}

enum WriteSide<W> {
    Idle(W),
    Busy(WriteOp<W>),
    Closing(ShutdownOp<W>),
    Broken,
}

/// The two halves of a connection, as one `tokio::io::AsyncRead + AsyncWrite`.
pub struct Io<R, W> {
    rd: ReadSide<R>,
    /// Bytes read and not yet taken: `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    wr: WriteSide<W>,
    /// The buffer of the next write (the one in flight owns its own).
    wbuf: Vec<u8>,
}

impl<R, W> Io<R, W>
where
    R: AsyncReadRent + 'static,
    W: AsyncWriteRent + 'static,
{
    /// Wraps the halves; `early` are bytes already read from the connection (a sniffed
    /// preface), served first.
    pub fn new(read: R, write: W, early: Vec<u8>) -> Self {
        Io {
            rd: ReadSide::Idle(read),
            rbuf: early,
            rpos: 0,
            wr: WriteSide::Idle(write),
            wbuf: Vec::with_capacity(READ_SIZE),
        }
    }

    /// Drives the write in flight, if any, to its end.
    fn poll_write_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let WriteSide::Busy(op) = &mut self.wr {
            let (r, mut buf, w) = ready!(op.as_mut().poll(cx));
            self.wr = WriteSide::Idle(w);
            buf.clear();
            if self.wbuf.capacity() < buf.capacity() {
                self.wbuf = buf;
            }
            if let Err(e) = r {
                self.wr = WriteSide::Broken;
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection closed")
}

impl<R, W> tokio::io::AsyncRead for Io<R, W>
where
    R: AsyncReadRent + Unpin + 'static,
    W: AsyncWriteRent + Unpin + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.rpos < this.rbuf.len() {
                let n = (this.rbuf.len() - this.rpos).min(out.remaining());
                out.put_slice(&this.rbuf[this.rpos..this.rpos + n]);
                this.rpos += n;
                return Poll::Ready(Ok(()));
            }
            match std::mem::replace(&mut this.rd, ReadSide::Broken) {
                ReadSide::Idle(mut half) => {
                    let mut buf = std::mem::take(&mut this.rbuf);
                    buf.clear();
                    buf.reserve(READ_SIZE);
                    this.rpos = 0;
                    this.rd = ReadSide::Busy(Box::pin(async move {
                        let (r, buf) = half.read(buf).await;
                        (r, buf, half)
                    }));
                }
                ReadSide::Busy(mut op) => match op.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.rd = ReadSide::Busy(op);
                        return Poll::Pending;
                    }
                    Poll::Ready((r, buf, half)) => {
                        this.rbuf = buf;
                        this.rpos = 0;
                        this.rd = ReadSide::Idle(half);
                        match r {
                            // The end of the stream: nothing filled.
                            Ok(0) => return Poll::Ready(Ok(())),
                            Ok(_) => {}
                            Err(e) => {
                                this.rd = ReadSide::Broken;
                                return Poll::Ready(Err(e));
                            }
                        }
                    }
                },
                ReadSide::Broken => return Poll::Ready(Err(broken())),
            }
        }
    }
}

impl<R, W> tokio::io::AsyncWrite for Io<R, W>
where
    R: AsyncReadRent + Unpin + 'static,
    W: AsyncWriteRent + Unpin + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_write_done(cx))?;
        let half = match std::mem::replace(&mut this.wr, WriteSide::Broken) {
            WriteSide::Idle(w) => w,
            other => {
                this.wr = other;
                return Poll::Ready(Err(broken()));
            }
        };
        let mut buf = std::mem::take(&mut this.wbuf);
        buf.extend_from_slice(data);
        let mut op: WriteOp<W> = Box::pin(async move {
            let mut half = half;
            let (r, buf) = half.write_all(buf).await;
            (r.map(|_| ()), buf, half)
        });
        // Posted now: the bytes are on their way before h2 asks for a flush.
        match op.as_mut().poll(cx) {
            Poll::Pending => this.wr = WriteSide::Busy(op),
            Poll::Ready((r, mut buf, w)) => {
                this.wr = WriteSide::Idle(w);
                buf.clear();
                this.wbuf = buf;
                if let Err(e) = r {
                    this.wr = WriteSide::Broken;
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_done(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_done(cx))?;
        loop {
            match std::mem::replace(&mut this.wr, WriteSide::Broken) {
                WriteSide::Idle(mut w) => {
                    this.wr = WriteSide::Closing(Box::pin(async move {
                        let r = w.shutdown().await;
                        (r, w)
                    }));
                }
                WriteSide::Closing(mut op) => match op.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.wr = WriteSide::Closing(op);
                        return Poll::Pending;
                    }
                    Poll::Ready((r, _w)) => return Poll::Ready(r),
                },
                WriteSide::Busy(op) => {
                    this.wr = WriteSide::Busy(op);
                    return Poll::Pending;
                }
                WriteSide::Broken => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncRead, AsyncWrite};

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[test]
    fn early_bytes_come_first_then_the_stream() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (w, r) = crate::pipe::pipe(1024);
            let (w2, _r2) = crate::pipe::pipe(1024);
            let mut w = w;
            w.push(b" world");
            w.close();
            let mut io = Io::new(r, w2, b"hello".to_vec());
            let mut got = Vec::new();
            loop {
                let mut b = [0u8; 4];
                let mut rb = tokio::io::ReadBuf::new(&mut b);
                let p = std::future::poll_fn(|cx| Pin::new(&mut io).poll_read(cx, &mut rb)).await;
                p.expect("read");
                if rb.filled().is_empty() {
                    break;
                }
                got.extend_from_slice(rb.filled());
            }
            assert_eq!(got, b"hello world");
        });
    }

    #[test]
    fn writes_arrive_in_order_and_flush_waits_for_them() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (w, mut r) = crate::pipe::pipe(1 << 20);
            let (_w0, r0) = crate::pipe::pipe(16);
            let mut io = Io::new(r0, w, Vec::new());
            for part in [&b"one "[..], b"two ", b"three"] {
                let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, part))
                    .await
                    .expect("write");
                assert_eq!(n, part.len());
            }
            std::future::poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                .await
                .expect("flush");
            let mut cx = noop_cx();
            let mut got = Vec::new();
            while let Poll::Ready(Some(b)) = r.poll_chunk(&mut cx) {
                got.extend_from_slice(&b);
            }
            assert_eq!(got, b"one two three");
            std::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
                .await
                .expect("shutdown");
            assert!(matches!(r.poll_chunk(&mut cx), Poll::Ready(None)));
        });
    }
}
