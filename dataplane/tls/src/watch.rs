//! The certificate file watcher: one thread per process that looks at the modification times of
//! every listener's certificate and key files once a second and reloads those that changed.
//! Off the request path: a handshake only reads the current certificate set.
//!
//! Stores are held weakly, so a listener's certificates leave the watch when the generation that
//! built them is gone.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::certs::CertStore;

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_secs(1);

fn stores() -> &'static Mutex<Vec<Weak<CertStore>>> {
    static STORES: Mutex<Vec<Weak<CertStore>>> = Mutex::new(Vec::new());
    &STORES
}

/// Adds a store to the watch, starting the watcher thread on first use.
pub(crate) fn register(store: &Arc<CertStore>) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    stores()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::downgrade(store));
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("weir-tls-watch".into())
            .spawn(|| loop {
                std::thread::sleep(POLL);
                poll_once();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the certificate watcher: certificates will not be reloaded from disk");
        }
    });
}

/// Looks at every registered store once (dropping those that are gone).
pub fn poll_once() {
    let live: Vec<Arc<CertStore>> = {
        let mut all = stores().lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for s in live {
        s.reload_changed();
    }
}
