//! `weirctl top`: requests, tokens and spend per consumer and model, read from a data plane's
//! admin listener (`GET /v1/ai/stats`, the totals since the process started). Live, it redraws
//! every interval with plain ANSI and shows rates over the last interval; `--once` prints one
//! table and exits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Failure;
use crate::render;

/// One consumer and model, totals since the data plane started.
#[derive(Debug, Clone, Default, PartialEq)]
struct Row {
    consumer: String,
    model: String,
    requests: u64,
    errors: u64,
    input: u64,
    output: u64,
    cached: u64,
    cost: Option<f64>,
}

/// Rows by consumer and model.
type ByKey = HashMap<(String, String), Row>;

/// Runs `weirctl top` against the admin listener at `admin`.
pub fn run(admin: &str, once: bool, interval: Duration) -> Result<(), Failure> {
    let mut prev: Option<(Instant, ByKey)> = None;
    loop {
        let rows = fetch(admin)?;
        let now = Instant::now();
        let rates = prev.as_ref().map(|(t, old)| {
            let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
            (secs, old)
        });
        let text = format!(
            "weir top  {admin}  {} consumer/model rows{}\n\n{}",
            rows.len(),
            if once {
                ""
            } else {
                "  (rates over the last interval; Ctrl-C quits)"
            },
            table(&rows, rates)
        );
        let mut out = std::io::stdout().lock();
        if once {
            let _ = out.write_all(text.as_bytes());
            return Ok(());
        }
        // Home, clear screen, draw.
        let _ = write!(out, "\x1b[H\x1b[2J{text}");
        let _ = out.flush();
        drop(out);
        prev = Some((
            now,
            rows.into_iter()
                .map(|r| ((r.consumer.clone(), r.model.clone()), r))
                .collect(),
        ));
        std::thread::sleep(interval);
    }
}

fn table(rows: &[Row], rates: Option<(f64, &ByKey)>) -> String {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        (b.input + b.output)
            .cmp(&(a.input + a.output))
            .then(b.requests.cmp(&a.requests))
            .then(a.consumer.cmp(&b.consumer))
            .then(a.model.cmp(&b.model))
    });
    let rate = |r: &Row, f: fn(&Row) -> u64| match rates {
        None => "-".to_string(),
        Some((secs, old)) => {
            let before = old.get(&(r.consumer.clone(), r.model.clone())).map_or(0, f);
            format!("{:.1}", f(r).saturating_sub(before) as f64 / secs)
        }
    };
    // Single calls cost fractions of a cent: six decimals.
    let spend = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.6}"));
    let mut total = Row {
        consumer: "TOTAL".into(),
        ..Row::default()
    };
    let mut cells: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    for r in &rows {
        total.requests += r.requests;
        total.errors += r.errors;
        total.input += r.input;
        total.output += r.output;
        total.cached += r.cached;
        if let Some(c) = r.cost {
            total.cost = Some(total.cost.unwrap_or(0.0) + c);
        }
        cells.push(vec![
            if r.consumer.is_empty() {
                "(none)".into()
            } else {
                r.consumer.clone()
            },
            r.model.clone(),
            r.requests.to_string(),
            rate(r, |r| r.requests),
            r.errors.to_string(),
            r.input.to_string(),
            r.output.to_string(),
            r.cached.to_string(),
            rate(r, |r| r.input + r.output),
            spend(r.cost),
        ]);
    }
    cells.push(vec![
        total.consumer,
        String::new(),
        total.requests.to_string(),
        String::new(),
        total.errors.to_string(),
        total.input.to_string(),
        total.output.to_string(),
        total.cached.to_string(),
        String::new(),
        spend(total.cost),
    ]);
    render::table(
        &[
            "CONSUMER", "MODEL", "REQUESTS", "REQ/S", "ERRORS", "INPUT", "OUTPUT", "CACHED",
            "TOK/S", "SPEND",
        ],
        &cells,
    )
}

/// `GET /v1/ai/stats` on the admin listener.
fn fetch(admin: &str) -> Result<Vec<Row>, Failure> {
    let connect = |reason: String| {
        Failure::Other(format!("cannot reach the admin listener {admin}: {reason}"))
    };
    let addr = admin
        .to_socket_addrs()
        .map_err(|e| connect(e.to_string()))?
        .next()
        .ok_or_else(|| connect("no address".into()))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| connect(e.to_string()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(b"GET /v1/ai/stats HTTP/1.1\r\nHost: weir-admin\r\nConnection: close\r\n\r\n")
        .map_err(|e| connect(e.to_string()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| connect(e.to_string()))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Failure::Other("the admin listener's answer has no head".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(Failure::Other(format!(
            "GET /v1/ai/stats on {admin}: status {status} (is this a weir admin listener?)"
        )));
    }
    let v: Value = serde_json::from_slice(&raw[split + 4..])
        .map_err(|e| Failure::Other(format!("GET /v1/ai/stats: not JSON: {e}")))?;
    Ok(parse(&v))
}

fn parse(v: &Value) -> Vec<Row> {
    let n = |r: &Value, k: &str| r[k].as_u64().unwrap_or(0);
    v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| Row {
            consumer: r["consumer"].as_str().unwrap_or("").to_owned(),
            model: r["model"].as_str().unwrap_or("").to_owned(),
            requests: n(r, "requests"),
            errors: n(r, "errors"),
            input: n(r, "input_tokens"),
            output: n(r, "output_tokens"),
            cached: n(r, "cached_tokens"),
            cost: r["cost"].as_f64(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sorts_by_tokens_and_totals() {
        let v: Value = serde_json::from_str(
            r#"{"rows":[
                {"consumer":"a","model":"m1","requests":1,"errors":0,"input_tokens":5,"output_tokens":5,"cached_tokens":0,"reasoning_tokens":0,"cost":null},
                {"consumer":"","model":"m2","requests":3,"errors":1,"input_tokens":50,"output_tokens":7,"cached_tokens":2,"reasoning_tokens":0,"cost":null}
            ]}"#,
        )
        .unwrap_or_default();
        let rows = parse(&v);
        let t = table(&rows, None);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CONSUMER"), "{t}");
        assert!(
            lines[1].starts_with("(none)") && lines[1].contains("m2"),
            "{t}"
        );
        assert!(lines[2].starts_with("a "), "{t}");
        let total: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(total, ["TOTAL", "4", "1", "55", "12", "2", "-"], "{t}");
    }
}
