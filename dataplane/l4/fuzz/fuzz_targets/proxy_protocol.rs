//! Arbitrary bytes as the start of a connection to a PROXY protocol listener: parsing never
//! panics, never claims more bytes than it was given, gives the same answer on every longer
//! input once it answered, and a header it reads back from its own encoder round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_l4::proxy_protocol::{encode, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Some((h, used))) => {
            assert!(used <= data.len());
            // Bytes after the header do not change what the header says.
            let mut longer = data[..used].to_vec();
            longer.extend_from_slice(b"trailing bytes");
            assert_eq!(parse(&longer), Ok(Some((h, used))));
            if let Some((src, dst)) = h.addresses {
                for v in [1, 2] {
                    let again = encode(v, src, dst);
                    let (back, n) = parse(&again).expect("own header").expect("whole");
                    assert_eq!(n, again.len());
                    let (s2, d2) = back.addresses.expect("addresses");
                    assert_eq!((s2.port(), d2.port()), (src.port(), dst.port()));
                }
            }
        }
        Ok(None) => {
            // Needing more is only said of a prefix that could still become a header.
            assert!(data.len() < weir_l4::proxy_protocol::V2_MAX);
        }
        Err(_) => {}
    }
});
