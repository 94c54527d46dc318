//! Conversions between h2's heads (`http` types) and HTTP/1.1 bytes, and the gRPC status of an
//! HTTP answer.
//!
//! The bridge writes an h2 request as an HTTP/1.1 head (pseudo-headers become the request line
//! and `host`, split `cookie` fields are joined again, a body of unknown length is chunked) and
//! reads the request path's HTTP/1.1 response back into an h2 head, dropping the connection-level
//! fields HTTP/2 forbids.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// How the body of a request written as HTTP/1.1 is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (the HEADERS frame ended the stream).
    None,
    /// The client sent `content-length`: the body goes as is.
    Length,
    /// Length unknown: chunked.
    Chunked,
}

/// Writes `parts` as an HTTP/1.1 request head into `out`, and says how its body must be framed.
pub fn write_request(
    parts: &http::request::Parts,
    end_stream: bool,
    out: &mut Vec<u8>,
) -> RequestBody {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    match parts.uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => out.extend_from_slice(pq.as_str().as_bytes()),
        _ => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(a) = authority {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(a.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut cookies = 0;
    let mut has_length = false;
    for (name, value) in parts.headers.iter() {
        if name == http::header::HOST && authority.is_some() {
            continue;
        }
        if name == http::header::COOKIE {
            cookies += 1;
            continue;
        }
        // Connection-level fields have no meaning in HTTP/2 (h2 refuses most of them); none is
        // passed on as HTTP/1.1 framing.
        if name == http::header::TRANSFER_ENCODING || name == http::header::CONNECTION {
            continue;
        }
        if name == http::header::CONTENT_LENGTH {
            has_length = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if cookies > 0 {
        // RFC 9113 §8.2.3: split cookie fields are joined with "; " for HTTP/1.1.
        out.extend_from_slice(b"cookie: ");
        for (i, v) in parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    let body = if end_stream {
        RequestBody::None
    } else if has_length {
        RequestBody::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        RequestBody::Chunked
    };
    out.extend_from_slice(b"\r\n");
    body
}

/// Fields of an HTTP/1.1 message that are about its connection, never sent in HTTP/2.
pub fn is_connection_field(name: &[u8]) -> bool {
    const FIELDS: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"http2-settings",
    ];
    FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// An HTTP/1.1 response head as an h2 response (connection fields dropped; names lowercased;
/// a field h2 cannot carry is dropped too).
pub fn response_from(head: &weir_http::ResponseHead) -> http::Response<()> {
    let mut resp = http::Response::new(());
    *resp.status_mut() =
        http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    for h in head.headers.iter() {
        if is_connection_field(&h.name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&h.name),
            HeaderValue::from_maybe_shared(h.value.clone()),
        ) {
            headers.append(n, v);
        }
    }
    resp
}

/// The trailers in the tail of a chunked body: the bytes from the last chunk's data on
/// (`\r\n0\r\n` then `name: value\r\n` lines, then `\r\n`). Fields that do not parse are dropped.
pub fn chunked_trailers(tail: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let t = tail.strip_prefix(b"\r\n").unwrap_or(tail);
    // Past the last-chunk line ("0" and any extensions).
    let Some(eol) = t.windows(2).position(|w| w == b"\r\n") else {
        return map;
    };
    let mut fields = [httparse::EMPTY_HEADER; 32];
    if let Ok(httparse::Status::Complete((_, parsed))) =
        httparse::parse_headers(&t[eol + 2..], &mut fields)
    {
        for f in parsed.iter() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(f.name.as_bytes()),
                HeaderValue::from_bytes(f.value),
            ) {
                map.append(n, v);
            }
        }
    }
    map
}

/// Whether a `content-type` is gRPC's (`application/grpc`, `application/grpc+proto`, …; not
/// grpc-web, which is answered as ordinary HTTP).
pub fn is_grpc(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| {
        ct.len() >= 16
            && ct[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(ct.get(16), None | Some(b'+') | Some(b';'))
    })
}

/// The gRPC status of an answer the gateway made with this HTTP status (the gRPC spec's
/// mapping, made finer where the gateway knows the cause: 429 is a quota, 401 a credential).
pub fn grpc_status(http_status: u16) -> u32 {
    match http_status {
        200 => 0,
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 12,       // UNIMPLEMENTED
        408 | 504 => 4,  // DEADLINE_EXCEEDED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        499 => 1,        // CANCELLED
        502 | 503 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}

/// The message of an error answer's body: `error.message` of a JSON error (the gateway's own
/// format), else the body as text; percent-encoded for `grpc-message`, at most 512 bytes.
pub fn grpc_message(body: &[u8]) -> Bytes {
    let text: String = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let mut out = Vec::with_capacity(text.len());
    for &b in text.as_bytes().iter().take(512) {
        // gRPC's percent-encoding: printable ASCII but '%' goes as is.
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.push(b'%');
            out.extend_from_slice(format!("{b:02X}").as_bytes());
        }
    }
    Bytes::from(out)
}

/// A trailers-only gRPC answer for an error the gateway made: HTTP 200, `content-type`,
/// `grpc-status` and `grpc-message` in the one HEADERS frame that ends the stream.
pub fn grpc_error_response(http_status: u16, body: &[u8]) -> http::Response<()> {
    let mut resp = http::Response::new(());
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let mut code = itoa::Buffer::new();
    if let Ok(v) = HeaderValue::from_str(code.format(grpc_status(http_status))) {
        h.insert(HeaderName::from_static("grpc-status"), v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(grpc_message(body)) {
        h.insert(HeaderName::from_static("grpc-message"), v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn a_request_becomes_an_http1_head() {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://api.example.com/v1/chat?x=1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("content-type", "application/json")
            .body(())
            .expect("request");
        let mut out = Vec::new();
        let body = write_request(&parts(req), false, &mut out);
        assert_eq!(body, RequestBody::Chunked);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("POST /v1/chat?x=1 HTTP/1.1\r\nhost: api.example.com\r\n"));
        assert!(text.contains("cookie: a=1; b=2\r\n"));
        assert!(text.contains("transfer-encoding: chunked\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_length_or_no_body_is_not_chunked() {
        let req = http::Request::builder()
            .method("PUT")
            .uri("http://h/x")
            .header("content-length", "3")
            .body(())
            .expect("request");
        let mut out = Vec::new();
        assert_eq!(
            write_request(&parts(req), false, &mut out),
            RequestBody::Length
        );
        let get = http::Request::builder()
            .uri("http://h/")
            .body(())
            .expect("request");
        out.clear();
        assert_eq!(
            write_request(&parts(get), true, &mut out),
            RequestBody::None
        );
        assert!(!String::from_utf8_lossy(&out).contains("chunked"));
    }

    #[test]
    fn trailers_are_read_from_the_chunked_tail() {
        let t = chunked_trailers(b"\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
        assert_eq!(t.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
        assert_eq!(
            t.get("grpc-message").map(|v| v.as_bytes()),
            Some(&b"ok"[..])
        );
        assert!(chunked_trailers(b"0\r\n\r\n").is_empty());
    }

    #[test]
    fn grpc_content_types_and_statuses() {
        assert!(is_grpc(Some(b"application/grpc")));
        assert!(is_grpc(Some(b"application/grpc+proto")));
        assert!(!is_grpc(Some(b"application/grpc-web")));
        assert!(!is_grpc(Some(b"application/json")));
        assert_eq!(grpc_status(404), 12);
        assert_eq!(grpc_status(502), 14);
        assert_eq!(grpc_status(401), 16);
        assert_eq!(grpc_status(429), 8);
        let m = grpc_message(br#"{"error":{"message":"no route for /x 100%"}}"#);
        assert_eq!(&m[..], b"no route for /x 100%25");
        let r = grpc_error_response(404, b"{}");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "12");
    }
}
