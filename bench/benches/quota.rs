//! The `quota` filter per request (`weir_quota`): what a limit adds on the request path, measured
//! as the proxy runs it — one filter made by the route's factory, then its phases (the request
//! head and context, with the whole JSON body on it as the AI layer leaves it, are made outside
//! the timing).
//!
//! - `tokens/reserve_settle`: an `ai` route with a token limit keyed by consumer: the end-of-body
//!   check (key built, lease looked up, prompt estimated from the body's size, `max_tokens` read,
//!   reserved from the core's lease), the `x-ratelimit-*` fields added to the answer's head, and
//!   the settlement with the usage in `on_log`. The lease is 200 requests' worth, so one request in
//!   200 also takes a new one from the pool (a mutex).
//! - `tokens/no_headers`: the same with `headers: false`.
//! - `tokens/tokenizer_estimate`: the same with `prompt_estimate: tokenizer`.
//! - `budget/reserve_settle`: a money budget: the same plus the model's price looked up and the
//!   cost computed twice (reservation, settlement).
//! - `requests/ip`: a plain route, a requests limit keyed by client address, checked in the head
//!   phase (and its `x-ratelimit-*` on the answer).
//! - `pool/take`: a core's visit to the pool alone (what a lease renewal costs, uncontended).

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BatchSize, Criterion};
use weir_filter::{AiInfo, ErrorFormat, FilterFactory, RequestCtx, TokenUsage};
use weir_http::{HeadLimits, RequestHead, ResponseHead};
use weir_quota::SharedQuota;

const BODY: &str = r#"{"model":"gpt-4o-mini","max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about rivers and stones, please."}]}"#;

fn head(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete")
}

fn response() -> ResponseHead {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"[..],
    );
    weir_http::parse_response(&mut buf, 1 << 16, false)
        .expect("valid")
        .expect("complete")
}

/// The factory of the `quota` filter (`filter`, YAML flow mapping fields) on an `ai` route or a
/// plain one, and the shared state it leases from.
fn factory(filter: &str, ai: bool) -> (Rc<dyn FilterFactory>, Arc<SharedQuota>) {
    let action = if ai {
        "ai: { models: [{ model: \"*\", targets: [{ provider: m }] }] }"
    } else {
        "direct_response: { status: 200 }"
    };
    let yaml = format!(
        "providers: [{{ name: m, type: mock }}]\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - {{ name: r, {action}, filters: [{{ type: quota, {filter} }}] }}\n"
    );
    let config = weir_config::parse(&yaml, "bench.yaml").expect("valid config");
    let shared = SharedQuota::new(&config, None).expect("shared");
    let route = &config.listeners[0].routes[0];
    let weir_config::FilterConfig::Quota(q) = &route.filters[0] else {
        panic!("not a quota filter")
    };
    let f = weir_quota::factory(q, &shared, 0, route).expect("factory");
    (f, shared)
}

fn ai_ctx(body: &Bytes) -> RequestCtx {
    let mut c = RequestCtx::new(
        "req".into(),
        "127.0.0.1:5000".parse().expect("addr"),
        "main".into(),
        0,
    );
    c.route = Some("r".into());
    c.consumer = Some("alice".into());
    c.error_format = ErrorFormat::OpenAi;
    c.ai = Some(Box::new(AiInfo {
        api: "chat",
        requested_model: Some("gpt-4o-mini".into()),
        model: Some("gpt-4o-mini".into()),
        request: Some(body.clone()),
        ..Default::default()
    }));
    c
}

/// One `ai` request through the filter: reserve, answer head, settle.
fn ai_request(
    f: &Rc<dyn FilterFactory>,
    c: &mut RequestCtx,
    h: &mut RequestHead,
    resp: &mut ResponseHead,
) {
    let mut q = f.create();
    let _ = black_box(q.on_request_headers(c, h));
    let _ = black_box(q.on_request_body(c, &[], true));
    let _ = q.on_response_headers(c, resp);
    black_box(&resp);
    if let Some(ai) = c.ai.as_mut() {
        ai.usage = Some(TokenUsage {
            input: 30,
            output: 17,
            ..Default::default()
        });
    }
    q.on_log(c);
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from_static(BODY.as_bytes());
    let chat = "POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nContent-Length: 10\r\n\r\n";
    let mut g = c.benchmark_group("quota");
    let token_limit =
        "limits: [{ name: t, key: [consumer], tokens: 1000000000000, per: 87600h, lease: 60000 }]";
    for (name, filter) in [
        ("tokens/reserve_settle", token_limit.to_owned()),
        (
            "tokens/no_headers",
            format!("{token_limit}, headers: false"),
        ),
        (
            "tokens/tokenizer_estimate",
            format!("{token_limit}, prompt_estimate: tokenizer"),
        ),
        (
            "budget/reserve_settle",
            "limits: [{ name: b, key: [consumer], budget: 1000000, per: 87600h, lease: 20000000 }]"
                .to_owned(),
        ),
    ] {
        let (f, _shared) = factory(&filter, true);
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (ai_ctx(&body), head(chat), response()),
                |(ctx, h, resp)| ai_request(&f, ctx, h, resp),
                BatchSize::SmallInput,
            )
        });
    }
    let (f, _shared) = factory(
        "limits: [{ name: ip, key: [ip], requests: 1000000000000, per: 87600h, lease: 200 }]",
        false,
    );
    g.bench_function("requests/ip", |b| {
        b.iter_batched_ref(
            || {
                let mut c = ai_ctx(&body);
                c.ai = None;
                (c, head("GET / HTTP/1.1\r\nHost: api\r\n\r\n"), response())
            },
            |(ctx, h, resp)| {
                let mut q = f.create();
                let _ = black_box(q.on_request_headers(ctx, h));
                let _ = q.on_response_headers(ctx, resp);
                black_box(&resp);
                q.on_log(ctx);
            },
            BatchSize::SmallInput,
        )
    });
    let (_, shared) = factory(
        "limits: [{ name: p, key: [consumer], tokens: 1000000000000, per: 87600h, lease: 300 }]",
        true,
    );
    let limit = shared.limit("p").expect("limit");
    let now = weir_quota::window::now_ms();
    let w = weir_quota::window::bounds(limit.window, now / 1000);
    g.bench_function("pool/take", |b| {
        b.iter(|| {
            black_box(limit.take("consumer=alice", w, 300, 300, 0, (300, 1), now)).expect("granted")
        })
    });
    // What reading the wall clock costs here (once per checked request).
    g.bench_function("clock/now_ms", |b| b.iter(weir_quota::window::now_ms));
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
