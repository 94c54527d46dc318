//! The two halves of a client connection, plain TCP or TLS: [`ClientRead`] and [`ClientWrite`].
//!
//! The kind is settled once, at the accept; after that each I/O call costs one enum match. The
//! TLS arms box their futures (a rustls read or write future is several times a socket's), so the
//! request path's futures, sized for their largest await, stay as small as a plain socket makes
//! them.

use std::cell::Cell;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::server::ServerStream;

/// The read half of a client connection.
#[derive(Debug)]
pub enum ClientRead {
    /// Plain TCP.
    Plain(OwnedReadHalf<TcpStream>),
    /// TLS.
    Tls(OwnedReadHalf<ServerStream>),
}

/// The write half of a client connection.
#[derive(Debug)]
pub enum ClientWrite {
    /// Plain TCP.
    Plain(OwnedWriteHalf<TcpStream>),
    /// TLS, with the stream's close signal (see [`ClientWrite::last_write_next`]).
    Tls(OwnedWriteHalf<ServerStream>, Rc<Cell<bool>>),
}

impl ClientWrite {
    /// The next write is the connection's last, and `shutdown` follows it: a TLS connection sends
    /// its `close_notify` with that write's bytes, and the socket is corked (`TCP_CORK`) so the
    /// bytes wait for the FIN that `shutdown` sends and leave with it in one segment. A closing
    /// connection's response, alert and FIN are one packet instead of three. Nothing may be
    /// written after that write.
    pub fn last_write_next(&self) {
        let fd = match self {
            ClientWrite::Plain(s) => s.as_fd(),
            ClientWrite::Tls(s, last) => {
                last.set(true);
                s.as_fd()
            }
        };
        // A failure only costs the packet saved (the bytes then go at once, as before).
        let _ = socket2::SockRef::from(&fd).set_cork(true);
    }
}

/// Splits a plain connection.
pub fn split_plain(s: TcpStream) -> (ClientRead, ClientWrite) {
    let (r, w) = s.into_split();
    (ClientRead::Plain(r), ClientWrite::Plain(w))
}

/// Splits a TLS connection.
pub fn split_tls(mut s: ServerStream) -> (ClientRead, ClientWrite) {
    let last = s.close_signal();
    let (r, w) = s.into_split();
    (ClientRead::Tls(r), ClientWrite::Tls(w, last))
}

/// A client that closes without `close_notify` ends its stream like a plain FIN.
fn eof_is_end<T>(r: BufResult<usize, T>) -> BufResult<usize, T> {
    match r {
        (Err(e), buf) if e.kind() == io::ErrorKind::UnexpectedEof => (Ok(0), buf),
        other => other,
    }
}

impl AsyncReadRent for ClientRead {
    #[inline]
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientRead::Plain(s) => s.read(buf).await,
            ClientRead::Tls(s) => eof_is_end(Box::pin(s.read(buf)).await),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientRead::Plain(s) => s.readv(buf).await,
            ClientRead::Tls(s) => eof_is_end(Box::pin(s.readv(buf)).await),
        }
    }
}

impl AsyncWriteRent for ClientWrite {
    #[inline]
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientWrite::Plain(s) => s.write(buf).await,
            ClientWrite::Tls(s, _) => Box::pin(s.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientWrite::Plain(s) => s.writev(buf).await,
            ClientWrite::Tls(s, _) => Box::pin(s.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientWrite::Plain(s) => s.flush().await,
            ClientWrite::Tls(s, _) => Box::pin(s.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientWrite::Plain(s) => s.shutdown().await,
            ClientWrite::Tls(s, _) => Box::pin(s.shutdown()).await,
        }
    }
}
