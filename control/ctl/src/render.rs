//! Text output: short aligned tables and summaries of the daemon's JSON.

use serde_json::Value;

/// An aligned table; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A JSON scalar as text: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `file:line: field `f`: message` lines of a problem list (the format of `weir-config`).
pub fn problems(file: &str, problems: &Value) -> String {
    let mut out = String::new();
    for p in problems.as_array().into_iter().flatten() {
        out.push_str(file);
        if let Some(line) = p["line"].as_u64() {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if let Some(f) = p["field"].as_str().filter(|f| !f.is_empty()) {
            out.push_str(&format!("field `{f}`: "));
        }
        out.push_str(p["message"].as_str().unwrap_or("?"));
        out.push('\n');
    }
    out
}

/// The planes table of `weirctl planes` and `weirctl status`.
pub fn planes(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let state = if p["connected"] == true {
                "connected".to_string()
            } else {
                format!("gone since {}", cell(&p["disconnected_at"]))
            };
            let last = match p["last_result"].as_str() {
                Some(r) => format!("{r} {}", cell(&p["last_result_generation"])),
                None => "-".into(),
            };
            let reason = match (p["last_result"].as_str(), p["connected"].as_bool()) {
                (Some("nack"), _) => cell(&p["last_reason"]),
                (_, Some(false)) => cell(&p["disconnect_reason"]),
                _ => "-".into(),
            };
            vec![
                cell(&p["plane_id"]),
                cell(&p["pid"]),
                cell(&p["version"]),
                state,
                cell(&p["generation"]),
                cell(&p["last_generation_sent"]),
                last,
                reason,
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no data plane attached\n".into();
    }
    table(
        &[
            "PLANE", "PID", "VERSION", "STATE", "RUNS", "SENT", "LAST", "REASON",
        ],
        &rows,
    )
}

/// The per-plane outcomes of a change made with `?wait`.
pub fn outcomes(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                format!("  {}", cell(&p["plane_id"])),
                cell(&p["result"]),
                cell(&p["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "  no data plane attached\n".into();
    }
    table(&["  PLANE", "RESULT", "REASON"], &rows)
}

/// `weirctl status`.
pub fn status(v: &Value) -> String {
    let mut out = String::new();
    let source = match v["comment"].as_str() {
        Some(c) => format!("{} ({c})", cell(&v["source"])),
        None => cell(&v["source"]),
    };
    let file = &v["config_file"];
    let file_line = match file["path"].as_str() {
        None => "- (none: changes come through the API only)".to_string(),
        Some(p) => match file["error"].as_str() {
            None => format!("{p} (ok)"),
            Some(e) => format!("{p} (NOT APPLIED: {e})"),
        },
    };
    let kept = &v["kept"];
    let planes = v["planes"].as_array().cloned().unwrap_or_default();
    let attached: Vec<&Value> = planes.iter().filter(|p| p["connected"] == true).collect();
    let on_current = attached
        .iter()
        .filter(|p| p["generation"] == v["generation"])
        .count();
    for (k, val) in [
        ("generation", cell(&v["generation"])),
        ("created", cell(&v["created_at"])),
        ("source", source),
        ("config file", file_line),
        (
            "kept",
            format!(
                "{} ({}..{})",
                cell(&kept["count"]),
                cell(&kept["oldest"]),
                cell(&kept["newest"])
            ),
        ),
        (
            "planes",
            format!(
                "{} attached, {on_current} on this generation",
                attached.len()
            ),
        ),
    ] {
        out.push_str(&format!("{:<13}{val}\n", format!("{k}:")));
    }
    if file["problems"].is_array() {
        out.push_str(&problems(
            file["path"].as_str().unwrap_or("config"),
            &file["problems"],
        ));
    }
    if !planes.is_empty() {
        out.push('\n');
        out.push_str(&self::planes(&v["planes"]));
    }
    out
}

/// `weirctl history`.
pub fn history(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, g)| {
            let mark = if i == 0 { "*" } else { " " };
            vec![
                format!("{mark}{}", cell(&g["generation"])),
                cell(&g["created_at"]),
                cell(&g["source"]),
                cell(&g["comment"]),
            ]
        })
        .collect();
    table(&[" GEN", "CREATED", "SOURCE", "COMMENT"], &rows)
}

/// `weirctl get`: listeners, routes and clusters in brief.
pub fn config_summary(v: &Value) -> String {
    let cfg = &v["config"];
    let mut out = format!("generation {}\n\n", cell(&v["generation"]));
    let mut routes = Vec::new();
    let listeners: Vec<Vec<String>> = cfg["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let rs = l["routes"].as_array().cloned().unwrap_or_default();
            for r in &rs {
                routes.push(vec![
                    cell(&l["name"]),
                    cell(&r["name"]),
                    route_match(&r["match"]),
                    route_action(r),
                ]);
            }
            vec![cell(&l["name"]), cell(&l["address"]), rs.len().to_string()]
        })
        .collect();
    out.push_str(&table(&["LISTENER", "ADDRESS", "ROUTES"], &listeners));
    out.push('\n');
    if routes.is_empty() {
        out.push_str("no routes\n");
    } else {
        out.push_str(&table(&["LISTENER", "ROUTE", "MATCH", "ACTION"], &routes));
    }
    out.push('\n');
    let clusters: Vec<Vec<String>> = cfg["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let eps: Vec<String> = c["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => format!("{}*{}", cell(&other["address"]), cell(&other["weight"])),
                })
                .collect();
            vec![cell(&c["name"]), cell(&c["lb"]["policy"]), eps.join(", ")]
        })
        .collect();
    if clusters.is_empty() {
        out.push_str("no clusters\n");
    } else {
        out.push_str(&table(&["CLUSTER", "LB", "ENDPOINTS"], &clusters));
    }
    out
}

fn route_match(m: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(hosts) = m["host"].as_array().filter(|h| !h.is_empty()) {
        parts.push(format!(
            "host={}",
            hosts.iter().map(cell).collect::<Vec<_>>().join("|")
        ));
    }
    if let Some(p) = m["path"].as_object() {
        for (kind, val) in p {
            parts.push(format!("{kind}={}", cell(val)));
        }
    }
    if let Some(ms) = m["methods"].as_array().filter(|h| !h.is_empty()) {
        parts.push(ms.iter().map(cell).collect::<Vec<_>>().join("|"));
    }
    let extra =
        m["headers"].as_array().map_or(0, Vec::len) + m["query"].as_array().map_or(0, Vec::len);
    if extra > 0 {
        parts.push(format!("+{extra} conditions"));
    }
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" ")
    }
}

fn route_action(r: &Value) -> String {
    if let Some(c) = r["cluster"].as_str() {
        format!("cluster {c}")
    } else if r["direct_response"].is_object() {
        format!("respond {}", cell(&r["direct_response"]["status"]))
    } else if r["redirect"].is_object() {
        format!("redirect {}", cell(&r["redirect"]["status"]))
    } else {
        "-".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "BB", "C"],
            &[vec!["xxx".into(), "y".into(), "z z".into()]],
        );
        assert_eq!(t, "A    BB  C\nxxx  y   z z\n");
    }

    #[test]
    fn problems_read_like_the_config_crate() {
        let p = serde_json::json!([
            {"line": 8, "field": "listeners[0].routes[0].cluster", "message": "no cluster named `x`"},
            {"line": null, "field": "", "message": "bad"}
        ]);
        assert_eq!(
            problems("weir.yaml", &p),
            "weir.yaml:8: field `listeners[0].routes[0].cluster`: no cluster named `x`\nweir.yaml: bad\n"
        );
    }
}
