//! Two properties of the AWS event-stream codec on one input:
//!
//! 1. The input as a raw event-stream body, decoded whole and in three pieces (split points from the
//!    first two bytes) with a small or default size limit: no panic, and the same messages and the
//!    same error either way.
//! 2. The input as a recipe (via `arbitrary`) for a list of messages with headers of every type and
//!    any payload: encoded, then decoded in arbitrary pieces, they must come back exactly.
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use weir_sse::eventstream::{encode, Decoder, Header, HeaderValue};
use weir_sse::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    headers: Vec<(String, OwnedValue)>,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

impl OwnedValue {
    fn of(v: HeaderValue<'_>) -> Self {
        match v {
            HeaderValue::Bool(b) => OwnedValue::Bool(b),
            HeaderValue::Byte(b) => OwnedValue::Byte(b),
            HeaderValue::Short(b) => OwnedValue::Short(b),
            HeaderValue::Int(b) => OwnedValue::Int(b),
            HeaderValue::Long(b) => OwnedValue::Long(b),
            HeaderValue::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            HeaderValue::String(s) => OwnedValue::String(s.to_owned()),
            HeaderValue::Timestamp(t) => OwnedValue::Timestamp(t),
            HeaderValue::Uuid(u) => OwnedValue::Uuid(u),
        }
    }

    fn borrow(&self) -> HeaderValue<'_> {
        match self {
            OwnedValue::Bool(b) => HeaderValue::Bool(*b),
            OwnedValue::Byte(b) => HeaderValue::Byte(*b),
            OwnedValue::Short(b) => HeaderValue::Short(*b),
            OwnedValue::Int(b) => HeaderValue::Int(*b),
            OwnedValue::Long(b) => HeaderValue::Long(*b),
            OwnedValue::Bytes(b) => HeaderValue::Bytes(b),
            OwnedValue::String(s) => HeaderValue::String(s),
            OwnedValue::Timestamp(t) => HeaderValue::Timestamp(*t),
            OwnedValue::Uuid(u) => HeaderValue::Uuid(*u),
        }
    }
}

fn decode(pieces: &[&[u8]], max: usize) -> (Vec<Owned>, Result<(), Error>) {
    let mut d = Decoder::with_max_message_size(max);
    let mut out = Vec::new();
    for piece in pieces {
        let r = d.feed(piece, |m| {
            // Every accessor works on a message the decoder accepted.
            let _ = (
                m.message_type(),
                m.event_type(),
                m.exception_type(),
                m.content_type(),
            );
            out.push(Owned {
                headers: m
                    .headers()
                    .map(|h| (h.name.to_owned(), OwnedValue::of(h.value)))
                    .collect(),
                payload: m.payload().to_vec(),
            });
        });
        if let Err(e) = r {
            assert_eq!(
                d.feed(b"", |_| panic!("message after an error")),
                Err(e.clone())
            );
            return (out, Err(e));
        }
    }
    let r = d.finish();
    (out, r)
}

fn splits(n: usize, a: u8, b: u8) -> (usize, usize) {
    let i = usize::from(a) * 257 % (n + 1);
    let j = usize::from(b) * 263 % (n + 1);
    (i.min(j), i.max(j))
}

fn name(u: &mut Unstructured<'_>) -> ArbResult<String> {
    let mut s: String = u.arbitrary()?;
    if s.is_empty() {
        s.push(':');
    }
    while s.len() > 255 {
        s.pop();
    }
    Ok(s)
}

fn value(u: &mut Unstructured<'_>) -> ArbResult<OwnedValue> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => OwnedValue::Bool(true),
        1 => OwnedValue::Bool(false),
        2 => OwnedValue::Byte(u.arbitrary()?),
        3 => OwnedValue::Short(u.arbitrary()?),
        4 => OwnedValue::Int(u.arbitrary()?),
        5 => OwnedValue::Long(u.arbitrary()?),
        6 => {
            let mut b: Vec<u8> = u.arbitrary()?;
            b.truncate(u16::MAX as usize);
            OwnedValue::Bytes(b)
        }
        7 => {
            let mut s: String = u.arbitrary()?;
            while s.len() > u16::MAX as usize {
                s.pop();
            }
            OwnedValue::String(s)
        }
        8 => OwnedValue::Timestamp(u.arbitrary()?),
        _ => OwnedValue::Uuid(u.arbitrary()?),
    })
}

fn messages(u: &mut Unstructured<'_>) -> ArbResult<Vec<Owned>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1u8..=4)? {
        let mut headers = Vec::new();
        for _ in 0..u.int_in_range(0u8..=6)? {
            headers.push((name(u)?, value(u)?));
        }
        out.push(Owned {
            headers,
            payload: u.arbitrary()?,
        });
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, m, rest @ ..] = data else {
        return;
    };
    // 1. Raw bytes.
    let max = if *m < 128 {
        16 + usize::from(*m) * 4
    } else {
        weir_sse::eventstream::DEFAULT_MAX_MESSAGE_SIZE
    };
    let (i, j) = splits(rest.len(), *a, *b);
    let whole = decode(&[rest], max);
    let three = decode(&[&rest[..i], &rest[i..j], &rest[j..]], max);
    assert_eq!(whole, three, "split at {i}/{j}");

    // 2. Round trip.
    let mut u = Unstructured::new(rest);
    let Ok(msgs) = messages(&mut u) else {
        return;
    };
    let mut wire = Vec::new();
    for msg in &msgs {
        let headers: Vec<Header<'_>> = msg
            .headers
            .iter()
            .map(|(n, v)| Header::new(n, v.borrow()))
            .collect();
        encode(&headers, &msg.payload, &mut wire).expect("encodable by construction");
    }
    let (i, j) = splits(wire.len(), *b, *a);
    let back = decode(&[&wire[..i], &wire[i..j], &wire[j..]], usize::MAX);
    assert_eq!(back, (msgs, Ok(())));
});
