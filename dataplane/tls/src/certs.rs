//! A listener's certificates, picked by SNI: [`CertStore`] is rustls's certificate resolver and
//! reloads its files when they change on disk.
//!
//! A name is looked up exactly, then as a wildcard (`a.example.com` → `*.example.com`, one label
//! only); a client without SNI, or with a name no certificate carries, gets the first certificate.
//! Where a name has several certificates (RSA and ECDSA), the first one whose key can sign with a
//! scheme the client offers wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{load_certs, load_key};
use crate::error::{Error, Result};

/// One configured certificate: its files and the names it answers (empty: its own DNS names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names (exact or `*.` wildcards); empty: the DNS names of the leaf certificate.
    pub names: Vec<String>,
}

/// A loaded certificate and the names it is served for.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    /// Modification times and sizes of the cert and key files when they were read.
    stamp: (Stamp, Stamp),
}

/// The lookup tables of one set of loaded certificates.
#[derive(Debug, Default)]
struct Index {
    keys: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, Vec<usize>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Vec<usize>>,
}

impl Index {
    fn new(loaded: &[Loaded]) -> Index {
        let mut ix = Index::default();
        for (i, l) in loaded.iter().enumerate() {
            ix.keys.push(l.key.clone());
            for n in &l.names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(suffix) => ix.wildcard.entry(suffix.to_owned()).or_default().push(i),
                    None => ix.exact.entry(n).or_default().push(i),
                }
            }
        }
        ix
    }

    fn pick(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let fits = |i: &usize| {
            self.keys[*i]
                .key
                .choose_scheme(hello.signature_schemes())
                .is_some()
        };
        let first_fit = |v: Option<&Vec<usize>>| v.and_then(|v| v.iter().copied().find(fits));
        let found = hello.server_name().and_then(|sni| {
            let sni = sni.to_ascii_lowercase();
            first_fit(self.exact.get(&sni)).or_else(|| {
                let (_, parent) = sni.split_once('.')?;
                first_fit(self.wildcard.get(parent))
            })
        });
        let i = found
            .or_else(|| (0..self.keys.len()).find(fits))
            .unwrap_or(0);
        self.keys.get(i).cloned()
    }
}

/// The certificates of a listener: rustls asks it for a certificate on each handshake; a
/// background poll ([`CertStore::reload_changed`]) reloads files that changed.
#[derive(Debug)]
pub struct CertStore {
    listener: String,
    specs: Vec<CertSpec>,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Vec<Loaded>>,
    /// Read once per handshake; written only when a file changed.
    index: RwLock<Arc<Index>>,
}

impl CertStore {
    /// Loads every certificate now; any bad file is an error naming it.
    pub fn new(
        listener: &str,
        specs: Vec<CertSpec>,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertStore> {
        let loaded = specs
            .iter()
            .map(|s| load(s, &provider))
            .collect::<Result<Vec<_>>>()?;
        let index = Index::new(&loaded);
        Ok(CertStore {
            listener: listener.to_owned(),
            specs,
            provider,
            loaded: Mutex::new(loaded),
            index: RwLock::new(Arc::new(index)),
        })
    }

    /// Reloads the certificates whose files changed since they were read (by modification
    /// time). A file that fails to load is logged and its previous certificate kept. Returns
    /// how many certificates were replaced.
    pub fn reload_changed(&self) -> usize {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let mut replaced = 0;
        for (spec, cur) in self.specs.iter().zip(loaded.iter_mut()) {
            let now = stamps(spec);
            if now == cur.stamp {
                continue;
            }
            match load(spec, &self.provider) {
                Ok(fresh) => {
                    tracing::info!(
                        listener = %self.listener,
                        cert = %spec.cert.display(),
                        names = ?fresh.names,
                        "TLS certificate reloaded"
                    );
                    *cur = fresh;
                    replaced += 1;
                }
                Err(e) => {
                    // Remembered, so one bad write is logged once; the next change retries.
                    cur.stamp = now;
                    tracing::warn!(
                        listener = %self.listener,
                        error = %e,
                        "TLS certificate not reloaded, the previous one is kept"
                    );
                }
            }
        }
        if replaced > 0 {
            let index = Arc::new(Index::new(&loaded));
            *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
        }
        replaced
    }

    /// The names each certificate is served for, in config order.
    pub fn names(&self) -> Vec<Vec<String>> {
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.iter().map(|l| l.names.clone()).collect()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let index = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        index.pick(&hello)
    }
}

/// What tells a file changed: its modification time and size (None: unreadable).
type Stamp = Option<(SystemTime, u64)>;

fn mtime(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn stamps(spec: &CertSpec) -> (Stamp, Stamp) {
    (mtime(&spec.cert), mtime(&spec.key))
}

/// Reads one certificate and its key, checks that they fit, and finds its names.
fn load(spec: &CertSpec, provider: &Arc<CryptoProvider>) -> Result<Loaded> {
    // Stamped before reading: a write that lands while we read is seen by the next poll.
    let stamp = stamps(spec);
    let chain = load_certs(&spec.cert)?;
    let key = load_key(&spec.key)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Pem {
            path: spec.key.clone(),
            message: format!("unusable private key: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| Error::Pem {
        path: spec.key.clone(),
        message: format!(
            "does not fit the certificate `{}`: {e}",
            spec.cert.display()
        ),
    })?;
    let names = if spec.names.is_empty() {
        let leaf = certified.end_entity_cert().map_err(|e| Error::Pem {
            path: spec.cert.clone(),
            message: e.to_string(),
        })?;
        crate::identity::dns_names(leaf.as_ref()).map_err(|message| Error::Pem {
            path: spec.cert.clone(),
            message,
        })?
    } else {
        spec.names.clone()
    };
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        stamp,
    })
}
