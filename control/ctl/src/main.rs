//! `weirctl`: the command-line client of `weir-control`'s admin API (HTTP/1.1 + JSON over its Unix
//! socket). Human-readable output by default, the daemon's JSON with `-o json`.
//!
//! Exit codes: 0 done; 1 the daemon said no (an invalid config, an unknown generation), or a data
//! plane NACKed the change, or a local error (a file that cannot be read); 2 the socket cannot be
//! reached (absent, refused, permission denied); 64 a usage error.
#![forbid(unsafe_code)]

mod client;
mod keys;
mod quota;
mod render;
mod top;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use client::{encode, Client, Failure};

#[derive(Parser, Debug)]
#[command(
    name = "weirctl",
    version,
    about = "Control a Weir gateway through weir-control"
)]
struct Cli {
    /// The daemon's admin socket.
    #[arg(
        long,
        global = true,
        env = "WEIR_CONTROL_SOCKET",
        default_value = "/run/weir/control.sock"
    )]
    socket: PathBuf,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "text"
    )]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The current generation, the config file's state, the attached data planes.
    Status,
    /// The running config (secrets masked): a summary, or all of it with --yaml.
    Get {
        /// Print the whole config as YAML.
        #[arg(long)]
        yaml: bool,
    },
    /// Apply a config file (YAML or JSON) as the next generation.
    Apply {
        /// The config file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Wait this many seconds for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
        /// A comment kept with the generation.
        #[arg(short = 'm', long)]
        comment: Option<String>,
    },
    /// Check a config file without applying it.
    Validate {
        /// The config file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// What changed between two generations (default: the previous one and the current one).
    Diff {
        /// From this generation.
        from: Option<u64>,
        /// To this generation.
        to: Option<u64>,
    },
    /// The kept generations, newest first.
    History,
    /// Make an earlier generation's config the next generation.
    Rollback {
        /// The generation to go back to.
        generation: u64,
        /// Wait this many seconds for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
        /// A comment kept with the generation.
        #[arg(short = 'm', long)]
        comment: Option<String>,
    },
    /// The data planes: the generation each runs and its last ACK/NACK.
    Planes,
    /// Virtual keys of consumers: create (the secret is printed once), list, rotate, expire,
    /// revoke.
    Key {
        #[command(subcommand)]
        cmd: keys::KeyCmd,
    },
    /// Consumers: list, get, put, delete.
    Consumer {
        #[command(subcommand)]
        cmd: keys::ConsumerCmd,
    },
    /// Print the Argon2id hash of a password read on stdin (for a consumer's `basic_auth`).
    HashPassword,
    /// Quotas of a data plane (its admin listener, not the daemon's socket): remaining quota and
    /// spend per key, reset, top-up.
    Quota {
        /// The data plane's admin listener.
        #[arg(long, env = "WEIR_ADMIN", default_value = "127.0.0.1:9901")]
        admin: String,
        #[command(subcommand)]
        cmd: quota::QuotaCmd,
    },
    /// Live LLM requests, tokens and spend per consumer and model, read from a data plane's
    /// admin listener (not from the daemon's socket).
    Top {
        /// The data plane's admin listener.
        #[arg(long, env = "WEIR_ADMIN", default_value = "127.0.0.1:9901")]
        admin: String,
        /// Print one table and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            report(&cli, &f);
            ExitCode::from(f.exit_code())
        }
    }
}

/// Prints a failure: the message on stderr, with an invalid config's problems one per line; with
/// `-o json`, the daemon's error body on stdout as well.
fn report(cli: &Cli, f: &Failure) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "weirctl: {f}");
    if let Failure::Server { body, .. } = f {
        if cli.output == Output::Json {
            println!("{}", pretty(body));
        }
        let problems = &body["error"]["problems"];
        if problems.as_array().is_some_and(|p| !p.is_empty()) {
            let _ = write!(
                err,
                "{}",
                render::problems(&source_name(&cli.command), problems)
            );
        }
    }
}

/// What problems are reported against: the file given, or the generation.
fn source_name(cmd: &Command) -> String {
    match cmd {
        Command::Apply { file, .. } | Command::Validate { file } => file.display().to_string(),
        Command::Rollback { generation, .. } => format!("generation {generation}"),
        _ => "config".into(),
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    if let Command::Top {
        admin,
        once,
        interval,
    } = &cli.command
    {
        if !interval.is_finite() || *interval < 0.1 {
            return Err(Failure::Other(format!(
                "--interval {interval}: give at least 0.1 seconds"
            )));
        }
        return top::run(admin, *once, Duration::from_secs_f64(*interval));
    }
    if let Command::Quota { admin, cmd } = &cli.command {
        return quota::run(admin, cli.output == Output::Json, cmd);
    }
    let wait = match &cli.command {
        Command::Apply { wait, .. } | Command::Rollback { wait, .. } => *wait,
        _ => 0.0,
    };
    if !wait.is_finite() || wait < 0.0 {
        return Err(Failure::Other(format!(
            "--wait {wait}: give a number of seconds"
        )));
    }
    let client = Client::new(&cli.socket, Duration::from_secs_f64(wait.min(300.0) + 30.0));
    let json = cli.output == Output::Json;
    match &cli.command {
        Command::Status => {
            let v = client.call("GET", "/v1/status", None, b"")?.json()?;
            emit(json, &v, render::status)
        }
        Command::Get { yaml } => {
            if *yaml && !json {
                let r = client.call("GET", "/v1/config?format=yaml", None, b"")?;
                print!("{}", String::from_utf8_lossy(&r.body));
                return Ok(());
            }
            let v = client.call("GET", "/v1/config", None, b"")?.json()?;
            emit(json, &v, render::config_summary)
        }
        Command::Apply {
            file,
            wait,
            comment,
        } => {
            let (ct, body) = read_config(file)?;
            let path = change_path("/v1/config", *wait, comment.as_deref());
            let v = client.call("PUT", &path, Some(ct), &body)?.json()?;
            changed(json, &v, &format!("applied {}", file.display()))
        }
        Command::Validate { file } => {
            let (ct, body) = read_config(file)?;
            let v = client
                .call("POST", "/v1/validate", Some(ct), &body)?
                .json()?;
            emit(json, &v, |_| format!("{}: valid\n", file.display()))
        }
        Command::Diff { from, to } => {
            let mut q = Vec::new();
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            let path = if q.is_empty() {
                "/v1/diff".to_string()
            } else {
                format!("/v1/diff?{}", q.join("&"))
            };
            let v = client.call("GET", &path, None, b"")?.json()?;
            emit(json, &v, |v| match v["diff"].as_str() {
                Some(d) if !d.is_empty() => d.to_string(),
                _ => format!(
                    "no difference between generations {} and {}\n",
                    render::cell(&v["from"]),
                    render::cell(&v["to"])
                ),
            })
        }
        Command::History => {
            let v = client.call("GET", "/v1/generations", None, b"")?.json()?;
            emit(json, &v, render::history)
        }
        Command::Rollback {
            generation,
            wait,
            comment,
        } => {
            let path = change_path(
                &format!("/v1/rollback/{generation}"),
                *wait,
                comment.as_deref(),
            );
            let v = client.call("POST", &path, None, b"")?.json()?;
            changed(json, &v, &format!("rolled back to generation {generation}"))
        }
        Command::Planes => {
            let v = client.call("GET", "/v1/planes", None, b"")?.json()?;
            emit(json, &v, render::planes)
        }
        Command::Key { cmd } => keys::run_key(&cli.socket, json, cmd),
        Command::Consumer { cmd } => keys::run_consumer(&cli.socket, json, cmd),
        Command::HashPassword => keys::hash_password(),
        Command::Top { .. } | Command::Quota { .. } => Ok(()),
    }
}

fn change_path(base: &str, wait: f64, comment: Option<&str>) -> String {
    let mut q = Vec::new();
    if wait > 0.0 {
        q.push(format!("wait={wait}"));
    }
    if let Some(c) = comment {
        q.push(format!("comment={}", encode(c)));
    }
    if q.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", q.join("&"))
    }
}

/// The answer of a change; a NACK from any plane makes the command fail (the daemon accepted the
/// generation, but it does not run everywhere).
fn changed(json: bool, v: &Value, what: &str) -> Result<(), Failure> {
    emit(json, v, |v| {
        let mut out = if v["changed"] == true {
            format!("{what}: generation {}\n", render::cell(&v["generation"]))
        } else {
            format!(
                "{what}: no change, still generation {}\n",
                render::cell(&v["generation"])
            )
        };
        if v["planes"].is_array() {
            out.push_str(&render::outcomes(&v["planes"]));
        }
        out
    })?;
    let nacks: Vec<String> = v["planes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["result"] == "nack")
        .map(|p| render::cell(&p["plane_id"]))
        .collect();
    if !nacks.is_empty() {
        return Err(Failure::Other(format!(
            "generation {} was refused by {} plane(s): {}",
            render::cell(&v["generation"]),
            nacks.len(),
            nacks.join(", ")
        )));
    }
    Ok(())
}

fn emit(json: bool, v: &Value, text: impl FnOnce(&Value) -> String) -> Result<(), Failure> {
    let out = if json {
        format!("{}\n", pretty(v))
    } else {
        text(v)
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`weirctl history | head`) is not an error worth a message.
    let _ = stdout.write_all(out.as_bytes());
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The file's bytes and their content type (by extension: `.json` is JSON, anything else YAML).
fn read_config(file: &Path) -> Result<(&'static str, Vec<u8>), Failure> {
    let body = std::fs::read(file)
        .map_err(|e| Failure::Other(format!("cannot read {}: {e}", file.display())))?;
    let ct = match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => "application/json",
        _ => "application/yaml",
    };
    Ok((ct, body))
}
