//! The `Location` of a redirect route.

use weir_config::Redirect;
use weir_http::RequestHead;

/// Builds the absolute `Location` for a redirect: `scheme://host[:port]/path[?query]`, each part the
/// redirect does not give kept from the request (the scheme from the listener).
///
/// - `host` in the redirect replaces the whole authority, port included. When only the scheme
///   changes, a port that was the old scheme's default (`:80` for http, `:443` for https) is dropped,
///   so `http://a:80/x` → `https://a/x`, while any other port is kept.
/// - The request's query is kept unless `strip_query`; if the redirect's own `path` carries a query,
///   the request's is appended with `&`.
/// - Bytes that may not appear in a URI are percent-encoded, so the result is always a valid header
///   value.
/// - A request without any host (HTTP/1.0 without `Host`) gets a path-only `Location`, which clients
///   resolve against the URL they asked for (RFC 9110 §10.2.2).
pub fn redirect_location(r: &Redirect, req: &RequestHead, scheme_of_listener: &str) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(scheme_of_listener);
    let path: &[u8] = r.path.as_deref().map_or(req.path(), str::as_bytes);
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    let query = if r.strip_query {
        None
    } else {
        req.query().filter(|q| !q.is_empty())
    };
    let mut out = Vec::with_capacity(scheme.len() + req.host.len() + path.len() + 16);
    let authority: &[u8] = match &r.host {
        Some(h) => h.as_bytes(),
        None => drop_default_port(&req.host, scheme_of_listener, scheme),
    };
    if authority.is_empty() {
        // Path-only: a leading `//` would read as another host.
        if path.starts_with(b"//") {
            out.extend_from_slice(b"/%2F");
            push_encoded(&mut out, &path[2..]);
        } else {
            push_encoded(&mut out, path);
        }
    } else {
        push_encoded(&mut out, scheme.as_bytes());
        out.extend_from_slice(b"://");
        push_encoded(&mut out, authority);
        if !path.starts_with(b"/") {
            out.push(b'/');
        }
        push_encoded(&mut out, path);
    }
    if let Some(q) = query {
        out.push(if path.contains(&b'?') { b'&' } else { b'?' });
        push_encoded(&mut out, q);
    }
    // Only visible ASCII was pushed, so this never falls back to the lossy path.
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// `host:80` on an http → https redirect becomes `host`; the same for `:443` going to http.
fn drop_default_port<'a>(authority: &'a [u8], from: &str, to: &str) -> &'a [u8] {
    if from.eq_ignore_ascii_case(to) {
        return authority;
    }
    let default: &[u8] = if from.eq_ignore_ascii_case("http") {
        b":80"
    } else if from.eq_ignore_ascii_case("https") {
        b":443"
    } else {
        return authority;
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Appends `bytes`, percent-encoding what a URI may not hold: controls, space, non-ASCII, and
/// `"<>\^`{|}`.
fn push_encoded(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}
