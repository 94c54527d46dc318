use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use weir_filter::{AiInfo, ErrorFormat, TokenUsage};
use weir_http::HeadLimits;

use super::*;
use crate::SharedQuota;

/// A config with one route (an `ai` one when `ai`) whose only filter is `quota`.
fn setup(quota: &str, ai: bool) -> (weir_config::Config, Arc<SharedQuota>) {
    let action = if ai {
        "ai: { models: [{ model: \"*\", targets: [{ provider: m }] }], aliases: { fast: gpt-4o-mini } }"
    } else {
        "direct_response: { status: 200 }"
    };
    let yaml = format!(
        "providers: [{{ name: m, type: mock }}]\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: r\n        {action}\n        filters:\n          - type: quota\n{quota}\n"
    );
    let config = weir_config::parse(&yaml, "t.yaml").expect("valid config");
    let shared = SharedQuota::new(&config, None).expect("shared");
    (config, shared)
}

fn factory_on(
    config: &weir_config::Config,
    shared: &Arc<SharedQuota>,
    core: usize,
) -> Rc<dyn FilterFactory> {
    let route = &config.listeners[0].routes[0];
    let weir_config::FilterConfig::Quota(q) = &route.filters[0] else {
        panic!("not a quota filter")
    };
    crate::factory(q, shared, core, route).expect("factory")
}

fn head(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete")
}

fn ctx(ip: &str) -> RequestCtx {
    let mut c = RequestCtx::new(
        "req-1".into(),
        format!("{ip}:5000").parse().expect("addr"),
        "main".into(),
        0,
    );
    c.route = Some("r".into());
    c
}

fn ai_ctx(model: &str, body: &str) -> RequestCtx {
    let mut c = ctx("10.0.0.1");
    c.error_format = ErrorFormat::OpenAi;
    c.ai = Some(Box::new(AiInfo {
        api: "chat",
        requested_model: Some(model.into()),
        request: Some(Bytes::copy_from_slice(body.as_bytes())),
        ..Default::default()
    }));
    c
}

fn header<'a>(r: &'a LocalResponse, name: &str) -> Option<&'a str> {
    r.headers.get_str(name)
}

/// Runs one plain request through a fresh filter: `Some(response)` when refused.
fn plain(f: &Rc<dyn FilterFactory>, ip: &str, extra: &str) -> Option<LocalResponse> {
    let mut q = f.create();
    let mut c = ctx(ip);
    let mut h = head(&format!("GET / HTTP/1.1\r\nHost: t\r\n{extra}\r\n"));
    let out = match q.on_request_headers(&mut c, &mut h).expect("no error") {
        Action::Continue => None,
        Action::Respond(r) => Some(r),
        Action::Wait(_) => panic!("a quota filter never waits"),
    };
    q.on_log(&c);
    out
}

/// Runs one AI request: reserve at the end of the body, settle with `usage`.
fn ai_call(
    f: &Rc<dyn FilterFactory>,
    c: &mut RequestCtx,
    usage: Option<TokenUsage>,
) -> (Option<LocalResponse>, Box<dyn Filter>) {
    let mut q = f.create();
    let mut h = head("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n");
    assert!(matches!(
        q.on_request_headers(c, &mut h),
        Ok(Action::Continue)
    ));
    let out = match q.on_request_body(c, &[], true).expect("no error") {
        Action::Continue => None,
        Action::Respond(r) => Some(r),
        Action::Wait(_) => panic!("a quota filter never waits"),
    };
    if let Some(ai) = c.ai.as_mut() {
        ai.usage = usage;
    }
    q.on_log(c);
    (out, q)
}

fn usage(input: u64, output: u64) -> Option<TokenUsage> {
    Some(TokenUsage {
        input,
        output,
        ..Default::default()
    })
}

#[test]
fn requests_per_window_with_an_honest_429() {
    let (config, shared) = setup(
        "            limits: [{ name: rps, key: [ip], requests: 3, per: 10s }]",
        false,
    );
    let f = factory_on(&config, &shared, 0);
    for _ in 0..3 {
        assert!(plain(&f, "10.0.0.1", "").is_none());
    }
    let r = plain(&f, "10.0.0.1", "").expect("refused");
    assert_eq!(r.status, 429);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("quota `rps` (requests per 10s) for ip=10.0.0.1: limit 3, remaining 0"),
        "{msg}"
    );
    // Retry-After is the rest of the window, in whole seconds (1 to 10).
    let ra: u64 = header(&r, "retry-after")
        .expect("retry-after")
        .parse()
        .expect("secs");
    assert!((1..=10).contains(&ra), "{ra}");
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("0"));
    assert!(header(&r, "x-ratelimit-reset-requests")
        .expect("reset")
        .ends_with('s'));
    // Another client address has its own counter.
    assert!(plain(&f, "10.0.0.2", "").is_none());
    assert_eq!(
        shared
            .limit("rps")
            .expect("limit")
            .stats
            .refused_exhausted
            .load(Relaxed),
        1
    );
}

#[test]
fn header_keys_and_success_headers() {
    let (config, shared) = setup(
        "            limits: [{ name: team, key: [\"header:X-Team\"], requests: 2, per: minute }]",
        false,
    );
    let f = factory_on(&config, &shared, 0);
    assert!(plain(&f, "10.0.0.1", "x-team: a\r\n").is_none());
    assert!(plain(&f, "10.0.0.1", "x-team: a\r\n").is_none());
    assert!(plain(&f, "10.0.0.1", "x-team: a\r\n").is_some());
    assert!(plain(&f, "10.0.0.1", "x-team: b\r\n").is_none());
    let keys: Vec<String> = shared
        .limit("team")
        .expect("limit")
        .entries(crate::window::now_ms() / 1000)
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["header:x-team=a", "header:x-team=b"]);

    // An answer carries the tightest limit's fields.
    let mut q = f.create();
    let mut c = ctx("10.0.0.1");
    let mut h = head("GET / HTTP/1.1\r\nHost: t\r\nx-team: c\r\n\r\n");
    assert!(matches!(
        q.on_request_headers(&mut c, &mut h),
        Ok(Action::Continue)
    ));
    let mut resp = {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
        weir_http::parse_response(&mut buf, 1 << 16, false)
            .expect("valid")
            .expect("complete")
    };
    q.on_response_headers(&mut c, &mut resp).expect("ok");
    assert_eq!(
        resp.headers.get_str("x-ratelimit-limit-requests"),
        Some("2")
    );
    assert_eq!(
        resp.headers.get_str("x-ratelimit-remaining-requests"),
        Some("1")
    );
    assert!(resp.headers.get_str("x-ratelimit-reset-requests").is_some());
}

#[test]
fn tokens_are_reserved_then_settled() {
    // A 400-byte body reserves 100 prompt tokens + max_tokens 100.
    let (config, shared) = setup(
        "            limits: [{ name: tok, key: [consumer], tokens: 1000, per: minute }]",
        true,
    );
    let f = factory_on(&config, &shared, 0);
    let frame =
        |pad: &str| format!("{{\"model\":\"gpt-4o\",\"max_tokens\":100,\"messages\":[\"{pad}\"]}}");
    let body = frame(&"x".repeat(400 - frame("").len()));
    assert_eq!(body.len(), 400);
    // Five requests in flight at once take the whole limit...
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut c = ai_ctx("gpt-4o", &body);
        c.consumer = Some("alice".into());
        let mut q = f.create();
        let mut h = head("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n\r\n");
        q.on_request_headers(&mut c, &mut h).expect("ok");
        assert!(matches!(
            q.on_request_body(&mut c, &[], true),
            Ok(Action::Continue)
        ));
        open.push((q, c));
    }
    // ...so a sixth is refused before it is sent, in the client's protocol.
    let mut c = ai_ctx("gpt-4o", &body);
    c.consumer = Some("alice".into());
    let (r, _) = ai_call(&f, &mut c, None);
    let r = r.expect("refused");
    assert_eq!(r.status, 429);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("needs 200"));
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(
        c.error.as_ref().map(|e| e.kind),
        Some("rate_limit_exceeded")
    );
    // They settle with 50 tokens each: 750 come back.
    for (mut q, mut c) in open {
        c.ai.as_mut().expect("ai").usage = usage(30, 20);
        q.on_log(&c);
    }
    let mut n = 0;
    loop {
        let mut c = ai_ctx("gpt-4o", &body);
        c.consumer = Some("alice".into());
        match ai_call(&f, &mut c, usage(30, 20)) {
            (None, _) => n += 1,
            (Some(_), _) => break,
        }
    }
    // 1000 - 250 used = 750; each request holds 200 while in flight and keeps 50.
    assert_eq!(n, (750 - 200) / 50 + 1);
    // Another consumer is not touched; the anonymous key is `consumer=`.
    let mut c = ai_ctx("gpt-4o", &body);
    c.consumer = Some("bob".into());
    assert!(ai_call(&f, &mut c, usage(1, 1)).0.is_none());
}

#[test]
fn output_limits_read_max_tokens_and_skip_free_calls() {
    let (config, shared) = setup(
        "            limits: [{ name: out, output_tokens: 100, per: minute }]\n            default_max_tokens: 60",
        true,
    );
    let f = factory_on(&config, &shared, 0);
    // max_completion_tokens is read over max_tokens; too big for the limit at all.
    let mut c = ai_ctx(
        "m",
        r#"{"model":"m","max_completion_tokens":101,"max_tokens":5}"#,
    );
    let r = ai_call(&f, &mut c, None).0.expect("refused");
    assert!(String::from_utf8_lossy(&r.body).contains("more than the whole limit"));
    assert!(header(&r, "retry-after").is_none(), "waiting will not help");
    // No max_tokens: the default is reserved; the first fits, a second in flight would not.
    let mut c1 = ai_ctx("m", r#"{"model":"m"}"#);
    let mut q1 = f.create();
    let mut h = head("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n\r\n");
    q1.on_request_headers(&mut c1, &mut h).expect("ok");
    assert!(matches!(
        q1.on_request_body(&mut c1, &[], true),
        Ok(Action::Continue)
    ));
    let mut c2 = ai_ctx("m", r#"{"model":"m"}"#);
    assert!(ai_call(&f, &mut c2, None).0.is_some());
    // count_tokens costs nothing and is never refused by a token limit.
    let mut c3 = ai_ctx("m", r#"{"model":"m"}"#);
    c3.ai.as_mut().expect("ai").api = "count_tokens";
    assert!(ai_call(&f, &mut c3, None).0.is_none());
    // An answer that used more than reserved leaves a debt: 60 reserved, 90 used.
    c1.ai.as_mut().expect("ai").usage = usage(10, 90);
    q1.on_log(&c1);
    let mut c4 = ai_ctx("m", r#"{"model":"m","max_tokens":10}"#);
    assert!(
        ai_call(&f, &mut c4, usage(0, 10)).0.is_none(),
        "10 of 100 left"
    );
    let mut c5 = ai_ctx("m", r#"{"model":"m","max_tokens":1}"#);
    assert!(ai_call(&f, &mut c5, None).0.is_some(), "spent: 90 + 10");
}

#[test]
fn budgets_price_the_model() {
    let (config, shared) = setup(
        "            limits: [{ name: money, key: [consumer], budget: 0.01, per: day }]\n            prices: { mock-a: { input: 10, output: 20 } }",
        true,
    );
    let f = factory_on(&config, &shared, 0);
    // An unknown model cannot be priced: refused, not let through for free.
    let mut c = ai_ctx("mystery", r#"{"model":"mystery","max_tokens":5}"#);
    let r = ai_call(&f, &mut c, None).0.expect("refused");
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("model_not_priced"));
    // An alias is priced as its model (shipped table: gpt-4o-mini).
    let mut c = ai_ctx("fast", r#"{"model":"fast","max_tokens":5}"#);
    assert!(ai_call(&f, &mut c, usage(10, 5)).0.is_none());
    // mock-a: 100 input + 200 output = 100×10 + 200×20 per million = $0.005 a call.
    let body = r#"{"model":"mock-a","max_tokens":200,"messages":[]}"#;
    let mut calls = 0;
    loop {
        let mut c = ai_ctx("mock-a", body);
        c.consumer = Some("alice".into());
        c.ai.as_mut().expect("ai").model = Some("mock-a".into());
        match ai_call(&f, &mut c, usage(100, 200)) {
            (None, _) => calls += 1,
            (Some(r), _) => {
                assert_eq!(r.status, 429);
                assert!(String::from_utf8_lossy(&r.body).contains("insufficient_quota"));
                break;
            }
        }
        assert!(calls < 10);
    }
    // The reservation (13 prompt tokens by bytes + 200) costs 0.00413: $0.01 takes two calls of
    // $0.005, and a third is refused at $0.01 spent.
    assert_eq!(calls, 2);
    let l = shared.limit("money").expect("limit");
    let spent: Vec<u64> = l
        .entries(crate::window::now_ms() / 1000)
        .iter()
        .filter(|e| e.key == "consumer=alice")
        .map(|e| e.entry.spent)
        .collect();
    assert_eq!(
        spent,
        [10_000_000],
        "$0.01 in nano-dollars, reported at the refused visit"
    );
}

/// Two cores (two factories) share one pool; neither holds more than its lease.
#[test]
fn cores_share_one_pool() {
    let (config, shared) = setup(
        "            limits: [{ name: rq, requests: 50, per: minute, lease: 5 }]",
        false,
    );
    let a = factory_on(&config, &shared, 0);
    let b = factory_on(&config, &shared, 1);
    let mut ok = 0;
    for i in 0..100 {
        let f = if i % 3 == 0 { &a } else { &b };
        if plain(f, "10.0.0.1", "").is_none() {
            ok += 1;
        }
    }
    assert_eq!(ok, 50);
    // A reload with the same limit keeps its pool and the cores' leases.
    let again = SharedQuota::new(&config, Some(&shared)).expect("shared");
    assert!(Arc::ptr_eq(
        &again.limit("rq").expect("l"),
        &shared.limit("rq").expect("l")
    ));
    let a2 = factory_on(&config, &again, 0);
    assert!(plain(&a2, "10.0.0.1", "").is_some());
}

#[test]
fn key_values_are_escaped() {
    let mut s = String::new();
    escape("a,b=c%d", &mut s);
    assert_eq!(s, "a%2Cb%3Dc%25d");
}

#[test]
fn max_tokens_is_found_without_a_parse() {
    assert_eq!(max_tokens(br#"{"model":"m","max_tokens": 64}"#), Some(64));
    assert_eq!(
        max_tokens(br#"{"max_tokens":5,"max_completion_tokens" :	7}"#),
        Some(7),
        "the newer name wins"
    );
    assert_eq!(max_tokens(br#"{"max_output_tokens":9}"#), Some(9));
    // In a string value the quotes are escaped; in a tool's schema there is no number.
    assert_eq!(
        max_tokens(br#"{"messages":[{"content":"say \"max_tokens\": 3"}],"tools":[{"parameters":{"properties":{"max_tokens":{"type":"integer"}}}}],"max_tokens":12}"#),
        Some(12)
    );
    assert_eq!(max_tokens(br#"{"max_tokens":null}"#), None);
    assert_eq!(max_tokens(br#"{"max_tokens":-1}"#), None);
    assert_eq!(max_tokens(br#"{"max_tokens""#), None);
}
