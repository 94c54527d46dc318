//! Stream shaping on `ai` routes: what one streamed event costs when Weir passes an OpenAI stream
//! through, translates it for an Anthropic client, or translates an Anthropic stream for an OpenAI
//! client (`weir_ai::shape`).
//!
//! The inputs are realistic answers of 100 tokens, written as the providers write them: an OpenAI
//! `chat.completion.chunk` stream with `stream_options.include_usage` (role chunk, 100 content
//! chunks, a `finish_reason` chunk, the usage chunk, `[DONE]`: 104 events) and the Anthropic
//! Messages stream of the same answer (`message_start`, `content_block_start`, a `ping`, 100
//! `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`: 106 events).
//! Each is fed the way the proxy feeds it: one `feed` per upstream read into an output buffer
//! cleared before each read, then `finish`. `per_event_reads` gives every event its own read (a
//! stream trickling out of a model); `one_buffer` hands the whole stream over in one read (the
//! cheapest case for the SSE scanner). Throughput is the number of upstream events, so criterion
//! prints the time per event.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use weir_ai::shape::{AnthropicToOpenAi, OpenAiPassStream, OpenAiToAnthropic, Shaper};

const TOKENS: usize = 100;

/// 100 pieces of an answer, as a tokenizer cuts them: mostly words with their leading space.
fn tokens() -> Vec<String> {
    const TEXT: &str = "A reverse proxy sits in front of your servers and accepts client \
        connections on their behalf, then forwards each request to a backend chosen by its \
        rules, such as the path, the host or a header. It can terminate TLS, balance load \
        across healthy instances, retry failed calls, cache answers, compress bodies, enforce \
        limits and add headers like X-Forwarded-For, so that the backends stay simple while \
        the clients see one stable address. For model APIs it also routes by model, keeps \
        keys out of the clients' hands and counts tokens for every call it forwards, \
        logging what each one cost.";
    let words: Vec<&str> = TEXT.split_whitespace().collect();
    assert!(words.len() >= TOKENS, "the sample text has too few words");
    words[..TOKENS]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                (*w).to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An OpenAI chat stream, one `Vec<u8>` per SSE event (`data: ...\n\n`).
fn openai_stream() -> Vec<Vec<u8>> {
    let head = r#"{"id":"chatcmpl-BdTjS5x3qAiWXvQHcZ9Ev8bLmKp2R","object":"chat.completion.chunk","created":1763716800,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","#;
    let chunk = |choices: &str, usage: &str| {
        format!("data: {head}\"choices\":{choices},\"usage\":{usage}}}\n\n").into_bytes()
    };
    let mut events = vec![chunk(
        r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        "null",
    )];
    for t in tokens() {
        let c = format!(
            r#"[{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}]"#,
            json_str(&t)
        );
        events.push(chunk(&c, "null"));
    }
    events.push(chunk(
        r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#,
        "null",
    ));
    events.push(chunk(
        "[]",
        r#"{"prompt_tokens":31,"completion_tokens":100,"total_tokens":131,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
    ));
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

/// The same answer as an Anthropic Messages stream, one `Vec<u8>` per SSE event.
fn anthropic_stream() -> Vec<Vec<u8>> {
    let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut events = vec![
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ev("ping", r#"{"type": "ping"}"#),
    ];
    for t in tokens() {
        let d = format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
            json_str(&t)
        );
        events.push(ev("content_block_delta", &d));
    }
    events.push(ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    events.push(ev(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":100}}"#,
    ));
    events.push(ev("message_stop", r#"{"type":"message_stop"}"#));
    events
}

/// Feeds `reads` through `shaper` as the proxy does; returns the client bytes written and whether
/// the shaper saw a complete answer.
fn run(mut shaper: impl Shaper, reads: &[Vec<u8>], out: &mut Vec<u8>) -> (usize, bool) {
    let mut written = 0;
    for r in reads {
        out.clear();
        if shaper.feed(r, out).is_err() {
            return (written, false);
        }
        written += out.len();
    }
    out.clear();
    let complete = shaper.finish(out).unwrap_or(false);
    (written + out.len(), complete)
}

/// Checks once, outside the timed loop, that a shaper accepts the whole stream and says what it
/// wrote: a bench of a translator that rejects its input would measure an early return.
fn check(name: &str, shaper: impl Shaper, reads: &[Vec<u8>], want: &str, want_count: usize) {
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut s = shaper;
    for r in reads {
        out.clear();
        if let Err(e) = s.feed(r, &mut out) {
            panic!("{name}: feed failed: {e}");
        }
        all.extend_from_slice(&out);
    }
    out.clear();
    let complete = s.finish(&mut out).unwrap_or(false);
    all.extend_from_slice(&out);
    assert!(complete, "{name}: the shaper did not see a complete answer");
    assert!(s.usage().is_some(), "{name}: no usage read");
    let text = String::from_utf8_lossy(&all);
    let n = text.matches(want).count();
    assert_eq!(
        n, want_count,
        "{name}: {n} × `{want}` in the output, want {want_count}"
    );
}

type RunFn = fn(&[Vec<u8>], &mut Vec<u8>) -> (usize, bool);

fn openai_to_anthropic(reads: &[Vec<u8>], out: &mut Vec<u8>) -> (usize, bool) {
    run(OpenAiToAnthropic::new(), reads, out)
}

fn openai_pass(reads: &[Vec<u8>], out: &mut Vec<u8>) -> (usize, bool) {
    run(OpenAiPassStream::new(false), reads, out)
}

fn anthropic_to_openai(reads: &[Vec<u8>], out: &mut Vec<u8>) -> (usize, bool) {
    run(AnthropicToOpenAi::new(true, 1_763_716_800), reads, out)
}

/// One benchmark: a shaper, the upstream stream it is fed and how it is cut into reads.
struct Case {
    name: &'static str,
    feeding: &'static str,
    events: usize,
    reads: Vec<Vec<u8>>,
    run: RunFn,
}

/// Every case, after checking that each shaper takes its whole stream.
fn cases() -> Vec<Case> {
    let oa = openai_stream();
    let an = anthropic_stream();
    check(
        "openai_to_anthropic",
        OpenAiToAnthropic::new(),
        &oa,
        "event: content_block_delta",
        TOKENS,
    );
    check(
        "anthropic_to_openai",
        AnthropicToOpenAi::new(true, 1_763_716_800),
        &an,
        "\"content\":",
        TOKENS + 1, // the role chunk carries `"content":""`
    );
    check(
        "openai_pass",
        OpenAiPassStream::new(false),
        &oa,
        "\"content\":",
        TOKENS + 1,
    );
    let mut v = Vec::new();
    for (feeding, whole) in [("per_event_reads", false), ("one_buffer", true)] {
        let cut = |s: &Vec<Vec<u8>>| if whole { vec![s.concat()] } else { s.clone() };
        v.push(Case {
            name: "openai_to_anthropic",
            feeding,
            events: oa.len(),
            reads: cut(&oa),
            run: openai_to_anthropic,
        });
        v.push(Case {
            name: "openai_pass",
            feeding,
            events: oa.len(),
            reads: cut(&oa),
            run: openai_pass,
        });
        v.push(Case {
            name: "anthropic_to_openai",
            feeding,
            events: an.len(),
            reads: cut(&an),
            run: anthropic_to_openai,
        });
    }
    v
}

fn bench_shapers(c: &mut Criterion) {
    let mut g = c.benchmark_group("shape_stream");
    let mut out = Vec::with_capacity(1024);
    for case in cases() {
        g.throughput(Throughput::Elements(case.events as u64));
        g.bench_with_input(
            BenchmarkId::new(case.name, case.feeding),
            &case.reads,
            |b, reads| b.iter(|| black_box((case.run)(reads, &mut out))),
        );
    }
    g.finish();
}

/// `AI_SHAPE_STREAMS=N [AI_SHAPE_ONLY=name/feeding]`: feeds N streams through each case (or the
/// one named) without criterion, for counting instructions under
/// `valgrind --tool=callgrind` (run it with N and with 0; the difference / (N × events) is the
/// instructions per event).
fn count_mode(streams: usize) {
    let only = std::env::var("AI_SHAPE_ONLY").ok();
    let mut out = Vec::with_capacity(1024);
    for case in cases() {
        let id = format!("{}/{}", case.name, case.feeding);
        if only.as_deref().is_some_and(|o| o != id) {
            continue;
        }
        let mut written = 0;
        for _ in 0..streams {
            written += (case.run)(black_box(&case.reads), &mut out).0;
        }
        let input: usize = case.reads.iter().map(Vec::len).sum();
        println!(
            "{id}: {streams} streams x {} events ({input} bytes), {written} bytes written",
            case.events
        );
    }
}

criterion_group!(benches, bench_shapers);

fn main() {
    if let Some(n) = std::env::var("AI_SHAPE_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
