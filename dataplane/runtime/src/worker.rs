//! A worker thread: pinned to a core, one monoio runtime, its own SO_REUSEPORT listeners, and a
//! control loop that prepares, commits or aborts config generations and drains on shutdown.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::{ListenerOpts, TcpListener};
use weir_metrics::Registry;
use weir_proxy::{CoreState, Snapshot, Worker};

use crate::driver::{self, Chosen};

/// What the main thread tells a worker.
pub enum Command {
    /// Build the state of a generation and hold it; reply whether it could.
    Prepare(Arc<Snapshot>, flume::Sender<Result<(), String>>),
    /// Make the prepared state current.
    Commit,
    /// Drop the prepared state.
    Abort,
    /// Stop accepting, finish in-flight requests within the timeout, then end the thread.
    Drain(Duration),
}

/// What a worker reports once, when it is serving or has failed to start.
pub type Started = Result<Chosen, String>;

pub struct Spec {
    pub index: usize,
    pub snapshot: Arc<Snapshot>,
    pub listeners: Vec<(Rc<str>, SocketAddr)>,
    pub registry: Arc<Registry>,
}

// `Rc<str>` names are made inside the thread; the spec crosses threads with plain strings.
pub struct SendSpec {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: weir_config::Driver,
    pub snapshot: Arc<Snapshot>,
    pub listeners: Vec<(String, SocketAddr)>,
    pub registry: Arc<Registry>,
}

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
    let spec = Spec {
        index: spec.index,
        snapshot: spec.snapshot,
        listeners: spec
            .listeners
            .into_iter()
            .map(|(n, a)| (Rc::from(n.as_str()), a))
            .collect(),
        registry: spec.registry,
    };
    let started2 = started.clone();
    let res = driver::block_on(driver, move |chosen| serve(spec, chosen, rx, started2));
    if let Err(e) = res {
        let _ = started.send(Err(format!("runtime: {e}")));
    }
}

async fn serve(
    spec: Spec,
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
    let mut bound = Vec::new();
    for (name, addr) in &spec.listeners {
        let opts = ListenerOpts::new()
            .reuse_port(true)
            .reuse_addr(true)
            .backlog(4096);
        match TcpListener::bind_with_config(addr, &opts) {
            Ok(l) => bound.push((name.clone(), l)),
            Err(e) => {
                let _ = started.send(Err(format!("listener `{name}` on {addr}: {e}")));
                return;
            }
        }
    }
    for (name, l) in bound {
        monoio::spawn(accept_loop(worker.clone(), name, l));
    }
    monoio::spawn(housekeeping(worker.clone()));
    let _ = started.send(Ok(chosen));

    while let Ok(cmd) = rx.recv_async().await {
        match cmd {
            Command::Prepare(snap, reply) => {
                let cur = worker.state();
                let res = CoreState::build(&snap, worker.index, &worker.registry, Some(&cur))
                    .map(|s| worker.prepare(s))
                    .map_err(|e| e.to_string());
                let _ = reply.send(res);
            }
            Command::Commit => {
                worker.commit();
            }
            Command::Abort => worker.abort(),
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

async fn accept_loop(worker: Rc<Worker>, name: Rc<str>, listener: TcpListener) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = worker.drained() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                monoio::spawn(weir_proxy::serve(
                    worker.clone(),
                    name.clone(),
                    stream,
                    peer,
                ));
            }
            Err(e) => {
                // Out of descriptors or a transient error: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Per-core chores on a slow tick: close expired idle upstream connections, flush the access log.
async fn housekeeping(worker: Rc<Worker>) {
    let mut ticks = 0u64;
    loop {
        monoio::time::sleep(Duration::from_millis(100)).await;
        worker.flush_log();
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
