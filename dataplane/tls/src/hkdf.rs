//! TLS 1.3 suites whose key schedule keys HMAC once per secret.
//!
//! rustls's aws-lc-rs suites expand every label through aws-lc's one-shot `HKDF_expand`, which sets
//! HMAC up from the secret again each time: two SHA-256 blocks (the padded key, inner and outer)
//! and the EVP set-up, before the label's own two blocks. A resumed TLS 1.3 handshake expands
//! about twenty labels from nine secrets, so most of that set-up is repeated work: in a `perf`
//! profile of handshakes under load, HKDF was about 10% of Weir's CPU and `HMAC_Init_ex` half of
//! it. rustls's own [`HkdfUsingHmac`] keys HMAC once per secret and copies the keyed state for
//! each label; the output is the same (RFC 5869), with fewer SHA-256 blocks (their share of the
//! worker's CPU under that load fell from 7.1% to 5.6%; the handshake's whole cost moved less
//! than the benchmark's noise). The suites here are aws-lc-rs's own (same AEADs, same hashes, same
//! QUIC keys), with that HKDF in place of theirs.

use std::sync::OnceLock;

use aws_lc_rs::hmac;
use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, Tls13CipherSuite};

/// HMAC on aws-lc-rs: a [`hmac::Key`] holds the keyed state, each signature starts from a copy.
struct AwsLcHmac(&'static hmac::Algorithm);

impl Hmac for AwsLcHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(KeyedHmac(hmac::Key::new(*self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

struct KeyedHmac(hmac::Key);

impl Key for KeyedHmac {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(first);
        for m in middle {
            ctx.update(m);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HMAC_SHA256: AwsLcHmac = AwsLcHmac(&hmac::HMAC_SHA256);
static HMAC_SHA384: AwsLcHmac = AwsLcHmac(&hmac::HMAC_SHA384);
static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

/// aws-lc-rs's `provider` with each of its TLS 1.3 suites' HKDF replaced by one that keys HMAC
/// once per secret (TLS 1.2 suites, and any suite that is not aws-lc-rs's, are kept as they are).
pub(crate) fn with_keyed_hkdf(mut provider: CryptoProvider) -> CryptoProvider {
    for s in &mut provider.cipher_suites {
        *s = keyed(*s);
    }
    provider
}

/// The suite with the keyed HKDF; made once per suite and process (a suite is `'static`).
fn keyed(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    static SUITES: OnceLock<Vec<(SupportedCipherSuite, SupportedCipherSuite)>> = OnceLock::new();
    let made = SUITES.get_or_init(|| {
        rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
            .iter()
            .map(|s| (*s, replace_hkdf(*s)))
            .collect()
    });
    let SupportedCipherSuite::Tls13(t) = suite else {
        return suite;
    };
    // The very suite aws-lc-rs defines, not merely one with the same identifier.
    made.iter()
        .find(|(from, _)| matches!(from, SupportedCipherSuite::Tls13(f) if std::ptr::eq(*f, t)))
        .map_or(suite, |(_, to)| *to)
}

fn replace_hkdf(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    let SupportedCipherSuite::Tls13(t) = suite else {
        return suite;
    };
    let hkdf: &'static dyn Hkdf = match t.common.hash_provider.algorithm() {
        HashAlgorithm::SHA256 => &HKDF_SHA256,
        HashAlgorithm::SHA384 => &HKDF_SHA384,
        _ => return suite,
    };
    SupportedCipherSuite::Tls13(Box::leak(Box::new(Tls13CipherSuite {
        common: rustls::CipherSuiteCommon {
            suite: t.common.suite,
            hash_provider: t.common.hash_provider,
            confidentiality_limit: t.common.confidentiality_limit,
        },
        hkdf_provider: hkdf,
        aead_alg: t.aead_alg,
        quic: t.quic,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every TLS 1.3 suite of the providers Weir builds gets the keyed HKDF.
    #[test]
    fn the_providers_suites_are_replaced() {
        let default = rustls::crypto::aws_lc_rs::default_provider();
        let ours = with_keyed_hkdf(rustls::crypto::aws_lc_rs::default_provider());
        assert_eq!(default.cipher_suites.len(), ours.cipher_suites.len());
        let mut tls13 = 0;
        for (d, o) in default.cipher_suites.iter().zip(&ours.cipher_suites) {
            assert_eq!(d.suite(), o.suite());
            if let (SupportedCipherSuite::Tls13(d), SupportedCipherSuite::Tls13(o)) = (d, o) {
                assert!(!std::ptr::eq(*d, *o), "{:?} kept its HKDF", d.common.suite);
                tls13 += 1;
            }
        }
        assert_eq!(tls13, 3);
    }

    /// The keyed HKDF gives what aws-lc's one-shot HKDF gives, for every suite, on extract,
    /// expand (a block and a slice) and HMAC.
    #[test]
    fn keyed_hkdf_matches_the_suites_own() {
        for s in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
            let (SupportedCipherSuite::Tls13(ours), SupportedCipherSuite::Tls13(theirs)) =
                (keyed(*s), *s)
            else {
                continue;
            };
            assert!(!std::ptr::eq(ours, theirs), "{:?} not replaced", s.suite());
            let (a, b) = (ours.hkdf_provider, theirs.hkdf_provider);
            let salt = b"some salt";
            let secret = b"the input keying material";
            for (x, y) in [
                (
                    a.extract_from_secret(Some(salt), secret),
                    b.extract_from_secret(Some(salt), secret),
                ),
                (a.extract_from_zero_ikm(None), b.extract_from_zero_ikm(None)),
            ] {
                let info: &[&[u8]] = &[b"tls13 ", b"c hs traffic", b"\x20"];
                let (bx, by) = (x.expand_block(info), y.expand_block(info));
                assert_eq!(bx.as_ref(), by.as_ref());
                let (mut sx, mut sy) = ([0u8; 100], [0u8; 100]);
                x.expand_slice(info, &mut sx).unwrap();
                y.expand_slice(info, &mut sy).unwrap();
                assert_eq!(sx, sy);
                let okm = x.expand_block(&[b"next"]);
                let (ex, ey) = (a.expander_for_okm(&okm), b.expander_for_okm(&okm));
                assert_eq!(
                    ex.expand_block(&[b"key"]).as_ref(),
                    ey.expand_block(&[b"key"]).as_ref()
                );
                assert_eq!(
                    a.hmac_sign(&okm, b"transcript").as_ref(),
                    b.hmac_sign(&okm, b"transcript").as_ref()
                );
            }
        }
    }
}
