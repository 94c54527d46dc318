//! A worker thread: pinned to a core, one monoio runtime, its own SO_REUSEPORT listeners, and a
//! control loop that prepares, commits or aborts config generations, hands out its listening
//! sockets for a binary upgrade, and drains on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;
use weir_metrics::Registry;
use weir_proxy::{CoreState, Signal, Snapshot, Worker};

use crate::driver::{self, Chosen};

/// A listening socket handed over by a previous process (binary upgrade).
pub struct InheritedSocket {
    /// Listener name.
    pub name: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// The socket.
    pub fd: OwnedFd,
}

/// What the main thread tells a worker.
pub enum Command {
    /// Build the state of a generation (and bind its new listeners) and hold it; reply whether
    /// it could.
    Prepare(Arc<Snapshot>, flume::Sender<Result<(), String>>),
    /// Make the prepared state current; reply when it is.
    Commit(flume::Sender<()>),
    /// Drop the prepared state.
    Abort,
    /// Reply with duplicates of every listening socket of this worker.
    Export(flume::Sender<Vec<InheritedSocket>>),
    /// Stop accepting, finish in-flight requests within the timeout, then end the thread.
    Drain(Duration),
}

/// What a worker reports once, when it is serving or has failed to start.
pub type Started = Result<Chosen, String>;

/// The start-up description of a worker, sent to its thread.
pub struct SendSpec {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: weir_config::Driver,
    pub snapshot: Arc<Snapshot>,
    pub registry: Arc<Registry>,
    /// Sockets inherited for this worker, by (name, address).
    pub inherited: Vec<InheritedSocket>,
}

/// One bound listener of this worker: its sockets (more than one when it inherited several) and
/// the signal that stops their accept loops.
struct Bound {
    /// Duplicates of the sockets, for a hand-over; dropped with the listener.
    fds: Vec<OwnedFd>,
    stop: Signal,
}

type Key = (String, SocketAddr);

/// Listeners bound by a prepare, not accepting yet: each socket with its hand-over duplicate.
type Fresh = Vec<(Key, Vec<(TcpListener, OwnedFd)>)>;

/// Runs a worker thread to its end.
pub fn run(spec: SendSpec, rx: flume::Receiver<Command>, started: flume::Sender<Started>) {
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(
                worker = spec.index,
                core = core.id,
                "could not pin worker to its core"
            );
        }
    }
    let driver = spec.driver;
    let started2 = started.clone();
    let res = driver::block_on(driver, move |chosen| serve(spec, chosen, rx, started2));
    if let Err(e) = res {
        let _ = started.send(Err(format!("runtime: {e}")));
    }
}

/// A listening socket with SO_REUSEPORT, so every core binds the same address.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// A socket ready for this worker's runtime, and a duplicate kept for hand-overs. `TCP_NODELAY`
/// is set on the listening socket (bound here or inherited from a process before an upgrade):
/// Linux copies it to every connection accepted from it, which saves a `setsockopt` per
/// connection.
fn adopt(std: std::net::TcpListener) -> std::io::Result<(TcpListener, OwnedFd)> {
    std.set_nonblocking(true)?;
    socket2::SockRef::from(&std).set_nodelay(true)?;
    let dup = OwnedFd::from(std.try_clone()?);
    Ok((TcpListener::from_std(std)?, dup))
}

/// Binds what `snap` lists and `have` lacks (using inherited sockets first); the result is not
/// accepting yet.
fn bind_missing(
    snap: &Snapshot,
    have: &HashMap<Key, Bound>,
    inherited: &mut Vec<InheritedSocket>,
) -> Result<Fresh, String> {
    let mut out = Vec::new();
    for (name, addr) in &snap.listen {
        let key = (name.clone(), *addr);
        if have.contains_key(&key) {
            continue;
        }
        let fail = |e: std::io::Error| format!("listener `{name}` on {addr}: {e}");
        let mut ls = Vec::new();
        let mut k = 0;
        while k < inherited.len() {
            if inherited[k].name == *name && inherited[k].addr == *addr {
                let s = inherited.swap_remove(k);
                ls.push(adopt(std::net::TcpListener::from(s.fd)).map_err(fail)?);
            } else {
                k += 1;
            }
        }
        if ls.is_empty() {
            ls.push(bind(*addr).and_then(adopt).map_err(fail)?);
        }
        out.push((key, ls));
    }
    Ok(out)
}

/// Sets each listening socket's `TCP_DEFER_ACCEPT` as its listener's config says (on every
/// generation: a reload may change it, and an inherited socket keeps the old process's setting).
fn defer_accepts(snap: &Snapshot, bound: &HashMap<Key, Bound>) {
    for ((name, addr), b) in bound {
        let on = snap
            .config
            .listeners
            .iter()
            .find(|l| l.name == *name)
            .is_some_and(|l| l.defers_accept());
        for fd in &b.fds {
            if let Err(e) = set_defer_accept(fd, on) {
                tracing::warn!(listener = %name, %addr, error = %e, "cannot set TCP_DEFER_ACCEPT");
            }
        }
    }
}

/// `TCP_DEFER_ACCEPT` of one second (as nginx's `deferred`), or off: the kernel completes a
/// connection's accept when its first data arrives, or once the second has passed without any.
#[allow(unsafe_code)]
fn set_defer_accept(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    let secs: libc::c_int = on.into();
    // SAFETY: `fd` is an open socket for the whole call, and the value points at a live
    // `c_int` whose size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn start_accepting(worker: &Rc<Worker>, bound: &mut HashMap<Key, Bound>, new: Fresh) {
    for (key, ls) in new {
        let stop = Signal::default();
        let name: Rc<str> = key.0.as_str().into();
        let mut fds = Vec::with_capacity(ls.len());
        for (l, dup) in ls {
            fds.push(dup);
            monoio::spawn(accept_loop(worker.clone(), name.clone(), l, stop.clone()));
        }
        bound.insert(key, Bound { fds, stop });
    }
}

async fn serve(
    mut spec: SendSpec,
    chosen: Chosen,
    rx: flume::Receiver<Command>,
    started: flume::Sender<Started>,
) {
    let state = match CoreState::build(&spec.snapshot, spec.index, &spec.registry, None) {
        Ok(s) => s,
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    let worker = Rc::new(Worker::new(spec.index, state, spec.registry.clone()));
    let mut bound: HashMap<Key, Bound> = HashMap::new();
    match bind_missing(&spec.snapshot, &bound, &mut spec.inherited) {
        Ok(new) => {
            start_accepting(&worker, &mut bound, new);
            defer_accepts(&spec.snapshot, &bound);
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    }
    monoio::spawn(housekeeping(worker.clone()));
    let _ = started.send(Ok(chosen));

    let mut pending: Option<(Arc<Snapshot>, Fresh)> = None;
    while let Ok(cmd) = rx.recv_async().await {
        match cmd {
            Command::Prepare(snap, reply) => {
                let cur = worker.state();
                let res = CoreState::build(&snap, worker.index, &worker.registry, Some(&cur))
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        let new = bind_missing(&snap, &bound, &mut Vec::new())?;
                        worker.prepare(s);
                        pending = Some((snap.clone(), new));
                        Ok(())
                    });
                let _ = reply.send(res);
            }
            Command::Commit(done) => {
                if let Some((snap, new)) = pending.take() {
                    worker.commit();
                    start_accepting(&worker, &mut bound, new);
                    bound.retain(|key, b| {
                        let keep = snap.listen.iter().any(|(n, a)| *n == key.0 && *a == key.1);
                        if !keep {
                            b.stop.fire();
                        }
                        keep
                    });
                    defer_accepts(&snap, &bound);
                }
                let _ = done.send(());
            }
            Command::Abort => {
                pending = None;
                worker.abort();
            }
            Command::Export(reply) => {
                let mut out = Vec::new();
                for ((name, addr), b) in &bound {
                    for fd in &b.fds {
                        match fd.try_clone() {
                            Ok(fd) => out.push(InheritedSocket {
                                name: name.clone(),
                                addr: *addr,
                                fd,
                            }),
                            Err(e) => {
                                tracing::error!(listener = %name, error = %e, "cannot duplicate listener for hand-over")
                            }
                        }
                    }
                }
                let _ = reply.send(out);
            }
            Command::Drain(limit) => {
                worker.start_drain();
                let clean = weir_proxy::wait_idle(&worker, limit).await;
                if !clean {
                    tracing::warn!(
                        worker = worker.index,
                        open = worker.connections.get(),
                        "drain timeout: closing remaining connections"
                    );
                }
                break;
            }
        }
    }
    for c in worker.state().clusters.values() {
        c.close_idle();
    }
    worker.flush_log();
}

async fn accept_loop(worker: Rc<Worker>, name: Rc<str>, listener: TcpListener, stop: Signal) {
    loop {
        // The accept stays pinned here while the stop signals are watched: when one fires, the
        // posted accept is cancelled and awaited, so a connection the kernel had already handed
        // over (io_uring completes accepts on its own) is served rather than dropped.
        let canceller = monoio::io::Canceller::new();
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let accepted = monoio::select! {
            r = &mut accept => r,
            _ = worker.drained() => {
                let _ = canceller.cancel();
                if let Ok((stream, peer)) = accept.await {
                    weir_proxy::spawn(&worker, name.clone(), stream, peer);
                }
                return;
            }
            _ = stop.wait() => {
                let _ = canceller.cancel();
                if let Ok((stream, peer)) = accept.await {
                    weir_proxy::spawn(&worker, name.clone(), stream, peer);
                }
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                weir_proxy::spawn(&worker, name.clone(), stream, peer);
            }
            Err(e) => {
                // Out of descriptors or a transient error: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Per-core chores on a slow tick: close expired idle upstream connections, flush the access
/// log, and beat the heart the watchdog listens to.
async fn housekeeping(worker: Rc<Worker>) {
    let mut ticks = 0u64;
    loop {
        monoio::time::sleep(Duration::from_millis(100)).await;
        worker.flush_log();
        worker.heartbeat();
        ticks += 1;
        if ticks.is_multiple_of(10) {
            for c in worker.state().clusters.values() {
                c.sweep_idle();
            }
        }
        if worker.draining() && worker.connections.get() == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_inherit_nodelay() {
        // `serve` no longer sets TCP_NODELAY per connection: it must come from the listener.
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(async {
                let addr = "127.0.0.1:0".parse().expect("address");
                let (listener, _dup) = bind(addr).and_then(adopt).expect("listener");
                let addr = listener.local_addr().expect("bound address");
                let _client = std::net::TcpStream::connect(addr).expect("connect");
                let (accepted, _) = listener.accept().await.expect("accept");
                assert!(accepted.nodelay().expect("getsockopt"));
            });
    }
}
