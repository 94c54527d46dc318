//! `weir`: the data plane binary.
//!
//! `weir` with no arguments serves the bundled quickstart config (listener 127.0.0.1:8080, admin
//! 127.0.0.1:9901). `weir --config FILE` serves a YAML config; SIGHUP reloads it (prepare on every
//! core, commit only if all prepared), SIGTERM/SIGINT drain and exit. `weir --check --config FILE`
//! validates a config and exits.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use weir_config::Driver;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "weir",
    version,
    about = "Weir: an AI-native, thread-per-core API gateway"
)]
struct Cli {
    /// YAML config; without it the bundled quickstart config is served.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
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

fn load(path: &Option<PathBuf>) -> Result<weir_config::Config, weir_config::Error> {
    match path {
        Some(p) => weir_config::load_file(p),
        None => weir_config::parse(weir_config::QUICKSTART, "<quickstart>"),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log_level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();

    let config = match load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if cli.check {
        println!("config OK");
        return Ok(());
    }
    let opts = weir_runtime::Options {
        workers: cli.workers,
        driver: cli.driver,
    };
    let gw = weir_runtime::Gateway::start(config, &opts).context("starting the gateway")?;
    for (name, addr) in &gw.listeners {
        tracing::info!(listener = %name, address = %addr, "listening");
        eprintln!("weir: listener {name} on {addr}");
    }
    if let Some(a) = gw.admin_addr {
        eprintln!("weir: admin on {a}");
    }
    eprintln!("weir: ready, driver {}", gw.driver.as_str());

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    for sig in signals.forever() {
        match sig {
            SIGHUP => match load(&cli.config) {
                Ok(c) => match gw.reload(c) {
                    Ok(g) => tracing::info!(generation = g, "config reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "reload refused; still serving generation {}", gw.generation())
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "reload refused: invalid config; still serving generation {}", gw.generation())
                }
            },
            _ => {
                tracing::info!("shutting down: draining in-flight requests");
                break;
            }
        }
    }
    gw.shutdown();
    eprintln!("weir: stopped");
    Ok(())
}
