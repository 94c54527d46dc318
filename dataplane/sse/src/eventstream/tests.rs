use super::*;

/// AWS's event-stream test vector `all_headers`, one header of every value type, written out byte by
/// byte from its description in the AWS SDKs' shared test vectors (aws-sdk-js-v3,
/// `packages/eventstream-codec/src/TestVectors.fixture.ts`; the same vector set as
/// `aws-c-event-stream` and aws-sdk-go's `private/protocol/eventstream/testdata/`): total length
/// 204, headers length 175, prelude CRC 0x0FAE64CA, payload `{'foo':'bar'}`, message CRC 0xABA5F10C.
#[rustfmt::skip]
const AWS_ALL_HEADERS: [u8; 204] = [
    0x00, 0x00, 0x00, 0xCC,  0x00, 0x00, 0x00, 0xAF,  0x0F, 0xAE, 0x64, 0xCA,
    // "event-type": int32 40972
    10, b'e', b'v', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 4, 0x00, 0x00, 0xA0, 0x0C,
    // "content-type": string "application/json"
    12, b'c', b'o', b'n', b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 7, 0x00, 16,
    b'a', b'p', b'p', b'l', b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n',
    // "bool false": false
    10, b'b', b'o', b'o', b'l', b' ', b'f', b'a', b'l', b's', b'e', 1,
    // "bool true": true
    9, b'b', b'o', b'o', b'l', b' ', b't', b'r', b'u', b'e', 0,
    // "byte": 0xCF
    4, b'b', b'y', b't', b'e', 2, 0xCF,
    // "byte buf": bytes "I'm a little teapot!"
    8, b'b', b'y', b't', b'e', b' ', b'b', b'u', b'f', 6, 0x00, 20,
    b'I', b'\'', b'm', b' ', b'a', b' ', b'l', b'i', b't', b't', b'l', b'e', b' ',
    b't', b'e', b'a', b'p', b'o', b't', b'!',
    // "timestamp": 8675309
    9, b't', b'i', b'm', b'e', b's', b't', b'a', b'm', b'p', 8,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x84, 0x5F, 0xED,
    // "int16": 42
    5, b'i', b'n', b't', b'1', b'6', 3, 0x00, 42,
    // "int64": 42424242
    5, b'i', b'n', b't', b'6', b'4', 5, 0x00, 0x00, 0x00, 0x00, 0x02, 0x87, 0x57, 0xB2,
    // "uuid": 01 02 .. 10
    4, b'u', b'u', b'i', b'd', 9,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
    // payload
    b'{', b'\'', b'f', b'o', b'o', b'\'', b':', b'\'', b'b', b'a', b'r', b'\'', b'}',
    // message CRC
    0xAB, 0xA5, 0xF1, 0x0C,
];

/// The `empty_message` vector of the same set (also in `aws-c-event-stream`'s
/// `tests/message_serialization_test.c`).
const AWS_EMPTY: [u8; 16] = [
    0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xC2, 0x48, 0xEB, 0x7D, 0x98, 0xC8, 0xFF,
];

fn all_headers() -> Vec<Header<'static>> {
    vec![
        Header::new("event-type", HeaderValue::Int(40972)),
        Header::new("content-type", HeaderValue::String("application/json")),
        Header::new("bool false", HeaderValue::Bool(false)),
        Header::new("bool true", HeaderValue::Bool(true)),
        Header::new("byte", HeaderValue::Byte(0xCFu8 as i8)),
        Header::new("byte buf", HeaderValue::Bytes(b"I'm a little teapot!")),
        Header::new("timestamp", HeaderValue::Timestamp(8675309)),
        Header::new("int16", HeaderValue::Short(42)),
        Header::new("int64", HeaderValue::Long(42424242)),
        Header::new(
            "uuid",
            HeaderValue::Uuid([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
        ),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

fn own(m: &Message<'_>) -> Owned {
    Owned {
        headers: m
            .headers()
            .map(|h| (h.name.to_owned(), format!("{:?}", h.value)))
            .collect(),
        payload: m.payload().to_vec(),
    }
}

fn decode(chunks: &[&[u8]], max: usize) -> (Vec<Owned>, Result<()>) {
    let mut d = Decoder::with_max_message_size(max);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = d.feed(c, |m| out.push(own(&m))) {
            return (out, Err(e));
        }
    }
    let r = d.finish();
    (out, r)
}

fn event(event_type: &str, payload: &str, out: &mut Vec<u8>) {
    let headers = [
        Header::new(":event-type", HeaderValue::String(event_type)),
        Header::new(":content-type", HeaderValue::String("application/json")),
        Header::new(":message-type", HeaderValue::String("event")),
    ];
    encode(&headers, payload.as_bytes(), out).unwrap();
}

/// A Bedrock `ConverseStream` answer as it is framed on the wire.
fn converse_stream() -> Vec<u8> {
    let mut w = Vec::new();
    event("messageStart", r#"{"p":"abcd","role":"assistant"}"#, &mut w);
    event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijkl"}"#,
        &mut w,
    );
    event(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":" there!"},"p":"abc"}"#,
        &mut w,
    );
    event(
        "contentBlockStop",
        r#"{"contentBlockIndex":0,"p":"ab"}"#,
        &mut w,
    );
    event(
        "messageStop",
        r#"{"p":"abcdef","stopReason":"end_turn"}"#,
        &mut w,
    );
    event(
        "metadata",
        r#"{"metrics":{"latencyMs":412},"p":"a","usage":{"inputTokens":12,"outputTokens":5,"totalTokens":17}}"#,
        &mut w,
    );
    w
}

/// The smaller vectors of the same set: `payload_no_headers`, `payload_one_str_header`,
/// `int32_header`, each `{'foo':'bar'}` with its CRCs as published.
fn aws_small_vectors() -> [Vec<u8>; 3] {
    let payload = b"{'foo':'bar'}";
    let frame = |prelude: [u8; 12], headers: &[u8], crc: [u8; 4]| {
        [&prelude[..], headers, payload, &crc].concat()
    };
    [
        frame(
            [0, 0, 0, 29, 0, 0, 0, 0, 0xFD, 0x52, 0x8C, 0x5A],
            b"",
            [0xC3, 0x65, 0x39, 0x36],
        ),
        frame(
            [0, 0, 0, 61, 0, 0, 0, 32, 0x07, 0xFD, 0x83, 0x96],
            b"\x0ccontent-type\x07\x00\x10application/json",
            [0x8D, 0x9C, 0x08, 0xB1],
        ),
        frame(
            [0, 0, 0, 45, 0, 0, 0, 16, 0x41, 0xC4, 0x24, 0xB8],
            b"\x0aevent-type\x04\x00\x00\xa0\x0c",
            [0x36, 0xF4, 0x80, 0xA0],
        ),
    ]
}

#[test]
fn aws_small_vectors_and_their_corruptions() {
    let [no_headers, one_str, int32] = aws_small_vectors();
    let m = Message::parse(&no_headers).unwrap();
    assert_eq!(
        (m.headers().count(), m.payload()),
        (0, &b"{'foo':'bar'}"[..])
    );
    let m = Message::parse(&one_str).unwrap();
    assert_eq!(m.header_str("content-type"), Some("application/json"));
    let m = Message::parse(&int32).unwrap();
    assert_eq!(m.header("event-type"), Some(HeaderValue::Int(40972)));
    // The set's failure vectors: each one byte off a good frame.
    let corrupt = |frame: &[u8], at: usize, to: u8| {
        let mut f = frame.to_vec();
        f[at] = to;
        decode(&[&f], DEFAULT_MAX_MESSAGE_SIZE).1
    };
    assert!(
        matches!(corrupt(&one_str, 45, b'a'), Err(Error::MessageCrc { .. })),
        "corrupted_headers"
    );
    assert!(
        matches!(corrupt(&one_str, 7, 33), Err(Error::PreludeCrc { .. })),
        "corrupted_header_len"
    );
    assert!(
        matches!(corrupt(&one_str, 3, 62), Err(Error::PreludeCrc { .. })),
        "corrupted_length"
    );
    assert!(
        matches!(
            corrupt(&no_headers, 12, b'['),
            Err(Error::MessageCrc { .. })
        ),
        "corrupted_payload"
    );
}

#[test]
fn aws_all_headers_vector_decodes() {
    let m = Message::parse(&AWS_ALL_HEADERS).unwrap();
    assert_eq!(m.headers().collect::<Vec<_>>(), all_headers());
    assert_eq!(m.payload(), b"{'foo':'bar'}");
    assert_eq!(m.header("int16"), Some(HeaderValue::Short(42)));
    assert_eq!(m.header_str("content-type"), Some("application/json"));
    // It has no ':'-prefixed headers.
    assert_eq!(m.event_type(), None);
}

#[test]
fn encoder_reproduces_the_aws_vectors() {
    let mut out = Vec::new();
    encode(&all_headers(), b"{'foo':'bar'}", &mut out).unwrap();
    assert_eq!(out, AWS_ALL_HEADERS);
    out.clear();
    encode(&[], b"", &mut out).unwrap();
    assert_eq!(out, AWS_EMPTY);
    let m = Message::parse(&AWS_EMPTY).unwrap();
    assert_eq!(m.headers().count(), 0);
    assert_eq!(m.payload(), b"");
}

#[test]
fn converse_stream_every_split() {
    let wire = converse_stream();
    let (whole, r) = decode(&[&wire], DEFAULT_MAX_MESSAGE_SIZE);
    r.unwrap();
    assert_eq!(whole.len(), 6);
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        decode(&bytes, DEFAULT_MAX_MESSAGE_SIZE),
        (whole.clone(), Ok(()))
    );
    for i in 0..=wire.len() {
        let (a, b) = wire.split_at(i);
        assert_eq!(
            decode(&[a, b], DEFAULT_MAX_MESSAGE_SIZE),
            (whole.clone(), Ok(())),
            "split {i}"
        );
    }
    for i in (0..=wire.len()).step_by(3) {
        for j in (i..=wire.len()).step_by(5) {
            let parts = [&wire[..i], &wire[i..j], &wire[j..]];
            assert_eq!(
                decode(&parts, DEFAULT_MAX_MESSAGE_SIZE),
                (whole.clone(), Ok(()))
            );
        }
    }
}

#[test]
fn convenience_headers_and_zero_copy() {
    let wire = converse_stream();
    let mut d = Decoder::new();
    let mut seen = Vec::new();
    d.feed(&wire, |m| {
        assert_eq!(m.message_type(), Some("event"));
        assert_eq!(m.content_type(), Some("application/json"));
        assert_eq!(m.exception_type(), None);
        // Borrowed from the chunk: the payload lies inside `wire`.
        let p = m.payload().as_ptr() as usize;
        let w = wire.as_ptr() as usize;
        assert!(p >= w && p < w + wire.len());
        seen.push(m.event_type().unwrap().to_owned());
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );

    let mut w = Vec::new();
    let headers = [
        Header::new(
            ":exception-type",
            HeaderValue::String("throttlingException"),
        ),
        Header::new(":content-type", HeaderValue::String("application/json")),
        Header::new(":message-type", HeaderValue::String("exception")),
    ];
    encode(&headers, br#"{"message":"Too many requests"}"#, &mut w).unwrap();
    d.feed(&w, |m| {
        assert_eq!(m.message_type(), Some("exception"));
        assert_eq!(m.exception_type(), Some("throttlingException"));
        assert_eq!(m.event_type(), None);
    })
    .unwrap();
}

#[test]
fn every_corrupted_byte_is_caught() {
    let wire = converse_stream();
    let first_len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
    for i in 0..first_len {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        let (msgs, r) = decode(&[&bad], DEFAULT_MAX_MESSAGE_SIZE);
        assert!(msgs.is_empty(), "byte {i}");
        match r {
            Err(Error::PreludeCrc { .. }) => assert!(i < PRELUDE_LEN, "byte {i}"),
            Err(Error::MessageCrc { .. }) => assert!(i >= PRELUDE_LEN, "byte {i}"),
            other => panic!("byte {i}: {other:?}"),
        }
    }
    // The second message corrupted: the first is still reported.
    let mut bad = wire.clone();
    bad[first_len + 20] ^= 0x80;
    let (msgs, r) = decode(&[&bad], DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(msgs.len(), 1);
    assert!(matches!(r, Err(Error::MessageCrc { .. })));
}

#[test]
fn truncated_streams() {
    let wire = converse_stream();
    let first_len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
    for cut in 1..first_len {
        let mut d = Decoder::new();
        d.feed(&wire[..cut], |_| panic!("message from a truncated frame"))
            .unwrap();
        assert!(d.in_message());
        assert_eq!(d.finish(), Err(Error::Truncated));
    }
    assert_eq!(
        Message::parse(&AWS_ALL_HEADERS[..100]),
        Err(Error::Truncated)
    );
    assert_eq!(Message::parse(&AWS_ALL_HEADERS[..5]), Err(Error::Truncated));
}

/// A message with these raw header bytes and both CRCs right, so only the headers are wrong.
fn with_raw_headers(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (headers.len() + payload.len() + OVERHEAD) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(&total.to_be_bytes());
    w.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let c = crc32(&w);
    w.extend_from_slice(&c.to_be_bytes());
    w.extend_from_slice(headers);
    w.extend_from_slice(payload);
    let c = crc32(&w);
    w.extend_from_slice(&c.to_be_bytes());
    w
}

fn prelude(total: u32, headers: u32) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&total.to_be_bytes());
    w.extend_from_slice(&headers.to_be_bytes());
    let c = crc32(&w);
    w.extend_from_slice(&c.to_be_bytes());
    w
}

#[test]
fn bad_lengths_and_headers() {
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (prelude(15, 0), Error::MessageTooShort(15)),
        (prelude(0, 0), Error::MessageTooShort(0)),
        (
            prelude(20, 5),
            Error::HeadersLength {
                headers: 5,
                total: 20,
            },
        ),
        (
            prelude(u32::MAX, u32::MAX),
            Error::MessageTooLarge {
                len: u32::MAX,
                limit: DEFAULT_MAX_MESSAGE_SIZE,
            },
        ),
        (
            with_raw_headers(b"\x01a\x0a", b""),
            Error::BadHeader("unknown value type"),
        ),
        (
            with_raw_headers(b"\x00\x00", b""),
            Error::BadHeader("empty name"),
        ),
        (
            with_raw_headers(b"\x02\xff\xfe\x00", b""),
            Error::BadHeader("name is not UTF-8"),
        ),
        (
            with_raw_headers(b"\x01a\x07\x00\x01\xff", b""),
            Error::BadHeader("string value is not UTF-8"),
        ),
        (
            with_raw_headers(b"\x01a\x07\x00\x05abc", b"xy"),
            Error::BadHeader("length past the end of the headers"),
        ),
        (
            with_raw_headers(b"\x01a\x05\x00\x00", b""),
            Error::BadHeader("length past the end of the headers"),
        ),
        (
            with_raw_headers(b"\x05ab", b""),
            Error::BadHeader("length past the end of the headers"),
        ),
        (
            with_raw_headers(b"\x01a", b""),
            Error::BadHeader("length past the end of the headers"),
        ),
    ];
    for (i, (wire, want)) in cases.iter().enumerate() {
        assert_eq!(
            decode(&[wire], DEFAULT_MAX_MESSAGE_SIZE),
            (vec![], Err(want.clone())),
            "case {i}"
        );
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            decode(&bytes, DEFAULT_MAX_MESSAGE_SIZE),
            (vec![], Err(want.clone())),
            "case {i}"
        );
    }
}

#[test]
fn size_limit_is_enforced_from_the_prelude() {
    let mut w = Vec::new();
    event("contentBlockDelta", &"x".repeat(200), &mut w);
    let len = w.len() as u32;
    // Refused as soon as the prelude is in, before the body is buffered.
    let mut d = Decoder::with_max_message_size(128);
    let err = d.feed(&w[..PRELUDE_LEN], |_| {}).unwrap_err();
    assert_eq!(err, Error::MessageTooLarge { len, limit: 128 });
    // Sticky.
    assert_eq!(d.feed(&AWS_EMPTY, |_| panic!()), Err(err.clone()));
    assert_eq!(d.finish(), Err(err));
    // finish resets.
    d.feed(&AWS_EMPTY, |_| {}).unwrap();
    assert_eq!(d.finish(), Ok(()));
    // Exactly at the limit is accepted.
    let mut d = Decoder::with_max_message_size(w.len());
    let mut n = 0;
    d.feed(&w, |_| n += 1).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn buffer_is_released_after_a_large_split_message() {
    let mut w = Vec::new();
    event("contentBlockDelta", &"x".repeat(100_000), &mut w);
    let mut d = Decoder::new();
    let mut n = 0;
    for c in w.chunks(4096) {
        d.feed(c, |m| n += m.payload().len()).unwrap();
    }
    assert_eq!(n, 100_000);
    assert!(d.buf.capacity() <= KEEP_CAPACITY);
}

#[test]
fn encoder_refuses_what_the_wire_cannot_carry() {
    let mut out = vec![1, 2, 3];
    let long = "n".repeat(256);
    assert!(encode(
        &[Header::new(&long, HeaderValue::Bool(true))],
        b"",
        &mut out
    )
    .is_err());
    assert!(encode(&[Header::new("", HeaderValue::Bool(true))], b"", &mut out).is_err());
    let big = vec![0u8; 65_536];
    assert!(encode(&[Header::new("b", HeaderValue::Bytes(&big))], b"", &mut out).is_err());
    assert_eq!(out, [1, 2, 3], "nothing written on error");
    // The largest values fit, and round-trip.
    let name = "n".repeat(255);
    let max = vec![7u8; 65_535];
    encode(
        &[Header::new(&name, HeaderValue::Bytes(&max))],
        b"p",
        &mut out,
    )
    .unwrap();
    let mut d = Decoder::new();
    d.feed(&out[3..], |m| {
        assert_eq!(m.header(&name), Some(HeaderValue::Bytes(&max)));
        assert_eq!(m.payload(), b"p");
    })
    .unwrap();
    d.finish().unwrap();
}

#[test]
fn every_header_type_round_trips_with_extremes() {
    let headers = [
        Header::new("t", HeaderValue::Bool(true)),
        Header::new("f", HeaderValue::Bool(false)),
        Header::new("b", HeaderValue::Byte(i8::MIN)),
        Header::new("s", HeaderValue::Short(i16::MIN)),
        Header::new("i", HeaderValue::Int(i32::MIN)),
        Header::new("l", HeaderValue::Long(i64::MIN)),
        Header::new("y", HeaderValue::Bytes(b"")),
        Header::new("str", HeaderValue::String("ünï")),
        Header::new("ts", HeaderValue::Timestamp(-1)),
        Header::new("u", HeaderValue::Uuid([0xff; 16])),
    ];
    let mut w = Vec::new();
    encode(&headers, &[0, 1, 2], &mut w).unwrap();
    let m = Message::parse(&w).unwrap();
    assert_eq!(m.headers().collect::<Vec<_>>(), headers);
    assert_eq!(m.raw_headers().len(), w.len() - OVERHEAD - 3);
}
