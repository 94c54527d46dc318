//! The quota endpoints of the data plane's admin listener, and the `weir_quota_*` metrics.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /quota[?limit=NAME][&consumer=NAME][&key=KEY]` | every limit with its keys' current windows: limit, top-ups, granted, spent, remaining, reset |
//! | `POST /quota/reset?limit=NAME[&key=KEY]` | starts the key's window (every key's, without `key`) afresh |
//! | `POST /quota/topup?limit=NAME&key=KEY&amount=N` | adds `N` (requests, tokens or money) to the key's current window |
//!
//! Amounts of money are in the price table's currency. A key is written as the quota filter
//! builds it: `consumer=alice,model=gpt-4o` (`,`, `=` and `%` in values escaped as `%2C`, `%3D`,
//! `%25`); a limit without `key` has the one key `""`. What a process reports is its own view:
//! `spent` lags by what cores settled since they last visited the pool (at most a lease each),
//! and for a cluster limit `redis_used` is what Redis counted at this process's last fetch.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Value};

use crate::pool::{LimitShared, Unit, NANO};
use crate::window::now_ms;
use crate::SharedQuota;

/// The generation being served, published by the runtime when it starts and after each commit
/// (the admin thread answers from it).
static CURRENT: Mutex<Option<Arc<SharedQuota>>> = Mutex::new(None);

/// Makes `shared` the state the admin endpoints and metrics report.
pub fn publish(shared: &Arc<SharedQuota>) {
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Some(shared.clone());
}

fn current() -> Option<Arc<SharedQuota>> {
    CURRENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// [`handle`] on the published state.
pub fn serve(method: &[u8], target: &[u8]) -> Option<(u16, String)> {
    if !target.starts_with(b"/quota") {
        return None;
    }
    let shared = current().unwrap_or_default();
    handle(&shared, method, target)
}

/// [`render_metrics`] of the published state.
pub fn metrics(out: &mut String) {
    if let Some(shared) = current() {
        render_metrics(&shared, out);
    }
}

/// Answers an admin request under `/quota`: `(status, JSON body)`, or `None` for other paths.
pub fn handle(shared: &SharedQuota, method: &[u8], target: &[u8]) -> Option<(u16, String)> {
    let target = String::from_utf8_lossy(target);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q = parse_query(query);
    let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let answer = match (method, path) {
        (b"GET" | b"HEAD", "/quota") => Ok(show(shared, get("limit"), get("consumer"), get("key"))),
        (b"POST", "/quota/reset") => reset(shared, get("limit"), get("key")),
        (b"POST", "/quota/topup") => top_up(shared, get("limit"), get("key"), get("amount")),
        (_, "/quota" | "/quota/reset" | "/quota/topup") => Err((
            405,
            "use GET /quota, POST /quota/reset, POST /quota/topup".into(),
        )),
        _ => return None,
    };
    Some(match answer {
        Ok(v) => (200, format!("{v}\n")),
        Err((status, message)) => (status, format!("{}\n", json!({ "error": message }))),
    })
}

type Answer = Result<Value, (u16, String)>;

fn amount_json(unit: Unit, n: u64) -> Value {
    if unit == Unit::Money {
        json!(n as f64 / NANO)
    } else {
        json!(n)
    }
}

fn limit_json(l: &LimitShared, entries: Vec<Value>) -> Value {
    json!({
        "name": &*l.name,
        "unit": l.unit.as_str(),
        "per": l.def.per.to_string(),
        "scope": if l.link.is_some() { "cluster" } else { "local" },
        "limit": amount_json(l.unit, l.amount),
        "keys": entries,
    })
}

fn entry_json(l: &LimitShared, key: &str, e: &crate::pool::Entry, now: u64) -> Value {
    let (cap, left) = l.view(e);
    let u = l.unit;
    let mut v = json!({
        "key": key,
        "window_start": e.start,
        "window_end": e.end,
        "reset_in_ms": (e.end * 1000).saturating_sub(now),
        "limit": amount_json(u, cap),
        "top_up": amount_json(u, e.extra),
        "granted": amount_json(u, e.granted),
        "spent": amount_json(u, e.spent),
        "requests": e.requests,
        "remaining": amount_json(u, left),
    });
    if l.link.is_some() {
        v["redis_used"] = amount_json(u, e.remote_used);
        v["redis_exhausted"] = json!(e.exhausted);
    }
    v
}

/// Whether `key` has the part `consumer=<name>`.
fn has_consumer(key: &str, name: &str) -> bool {
    let mut want = String::from("consumer=");
    for c in name.chars() {
        match c {
            ',' => want.push_str("%2C"),
            '=' => want.push_str("%3D"),
            '%' => want.push_str("%25"),
            c => want.push(c),
        }
    }
    key.split(',').any(|p| p == want)
}

fn show(
    shared: &SharedQuota,
    limit: Option<&str>,
    consumer: Option<&str>,
    key: Option<&str>,
) -> Value {
    let now = now_ms();
    let mut names: Vec<&String> = shared.limits.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if limit.is_some_and(|want| want != name.as_str()) {
            continue;
        }
        let l = &shared.limits[name];
        let entries: Vec<Value> = l
            .entries(now / 1000)
            .into_iter()
            .filter(|v| key.is_none_or(|k| k == v.key))
            .filter(|v| consumer.is_none_or(|c| has_consumer(&v.key, c)))
            .map(|v| entry_json(l, &v.key, &v.entry, now))
            .collect();
        out.push(limit_json(l, entries));
    }
    json!({ "limits": out })
}

fn named<'a>(
    shared: &'a SharedQuota,
    limit: Option<&str>,
) -> Result<&'a LimitShared, (u16, String)> {
    let name = limit.ok_or((400, "name the limit: ?limit=NAME".to_string()))?;
    shared
        .limits
        .get(name)
        .map(|l| &**l)
        .ok_or((404, format!("no limit named `{name}`")))
}

fn reset(shared: &SharedQuota, limit: Option<&str>, key: Option<&str>) -> Answer {
    let l = named(shared, limit)?;
    let now = now_ms() / 1000;
    let keys = l.reset(key, now);
    if let Some(link) = &l.link {
        let (start, _) = crate::window::bounds(l.window, now);
        // Without a key: every key of the limit, wherever it was used (found in Redis).
        link.send_reset(l.name.clone(), start, key.map(str::to_owned));
    }
    Ok(json!({ "limit": &*l.name, "reset": keys }))
}

fn top_up(
    shared: &SharedQuota,
    limit: Option<&str>,
    key: Option<&str>,
    amount: Option<&str>,
) -> Answer {
    let l = named(shared, limit)?;
    let key = key.ok_or((
        400,
        "name the key: &key=KEY (\"\" for a limit without key)".to_string(),
    ))?;
    let amount: f64 = amount
        .and_then(|a| a.parse().ok())
        .filter(|a: &f64| a.is_finite() && *a > 0.0)
        .ok_or((400, "&amount= must be a positive number".to_string()))?;
    let units = if l.unit == Unit::Money {
        (amount * NANO).round() as u64
    } else {
        amount.round() as u64
    };
    let now = now_ms();
    let e = l.top_up(key, units, now / 1000);
    if let Some(link) = &l.link {
        link.send_top_up(l.name.clone(), (e.start, e.end), key.to_owned(), units);
    }
    Ok(json!({ "limit": &*l.name, "entry": entry_json(l, key, &e, now) }))
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Appends the `weir_quota_*` metrics (Prometheus text).
pub fn render_metrics(shared: &SharedQuota, out: &mut String) {
    let mut names: Vec<&String> = shared.limits.keys().collect();
    names.sort();
    let families: [(&str, &str, &str); 7] = [
        (
            "weir_quota_leases_total",
            "counter",
            "Leases cores took from a limit's pool.",
        ),
        (
            "weir_quota_rejections_total",
            "counter",
            "Requests a limit refused, by reason (exhausted, too_large, unavailable).",
        ),
        (
            "weir_quota_redis_commands_total",
            "counter",
            "Redis commands a cluster limit sent (one per leased chunk).",
        ),
        (
            "weir_quota_redis_errors_total",
            "counter",
            "Redis commands of a cluster limit that failed (unreachable, timeout, error).",
        ),
        (
            "weir_quota_fail_open_total",
            "counter",
            "Leases granted while Redis was unreachable or behind (on_redis_error: open).",
        ),
        (
            "weir_quota_redis_up",
            "gauge",
            "Whether a cluster limit's Redis answered its last command.",
        ),
        (
            "weir_quota_limit",
            "gauge",
            "A limit's amount per window (money in currency units).",
        ),
    ];
    for (family, kind, help) in families {
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for name in &names {
            let l = &shared.limits[name.as_str()];
            let s = &l.stats;
            let lbl = escape_label(name);
            match family {
                "weir_quota_leases_total" => {
                    let _ = writeln!(
                        out,
                        "{family}{{limit=\"{lbl}\"}} {}",
                        s.leases.load(Relaxed)
                    );
                }
                "weir_quota_rejections_total" => {
                    for (reason, c) in [
                        ("exhausted", &s.refused_exhausted),
                        ("too_large", &s.refused_too_large),
                        ("unavailable", &s.refused_unavailable),
                    ] {
                        let _ = writeln!(
                            out,
                            "{family}{{limit=\"{lbl}\",reason=\"{reason}\"}} {}",
                            c.load(Relaxed)
                        );
                    }
                }
                _ if l.link.is_none() && family.starts_with("weir_quota_redis")
                    || l.link.is_none() && family == "weir_quota_fail_open_total" => {}
                "weir_quota_redis_commands_total" => {
                    let _ = writeln!(
                        out,
                        "{family}{{limit=\"{lbl}\"}} {}",
                        s.redis_commands.load(Relaxed)
                    );
                }
                "weir_quota_redis_errors_total" => {
                    let _ = writeln!(
                        out,
                        "{family}{{limit=\"{lbl}\"}} {}",
                        s.redis_errors.load(Relaxed)
                    );
                }
                "weir_quota_fail_open_total" => {
                    let _ = writeln!(
                        out,
                        "{family}{{limit=\"{lbl}\"}} {}",
                        s.fail_open.load(Relaxed)
                    );
                }
                "weir_quota_redis_up" => {
                    let up = l.link.as_ref().is_some_and(|k| k.up());
                    let _ = writeln!(out, "{family}{{limit=\"{lbl}\"}} {}", u8::from(up));
                }
                _ => {
                    let v = if l.unit == Unit::Money {
                        l.amount as f64 / NANO
                    } else {
                        l.amount as f64
                    };
                    let _ = writeln!(
                        out,
                        "{family}{{limit=\"{lbl}\",unit=\"{}\"}} {v}",
                        l.unit.as_str()
                    );
                }
            }
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            decode("consumer%3Dalice%2Cmodel%3Dgpt-4o"),
            "consumer=alice,model=gpt-4o"
        );
        assert_eq!(decode("a+b%"), "a b%");
        assert_eq!(decode("%zz"), "%zz");
        let q = parse_query("limit=x&key=&amount=1.5");
        assert_eq!(q[1], ("key".into(), String::new()));
        assert!(has_consumer("consumer=a%2Cb,model=m", "a,b"));
        assert!(!has_consumer("consumer=alice", "ali"));
    }
}
