//! A raw HTTP/1.1 client over `std::net::TcpStream`, for tests that must control every byte on
//! the wire and see every byte that comes back.
//!
//! Methods without `try_` panic with a message saying what was expected (tests want that); the
//! `try_` forms return the I/O error, for tests where a closed or reset connection is an allowed
//! outcome.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Read and write timeout of every client socket, unless a test sets another.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Minor version: `1` for HTTP/1.1.
    pub version: u8,
    /// Fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head on the wire.
    pub len: usize,
}

impl Head {
    /// The first value of field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `transfer-encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// `connection: close`.
    pub fn connection_close(&self) -> bool {
        self.header_all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// The `content-length`, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The final head.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Statuses of interim (1xx) responses read before the final one.
    pub interim: Vec<u16>,
    /// The body was chunked; these are the sizes of its chunks (last chunk excluded).
    pub chunks: Option<Vec<usize>>,
    /// The body was delimited by the server closing the connection.
    pub until_close: bool,
}

impl Response {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The first value of field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// Every value of field `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.head.header_all(name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }

    /// For a `/inspect` response of the mock: the values of request field `name` the upstream
    /// received (case-insensitive).
    pub fn inspected(&self, name: &str) -> Vec<String> {
        let doc = self.json();
        doc["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                    .filter_map(|h| h[1].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One event of a `text/event-stream` body, with the time its last byte was read.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The event's text without the blank line that ends it (e.g. `data: {...}`).
    pub text: String,
    /// When it arrived.
    pub at: Instant,
}

impl SseEvent {
    /// The value of its `data:` line(s), joined with `\n`.
    pub fn data(&self) -> String {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client connection.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Bytes read and not consumed yet.
    buf: Vec<u8>,
    /// The peer closed (a read returned 0).
    eof: bool,
}

impl Client {
    /// Connects to `addr` with [`IO_TIMEOUT`] on reads and writes; panics on failure.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
    }

    /// Connects to `addr`.
    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        Ok(Client {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Connects to `addr` from the local address `from` (port 0: any), e.g. `127.0.0.2` to be
    /// another loopback client; panics on failure.
    pub fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Client {
        let connect = || -> io::Result<TcpStream> {
            let domain = socket2::Domain::for_address(addr);
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(from, 0).into())?;
            s.connect_timeout(&addr.into(), IO_TIMEOUT)?;
            Ok(s.into())
        };
        let stream = connect().unwrap_or_else(|e| panic!("connecting to {addr} from {from}: {e}"));
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The socket, e.g. to clone it for a writer thread or to change its timeouts.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, d: Duration) {
        let _ = self.stream.set_read_timeout(Some(d));
    }

    /// Writes all of `bytes`; panics on failure.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("writing {} bytes: {e}", bytes.len()));
    }

    /// Writes all of `bytes`.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes the write side (the server sees end of input).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut tmp = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn need(&mut self, n: usize, what: &str) -> io::Result<()> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed in the middle of {what}"),
                ));
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads one line ending in CRLF (returned without it).
    fn read_line(&mut self, what: &str) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line = self.take(i + 2);
                line.truncate(i);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed in the middle of {what}"),
                ));
            }
        }
    }

    /// Reads one response head, interim (1xx) heads included.
    pub fn try_read_head(&mut self) -> io::Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = Head {
                        status: resp.code.unwrap_or(0),
                        reason: resp.reason.unwrap_or("").to_owned(),
                        version: resp.version.unwrap_or(0),
                        headers: resp
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        len,
                    };
                    self.take(len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "bad response head ({e}): {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ))
                }
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if self.buf.is_empty() {
                        "connection closed before a response".to_owned()
                    } else {
                        format!(
                            "connection closed in a response head: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        )
                    },
                ));
            }
        }
    }

    /// Reads one response head; panics on failure.
    pub fn read_head(&mut self) -> Head {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("reading a response head: {e}"))
    }

    /// Reads the body that goes with `head`. `head_request`: the request was HEAD (no body).
    /// Returns the body, the chunk sizes when chunked, and whether it was delimited by close.
    #[allow(clippy::type_complexity)]
    pub fn try_read_body(
        &mut self,
        head: &Head,
        head_request: bool,
    ) -> io::Result<(Vec<u8>, Option<Vec<usize>>, bool)> {
        let s = head.status;
        if head_request || (100..200).contains(&s) || s == 204 || s == 304 {
            return Ok((Vec::new(), None, false));
        }
        if head.is_chunked() {
            let mut body = Vec::new();
            let mut sizes = Vec::new();
            loop {
                let line = self.read_line("a chunk size line")?;
                let text = String::from_utf8_lossy(&line);
                let hex = text.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size line {text:?}"),
                    )
                })?;
                if size == 0 {
                    // Trailer fields, then the blank line.
                    while !self.read_line("the trailer")?.is_empty() {}
                    return Ok((body, Some(sizes), false));
                }
                self.need(size + 2, "a chunk")?;
                let data = self.take(size + 2);
                if &data[size..] != b"\r\n" {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "chunk not followed by CRLF",
                    ));
                }
                body.extend_from_slice(&data[..size]);
                sizes.push(size);
            }
        }
        if let Some(n) = head.content_length() {
            self.need(n as usize, "a response body")?;
            return Ok((self.take(n as usize), None, false));
        }
        // Delimited by close.
        while self.fill()? > 0 {}
        let body = std::mem::take(&mut self.buf);
        Ok((body, None, true))
    }

    /// Reads a whole response: interim 1xx heads (but `101`) are collected in
    /// [`Response::interim`], then the final head and its body.
    pub fn try_read_response_to(&mut self, head_request: bool) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let head = self.try_read_head()?;
            if (100..200).contains(&head.status) && head.status != 101 {
                interim.push(head.status);
                continue;
            }
            let (body, chunks, until_close) = self.try_read_body(&head, head_request)?;
            return Ok(Response {
                head,
                body,
                interim,
                chunks,
                until_close,
            });
        }
    }

    /// [`Client::try_read_response_to`] for a request that was not HEAD.
    pub fn try_read_response(&mut self) -> io::Result<Response> {
        self.try_read_response_to(false)
    }

    /// Reads a whole response to a request that was not HEAD; panics on failure.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads a whole response to a HEAD request (no body whatever the head says).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response_to(true)
            .unwrap_or_else(|e| panic!("reading a response to HEAD: {e}"))
    }

    /// Sends `raw` and reads the response.
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    /// `GET path` with `Host: test.local`, and its response.
    pub fn get(&mut self, path: &str) -> Response {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
    }

    /// Whether the server closes the connection within `limit` (end of stream or a reset), with
    /// no more bytes coming first than those already buffered. Bytes that do arrive are kept.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        if self.eof {
            return true;
        }
        let deadline = Instant::now() + limit;
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.fill() {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => break false,
                    io::ErrorKind::Interrupted => {}
                    _ => break true, // reset, aborted: closed
                },
            }
        };
        let _ = self.stream.set_read_timeout(Some(IO_TIMEOUT));
        result
    }

    /// Bytes read but not consumed by a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads whatever comes until the server closes or `limit` passes; returns the bytes and
    /// whether the connection closed.
    pub fn read_until_close(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        let closed = loop {
            if self.eof {
                break true;
            }
            let before = self.buf.len();
            if !self.closed_within(limit) {
                break false;
            }
            if self.buf.len() == before {
                break true;
            }
        };
        (std::mem::take(&mut self.buf), closed)
    }

    /// Reads exactly `n` bytes (e.g. from a tunnel after `101`).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        self.need(n, "raw bytes")
            .unwrap_or_else(|e| panic!("reading {n} raw bytes: {e}"));
        self.take(n)
    }

    /// Reads the head of an event stream and returns a reader of its events. Panics unless the
    /// status is 200.
    pub fn into_sse(mut self) -> SseStream {
        let head = self.read_head();
        assert_eq!(head.status, 200, "event stream head: {head:?}");
        SseStream {
            chunked: head.is_chunked(),
            client: self,
            head,
            text: Vec::new(),
            chunk_left: 0,
            done: false,
        }
    }
}

/// An event stream being read event by event.
#[derive(Debug)]
pub struct SseStream {
    client: Client,
    /// The response head.
    pub head: Head,
    chunked: bool,
    /// Decoded body bytes not yet split into events.
    text: Vec<u8>,
    /// Payload bytes left in the current chunk.
    chunk_left: usize,
    done: bool,
}

impl SseStream {
    /// The next event, or `None` at the end of the body. Panics on I/O errors and timeouts.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.try_next_event()
            .unwrap_or_else(|e| panic!("reading the event stream: {e}"))
    }

    /// The next event, or `Ok(None)` at the end of the body.
    pub fn try_next_event(&mut self) -> io::Result<Option<SseEvent>> {
        loop {
            if let Some(i) = self.text.windows(2).position(|w| w == b"\n\n") {
                let ev: Vec<u8> = self.text.drain(..i + 2).collect();
                return Ok(Some(SseEvent {
                    text: String::from_utf8_lossy(&ev[..i]).into_owned(),
                    at: Instant::now(),
                }));
            }
            if self.done {
                return Ok(None);
            }
            self.decode_more()?;
        }
    }

    /// Moves body bytes from the client buffer to `text`, reading from the socket when needed.
    fn decode_more(&mut self) -> io::Result<()> {
        let c = &mut self.client;
        if !self.chunked {
            if c.buf.is_empty() && c.fill()? == 0 {
                self.done = true;
                return Ok(());
            }
            self.text.append(&mut c.buf);
            return Ok(());
        }
        if self.chunk_left == 0 {
            let line = c.read_line("a chunk size line")?;
            if line.is_empty() {
                // The CRLF after a chunk's data.
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let hex = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {text:?}"),
                )
            })?;
            if size == 0 {
                while !c.read_line("the trailer")?.is_empty() {}
                self.done = true;
                return Ok(());
            }
            self.chunk_left = size;
        }
        if c.buf.is_empty() && c.fill()? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed in a chunk",
            ));
        }
        let n = self.chunk_left.min(c.buf.len());
        let data = c.take(n);
        self.text.extend_from_slice(&data);
        self.chunk_left -= n;
        Ok(())
    }

    /// Every remaining event (until the end of the body).
    pub fn rest(&mut self) -> Vec<SseEvent> {
        std::iter::from_fn(|| self.next_event()).collect()
    }

    /// The connection, e.g. to drop it mid-stream or to send the next request.
    pub fn into_client(self) -> Client {
        self.client
    }
}
