//! `weir-control`: the control daemon. It owns the desired configuration of the Weir data planes:
//! it loads the YAML file it is started with and watches it, takes changes through an admin API
//! (HTTP/1.1 + JSON on a Unix socket, mode 0600), gives every accepted change a generation number,
//! persists it durably before answering, and pushes it to every attached data plane, which answers
//! ACK or NACK.
//!
//! - [`Daemon::start`] loads the state directory ([`store`]), applies the config file when it
//!   changed, binds the socket ([`server`]) and starts the file watcher ([`watch`]).
//! - [`state::Shared`] holds the current generation and the planes; [`state::Shared::commit`] is
//!   the only way a config becomes a generation.
//! - [`api::handle`] answers the admin API; [`plane`] serves the attached data planes.
//!
//! This is not on the request path: the data plane keeps serving its last snapshot when the daemon
//! is down. Blocking I/O with a thread per connection keeps it simple.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
mod error;
pub mod http;
pub mod plane;
pub mod server;
pub mod state;
pub mod store;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ApiError, ApiProblem, Error, Result};
pub use plane::Timing;
pub use state::Shared;
pub use store::{Generation, Meta, Source};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file to load and watch.
    pub config: Option<PathBuf>,
    /// The admin socket.
    pub socket: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Generations kept.
    pub keep: usize,
    /// How often the config file is looked at.
    pub watch_interval: Duration,
    /// Liveness of the plane links.
    pub timing: Timing,
}

impl Options {
    /// The defaults of the `weir-control` binary.
    pub fn new(config: Option<PathBuf>) -> Self {
        Options {
            config,
            socket: PathBuf::from("/run/weir/control.sock"),
            state_dir: PathBuf::from("/var/lib/weir"),
            keep: 50,
            watch_interval: Duration::from_millis(500),
            timing: Timing::default(),
        }
    }
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    shared: Arc<Shared>,
    socket: PathBuf,
    reload: Option<Sender<()>>,
    stop: Arc<AtomicBool>,
}

impl Daemon {
    /// Loads the state, applies the config file if it changed, binds the socket and starts
    /// serving on background threads.
    pub fn start(opts: Options) -> Result<Daemon> {
        let (mut store, current) = store::Store::open(&opts.state_dir, opts.keep)?;
        let mut watcher = opts.config.clone().map(watch::Watcher::new);
        let current = match current {
            Some(g) => {
                tracing::info!(
                    generation = g.meta.generation,
                    "resuming from {}",
                    store.dir().display()
                );
                if let Err(problems) = weir_config::validate(&g.config) {
                    tracing::warn!(
                        generation = g.meta.generation,
                        problems = problems.len(),
                        "the stored generation no longer passes validation"
                    );
                }
                g
            }
            None => {
                let Some(path) = &opts.config else {
                    return Err(Error::NothingToRun(opts.state_dir.clone()));
                };
                let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
                let text = String::from_utf8_lossy(&bytes);
                let config = weir_config::parse(&text, &path.display().to_string())?;
                let g = Generation {
                    meta: Meta {
                        generation: 1,
                        created_at: store::now_rfc3339(),
                        source: Source::File,
                        comment: None,
                    },
                    file_hash: Some(watch::fingerprint(&bytes)),
                    config: Arc::new(config),
                };
                store.write(&g)?;
                tracing::info!(generation = 1, "first generation from {}", path.display());
                g
            }
        };
        let shared = Arc::new(Shared::new(store, current, opts.config.clone()));
        if let Some(w) = &mut watcher {
            w.check(&shared, false);
        }
        let listener = server::bind(&opts.socket)?;
        tracing::info!(socket = %opts.socket.display(), "admin API listening");
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (shared, stop, timing) = (shared.clone(), stop.clone(), opts.timing);
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || server::serve(listener, shared, timing, stop))
                .map_err(Error::io("spawn accept thread", &opts.socket))?;
        }
        let reload = match watcher {
            Some(w) => {
                let (tx, rx) = mpsc::channel();
                let (shared, interval) = (shared.clone(), opts.watch_interval);
                std::thread::Builder::new()
                    .name("watch".into())
                    .spawn(move || w.run(shared, rx, interval))
                    .map_err(Error::io("spawn watcher thread", &opts.socket))?;
                Some(tx)
            }
            None => None,
        };
        Ok(Daemon {
            shared,
            socket: opts.socket,
            reload,
            stop,
        })
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The socket path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Re-reads the config file now (SIGHUP).
    pub fn reload(&self) {
        match &self.reload {
            Some(tx) => {
                let _ = tx.send(());
            }
            None => tracing::info!("SIGHUP: no --config file to re-read"),
        }
    }

    /// Stops accepting and removes the socket. Waits for a commit in progress to finish, so that
    /// the process may exit right after.
    pub fn stop(&self) {
        let _held = self.shared.lock();
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), error = %e, "cannot remove the socket");
        }
    }
}
