#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;

/// The fields of a parsed head, owned: method, target, minor, len, framing, keep-alive, expect.
type Parsed = (String, String, u8, usize, Framing, bool, bool);

fn parse(buf: &[u8]) -> Result<Option<Parsed>, ParseError> {
    let mut hdrs = header_slots();
    Ok(parse_head(buf, &mut hdrs)?.map(|h| {
        (
            h.method.to_owned(),
            h.target.to_owned(),
            h.minor,
            h.len,
            h.framing,
            h.keep_alive,
            h.expect_continue,
        )
    }))
}

#[test]
fn simple_get_keeps_alive() {
    let req = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (m, t, minor, len, framing, ka, expect) = parse(req).unwrap().unwrap();
    assert_eq!((m.as_str(), t.as_str(), minor), ("GET", "/a?b=1", 1));
    assert_eq!(len, req.len());
    assert_eq!(framing, Framing::None);
    assert!(ka);
    assert!(!expect);
}

#[test]
fn partial_head_needs_more() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    assert_eq!(parse(b"GE").unwrap(), None);
}

#[test]
fn pipelined_head_stops_at_first_request() {
    let one = b"GET / HTTP/1.1\r\n\r\n";
    let mut two = one.to_vec();
    two.extend_from_slice(b"GET /x HTTP/1.1\r\n\r\n");
    let (_, _, _, len, ..) = parse(&two).unwrap().unwrap();
    assert_eq!(len, one.len());
}

#[test]
fn connection_semantics() {
    let close = parse(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!close.5);
    let http10 = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!http10.5);
    let http10_ka = parse(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(http10_ka.5);
    let list = parse(b"GET / HTTP/1.1\r\nconnection: upgrade, close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!list.5);
}

#[test]
fn body_framing() {
    let cl = parse(b"POST /echo HTTP/1.1\r\ncontent-length: 12\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(cl.4, Framing::Length(12));
    let te = parse(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(te.4, Framing::Chunked);
    let same = parse(b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(same.4, Framing::Length(3));
    let expect = parse(b"POST / HTTP/1.1\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(expect.6);
}

#[test]
fn smuggling_shapes_are_refused() {
    let both = b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(parse(both), Err(ParseError::AmbiguousLength));
    let two = b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n";
    assert_eq!(parse(two), Err(ParseError::AmbiguousLength));
    let gzip = b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
    assert_eq!(parse(gzip), Err(ParseError::UnsupportedCoding));
    let twice =
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(parse(twice), Err(ParseError::UnsupportedCoding));
    let signed = b"POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\n";
    assert_eq!(parse(signed), Err(ParseError::Malformed));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"),
        Err(ParseError::Malformed)
    );
}

#[test]
fn limits() {
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many), Err(ParseError::TooLarge));
    let mut huge = b"GET / HTTP/1.1\r\nx: ".to_vec();
    huge.resize(MAX_HEAD + 10, b'a');
    assert_eq!(parse(&huge), Err(ParseError::TooLarge));
    let big = format!(
        "POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    assert_eq!(parse(big.as_bytes()), Err(ParseError::BodyTooLarge));
}

#[test]
fn head_accessors() {
    let mut hdrs = header_slots();
    let head = parse_head(
        b"GET /sse?events=3&x HTTP/1.1\r\nX-Thing: v\r\n\r\n",
        &mut hdrs,
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.path(), "/sse");
    assert_eq!(head.query(), "events=3&x");
    assert_eq!(head.header("x-thing"), Some(&b"v"[..]));
    assert_eq!(head.header("missing"), None);
}

#[test]
fn decimal() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b" 42 "), Some(42));
    assert_eq!(parse_decimal(b""), None);
    assert_eq!(parse_decimal(b"1a"), None);
    assert_eq!(parse_decimal(b"-1"), None);
    assert_eq!(parse_decimal(b"99999999999999999999"), None);
}

#[test]
fn query_params() {
    let q = "events=5&interval_ms=10&flag&empty=";
    assert_eq!(query_param(q, "events"), Some("5"));
    assert_eq!(query_param(q, "flag"), Some(""));
    assert_eq!(query_param(q, "empty"), Some(""));
    assert_eq!(query_param(q, "nope"), None);
    assert_eq!(query_num(q, "interval_ms", 100), 10);
    assert_eq!(query_num(q, "flag", 7), 7);
    assert_eq!(query_num("", "x", 3), 3);
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let n = d.feed(input, &mut out)?;
    Ok((out, n, d.is_done()))
}

#[test]
fn chunked_whole_body() {
    let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    assert_eq!(
        decode_all(body).unwrap(),
        (b"hello, world".to_vec(), body.len(), true)
    );
}

#[test]
fn chunked_stops_at_body_end() {
    let mut input = b"3\r\nabc\r\n0\r\n\r\n".to_vec();
    let body_len = input.len();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (out, n, done) = decode_all(&input).unwrap();
    assert_eq!((out.as_slice(), n, done), (&b"abc"[..], body_len, true));
}

#[test]
fn chunked_with_trailers_and_hex_sizes() {
    let mut body = b"1A\r\n".to_vec();
    body.extend_from_slice(&[b'z'; 26]);
    body.extend_from_slice(b"\r\n0\r\nx-trailer: 1\r\nother: 2\r\n\r\n");
    let (out, n, done) = decode_all(&body).unwrap();
    assert_eq!((out.len(), n, done), (26, body.len(), true));
}

#[test]
fn chunked_byte_by_byte() {
    let body = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    for (i, b) in body.iter().enumerate() {
        assert!(!d.is_done(), "done too early at {i}");
        assert_eq!(d.feed(std::slice::from_ref(b), &mut out), Ok(1));
    }
    assert!(d.is_done());
    assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
}

#[test]
fn chunked_split_at_every_point() {
    let body = b"6\r\nabcdef\r\n2\r\ngh\r\n0\r\n\r\n";
    for cut in 0..body.len() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let a = d.feed(&body[..cut], &mut out).unwrap();
        assert_eq!(a, cut);
        let b = d.feed(&body[cut..], &mut out).unwrap();
        assert_eq!(a + b, body.len());
        assert!(d.is_done());
        assert_eq!(out, b"abcdefgh");
    }
}

#[test]
fn chunked_errors() {
    assert_eq!(decode_all(b"x\r\n"), Err(ChunkError));
    assert_eq!(decode_all(b"\r\n"), Err(ChunkError));
    assert_eq!(decode_all(b"3\r\nabcX"), Err(ChunkError));
    assert_eq!(decode_all(b"3\nabc"), Err(ChunkError));
    assert_eq!(decode_all(b"ffffffffffffffff\r\n"), Err(ChunkError));
    assert_eq!(decode_all(b"0\r\n\rX"), Err(ChunkError));
}

#[test]
fn chunked_incomplete_is_not_done() {
    let (out, n, done) = decode_all(b"5\r\nhel").unwrap();
    assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 6, false));
    let (_, _, done) = decode_all(b"0\r\n").unwrap();
    assert!(!done);
}

#[test]
fn response_heads() {
    let ctx = RespCtx {
        keep_alive: true,
        minor: 1,
        mock_id: Some("m1"),
    };
    let mut out = Vec::new();
    write_head(
        &mut out,
        200,
        Some("text/plain"),
        BodyLen::Length(2),
        &[],
        &ctx,
    );
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nx-mock-id: m1\r\n\r\n"
    );
    out.clear();
    let close = RespCtx {
        keep_alive: false,
        minor: 0,
        mock_id: None,
    };
    write_head(
        &mut out,
        503,
        None,
        BodyLen::Chunked,
        &[("x-a", b"b")],
        &close,
    );
    assert_eq!(
        out,
        b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nx-a: b\r\nconnection: close\r\n\r\n"
    );
    out.clear();
    let ka10 = RespCtx {
        keep_alive: true,
        minor: 0,
        mock_id: None,
    };
    write_head(&mut out, 204, None, BodyLen::Empty, &[], &ka10);
    assert_eq!(
        out,
        b"HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn chunks() {
    let mut out = Vec::new();
    write_chunk(&mut out, &[b'a'; 26]);
    write_chunk(&mut out, b"");
    out.extend_from_slice(LAST_CHUNK);
    let mut d = ChunkedDecoder::new();
    let mut body = Vec::new();
    assert_eq!(d.feed(&out, &mut body), Ok(out.len()));
    assert!(d.is_done());
    assert_eq!(body, [b'a'; 26]);
    assert!(out.starts_with(b"1a\r\n"));
}
