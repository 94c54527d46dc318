use bytes::BytesMut;

use super::*;

fn req(raw: &str) -> Result<Option<RequestHead>> {
    let mut b = BytesMut::from(raw.as_bytes());
    parse_request(&mut b, &HeadLimits::default())
}

fn status_of(raw: &str) -> u16 {
    match req(raw) {
        Err(e) => e.status(),
        Ok(Some(_)) => 200,
        Ok(None) => 0,
    }
}

#[test]
fn simple_get_and_leftover() {
    let mut b =
        BytesMut::from(&b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nGET / HTTP/1.1\r\n"[..]);
    let h = parse_request(&mut b, &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(&h.method[..], b"GET");
    assert_eq!(h.path(), b"/a");
    assert_eq!(h.query(), Some(&b"b=1"[..]));
    assert_eq!(&h.host[..], b"x");
    assert_eq!(h.body, BodyKind::Empty);
    assert!(h.keep_alive);
    assert_eq!(&b[..], b"GET / HTTP/1.1\r\n");
    assert_eq!(h.headers.get_str("x-a"), Some("1"));
}

#[test]
fn partial_head_needs_more() {
    assert!(req("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
}

#[test]
fn framing() {
    let h = req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, BodyKind::Length(5));
    assert!(
        !h.headers.contains("content-length"),
        "framing is re-made by the writer"
    );
    let h = req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, BodyKind::Chunked);
}

#[test]
fn smuggling_is_refused() {
    let cases = [
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
        ("POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", 400),
        ("GET nope HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 400),
        ("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    ];
    for (raw, want) in cases {
        assert_eq!(status_of(raw), want, "{raw:?}");
    }
}

#[test]
fn limits() {
    let l = HeadLimits {
        max_request_line: 64,
        max_header_count: 3,
        max_header_bytes: 256,
    };
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
    let mut b = BytesMut::from(long_line.as_bytes());
    assert_eq!(parse_request(&mut b, &l).unwrap_err(), Error::UriTooLong);
    let mut b = BytesMut::from(format!("GET /{}", "a".repeat(100)).as_bytes());
    assert_eq!(parse_request(&mut b, &l).unwrap_err(), Error::UriTooLong);
    let many = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let mut b = BytesMut::from(many.as_bytes());
    assert_eq!(
        parse_request(&mut b, &l).unwrap_err(),
        Error::HeadersTooLarge
    );
    let big = format!("GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n", "v".repeat(300));
    let mut b = BytesMut::from(big.as_bytes());
    assert_eq!(
        parse_request(&mut b, &l).unwrap_err(),
        Error::HeadersTooLarge
    );
}

#[test]
fn connection_semantics() {
    let h = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive);
    let h = req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.keep_alive);
    let h = req("GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.keep_alive);
    assert!(
        !h.headers.contains("x-secret"),
        "fields named by Connection are hop-by-hop"
    );
    assert!(!h.headers.contains("keep-alive"));
    let h = req("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.upgrade.as_deref(), Some(&b"websocket"[..]));
    let h = req("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.expect_continue);
    assert!(!h.headers.contains("expect"));
}

#[test]
fn absolute_form_target() {
    let h = req("GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(&h.target[..], b"/p?q");
    assert_eq!(&h.host[..], b"Example.com:8080");
    assert_eq!(h.headers.get_str("host"), Some("Example.com:8080"));
    let h = req("GET http://e.com HTTP/1.1\r\nHost: e.com\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(&h.target[..], b"/");
}

fn decode_all(kind: BodyKind, input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool)> {
    let mut d = BodyDecoder::new(kind);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        let piece = &input[pos..end];
        let s = d.scan(piece, |r| out.extend_from_slice(&piece[r]))?;
        pos += s.consumed;
        if s.done {
            return Ok((out, pos, true));
        }
        if s.consumed == 0 {
            break;
        }
    }
    Ok((out, pos, d.is_done()))
}

#[test]
fn chunked_decoding_any_split() {
    let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, 100] {
        let (data, used, done) = decode_all(BodyKind::Chunked, body, step).unwrap();
        assert_eq!(data, b"hello world", "step {step}");
        assert!(done);
        assert_eq!(&body[used..], b"NEXT", "step {step}");
    }
}

#[test]
fn chunked_errors() {
    for bad in [
        &b"x\r\n"[..],
        b"5\nhello\r\n",
        b"5\r\nhelloXX",
        b"fffffffffffffffff\r\n",
        b"\r\n",
        b"0\r\nA: b\n\r\n",
        b"-1\r\n",
    ] {
        assert!(decode_all(BodyKind::Chunked, bad, 1).is_err(), "{bad:?}");
    }
}

#[test]
fn length_body() {
    let (data, used, done) = decode_all(BodyKind::Length(3), b"abcdef", 2).unwrap();
    assert_eq!((data.as_slice(), used, done), (&b"abc"[..], 3, true));
}

#[test]
fn response_framing() {
    let mut b = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"[..],
    );
    let r = parse_response(&mut b, 1 << 16, false).unwrap().unwrap();
    assert_eq!(
        (r.status, r.body, r.keep_alive),
        (200, BodyKind::Length(2), true)
    );
    assert_eq!(&b[..], b"ok");
    let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n"[..]);
    let r = parse_response(&mut b, 1 << 16, false).unwrap().unwrap();
    assert_eq!(r.body, BodyKind::UntilClose);
    assert!(!r.keep_alive);
    let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"[..]);
    assert_eq!(
        parse_response(&mut b, 1 << 16, true).unwrap().unwrap().body,
        BodyKind::Empty
    );
    let mut b = BytesMut::from(&b"HTTP/1.1 204 No Content\r\n\r\n"[..]);
    assert_eq!(
        parse_response(&mut b, 1 << 16, false)
            .unwrap()
            .unwrap()
            .body,
        BodyKind::Empty
    );
    let mut b =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]);
    assert!(parse_response(&mut b, 1 << 16, false).is_err());
}

#[test]
fn writers() {
    let mut h = Headers::default();
    push_header(&mut h, "host", "x");
    let mut out = Vec::new();
    write_request_head(&mut out, b"POST", b"/p", &h, BodyKind::Length(3));
    assert_eq!(
        out,
        b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n"
    );
    out.clear();
    write_response_head(
        &mut out,
        404,
        b"",
        &Headers::default(),
        BodyKind::Chunked,
        true,
    );
    assert_eq!(
        out,
        b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    out.clear();
    write_chunk_header(&mut out, 255);
    assert_eq!(out, b"ff\r\n");
}

#[test]
fn bare_cr_is_refused() {
    for raw in [
        "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n",
        "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(status_of(raw), 400, "{raw:?}");
    }
}

/// Heads built from random lines and line ends: whatever the parsers accept has no bare LF (the
/// fast CRLF proof must never pass a head the full scan would refuse), and the fields they keep
/// read back as sent.
#[test]
fn no_bare_lf_gets_through() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let ends = ["\r\n", "\r\n", "\r\n", "\n"];
    for _ in 0..20_000 {
        let mut raw = String::new();
        for _ in 0..rnd(3) {
            raw.push_str(ends[rnd(4) as usize]);
        }
        let response = rnd(2) == 0;
        raw.push_str(if response {
            "HTTP/1.1 200 OK"
        } else {
            "GET /p HTTP/1.1"
        });
        raw.push_str(ends[rnd(4) as usize]);
        if !response {
            raw.push_str("Host: x");
            raw.push_str(ends[rnd(4) as usize]);
        }
        for i in 0..rnd(4) {
            raw.push_str(&format!("X-{i}: v{i} "));
            raw.push_str(ends[rnd(4) as usize]);
        }
        raw.push_str(ends[rnd(4) as usize]);
        let mut b = BytesMut::from(raw.as_bytes());
        let head_len = if response {
            match parse_response(&mut b, 1 << 16, false) {
                Ok(Some(r)) => Some((r.head_len, r.headers)),
                _ => None,
            }
        } else {
            match parse_request(&mut b, &HeadLimits::default()) {
                Ok(Some(r)) => Some((r.head_len, r.headers)),
                _ => None,
            }
        };
        if let Some((n, headers)) = head_len {
            let bytes = raw.as_bytes();
            let start = bytes.len() - b.len() - n;
            let head = &bytes[start..start + n];
            for (i, c) in head.iter().enumerate() {
                assert!(
                    *c != b'\n' || (i > 0 && head[i - 1] == b'\r'),
                    "bare LF accepted in {raw:?}"
                );
            }
            for (name, value) in headers.fields() {
                let line = format!(
                    "{}: {} \r\n",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                );
                assert!(name == b"Host" || raw.contains(&line), "{raw:?}");
            }
        }
    }
}

/// Heads with more fields than the parsers' first try has room for are parsed again, within the
/// limits.
#[test]
fn many_fields() {
    let fields: String = (0..70).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    let h = req(&raw).unwrap().unwrap();
    assert_eq!(h.headers.len(), 71);
    assert_eq!(h.headers.get_str("x-69"), Some("69"));
    let l = HeadLimits {
        max_header_count: 50,
        ..HeadLimits::default()
    };
    let mut b = BytesMut::from(raw.as_bytes());
    assert_eq!(
        parse_request(&mut b, &l).unwrap_err(),
        Error::HeadersTooLarge
    );
    let mut b =
        BytesMut::from(format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n").as_bytes());
    let r = parse_response(&mut b, 1 << 16, false).unwrap().unwrap();
    assert_eq!(r.headers.len(), 70);
    let many: String = (0..300).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let mut b = BytesMut::from(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes());
    assert!(parse_response(&mut b, 1 << 16, false).is_err());
}

/// Scans `body` in reads of `step` bytes with a decoder that keeps trailers, as the proxy does:
/// what it would forward (each read's consumed bytes less the trailer bytes at their end), the
/// section kept, and the bytes left after the message.
fn forward_keeping(body: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, usize) {
    let mut d = BodyDecoder::new(BodyKind::Chunked);
    d.keep_trailers();
    assert!(d.keeps_trailers());
    let mut forwarded = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let end = (pos + step).min(body.len());
        let before = d.trailer_len();
        let s = d.scan(&body[pos..end], |_| {}).unwrap();
        let held = d.trailer_len() - before;
        forwarded.extend_from_slice(&body[pos..pos + s.consumed - held]);
        pos += s.consumed;
        if s.done {
            break;
        }
    }
    assert!(d.is_done());
    (forwarded, d.take_trailers(), pos)
}

#[test]
fn a_kept_trailer_section_is_cut_off_the_forwarded_bytes_at_any_split() {
    let body = b"5\r\nhello\r\n0;x=1\r\ngrpc-status: 0\r\nX-Sum:  ab \r\n\r\nNEXT";
    for step in [1, 2, 5, 13, 100] {
        let (fwd, section, used) = forward_keeping(body, step);
        assert_eq!(fwd, b"5\r\nhello\r\n0;x=1\r\n", "step {step}");
        assert_eq!(
            section, b"grpc-status: 0\r\nX-Sum:  ab \r\n\r\n",
            "step {step}"
        );
        assert_eq!(&body[used..], b"NEXT", "step {step}");
    }
    // No trailers: the section is the final CRLF alone.
    let (fwd, section, _) = forward_keeping(b"3\r\nabc\r\n0\r\n\r\n", 4);
    assert_eq!(
        (&fwd[..], &section[..]),
        (&b"3\r\nabc\r\n0\r\n"[..], &b"\r\n"[..])
    );
    // Other framings keep nothing, and a plain decoder keeps nothing either.
    let mut d = BodyDecoder::new(BodyKind::Length(3));
    d.keep_trailers();
    assert!(!d.keeps_trailers());
    let mut d = BodyDecoder::new(BodyKind::Chunked);
    d.scan(b"0\r\nA: b\r\n\r\n", |_| {}).unwrap();
    assert_eq!(d.trailer_len(), 0);
}

#[test]
fn trailers_parse_as_spans_and_write_back_verbatim() {
    let section = bytes::Bytes::from_static(b"grpc-status: 0\r\nX-Sum:  ab \r\n\r\n");
    let t = parse_trailers(section.clone()).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.get_str("grpc-status"), Some("0"));
    assert_eq!(t.get_str("x-sum"), Some("ab"));
    let mut out = Vec::new();
    assert_eq!(write_trailers(&mut out, &t), 0);
    assert_eq!(out, &section[..], "unchanged fields go out as received");
    assert!(parse_trailers(bytes::Bytes::from_static(b"\r\n"))
        .unwrap()
        .is_empty());
    for bad in [&b"no colon\r\n\r\n"[..], b"a b: c\r\n\r\n", b"a: b\r\n"] {
        assert!(
            parse_trailers(bytes::Bytes::from_static(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn framing_and_hop_by_hop_fields_are_never_written_as_trailers() {
    let mut t = parse_trailers(bytes::Bytes::from_static(b"a: 1\r\n\r\n")).unwrap();
    t.append("Content-Length", "5");
    t.append("transfer-encoding", "chunked");
    t.append("Connection", "close");
    t.append("host", "evil");
    t.append("x-split", "v\r\n\r\nGET / HTTP/1.1");
    t.append("bad name", "v");
    t.set("a", "2");
    t.append("x-ok", "yes");
    let mut out = Vec::new();
    assert_eq!(write_trailers(&mut out, &t), 6);
    assert_eq!(out, b"a: 2\r\nx-ok: yes\r\n\r\n");
    assert!(is_forbidden_trailer(b"TE"));
    assert!(is_forbidden_trailer(b"trailer"));
    assert!(!is_forbidden_trailer(b"grpc-status"));
}
