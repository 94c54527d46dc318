//! Request and response heads: strict parsing on `httparse`, and framing decided once, here.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::headers::{has_token, Headers, Span, Spans};

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

/// Most fields httparse is given room for; the configured count limit is checked below it.
const HEADER_SLOTS: usize = 1000;
/// Most fields accepted in an upstream response head.
const RESPONSE_HEADER_SLOTS: usize = 256;
/// Field slots on the stack for a first try; a head with more is parsed again with slots on the
/// heap. (A frame holding all 1000 would be 32 KiB, and the stack probe touches every page of it:
/// on a VM whose system calls flush the TLB, that is 8 page walks per request.)
const STACK_SLOTS: usize = 40;

/// Why a scan of a head gave up.
enum Fail {
    /// Refused.
    Bad(Error),
    /// More fields than slots: scan again with more.
    MoreSlots,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Bad(e)
    }
}

type Slots<'b> = [MaybeUninit<httparse::Header<'b>>];

/// Scans the head at the front of `src` with field slots on the stack, then, if they were too few,
/// on the heap (`most` of them).
fn scan_with<T>(
    src: &[u8],
    most: usize,
    scan: impl for<'b> Fn(&'b [u8], &mut Slots<'b>) -> std::result::Result<T, Fail>,
) -> Result<T> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_SLOTS];
    match scan(src, &mut slots) {
        Ok(t) => Ok(t),
        Err(Fail::Bad(e)) => Err(e),
        Err(Fail::MoreSlots) => {
            let mut slots = Vec::new();
            slots.resize_with(most.max(STACK_SLOTS + 1), MaybeUninit::uninit);
            match scan(src, &mut slots) {
                Ok(t) => Ok(t),
                Err(Fail::Bad(e)) => Err(e),
                Err(Fail::MoreSlots) => Err(Error::HeadersTooLarge),
            }
        }
    }
}

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

impl Default for RequestHead {
    /// An empty head (no method, no target, no fields, no body): what is left where a head was
    /// taken out of the place it was parsed into.
    fn default() -> Self {
        RequestHead {
            method: Bytes::new(),
            target: Bytes::new(),
            version: Version::Http11,
            headers: Headers::default(),
            host: Bytes::new(),
            body: BodyKind::Empty,
            keep_alive: false,
            expect_continue: false,
            upgrade: None,
            head_len: 0,
        }
    }
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

/// The cheap proof that a head parsed by httparse has no bare LF: httparse lets an LF appear only
/// as a line end (or in empty lines before the start line), so when the start line begins the
/// head, each field line is preceded by CRLF and the head ends in CRLF CRLF, every LF has its CR.
/// `field_starts` are the offsets of the field names. When this says no, [`check_line_endings`]
/// decides.
fn crlf_only(head: &[u8], starts_at_line: bool, field_starts: impl Iterator<Item = usize>) -> bool {
    let mut ok = starts_at_line && head.ends_with(b"\r\n\r\n");
    for s in field_starts {
        ok &= s >= 2 && &head[s - 2..s] == b"\r\n";
    }
    ok
}

/// Parses one Content-Length value: digits only, no sign, no list.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    // At most 19 digits: no overflow.
    let mut n = 0u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// What a field name means to the parsers. Names are told apart by length first, so an ordinary
/// field costs one comparison at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    ContentLength,
    TransferEncoding,
    Host,
    Connection,
    Expect,
    Upgrade,
    /// Another hop-by-hop field (RFC 9110 §7.6.1): keep-alive, proxy-connection, te, trailer,
    /// proxy-authenticate.
    Hop,
}

#[inline(always)]
fn classify(name: &[u8]) -> Field {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is(b"te") => Field::Hop,
        4 if is(b"host") => Field::Host,
        6 if is(b"expect") => Field::Expect,
        7 if is(b"upgrade") => Field::Upgrade,
        7 if is(b"trailer") => Field::Hop,
        10 if is(b"connection") => Field::Connection,
        10 if is(b"keep-alive") => Field::Hop,
        14 if is(b"content-length") => Field::ContentLength,
        16 if is(b"proxy-connection") => Field::Hop,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        18 if is(b"proxy-authenticate") => Field::Hop,
        _ => Field::Other,
    }
}

/// Where field `i` of `fields` ends: where the next line starts, or before the head's final CRLF.
fn line_end(base: &[u8], fields: &[httparse::Header<'_>], i: usize, head_len: usize) -> usize {
    match fields.get(i + 1) {
        Some(h) => span(base, h.name.as_bytes()).0,
        None => head_len - 2,
    }
}

/// What a scan of a request head found, as offsets into it.
struct RequestScan {
    head_len: usize,
    method: (usize, usize),
    /// The origin-form target (without an absolute-form's scheme and authority).
    origin: (usize, usize),
    abs_authority: Option<(usize, usize)>,
    host: Option<(usize, usize)>,
    upgrade: Option<(usize, usize)>,
    spans: Spans,
    version: Version,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

/// Tries to parse a request head at the start of `src`. `Ok(None)`: need more bytes. On success the
/// head's bytes are split off `src` (no copy), leaving the body and any pipelined requests.
pub fn parse_request(src: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>> {
    // Leading empty lines before a request are allowed (RFC 9112 §2.2); skip CRLFs only.
    while src.len() >= 2 && &src[..2] == b"\r\n" {
        let _ = src.split_to(2);
    }
    let most = (limits.max_header_count + 1).min(HEADER_SLOTS);
    let Some(scan) = scan_with(src, most, |buf, slots| scan_request(buf, limits, slots))? else {
        return Ok(None);
    };
    let RequestScan {
        head_len,
        method,
        origin,
        abs_authority,
        host,
        upgrade,
        spans,
        version,
        body,
        keep_alive,
        expect_continue,
    } = scan;
    // All checks passed: take the head out of the buffer and slice it.
    let head = src.split_to(head_len).freeze();
    let target = if origin.0 == origin.1 {
        Bytes::from_static(b"/")
    } else if head[origin.0] == b'?' {
        let mut t = Vec::with_capacity(origin.1 - origin.0 + 1);
        t.push(b'/');
        t.extend_from_slice(&head[origin.0..origin.1]);
        Bytes::from(t)
    } else {
        head.slice(origin.0..origin.1)
    };
    let method =
        common_method(&head[method.0..method.1]).unwrap_or_else(|| head.slice(method.0..method.1));
    let upgrade = upgrade.map(|(s, e)| head.slice(s..e));
    let (host, headers) = match (abs_authority, host) {
        (Some((s, e)), _) => {
            let h = head.slice(s..e);
            let mut headers = Headers::raw(head, spans);
            headers.set(Bytes::from_static(b"host"), h.clone());
            (h, headers)
        }
        (None, Some((s, e))) => (head.slice(s..e), Headers::raw(head, spans)),
        (None, None) => (Bytes::new(), Headers::raw(head, spans)),
    };
    Ok(Some(RequestHead {
        method,
        target,
        version,
        headers,
        host,
        body,
        keep_alive,
        expect_continue,
        upgrade,
        head_len,
    }))
}

fn scan_request<'b>(
    base: &'b [u8],
    limits: &HeadLimits,
    slots: &mut Slots<'b>,
) -> std::result::Result<Option<RequestScan>, Fail> {
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(base, slots);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            let line_end = memchr::memchr(b'\n', base);
            if line_end.is_none() && base.len() > limits.max_request_line {
                return Err(Error::UriTooLong.into());
            }
            if base.len() > limits.max_header_bytes {
                return Err(Error::HeadersTooLarge.into());
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(if slots.len() <= limits.max_header_count {
                Fail::MoreSlots
            } else {
                Error::HeadersTooLarge.into()
            })
        }
        Err(httparse::Error::Version) => {
            // httparse refuses any version but 1.x; tell 2.0/0.9 apart from garbage.
            return Err(if base.starts_with(b"PRI * HTTP/2") {
                Error::VersionNotSupported
            } else {
                Error::BadRequest("malformed request line")
            }
            .into());
        }
        Err(httparse::Error::HeaderName) => {
            return Err(Error::BadRequest("invalid header name").into())
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(Error::BadRequest("invalid header value").into())
        }
        Err(httparse::Error::Token) | Err(httparse::Error::NewLine) => {
            return Err(Error::BadRequest("malformed request line or header").into())
        }
        Err(_) => return Err(Error::BadRequest("malformed request").into()),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Error::BadRequest("malformed request line").into());
    };
    let method_span = span(base, method.as_bytes());
    let target_span = span(base, target.as_bytes());
    // The line ends a few bytes after the target (` HTTP/1.1\r\n`).
    let line_len = memchr::memchr(b'\n', &base[target_span.1..head_len])
        .map_or(head_len, |i| target_span.1 + i);
    if line_len > limits.max_request_line {
        return Err(Error::UriTooLong.into());
    }
    if head_len > limits.max_header_bytes {
        return Err(Error::HeadersTooLarge.into());
    }
    if req.headers.len() > limits.max_header_count {
        return Err(Error::HeadersTooLarge.into());
    }
    let version = match req.version {
        Some(1) => Version::Http11,
        _ => Version::Http10,
    };
    let fields: &[httparse::Header<'_>] = req.headers;
    if !crlf_only(
        &base[..head_len],
        method_span.0 == 0,
        fields.iter().map(|h| span(base, h.name.as_bytes()).0),
    ) {
        check_line_endings(
            &base[..head_len],
            Error::BadRequest("bare CR or LF in request head"),
        )?;
    }
    // The framing and connection facts the fields carry; the end-to-end ones are kept as spans.
    let mut spans = Spans::new();
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut host_span = None;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut expect_continue = false;
    let mut connection_tokens: Vec<(usize, usize)> = Vec::new();
    let mut upgrade_span = None;
    for (i, h) in fields.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        match classify(name) {
            Field::Other => {}
            Field::ContentLength => {
                let n = parse_content_length(value)
                    .ok_or(Error::BadRequest("invalid Content-Length"))?;
                if content_length.is_some() {
                    return Err(Error::BadRequest("duplicate Content-Length").into());
                }
                content_length = Some(n);
                continue;
            }
            Field::TransferEncoding => {
                if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                    // Only a lone `chunked` is accepted: anything else can be read two ways.
                    return Err(
                        if value.eq_ignore_ascii_case(b"chunked") || value.is_empty() {
                            Error::BadRequest("invalid Transfer-Encoding")
                        } else {
                            Error::NotImplemented("transfer coding other than chunked")
                        }
                        .into(),
                    );
                }
                chunked = true;
                continue;
            }
            Field::Host => {
                if host_span.is_some() {
                    return Err(Error::BadRequest("duplicate Host").into());
                }
                host_span = Some(span(base, value));
            }
            Field::Connection => {
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
                continue;
            }
            Field::Expect => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(Error::BadRequest("unsupported Expect").into());
                }
                continue;
            }
            Field::Upgrade => {
                upgrade_span = Some(span(base, value));
                continue;
            }
            Field::Hop => continue,
        }
        let (ns, ne) = span(base, name);
        spans.push(Span::new(
            ns,
            ne,
            span(base, value),
            line_end(base, fields, i, head_len),
        ));
    }
    if !connection_tokens.is_empty() {
        // Fields named by Connection are hop-by-hop too.
        spans.retain(|s| {
            let name = s.name(base);
            !connection_tokens
                .iter()
                .any(|(a, b)| name.eq_ignore_ascii_case(&base[*a..*b]))
        });
    }
    if chunked && content_length.is_some() {
        return Err(Error::BadRequest("both Content-Length and Transfer-Encoding").into());
    }
    if chunked && version == Version::Http10 {
        return Err(Error::BadRequest("Transfer-Encoding in HTTP/1.0").into());
    }
    if version == Version::Http11 && host_span.is_none() {
        return Err(Error::BadRequest("missing Host").into());
    }
    if &base[method_span.0..method_span.1] == b"CONNECT" {
        return Err(Error::NotImplemented("CONNECT").into());
    }
    let target_bytes = &base[target_span.0..target_span.1];
    // Absolute-form: the authority in the target wins over Host (RFC 9112 §3.2.2).
    let mut abs_authority = None;
    let mut origin = target_span;
    if target_bytes.first() != Some(&b'/') {
        if let Some(rest) = strip_scheme(target_bytes) {
            let auth_end = rest
                .iter()
                .position(|b| *b == b'/' || *b == b'?')
                .unwrap_or(rest.len());
            let auth = &rest[..auth_end];
            if auth.is_empty() {
                return Err(Error::BadRequest("absolute target without authority").into());
            }
            abs_authority = Some(span(base, auth));
            let path_start = target_span.1 - (rest.len() - auth_end);
            origin = (path_start, target_span.1);
        } else if target_bytes != b"*" {
            return Err(Error::BadRequest("invalid request target").into());
        }
    }
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    let body = if chunked {
        BodyKind::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };
    Ok(Some(RequestScan {
        head_len,
        method: method_span,
        origin,
        abs_authority,
        host: host_span,
        upgrade: if conn_upgrade { upgrade_span } else { None },
        spans,
        version,
        body,
        keep_alive,
        expect_continue,
    }))
}

/// The usual methods as static `Bytes`: a clone of one (the request context takes one) is free,
/// where a slice of the head counts references atomically.
fn common_method(m: &[u8]) -> Option<Bytes> {
    let s: &'static [u8] = match m {
        b"GET" => b"GET",
        b"POST" => b"POST",
        b"PUT" => b"PUT",
        b"HEAD" => b"HEAD",
        b"DELETE" => b"DELETE",
        b"OPTIONS" => b"OPTIONS",
        b"PATCH" => b"PATCH",
        _ => return None,
    };
    Some(Bytes::from_static(s))
}

/// The standard reason phrase of `status` as static `Bytes`, if `reason` is it (see
/// [`common_method`]).
fn standard_reason(status: u16, reason: &[u8]) -> Option<Bytes> {
    let std = reason_phrase(status);
    (std.as_bytes() == reason).then(|| Bytes::from_static(std.as_bytes()))
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

/// What a scan of a response head found.
struct ResponseScan {
    head_len: usize,
    status: u16,
    reason: (usize, usize),
    version: Version,
    spans: Spans,
    body: BodyKind,
    keep_alive: bool,
}

/// Tries to parse a response head; `head_request` tells that the request was HEAD (no body).
pub fn parse_response(
    src: &mut BytesMut,
    max_bytes: usize,
    head_request: bool,
) -> Result<Option<ResponseHead>> {
    let scan = scan_with(src, RESPONSE_HEADER_SLOTS, |buf, slots| {
        scan_response(buf, max_bytes, head_request, slots)
    })?;
    let Some(ResponseScan {
        head_len,
        status,
        reason,
        version,
        spans,
        body,
        keep_alive,
    }) = scan
    else {
        return Ok(None);
    };
    let head = src.split_to(head_len).freeze();
    Ok(Some(ResponseHead {
        status,
        reason: standard_reason(status, &head[reason.0..reason.1])
            .unwrap_or_else(|| head.slice(reason.0..reason.1)),
        version,
        headers: Headers::raw(head, spans),
        body,
        keep_alive,
        head_len,
    }))
}

fn scan_response<'b>(
    base: &'b [u8],
    max_bytes: usize,
    head_request: bool,
    slots: &mut Slots<'b>,
) -> std::result::Result<Option<ResponseScan>, Fail> {
    let mut res = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, base, slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if base.len() > max_bytes {
                return Err(Error::BadResponse("response head too large").into());
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) if slots.len() < RESPONSE_HEADER_SLOTS => {
            return Err(Fail::MoreSlots)
        }
        Err(_) => return Err(Error::BadResponse("malformed response head").into()),
    };
    if head_len > max_bytes {
        return Err(Error::BadResponse("response head too large").into());
    }
    let fields: &[httparse::Header<'_>] = res.headers;
    if !crlf_only(
        &base[..head_len],
        base.starts_with(b"HTTP/"),
        fields.iter().map(|h| span(base, h.name.as_bytes()).0),
    ) {
        check_line_endings(
            &base[..head_len],
            Error::BadResponse("bare CR or LF in response head"),
        )?;
    }
    let status = res.code.unwrap_or(0);
    let version = if res.version == Some(1) {
        Version::Http11
    } else {
        Version::Http10
    };
    let reason = span(base, res.reason.unwrap_or("").as_bytes());
    // Content-Length stays on a response that has no body by definition (HEAD, 304): there it
    // describes the representation, not the framing. Upgrade stays on 101: the client needs it.
    let keep_length = head_request || status == 304;
    let mut spans = Spans::new();
    let mut content_length = None;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut connection_tokens: Vec<(usize, usize)> = Vec::new();
    for (i, h) in fields.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        let keep = match classify(name) {
            Field::ContentLength => {
                let n = parse_content_length(value)
                    .ok_or(Error::BadResponse("invalid Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Error::BadResponse("conflicting Content-Length").into());
                }
                content_length = Some(n);
                keep_length
            }
            Field::TransferEncoding => {
                // The final coding decides; a response may be gzip-then-chunked, we pass content
                // codings.
                let last = value.rsplit(|b| *b == b',').next().map(<[u8]>::trim_ascii);
                if last.is_some_and(|l| l.eq_ignore_ascii_case(b"chunked")) {
                    chunked = true;
                } else {
                    return Err(Error::BadResponse("unsupported Transfer-Encoding").into());
                }
                false
            }
            Field::Connection => {
                conn_close |= has_token(value, "close");
                conn_keep_alive |= has_token(value, "keep-alive");
                for t in value.split(|b| *b == b',') {
                    let t = t.trim_ascii();
                    if !t.is_empty() {
                        connection_tokens.push(span(base, t));
                    }
                }
                false
            }
            Field::Upgrade => status == 101,
            Field::Hop => false,
            Field::Other | Field::Host | Field::Expect => true,
        };
        if keep {
            let (ns, ne) = span(base, name);
            spans.push(Span::new(
                ns,
                ne,
                span(base, value),
                line_end(base, fields, i, head_len),
            ));
        }
    }
    if !connection_tokens.is_empty() {
        // Fields named by Connection are hop-by-hop too (but for the two kept above).
        spans.retain(|s| {
            let name = s.name(base);
            let named = connection_tokens
                .iter()
                .any(|(a, b)| name.eq_ignore_ascii_case(&base[*a..*b]));
            !named
                || (status == 101 && name.eq_ignore_ascii_case(b"upgrade"))
                || (keep_length && name.eq_ignore_ascii_case(b"content-length"))
        });
    }
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
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
    Ok(Some(ResponseScan {
        head_len,
        status,
        reason,
        version,
        spans,
        body,
        keep_alive: keep_alive && body != BodyKind::UntilClose,
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
    write_request_head_except(out, method, target, headers, body, |_| false);
}

/// [`write_request_head`] without the fields whose name `skip` picks.
pub fn write_request_head_except(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    headers: &Headers,
    body: BodyKind,
    skip: impl FnMut(&[u8]) -> bool,
) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    headers.write_except(out, skip);
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
    if status == 200 && (reason.is_empty() || reason == b"OK") {
        // The usual status line in one copy.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        out.push(b' ');
        if reason.is_empty() {
            out.extend_from_slice(reason_phrase(status).as_bytes());
        } else {
            out.extend_from_slice(reason);
        }
        out.extend_from_slice(b"\r\n");
    }
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
