//! The endpoints of the mock. [`handle`] answers one parsed request: either it appends the whole
//! response to the write buffer, or it returns a [`Stream`] that the connection runs
//! (delays, SSE, hangs, large bodies), because those need the socket and a timer. Provider
//! endpoints are answered by [`crate::llm`]; `/mock/script` and `/mock/requests` control them.

use crate::http::{self, BodyLen, Head, RespCtx};
use crate::llm::{self, Answer, Body};
use crate::state::{self, HEALTH, STATS};
use crate::{reqlog, script};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Process-wide, read-only settings every connection sees.
#[derive(Debug)]
pub struct Shared {
    /// Value of the `x-mock-id` response header, if any.
    pub mock_id: Option<String>,
    /// The complete keep-alive `GET /` response, prebuilt: the benchmark fast path is one copy.
    pub ok: Vec<u8>,
    /// Timings of the provider endpoints (`--ttft-ms`, `--token-interval-ms`).
    pub llm: llm::Defaults,
}

impl Shared {
    pub fn new(mock_id: Option<String>) -> Self {
        let mut ok = Vec::new();
        let ctx = RespCtx {
            keep_alive: true,
            minor: 1,
            mock_id: mock_id.as_deref(),
        };
        http::write_head(
            &mut ok,
            200,
            Some("text/plain"),
            BodyLen::Length(2),
            &[],
            &ctx,
        );
        ok.extend_from_slice(b"ok");
        Shared {
            mock_id,
            ok,
            llm: llm::Defaults::default(),
        }
    }
}

/// What the connection does after [`handle`].
#[derive(Debug)]
pub enum Action {
    /// The response is in the write buffer; keep the connection.
    Done,
    /// The response is in the write buffer; close after writing it.
    Close,
    /// Flush what is buffered, then run this.
    Stream(Stream),
}

/// A response that needs the socket or a timer.
#[derive(Debug)]
pub struct Stream {
    pub kind: StreamKind,
    /// Keep the connection after the stream ends.
    pub keep_alive: bool,
}

#[derive(Debug)]
pub enum StreamKind {
    /// Wait, then send these bytes (a complete response).
    Delayed { after: Duration, response: Vec<u8> },
    /// Wait `delay`, send `head`, then the events, waiting `interval` before each paced one,
    /// watching for the client going away meanwhile.
    Events {
        delay: Duration,
        head: Vec<u8>,
        events: Events,
        interval: Duration,
        /// Chunked framing (HTTP/1.1) or close-delimited (HTTP/1.0).
        chunked: bool,
        /// Count this stream in the `sse_*` stats (the `/sse` endpoint).
        sse_stats: bool,
        /// Close the connection after this many events, without ending the body.
        reset_after: Option<u64>,
    },
    /// Send `head`, then `len` pattern bytes, in chunks of `chunk` when given.
    Bytes {
        head: Vec<u8>,
        len: usize,
        chunk: Option<usize>,
    },
    /// Send `head` (maybe nothing), then never answer; close when the peer does.
    Hang { head: Vec<u8> },
}

/// The event records of a stream, generated on the fly for `/sse`.
#[derive(Debug)]
pub enum Events {
    /// `/sse`: `n` events `data: {"i":K,"pad":"..."}` of about `size` bytes, then `[DONE]`.
    Counter { n: u64, size: usize },
    /// Prebuilt records (provider stream events), sent in order.
    List(Vec<Record>),
}

/// One prebuilt record of a stream (an SSE event, an event-stream frame, a JSON array piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub bytes: Vec<u8>,
    /// Wait the stream's interval before sending it (a token after the first).
    pub pause: bool,
}

impl Events {
    /// Number of records, `[DONE]` included.
    pub fn count(&self) -> u64 {
        match self {
            Events::Counter { n, .. } => n + 1,
            Events::List(list) => list.len() as u64,
        }
    }

    /// Whether record `i` waits the interval first: every `/sse` record but the first, and the
    /// records marked so in a list.
    pub fn paced(&self, i: u64) -> bool {
        match self {
            Events::Counter { .. } => i > 0,
            Events::List(list) => usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .is_some_and(|r| r.pause),
        }
    }

    /// Appends record `i` to `out`.
    pub fn write(&self, i: u64, out: &mut Vec<u8>) {
        match self {
            Events::Counter { n, .. } if i >= *n => out.extend_from_slice(b"data: [DONE]\n\n"),
            Events::Counter { size, .. } => {
                let mut num = itoa::Buffer::new();
                let num = num.format(i);
                const FIXED: usize = "data: {\"i\":,\"pad\":\"\"}\n\n".len();
                let pad = size.saturating_sub(FIXED + num.len());
                out.extend_from_slice(b"data: {\"i\":");
                out.extend_from_slice(num.as_bytes());
                out.extend_from_slice(b",\"pad\":\"");
                out.resize(out.len() + pad, b'x');
                out.extend_from_slice(b"\"}\n\n");
            }
            Events::List(list) => {
                if let Some(e) = usize::try_from(i).ok().and_then(|i| list.get(i)) {
                    out.extend_from_slice(&e.bytes);
                }
            }
        }
    }
}

/// Bodies of `/bytes` and `/chunked` repeat `a..z`; byte `k` of a body is `b'a' + k % 26`.
const FILL_LEN: usize = 26 * 2520;
static FILL: [u8; FILL_LEN] = fill();

const fn fill() -> [u8; FILL_LEN] {
    let mut a = [0u8; FILL_LEN];
    let mut i = 0;
    while i < FILL_LEN {
        a[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    a
}

/// Longest piece [`pattern`] returns.
pub const PATTERN_MAX: usize = FILL_LEN - 26;

/// The body bytes at `offset..offset + len` (`len` at most [`PATTERN_MAX`]).
pub fn pattern(offset: usize, len: usize) -> &'static [u8] {
    let start = offset % 26;
    &FILL[start..start + len.min(PATTERN_MAX)]
}

/// Bodies up to this size are built in the write buffer; larger ones are streamed.
const INLINE_MAX: usize = 256 * 1024;

/// Answers one request. `body` is the complete, de-chunked request body.
pub fn handle(sh: &Shared, head: &Head<'_, '_>, body: &[u8], out: &mut Vec<u8>) -> Action {
    let path = head.path();
    if path == "/" && head.keep_alive && head.minor == 1 && head.method != "HEAD" {
        out.extend_from_slice(&sh.ok);
        return Action::Done;
    }
    let r = Responder {
        ctx: RespCtx {
            keep_alive: head.keep_alive,
            minor: head.minor,
            mock_id: sh.mock_id.as_deref(),
        },
        head_only: head.method == "HEAD",
    };
    let method = head.method;
    let query = head.query();

    match path {
        "/" => r.text(out, 200, "ok"),
        "/healthz" => {
            let status = HEALTH.load(Relaxed);
            r.text(out, status, if status == 200 { "ok" } else { "unhealthy" })
        }
        "/stats" => r.json(out, 200, &STATS.to_json()),
        "/echo" => match method {
            "POST" | "PUT" => echo(&r, head, body, out),
            _ => r.method_not_allowed(out),
        },
        "/echo-chunked" => match method {
            "GET" | "POST" => echo_chunked(&r, head, body, out),
            _ => r.method_not_allowed(out),
        },
        "/sse" => {
            let n = http::query_num(query, "events", 10);
            let interval = Duration::from_millis(http::query_num(query, "interval_ms", 100));
            let size = usize::try_from(http::query_num(query, "size", 0)).unwrap_or(0);
            r.events(
                StreamSpec {
                    interval,
                    sse_stats: true,
                    ..StreamSpec::default()
                },
                Events::Counter { n, size },
            )
        }
        "/hang" => Action::Stream(Stream {
            kind: StreamKind::Hang { head: Vec::new() },
            keep_alive: false,
        }),
        "/hang-body" => {
            let mut head = Vec::new();
            http::write_head(
                &mut head,
                200,
                Some("text/plain"),
                BodyLen::Length(10),
                &[],
                &r.ctx,
            );
            head.extend_from_slice(b"hello");
            Action::Stream(Stream {
                kind: StreamKind::Hang { head },
                keep_alive: false,
            })
        }
        "/mock/script" => match method {
            "POST" => match script::add(body) {
                Ok(n) => r.json(out, 200, &format!("{{\"rules\":{n}}}")),
                Err(e) => r.json(out, 400, &serde_json::json!({ "error": e }).to_string()),
            },
            "DELETE" => {
                script::clear();
                r.json(out, 200, "{\"rules\":0}")
            }
            "GET" => r.json(out, 200, &script::to_json()),
            _ => r.method_not_allowed(out),
        },
        "/mock/requests" => match method {
            "GET" => r.json(out, 200, &reqlog::to_json()),
            "DELETE" => {
                let n = reqlog::clear();
                r.json(out, 200, &format!("{{\"cleared\":{n}}}"))
            }
            _ => r.method_not_allowed(out),
        },
        _ => prefixed(sh, &r, head, body, out),
    }
}

/// Endpoints with a parameter in the path, then the provider endpoints.
fn prefixed(
    sh: &Shared,
    r: &Responder<'_>,
    head: &Head<'_, '_>,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Action {
    let path = head.path();
    let query = head.query();
    if path.starts_with("/inspect") {
        return inspect(r, head, body, out);
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let Ok(n) = n.parse::<usize>() else {
            return r.bad_request(out, "bad length");
        };
        return r.pattern_body(out, n, None);
    }
    if let Some(n) = path.strip_prefix("/chunked/") {
        let Ok(n) = n.parse::<usize>() else {
            return r.bad_request(out, "bad length");
        };
        let chunk = usize::try_from(http::query_num(query, "chunk", 4096)).unwrap_or(4096);
        return r.pattern_body(out, n, Some(chunk.clamp(1, PATTERN_MAX)));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code.parse::<u16>() {
            Ok(code @ 200..=599) => r.json(out, code, &format!("{{\"status\":{code}}}")),
            _ => r.bad_request(out, "status must be 200..599"),
        };
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        let Ok(ms) = ms.parse::<u64>() else {
            return r.bad_request(out, "bad delay");
        };
        let mut response = Vec::new();
        r.text(&mut response, 200, "ok");
        return Action::Stream(Stream {
            kind: StreamKind::Delayed {
                after: Duration::from_millis(ms),
                response,
            },
            keep_alive: r.ctx.keep_alive,
        });
    }
    if let Some(key) = path.strip_prefix("/flaky/") {
        let fail = http::query_num(query, "fail", 1);
        let status = http::query_num(query, "status", 503);
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .unwrap_or(503);
        let before = state::flaky_hit(key);
        return if before < fail {
            let attempt = before + 1;
            r.json(
                out,
                status,
                &format!("{{\"error\":\"flaky\",\"attempt\":{attempt}}}"),
            )
        } else {
            r.text(out, 200, "ok")
        };
    }
    if let Some(code) = path.strip_prefix("/control/health/") {
        if head.method != "POST" {
            return r.method_not_allowed(out);
        }
        return match code.parse::<u16>() {
            Ok(code @ 200..=599) => {
                HEALTH.store(code, Relaxed);
                r.json(out, 200, &format!("{{\"healthz\":{code}}}"))
            }
            _ => r.bad_request(out, "status must be 200..599"),
        };
    }
    if let Some(answer) = llm::handle(&sh.llm, head, body) {
        return r.deliver(answer, out);
    }
    r.json(out, 404, r#"{"error":"not found"}"#)
}

fn echo(r: &Responder<'_>, head: &Head<'_, '_>, body: &[u8], out: &mut Vec<u8>) -> Action {
    let mut num = itoa::Buffer::new();
    let received = num.format(body.len()).as_bytes();
    let transfer = head.framing.label().as_bytes();
    let ctype = head
        .header("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("application/octet-stream");
    r.respond(
        out,
        200,
        Some(ctype),
        body,
        &[
            ("x-received-bytes", received),
            ("x-request-transfer", transfer),
        ],
    )
}

fn echo_chunked(r: &Responder<'_>, head: &Head<'_, '_>, body: &[u8], out: &mut Vec<u8>) -> Action {
    let chunked = head.minor == 1;
    let framing = if chunked {
        BodyLen::Chunked
    } else {
        BodyLen::Close
    };
    let transfer = head.framing.label().as_bytes();
    http::write_head(
        out,
        200,
        Some("application/octet-stream"),
        framing,
        &[("x-request-transfer", transfer)],
        &r.ctx,
    );
    if r.head_only {
        return r.done();
    }
    if chunked {
        for piece in body.chunks(16 * 1024) {
            http::write_chunk(out, piece);
        }
        out.extend_from_slice(http::LAST_CHUNK);
        r.done()
    } else {
        out.extend_from_slice(body);
        Action::Close
    }
}

fn inspect(r: &Responder<'_>, head: &Head<'_, '_>, body: &[u8], out: &mut Vec<u8>) -> Action {
    // Built by hand to keep the documented key order (a serde_json map would sort the keys).
    let string = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut doc = String::with_capacity(256);
    doc.push_str("{\"method\":");
    doc.push_str(&string(head.method));
    doc.push_str(",\"path\":");
    doc.push_str(&string(head.target));
    doc.push_str(",\"headers\":[");
    for (i, h) in head.headers.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        doc.push('[');
        doc.push_str(&string(h.name));
        doc.push(',');
        doc.push_str(&string(&String::from_utf8_lossy(h.value)));
        doc.push(']');
    }
    doc.push_str("],\"body_len\":");
    doc.push_str(itoa::Buffer::new().format(body.len()));
    doc.push_str(",\"http_version\":");
    doc.push_str(if head.minor == 1 {
        "\"1.1\"}"
    } else {
        "\"1.0\"}"
    });
    r.json(out, 200, &doc)
}

// === impl Responder ===

/// Writes whole responses for one request.
struct Responder<'a> {
    ctx: RespCtx<'a>,
    head_only: bool,
}

impl Responder<'_> {
    fn done(&self) -> Action {
        if self.ctx.keep_alive {
            Action::Done
        } else {
            Action::Close
        }
    }

    fn respond(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        ctype: Option<&str>,
        body: &[u8],
        extra: &[(&str, &[u8])],
    ) -> Action {
        if http::bodyless_status(status) {
            http::write_head(out, status, None, BodyLen::Empty, extra, &self.ctx);
        } else {
            http::write_head(
                out,
                status,
                ctype,
                BodyLen::Length(body.len()),
                extra,
                &self.ctx,
            );
            if !self.head_only {
                out.extend_from_slice(body);
            }
        }
        self.done()
    }

    fn text(&self, out: &mut Vec<u8>, status: u16, body: &str) -> Action {
        self.respond(out, status, Some("text/plain"), body.as_bytes(), &[])
    }

    fn json(&self, out: &mut Vec<u8>, status: u16, body: &str) -> Action {
        self.respond(out, status, Some("application/json"), body.as_bytes(), &[])
    }

    fn bad_request(&self, out: &mut Vec<u8>, why: &str) -> Action {
        self.json(out, 400, &format!("{{\"error\":\"{why}\"}}"))
    }

    fn method_not_allowed(&self, out: &mut Vec<u8>) -> Action {
        self.json(out, 405, r#"{"error":"method not allowed"}"#)
    }

    /// `len` pattern bytes, with content-length or in chunks of `chunk`.
    fn pattern_body(&self, out: &mut Vec<u8>, len: usize, chunk: Option<usize>) -> Action {
        let ctype = Some("application/octet-stream");
        let chunk = chunk.filter(|_| self.ctx.minor == 1);
        let framing = match chunk {
            Some(_) => BodyLen::Chunked,
            None => BodyLen::Length(len),
        };
        let mut head = Vec::new();
        http::write_head(&mut head, 200, ctype, framing, &[], &self.ctx);
        if self.head_only {
            out.extend_from_slice(&head);
            return self.done();
        }
        if len > INLINE_MAX {
            return Action::Stream(Stream {
                kind: StreamKind::Bytes { head, len, chunk },
                keep_alive: self.ctx.keep_alive,
            });
        }
        out.extend_from_slice(&head);
        write_pattern(out, 0, len, chunk);
        if chunk.is_some() {
            out.extend_from_slice(http::LAST_CHUNK);
        }
        self.done()
    }

    /// A streamed response (chunked for HTTP/1.1 clients, close-delimited for HTTP/1.0).
    fn events(&self, spec: StreamSpec<'_>, events: Events) -> Action {
        let chunked = self.ctx.minor == 1;
        let framing = if chunked {
            BodyLen::Chunked
        } else {
            BodyLen::Close
        };
        let mut extra: Vec<(&str, &[u8])> = vec![("cache-control", b"no-cache")];
        extra.extend(spec.extra.iter().map(|(n, v)| (*n, v.as_bytes())));
        let mut head = Vec::new();
        http::write_head(
            &mut head,
            spec.status,
            Some(spec.ctype),
            framing,
            &extra,
            &self.ctx,
        );
        Action::Stream(Stream {
            kind: StreamKind::Events {
                delay: spec.delay,
                head,
                events,
                interval: spec.interval,
                chunked,
                sse_stats: spec.sse_stats,
                reset_after: spec.reset_after,
            },
            keep_alive: self.ctx.keep_alive && chunked,
        })
    }

    /// Writes (or schedules) a provider endpoint's answer.
    fn deliver(&self, answer: Answer, out: &mut Vec<u8>) -> Action {
        let extra: Vec<(&str, &[u8])> = answer
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_bytes()))
            .collect();
        match answer.body {
            Body::Hang => Action::Stream(Stream {
                kind: StreamKind::Hang { head: Vec::new() },
                keep_alive: false,
            }),
            Body::Close => Action::Close,
            Body::Whole(body) => {
                let ctype = Some(answer.ctype);
                if answer.ttft.is_zero() {
                    return self.respond(out, answer.status, ctype, &body, &extra);
                }
                let mut response = Vec::new();
                self.respond(&mut response, answer.status, ctype, &body, &extra);
                Action::Stream(Stream {
                    kind: StreamKind::Delayed {
                        after: answer.ttft,
                        response,
                    },
                    keep_alive: self.ctx.keep_alive,
                })
            }
            Body::Events(records) => self.events(
                StreamSpec {
                    status: answer.status,
                    ctype: answer.ctype,
                    extra: &answer.headers,
                    delay: answer.ttft,
                    interval: answer.interval,
                    reset_after: answer.reset_after,
                    sse_stats: false,
                },
                Events::List(records),
            ),
        }
    }
}

/// How a streamed response is sent.
struct StreamSpec<'a> {
    status: u16,
    ctype: &'a str,
    /// Headers besides content-type, framing and cache-control.
    extra: &'a [(&'static str, String)],
    /// Before the head.
    delay: Duration,
    /// Before each paced record.
    interval: Duration,
    reset_after: Option<u64>,
    /// Count it in the `sse_*` stats.
    sse_stats: bool,
}

impl Default for StreamSpec<'_> {
    fn default() -> Self {
        StreamSpec {
            status: 200,
            ctype: "text/event-stream",
            extra: &[],
            delay: Duration::ZERO,
            interval: Duration::ZERO,
            reset_after: None,
            sse_stats: false,
        }
    }
}

/// Appends pattern bytes `offset..offset + len` of a body, in chunks of `chunk` when given.
pub fn write_pattern(out: &mut Vec<u8>, offset: usize, len: usize, chunk: Option<usize>) {
    let step = chunk.unwrap_or(PATTERN_MAX).min(PATTERN_MAX);
    let mut done = 0;
    while done < len {
        let n = step.min(len - done);
        let piece = pattern(offset + done, n);
        if chunk.is_some() {
            http::write_chunk(out, piece);
        } else {
            out.extend_from_slice(piece);
        }
        done += n;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    fn run(req: &[u8], body: &[u8]) -> (Vec<u8>, Action) {
        let sh = Shared::new(Some("t".into()));
        let mut hdrs = http::header_slots();
        let head = http::parse_head(req, &mut hdrs).unwrap().unwrap();
        let mut out = Vec::new();
        let action = handle(&sh, &head, body, &mut out);
        (out, action)
    }

    #[test]
    fn fast_path_matches_generic_path() {
        let (fast, a) = run(b"GET / HTTP/1.1\r\n\r\n", b"");
        assert!(matches!(a, Action::Done));
        let (generic, _) = run(b"POST / HTTP/1.1\r\n\r\n", b"");
        assert_eq!(fast, generic);
        assert!(fast.ends_with(b"x-mock-id: t\r\n\r\nok"));
    }

    #[test]
    fn http10_closes() {
        let (out, a) = run(b"GET / HTTP/1.0\r\n\r\n", b"");
        assert!(matches!(a, Action::Close));
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains("connection: close\r\n"));
    }

    #[test]
    fn pattern_is_continuous() {
        let mut out = Vec::new();
        write_pattern(&mut out, 0, 3 * PATTERN_MAX + 7, None);
        assert!(out
            .iter()
            .enumerate()
            .all(|(k, &b)| b == b'a' + (k % 26) as u8));
        assert_eq!(pattern(27, 3), b"bcd");
    }

    #[test]
    fn sse_event_size() {
        let ev = Events::Counter { n: 2, size: 100 };
        let mut out = Vec::new();
        ev.write(1, &mut out);
        assert_eq!(out.len(), 100);
        assert!(out.starts_with(b"data: {\"i\":1,\"pad\":\"xx"));
        out.clear();
        ev.write(2, &mut out);
        assert_eq!(out, b"data: [DONE]\n\n");
        assert_eq!(ev.count(), 3);
        let small = Events::Counter { n: 1, size: 0 };
        out.clear();
        small.write(0, &mut out);
        assert_eq!(out, b"data: {\"i\":0,\"pad\":\"\"}\n\n");
    }

    #[test]
    fn status_and_404() {
        let (out, _) = run(b"GET /status/418 HTTP/1.1\r\n\r\n", b"");
        assert!(out.starts_with(b"HTTP/1.1 418 "));
        assert!(out.ends_with(b"{\"status\":418}"));
        let (out, _) = run(b"GET /status/204 HTTP/1.1\r\n\r\n", b"");
        assert!(!std::str::from_utf8(&out)
            .unwrap()
            .contains("content-length"));
        let (out, _) = run(b"GET /nope HTTP/1.1\r\n\r\n", b"");
        assert!(out.starts_with(b"HTTP/1.1 404 "));
        assert_eq!(http::Framing::None.label(), "none");
    }

    #[test]
    fn inspect_keeps_order() {
        let req =
            b"PATCH /inspect/a?b=%20 HTTP/1.1\r\nZ: 1\r\nA: \"q\"\r\ncontent-length: 2\r\n\r\n";
        let (out, _) = run(req, b"hi");
        let s = std::str::from_utf8(&out).unwrap();
        let body = s.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            body,
            r#"{"method":"PATCH","path":"/inspect/a?b=%20","headers":[["Z","1"],["A","\"q\""],["content-length","2"]],"body_len":2,"http_version":"1.1"}"#
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["headers"][1][1], "\"q\"");
    }

    #[test]
    fn echo_reports_framing() {
        let (out, _) = run(b"POST /echo HTTP/1.1\r\ncontent-length: 3\r\n\r\n", b"abc");
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.contains("x-received-bytes: 3\r\n"));
        assert!(s.contains("x-request-transfer: length\r\n"));
        assert!(s.ends_with("\r\n\r\nabc"));
    }
}
