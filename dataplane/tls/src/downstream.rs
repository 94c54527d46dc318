//! The two halves of a client connection, plain TCP or TLS: [`ClientRead`] and [`ClientWrite`].
//!
//! The kind is settled once, at the accept; after that each I/O call costs one enum match. The
//! TLS arms box their futures (a rustls read or write future is several times a socket's), so the
//! request path's futures, sized for their largest await, stay as small as a plain socket makes
//! them.

use std::io;

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
    /// TLS.
    Tls(OwnedWriteHalf<ServerStream>),
}

/// Splits a plain connection.
pub fn split_plain(s: TcpStream) -> (ClientRead, ClientWrite) {
    let (r, w) = s.into_split();
    (ClientRead::Plain(r), ClientWrite::Plain(w))
}

/// Splits a TLS connection.
pub fn split_tls(s: ServerStream) -> (ClientRead, ClientWrite) {
    let (r, w) = s.into_split();
    (ClientRead::Tls(r), ClientWrite::Tls(w))
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
            ClientWrite::Tls(s) => Box::pin(s.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientWrite::Plain(s) => s.writev(buf).await,
            ClientWrite::Tls(s) => Box::pin(s.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientWrite::Plain(s) => s.flush().await,
            ClientWrite::Tls(s) => Box::pin(s.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientWrite::Plain(s) => s.shutdown().await,
            ClientWrite::Tls(s) => Box::pin(s.shutdown()).await,
        }
    }
}
