//! HTTP/1.1 helpers of the mock: request-head parsing on `httparse`, an incremental chunked-body
//! decoder, query-string lookup and response-head writing.
//!
//! Strict where a proxy under test could hide a bug (both Content-Length and chunked, conflicting
//! lengths, unknown transfer codings are errors), lenient elsewhere: this is a test peer.

use std::io::Write;
use std::mem::MaybeUninit;

/// Most headers one request may carry (more → 431).
pub const MAX_HEADERS: usize = 96;
/// Largest request head, request line included (more → 431).
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body the mock buffers.
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding).
    None,
    /// `content-length: N`.
    Length(usize),
    /// `transfer-encoding: chunked`.
    Chunked,
}

impl Framing {
    /// The `x-request-transfer` label of this framing.
    pub fn label(self) -> &'static str {
        match self {
            Framing::None => "none",
            Framing::Length(_) => "length",
            Framing::Chunked => "chunked",
        }
    }
}

/// A parsed request head; borrows the read buffer (`'b`) and the header array (`'h`).
#[derive(Debug)]
pub struct Head<'h, 'b> {
    pub method: &'b str,
    /// The request target exactly as received (path and query).
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: Framing,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `expect: 100-continue` was sent.
    pub expect_continue: bool,
    pub headers: &'h [httparse::Header<'b>],
}

impl Head<'_, '_> {
    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query part of the target (after `?`), empty when absent.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Why a request head was refused; each maps to the status the mock answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed request line or header (400).
    Malformed,
    /// Too many headers or a head over [`MAX_HEAD`] (431).
    TooLarge,
    /// Content-Length together with Transfer-Encoding, or two different lengths (400).
    AmbiguousLength,
    /// A transfer coding other than a lone `chunked` (501).
    UnsupportedCoding,
    /// A body over [`MAX_BODY`] (413).
    BodyTooLarge,
}

impl ParseError {
    pub fn status(self) -> u16 {
        match self {
            ParseError::Malformed | ParseError::AmbiguousLength => 400,
            ParseError::TooLarge => 431,
            ParseError::UnsupportedCoding => 501,
            ParseError::BodyTooLarge => 413,
        }
    }
}

/// Room for the headers of one request, left uninitialized (zeroing it would cost more than
/// parsing a small request).
pub fn header_slots<'b>() -> [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Parses one request head from the start of `buf`. `Ok(None)`: the head is not complete yet.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head<'h, 'b>>, ParseError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(ParseError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooLarge),
        Err(_) => return Err(ParseError::Malformed),
    };
    if len > MAX_HEAD {
        return Err(ParseError::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Malformed);
    };
    let headers: &'h [httparse::Header<'b>] = req.headers;

    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(h.value).ok_or(ParseError::Malformed)?;
            if length.is_some_and(|m| m != n) {
                return Err(ParseError::AmbiguousLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(ParseError::UnsupportedCoding);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&c| c == b',') {
                let token = trim(token);
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    let framing = match (length, chunked) {
        (Some(_), true) => return Err(ParseError::AmbiguousLength),
        (Some(n), false) if n > MAX_BODY => return Err(ParseError::BodyTooLarge),
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::None,
    };
    let keep_alive = !close && (minor == 1 || keep_alive_token);
    Ok(Some(Head {
        method,
        target,
        minor,
        len,
        framing,
        keep_alive,
        expect_continue,
        headers,
    }))
}

/// A non-empty run of ASCII digits, without overflow.
pub fn parse_decimal(s: &[u8]) -> Option<usize> {
    let s = trim(s);
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0usize, |acc, &c| {
        c.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(usize::from(c - b'0')))
            .flatten()
    })
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// The value of `key` in a query string (`a=1&b=2`), undecoded. A bare `key` yields `""`.
pub fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// A numeric query parameter, or `default` when absent or not a number.
pub fn query_num(query: &str, key: &str, default: u64) -> u64 {
    query_param(query, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// === impl ChunkedDecoder ===

/// Decodes a `transfer-encoding: chunked` body incrementally: feed it whatever bytes have
/// arrived, it appends the payload to `out` and reports how many input bytes it consumed.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    size_digits: u8,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex chunk size.
    #[default]
    Size,
    /// Skipping a chunk extension up to CR.
    Extension,
    /// Expecting LF after the size line.
    SizeLf,
    /// Copying chunk payload (`size` bytes left).
    Data,
    /// Expecting CR after the payload.
    DataCr,
    /// Expecting LF after the payload.
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Expecting the LF of the final blank line.
    FinalLf,
    /// The body is complete.
    Done,
}

/// The chunked framing was invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError;

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the terminating chunk and trailers were seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes framing and payload from `input`, appending payload to `out`. Stops at the end
    /// of the body (bytes after it belong to the next request) and returns the bytes consumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let c = input[i];
            match self.state {
                ChunkState::Size => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        // 15 hex digits is far beyond MAX_BODY and cannot overflow u64.
                        if self.size_digits >= 15 {
                            return Err(ChunkError);
                        }
                        let d = (c as char).to_digit(16).ok_or(ChunkError)?;
                        self.size = self.size * 16 + u64::from(d);
                        self.size_digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.size_digits > 0 => {
                        self.state = ChunkState::Extension
                    }
                    b'\r' if self.size_digits > 0 => self.state = ChunkState::SizeLf,
                    _ => return Err(ChunkError),
                },
                ChunkState::Extension => {
                    if c == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if c == b'\n' {
                        return Err(ChunkError);
                    }
                }
                ChunkState::SizeLf => {
                    if c != b'\n' {
                        return Err(ChunkError);
                    }
                    if self.size == 0 {
                        self.state = ChunkState::TrailerStart;
                    } else {
                        if out.len() as u64 + self.size > MAX_BODY as u64 {
                            return Err(ChunkError);
                        }
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    let take =
                        (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if c != b'\r' {
                        return Err(ChunkError);
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if c != b'\n' {
                        return Err(ChunkError);
                    }
                    self.size_digits = 0;
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => {
                    self.state = if c == b'\r' {
                        ChunkState::FinalLf
                    } else {
                        ChunkState::TrailerLine
                    };
                }
                ChunkState::TrailerLine => {
                    if c == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::FinalLf => {
                    if c != b'\n' {
                        return Err(ChunkError);
                    }
                    self.state = ChunkState::Done;
                    return Ok(i + 1);
                }
                ChunkState::Done => return Ok(i),
            }
            i += 1;
        }
        Ok(i)
    }
}

// === response heads ===

/// Standard reason phrase: the gateway's own table (`Unknown` for codes without a known phrase).
pub fn reason(status: u16) -> &'static str {
    weir_http::reason_phrase(status)
}

/// Whether a response with this status never carries a body.
pub fn bodyless_status(status: u16) -> bool {
    status == 204 || status == 304 || (100..200).contains(&status)
}

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// `content-length: N`.
    Length(usize),
    /// `transfer-encoding: chunked` (HTTP/1.1 clients).
    Chunked,
    /// Delimited by closing the connection (HTTP/1.0 clients of a streamed body).
    Close,
    /// No body and no length header (204, 304).
    Empty,
}

/// Appends a response head to `out`.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: Option<&str>,
    body: BodyLen,
    extra: &[(&str, &[u8])],
    resp: &RespCtx<'_>,
) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = content_type {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        BodyLen::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(num.format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyLen::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyLen::Close | BodyLen::Empty => {}
    }
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(id) = resp.mock_id {
        out.extend_from_slice(b"x-mock-id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !resp.keep_alive || body == BodyLen::Close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if resp.minor == 0 {
        // HTTP/1.0 clients that asked for keep-alive need to hear it back to reuse the connection.
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk (size line, data, CRLF); nothing for empty data (that would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends a chunk-size line.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// The terminating chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What a response head needs to know about its request and process.
#[derive(Debug, Clone, Copy)]
pub struct RespCtx<'a> {
    pub keep_alive: bool,
    pub minor: u8,
    pub mock_id: Option<&'a str>,
}

#[cfg(test)]
mod tests;
