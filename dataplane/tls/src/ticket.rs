//! Session tickets sealed with AES-256-GCM.
//!
//! rustls's aws-lc-rs `Ticketer` follows RFC 5077's recommended construction: AES-256-CBC, then
//! HMAC-SHA-256 over the result. In a `perf` profile of resumed handshakes under load, that cost
//! a CBC key schedule per ticket, a random IV from its own generator call, and HMAC's SHA-256
//! blocks, for the ticket a client brings and again for the one it is given. Here one AEAD does
//! both jobs with a key expanded once (GCM on AES-NI and carry-less multiply is a fraction of
//! CBC plus HMAC), and the nonce comes from the handshake's random pool ([`crate::random`]).
//!
//! A ticket is `key name (16) | nonce (12) | sealed state | tag (16)`, the key name also bound as
//! associated data. Keys rotate as rustls's do ([`TicketRotator`]): a new one every six hours, the
//! previous one still opening tickets for six more, so a ticket lives at most twelve hours. With a
//! random 96-bit nonce per ticket, six hours of one key stay far inside GCM's bound on random
//! nonces (2^32 messages per key) at any handshake rate a core can reach.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rustls::crypto::GetRandomFailed;
use rustls::server::ProducesTickets;
use rustls::TicketRotator;

/// How long a key makes tickets; it opens them for as long again.
const ROTATE_SECS: u32 = 6 * 60 * 60;
const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// The rotating ticket maker for a listener's `ServerConfig`.
pub(crate) fn ticketer() -> Result<TicketRotator, rustls::Error> {
    TicketRotator::new(ROTATE_SECS, GcmTicketer::boxed)
}

struct GcmTicketer {
    key: LessSafeKey,
    /// Tells this key's tickets from another's (a rotated one, another process's).
    name: [u8; NAME_LEN],
    /// The longest ticket made: anything longer is not ours, refused before any work.
    longest: AtomicUsize,
}

impl GcmTicketer {
    fn boxed() -> Result<Box<dyn ProducesTickets>, GetRandomFailed> {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| GetRandomFailed)?;
        let key = UnboundKey::new(&AES_256_GCM, &secret);
        secret.fill(0);
        let key = LessSafeKey::new(key.map_err(|_| GetRandomFailed)?);
        let mut name = [0u8; NAME_LEN];
        aws_lc_rs::rand::fill(&mut name).map_err(|_| GetRandomFailed)?;
        Ok(Box::new(GcmTicketer {
            key,
            name,
            longest: AtomicUsize::new(0),
        }))
    }
}

impl ProducesTickets for GcmTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        2 * ROTATE_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(&mut nonce).ok()?;
        let head = NAME_LEN + NONCE_LEN;
        let mut out = Vec::with_capacity(head + plain.len() + TAG_LEN);
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.name),
                &mut out[head..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        self.longest.fetch_max(out.len(), Ordering::Relaxed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let head = NAME_LEN + NONCE_LEN;
        if ticket.len() < head + TAG_LEN
            || ticket.len() > self.longest.load(Ordering::Relaxed)
            || ticket[..NAME_LEN] != self.name
        {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&ticket[NAME_LEN..head]).ok()?;
        let mut sealed = ticket[head..].to_vec();
        let n = self
            .key
            .open_in_place(nonce, Aad::from(&self.name), &mut sealed)
            .ok()?
            .len();
        sealed.truncate(n);
        Some(sealed)
    }
}

impl std::fmt::Debug for GcmTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("GcmTicketer").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &[u8] = b"a resumption secret and the session's parameters";

    #[test]
    fn a_ticket_opens_to_what_was_sealed() {
        let t = GcmTicketer::boxed().unwrap();
        let ticket = t.encrypt(STATE).unwrap();
        assert_eq!(ticket.len(), NAME_LEN + NONCE_LEN + STATE.len() + TAG_LEN);
        assert!(
            !ticket.windows(STATE.len()).any(|w| w == STATE),
            "sealed in the clear"
        );
        assert_eq!(t.decrypt(&ticket).unwrap(), STATE);
        // A fresh nonce each time: the same state seals differently.
        assert_ne!(t.encrypt(STATE).unwrap(), ticket);
    }

    #[test]
    fn a_changed_ticket_does_not_open() {
        let t = GcmTicketer::boxed().unwrap();
        let ticket = t.encrypt(STATE).unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert!(t.decrypt(&bad).is_none(), "byte {i} changed, still opened");
        }
        assert!(t.decrypt(&ticket[..ticket.len() - 1]).is_none());
        assert!(t
            .decrypt(&ticket[..NAME_LEN + NONCE_LEN + TAG_LEN - 1])
            .is_none());
        assert!(t.decrypt(&[ticket.as_slice(), b"x"].concat()).is_none());
        assert!(t.decrypt(&[]).is_none());
    }

    #[test]
    fn another_keys_ticket_does_not_open() {
        let (a, b) = (GcmTicketer::boxed().unwrap(), GcmTicketer::boxed().unwrap());
        let ticket = a.encrypt(STATE).unwrap();
        b.encrypt(STATE).unwrap(); // so that its length bound admits the ticket
        assert!(b.decrypt(&ticket).is_none());
    }

    #[test]
    fn the_rotator_seals_and_opens() {
        let t = ticketer().unwrap();
        assert_eq!(t.lifetime(), 2 * ROTATE_SECS);
        let ticket = t.encrypt(STATE).unwrap();
        assert_eq!(t.decrypt(&ticket).unwrap(), STATE);
    }
}
