//! `weir`: the data plane binary.
//!
//! - `weir` with no arguments serves the bundled quickstart config (listener 127.0.0.1:8080, admin
//!   127.0.0.1:9901); `weir --config FILE` serves a YAML file, with the control logic in-process:
//!   the file is watched, and a valid change (or `SIGHUP`) is applied on every core or on none.
//! - `weir --control SOCKET` takes its config from `weir-control` instead: it starts from the last
//!   snapshot saved in `--plane-state` (so a daemon that is down never stops traffic), attaches to
//!   the daemon, and applies every generation it is sent, answering ACK or NACK.
//! - `SIGTERM`/`SIGINT` drain and exit. `SIGUSR2` starts the binary found at the original path
//!   again with `--takeover`, which takes the listening sockets over `--upgrade-socket` and serves
//!   them; the old process then drains (binary upgrade without refusing a connection).
//! - Under systemd: `READY=1` once listeners are bound and the first snapshot is applied,
//!   `WATCHDOG=1` while every worker's loop turns, `MAINPID=` from a process that took over.

mod link;
mod notify;
mod upgrade;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use weir_config::{Config, Driver};
use weir_runtime::{Gateway, InheritedSocket};

#[global_allocator]
static GLOBAL: weir_alloc::WeirAlloc = weir_alloc::WeirAlloc;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "weir",
    version,
    about = "Weir: an AI-native, thread-per-core API gateway"
)]
struct Cli {
    /// YAML config served with in-process control (watched; SIGHUP re-reads it). Without it and
    /// without --control, the bundled quickstart config is served.
    #[arg(long, short = 'c', conflicts_with = "control")]
    config: Option<PathBuf>,
    /// Take the config from the weir-control daemon on this Unix socket.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Where a plane keeps its last good snapshot (with --control).
    #[arg(long, default_value = "/var/lib/weir/plane")]
    plane_state: PathBuf,
    /// This plane's name in `weirctl planes` (default: host name and process id).
    #[arg(long)]
    plane_id: Option<String>,
    /// Unix socket on which this process hands its listening sockets to a new one (binary
    /// upgrade). Default: $RUNTIME_DIRECTORY/upgrade.sock under systemd, else off.
    #[arg(long)]
    upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets of the process serving this upgrade socket, then let it drain.
    #[arg(long)]
    takeover: Option<PathBuf>,
    /// Worker threads, one per core (overrides the config; 0 = all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// I/O driver: uring, epoll or auto (overrides the config).
    #[arg(long, value_parser = parse_driver)]
    driver: Option<Driver>,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
    /// Log filter for diagnostics on stderr (e.g. `info`, `weir_proxy=debug`); RUST_LOG also works.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn parse_driver(s: &str) -> Result<Driver, String> {
    match s {
        "uring" | "io_uring" => Ok(Driver::Uring),
        "epoll" => Ok(Driver::Epoll),
        "auto" => Ok(Driver::Auto),
        _ => Err(format!("`{s}`: use uring, epoll or auto")),
    }
}

fn load(path: &Option<PathBuf>) -> Result<Config, weir_config::Error> {
    match path {
        Some(p) => weir_config::load_file(p),
        None => weir_config::parse(weir_config::QUICKSTART, "<quickstart>"),
    }
}

/// What the main thread reacts to.
enum Event {
    Signal(i32),
    // Boxed: a config is large, the other events are a word.
    Apply(Box<link::Apply>),
    FileChanged,
    Handover(UnixStream),
    HandedOver,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log_level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();

    if cli.check {
        match load(&cli.config) {
            Ok(_) => {
                println!("config OK");
                return Ok(());
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
    let opts = weir_runtime::Options {
        workers: cli.workers,
        driver: cli.driver,
    };
    let (events_tx, events) = mpsc::channel::<Event>();

    // Sockets of a process we take over, first: the old one keeps serving until we are ready.
    let (takeover, inherited): (Option<UnixStream>, Vec<InheritedSocket>) = match &cli.takeover {
        Some(p) => {
            let (conn, socks) = upgrade::take(p).context("taking the listening sockets over")?;
            eprintln!("weir: took over {} listening sockets", socks.len());
            (Some(conn), socks)
        }
        None => (None, Vec::new()),
    };

    let current = Arc::new(AtomicU64::new(0));
    let live = link::Live::default();
    let (gw, first_reply) = if let Some(socket) = &cli.control {
        let plane_id = cli.plane_id.clone().unwrap_or_else(default_plane_id);
        let saved = link::load(&cli.plane_state);
        if let Some(s) = &saved {
            current.store(s.generation, Relaxed);
        }
        {
            let (socket, dir, cur, live) = (
                socket.clone(),
                cli.plane_state.clone(),
                current.clone(),
                live.clone(),
            );
            let (apply_tx, apply_rx) = mpsc::channel::<link::Apply>();
            let tx = events_tx.clone();
            std::thread::Builder::new()
                .name("weir-link".into())
                .spawn(move || link::run(socket, plane_id, dir, cur, apply_tx, live))?;
            std::thread::Builder::new()
                .name("weir-link-fwd".into())
                .spawn(move || {
                    for a in apply_rx {
                        if tx.send(Event::Apply(Box::new(a))).is_err() {
                            return;
                        }
                    }
                })?;
        }
        match saved {
            Some(s) => {
                eprintln!(
                    "weir: starting from saved snapshot generation {}",
                    s.generation
                );
                let gw = Gateway::start(s.config, s.generation, &opts, inherited)
                    .context("starting the gateway")?;
                (gw, None)
            }
            None => {
                eprintln!(
                    "weir: no saved snapshot; waiting for the control daemon at {}",
                    socket.display()
                );
                let mut inherited = Some(inherited);
                loop {
                    match events.recv() {
                        Ok(Event::Apply(a)) => {
                            match Gateway::start(
                                a.config,
                                a.generation,
                                &opts,
                                inherited.take().unwrap_or_default(),
                            ) {
                                Ok(gw) => {
                                    current.store(a.generation, Relaxed);
                                    break (gw, Some(a.reply));
                                }
                                Err(e) => {
                                    let _ = a.reply.send(Err(e.to_string()));
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(_) => anyhow::bail!("control link thread ended"),
                    }
                }
            }
        }
    } else {
        let config = match load(&cli.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        current.store(1, Relaxed);
        (
            Gateway::start(config, 1, &opts, inherited).context("starting the gateway")?,
            None,
        )
    };
    if let Some(reply) = first_reply {
        let _ = reply.send(Ok(()));
    }
    for (name, addr) in &gw.listeners {
        tracing::info!(listener = %name, address = %addr, "listening");
        eprintln!("weir: listener {name} on {addr}");
    }
    if let Some(a) = gw.admin_addr {
        eprintln!("weir: admin on {a}");
    }
    // Installed before readiness is announced: a SIGUSR2 or SIGTERM sent as soon as `ready` is
    // seen must not meet the default action (which ends the process).
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        .context("installing signal handlers")?;
    if let Some(conn) = takeover {
        upgrade::ready(conn).context("telling the old process to drain")?;
        notify::notify(&format!("MAINPID={}", std::process::id()));
    }
    notify::notify("READY=1");
    eprintln!(
        "weir: ready, generation {}, driver {}",
        gw.generation(),
        gw.driver.as_str()
    );

    // Signals, the config file, hand-over requests and the watchdog feed the event loop.
    {
        let tx = events_tx.clone();
        std::thread::Builder::new()
            .name("weir-signals".into())
            .spawn(move || {
                for s in signals.forever() {
                    if tx.send(Event::Signal(s)).is_err() {
                        return;
                    }
                }
            })?;
    }
    if let (Some(path), None) = (&cli.config, &cli.control) {
        watch_file(path.clone(), events_tx.clone())?;
    }
    let upgrade_socket = cli.upgrade_socket.clone().or_else(|| {
        std::env::var_os("RUNTIME_DIRECTORY").map(|d| PathBuf::from(d).join("upgrade.sock"))
    });
    if let Some(path) = &upgrade_socket {
        // A successor replaces the socket file of the process it took over (still bound there).
        let l = upgrade::listen(path, cli.takeover.is_some())?;
        let tx = events_tx.clone();
        std::thread::Builder::new()
            .name("weir-upgrade".into())
            .spawn(move || {
                for c in l.incoming().flatten() {
                    if tx.send(Event::Handover(c)).is_err() {
                        return;
                    }
                }
            })?;
    }
    if let Some(every) = notify::watchdog_interval() {
        let registry = gw.registry.clone();
        std::thread::Builder::new()
            .name("weir-watchdog".into())
            .spawn(move || {
                let mut last: Vec<(usize, u64)> = Vec::new();
                loop {
                    std::thread::sleep(every);
                    let alive = registry.all_cores_turning(&mut last);
                    if alive {
                        notify::notify("WATCHDOG=1");
                    } else {
                        tracing::error!(
                            "a worker stopped turning its loop; withholding the watchdog ping"
                        );
                    }
                }
            })?;
    }

    let mut generation = gw.generation();
    while let Ok(ev) = events.recv() {
        match ev {
            Event::Signal(SIGHUP) | Event::FileChanged => {
                if cli.control.is_some() {
                    tracing::info!("re-attaching to weir-control for its current generation");
                    live.resync();
                    continue;
                }
                match load(&cli.config) {
                    Ok(c) if c == *gw.config() => {}
                    Ok(c) => match gw.reload(c, generation + 1) {
                        Ok(g) => {
                            generation = g;
                            tracing::info!(generation = g, "config applied on every core");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reload refused; still serving generation {generation}")
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "reload refused: invalid config; still serving generation {generation}")
                    }
                }
            }
            Event::Apply(a) => {
                let res = gw.reload(a.config, a.generation).map_err(|e| e.to_string());
                match &res {
                    Ok(g) => {
                        generation = *g;
                        current.store(*g, Relaxed);
                        tracing::info!(generation = g, "generation applied on every core");
                    }
                    Err(e) => {
                        tracing::error!(generation = a.generation, error = %e, "generation refused (NACK); every core stays on {generation}")
                    }
                }
                let _ = a.reply.send(res.map(|_| ()));
            }
            Event::Signal(SIGUSR2) => match &upgrade_socket {
                Some(path) => {
                    if let Err(e) = spawn_successor(path) {
                        tracing::error!(error = %format!("{e:#}"), "binary upgrade failed to start; still serving");
                    }
                }
                None => tracing::error!("SIGUSR2: no --upgrade-socket, so no binary upgrade"),
            },
            Event::Handover(conn) => {
                let sockets = gw.export_listeners();
                tracing::info!(
                    sockets = sockets.len(),
                    "handing the listening sockets to a new process"
                );
                let tx = events_tx.clone();
                std::thread::spawn(move || match upgrade::serve_one(conn, sockets) {
                    Ok(()) => {
                        let _ = tx.send(Event::HandedOver);
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "hand-over failed; still serving")
                    }
                });
            }
            Event::HandedOver => {
                tracing::info!("the new process serves; draining");
                break;
            }
            Event::Signal(_) => {
                tracing::info!("shutting down: draining in-flight requests");
                break;
            }
        }
    }
    notify::notify("STOPPING=1");
    live.stop();
    gw.shutdown();
    eprintln!("weir: stopped");
    Ok(())
}

fn default_plane_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// Polls the file (editors replace files, so the path is stat'ed each time) and reports changes.
fn watch_file(path: PathBuf, tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            let stamp = |p: &PathBuf| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().ok(), m.len()))
            };
            let mut last = stamp(&path);
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = stamp(&path);
                if now != last {
                    last = now;
                    if tx.send(Event::FileChanged).is_err() {
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

/// Starts the binary at the path this process was started from (the upgraded file) with the same
/// arguments plus `--takeover`.
fn spawn_successor(socket: &std::path::Path) -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args.remove(0);
    let exe = if std::path::Path::new(&argv0).components().count() > 1 {
        PathBuf::from(&argv0)
    } else {
        let p = std::env::current_exe()?;
        let s = p.to_string_lossy();
        PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s).to_string())
    };
    let mut clean = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--takeover" {
            skip = true;
            continue;
        }
        if a.to_string_lossy().starts_with("--takeover=") {
            continue;
        }
        clean.push(a);
    }
    clean.push("--takeover".into());
    clean.push(socket.as_os_str().to_owned());
    let child = std::process::Command::new(&exe)
        .args(&clean)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    tracing::info!(pid = child.id(), exe = %exe.display(), "started the successor; it will take the sockets over");
    Ok(())
}
