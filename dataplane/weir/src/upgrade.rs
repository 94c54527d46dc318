//! Binary upgrade without refusing a connection: a new `weir` takes the listening sockets of the
//! running one over a Unix socket (SCM_RIGHTS), starts serving on them, says READY, and only then
//! does the old process stop accepting and drain. The sockets never close, so no connection is
//! refused: connections waiting in the accept queue are taken by whichever process accepts first.
//!
//! ```text
//! new → old: TAKE\n
//! old → new: {"listeners":[{"name":..,"addr":..},...]}\n   + the sockets, in that order
//! new → old: READY\n          (after its workers serve)      → old drains and exits
//! ```

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{bail, Context};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use weir_runtime::InheritedSocket;

/// Most sockets in one hand-over (a little under the kernel's SCM_MAX_FD).
const MAX_FDS: usize = 250;

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    name: String,
    addr: SocketAddr,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Offer {
    listeners: Vec<Entry>,
}

/// Binds the hand-over socket (mode 0600), replacing a stale file (or, for a successor, the file
/// of the process it took over).
pub fn listen(path: &Path, replace: bool) -> anyhow::Result<UnixListener> {
    if path.exists() && (replace || UnixStream::connect(path).is_err()) {
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Old side: answers one TAKE with `sockets`; returns once the new process said READY.
pub fn serve_one(mut conn: UnixStream, sockets: Vec<InheritedSocket>) -> anyhow::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.trim() != "TAKE" {
        bail!("unexpected hand-over request {line:?}");
    }
    if sockets.len() > MAX_FDS {
        bail!(
            "{} listening sockets: more than one hand-over can carry",
            sockets.len()
        );
    }
    let offer = Offer {
        listeners: sockets
            .iter()
            .map(|s| Entry {
                name: s.name.clone(),
                addr: s.addr,
            })
            .collect(),
    };
    let mut msg = serde_json::to_vec(&offer)?;
    msg.push(b'\n');
    let fds: Vec<RawFd> = sockets.iter().map(|s| s.fd.as_raw_fd()).collect();
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[IoSlice::new(&msg)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the sockets")?;
    drop(sockets);
    line.clear();
    r.read_line(&mut line)?;
    if line.trim() != "READY" {
        bail!("the new process did not become ready");
    }
    let _ = conn.write_all(b"BYE\n");
    Ok(())
}

/// New side: takes the sockets of the process listening on `path`. Call [`ready`] once serving.
pub fn take(path: &Path) -> anyhow::Result<(UnixStream, Vec<InheritedSocket>)> {
    let mut conn =
        UnixStream::connect(path).with_context(|| format!("connecting to {}", path.display()))?;
    conn.write_all(b"TAKE\n")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving the sockets")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("reading the sockets")? {
            if let ControlMessageOwned::ScmRights(v) = c {
                fds.extend(v);
            }
        }
        (msg.bytes, fds)
    };
    // SAFETY: the kernel just installed these descriptors in this process for us (SCM_RIGHTS);
    // nothing else owns them, so each becomes an OwnedFd exactly once.
    let owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let text = buf.get(..n).context("hand-over message")?;
    let end = text.iter().position(|b| *b == b'\n').unwrap_or(text.len());
    let offer: Offer = serde_json::from_slice(&text[..end]).context("hand-over message")?;
    if offer.listeners.len() != owned.len() {
        bail!(
            "hand-over listed {} sockets but carried {}",
            offer.listeners.len(),
            owned.len()
        );
    }
    let sockets = offer
        .listeners
        .into_iter()
        .zip(owned)
        .map(|(e, fd)| InheritedSocket {
            name: e.name,
            addr: e.addr,
            fd,
        })
        .collect();
    Ok((conn, sockets))
}

/// New side: tells the old process it can stop accepting.
pub fn ready(mut conn: UnixStream) -> anyhow::Result<()> {
    conn.write_all(b"READY\n")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    Ok(())
}
