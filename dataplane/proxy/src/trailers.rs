//! The trailer phases of the filters, on routes whose chain reads trailers (`Needs::
//! request_trailers` / `response_trailers`). Everywhere else a chunked body's trailer section is
//! forwarded as received with the rest of the body, and nothing here runs.
//!
//! There, the body's decoder keeps the trailer section instead of it being forwarded: everything
//! before it goes on as received, and at the body's end the section's fields are parsed, shown to
//! the filters, and written anew from what they left (`weir_http::write_trailers`, which drops the
//! fields a trailer may not carry: framing, hop-by-hop, `host`). A section with no fields (the
//! usual end of a chunked body) calls no filter and goes out as the same CRLF. Fields of HTTP/2
//! trailers (from an h2 upstream, or to one) are converted to and from the same `Headers`.

use bytes::Bytes;
use weir_filter::{Action, Filter, ProxyError, RequestCtx, Side};
use weir_http::Headers;

/// The section of a body without trailer fields.
const EMPTY: &[u8] = b"\r\n";

/// Runs the filters' `on_request_trailers` over a kept request trailer section of a streamed
/// upload; the section to send in its place, or the error that answers the request (a filter's
/// answer made one, as the streaming phases do: see `forward::refused_body`). `Wait` counts as
/// `Continue`.
pub(crate) fn request_section(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    section: Vec<u8>,
) -> Result<Vec<u8>, ProxyError> {
    if section == EMPTY {
        return Ok(section);
    }
    let mut trailers =
        weir_http::parse_trailers(Bytes::from(section)).map_err(|e| ProxyError::from_codec(&e))?;
    match request_phase(ctx, filters, &mut trailers) {
        None => Ok(section_of(ctx, &trailers)),
        Some(v) => Err(crate::forward::refused_body(v)),
    }
}

/// `on_request_trailers` of each filter in order, until one answers other than `Continue`;
/// that answer.
pub(crate) fn request_phase(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    trailers: &mut Headers,
) -> Option<Result<Action, ProxyError>> {
    for f in filters.iter_mut() {
        match f.on_request_trailers(ctx, trailers) {
            Ok(Action::Continue) | Ok(Action::Wait(_)) => {}
            other => return Some(other),
        }
    }
    None
}

/// Runs the filters' `on_response_trailers` over a kept response trailer section; the section to
/// send in its place. An error aborts the response.
pub(crate) fn response_section(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    section: Vec<u8>,
) -> Result<Vec<u8>, ProxyError> {
    if section == EMPTY {
        return Ok(section);
    }
    let mut trailers = weir_http::parse_trailers(Bytes::from(section))
        .map_err(|e| ProxyError::new(502, "upstream_bad_body", Side::Upstream, e.to_string()))?;
    response_phase(ctx, filters, &mut trailers)?;
    Ok(section_of(ctx, &trailers))
}

/// `on_response_trailers` of each filter in order.
pub(crate) fn response_phase(
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    trailers: &mut Headers,
) -> Result<(), ProxyError> {
    for f in filters.iter_mut() {
        f.on_response_trailers(ctx, trailers)?;
    }
    Ok(())
}

/// The section written from `trailers` (fields that may be trailers, then the final CRLF).
pub(crate) fn section_of(ctx: &RequestCtx, trailers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let dropped = weir_http::write_trailers(&mut out, trailers);
    if dropped > 0 {
        tracing::debug!(request_id = %ctx.request_id, dropped, "trailer fields a trailer may not carry were dropped");
    }
    out
}

/// HTTP/2 trailers as fields (names as h2 gives them: lower case).
pub(crate) fn from_h2(map: &http::HeaderMap) -> Headers {
    let mut h = Headers::with_capacity(map.len());
    for (n, v) in map.iter() {
        h.append(
            Bytes::copy_from_slice(n.as_str().as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        );
    }
    h
}

/// Fields as HTTP/2 trailers: the fields a trailer may not carry, and those h2 cannot carry (a
/// connection field, a name or value it refuses), are dropped.
pub(crate) fn to_h2(trailers: &Headers) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(trailers.len());
    for (n, v) in trailers.fields() {
        if weir_http::is_forbidden_trailer(n) || weir_h2::head::is_connection_field(n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(n),
            http::HeaderValue::from_bytes(v),
        ) {
            map.append(n, v);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds `x-seen: <grpc-status>` and removes `x-drop`; refuses with 403 when `x-deny` is there.
    struct Edit;

    impl Filter for Edit {
        fn on_request_trailers(
            &mut self,
            _: &mut RequestCtx,
            t: &mut Headers,
        ) -> Result<Action, ProxyError> {
            if t.contains("x-deny") {
                return Ok(Action::Respond(weir_filter::LocalResponse::empty(403)));
            }
            t.remove("x-drop");
            t.append("host", "evil");
            t.append("x-added", "1");
            Ok(Action::Continue)
        }

        fn on_response_trailers(
            &mut self,
            _: &mut RequestCtx,
            t: &mut Headers,
        ) -> Result<(), ProxyError> {
            let seen = t.get("grpc-status").cloned().unwrap_or_default();
            t.append("x-seen", seen);
            Ok(())
        }
    }

    fn ctx() -> RequestCtx {
        RequestCtx::new("r".into(), ([127, 0, 0, 1], 1).into(), "l".into(), 0)
    }

    #[test]
    fn sections_are_edited_and_forbidden_fields_dropped() {
        let mut filters: Vec<Box<dyn Filter>> = vec![Box::new(Edit)];
        let mut c = ctx();
        let out = request_section(&mut c, &mut filters, b"a: 1\r\nx-drop: 2\r\n\r\n".to_vec());
        assert_eq!(
            out.ok().as_deref(),
            Some(&b"a: 1\r\nx-added: 1\r\n\r\n"[..])
        );
        let out = request_section(&mut c, &mut filters, b"x-deny: 1\r\n\r\n".to_vec());
        assert_eq!(out.err().map(|e| e.status), Some(403));
        let out = response_section(&mut c, &mut filters, b"grpc-status: 7\r\n\r\n".to_vec());
        assert_eq!(
            out.ok().as_deref(),
            Some(&b"grpc-status: 7\r\nx-seen: 7\r\n\r\n"[..])
        );
        // No fields: the filters are not called, the CRLF goes out as it came.
        let out = response_section(&mut c, &mut filters, b"\r\n".to_vec());
        assert_eq!(out.ok().as_deref(), Some(&b"\r\n"[..]));
        // A field that does not parse: the sender's error.
        let out = response_section(&mut c, &mut filters, b"bad line\r\n\r\n".to_vec());
        assert_eq!(out.err().map(|e| e.status), Some(502));
        let out = request_section(&mut c, &mut filters, b"bad line\r\n\r\n".to_vec());
        assert_eq!(out.err().map(|e| e.status), Some(400));
    }

    #[test]
    fn h2_trailers_round_trip_without_forbidden_fields() {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static("0"));
        let mut h = from_h2(&map);
        h.append("content-length", "3");
        h.append("x-b", "2");
        let back = to_h2(&h);
        assert_eq!(back.len(), 2);
        assert_eq!(back["grpc-status"], "0");
        assert_eq!(back["x-b"], "2");
    }
}
