//! `weirctl key ...`, `weirctl consumer ...` and `weirctl hash-password`: consumers and their
//! virtual keys through the daemon's `/v1/consumers` API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::client::{encode, Client, Failure};
use crate::render;

/// `weirctl key ...`.
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Make a key for a consumer; its secret is printed this once (only its SHA-256 is kept).
    Create {
        /// The consumer.
        consumer: String,
        /// The key's id (default: generated). Shown in logs and metrics, never the secret.
        #[arg(long)]
        id: Option<String>,
        /// Expire after this long (`30d` is not a unit: use hours, `720h`).
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Expire at this RFC 3339 time.
        #[arg(long)]
        expires_at: Option<String>,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
    /// A consumer's keys: id, state (active, expired, revoked), times.
    List {
        /// The consumer.
        consumer: String,
    },
    /// Replace a key by a new one; the old one stops at once, or after --grace.
    Rotate {
        /// The consumer.
        consumer: String,
        /// The key to replace.
        id: String,
        /// How long the old key keeps working (e.g. `1h`; default: it stops now).
        #[arg(long)]
        grace: Option<String>,
        /// The new key's id (default: generated).
        #[arg(long)]
        new_id: Option<String>,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
    /// Set when a key expires: now (default), --in DURATION, --at TIME, or --never.
    Expire {
        /// The consumer.
        consumer: String,
        /// The key.
        id: String,
        /// From now.
        #[arg(long = "in", conflicts_with_all = ["at", "never"])]
        within: Option<String>,
        /// At this RFC 3339 time.
        #[arg(long, conflicts_with = "never")]
        at: Option<String>,
        /// Never: clear the expiry.
        #[arg(long)]
        never: bool,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
    /// Revoke a key now, on every core of every data plane.
    Revoke {
        /// The consumer.
        consumer: String,
        /// The key.
        id: String,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
}

/// `weirctl consumer ...`.
#[derive(Subcommand, Debug)]
pub enum ConsumerCmd {
    /// Every consumer: active keys, users, subjects, HMAC keys, permissions.
    List,
    /// One consumer as YAML (secrets masked).
    Get {
        /// The consumer.
        name: String,
    },
    /// Create or replace a consumer from a YAML or JSON file (without `keys`: its keys stay).
    Put {
        /// The consumer.
        name: String,
        /// The file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
    /// Delete a consumer (refused while an `auth` filter names it).
    Delete {
        /// The consumer.
        name: String,
        /// Seconds to wait for the data planes' ACK/NACK (0: do not wait).
        #[arg(long, default_value_t = 5.0)]
        wait: f64,
    },
}

fn client(socket: &Path, wait: f64) -> Result<Client, Failure> {
    if !wait.is_finite() || wait < 0.0 {
        return Err(Failure::Other(format!(
            "--wait {wait}: give a number of seconds"
        )));
    }
    Ok(Client::new(
        socket,
        Duration::from_secs_f64(wait.min(300.0) + 30.0),
    ))
}

fn query(base: String, wait: f64, params: &[(&str, Option<&str>)]) -> String {
    let mut q: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if wait > 0.0 {
        q.push(format!("wait={wait}"));
    }
    if q.is_empty() {
        base
    } else {
        format!("{base}?{}", q.join("&"))
    }
}

fn path(consumer: &str) -> String {
    format!("/v1/consumers/{}", encode(consumer))
}

/// Runs a `key` command.
pub fn run_key(socket: &Path, json: bool, cmd: &KeyCmd) -> Result<(), Failure> {
    match cmd {
        KeyCmd::Create {
            consumer,
            id,
            expires_in,
            expires_at,
            wait,
        } => {
            let c = client(socket, *wait)?;
            let p = query(
                format!("{}/keys", path(consumer)),
                *wait,
                &[
                    ("id", id.as_deref()),
                    ("expires_in", expires_in.as_deref()),
                    ("expires_at", expires_at.as_deref()),
                ],
            );
            let v = c.call("POST", &p, None, b"")?.json()?;
            crate::changed(json, &v, &secret_line(&v))
        }
        KeyCmd::List { consumer } => {
            let c = client(socket, 0.0)?;
            let v = c
                .call("GET", &format!("{}/keys", path(consumer)), None, b"")?
                .json()?;
            crate::emit(json, &v, |v| {
                let rows: Vec<Vec<String>> = v["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        vec![
                            render::cell(&k["id"]),
                            render::cell(&k["state"]),
                            render::cell(&k["created_at"]),
                            render::cell(&k["expires_at"]),
                            render::cell(&k["revoked_at"]),
                        ]
                    })
                    .collect();
                render::table(&["ID", "STATE", "CREATED", "EXPIRES", "REVOKED"], &rows)
            })
        }
        KeyCmd::Rotate {
            consumer,
            id,
            grace,
            new_id,
            wait,
        } => {
            let c = client(socket, *wait)?;
            let p = query(
                format!("{}/keys/{}/rotate", path(consumer), encode(id)),
                *wait,
                &[("grace", grace.as_deref()), ("new_id", new_id.as_deref())],
            );
            let v = c.call("POST", &p, None, b"")?.json()?;
            crate::changed(json, &v, &secret_line(&v))
        }
        KeyCmd::Expire {
            consumer,
            id,
            within,
            at,
            never,
            wait,
        } => {
            let c = client(socket, *wait)?;
            let p = query(
                format!("{}/keys/{}/expire", path(consumer), encode(id)),
                *wait,
                &[
                    ("in", within.as_deref()),
                    ("at", at.as_deref()),
                    ("never", never.then_some("1")),
                ],
            );
            let v = c.call("POST", &p, None, b"")?.json()?;
            crate::changed(json, &v, &format!("key {id} of {consumer}: expiry set"))
        }
        KeyCmd::Revoke { consumer, id, wait } => {
            let c = client(socket, *wait)?;
            let p = query(
                format!("{}/keys/{}", path(consumer), encode(id)),
                *wait,
                &[],
            );
            let v = c.call("DELETE", &p, None, b"")?.json()?;
            crate::changed(json, &v, &format!("revoked key {id} of {consumer}"))
        }
    }
}

/// The first line of a key-making command: the id and the secret, which is not shown again.
fn secret_line(v: &Value) -> String {
    format!(
        "key {} of {} (store the secret now: it is not shown again)\n{}\n",
        render::cell(&v["key"]["id"]),
        render::cell(&v["consumer"]),
        render::cell(&v["key"]["secret"])
    )
    .trim_end()
    .to_string()
}

/// Runs a `consumer` command.
pub fn run_consumer(socket: &Path, json: bool, cmd: &ConsumerCmd) -> Result<(), Failure> {
    match cmd {
        ConsumerCmd::List => {
            let v = client(socket, 0.0)?
                .call("GET", "/v1/consumers", None, b"")?
                .json()?;
            crate::emit(json, &v, |v| {
                let join = |a: &Value| {
                    let items: Vec<String> = a
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(render::cell)
                        .collect();
                    if items.is_empty() {
                        "-".to_string()
                    } else {
                        items.join(",")
                    }
                };
                let rows: Vec<Vec<String>> = v["consumers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            render::cell(&c["name"]),
                            if c["disabled"] == true {
                                "disabled"
                            } else {
                                "enabled"
                            }
                            .into(),
                            render::cell(&c["keys"]),
                            join(&c["basic_auth"]),
                            join(&c["hmac"]),
                            join(&c["allow"]["models"]),
                        ]
                    })
                    .collect();
                render::table(&["NAME", "STATE", "KEYS", "USERS", "HMAC", "MODELS"], &rows)
            })
        }
        ConsumerCmd::Get { name } => {
            let c = client(socket, 0.0)?;
            if json {
                let v = c.call("GET", &path(name), None, b"")?.json()?;
                return crate::emit(true, &v, |_| String::new());
            }
            let r = c.call("GET", &format!("{}?format=yaml", path(name)), None, b"")?;
            print!("{}", String::from_utf8_lossy(&r.body));
            Ok(())
        }
        ConsumerCmd::Put { name, file, wait } => {
            let (ct, body) = crate::read_config(file)?;
            let c = client(socket, *wait)?;
            let v = c
                .call("PUT", &query(path(name), *wait, &[]), Some(ct), &body)?
                .json()?;
            crate::changed(json, &v, &format!("consumer {name}"))
        }
        ConsumerCmd::Delete { name, wait } => {
            let c = client(socket, *wait)?;
            let v = c
                .call("DELETE", &query(path(name), *wait, &[]), None, b"")?
                .json()?;
            crate::changed(json, &v, &format!("deleted consumer {name}"))
        }
    }
}

/// `weirctl hash-password`: reads a password (one line) on stdin, prints its Argon2id hash for
/// a consumer's `basic_auth` entry.
pub fn hash_password() -> Result<(), Failure> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use std::io::{BufRead, Read};
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Other(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(Failure::Other("give the password on stdin".into()));
    }
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| Failure::Other(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Failure::Other(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Failure::Other(e.to_string()))?;
    println!("{hash}");
    Ok(())
}
