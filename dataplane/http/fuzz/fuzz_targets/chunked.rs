//! Arbitrary bytes as a chunked body, delivered in two reads split at an arbitrary point: the
//! decoder must never panic, and must say the same whether the bytes came at once or in two reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_http::{BodyDecoder, BodyKind};

/// Runs the decoder over `reads`, as the proxy does: each read scanned once, stopping at the end of
/// the message or at the first error. Returns (consumed, done, payload bytes, error seen).
fn decode(reads: &[&[u8]]) -> (usize, bool, Vec<u8>, bool) {
    let mut dec = BodyDecoder::new(BodyKind::Chunked);
    let mut consumed = 0;
    let mut payload = Vec::new();
    for read in reads {
        match dec.scan(read, |r| payload.extend_from_slice(&read[r])) {
            Ok(scan) => {
                assert!(scan.consumed <= read.len());
                consumed += scan.consumed;
                if scan.done {
                    assert!(dec.is_done());
                    return (consumed, true, payload, false);
                }
                assert_eq!(
                    scan.consumed,
                    read.len(),
                    "a message that goes on takes the whole read"
                );
            }
            Err(_) => return (consumed, false, payload, true),
        }
    }
    (consumed, false, payload, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = if rest.is_empty() {
        0
    } else {
        usize::from(first) * 257 % (rest.len() + 1)
    };
    let whole = decode(&[rest]);
    let parts = decode(&[&rest[..split], &rest[split..]]);
    assert_eq!(
        whole.3, parts.3,
        "error or not must not depend on the split"
    );
    if !whole.3 {
        assert_eq!(whole, parts, "the split changed the result");
    }
});
