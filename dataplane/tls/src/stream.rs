//! [`MaybeTls`]: an upstream connection that is plain TCP or TLS over TCP, with monoio's
//! rent-style I/O traits, and its owned halves for a tunnel after an upgrade.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

/// The TLS stream type (boxed in [`MaybeTls`]: a rustls session and its buffers are large, and
/// most upstream connections are plain).
pub type TlsStream = ClientTlsStream<TcpStream>;

/// A connection to an upstream: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub enum MaybeTls {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (handshake done).
    Tls(Box<TlsStream>),
}

impl From<TcpStream> for MaybeTls {
    fn from(s: TcpStream) -> Self {
        MaybeTls::Plain(s)
    }
}

impl MaybeTls {
    /// Whether this is a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The protocol the server chose by ALPN (TLS only).
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(s) => s.alpn_protocol(),
        }
    }
}

/// A TLS peer that closes its TCP side without a `close_notify` alert ends the stream like a
/// plain one: rustls reports `UnexpectedEof`, and HTTP/1.1 framing (a Content-Length or a
/// chunked body cut short) is what tells a truncated response from a complete one, for TLS as
/// for plain connections. Many servers close idle keep-alive connections this way.
fn eof_is_end<T>(r: BufResult<usize, T>) -> BufResult<usize, T> {
    match r {
        (Err(e), buf) if e.kind() == io::ErrorKind::UnexpectedEof => (Ok(0), buf),
        other => other,
    }
}

impl AsyncReadRent for MaybeTls {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.read(buf).await,
            MaybeTls::Tls(s) => eof_is_end(s.read(buf).await),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.readv(buf).await,
            MaybeTls::Tls(s) => eof_is_end(s.readv(buf).await),
        }
    }
}

impl AsyncWriteRent for MaybeTls {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.write(buf).await,
            MaybeTls::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.writev(buf).await,
            MaybeTls::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush().await,
            MaybeTls::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.shutdown().await,
            MaybeTls::Tls(s) => s.shutdown().await,
        }
    }
}

/// The read half of a split [`MaybeTls`].
#[derive(Debug)]
pub enum MaybeTlsReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf<TcpStream>),
    /// TLS.
    Tls(OwnedReadHalf<TlsStream>),
}

/// The write half of a split [`MaybeTls`].
#[derive(Debug)]
pub enum MaybeTlsWriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf<TcpStream>),
    /// TLS.
    Tls(OwnedWriteHalf<TlsStream>),
}

/// Split into halves that may read and write at once (a tunnel after `101`). Both variants
/// split the way monoio and monoio-rustls split their own streams.
impl Splitable for MaybeTls {
    type OwnedRead = MaybeTlsReadHalf;
    type OwnedWrite = MaybeTlsWriteHalf;

    fn into_split(self) -> (MaybeTlsReadHalf, MaybeTlsWriteHalf) {
        match self {
            MaybeTls::Plain(s) => {
                let (r, w) = s.into_split();
                (MaybeTlsReadHalf::Plain(r), MaybeTlsWriteHalf::Plain(w))
            }
            MaybeTls::Tls(s) => {
                let (r, w) = (*s).into_split();
                (MaybeTlsReadHalf::Tls(r), MaybeTlsWriteHalf::Tls(w))
            }
        }
    }
}

impl AsyncReadRent for MaybeTlsReadHalf {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTlsReadHalf::Plain(s) => s.read(buf).await,
            MaybeTlsReadHalf::Tls(s) => eof_is_end(s.read(buf).await),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTlsReadHalf::Plain(s) => s.readv(buf).await,
            MaybeTlsReadHalf::Tls(s) => eof_is_end(s.readv(buf).await),
        }
    }
}

impl AsyncWriteRent for MaybeTlsWriteHalf {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTlsWriteHalf::Plain(s) => s.write(buf).await,
            MaybeTlsWriteHalf::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTlsWriteHalf::Plain(s) => s.writev(buf).await,
            MaybeTlsWriteHalf::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTlsWriteHalf::Plain(s) => s.flush().await,
            MaybeTlsWriteHalf::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            MaybeTlsWriteHalf::Plain(s) => s.shutdown().await,
            MaybeTlsWriteHalf::Tls(s) => s.shutdown().await,
        }
    }
}
