//! `weir-control`: the control daemon binary. See the crate docs of `weir_control` and
//! `control/README.md`.
//!
//! Signals: SIGTERM/SIGINT remove the socket and exit 0; SIGHUP re-reads the config file now.
//! Under systemd (`Type=notify`) it sends `READY=1` once the socket answers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use weir_control::{Daemon, Options, Timing};

#[derive(Parser, Debug)]
#[command(
    name = "weir-control",
    version,
    about = "Weir's control daemon: versions, persists and pushes the gateway config"
)]
struct Cli {
    /// YAML config to load and watch (required unless the state dir already has generations).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The admin API's Unix socket (mode 0600).
    #[arg(long, default_value = "/run/weir/control.sock")]
    socket: PathBuf,
    /// Where generations are kept.
    #[arg(long, default_value = "/var/lib/weir")]
    state_dir: PathBuf,
    /// How many generations to keep.
    #[arg(long, default_value_t = 50)]
    keep: usize,
    /// How often the config file is looked at (`500ms`, `2s`).
    #[arg(long, default_value = "500ms", value_parser = duration)]
    watch_interval: Duration,
    /// How often attached planes are pinged.
    #[arg(long, default_value = "10s", value_parser = duration, hide = true)]
    ping_interval: Duration,
    /// A plane silent for this long is dropped.
    #[arg(long, default_value = "30s", value_parser = duration, hide = true)]
    ping_timeout: Duration,
    /// Log filter on stderr (`info`, `weir_control=debug`); RUST_LOG also works.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = weir_config::units::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log_level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-control: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    let opts = Options {
        config: cli.config,
        socket: cli.socket,
        state_dir: cli.state_dir,
        keep: cli.keep,
        watch_interval: cli.watch_interval,
        timing: Timing {
            ping_interval: cli.ping_interval,
            ping_timeout: cli.ping_timeout,
        },
    };
    let daemon = Daemon::start(opts)?;
    notify_systemd();
    for sig in signals.forever() {
        match sig {
            SIGHUP => daemon.reload(),
            _ => {
                tracing::info!(signal = sig, "stopping");
                daemon.stop();
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `sd_notify(READY=1)` without libsystemd: one datagram to `$NOTIFY_SOCKET`.
fn notify_systemd() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(b"READY=1", &addr)?;
        } else {
            sock.send_to(b"READY=1", &path)?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}
