//! The data plane's side of the control link: attach to `weir-control` over its Unix socket, say
//! which generation runs here, apply every snapshot on all cores (or none) and answer ACK/NACK,
//! keep the last good snapshot on disk, reconnect with backoff. Losing the daemon never stops
//! traffic: the gateway keeps serving what it has.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};
use weir_protocol::{read_frame, write_frame, DaemonMessage, PlaneMessage};

/// A snapshot to apply, with where to send the verdict.
pub struct Apply {
    pub generation: u64,
    pub config: weir_config::Config,
    pub reply: mpsc::Sender<Result<(), String>>,
}

/// The saved snapshot of a plane.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub generation: u64,
    pub config: weir_config::Config,
}

/// Where a plane keeps its last good snapshot.
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.json")
}

/// Reads the saved snapshot, if there is a valid one.
pub fn load(dir: &Path) -> Option<Saved> {
    let text = std::fs::read(snapshot_path(dir)).ok()?;
    match serde_json::from_slice::<Saved>(&text) {
        Ok(s) => match weir_config::validate(&s.config) {
            Ok(()) => Some(s),
            Err(p) => {
                tracing::error!(problems = ?p, "saved snapshot is not valid any more; ignoring it");
                None
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "saved snapshot unreadable; ignoring it");
            None
        }
    }
}

/// Writes the snapshot atomically: temp file, fsync, rename, fsync of the directory.
pub fn save(dir: &Path, generation: u64, config: &weir_config::Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".snapshot.json.tmp");
    let body = serde_json::to_vec(&Saved {
        generation,
        config: config.clone(),
    })?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, snapshot_path(dir))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Runs the link forever on its own thread: `generation` tells what runs now (updated by the
/// main thread through `applied`).
pub fn run(
    socket: PathBuf,
    plane_id: String,
    state_dir: PathBuf,
    current: std::sync::Arc<std::sync::atomic::AtomicU64>,
    apply: mpsc::Sender<Apply>,
    live: Live,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let res = session(&socket, &plane_id, &state_dir, &current, &apply, &live);
        if live.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match res {
            Ok(()) => return,
            Err(e)
                if live
                    .resync
                    .swap(false, std::sync::atomic::Ordering::Relaxed) =>
            {
                tracing::info!(error = %format!("{e:#}"), "re-attaching to the control daemon");
                backoff = Duration::from_millis(100);
                continue;
            }
            Err(e) => {
                tracing::warn!(socket = %socket.display(), error = %format!("{e:#}"), "control link down; retrying in {:?}", backoff);
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The open link, shared with the main thread so that a `SIGHUP` can re-attach it (the daemon
/// then sends its current generation again).
#[derive(Clone, Default)]
pub struct Live {
    stream: std::sync::Arc<std::sync::Mutex<Option<UnixStream>>>,
    resync: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Live {
    /// Detaches for good (the process drains after a hand-over or a stop): the daemon no longer
    /// counts this plane, and the link thread does not reconnect.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let s = self
            .stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(s) = s {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closes the open link; the link thread attaches again at once and says which generation
    /// runs here.
    pub fn resync(&self) {
        let s = self
            .stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(s) = s {
            self.resync
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Opens the link: the HTTP upgrade, then frames.
pub fn attach(socket: &Path) -> anyhow::Result<UnixStream> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: weir-control\r\nUpgrade: {}\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
        weir_protocol::ATTACH_PATH,
        weir_protocol::UPGRADE
    )?;
    // Read the response head byte by byte: frames may follow it at once.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            bail!("the daemon closed the link during the upgrade");
        }
        head.push(byte[0]);
        if head.len() > 16 << 10 {
            bail!("upgrade response too large");
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&head).context("parsing the upgrade response")?;
    if resp.code != Some(101) {
        bail!(
            "the daemon refused the link: {} {}",
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("")
        );
    }
    Ok(s)
}

fn session(
    socket: &Path,
    plane_id: &str,
    state_dir: &Path,
    current: &std::sync::atomic::AtomicU64,
    apply: &mpsc::Sender<Apply>,
    live: &Live,
) -> anyhow::Result<()> {
    let stream = attach(socket)?;
    *live
        .stream
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stream.try_clone()?);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    write_frame(
        &mut w,
        &PlaneMessage::Hello {
            plane_id: plane_id.to_string(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            generation: current.load(std::sync::atomic::Ordering::Relaxed),
        },
    )?;
    tracing::info!(socket = %socket.display(), "control link up");
    loop {
        if r.fill_buf()?.is_empty() {
            bail!("the daemon closed the link");
        }
        match read_frame::<_, DaemonMessage>(&mut r)? {
            DaemonMessage::Ping => write_frame(&mut w, &PlaneMessage::Pong)?,
            DaemonMessage::Snapshot { generation, config } => {
                let (tx, rx) = mpsc::channel();
                if apply
                    .send(Apply {
                        generation,
                        config: (*config).clone(),
                        reply: tx,
                    })
                    .is_err()
                {
                    // The gateway is shutting down.
                    return Ok(());
                }
                let verdict = rx
                    .recv()
                    .unwrap_or_else(|_| Err("the gateway is shutting down".into()));
                match verdict {
                    Ok(()) => {
                        if let Err(e) = save(state_dir, generation, &config) {
                            tracing::error!(error = %format!("{e:#}"), "cannot save the snapshot; serving it anyway");
                        }
                        write_frame(&mut w, &PlaneMessage::Ack { generation })?;
                    }
                    Err(reason) => write_frame(&mut w, &PlaneMessage::Nack { generation, reason })?,
                }
            }
        }
    }
}
