//! What the LLM metrics cost a request (`weir_metrics::ai`): the per-core series lookup and the
//! counter and histogram updates made when an `ai` request ends, and the per-chunk note taken
//! while a stream is written.
//!
//! The recorder is warmed with 4 routes × 3 providers × 8 models × 50 consumers (the series of a
//! busy gateway) before timing, so each iteration is the steady state: one lookup in the core's
//! map of (route, operation, provider, model), one in that series' map of consumers, plain
//! stores. `json` is a non-streamed answer with usage; `stream` adds time to first token, stream
//! time, time per output token and the merge of 100 chunk gaps; `error` adds the error counter;
//! `new_consumer_folded` is a consumer past the `max_consumers` cap (counted as `other`, found in
//! the per-core map after its first request); `priced` adds the cost estimate the proxy makes
//! first (a lookup in the route's price table, shipped prices under its own, and the
//! multiplication); `chunk_note` is the note taken per chunk written to a streaming client.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use weir_filter::TokenUsage;
use weir_metrics::ai::{AiRecorder, AiSample, AiShared, ChunkGaps, Tokens};
use weir_proxy::RoutePrices;
use weir_quota::prices::Prices;

fn names(prefix: &str, n: usize) -> Vec<Rc<str>> {
    (0..n).map(|i| Rc::from(format!("{prefix}-{i}"))).collect()
}

fn sample<'a>(
    route: &'a Rc<str>,
    provider: &'a Rc<str>,
    model: &'a Rc<str>,
    consumer: &'a Rc<str>,
) -> AiSample<'a> {
    AiSample {
        route: Some(route),
        operation: "chat",
        provider_name: "openai",
        provider: Some(provider),
        model: Some(model),
        consumer: Some(consumer),
        duration: Duration::from_millis(840),
        first_token: None,
        stream: None,
        chunks: None,
        tokens: Some(Tokens {
            input: 1_234,
            output: 100,
            cached_input: 1_024,
            reasoning: 0,
            estimated: false,
        }),
        error: None,
        cost_nano: None,
        retries: 0,
        fallback: false,
    }
}

fn bench_record(c: &mut Criterion) {
    let shared = Arc::new(AiShared::default());
    let rec = AiRecorder::new(0, shared.clone());
    let (routes, providers, models, consumers) = (
        names("route", 4),
        names("provider", 3),
        names("gpt-model", 8),
        names("team", 50),
    );
    for r in &routes {
        for p in &providers {
            for m in &models {
                for u in &consumers {
                    rec.record(&sample(r, p, m, u));
                }
            }
        }
    }
    let s = sample(&routes[2], &providers[1], &models[5], &consumers[37]);
    let mut g = c.benchmark_group("ai_metrics");
    g.bench_function("json", |b| b.iter(|| rec.record(black_box(&s))));
    let mut gaps = ChunkGaps::default();
    let t0 = Instant::now();
    for i in 0..101 {
        gaps.note(t0 + Duration::from_millis(12 * i));
    }
    let stream = AiSample {
        first_token: Some(Duration::from_millis(310)),
        stream: Some(Duration::from_millis(1_210)),
        chunks: Some((&gaps, Duration::from_millis(1_200))),
        ..s
    };
    g.bench_function("stream", |b| b.iter(|| rec.record(black_box(&stream))));
    let error = AiSample {
        error: Some("provider_rate_limited"),
        retries: 1,
        fallback: true,
        tokens: None,
        ..s
    };
    g.bench_function("error", |b| b.iter(|| rec.record(black_box(&error))));
    let folded: Rc<str> = Rc::from("team-past-the-cap");
    shared.set_limits(50, 100);
    let past = sample(&routes[2], &providers[1], &models[5], &folded);
    g.bench_function("new_consumer_folded", |b| {
        b.iter(|| rec.record(black_box(&past)))
    });
    let prices = RoutePrices::new(Prices::new(&Default::default()));
    let model: Rc<str> = Rc::from("gpt-4o-mini-2024-07-18");
    let usage = TokenUsage {
        input: 1_234,
        output: 100,
        cached_input: 1_024,
        ..Default::default()
    };
    let priced = sample(&routes[2], &providers[1], &models[5], &consumers[37]);
    g.bench_function("priced", |b| {
        b.iter(|| {
            let cost = prices.cost(black_box(&model), &usage);
            rec.record(black_box(&AiSample {
                cost_nano: cost,
                ..priced
            }))
        })
    });
    g.bench_function("chunk_note", |b| {
        let mut gaps = ChunkGaps::default();
        let t = Instant::now();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            gaps.note(black_box(t + Duration::from_micros(i * 9_000)));
        })
    });
    g.finish();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
