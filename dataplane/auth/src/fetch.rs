//! A small blocking HTTP(S) GET for JWKS documents, run on the JWKS refresher's own thread,
//! never on a core.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Largest JWKS document read.
const MAX_BODY: usize = 1 << 20;

/// GETs `url` (`http://` or `https://`, through `connector`, or the default trust when none is
/// given); the body of a 200 answer.
pub(crate) fn get(
    url: &str,
    timeout: Duration,
    connector: Option<&weir_tls::Connector>,
) -> Result<Vec<u8>, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{url}` is not an http or https URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = weir_tls::host_of(authority);
    let addr_text = if authority
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(']') && !h.contains(':') && p.parse::<u16>().is_ok())
        || (authority.starts_with('[') && authority.contains("]:"))
    {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let addr = addr_text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr_text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr_text} resolves to nothing"))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nUser-Agent: weir\r\nConnection: close\r\n\r\n"
    );
    let raw = if tls {
        let default;
        let connector = match connector {
            Some(c) => c,
            None => {
                default = weir_tls::Connector::new(&weir_tls::ClientOptions::default())
                    .map_err(|e| e.to_string())?;
                &default
            }
        };
        let name = connector.server_name(host).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(Arc::clone(connector.config()), name)
            .map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut s, request.as_bytes())?
    } else {
        let mut s = tcp;
        exchange(&mut s, request.as_bytes())?
    };
    parse(&raw)
}

fn exchange(s: &mut (impl Read + Write), request: &[u8]) -> Result<Vec<u8>, String> {
    s.write_all(request)
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_BODY + (64 << 10) {
                    return Err("the answer is over 1 MiB".into());
                }
            }
            // A TLS peer that closes without close_notify still sent the whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    Ok(out)
}

/// The body of a complete HTTP/1.1 answer read until close.
fn parse(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete answer".into()),
        Err(e) => return Err(format!("bad answer: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let body = &raw[head_len..];
    if chunked {
        return dechunk(body);
    }
    match length {
        Some(n) if n <= body.len() => Ok(body[..n].to_vec()),
        Some(_) => Err("the answer was cut short".into()),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = std::str::from_utf8(&b[..line_end]).map_err(|_| "bad chunk")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("the answer was cut short".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").expect("ok"),
            b"{}"
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
                .expect("ok"),
            b"{}"
        );
        assert!(parse(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }

    #[test]
    fn fetches_over_http() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).expect("read");
            assert!(buf[..n].starts_with(b"GET /jwks HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}")
                .expect("write");
        });
        let body = get(&format!("http://{addr}/jwks"), Duration::from_secs(5), None).expect("get");
        assert_eq!(body, b"{\"keys\":[]}");
        t.join().expect("server");
    }
}
