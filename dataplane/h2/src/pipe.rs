//! An in-process, single-core byte pipe with a bound: [`pipe`] returns its two ends.
//!
//! The HTTP/2 layer serves each stream through the HTTP/1.1 request path: the stream's request
//! goes in as HTTP/1.1 bytes through one pipe, the response comes out through another. The ends
//! are monoio streams ([`AsyncReadRent`]/[`AsyncWriteRent`]) on the request path's side, and
//! give and take [`Bytes`] without a copy on the h2 side. A writer waits while `limit` bytes are
//! buffered, so a slow h2 client slows the upstream read as a slow socket would.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, IoVecWrapper, IoVecWrapperMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

struct Shared {
    buf: BytesMut,
    limit: usize,
    /// The writer is gone or closed: the reader sees the end once the buffer is empty.
    write_closed: bool,
    /// The reader is gone: writes fail.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Shared {
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// The writing end.
pub struct PipeWriter(Rc<RefCell<Shared>>);

/// The reading end.
pub struct PipeReader(Rc<RefCell<Shared>>);

/// Ends a pipe's stream from outside its writer ([`PipeWriter::closer`]).
pub struct PipeCloser(Rc<RefCell<Shared>>);

impl PipeCloser {
    /// The reader sees the end after what is buffered.
    pub fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.write_closed = true;
        s.wake_reader();
    }
}

/// Closes a pipe's reading end from outside its reader ([`PipeReader::closer`]).
pub struct ReadCloser(Rc<RefCell<Shared>>);

impl ReadCloser {
    /// The writer's next write fails; what is buffered is dropped.
    pub fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.read_closed = true;
        s.buf.clear();
        s.wake_writer();
    }
}

/// A pipe that buffers up to `limit` bytes before its writer waits.
pub fn pipe(limit: usize) -> (PipeWriter, PipeReader) {
    let s = Rc::new(RefCell::new(Shared {
        buf: BytesMut::new(),
        limit: limit.max(1),
        write_closed: false,
        read_closed: false,
        reader: None,
        writer: None,
    }));
    (PipeWriter(s.clone()), PipeReader(s))
}

fn reader_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the pipe's reader is gone")
}

impl PipeWriter {
    /// Ready when there is room (or the reader is gone: an error).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        if s.read_closed {
            return Poll::Ready(Err(reader_gone()));
        }
        if s.buf.len() < s.limit {
            return Poll::Ready(Ok(()));
        }
        s.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for room.
    pub async fn ready(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Appends `data` whatever the bound (callers wait for [`ready`](PipeWriter::ready) first).
    pub fn push(&mut self, data: &[u8]) {
        let mut s = self.0.borrow_mut();
        if s.read_closed || data.is_empty() {
            return;
        }
        s.buf.extend_from_slice(data);
        s.wake_reader();
    }

    /// Ends the stream: the reader sees the end after what is buffered.
    pub fn close(&mut self) {
        let mut s = self.0.borrow_mut();
        s.write_closed = true;
        s.wake_reader();
    }

    /// A handle that ends the stream like [`close`](PipeWriter::close), for a holder of the
    /// writer elsewhere.
    pub fn closer(&self) -> PipeCloser {
        PipeCloser(self.0.clone())
    }

    async fn write_from(&mut self, ptr: *const u8, len: usize) -> io::Result<usize> {
        self.ready().await?;
        // SAFETY: `ptr..ptr+len` is the initialized part of a buffer the caller owns for the
        // whole call (monoio's owned-buffer contract), and nothing else writes to it meanwhile.
        #[allow(unsafe_code)]
        let data = unsafe { std::slice::from_raw_parts(ptr, len) };
        self.push(data);
        Ok(len)
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.close();
    }
}

impl PipeReader {
    /// Takes everything buffered, as one chunk; `None` at the end of the stream.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut s = self.0.borrow_mut();
        if !s.buf.is_empty() {
            let b = s.buf.split().freeze();
            s.wake_writer();
            return Poll::Ready(Some(b));
        }
        if s.write_closed {
            return Poll::Ready(None);
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// [`poll_chunk`](PipeReader::poll_chunk) as a future.
    pub async fn chunk(&mut self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// A handle that closes the reading end like [`close`](PipeReader::close).
    pub fn closer(&self) -> ReadCloser {
        ReadCloser(self.0.clone())
    }

    /// Closes the reading end early: the writer's next write fails.
    pub fn close(&mut self) {
        let mut s = self.0.borrow_mut();
        s.read_closed = true;
        s.buf.clear();
        s.wake_writer();
    }

    /// Copies up to `len` buffered bytes to `ptr`; `Ready(0)` at the end of the stream.
    fn poll_copy(&mut self, cx: &mut Context<'_>, ptr: *mut u8, len: usize) -> Poll<usize> {
        let mut s = self.0.borrow_mut();
        if s.buf.is_empty() {
            if s.write_closed || len == 0 {
                return Poll::Ready(0);
            }
            s.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.buf.len().min(len);
        // SAFETY: `ptr..ptr+len` is the writable part of a buffer the caller owns for the whole
        // call (monoio's owned-buffer contract); `n <= len`, and the source is our own buffer.
        #[allow(unsafe_code)]
        unsafe {
            ptr.copy_from_nonoverlapping(s.buf.as_ptr(), n);
        }
        let _ = s.buf.split_to(n);
        s.wake_writer();
        Poll::Ready(n)
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeReader")
            .field("buffered", &self.0.borrow().buf.len())
            .finish()
    }
}

impl std::fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWriter")
            .field("buffered", &self.0.borrow().buf.len())
            .finish()
    }
}

impl AsyncReadRent for PipeReader {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let ptr = buf.write_ptr();
        let len = buf.bytes_total();
        let n = std::future::poll_fn(|cx| self.poll_copy(cx, ptr, len)).await;
        // SAFETY: `poll_copy` initialized the first `n` bytes at `write_ptr`.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_init(n);
        }
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let wrapped = match IoVecWrapperMut::new(buf) {
            Ok(w) => w,
            Err(buf) => return (Ok(0), buf),
        };
        let (r, w) = self.read(wrapped).await;
        (r, w.into_inner())
    }
}

impl AsyncWriteRent for PipeWriter {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = self.write_from(buf.read_ptr(), buf.bytes_init()).await;
        (r, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let wrapped = match IoVecWrapper::new(buf) {
            Ok(w) => w,
            Err(buf) => return (Ok(0), buf),
        };
        let (r, w) = self.write(wrapped).await;
        (r, w.into_inner())
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;

    #[test]
    fn bytes_flow_and_the_end_is_seen() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut w, mut r) = pipe(8);
            let (res, _) = w.write_all(b"abc".to_vec()).await;
            res.expect("write");
            w.close();
            let (n, buf) = r.read(Vec::with_capacity(2)).await;
            assert_eq!(n.expect("read"), 2);
            assert_eq!(buf, b"ab");
            assert_eq!(r.chunk().await.as_deref(), Some(&b"c"[..]));
            assert_eq!(r.chunk().await, None);
        });
    }

    #[test]
    fn a_full_pipe_makes_the_writer_wait_and_a_gone_reader_fails_it() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut w, mut r) = pipe(4);
            w.push(b"12345");
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(w.poll_ready(&mut cx).is_pending());
            assert_eq!(r.chunk().await.as_deref(), Some(&b"12345"[..]));
            assert!(w.poll_ready(&mut cx).is_ready());
            drop(r);
            let (res, _) = w.write(b"x".to_vec()).await;
            assert_eq!(
                res.expect_err("reader gone").kind(),
                io::ErrorKind::BrokenPipe
            );
        });
    }
}
