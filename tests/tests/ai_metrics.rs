//! The LLM metrics on `/metrics` (OpenTelemetry GenAI names, per route, provider, model and
//! consumer), their bounded cardinality, the access log's consumer, and `weirctl top`, against
//! the real `weir` with the in-process mock provider and the `auth` filter's API keys.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use weir_tests::*;

// Three consumers' API keys and their SHA-256 (what the config keeps).
const ALICE: &str = "wk-metrics-alice-0123456789abcdef";
const BOB: &str = "wk-metrics-bob-0123456789abcdef00";
const CAROL: &str = "wk-metrics-carol-0123456789abcdef";
const CONSUMERS: &str = r#"consumers:
  - name: alice
    keys: [{ id: a1, sha256: "08cc994d23d9b31b01865e9442c037957d2d376a631c4c12ec9db953b6f2b775" }]
  - name: bob
    keys: [{ id: b1, sha256: "6e121ddacb0fdad3bb9f3f2ffa41999b18d000f587167f93d6809afc8ce0c7dc" }]
  - name: carol
    keys: [{ id: c1, sha256: "ca6a8647efdb1b7dc74f46fe63d461924440fba529f43ae3c3a431c9a09fb3cd" }]"#;

/// A gateway with two workers, the three consumers, consumer labels capped at two, the mock
/// provider `m` and a provider `dead` (with one key) that refuses connections: `gpt-*` goes to
/// `m`, `fb-*` to `dead` then `m`.
fn gateway(d: Driver) -> Gateway {
    let dead = closed_port();
    Gateway::new()
        .driver(d)
        .workers(2)
        .access_log(true)
        .top_yaml("metrics: { max_consumers: 2 }")
        .top_yaml(CONSUMERS)
        .top_yaml(&format!(
            "providers:\n  - {{ name: m, type: mock, mock: {{ token_interval: 2ms, reply: \"one two three four five six seven eight\" }} }}\n  - {{ name: dead, type: openai, base_url: \"http://{dead}/v1\", keys: [{{ id: dead-key-1, value: sk-never-shown-1234 }}] }}"
        ))
        .route(
            "{ name: llm, filters: [{ type: auth }], ai: { models: [{ model: \"gpt-*\", targets: [{ provider: m }] }, { model: \"fb-*\", targets: [{ provider: dead }], fallback: [{ provider: m }] }] } }",
        )
        .start()
}

fn chat(gw: &Gateway, key: &str, body: &str) -> Response {
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    gw.request(raw.as_bytes())
}

/// Input and output tokens the client was told.
fn usage(v: &Value) -> (u64, u64) {
    (
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
    )
}

/// A non-streamed call: its usage.
fn call(gw: &Gateway, key: &str, model: &str, prompt: &str) -> (u64, u64) {
    let r = chat(
        gw,
        key,
        &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"{prompt}"}}]}}"#),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    usage(&r.json())
}

/// A streamed call that asks for usage: the usage of its last chunk.
fn stream(gw: &Gateway, key: &str, model: &str, prompt: &str) -> (u64, u64) {
    let r = chat(
        gw,
        key,
        &format!(
            r#"{{"model":"{model}","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
        ),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let body = r.text();
    let datas: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{body}");
    usage(&serde_json::from_str(datas[datas.len() - 2]).unwrap())
}

fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// The estimated cost of a `gpt-4o-mini` call in nano-dollars, as the shipped price table has
/// it ($0.15 and $0.60 per million input and output tokens), rounded up per call.
fn cost_nano((input, output): (u64, u64)) -> u64 {
    (input * 150_000 + output * 600_000).div_ceil(1000)
}

/// `metric` with the labels every series of route `llm` and provider `m` carries.
fn series(text: &str, name: &str, model: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![
        ("route", "llm"),
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "mock"),
        ("provider", "m"),
        ("gen_ai_request_model", model),
    ];
    labels.extend_from_slice(extra);
    metric(text, name, &labels)
}

/// `/metrics` once `weir_gen_ai_requests_total` adds up to `n` (a request is counted just after
/// its last byte went out, so a scrape may come before the last one is).
fn metrics_after(gw: &Gateway, n: f64) -> String {
    wait_until(
        &format!("{n} LLM requests counted"),
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let text = gw.metrics();
            let total: f64 = text
                .lines()
                .filter(|l| l.starts_with("weir_gen_ai_requests_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            (total == n).then_some(text)
        },
    )
}

both_drivers! {
    /// After a known sequence of calls, the token, time-to-first-token, error, fallback and
    /// key-pool series hold exactly what the calls were; the third consumer is counted as
    /// `other`; the exposition passes `promtool check metrics`.
    fn series_hold_the_calls(d) {
        let gw = gateway(d);
        let a1 = call(&gw, ALICE, "gpt-4o-mini", "hello there");
        let a2 = stream(&gw, ALICE, "gpt-4o-mini", "tell me more please");
        let b1 = stream(&gw, BOB, "gpt-4o-mini", "hi");
        let c1 = call(&gw, CAROL, "gpt-4o-mini", "carol asks something longer than the others do");
        let c2 = stream(&gw, CAROL, "gpt-4o-mini", "and streams too");
        // Falls back from `dead` (connection refused) to `m`.
        let b2 = call(&gw, BOB, "fb-one", "fall back");
        // No route for the model: an error before any provider.
        let r = chat(&gw, ALICE, r#"{"model":"llama","messages":[]}"#);
        assert_eq!(r.status(), 404);
        // No key: refused by the auth filter before the AI layer, not an LLM request.
        assert_eq!(chat(&gw, "wk-wrong", r#"{"model":"gpt-4o-mini","messages":[]}"#).status(), 401);

        let text = metrics_after(&gw, 7.0);
        let requests = |model: &str, consumer: &str| {
            series(&text, "weir_gen_ai_requests_total", model, &[("consumer", consumer)])
        };
        let tokens = |model: &str, consumer: &str, ty: &str| {
            series(&text, "weir_gen_ai_tokens_total", model, &[("consumer", consumer), ("gen_ai_token_type", ty)])
        };
        assert_eq!(requests("gpt-4o-mini", "alice"), Some(2.0), "{text}");
        assert_eq!(requests("gpt-4o-mini", "bob"), Some(1.0));
        assert_eq!(requests("fb-one", "bob"), Some(1.0));
        assert_eq!(requests("gpt-4o-mini", "other"), Some(2.0), "carol is past max_consumers: 2");
        assert!(!text.contains("consumer=\"carol\""), "{text}");
        let want = [
            ("alice", add(a1, a2)),
            ("bob", b1),
            ("other", add(c1, c2)),
        ];
        for (consumer, (input, output)) in want {
            assert_eq!(tokens("gpt-4o-mini", consumer, "input"), Some(input as f64), "{consumer}: {text}");
            assert_eq!(tokens("gpt-4o-mini", consumer, "output"), Some(output as f64), "{consumer}");
            assert_eq!(tokens("gpt-4o-mini", consumer, "cached_input"), Some(0.0));
        }
        assert_eq!(tokens("fb-one", "bob", "input"), Some(b2.0 as f64));
        // Estimated cost: gpt-4o-mini has a price, fb-one has none.
        let cost = |model: &str, consumer: &str| {
            series(&text, "weir_gen_ai_estimated_cost_total", model, &[("consumer", consumer)])
        };
        let nano = |calls: &[(u64, u64)]| calls.iter().map(|c| cost_nano(*c)).sum::<u64>() as f64 / 1e9;
        assert_eq!(cost("gpt-4o-mini", "alice"), Some(nano(&[a1, a2])), "{text}");
        assert_eq!(cost("gpt-4o-mini", "other"), Some(nano(&[c1, c2])));
        assert_eq!(cost("fb-one", "bob"), Some(0.0));
        // The semantic-conventions histogram of tokens per call, by model (no consumer label).
        let all = [a1, a2, b1, c1, c2];
        let input_sum: u64 = all.iter().map(|u| u.0).sum();
        let output_sum: u64 = all.iter().map(|u| u.1).sum();
        let usage_hist = |suffix: &str, ty: &str| {
            series(&text, &format!("gen_ai_client_token_usage_{suffix}"), "gpt-4o-mini", &[("gen_ai_token_type", ty)])
        };
        assert_eq!(usage_hist("sum", "input"), Some(input_sum as f64));
        assert_eq!(usage_hist("sum", "output"), Some(output_sum as f64));
        assert_eq!(usage_hist("count", "output"), Some(5.0));
        // Time to first token and the chunk gaps: streams only (3 of the 5 gpt-mini calls).
        let ttft = series(&text, "gen_ai_server_time_to_first_token_seconds_count", "gpt-4o-mini", &[]);
        assert_eq!(ttft, Some(3.0));
        assert_eq!(series(&text, "gen_ai_server_time_to_first_token_seconds_count", "fb-one", &[]), Some(0.0));
        assert_eq!(series(&text, "weir_gen_ai_stream_duration_seconds_count", "gpt-4o-mini", &[]), Some(3.0));
        assert_eq!(series(&text, "gen_ai_server_time_per_output_token_seconds_count", "gpt-4o-mini", &[]), Some(3.0));
        let gaps = series(&text, "gen_ai_client_operation_time_per_output_chunk_seconds_count", "gpt-4o-mini", &[]).unwrap();
        // Each stream writes a chunk per token of the eight-word reply (and a few more).
        assert!((3.0 * 7.0..=3.0 * 40.0).contains(&gaps), "{gaps}: {text}");
        let gap_sum = series(&text, "gen_ai_client_operation_time_per_output_chunk_seconds_sum", "gpt-4o-mini", &[]).unwrap();
        assert!(gap_sum > 0.0 && gap_sum < 10.0, "{gap_sum}");
        assert_eq!(series(&text, "gen_ai_client_operation_duration_seconds_count", "gpt-4o-mini", &[]), Some(5.0));
        // The fallback: one more attempt, answered by the second target.
        assert_eq!(series(&text, "weir_gen_ai_fallbacks_total", "fb-one", &[]), Some(1.0));
        assert_eq!(series(&text, "weir_gen_ai_retries_total", "fb-one", &[]), Some(1.0));
        assert_eq!(series(&text, "weir_gen_ai_fallbacks_total", "gpt-4o-mini", &[]), Some(0.0));
        // The error, before any provider: empty provider and model labels.
        let err = metric(&text, "weir_gen_ai_errors_total", &[
            ("route", "llm"), ("provider", ""), ("gen_ai_request_model", ""),
            ("consumer", "alice"), ("error_type", "model_not_found"),
        ]);
        assert_eq!(err, Some(1.0), "{text}");
        assert!(!text.contains("weir_gen_ai_errors_total{route=\"llm\",gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"mock\""), "no error on a served call: {text}");
        // The key pool: by id, never by secret.
        let key = |state: &str| metric(&text, "weir_gen_ai_provider_key_state", &[("provider", "dead"), ("key", "dead-key-1"), ("state", state)]);
        assert_eq!((key("active"), key("cooling"), key("disabled")), (Some(1.0), Some(0.0), Some(0.0)));
        assert!(!text.contains("sk-never-shown"));
        promtool_check(&text);

        // The access log names the consumer.
        let lines = gw.wait_access_log(8, Duration::from_secs(5), |_| true);
        let consumers: Vec<Option<&str>> = lines.iter().map(|l| l["consumer"].as_str()).collect();
        assert_eq!(consumers.iter().filter(|c| **c == Some("alice")).count(), 3, "{consumers:?}");
        assert_eq!(consumers.iter().filter(|c| **c == Some("carol")).count(), 2, "the log keeps the real name");
        assert_eq!(consumers.iter().filter(|c| c.is_none()).count(), 1, "the refused request has none");
        let costs: Vec<f64> = lines
            .iter()
            .filter(|l| l["consumer"] == "alice" && l["ai"]["model"] == "gpt-4o-mini")
            .map(|l| l["ai"]["cost"].as_f64().unwrap())
            .collect();
        assert_eq!(costs.len(), 2);
        assert!((costs.iter().sum::<f64>() - nano(&[a1, a2])).abs() < 1e-12, "{costs:?}");
        let fb = lines.iter().find(|l| l["ai"]["model"] == "fb-one").unwrap();
        assert!(fb["ai"]["cost"].is_null(), "{fb}");
    }
}

both_drivers! {
    /// `weirctl top --once` prints requests and tokens per consumer and model, read from the
    /// data plane's admin listener.
    fn weirctl_top_prints_the_rows(d) {
        let gw = gateway(d);
        let a1 = call(&gw, ALICE, "gpt-4o-mini", "hello");
        let a2 = call(&gw, ALICE, "gpt-4o-mini", "hello again");
        let b1 = stream(&gw, BOB, "gpt-4o-mini", "hi");
        let r = chat(&gw, BOB, r#"{"model":"llama","messages":[]}"#);
        assert_eq!(r.status(), 404);
        metrics_after(&gw, 4.0);

        let stats: Value = serde_json::from_str(&gw.admin_get("/v1/ai/stats").text()).unwrap();
        let rows = stats["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{stats}");

        let out = run_bounded(
            Command::new(bin_path("weirctl")).args(["top", "--once", "--admin", &gw.admin_addr().to_string()]),
            Duration::from_secs(20),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let table: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|l| !l.starts_with("CONSUMER"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            table[0],
            ["CONSUMER", "MODEL", "REQUESTS", "REQ/S", "ERRORS", "INPUT", "OUTPUT", "CACHED", "TOK/S", "SPEND"],
            "{text}"
        );
        let a = add(a1, a2);
        let (ai, ao) = (a.0.to_string(), a.1.to_string());
        let (bi, bo) = (b1.0.to_string(), b1.1.to_string());
        let (a_cost, b_cost) = (
            (cost_nano(a1) + cost_nano(a2)) as f64 / 1e9,
            cost_nano(b1) as f64 / 1e9,
        );
        let (a_spend, b_spend) = (format!("{a_cost:.6}"), format!("{b_cost:.6}"));
        let mut want = [
            vec!["alice", "gpt-4o-mini", "2", "-", "0", ai.as_str(), ao.as_str(), "0", "-", a_spend.as_str()],
            vec!["bob", "gpt-4o-mini", "1", "-", "0", bi.as_str(), bo.as_str(), "0", "-", b_spend.as_str()],
        ];
        // Rows are sorted by tokens, most first.
        if a.0 + a.1 < b1.0 + b1.1 {
            want.swap(0, 1);
        }
        assert_eq!(&table[1..3], &want[..], "{text}");
        // The failed call has no model: an empty MODEL cell.
        assert_eq!(table[3], ["bob", "1", "-", "1", "0", "0", "0", "-", "-"], "{text}");
        let total_in = (a.0 + b1.0).to_string();
        let total_out = (a.1 + b1.1).to_string();
        let total_spend = format!("{:.6}", a_cost + b_cost);
        assert_eq!(table[4], ["TOTAL", "4", "1", total_in.as_str(), total_out.as_str(), "0", total_spend.as_str()], "{text}");

        // A port with no admin listener: a clear error, exit 1.
        let out = run_bounded(
            Command::new(bin_path("weirctl")).args(["top", "--once", "--admin", &closed_port().to_string()]),
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin listener"));
    }
}

both_drivers! {
    /// A quota filter's refusals are counted per route, consumer and kind of limit, and logged;
    /// its `prices` price the calls of its route (over the shipped table).
    fn quota_refusals_and_prices(d) {
        let gw = Gateway::new()
            .driver(d)
            .access_log(true)
            .top_yaml(CONSUMERS)
            .top_yaml("providers: [{ name: m, type: mock, mock: { token_interval: 0s } }]")
            .route(
                "{ name: capped, filters: [{ type: auth }, { type: quota, limits: [{ name: two, key: [consumer], requests: 2, per: minute }], prices: { house-model: { input: 1, output: 2 } } }], ai: { models: [{ model: \"*\", targets: [{ provider: m }] }] } }",
            )
            .start();
        let u1 = call(&gw, ALICE, "house-model", "one");
        let u2 = call(&gw, ALICE, "house-model", "two");
        let r = chat(&gw, ALICE, r#"{"model":"house-model","messages":[{"role":"user","content":"three"}]}"#);
        assert_eq!(r.status(), 429, "{}", r.text());
        call(&gw, BOB, "house-model", "one");
        // The refused call is an LLM request too (refused once its body was read): four in all.
        let text = metrics_after(&gw, 4.0);
        let refused = |consumer: &str| {
            metric(&text, "weir_gen_ai_quota_rejections_total", &[("route", "capped"), ("consumer", consumer), ("limit", "rate")])
        };
        assert_eq!(refused("alice"), Some(1.0), "{text}");
        assert_eq!(refused("bob"), None);
        // $1 and $2 per million tokens, rounded up per call.
        let nano = |(i, o): (u64, u64)| (i * 1_000_000 + o * 2_000_000).div_ceil(1000);
        let cost = metric(&text, "weir_gen_ai_estimated_cost_total", &[("route", "capped"), ("consumer", "alice"), ("gen_ai_request_model", "house-model")]);
        assert_eq!(cost, Some((nano(u1) + nano(u2)) as f64 / 1e9), "{text}");
        promtool_check(&text);
        let lines = gw.wait_access_log(4, Duration::from_secs(5), |_| true);
        let refusal: Vec<&Value> = lines.iter().filter(|l| l["status"] == 429).collect();
        assert_eq!(refusal.len(), 1);
        assert_eq!((refusal[0]["consumer"].as_str(), refusal[0]["quota_rejected"].as_str()), (Some("alice"), Some("rate")));
    }
}

/// `promtool check metrics` on `text` when promtool is installed; a note when not.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("note: promtool is not on PATH: skipping `promtool check metrics`");
        return;
    };
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
