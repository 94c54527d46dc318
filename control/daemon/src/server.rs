//! The Unix socket: created private (mode 0600) from its first instant, one thread per connection.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ApiError, Error, Result};
use crate::http::{Conn, ReadError};
use crate::plane::{self, Timing};
use crate::state::Shared;

/// Admin connections idle this long are closed.
const IDLE: Duration = Duration::from_secs(60);
/// Connections served at once (each is a thread); past it new ones get 503.
const MAX_CONNS: usize = 512;

/// Binds `path` so that it is never reachable with looser permissions than 0600: the socket is
/// bound inside a fresh 0700 directory next to it, chmod-ed, then renamed into place (which also
/// replaces a stale socket atomically). A socket that still answers is left alone: another daemon
/// owns it.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        match UnixStream::connect(path) {
            Ok(_) => return Err(Error::SocketInUse(path.to_path_buf())),
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "replacing a stale socket")
            }
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir().map_err(Error::io("resolve", path))?,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(Error::io("create socket dir", &parent))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "control.sock".into());
    let private = parent.join(format!(".{name}.{}.d", std::process::id()));
    let _ = fs::remove_dir_all(&private);
    DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(Error::io("create", &private))?;
    let staged = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&staged).map_err(Error::io("bind", &staged))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))
            .map_err(Error::io("chmod", &staged))?;
        fs::rename(&staged, path).map_err(Error::io("rename socket to", path))?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&private);
    bound
}

/// Accepts connections until `stop` is set (then one more connection wakes it).
pub fn serve(listener: UnixListener, shared: Arc<Shared>, timing: Timing, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // EMFILE and friends: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut conn = Conn::new(stream);
            let busy = ApiError::new(503, "busy", "too many connections").to_response();
            let _ = conn.write_response(&busy, true);
            continue;
        }
        let shared = shared.clone();
        let guard = ActiveGuard(active.clone());
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                let _guard = guard;
                if let Err(e) = connection(stream, &shared, timing) {
                    tracing::debug!(error = %e, "connection ended");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a connection thread");
        }
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn connection(stream: UnixStream, shared: &Arc<Shared>, timing: Timing) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    let mut conn = Conn::new(stream);
    loop {
        let req = match conn.read_request() {
            Ok(Some(r)) => r,
            Ok(None) | Err(ReadError::Gone) => return Ok(()),
            Err(ReadError::Refuse(status, kind, message)) => {
                let resp = ApiError::new(status, kind, message).to_response();
                return conn.write_response(&resp, true);
            }
        };
        if req.path == weir_protocol::ATTACH_PATH
            && req.method == "POST"
            && req.wants_upgrade(weir_protocol::UPGRADE)
        {
            plane::serve(conn, shared, timing);
            return Ok(());
        }
        let resp = crate::api::handle(shared, &req);
        tracing::debug!(method = %req.method, path = %req.path, status = resp.status, "request");
        let close = !req.keep_alive();
        conn.write_response(&resp, close)?;
        if close {
            return Ok(());
        }
    }
}
