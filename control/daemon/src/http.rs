//! A small blocking HTTP/1.1 server side for the admin socket: requests parsed with `httparse`,
//! keep-alive, `Content-Length` bodies up to [`MAX_BODY`] (413 past it), `Expect: 100-continue`.
//! Chunked request bodies are refused with 411: every client of this API (weirctl, curl with
//! `--data-binary`/`-T`) sends a length.

use std::io::{self, Read, Write};

/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;
/// Largest request head.
pub const MAX_HEAD: usize = 64 << 10;
/// Most request headers.
const MAX_HEADERS: usize = 64;

/// A parsed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, percent-decoded per segment by the router, without the query.
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// HTTP/1.0 (close after the answer unless keep-alive was asked for).
    pub http10: bool,
}

impl Request {
    /// A header's value (first one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value (first one).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http10 {
            conn.contains("keep-alive")
        } else {
            !conn.split(',').any(|t| t.trim() == "close")
        }
    }

    /// Whether this asks to upgrade to `token`.
    pub fn wants_upgrade(&self, token: &str) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(v).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A text response of some type.
    pub fn text(status: u16, content_type: &'static str, text: String) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: text.into_bytes(),
        }
    }

    /// The body as JSON (tests).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Why a request could not be read; answered (when there is an answer) and the connection closed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer went away, or was idle past the read timeout: close without an answer.
    Gone,
    /// Answer with this status and message, then close.
    Refuse(u16, &'static str, String),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Gone
    }
}

/// One side of a connection: the stream and the bytes read past the last request.
pub struct Conn<S> {
    /// The stream.
    pub stream: S,
    /// Bytes read but not yet consumed (pipelined requests, or a plane's first frames).
    pub buf: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    /// Wraps a stream.
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the next request; `Ok(None)` when the peer closed cleanly between requests.
    pub fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        let (mut req, head_len, body_len, expect_continue) = loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut headers);
                match parsed.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let (req, body_len, expect) = head(&parsed)?;
                        break (req, n, body_len, expect);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(ReadError::Refuse(
                            431,
                            "headers_too_large",
                            format!("more than {MAX_HEADERS} headers"),
                        ))
                    }
                    Err(e) => {
                        return Err(ReadError::Refuse(
                            400,
                            "bad_request",
                            format!("malformed request: {e}"),
                        ))
                    }
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(ReadError::Refuse(
                        431,
                        "headers_too_large",
                        format!("request head larger than {MAX_HEAD} bytes"),
                    ));
                }
            }
            if self.fill()? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Gone)
                };
            }
        };
        self.buf.drain(..head_len);
        if expect_continue && self.buf.len() < body_len {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        while self.buf.len() < body_len {
            if self.fill()? == 0 {
                return Err(ReadError::Gone);
            }
        }
        req.body = self.buf.drain(..body_len).collect();
        Ok(Some(req))
    }

    /// Writes a response; `close` adds `Connection: close`.
    pub fn write_response(&mut self, resp: &Response, close: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            resp.status,
            reason(resp.status),
            resp.content_type,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&resp.body);
        self.stream.write_all(&out)?;
        self.stream.flush()
    }
}

/// The request line and headers; the body length; whether the client waits for `100 Continue`.
fn head(parsed: &httparse::Request<'_, '_>) -> Result<(Request, usize, bool), ReadError> {
    let method = parsed.method.unwrap_or("").to_string();
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut body_len = 0usize;
    let mut expect = false;
    let mut seen_length = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        match name.as_str() {
            "content-length" => {
                let n: usize = value.parse().map_err(|_| {
                    ReadError::Refuse(400, "bad_request", "invalid Content-Length".into())
                })?;
                if seen_length && n != body_len {
                    return Err(ReadError::Refuse(
                        400,
                        "bad_request",
                        "conflicting Content-Length headers".into(),
                    ));
                }
                seen_length = true;
                body_len = n;
            }
            "transfer-encoding" => {
                return Err(ReadError::Refuse(
                    411,
                    "length_required",
                    "chunked request bodies are not supported: send Content-Length".into(),
                ))
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => expect = true,
            _ => {}
        }
        headers.push((name, value));
    }
    if body_len > MAX_BODY {
        return Err(ReadError::Refuse(
            413,
            "payload_too_large",
            format!("request body larger than {MAX_BODY} bytes"),
        ));
    }
    let req = Request {
        method,
        path: path.to_string(),
        query: parse_query(query),
        headers,
        body: Vec::new(),
        http10: parsed.version == Some(0),
    };
    Ok((req, body_len, expect))
}

pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k, true), decode(v, true)),
            None => (decode(p, true), String::new()),
        })
        .collect()
}

/// `%41` → `A` in a path segment; invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// `%41` → `A`, and (in query strings) `+` → space.
fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pipe {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Pipe {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.input.read(b)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.output.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    fn conn(input: &str) -> Conn<Pipe> {
        Conn::new(Pipe {
            input: io::Cursor::new(input.as_bytes().to_vec()),
            output: Vec::new(),
        })
    }

    #[test]
    fn pipelined_requests_with_bodies() {
        let mut c = conn(
            "PUT /v1/config?wait=5&comment=a%20b+c HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabcGET /v1/status HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let a = c.read_request().ok().flatten().expect("first");
        assert_eq!(a.method, "PUT");
        assert_eq!(a.path, "/v1/config");
        assert_eq!(a.query("wait"), Some("5"));
        assert_eq!(a.query("comment"), Some("a b c"));
        assert_eq!(a.body, b"abc");
        assert!(a.keep_alive());
        let b = c.read_request().ok().flatten().expect("second");
        assert_eq!(b.path, "/v1/status");
        assert!(!b.keep_alive());
        assert!(matches!(c.read_request(), Ok(None)));
        // The body was already there: no 100 Continue was sent.
        assert!(c.stream.output.is_empty());
    }

    #[test]
    fn refuses_large_and_chunked_bodies() {
        let mut c = conn("PUT / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
        assert!(matches!(c.read_request(), Err(ReadError::Refuse(413, ..))));
        let mut c = conn("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(c.read_request(), Err(ReadError::Refuse(411, ..))));
        let mut c = conn("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        assert!(matches!(c.read_request(), Err(ReadError::Gone)));
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%E2%80%A6+"), "…+");
    }
}
