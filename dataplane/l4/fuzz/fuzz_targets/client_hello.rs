//! Arbitrary bytes as the first flight of a TLS pass-through connection: the ClientHello reader
//! never panics, and a name it returns is a non-empty lower-case DNS name of at most 253 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(Some(name))) = weir_l4::sni::parse(data) {
        assert!(!name.is_empty());
        assert!(name.len() <= 253);
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)));
    }
});
