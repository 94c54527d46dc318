//! `weir-protocol`: how `weir-control` and the `weir` data planes talk over the daemon's Unix socket.
//!
//! The socket serves the admin API (HTTP/1.1 + JSON). A data plane *attaches* with an HTTP upgrade:
//!
//! ```text
//! → POST /v1/planes/attach HTTP/1.1        ← HTTP/1.1 101 Switching Protocols
//!   Host: weir-control                        Upgrade: weir-plane/1
//!   Upgrade: weir-plane/1                     Connection: upgrade
//!   Connection: upgrade
//! ```
//!
//! after which both sides exchange [frames](write_frame): one JSON object per line. The plane says
//! [`PlaneMessage::Hello`] first (with the generation it already runs); the daemon sends the current
//! [`DaemonMessage::Snapshot`] when it differs, and every accepted generation after that; the plane
//! answers each snapshot with [`PlaneMessage::Ack`] or [`PlaneMessage::Nack`] and a reason.
//! [`DaemonMessage::Ping`] / [`PlaneMessage::Pong`] keep a silent link honest.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// The `Upgrade` token of the plane link.
pub const UPGRADE: &str = "weir-plane/1";
/// The path a plane attaches on.
pub const ATTACH_PATH: &str = "/v1/planes/attach";
/// Largest frame accepted (a config snapshot with many routes stays far below).
pub const MAX_FRAME: usize = 64 << 20;

/// What a data plane sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlaneMessage {
    /// First frame: who the plane is and what it runs.
    Hello {
        /// Stable id of the plane (host name and listener set, or configured).
        plane_id: String,
        /// Process id.
        pid: u32,
        /// `weir` version.
        version: String,
        /// The generation it serves now (0: none).
        generation: u64,
    },
    /// The generation is applied on every core.
    Ack {
        /// Generation.
        generation: u64,
    },
    /// The generation was refused; every core stays on the previous one.
    Nack {
        /// Generation.
        generation: u64,
        /// Why.
        reason: String,
    },
    /// Answer to a ping.
    Pong,
}

/// What the daemon sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DaemonMessage {
    /// A generation to apply.
    Snapshot {
        /// Generation number.
        generation: u64,
        /// The validated config.
        config: Box<weir_config::Config>,
    },
    /// Liveness check.
    Ping,
}

/// Errors of the frame codec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The link failed.
    #[error("link: {0}")]
    Io(#[from] io::Error),
    /// A frame was not valid JSON for the protocol.
    #[error("bad frame: {0}")]
    Json(#[from] serde_json::Error),
    /// A frame was larger than [`MAX_FRAME`].
    #[error("frame larger than {MAX_FRAME} bytes")]
    TooLarge,
    /// The peer closed the link.
    #[error("link closed")]
    Closed,
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes one frame and flushes.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; [`Error::Closed`] at end of stream.
pub fn read_frame<R: BufRead, T: for<'de> Deserialize<'de>>(r: &mut R) -> Result<T> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(Error::Closed);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                break;
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                r.consume(n);
            }
        }
        if line.len() > MAX_FRAME {
            return Err(Error::TooLarge);
        }
    }
    Ok(serde_json::from_slice(&line)?)
}

/// Field names whose values are secrets: never echoed by the admin API, never logged.
pub const SECRET_FIELDS: [&str; 7] = [
    "api_key", "api_keys", "key", "keys", "secret", "token", "password",
];

/// Masks secret values in a JSON document in place: `sk-abcdef123456` becomes `sk-a…3456`
/// (short values become `****`).
pub fn mask_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let secret = SECRET_FIELDS.iter().any(|s| k.eq_ignore_ascii_case(s))
                    || k.to_ascii_lowercase().ends_with("_key")
                    || k.to_ascii_lowercase().ends_with("_secret");
                if secret {
                    mask_value(val);
                } else {
                    mask_secrets(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

fn mask_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = mask(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_value),
        serde_json::Value::Object(map) => map.values_mut().for_each(mask_value),
        _ => {}
    }
}

/// The masked form of a secret.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 12 {
        "****".into()
    } else {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &PlaneMessage::Nack {
                generation: 7,
                reason: "no".into(),
            },
        )
        .expect("write");
        write_frame(&mut buf, &PlaneMessage::Pong).expect("write");
        let mut r = io::BufReader::new(&buf[..]);
        let a: PlaneMessage = read_frame(&mut r).expect("frame");
        assert_eq!(
            a,
            PlaneMessage::Nack {
                generation: 7,
                reason: "no".into()
            }
        );
        assert_eq!(
            read_frame::<_, PlaneMessage>(&mut r).expect("frame"),
            PlaneMessage::Pong
        );
        assert!(matches!(
            read_frame::<_, PlaneMessage>(&mut r),
            Err(Error::Closed)
        ));
    }

    #[test]
    fn snapshot_carries_config() {
        let cfg = weir_config::parse(weir_config::QUICKSTART, "q").expect("quickstart");
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &DaemonMessage::Snapshot {
                generation: 3,
                config: Box::new(cfg.clone()),
            },
        )
        .expect("write");
        let got: DaemonMessage = read_frame(&mut io::BufReader::new(&buf[..])).expect("frame");
        assert_eq!(
            got,
            DaemonMessage::Snapshot {
                generation: 3,
                config: Box::new(cfg)
            }
        );
    }

    #[test]
    fn secrets_are_masked() {
        let mut v = serde_json::json!({
            "providers": [{"name": "openai", "api_key": "sk-abcdefghijklmnop", "api_keys": ["short"]}],
            "nested": {"client_secret": "0123456789abcdef", "plain": "visible"}
        });
        mask_secrets(&mut v);
        assert_eq!(v["providers"][0]["api_key"], "sk-a…mnop");
        assert_eq!(v["providers"][0]["api_keys"][0], "****");
        assert_eq!(v["nested"]["client_secret"], "0123…cdef");
        assert_eq!(v["nested"]["plain"], "visible");
    }
}
