//! Arbitrary bytes as a client's request: parsing must never panic, and when a head comes out, the
//! body decoder it chose must scan the rest without panicking either.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weir_http::{parse_request, BodyDecoder, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let limits = HeadLimits::default();
    // Pipelined requests: keep going while heads and bodies come out whole.
    for _ in 0..8 {
        let Ok(Some(head)) = parse_request(&mut buf, &limits) else {
            return;
        };
        // What the proxy relies on: origin-form target, and path/query that split it.
        assert!(!head.target.is_empty());
        let (path, query) = (head.path(), head.query());
        assert_eq!(
            path.len() + query.map_or(0, |q| q.len() + 1),
            head.target.len()
        );
        let mut dec = BodyDecoder::new(head.body);
        let mut payload = 0usize;
        let Ok(scan) = dec.scan(&buf, |r| {
            assert!(r.end <= buf.len() && r.start <= r.end);
            payload += r.len();
        }) else {
            return;
        };
        assert!(scan.consumed <= buf.len());
        assert!(payload <= scan.consumed);
        if !scan.done {
            return;
        }
        let _ = buf.split_to(scan.consumed);
    }
});
