//! Request and response heads: strict parsing on `httparse`, and framing decided once, here.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::headers::{has_token, Headers, HOP_BY_HOP};

/// HTTP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line.
    pub max_request_line: usize,
    /// Most header fields.
    pub max_header_count: usize,
    /// Largest head.
    pub max_header_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_request_line: 8 << 10,
            max_header_count: 100,
            max_header_bytes: 64 << 10,
        }
    }
}

/// Name and value offsets of the fields of a head; typical heads fit inline.
type Spans = SmallVec<[((usize, usize), (usize, usize)); 16]>;

/// Most fields httparse is given room for; the configured count limit is checked below it.
const HEADER_SLOTS: usize = 1000;
/// Most fields accepted in an upstream response head.
const RESPONSE_HEADER_SLOTS: usize = 256;

/// A parsed request head. Hop-by-hop and framing fields are removed from `headers`; what they said
/// is in `body`, `keep_alive`, `expect_continue` and `upgrade`.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method, e.g. `GET`.
    pub method: Bytes,
    /// Origin-form target: path and query (absolute-form is reduced to this).
    pub target: Bytes,
    /// Version.
    pub version: Version,
    /// End-to-end fields, including `Host`.
    pub headers: Headers,
    /// The authority: `Host`, or the absolute-form target's.
    pub host: Bytes,
    /// Body framing.
    pub body: BodyKind,
    /// The client wants the connection kept open.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The protocol the client asks to upgrade to (`Connection: upgrade` + `Upgrade`).
    pub upgrade: Option<Bytes>,
    /// Bytes of the head on the wire.
    pub head_len: usize,
}

impl RequestHead {
    /// The path without the query.
    pub fn path(&self) -> &[u8] {
        match memchr::memchr(b'?', &self.target) {
            Some(i) => &self.target[..i],
            None => &self.target,
        }
    }

    /// The query without `?`, if any.
    pub fn query(&self) -> Option<&[u8]> {
        memchr::memchr(b'?', &self.target).map(|i| &self.target[i + 1..])
    }

    /// GET, HEAD, OPTIONS, TRACE, PUT, DELETE: safe to send again (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            &self.method[..],
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }

    /// HEAD: the response has no body whatever it says.
    pub fn is_head(&self) -> bool {
        &self.method[..] == b"HEAD"
    }
}

/// Offsets of a slice inside `base`.
fn span(base: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start, start + part.len())
}

/// Refuses a bare LF (one not preceded by CR) in a head: lenient line endings are a classic
/// smuggling vector between proxies that disagree. (httparse already refuses a bare CR.)
fn check_line_endings(head: &[u8], bad: Error) -> Result<()> {
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(bad);
        }
    }
    Ok(())
}

/// Parses one Content-Length value: digits only, no sign, no list.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Tries to parse a request head at the start of `src`. `Ok(None)`: need more bytes. On success the
/// head's bytes are split off `src` (no copy), leaving the body and any pipelined requests.
pub fn parse_request(src: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>> {
    // Leading empty lines before a request are allowed (RFC 9112 §2.2); skip CRLFs only.
    while src.len() >= 2 && &src[..2] == b"\r\n" {
        let _ = src.split_to(2);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(src, &mut slots);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            let line_end = memchr::memchr(b'\n', src);
            if line_end.is_none() && src.len() > limits.max_request_line {
                return Err(Error::UriTooLong);
            }
            if src.len() > limits.max_header_bytes {
                return Err(Error::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            // httparse refuses any version but 1.x; tell 2.0/0.9 apart from garbage.
            return Err(if src.starts_with(b"PRI * HTTP/2") {
                Error::VersionNotSupported
            } else {
                Error::BadRequest("malformed request line")
            });
        }
        Err(httparse::Error::HeaderName) => return Err(Error::BadRequest("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(Error::BadRequest("invalid header value")),
        Err(httparse::Error::Token) | Err(httparse::Error::NewLine) => {
            return Err(Error::BadRequest("malformed request line or header"))
        }
        Err(_) => return Err(Error::BadRequest("malformed request")),
    };
    let base: &[u8] = src;
    let line_len = memchr::memchr(b'\n', base).unwrap_or(head_len);
    if line_len > limits.max_request_line {
        return Err(Error::UriTooLong);
    }
    if head_len > limits.max_header_bytes {
        return Err(Error::HeadersTooLarge);
    }
    if req.headers.len() > limits.max_header_count {
        return Err(Error::HeadersTooLarge);
    }
    check_line_endings(
        &base[..head_len],
        Error::BadRequest("bare CR or LF in request head"),
    )?;
    let version = match req.version {
        Some(1) => Version::Http11,
        _ => Version::Http10,
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Error::BadRequest("malformed request line"));
    };
    let method_span = span(base, method.as_bytes());
    let target_span = span(base, target.as_bytes());
    // Field spans, then the framing and connection facts they carry.
    let mut spans: Spans = SmallVec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut host_span = None;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut expect_continue = false;
    let mut connection_tokens: Vec<(usize, usize)> = Vec::new();
    let mut upgrade_span = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n =
                parse_content_length(value).ok_or(Error::BadRequest("invalid Content-Length"))?;
            if content_length.is_some() {
                return Err(Error::BadRequest("duplicate Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                // Only a lone `chunked` is accepted: anything else can be read two ways.
                return Err(
                    if value.eq_ignore_ascii_case(b"chunked") || value.is_empty() {
                        Error::BadRequest("invalid Transfer-Encoding")
                    } else {
                        Error::NotImplemented("transfer coding other than chunked")
                    },
                );
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            if host_span.is_some() {
                return Err(Error::BadRequest("duplicate Host"));
            }
            host_span = Some(span(base, value));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    conn_upgrade = true;
                } else if !t.is_empty() {
                    connection_tokens.push(span(base, t));
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(Error::BadRequest("unsupported Expect"));
            }
            continue;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_span = Some(span(base, value));
        }
        spans.push((span(base, name), span(base, value)));
    }
    if chunked && content_length.is_some() {
        return Err(Error::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if chunked && version == Version::Http10 {
        return Err(Error::BadRequest("Transfer-Encoding in HTTP/1.0"));
    }
    if version == Version::Http11 && host_span.is_none() {
        return Err(Error::BadRequest("missing Host"));
    }
    if &base[method_span.0..method_span.1] == b"CONNECT" {
        return Err(Error::NotImplemented("CONNECT"));
    }
    let target_bytes = &base[target_span.0..target_span.1];
    // Absolute-form: the authority in the target wins over Host (RFC 9112 §3.2.2).
    let mut abs_authority = None;
    let mut origin_span = target_span;
    if target_bytes.first() != Some(&b'/') {
        if let Some(rest) = strip_scheme(target_bytes) {
            let auth_end = rest
                .iter()
                .position(|b| *b == b'/' || *b == b'?')
                .unwrap_or(rest.len());
            let auth = &rest[..auth_end];
            if auth.is_empty() {
                return Err(Error::BadRequest("absolute target without authority"));
            }
            abs_authority = Some(span(base, auth));
            let path_start = target_span.1 - (rest.len() - auth_end);
            origin_span = (path_start, target_span.1);
        } else if target_bytes != b"*" {
            return Err(Error::BadRequest("invalid request target"));
        }
    }
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    let upgrade = if conn_upgrade { upgrade_span } else { None };

    // All checks passed: take the head out of the buffer and slice it.
    let head = src.split_to(head_len).freeze();
    let mut headers = Headers::with_capacity(spans.len() + 4);
    for ((ns, ne), (vs, ve)) in spans {
        let name = &head[ns..ne];
        let hop = HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
            || connection_tokens
                .iter()
                .any(|(s, e)| name.eq_ignore_ascii_case(&head[*s..*e]));
        if hop {
            continue;
        }
        headers.append(head.slice(ns..ne), head.slice(vs..ve));
    }
    let host = match (abs_authority, host_span) {
        (Some((s, e)), _) => {
            let h = head.slice(s..e);
            headers.set(Bytes::from_static(b"host"), h.clone());
            h
        }
        (None, Some((s, e))) => head.slice(s..e),
        (None, None) => Bytes::new(),
    };
    let target = if origin_span.0 == origin_span.1 {
        Bytes::from_static(b"/")
    } else if head[origin_span.0] == b'?' {
        let mut t = Vec::with_capacity(origin_span.1 - origin_span.0 + 1);
        t.push(b'/');
        t.extend_from_slice(&head[origin_span.0..origin_span.1]);
        Bytes::from(t)
    } else {
        head.slice(origin_span.0..origin_span.1)
    };
    let body = if chunked {
        BodyKind::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };
    Ok(Some(RequestHead {
        method: head.slice(method_span.0..method_span.1),
        target,
        version,
        headers,
        host,
        body,
        keep_alive,
        expect_continue,
        upgrade: upgrade.map(|(s, e)| head.slice(s..e)),
        head_len,
    }))
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    let lower = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    if lower(b"http://") {
        Some(&t[7..])
    } else if lower(b"https://") {
        Some(&t[8..])
    } else {
        None
    }
}

/// A parsed response head; hop-by-hop and framing fields removed, as for requests.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as received.
    pub reason: Bytes,
    /// Version.
    pub version: Version,
    /// End-to-end fields.
    pub headers: Headers,
    /// Body framing, given the request method.
    pub body: BodyKind,
    /// The upstream will keep the connection open.
    pub keep_alive: bool,
    /// Bytes of the head on the wire.
    pub head_len: usize,
}

/// Tries to parse a response head; `head_request` tells that the request was HEAD (no body).
pub fn parse_response(
    src: &mut BytesMut,
    max_bytes: usize,
    head_request: bool,
) -> Result<Option<ResponseHead>> {
    let mut slots =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; RESPONSE_HEADER_SLOTS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, src, &mut slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if src.len() > max_bytes {
                return Err(Error::BadResponse("response head too large"));
            }
            return Ok(None);
        }
        Err(_) => return Err(Error::BadResponse("malformed response head")),
    };
    if head_len > max_bytes {
        return Err(Error::BadResponse("response head too large"));
    }
    let base: &[u8] = src;
    check_line_endings(
        &base[..head_len],
        Error::BadResponse("bare CR or LF in response head"),
    )?;
    let status = res.code.unwrap_or(0);
    let version = if res.version == Some(1) {
        Version::Http11
    } else {
        Version::Http10
    };
    let reason_span = span(base, res.reason.unwrap_or("").as_bytes());
    let mut spans: Spans = SmallVec::with_capacity(res.headers.len());
    let mut content_length = None;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut connection_tokens: Vec<(usize, usize)> = Vec::new();
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n =
                parse_content_length(value).ok_or(Error::BadResponse("invalid Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(Error::BadResponse("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The final coding decides; a response may be gzip-then-chunked, we pass content codings.
            let last = value.rsplit(|b| *b == b',').next().map(<[u8]>::trim_ascii);
            if last.is_some_and(|l| l.eq_ignore_ascii_case(b"chunked")) {
                chunked = true;
            } else {
                return Err(Error::BadResponse("unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn_close |= has_token(value, "close");
            conn_keep_alive |= has_token(value, "keep-alive");
            for t in value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty() {
                    connection_tokens.push(span(base, t));
                }
            }
        }
        spans.push((span(base, name), span(base, value)));
    }
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    let head = src.split_to(head_len).freeze();
    let mut headers = Headers::with_capacity(spans.len() + 4);
    for ((ns, ne), (vs, ve)) in spans {
        let name = &head[ns..ne];
        let hop = HOP_BY_HOP
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
            || connection_tokens
                .iter()
                .any(|(s, e)| name.eq_ignore_ascii_case(&head[*s..*e]));
        // Keep Upgrade on 101: the client needs it. Keep Content-Length on a response that has no
        // body by definition (HEAD, 304): there it describes the representation, not the framing.
        let keep = (status == 101 && name.eq_ignore_ascii_case(b"upgrade"))
            || ((head_request || status == 304) && name.eq_ignore_ascii_case(b"content-length"));
        if hop && !keep {
            continue;
        }
        headers.append(head.slice(ns..ne), head.slice(vs..ve));
    }
    // RFC 9112 §6.3: HEAD, 1xx, 204 and 304 have no body; chunked beats Content-Length.
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::Empty
    } else if chunked {
        BodyKind::Chunked
    } else {
        match content_length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    };
    Ok(Some(ResponseHead {
        status,
        reason: head.slice(reason_span.0..reason_span.1),
        version,
        headers,
        body,
        keep_alive: keep_alive && body != BodyKind::UntilClose,
        head_len,
    }))
}

/// Writes a request head for the upstream: `method target HTTP/1.1`, the fields, then the framing.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    headers: &Headers,
    body: BodyKind,
) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    headers.write_to(out);
    // No `content-length: 0` on methods that carry no content by definition (RFC 9110 §8.6).
    let bodiless = matches!(method, b"GET" | b"HEAD" | b"DELETE" | b"OPTIONS" | b"TRACE");
    if !(body == BodyKind::Empty && bodiless) {
        write_framing(out, body);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head: status line, fields, framing, and `connection: close` when closing.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &[u8],
    headers: &Headers,
    body: BodyKind,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    if reason.is_empty() {
        out.extend_from_slice(reason_phrase(status).as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    headers.write_to(out);
    // No framing on 1xx/204; none either when a bodiless response carries its representation's
    // Content-Length (HEAD, 304).
    let kept_length = body == BodyKind::Empty && headers.contains("content-length");
    if !(100..200).contains(&status) && status != 204 && !kept_length {
        write_framing(out, body);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn write_framing(out: &mut Vec<u8>, body: BodyKind) {
    match body {
        BodyKind::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyKind::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyKind::Empty => out.extend_from_slice(b"content-length: 0\r\n"),
        BodyKind::UntilClose => {}
    }
}

/// Writes a field; a helper for callers that build heads by hand.
pub fn push_header(headers: &mut Headers, name: &'static str, value: impl Into<Bytes>) {
    headers.append(Bytes::from_static(name.as_bytes()), value.into());
}

/// The standard reason phrase of a status.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}
