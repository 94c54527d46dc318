//! Rough CPU cost per translated stream event: parse the upstream `data:` JSON, translate, write
//! the client's SSE bytes. Not a criterion benchmark (those belong in `bench/`); a first figure.
//!
//! `cargo run --release -p weir-llm-wire --example stream_cost`

use std::error::Error;
use std::time::Instant;

use weir_llm_wire::anthropic::StreamEvent;
use weir_llm_wire::openai::StreamItem;
use weir_llm_wire::sse::{write_anthropic_event, write_openai_item};
use weir_llm_wire::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};

fn data_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/");
    let oa_text = std::fs::read_to_string(format!("{dir}openai_stream_tools.sse"))?;
    let an_text = std::fs::read_to_string(format!("{dir}anthropic_stream_thinking_tool.sse"))?;
    let oa_lines = data_lines(&oa_text);
    let an_lines = data_lines(&an_text);
    let rounds = 20_000;

    let mut out = Vec::with_capacity(4096);
    let mut events = Vec::new();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut tr = OpenAiToAnthropicStream::new();
        for line in &oa_lines {
            tr.push(serde_json::from_str::<StreamItem>(line)?, &mut events);
            for e in events.drain(..) {
                write_anthropic_event(&mut out, &e)?;
            }
            out.clear();
        }
        tr.finish(&mut events);
        events.clear();
    }
    let n = (rounds * oa_lines.len()) as f64;
    println!(
        "OpenAI -> Anthropic: {:.2} µs per upstream event ({} events per stream)",
        start.elapsed().as_secs_f64() * 1e6 / n,
        oa_lines.len()
    );

    let mut items = Vec::new();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut tr = AnthropicToOpenAiStream::new(true, 1);
        for line in &an_lines {
            tr.push(serde_json::from_str::<StreamEvent>(line)?, &mut items);
            for i in items.drain(..) {
                write_openai_item(&mut out, &i)?;
            }
            out.clear();
        }
        tr.finish(&mut items);
        items.clear();
    }
    let n = (rounds * an_lines.len()) as f64;
    println!(
        "Anthropic -> OpenAI: {:.2} µs per upstream event ({} events per stream)",
        start.elapsed().as_secs_f64() * 1e6 / n,
        an_lines.len()
    );
    Ok(())
}
