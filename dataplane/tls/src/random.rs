//! Random bytes for handshakes, drawn from aws-lc's generator a kilobyte at a time, and the X25519
//! key exchange that takes its private keys from them.
//!
//! A resumed TLS 1.3 handshake asks for random bytes five or six times, a few dozen bytes each:
//! the server's random, the ticket's nonce and age offset, the ticket encryption's nonce, the
//! X25519 private key. aws-lc's `RAND_bytes` costs the same per call whatever its length (its DRBG
//! mixes in fresh CPU entropy on every call, an `RDRAND` that a VM may trap), and in a `perf`
//! profile of handshakes under load it was 2.9% of the worker's CPU. Here each thread keeps a
//! kilobyte of the generator's output and hands it out in order, every byte once (zeroed as it
//! leaves); the generator is called once per twenty-odd handshakes. The bytes are the generator's
//! own, so their quality is its quality.
//!
//! A forked child refills before using any, so two processes never hand out the same bytes: a
//! `pthread_atfork` handler counts forks in the child, and a pool drawn under an older count is
//! drawn again. (Comparing process ids would cost a `getpid` system call per draw; glibc no longer
//! caches it.)

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

use aws_lc_rs::agreement;
use rustls::crypto::{
    ActiveKeyExchange, GetRandomFailed, SecureRandom, SharedSecret, SupportedKxGroup,
};
use rustls::{NamedGroup, PeerMisbehaved};

/// Bytes drawn from aws-lc per refill.
const POOL_BYTES: usize = 1024;
/// Requests longer than this go to aws-lc directly (they are rare: keys made at start-up).
const DIRECT_ABOVE: usize = POOL_BYTES / 8;

struct Pool {
    bytes: [u8; POOL_BYTES],
    /// The first byte not yet handed out.
    next: usize,
    /// [`FORKS`] when the bytes were drawn.
    forks: u32,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; POOL_BYTES], next: POOL_BYTES, forks: 0 })
    };
}

/// Forks this process descends through, counted in each child by [`forked`].
static FORKS: AtomicU32 = AtomicU32::new(0);
static WATCH_FORKS: Once = Once::new();

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Whether [`forked`] is registered; without it nothing is pooled.
static FORKS_WATCHED: AtomicBool = AtomicBool::new(false);

/// The fork count, registering the handler that keeps it before the first draw; `None` when
/// it could not be registered (only without memory), as then a child would share its parent's
/// pool.
#[allow(unsafe_code)]
fn forks() -> Option<u32> {
    WATCH_FORKS.call_once(|| {
        // SAFETY: `forked` only touches an atomic, which is async-signal-safe as a handler run in
        // a forked child must be.
        let registered = unsafe { libc::pthread_atfork(None, None, Some(forked)) } == 0;
        FORKS_WATCHED.store(registered, Ordering::Relaxed);
    });
    FORKS_WATCHED
        .load(Ordering::Relaxed)
        .then(|| FORKS.load(Ordering::Relaxed))
}

/// Fills `out` with random bytes from this thread's pool (refilled from aws-lc when short).
pub(crate) fn fill(out: &mut [u8]) -> Result<(), GetRandomFailed> {
    let forks = match forks() {
        Some(forks) if out.len() <= DIRECT_ABOVE => forks,
        _ => return aws_lc_rs::rand::fill(out).map_err(|_| GetRandomFailed),
    };
    // `try_with`: a thread's own pool is gone while its thread-locals are being destroyed.
    let pooled = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.forks != forks || POOL_BYTES - pool.next < out.len() {
            aws_lc_rs::rand::fill(&mut pool.bytes).map_err(|_| GetRandomFailed)?;
            pool.next = 0;
            pool.forks = forks;
        }
        let taken = pool.next..pool.next + out.len();
        out.copy_from_slice(&pool.bytes[taken.clone()]);
        pool.bytes[taken].fill(0);
        pool.next += out.len();
        Ok(())
    });
    pooled.unwrap_or_else(|_| aws_lc_rs::rand::fill(out).map_err(|_| GetRandomFailed))
}

/// rustls's random source: [`fill`].
#[derive(Debug)]
pub(crate) struct PooledRandom;

impl SecureRandom for PooledRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill(buf)
    }
}

/// Ephemeral X25519 (RFC 7748) on aws-lc-rs, as rustls's own group but with the private key drawn
/// from the pool ([`fill`]) instead of a `RAND_bytes` call of its own. aws-lc clamps the scalar,
/// derives the public key once, and refuses a peer key whose shared secret is all zeros.
#[derive(Debug)]
pub(crate) struct PooledX25519;

/// The group, for a provider's `kx_groups`.
pub(crate) static X25519: &dyn SupportedKxGroup = &PooledX25519;

impl SupportedKxGroup for PooledX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut seed = [0u8; 32];
        fill(&mut seed)?;
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, &seed);
        seed.fill(0);
        let key = key.map_err(|_| GetRandomFailed)?;
        let public = key.compute_public_key().map_err(|_| GetRandomFailed)?;
        Ok(Box::new(X25519Exchange { key, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    key: agreement::PrivateKey,
    public: agreement::PublicKey,
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        if peer.len() != 32 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer);
        agreement::agree(&self.key, peer, (), |secret| Ok(SharedSecret::from(secret)))
            .map_err(|()| PeerMisbehaved::InvalidKeyShare.into())
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_ref()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// `provider` with its random source and its X25519 group (when it has one) taken from the pool.
pub(crate) fn with_pooled_random(
    mut provider: rustls::crypto::CryptoProvider,
) -> rustls::crypto::CryptoProvider {
    provider.secure_random = &PooledRandom;
    for g in &mut provider.kx_groups {
        if g.name() == NamedGroup::X25519 {
            *g = X25519;
        }
    }
    provider
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn pooled_bytes_are_handed_out_once() {
        // Several refills' worth: no 32-byte draw repeats, none is the zeroed pool.
        let mut seen = HashSet::new();
        for _ in 0..(4 * POOL_BYTES / 32) {
            let mut b = [0u8; 32];
            fill(&mut b).unwrap();
            assert_ne!(b, [0u8; 32]);
            assert!(seen.insert(b), "a draw repeated");
        }
        // What left the pool is not kept in it.
        POOL.with(|p| {
            let p = p.borrow();
            assert!(p.bytes[..p.next].iter().all(|b| *b == 0));
        });
    }

    #[test]
    fn a_long_request_bypasses_the_pool() {
        let mut first = [0u8; 8];
        fill(&mut first).unwrap();
        let before = POOL.with(|p| p.borrow().next);
        let mut long = vec![0u8; 4096];
        fill(&mut long).unwrap();
        assert!(long.iter().any(|b| *b != 0));
        assert_eq!(POOL.with(|p| p.borrow().next), before);
    }

    #[test]
    fn a_pool_drawn_before_a_fork_is_refilled() {
        // As a forked child finds its parent's pool: the child handler has counted the fork.
        let mut b = [0u8; 32];
        fill(&mut b).unwrap();
        POOL.with(|p| p.borrow_mut().bytes = [7; POOL_BYTES]);
        forked();
        let now = forks().expect("the fork handler is registered");
        fill(&mut b).unwrap();
        assert_ne!(b, [7u8; 32]);
        POOL.with(|p| {
            let p = p.borrow();
            assert_eq!(p.forks, now);
            assert_eq!(p.next, 32);
            assert!(p.bytes[32..].iter().any(|b| *b != 7));
        });
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_forked_child_draws_other_bytes_than_its_parent() {
        // A real fork: the parent's pool is copied into the child with bytes not yet handed out.
        let mut warm = [0u8; 16];
        fill(&mut warm).unwrap();
        let mut fds = [0; 2];
        // SAFETY (this test's calls): plain system calls on a pipe made here and on the child
        // forked here; the child only draws, writes and `_exit`s, so it runs no other thread's
        // state nor any destructor.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut child = [0u8; 32];
            let ok = fill(&mut child).is_ok();
            unsafe {
                if ok {
                    libc::write(fds[1], child.as_ptr().cast(), child.len());
                }
                libc::_exit(0);
            }
        }
        let mut parent = [0u8; 32];
        fill(&mut parent).unwrap();
        let mut child = [0u8; 32];
        // A child stuck on a lock another test thread held at the fork is killed, not awaited.
        let mut ready = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        let n = unsafe {
            if libc::poll(&mut ready, 1, 10_000) == 1 {
                libc::read(fds[0], child.as_mut_ptr().cast(), child.len())
            } else {
                libc::kill(pid, libc::SIGKILL);
                -1
            }
        };
        let mut status = 0;
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(n, 32, "the child drew its bytes");
        assert_ne!(parent, child);
    }

    #[test]
    fn x25519_agrees_with_aws_lc_rs() {
        // Ours against ours, and ours against aws-lc-rs's own ephemeral key, both ways.
        let a = X25519.start().unwrap();
        let b = X25519.start().unwrap();
        assert_ne!(a.pub_key(), b.pub_key());
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let ab = a.complete(&b_pub).unwrap();
        let ba = b.complete(&a_pub).unwrap();
        assert_eq!(ab.secret_bytes(), ba.secret_bytes());

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let theirs = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).unwrap();
        let their_pub = theirs.compute_public_key().unwrap();
        let ours = X25519.start().unwrap();
        let our_pub =
            agreement::UnparsedPublicKey::new(&agreement::X25519, ours.pub_key().to_vec());
        let theirs_secret =
            agreement::agree_ephemeral(theirs, &our_pub, (), |s| Ok(s.to_vec())).unwrap();
        let ours_secret = ours.complete(their_pub.as_ref()).unwrap();
        assert_eq!(ours_secret.secret_bytes(), &theirs_secret[..]);
    }

    #[test]
    fn x25519_refuses_bad_peer_keys() {
        // A short key, and a low-order point (the all-zero shared secret RFC 7748 warns of).
        for peer in [vec![9u8; 31], vec![0u8; 32]] {
            let err = X25519.start().unwrap().complete(&peer).err().unwrap();
            assert_eq!(
                err,
                rustls::Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare)
            );
        }
    }

    #[test]
    fn the_provider_takes_its_randomness_from_the_pool() {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        let names: Vec<NamedGroup> = base.kx_groups.iter().map(|g| g.name()).collect();
        let p = with_pooled_random(base);
        assert_eq!(format!("{:?}", p.secure_random), "PooledRandom");
        // The same groups in the same order, X25519 the pooled one.
        assert_eq!(
            p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>(),
            names
        );
        let x = p
            .kx_groups
            .iter()
            .find(|g| g.name() == NamedGroup::X25519)
            .unwrap();
        assert_eq!(format!("{x:?}"), "PooledX25519");
    }
}
