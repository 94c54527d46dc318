//! Arbitrary bytes as an SSE body. The first two bytes pick two split points and the third a size
//! limit; the rest is scanned whole, in three pieces, and byte by byte. Nothing may panic, and the
//! three scans must report the same events and the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_sse::{find_usage, is_done, Error, SseScanner};

#[derive(Debug, PartialEq, Eq)]
struct Ev {
    event: Vec<u8>,
    data: Vec<u8>,
    id: Option<Vec<u8>>,
    retry: Option<u64>,
}

fn scan(pieces: &[&[u8]], max: usize) -> (Vec<Ev>, Result<(), Error>) {
    let mut s = SseScanner::with_max_event_size(max);
    let mut out = Vec::new();
    for piece in pieces {
        let r = s.feed(piece, |e| {
            let span = e.span();
            assert!(span.start <= span.end && span.end <= piece.len());
            assert!(e.starts_in_chunk() || span.start == 0);
            if e.data_is_borrowed() {
                // Borrowed data lies inside this piece.
                let (d, p) = (e.data().as_ptr() as usize, piece.as_ptr() as usize);
                assert!(d >= p && d + e.data().len() <= p + piece.len());
            }
            assert!(e.data().len() <= max);
            if let Some(u) = find_usage(e.data()) {
                assert!(u.starts_with(b"{") && u.ends_with(b"}"));
            }
            let _ = is_done(e.data());
            out.push(Ev {
                event: e.event_type().to_vec(),
                data: e.data().to_vec(),
                id: e.id().map(<[u8]>::to_vec),
                retry: e.retry(),
            });
        });
        if let Err(e) = r {
            // Errors are sticky.
            assert_eq!(
                s.feed(b"\n\ndata: x\n\n", |_| panic!("event after an error")),
                Err(e.clone())
            );
            return (out, Err(e));
        }
    }
    let _ = s.finish();
    (out, Ok(()))
}

fuzz_target!(|data: &[u8]| {
    let [a, b, m, rest @ ..] = data else {
        return;
    };
    let n = rest.len();
    let (i, j) = {
        let i = usize::from(*a) * 257 % (n + 1);
        let j = usize::from(*b) * 263 % (n + 1);
        (i.min(j), i.max(j))
    };
    // Mostly a small limit, so the oversize paths are reached; sometimes the default.
    let max = if *m == 255 {
        weir_sse::DEFAULT_MAX_EVENT_SIZE
    } else {
        1 + usize::from(*m)
    };
    let whole = scan(&[rest], max);
    let three = scan(&[&rest[..i], &rest[i..j], &rest[j..]], max);
    assert_eq!(whole, three, "split at {i}/{j}");
    let bytes: Vec<&[u8]> = rest.chunks(1).collect();
    assert_eq!(whole, scan(&bytes, max), "byte by byte");
});
