//! The series of LLM calls: tokens, latencies, errors, fallbacks and quota rejections per route,
//! provider, model and consumer, named after the OpenTelemetry GenAI semantic conventions where
//! those define the measure (`gen_ai_client_token_usage`, `gen_ai_client_operation_duration_seconds`,
//! `gen_ai_server_time_to_first_token_seconds`, ...).
//!
//! Each core records into its own [`AiRecorder`]: a per-core map from the labels of a request to
//! its series, filled on first use (the only time the shared [`AiShared`] is locked) and then read
//! with one hash lookup per request; the counters are the same single-writer atomics as the rest
//! of the crate, summed over cores when scraped.
//!
//! Cardinality is bounded twice over. Latency and token histograms are kept per route, provider
//! and model only; the per-consumer series are plain counters. And the label values that clients
//! can multiply are capped process-wide: past `max_consumers` distinct consumers (and
//! `max_models` distinct models) new ones are counted under `other`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{bump, esc};

/// The label value under which consumers and models past the limits are counted.
pub const OTHER: &str = "other";

/// Most bucket bounds a histogram here has.
pub const MAX_BOUNDS: usize = 16;

/// `gen_ai.client.token.usage` buckets (tokens), as the semantic conventions advise.
pub const TOKEN_BOUNDS: &[u64] = &[
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
/// `gen_ai.client.operation.duration` buckets (µs), as advised: 10 ms doubling to 81.92 s.
pub const DURATION_BOUNDS_US: &[u64] = &[
    10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000, 5_120_000,
    10_240_000, 20_480_000, 40_960_000, 81_920_000,
];
/// `gen_ai.server.time_to_first_token` buckets (µs), as advised: 1 ms to 10 s.
pub const TTFT_BOUNDS_US: &[u64] = &[
    1_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 250_000, 500_000, 750_000,
    1_000_000, 2_500_000, 5_000_000, 7_500_000, 10_000_000,
];
/// `gen_ai.server.time_per_output_token` buckets (µs), as advised: 10 ms to 2.5 s.
pub const TPOT_BOUNDS_US: &[u64] = &[
    10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000, 750_000,
    1_000_000, 2_500_000,
];
/// Buckets of the gaps between chunks (µs). The conventions advise the operation-duration buckets
/// (from 10 ms), but fast models stream a token every few milliseconds: these are the TTFT
/// buckets, which start at 1 ms.
pub const GAP_BOUNDS_US: &[u64] = TTFT_BOUNDS_US;

#[inline]
fn bucket(bounds: &[u64], v: u64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// A histogram owned by one core, over bounds given by its family (integer units: µs or tokens).
#[derive(Debug, Default)]
pub struct Hist {
    counts: [AtomicU64; MAX_BOUNDS + 1],
    sum: AtomicU64,
}

impl Hist {
    /// Records `v` (in the family's unit).
    #[inline]
    pub fn observe(&self, bounds: &[u64], v: u64) {
        bump(&self.counts[bucket(bounds, v)], 1);
        bump(&self.sum, v);
    }
}

/// The gaps between the chunks of one streamed answer, kept on the request (plain integers, no
/// shared state) and added to the core's histogram when the request ends.
#[derive(Debug, Clone, Default)]
pub struct ChunkGaps {
    last: Option<Instant>,
    counts: [u32; MAX_BOUNDS + 1],
    sum_us: u64,
    n: u32,
}

impl ChunkGaps {
    /// A chunk was written to the client at `now`.
    #[inline]
    pub fn note(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let us = now.saturating_duration_since(last).as_micros() as u64;
            self.counts[bucket(GAP_BOUNDS_US, us)] += 1;
            self.sum_us += us;
            self.n += 1;
        }
        self.last = Some(now);
    }

    /// Gaps seen (chunks after the first).
    pub fn gaps(&self) -> u32 {
        self.n
    }

    /// When the last chunk was written.
    pub fn last(&self) -> Option<Instant> {
        self.last
    }
}

/// Token counts of a finished call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens served from the provider's cache.
    pub cached_input: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
    /// Counted by Weir's tokenizer: the provider reported none.
    pub estimated: bool,
}

/// What one finished LLM request tells the metrics.
#[derive(Debug, Clone, Copy)]
pub struct AiSample<'a> {
    /// The route.
    pub route: Option<&'a Rc<str>>,
    /// `gen_ai.operation.name` (see [`operation_name`]).
    pub operation: &'static str,
    /// `gen_ai.provider.name` of the provider that answered (see [`provider_name`]); empty when
    /// none was called.
    pub provider_name: &'static str,
    /// The configured provider that answered (or was last tried).
    pub provider: Option<&'a Rc<str>>,
    /// The model sent to that provider (`gen_ai.request.model`).
    pub model: Option<&'a Rc<str>>,
    /// The consumer the request was authenticated as.
    pub consumer: Option<&'a Rc<str>>,
    /// From the request head to the last byte.
    pub duration: Duration,
    /// For a stream: from the request head to the first token written.
    pub first_token: Option<Duration>,
    /// For a stream: from the first token to the last byte.
    pub stream: Option<Duration>,
    /// For a stream: the gaps between its chunks, and the time from the first token to the
    /// last chunk.
    pub chunks: Option<(&'a ChunkGaps, Duration)>,
    /// Tokens, once the answer ended.
    pub tokens: Option<Tokens>,
    /// The kind of the error that ended the request.
    pub error: Option<&'static str>,
    /// Estimated cost from the route's price table, in nano-units (1e-9) of its currency;
    /// `None` when the model has no price (or no tokens are known).
    pub cost_nano: Option<u64>,
    /// Attempts after the first.
    pub retries: u32,
    /// Answered (or last tried) by another target than the first one tried.
    pub fallback: bool,
}

/// The `gen_ai.operation.name` of one of Weir's client APIs.
pub fn operation_name(api: &str) -> &'static str {
    match api {
        "chat" | "messages" | "responses" => "chat",
        "completions" => "text_completion",
        "embeddings" => "embeddings",
        "count_tokens" => "count_tokens",
        "models" => "list_models",
        _ => "other",
    }
}

/// The `gen_ai.provider.name` of a provider `type` (the conventions' well-known values where one
/// applies, else Weir's type name).
pub fn provider_name(kind: &'static str) -> &'static str {
    match kind {
        "azure" => "azure.ai.openai",
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        "mistral" => "mistral_ai",
        "moonshot" => "moonshot_ai",
        "xai" => "x_ai",
        other => other,
    }
}

/// Series per route, operation, provider and model, on one core.
#[derive(Debug, Default)]
pub struct AiModelStats {
    /// Input tokens per call.
    pub input_tokens: Hist,
    /// Output tokens per call.
    pub output_tokens: Hist,
    /// Whole request (µs).
    pub duration: Hist,
    /// Time to first token of streams (µs).
    pub ttft: Hist,
    /// Time per output token after the first, per stream (µs).
    pub tpot: Hist,
    /// Gaps between chunks of streams (µs).
    pub chunk_gaps: Hist,
    /// First token to end of stream (µs).
    pub stream: Hist,
    /// Attempts after the first.
    pub retries: AtomicU64,
    /// Requests answered by a fallback target.
    pub fallbacks: AtomicU64,
}

/// Counters per route, operation, provider, model and consumer, on one core.
#[derive(Debug, Default)]
pub struct AiConsumerStats {
    /// Requests finished.
    pub requests: AtomicU64,
    /// Input tokens.
    pub input: AtomicU64,
    /// Output tokens.
    pub output: AtomicU64,
    /// Cached input tokens.
    pub cached_input: AtomicU64,
    /// Reasoning tokens.
    pub reasoning: AtomicU64,
    /// Requests whose tokens were estimated.
    pub estimated: AtomicU64,
    /// Estimated cost, nano-units of the price table's currency.
    pub cost_nano: AtomicU64,
    /// Requests with a cost (their model has a price).
    pub priced: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    route: String,
    operation: &'static str,
    provider_name: &'static str,
    provider: String,
    model: String,
}

impl Labels {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "route=\"{}\",gen_ai_operation_name=\"{}\",gen_ai_provider_name=\"{}\",provider=\"{}\",gen_ai_request_model=\"{}\"",
            esc(&self.route),
            self.operation,
            esc(self.provider_name),
            esc(&self.provider),
            esc(&self.model)
        );
    }
}

type ErrorKey = (Labels, String, &'static str, usize);
type QuotaKey = (String, String, &'static str, usize);

#[derive(Default)]
struct Series {
    models: BTreeMap<(Labels, usize), Arc<AiModelStats>>,
    consumers: BTreeMap<(Labels, String, usize), Arc<AiConsumerStats>>,
    errors: BTreeMap<ErrorKey, Arc<AtomicU64>>,
    quota: BTreeMap<QuotaKey, Arc<AtomicU64>>,
}

#[derive(Default)]
struct Admitted {
    consumers: HashSet<String>,
    models: HashSet<String>,
}

/// The AI series of every core, and the label values admitted so far. Locked only when a core
/// meets new labels and when scraped.
pub struct AiShared {
    max_consumers: AtomicUsize,
    max_models: AtomicUsize,
    admitted: Mutex<Admitted>,
    series: Mutex<Series>,
}

/// Default cap on distinct consumer label values.
pub const DEFAULT_MAX_CONSUMERS: usize = 100;
/// Default cap on distinct model label values.
pub const DEFAULT_MAX_MODELS: usize = 100;

impl Default for AiShared {
    fn default() -> Self {
        AiShared {
            max_consumers: AtomicUsize::new(DEFAULT_MAX_CONSUMERS),
            max_models: AtomicUsize::new(DEFAULT_MAX_MODELS),
            admitted: Mutex::default(),
            series: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn admit(set: &mut HashSet<String>, max: usize, name: &str) -> bool {
    if name.is_empty() || set.contains(name) {
        return true;
    }
    if set.len() < max {
        set.insert(name.to_owned());
        return true;
    }
    false
}

impl AiShared {
    /// Sets the caps on distinct consumers and models (from the config; a reload may raise them,
    /// values already admitted stay).
    pub fn set_limits(&self, max_consumers: usize, max_models: usize) {
        self.max_consumers.store(max_consumers, Relaxed);
        self.max_models.store(max_models, Relaxed);
    }

    /// The label a consumer is counted under: its name, or [`OTHER`] past the cap.
    fn consumer_label<'a>(&self, name: &'a str) -> &'a str {
        let max = self.max_consumers.load(Relaxed);
        if admit(&mut lock(&self.admitted).consumers, max, name) {
            name
        } else {
            OTHER
        }
    }

    fn model_label<'a>(&self, name: &'a str) -> &'a str {
        let max = self.max_models.load(Relaxed);
        if admit(&mut lock(&self.admitted).models, max, name) {
            name
        } else {
            OTHER
        }
    }

    fn model(&self, labels: &Labels, core: usize) -> Arc<AiModelStats> {
        lock(&self.series)
            .models
            .entry((labels.clone(), core))
            .or_default()
            .clone()
    }

    fn consumer(&self, labels: &Labels, consumer: &str, core: usize) -> Arc<AiConsumerStats> {
        lock(&self.series)
            .consumers
            .entry((labels.clone(), consumer.to_owned(), core))
            .or_default()
            .clone()
    }

    fn error(
        &self,
        labels: &Labels,
        consumer: &str,
        kind: &'static str,
        core: usize,
    ) -> Arc<AtomicU64> {
        lock(&self.series)
            .errors
            .entry((labels.clone(), consumer.to_owned(), kind, core))
            .or_default()
            .clone()
    }

    fn quota(
        &self,
        route: &str,
        consumer: &str,
        limit: &'static str,
        core: usize,
    ) -> Arc<AtomicU64> {
        lock(&self.series)
            .quota
            .entry((route.to_owned(), consumer.to_owned(), limit, core))
            .or_default()
            .clone()
    }

    /// Appends the Prometheus text of every AI series, summed over cores.
    pub fn render(&self, out: &mut String) {
        let s = lock(&self.series);
        let mut models: BTreeMap<&Labels, Vec<&AiModelStats>> = BTreeMap::new();
        for ((l, _), st) in &s.models {
            models.entry(l).or_default().push(st);
        }
        let mut consumers: BTreeMap<(&Labels, &str), Vec<&AiConsumerStats>> = BTreeMap::new();
        for ((l, c, _), st) in &s.consumers {
            consumers.entry((l, c)).or_default().push(st);
        }
        let mut errors: BTreeMap<(&Labels, &str, &str), u64> = BTreeMap::new();
        for ((l, c, k, _), n) in &s.errors {
            *errors.entry((l, c, k)).or_default() += n.load(Relaxed);
        }
        let mut quota: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        for ((r, c, k, _), n) in &s.quota {
            *quota.entry((r, c, k)).or_default() += n.load(Relaxed);
        }
        let mut labels = String::with_capacity(256);

        type HistOf = fn(&AiModelStats) -> &Hist;
        let token_families: [(&str, HistOf); 2] = [
            ("input", |m| &m.input_tokens),
            ("output", |m| &m.output_tokens),
        ];
        header(
            out,
            "gen_ai_client_token_usage",
            "histogram",
            "Tokens per LLM call (gen_ai.client.token.usage), by gen_ai_token_type.",
        );
        for (l, v) in &models {
            for (ty, f) in token_families {
                labels.clear();
                l.write(&mut labels);
                let _ = write!(labels, ",gen_ai_token_type=\"{ty}\"");
                hist_lines(
                    out,
                    "gen_ai_client_token_usage",
                    &labels,
                    TOKEN_BOUNDS,
                    1.0,
                    v,
                    f,
                );
            }
        }
        let hists: [(&str, &str, &[u64], HistOf); 5] = [
            (
                "gen_ai_client_operation_duration_seconds",
                "LLM request duration, request head to last byte (gen_ai.client.operation.duration).",
                DURATION_BOUNDS_US,
                |m| &m.duration,
            ),
            (
                "gen_ai_server_time_to_first_token_seconds",
                "Streams: request head to the first token written to the client (gen_ai.server.time_to_first_token).",
                TTFT_BOUNDS_US,
                |m| &m.ttft,
            ),
            (
                "gen_ai_server_time_per_output_token_seconds",
                "Streams: time per output token after the first (gen_ai.server.time_per_output_token).",
                TPOT_BOUNDS_US,
                |m| &m.tpot,
            ),
            (
                "gen_ai_client_operation_time_per_output_chunk_seconds",
                "Streams: gap between consecutive chunks, i.e. inter-token latency (gen_ai.client.operation.time_per_output_chunk).",
                GAP_BOUNDS_US,
                |m| &m.chunk_gaps,
            ),
            (
                "weir_gen_ai_stream_duration_seconds",
                "Streams: first token to the end of the stream.",
                DURATION_BOUNDS_US,
                |m| &m.stream,
            ),
        ];
        for (name, help, bounds, f) in hists {
            header(out, name, "histogram", help);
            for (l, v) in &models {
                labels.clear();
                l.write(&mut labels);
                hist_lines(out, name, &labels, bounds, 1e6, v, f);
            }
        }
        type CountOf = fn(&AiModelStats) -> &AtomicU64;
        let model_counters: [(&str, &str, CountOf); 2] = [
            (
                "weir_gen_ai_retries_total",
                "LLM attempts after the first (another key, target or round).",
                |m| &m.retries,
            ),
            (
                "weir_gen_ai_fallbacks_total",
                "LLM requests answered (or last tried) by another target than the first.",
                |m| &m.fallbacks,
            ),
        ];
        for (name, help, f) in model_counters {
            header(out, name, "counter", help);
            for (l, v) in &models {
                labels.clear();
                l.write(&mut labels);
                let n: u64 = v.iter().map(|m| f(m).load(Relaxed)).sum();
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }

        header(
            out,
            "weir_gen_ai_requests_total",
            "counter",
            "LLM requests finished, by consumer.",
        );
        for ((l, c), v) in &consumers {
            labels.clear();
            l.write(&mut labels);
            let n: u64 = v.iter().map(|m| m.requests.load(Relaxed)).sum();
            let _ = writeln!(
                out,
                "weir_gen_ai_requests_total{{{labels},consumer=\"{}\"}} {n}",
                esc(c)
            );
        }
        type CCountOf = fn(&AiConsumerStats) -> &AtomicU64;
        let token_types: [(&str, CCountOf); 4] = [
            ("input", |m| &m.input),
            ("output", |m| &m.output),
            ("cached_input", |m| &m.cached_input),
            ("reasoning", |m| &m.reasoning),
        ];
        header(
            out,
            "weir_gen_ai_tokens_total",
            "counter",
            "Tokens by consumer and gen_ai_token_type (cached_input is part of input, reasoning part of output).",
        );
        for ((l, c), v) in &consumers {
            labels.clear();
            l.write(&mut labels);
            for (ty, f) in token_types {
                let n: u64 = v.iter().map(|m| f(m).load(Relaxed)).sum();
                let _ = writeln!(
                    out,
                    "weir_gen_ai_tokens_total{{{labels},consumer=\"{}\",gen_ai_token_type=\"{ty}\"}} {n}",
                    esc(c)
                );
            }
        }
        header(
            out,
            "weir_gen_ai_token_estimates_total",
            "counter",
            "LLM requests whose tokens Weir counted with its tokenizer (the provider reported none).",
        );
        for ((l, c), v) in &consumers {
            labels.clear();
            l.write(&mut labels);
            let n: u64 = v.iter().map(|m| m.estimated.load(Relaxed)).sum();
            let _ = writeln!(
                out,
                "weir_gen_ai_token_estimates_total{{{labels},consumer=\"{}\"}} {n}",
                esc(c)
            );
        }
        header(
            out,
            "weir_gen_ai_estimated_cost_total",
            "counter",
            "Estimated cost of the tokens, from the route's quota prices or the shipped price table (USD per million tokens unless overridden); unpriced models add nothing.",
        );
        for ((l, c), v) in &consumers {
            labels.clear();
            l.write(&mut labels);
            let n: u64 = v.iter().map(|m| m.cost_nano.load(Relaxed)).sum();
            let _ = writeln!(
                out,
                "weir_gen_ai_estimated_cost_total{{{labels},consumer=\"{}\"}} {}",
                esc(c),
                n as f64 / 1e9
            );
        }
        header(
            out,
            "weir_gen_ai_errors_total",
            "counter",
            "LLM requests that ended in an error, by error_type (the error's kind).",
        );
        for ((l, c, k), n) in &errors {
            labels.clear();
            l.write(&mut labels);
            let _ = writeln!(
                out,
                "weir_gen_ai_errors_total{{{labels},consumer=\"{}\",error_type=\"{}\"}} {n}",
                esc(c),
                esc(k)
            );
        }
        header(
            out,
            "weir_gen_ai_quota_rejections_total",
            "counter",
            "Requests refused by a quota, by route, consumer and kind of limit.",
        );
        for ((r, c, k), n) in &quota {
            let _ = writeln!(
                out,
                "weir_gen_ai_quota_rejections_total{{route=\"{}\",consumer=\"{}\",limit=\"{}\"}} {n}",
                esc(r),
                esc(c),
                esc(k)
            );
        }
    }

    /// Requests, errors and tokens per consumer and model, summed over routes, providers and
    /// cores, as JSON (`GET /v1/ai/stats`, read by `weirctl top`).
    pub fn stats_json(&self) -> String {
        #[derive(Default)]
        struct Row {
            requests: u64,
            errors: u64,
            input: u64,
            output: u64,
            cached_input: u64,
            reasoning: u64,
            cost_nano: u64,
            priced: u64,
        }
        let s = lock(&self.series);
        let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
        for ((l, c, _), st) in &s.consumers {
            let r = rows.entry((c, &l.model)).or_default();
            r.requests += st.requests.load(Relaxed);
            r.input += st.input.load(Relaxed);
            r.output += st.output.load(Relaxed);
            r.cached_input += st.cached_input.load(Relaxed);
            r.reasoning += st.reasoning.load(Relaxed);
            r.cost_nano += st.cost_nano.load(Relaxed);
            r.priced += st.priced.load(Relaxed);
        }
        for ((l, c, _, _), n) in &s.errors {
            rows.entry((c, &l.model)).or_default().errors += n.load(Relaxed);
        }
        let mut out = String::from("{\"rows\":[");
        for (i, ((c, m), r)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"consumer\":\"{}\",\"model\":\"{}\",\"requests\":{},\"errors\":{},\"input_tokens\":{},\"output_tokens\":{},\"cached_tokens\":{},\"reasoning_tokens\":{},\"cost\":{}}}",
                json_esc(c),
                json_esc(m),
                r.requests,
                r.errors,
                r.input,
                r.output,
                r.cached_input,
                r.reasoning,
                if r.priced > 0 {
                    (r.cost_nano as f64 / 1e9).to_string()
                } else {
                    "null".to_string()
                }
            );
        }
        out.push_str("]}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn hist_lines(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[u64],
    divisor: f64,
    v: &[&AiModelStats],
    f: fn(&AiModelStats) -> &Hist,
) {
    let mut acc = 0u64;
    for (i, b) in bounds.iter().enumerate() {
        acc += v.iter().map(|m| f(m).counts[i].load(Relaxed)).sum::<u64>();
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{}\"}} {acc}",
            *b as f64 / divisor
        );
    }
    acc += v
        .iter()
        .map(|m| f(m).counts[bounds.len()].load(Relaxed))
        .sum::<u64>();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {acc}");
    let sum: u64 = v.iter().map(|m| f(m).sum.load(Relaxed)).sum();
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sum as f64 / divisor);
    let _ = writeln!(out, "{name}_count{{{labels}}} {acc}");
}

fn json_esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

// === impl AiRecorder ===

/// The per-core side: label values resolved once per core, then one lookup per request.
type ModelKey = (Rc<str>, &'static str, &'static str, Rc<str>, Rc<str>);
/// Route, consumer (its own name) and kind of limit.
type QuotaSlotKey = (Rc<str>, Rc<str>, &'static str);

struct ModelSlot {
    labels: Labels,
    stats: Arc<AiModelStats>,
    /// By the consumer's own name (those counted as `other` included, up to a bound).
    consumers: RefCell<HashMap<Rc<str>, Rc<ConsumerSlot>>>,
}

struct ConsumerSlot {
    label: Rc<str>,
    stats: Arc<AiConsumerStats>,
    errors: RefCell<Vec<(&'static str, Arc<AtomicU64>)>>,
}

/// Beyond this many names a per-core map no longer remembers names counted as `other` (each
/// such request then asks the shared state again): the maps stay bounded whatever clients do.
const FOLDED_CACHE: usize = 4096;

/// One core's AI series. Not `Send`: it lives in the core's worker for the life of the process,
/// so series survive reloads.
pub struct AiRecorder {
    core: usize,
    shared: Arc<AiShared>,
    empty: Rc<str>,
    models: RefCell<HashMap<ModelKey, Rc<ModelSlot>>>,
    quota: RefCell<HashMap<QuotaSlotKey, Arc<AtomicU64>>>,
}

impl AiRecorder {
    /// The recorder of core `core`.
    pub fn new(core: usize, shared: Arc<AiShared>) -> Self {
        AiRecorder {
            core,
            shared,
            empty: Rc::from(""),
            models: RefCell::default(),
            quota: RefCell::default(),
        }
    }

    fn or_empty(&self, s: Option<&Rc<str>>) -> Rc<str> {
        s.cloned().unwrap_or_else(|| self.empty.clone())
    }

    fn model_slot(&self, s: &AiSample<'_>) -> Rc<ModelSlot> {
        let key: ModelKey = (
            self.or_empty(s.route),
            s.operation,
            s.provider_name,
            self.or_empty(s.provider),
            self.or_empty(s.model),
        );
        if let Some(slot) = self.models.borrow().get(&key) {
            return slot.clone();
        }
        let model = self.shared.model_label(&key.4);
        let labels = Labels {
            route: key.0.to_string(),
            operation: key.1,
            provider_name: key.2,
            provider: key.3.to_string(),
            model: model.to_owned(),
        };
        let folded = model != &*key.4;
        let slot = Rc::new(ModelSlot {
            stats: self.shared.model(&labels, self.core),
            labels,
            consumers: RefCell::default(),
        });
        let mut models = self.models.borrow_mut();
        if !folded || models.len() < FOLDED_CACHE {
            models.insert(key, slot.clone());
        }
        slot
    }

    fn consumer_slot(&self, m: &ModelSlot, consumer: Rc<str>) -> Rc<ConsumerSlot> {
        if let Some(slot) = m.consumers.borrow().get(&consumer) {
            return slot.clone();
        }
        let label = self.shared.consumer_label(&consumer);
        let folded = label != &*consumer;
        let label: Rc<str> = if folded {
            Rc::from(OTHER)
        } else {
            consumer.clone()
        };
        let slot = Rc::new(ConsumerSlot {
            stats: self.shared.consumer(&m.labels, &label, self.core),
            label,
            errors: RefCell::default(),
        });
        let mut map = m.consumers.borrow_mut();
        if !folded || map.len() < FOLDED_CACHE {
            map.insert(consumer, slot.clone());
        }
        slot
    }

    /// Records a finished LLM request.
    pub fn record(&self, s: &AiSample<'_>) {
        let m = self.model_slot(s);
        let c = self.consumer_slot(&m, self.or_empty(s.consumer));
        let ms = &*m.stats;
        let cs = &*c.stats;
        bump(&cs.requests, 1);
        ms.duration
            .observe(DURATION_BOUNDS_US, s.duration.as_micros() as u64);
        if let Some(t) = s.tokens {
            ms.input_tokens.observe(TOKEN_BOUNDS, t.input);
            ms.output_tokens.observe(TOKEN_BOUNDS, t.output);
            bump(&cs.input, t.input);
            bump(&cs.output, t.output);
            bump(&cs.cached_input, t.cached_input);
            bump(&cs.reasoning, t.reasoning);
            if t.estimated {
                bump(&cs.estimated, 1);
            }
        }
        if let Some(ttft) = s.first_token {
            ms.ttft.observe(TTFT_BOUNDS_US, ttft.as_micros() as u64);
        }
        if let Some(d) = s.stream {
            ms.stream.observe(DURATION_BOUNDS_US, d.as_micros() as u64);
        }
        if let Some((gaps, span)) = s.chunks {
            if gaps.n > 0 {
                for (i, n) in gaps.counts.iter().enumerate() {
                    if *n > 0 {
                        bump(&ms.chunk_gaps.counts[i], u64::from(*n));
                    }
                }
                bump(&ms.chunk_gaps.sum, gaps.sum_us);
            }
            let out = s.tokens.map_or(0, |t| t.output);
            if out > 1 {
                ms.tpot
                    .observe(TPOT_BOUNDS_US, span.as_micros() as u64 / (out - 1));
            }
        }
        if s.retries > 0 {
            bump(&ms.retries, u64::from(s.retries));
        }
        if s.fallback {
            bump(&ms.fallbacks, 1);
        }
        if let Some(n) = s.cost_nano {
            bump(&cs.cost_nano, n);
            bump(&cs.priced, 1);
        }
        if let Some(kind) = s.error {
            self.error(&m, &c, kind);
        }
    }

    fn error(&self, m: &ModelSlot, c: &ConsumerSlot, kind: &'static str) {
        let mut errors = c.errors.borrow_mut();
        // `kind`s are static strings: a handful per series, compared by content.
        if let Some((_, n)) = errors.iter().find(|(k, _)| *k == kind) {
            bump(n, 1);
            return;
        }
        let n = self.shared.error(&m.labels, &c.label, kind, self.core);
        bump(&n, 1);
        errors.push((kind, n));
    }

    /// Counts a request refused by a quota: `limit` says which kind (`requests`, `tokens`,
    /// `budget`, ...; a fixed set, as it is a label value).
    pub fn quota_rejected(
        &self,
        route: Option<&Rc<str>>,
        consumer: Option<&Rc<str>>,
        limit: &'static str,
    ) {
        let route = self.or_empty(route);
        let consumer = self.or_empty(consumer);
        let key = (route, consumer, limit);
        if let Some(n) = self.quota.borrow().get(&key) {
            bump(n, 1);
            return;
        }
        let label = self.shared.consumer_label(&key.1);
        let folded = label != &*key.1;
        let n = self.shared.quota(&key.0, label, limit, self.core);
        bump(&n, 1);
        let mut q = self.quota.borrow_mut();
        if !folded || q.len() < FOLDED_CACHE {
            q.insert(key, n);
        }
    }
}

#[cfg(test)]
mod tests;
