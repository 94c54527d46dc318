//! `weirctl quota`: remaining quota and spend, reset and top-up, through a data plane's admin
//! listener (`/quota`, served by `weir-quota`; quota state lives in the data plane, not the
//! daemon).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::client::Failure;

/// What `weirctl quota` does.
#[derive(Subcommand, Debug)]
pub enum QuotaCmd {
    /// Each limit's keys in their current window: limit, spent, remaining, reset.
    Show {
        /// Only this limit.
        #[arg(long)]
        limit: Option<String>,
        /// Only keys of this consumer.
        #[arg(long)]
        consumer: Option<String>,
        /// Only this key (`consumer=alice,model=gpt-4o`).
        #[arg(long)]
        key: Option<String>,
    },
    /// Start a key's current window afresh (every key's without --key).
    Reset {
        /// The limit.
        limit: String,
        /// The key (`consumer=alice`); "" for a limit without key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Add requests, tokens or money (a budget's currency) to a key's current window.
    Topup {
        /// The limit.
        limit: String,
        /// How much.
        amount: f64,
        /// The key (`consumer=alice`); "" for a limit without key.
        #[arg(long, default_value = "")]
        key: String,
    },
}

/// Runs one `weirctl quota` command against `admin`.
pub fn run(admin: &str, json: bool, cmd: &QuotaCmd) -> Result<(), Failure> {
    let mut q = Vec::new();
    let mut add = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!("{name}={}", encode(v)));
        }
    };
    let (method, path) = match cmd {
        QuotaCmd::Show {
            limit,
            consumer,
            key,
        } => {
            add("limit", limit);
            add("consumer", consumer);
            add("key", key);
            ("GET", "/quota")
        }
        QuotaCmd::Reset { limit, key } => {
            add("limit", &Some(limit.clone()));
            add("key", key);
            ("POST", "/quota/reset")
        }
        QuotaCmd::Topup { limit, amount, key } => {
            add("limit", &Some(limit.clone()));
            add("key", &Some(key.clone()));
            q.push(format!("amount={amount}"));
            ("POST", "/quota/topup")
        }
    };
    let target = if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", q.join("&"))
    };
    let (status, v) = call(admin, method, &target)?;
    if status != 200 {
        let message = v["error"].as_str().unwrap_or("error").to_owned();
        return Err(Failure::Server {
            status,
            message: format!("{method} {path} on {admin}: {message}"),
            body: v,
        });
    }
    let out = if json {
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    } else {
        match cmd {
            QuotaCmd::Show { .. } => table(&v),
            QuotaCmd::Reset { limit, .. } => {
                let n = v["reset"].as_array().map_or(0, Vec::len);
                format!("{limit}: {n} key(s) reset")
            }
            QuotaCmd::Topup { limit, key, .. } => {
                let e = &v["entry"];
                format!(
                    "{limit} {key}: limit {} this window, remaining {}",
                    e["limit"], e["remaining"]
                )
            }
        }
    };
    println!("{out}");
    Ok(())
}

/// LIMIT, KEY, SPENT/LIMIT, REMAINING, REQUESTS, RESET.
fn table(v: &Value) -> String {
    let mut rows = vec![[
        "LIMIT".to_owned(),
        "UNIT".to_owned(),
        "KEY".to_owned(),
        "SPENT".to_owned(),
        "LIMIT".to_owned(),
        "REMAINING".to_owned(),
        "REQUESTS".to_owned(),
        "RESET IN".to_owned(),
    ]];
    for l in v["limits"].as_array().into_iter().flatten() {
        let unit = l["unit"].as_str().unwrap_or("");
        let name = format!(
            "{} ({}/{}{})",
            l["name"].as_str().unwrap_or(""),
            l["limit"],
            l["per"].as_str().unwrap_or(""),
            if l["scope"] == "cluster" {
                ", cluster"
            } else {
                ""
            }
        );
        let keys = l["keys"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if keys.is_empty() {
            rows.push([
                name.clone(),
                unit.to_owned(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for k in keys {
            let secs = k["reset_in_ms"].as_u64().unwrap_or(0).div_ceil(1000);
            rows.push([
                name.clone(),
                unit.to_owned(),
                k["key"].as_str().unwrap_or("").to_owned(),
                k["spent"].to_string(),
                k["limit"].to_string(),
                k["remaining"].to_string(),
                k["requests"].to_string(),
                format!("{secs}s"),
            ]);
        }
    }
    let mut width = [0; 8];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = width[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request to the admin listener: its status and JSON body.
fn call(admin: &str, method: &str, target: &str) -> Result<(u16, Value), Failure> {
    let fail = |reason: String| {
        Failure::Other(format!("cannot reach the admin listener {admin}: {reason}"))
    };
    let addr = admin
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| fail(e.to_string()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: weir-admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| fail(e.to_string()))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Failure::Other("the admin listener's answer has no head".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let v: Value = serde_json::from_slice(&raw[split + 4..]).map_err(|_| {
        Failure::Other(format!(
            "{method} {target} on {admin}: status {status}, not JSON (is this a weir admin listener?)"
        ))
    })?;
    Ok((status, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_encoding() {
        let v = serde_json::json!({"limits": [
            {"name": "tpm", "unit": "tokens", "per": "minute", "scope": "local", "limit": 1000,
             "keys": [{"key": "consumer=alice", "spent": 120, "limit": 1000, "remaining": 800,
                       "requests": 3, "reset_in_ms": 1500}]},
            {"name": "idle", "unit": "requests", "per": "second", "scope": "cluster", "limit": 5, "keys": []}
        ]});
        let t = table(&v);
        let row: Vec<&str> = t.lines().nth(1).unwrap_or("").split_whitespace().collect();
        assert_eq!(
            row,
            [
                "tpm",
                "(1000/minute)",
                "tokens",
                "consumer=alice",
                "120",
                "1000",
                "800",
                "3",
                "2s"
            ],
            "{t}"
        );
        assert!(t.contains("idle (5/second, cluster)"), "{t}");
        assert!(t.lines().next().is_some_and(|l| l.starts_with("LIMIT")));
        assert_eq!(encode("consumer=a,b c"), "consumer%3Da%2Cb%20c");
    }
}
