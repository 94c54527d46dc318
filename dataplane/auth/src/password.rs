//! Password hashes of basic-auth users: PHC strings, verified in constant time.
//!
//! - `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH` (and argon2i/argon2d), with the `argon2` crate;
//!   [`hash_password`] makes these (`weirctl hash-password`), with the crate's default cost
//!   (19 MiB, 2 passes: about 20-40 ms of one core).
//! - `$pbkdf2-sha256$i=N$SALT$HASH` / `$pbkdf2-sha512$...` (standard or passlib's `.`-for-`+`
//!   base64), with *ring*.
//!
//! A verification is slow on purpose, and it runs on the core that serves the request; the
//! filter therefore remembers good credentials per core and throttles failures per user.

use std::num::NonZeroU32;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

/// Whether `password` matches the PHC string `phc`. A malformed hash matches nothing.
pub fn verify(phc: &str, password: &[u8]) -> bool {
    if phc.starts_with("$argon2") {
        return match PasswordHash::new(phc) {
            Ok(h) => argon2::Argon2::default()
                .verify_password(password, &h)
                .is_ok(),
            Err(_) => false,
        };
    }
    let parts: Vec<&str> = phc.split('$').collect();
    let ["", alg, params, salt, hash] = parts.as_slice() else {
        return false;
    };
    let alg = match *alg {
        "pbkdf2-sha256" => ring::pbkdf2::PBKDF2_HMAC_SHA256,
        "pbkdf2-sha512" => ring::pbkdf2::PBKDF2_HMAC_SHA512,
        _ => return false,
    };
    let Some(iterations) = params
        .split(',')
        .find_map(|p| p.strip_prefix("i="))
        .and_then(|n| n.parse::<u32>().ok())
        .and_then(NonZeroU32::new)
    else {
        return false;
    };
    let (Some(salt), Some(hash)) = (b64(salt), b64(hash)) else {
        return false;
    };
    ring::pbkdf2::verify(alg, iterations, &salt, password, &hash).is_ok()
}

/// PHC base64: standard alphabet without padding; passlib writes `.` for `+`.
fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.replace('.', "+");
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// An Argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &[u8]) -> Result<String, crate::Error> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| crate::Error("no randomness for a salt".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| crate::Error(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::Error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash_password(b"correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify(&h, b"correct horse"));
        assert!(!verify(&h, b"correct horsf"));
        assert!(!verify("$argon2id$garbage", b"x"));
    }

    #[test]
    fn pbkdf2_sha256() {
        // Made with Python: hashlib.pbkdf2_hmac('sha256', b'secret', b'saltsalt', 1000).
        let salt = base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"saltsalt");
        let mut out = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(1000).expect("non-zero"),
            b"saltsalt",
            b"secret",
            &mut out,
        );
        let hash = base64::engine::general_purpose::STANDARD_NO_PAD.encode(out);
        let phc = format!("$pbkdf2-sha256$i=1000${salt}${hash}");
        assert!(verify(&phc, b"secret"));
        assert!(!verify(&phc, b"Secret"));
        // passlib's alphabet.
        assert!(verify(&phc.replace('+', "."), b"secret"));
        assert!(!verify("$pbkdf2-sha256$i=0$c2FsdA$aGFzaA", b"secret"));
    }
}
