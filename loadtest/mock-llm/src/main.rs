//! `weir-mock-llm`: the fast mock upstream of Weir's integration tests and load harness.
//!
//! It plays two parts. For the proxy benchmarks it is the upstream that answers `GET /` with `ok`
//! as cheaply as nginx does (a prebuilt response, one read and one write per batch of pipelined
//! requests, no allocation per request). For the tests it is a misbehaving and LLM-shaped peer:
//! echo and inspection endpoints, chunked and SSE streams, delays, hangs, flaky and settable
//! statuses, counters at `/stats`, and the wire formats of every LLM provider the gateway speaks
//! (OpenAI and compatibles, Azure OpenAI, Anthropic, Gemini, Vertex AI, Bedrock, Cohere), with
//! deterministic replies, scripted failures (`/mock/script`) and a request log
//! (`/mock/requests`). `loadtest/mock-llm/README.md` lists every endpoint.
//!
//! It runs like the gateway: one monoio thread per `--workers`, each with its own `SO_REUSEPORT`
//! listener, on the io_uring or the epoll driver (`--driver`). With `--tls-cert`/`--tls-key` it
//! serves HTTPS instead ([`tls`]), the peer of the gateway's TLS towards upstreams. Once every worker listens it
//! prints one line, `listening ADDR`, so a test that passed port 0 can read the port it got.
//!
//! Layout: [`http`] (request parsing, chunked decoding, response heads), [`routes`] (the
//! endpoints), [`conn`] (the connection loop and streaming), [`llm`] (the provider formats),
//! [`script`] (scripted behaviour), [`reqlog`] (the request log), [`state`] (process-wide
//! counters and switches).

#![forbid(unsafe_code)]

mod conn;
mod http;
mod llm;
mod reqlog;
mod routes;
mod script;
mod state;
mod tls;

use anyhow::{anyhow, Context as _};
use clap::{Parser, ValueEnum};
use monoio::net::{ListenerOpts, TcpListener};
use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};
use routes::Shared;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: weir_alloc::WeirAlloc = weir_alloc::WeirAlloc;

/// Mock upstream for Weir's tests and benchmarks (plain HTTP endpoints and LLM provider APIs).
#[derive(Debug, Parser)]
#[command(name = "weir-mock-llm", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Worker threads, each with its own SO_REUSEPORT listener and runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// I/O driver: io_uring, epoll, or io_uring when the kernel allows it.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    driver: Driver,
    /// Adds `x-mock-id: NAME` to every response (tells instances apart behind a balancer).
    #[arg(long)]
    id: Option<String>,
    /// Listen backlog of each worker.
    #[arg(long, default_value_t = 4096)]
    backlog: i32,
    /// Provider endpoints: delay before the first byte of a response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Provider endpoints: delay between streamed tokens, in milliseconds.
    #[arg(long, default_value_t = 0)]
    token_interval_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Driver {
    Uring,
    Epoll,
    Auto,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.workers == 0 {
        return Err(anyhow!("--workers must be at least 1"));
    }
    // Lives as long as the process; every connection of every worker reads it.
    let mut shared = Shared::new(args.id.clone());
    shared.llm = llm::Defaults {
        ttft: Duration::from_millis(args.ttft_ms),
        token_interval: Duration::from_millis(args.token_interval_ms),
    };
    let shared: &'static Shared = Box::leak(Box::new(shared));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };

    let (tx, rx) = mpsc::channel::<anyhow::Result<SocketAddr>>();
    let mut addr = args.listen;
    let mut threads = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let tx = tx.clone();
        let (driver, backlog, tls) = (args.driver, args.backlog, tls.clone());
        let thread = std::thread::Builder::new()
            .name(format!("mock-worker-{i}"))
            .spawn(move || worker(addr, driver, backlog, tls, shared, tx))
            .context("spawning a worker thread")?;
        threads.push(thread);
        // With port 0 the first worker picks the port and the others join it.
        let bound = rx
            .recv()
            .context("worker exited before binding")?
            .with_context(|| format!("worker {i} cannot listen on {addr}"))?;
        addr = bound;
    }
    drop(tx);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {addr}")?;
    stdout.flush()?;
    drop(stdout);

    for thread in threads {
        if thread.join().is_err() {
            return Err(anyhow!("a worker thread panicked"));
        }
    }
    // Workers only return after reporting a bind error, which `recv` above turned into an exit.
    Err(rx
        .try_recv()
        .ok()
        .and_then(Result::err)
        .unwrap_or_else(|| anyhow!("workers stopped")))
}

/// One worker thread: its runtime on the chosen driver, serving its own listener.
fn worker(
    addr: SocketAddr,
    driver: Driver,
    backlog: i32,
    tls: Option<monoio_rustls::TlsAcceptor>,
    shared: &'static Shared,
    ready: mpsc::Sender<anyhow::Result<SocketAddr>>,
) {
    let serve = accept_loop(addr, backlog, tls, shared, ready.clone());
    let built = match driver {
        Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve)),
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve)),
        Driver::Auto => RuntimeBuilder::<FusionDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve)),
    };
    if let Err(e) = built {
        let _ = ready.send(Err(
            anyhow!(e).context(format!("building the {driver:?} runtime"))
        ));
    }
}

async fn accept_loop(
    addr: SocketAddr,
    backlog: i32,
    tls: Option<monoio_rustls::TlsAcceptor>,
    shared: &'static Shared,
    ready: mpsc::Sender<anyhow::Result<SocketAddr>>,
) {
    let opts = ListenerOpts::new().reuse_port(true).backlog(backlog);
    let listener = match TcpListener::bind_with_config(addr, &opts).and_then(|l| {
        let local = l.local_addr()?;
        Ok((l, local))
    }) {
        Ok((listener, local)) => {
            let _ = ready.send(Ok(local));
            listener
        }
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    drop(ready);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match &tls {
                None => {
                    monoio::spawn(conn::serve(stream, shared));
                }
                Some(acceptor) => {
                    monoio::spawn(tls::serve(stream, acceptor.clone(), shared));
                }
            },
            Err(e) => {
                // Out of descriptors and the like: say so, back off a little, keep serving.
                eprintln!("weir-mock-llm: accept: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
