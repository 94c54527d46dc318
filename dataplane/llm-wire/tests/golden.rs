//! Golden-file tests: real-shaped payloads under `tests/golden/`, translated both ways and compared
//! with the `*.expected.*` files beside them. `WEIR_BLESS=1 cargo test -p weir-llm-wire` rewrites
//! the expected files (review the diff before keeping it).

// The helpers below are test code too: a panic is how they report a failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use weir_llm_wire::anthropic::{self as an, StreamEvent};
use weir_llm_wire::openai::{self as oa, StreamItem};
use weir_llm_wire::sse::{write_anthropic_event, write_openai_done, write_openai_item};
use weir_llm_wire::translate::*;
use weir_llm_wire::{Error, Usage};

const CREATED: u64 = 1_741_760_036;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load<T: DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares `actual` with the golden file, or writes it when blessing.
fn check(name: &str, actual: &str) {
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(path(name), actual).unwrap();
        return;
    }
    let expected = read(name);
    assert!(
        expected == actual,
        "{name} differs from its golden file\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn check_json<T: Serialize>(name: &str, value: &T) {
    let mut s = serde_json::to_string_pretty(value).unwrap();
    s.push('\n');
    check(name, &s);
}

/// Removes `null` members: both APIs treat them as absent.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

// === a byte-level SSE reader, as the proxy will see the upstream body ===

#[derive(Default)]
struct SseReader {
    buf: Vec<u8>,
}

struct SseEvent {
    event: Option<String>,
    data: String,
}

impl SseReader {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = std::str::from_utf8(&block[..end]).unwrap();
            let mut event = None;
            let mut data: Vec<&str> = Vec::new();
            for line in text.split('\n') {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            events.push(SseEvent {
                event,
                data: data.join("\n"),
            });
        }
        events
    }
}

const CHUNK_SIZES: [usize; 6] = [1, 2, 7, 61, 512, usize::MAX];

fn openai_to_anthropic_sse(input: &[u8], chunk: usize) -> (Vec<u8>, Vec<StreamEvent>, bool) {
    let mut reader = SseReader::default();
    let mut tr = OpenAiToAnthropicStream::new();
    let mut events = Vec::new();
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut complete = false;
    for piece in input.chunks(chunk.min(input.len())) {
        for ev in reader.feed(piece) {
            assert!(ev.event.is_none());
            if ev.data == "[DONE]" {
                complete = tr.finish(&mut events);
            } else {
                tr.push(serde_json::from_str(&ev.data).unwrap(), &mut events);
            }
            for e in events.drain(..) {
                write_anthropic_event(&mut out, &e).unwrap();
                all.push(e);
            }
        }
    }
    (out, all, complete)
}

fn anthropic_to_openai_sse(
    input: &[u8],
    chunk: usize,
    include_usage: bool,
) -> (Vec<u8>, Vec<StreamItem>, bool) {
    let mut reader = SseReader::default();
    let mut tr = AnthropicToOpenAiStream::new(include_usage, CREATED);
    let mut items = Vec::new();
    let mut all = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.min(input.len())) {
        for ev in reader.feed(piece) {
            let event: StreamEvent = serde_json::from_str(&ev.data).unwrap();
            assert_eq!(ev.event.as_deref(), Some(event.event_name()));
            tr.push(event, &mut items);
            for i in items.drain(..) {
                write_openai_item(&mut out, &i).unwrap();
                all.push(i);
            }
        }
    }
    let complete = tr.finish(&mut items);
    for i in items.drain(..) {
        write_openai_item(&mut out, &i).unwrap();
        all.push(i);
    }
    write_openai_done(&mut out);
    (out, all, complete)
}

// === accumulators: what an SDK makes of a stream ===

fn accumulate_anthropic(events: &[StreamEvent]) -> an::MessagesResponse {
    let mut msg: Option<an::MessagesResponse> = None;
    let mut json: Vec<String> = Vec::new();
    for e in events {
        match e.clone() {
            StreamEvent::MessageStart { message } => msg = Some(message),
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let m = msg.as_mut().unwrap();
                assert_eq!(index as usize, m.content.len(), "block indexes in order");
                m.content.push(content_block);
                json.push(String::new());
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let block = &mut msg.as_mut().unwrap().content[index as usize];
                match (block, delta) {
                    (
                        an::ContentBlock::Text { text, .. },
                        an::BlockDelta::TextDelta { text: t },
                    ) => text.push_str(&t),
                    (
                        an::ContentBlock::Thinking { thinking, .. },
                        an::BlockDelta::ThinkingDelta { thinking: t },
                    ) => thinking.push_str(&t),
                    (
                        an::ContentBlock::Thinking { signature, .. },
                        an::BlockDelta::SignatureDelta { signature: s },
                    ) => signature.push_str(&s),
                    (
                        an::ContentBlock::ToolUse { .. },
                        an::BlockDelta::InputJsonDelta { partial_json },
                    ) => json[index as usize].push_str(&partial_json),
                    (b, d) => panic!("delta {d:?} for block {b:?}"),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let an::ContentBlock::ToolUse { input, .. } =
                    &mut msg.as_mut().unwrap().content[index as usize]
                {
                    *input = serde_json::from_str(&json[index as usize]).unwrap();
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                let m = msg.as_mut().unwrap();
                m.stop_reason = delta.stop_reason;
                m.stop_sequence = delta.stop_sequence;
                m.usage.output_tokens = usage.output_tokens;
                if let Some(i) = usage.input_tokens {
                    m.usage.input_tokens = i;
                }
                if let Some(i) = usage.cache_read_input_tokens {
                    m.usage.cache_read_input_tokens = Some(i);
                }
                if let Some(i) = usage.cache_creation_input_tokens {
                    m.usage.cache_creation_input_tokens = Some(i);
                }
            }
            StreamEvent::MessageStop | StreamEvent::Ping => {}
            StreamEvent::Error { error } => panic!("error event {error:?}"),
        }
    }
    msg.unwrap()
}

fn accumulate_openai(items: &[StreamItem]) -> oa::ChatCompletion {
    let mut out: Option<oa::ChatCompletion> = None;
    let mut calls: Vec<oa::ToolCall> = Vec::new();
    for item in items {
        let StreamItem::Chunk(c) = item.clone() else {
            panic!("error item {item:?}")
        };
        let r = out.get_or_insert_with(|| oa::ChatCompletion {
            id: c.id.clone(),
            object: "chat.completion".into(),
            created: c.created,
            model: c.model.clone(),
            choices: vec![oa::Choice {
                index: 0,
                message: oa::ResponseMessage {
                    role: "assistant".into(),
                    content: None,
                    refusal: None,
                    tool_calls: None,
                    reasoning_content: None,
                    extra: Default::default(),
                },
                finish_reason: None,
                logprobs: None,
                extra: Default::default(),
            }],
            usage: None,
            system_fingerprint: None,
            extra: Default::default(),
        });
        if c.usage.is_some() {
            r.usage = c.usage;
        }
        for ch in c.choices {
            let m = &mut r.choices[0].message;
            if let Some(t) = ch.delta.content.filter(|t| !t.is_empty()) {
                m.content.get_or_insert_with(String::new).push_str(&t);
            }
            if let Some(t) = ch.delta.reasoning_content {
                m.reasoning_content
                    .get_or_insert_with(String::new)
                    .push_str(&t);
            }
            for d in ch.delta.tool_calls.into_iter().flatten() {
                let i = d.index as usize;
                if i == calls.len() {
                    calls.push(oa::ToolCall {
                        id: d.id.clone().unwrap(),
                        kind: "function".into(),
                        function: oa::FunctionCall {
                            name: String::new(),
                            arguments: String::new(),
                        },
                    });
                }
                let f = d.function.unwrap();
                if let Some(n) = f.name {
                    calls[i].function.name = n;
                }
                if let Some(a) = f.arguments {
                    calls[i].function.arguments.push_str(&a);
                }
            }
            if ch.finish_reason.is_some() {
                r.choices[0].finish_reason = ch.finish_reason;
            }
        }
    }
    let mut r = out.unwrap();
    // Compare arguments by meaning, not by spacing.
    for c in &mut calls {
        let v: Value = serde_json::from_str(&c.function.arguments).unwrap();
        c.function.arguments = v.to_string();
    }
    if !calls.is_empty() {
        r.choices[0].message.tool_calls = Some(calls);
    }
    r
}

fn normalize_arguments(resp: &mut oa::ChatCompletion) {
    for c in resp.choices[0].message.tool_calls.iter_mut().flatten() {
        let v: Value = serde_json::from_str(&c.function.arguments).unwrap();
        c.function.arguments = v.to_string();
    }
}

// === parsing keeps everything ===

#[test]
fn every_golden_body_round_trips_through_the_types() {
    fn rt<T: DeserializeOwned + Serialize>(name: &str) {
        let mut original: Value = load(name);
        let typed: T = load(name);
        let mut again = serde_json::to_value(&typed).unwrap();
        strip_nulls(&mut original);
        strip_nulls(&mut again);
        assert_eq!(original, again, "{name}");
    }
    rt::<oa::ChatCompletionRequest>("openai_request.json");
    rt::<oa::ChatCompletion>("openai_response.json");
    rt::<oa::ErrorBody>("openai_error.json");
    rt::<an::MessagesRequest>("anthropic_request.json");
    rt::<an::MessagesResponse>("anthropic_response.json");
    rt::<an::ErrorBody>("anthropic_error.json");

    for name in [
        "openai_stream_tools.sse",
        "openai_stream_text.sse",
        "anthropic_stream_thinking_tool.sse",
    ] {
        for ev in SseReader::default().feed(read(name).as_bytes()) {
            if ev.data == "[DONE]" {
                continue;
            }
            let mut original: Value = serde_json::from_str(&ev.data).unwrap();
            let mut again = if name.starts_with("openai") {
                serde_json::to_value(serde_json::from_str::<StreamItem>(&ev.data).unwrap())
            } else {
                serde_json::to_value(serde_json::from_str::<StreamEvent>(&ev.data).unwrap())
            }
            .unwrap();
            strip_nulls(&mut original);
            strip_nulls(&mut again);
            assert_eq!(original, again, "{name}: {}", ev.data);
        }
    }
}

#[test]
fn unknown_fields_are_kept() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi","x_user":1}],
        "prediction":{"type":"content","content":"x"},"x_vendor":{"a":[1,2]}}"#;
    let req: oa::ChatCompletionRequest = serde_json::from_str(body).unwrap();
    let mut a: Value = serde_json::from_str(body).unwrap();
    let mut b = serde_json::to_value(&req).unwrap();
    strip_nulls(&mut a);
    strip_nulls(&mut b);
    assert_eq!(a, b);
    let body =
        r#"{"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}"#;
    let block: an::ContentBlock = serde_json::from_str(body).unwrap();
    assert!(matches!(block, an::ContentBlock::Other(_)));
    assert_eq!(
        serde_json::to_value(&block).unwrap(),
        serde_json::from_str::<Value>(body).unwrap()
    );
}

// === requests ===

#[test]
fn openai_request_to_anthropic() {
    let req: oa::ChatCompletionRequest = load("openai_request.json");
    let out = openai_to_anthropic_request(req, &ToAnthropicOptions::default()).unwrap();
    check_json("openai_request.to_anthropic.json", &out);

    assert_eq!(out.max_tokens, 1024);
    assert_eq!(
        out.messages.len(),
        5,
        "user, assistant, user(tool results), assistant, user"
    );
    let an::Content::Blocks(results) = &out.messages[2].content else {
        panic!()
    };
    assert!(
        matches!(&results[0], an::ContentBlock::ToolResult { tool_use_id, .. } if tool_use_id == "call_abc123")
    );
    assert!(
        matches!(&results[1], an::ContentBlock::ToolResult { tool_use_id, .. } if tool_use_id == "call_def456")
    );
}

#[test]
fn anthropic_request_to_openai() {
    let req: an::MessagesRequest = load("anthropic_request.json");
    let out = anthropic_to_openai_request(req, &ToOpenAiOptions::default()).unwrap();
    check_json("anthropic_request.to_openai.json", &out);
    assert_eq!(out.max_completion_tokens, Some(16000));
    assert_eq!(out.reasoning_effort.as_deref(), Some("medium"));
    assert_eq!(out.parallel_tool_calls, Some(false));
    assert_eq!(
        out.stream_options.and_then(|o| o.include_usage),
        Some(true),
        "usage is always asked for upstream"
    );
    let opts = ToOpenAiOptions {
        max_tokens_field: MaxTokensField::MaxTokens,
    };
    let out = anthropic_to_openai_request(load("anthropic_request.json"), &opts).unwrap();
    assert_eq!(
        (out.max_tokens, out.max_completion_tokens),
        (Some(16000), None)
    );
}

#[test]
fn request_round_trip_openai_anthropic_openai() {
    let original: oa::ChatCompletionRequest = load("openai_request.json");
    let there =
        openai_to_anthropic_request(original.clone(), &ToAnthropicOptions::default()).unwrap();
    let back = anthropic_to_openai_request(there, &ToOpenAiOptions::default()).unwrap();
    check_json("openai_request.round_trip.json", &back);

    // Same conversation: system and developer became one system message; the rest in order.
    let roles: Vec<&str> = back
        .messages
        .iter()
        .map(|m| match m {
            oa::ChatMessage::System(_) => "system",
            oa::ChatMessage::Developer(_) => "developer",
            oa::ChatMessage::User(_) => "user",
            oa::ChatMessage::Assistant(_) => "assistant",
            oa::ChatMessage::Tool(_) => "tool",
        })
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "user"
        ]
    );
    assert_eq!(
        original.messages[2],
        back.messages[1].clone().without_detail()
    );
    assert_eq!(original.messages[3], back.messages[2]);
    assert_eq!(
        original.tools.as_ref().unwrap()[0]
            .function
            .as_ref()
            .unwrap()
            .parameters,
        back.tools.as_ref().unwrap()[0]
            .function
            .as_ref()
            .unwrap()
            .parameters
    );
    assert_eq!(original.stop, back.stop);
    assert_eq!(original.temperature, back.temperature);
    assert_eq!(original.top_p, back.top_p);
    assert_eq!(original.user, back.user);
    assert_eq!(original.max_completion_tokens, back.max_completion_tokens);
    assert_eq!(original.tool_choice, back.tool_choice);
}

trait WithoutDetail {
    fn without_detail(self) -> Self;
}

impl WithoutDetail for oa::ChatMessage {
    /// `detail` is the one hint the translation ignores; put it back for comparison.
    fn without_detail(mut self) -> Self {
        if let oa::ChatMessage::User(u) = &mut self {
            if let oa::MessageContent::Parts(parts) = &mut u.content {
                if let Some(oa::ContentPart::ImageUrl { image_url, .. }) = parts.get_mut(1) {
                    image_url.detail = Some("low".into());
                }
            }
        }
        self
    }
}

#[test]
fn request_round_trip_anthropic_openai_anthropic() {
    let original: an::MessagesRequest = load("anthropic_request.json");
    let there = anthropic_to_openai_request(original.clone(), &ToOpenAiOptions::default()).unwrap();
    let back = openai_to_anthropic_request(there, &ToAnthropicOptions::default()).unwrap();
    check_json("anthropic_request.round_trip.json", &back);
    assert_eq!(back.max_tokens, original.max_tokens);
    assert_eq!(back.stop_sequences, original.stop_sequences);
    assert_eq!(back.messages.len(), original.messages.len());
    assert_eq!(back.tools.as_ref().unwrap().len(), 2);
    assert_eq!(
        back.metadata.unwrap().user_id,
        original.metadata.unwrap().user_id
    );
    assert!(back.thinking.is_some());
}

// === responses ===

#[test]
fn openai_response_to_anthropic_and_back() {
    let original: oa::ChatCompletion = load("openai_response.json");
    let there = openai_to_anthropic_response(original.clone()).unwrap();
    check_json("openai_response.to_anthropic.json", &there);
    assert_eq!(there.stop_reason, Some(an::StopReason::ToolUse));
    assert_eq!(
        Usage::from_anthropic(&there.usage),
        Usage::from_openai(original.usage.as_ref().unwrap())
    );

    let back = anthropic_to_openai_response(there, original.created).unwrap();
    assert_eq!(
        back.choices[0].message.tool_calls,
        original.choices[0].message.tool_calls
    );
    assert_eq!(
        back.choices[0].finish_reason,
        original.choices[0].finish_reason
    );
    assert_eq!(back.choices[0].message.content, None);
    let (u, v) = (back.usage.unwrap(), original.usage.unwrap());
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (v.prompt_tokens, v.completion_tokens, v.total_tokens)
    );
    assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(1024));
}

#[test]
fn anthropic_response_to_openai_and_back() {
    let original: an::MessagesResponse = load("anthropic_response.json");
    let there = anthropic_to_openai_response(original.clone(), CREATED).unwrap();
    check_json("anthropic_response.to_openai.json", &there);
    let usage = there.usage.as_ref().unwrap();
    assert_eq!(usage.prompt_tokens, 472 + 100 + 2048);
    assert_eq!(
        usage.prompt_tokens_details.as_ref().unwrap().cached_tokens,
        Some(2048)
    );

    let back = openai_to_anthropic_response(there).unwrap();
    assert_eq!(back.stop_reason, original.stop_reason);
    assert_eq!(back.content.len(), 3);
    assert_eq!(back.content[1], original.content[1]);
    assert_eq!(back.content[2], original.content[2]);
    // Thinking text survives; its signature has no OpenAI field.
    assert!(
        matches!(&back.content[0], an::ContentBlock::Thinking { thinking, signature, .. }
        if thinking.starts_with("The user wants") && signature.is_empty())
    );
    let (a, b) = (
        Usage::from_anthropic(&back.usage),
        Usage::from_anthropic(&original.usage),
    );
    assert_eq!(
        (a.input, a.output, a.cached_input),
        (b.input, b.output, b.cached_input)
    );
}

// === streams ===

#[test]
fn openai_tool_stream_to_anthropic_chunk_by_chunk() {
    let input = read("openai_stream_tools.sse");
    let (whole, events, complete) = openai_to_anthropic_sse(input.as_bytes(), usize::MAX);
    assert!(complete);
    check(
        "openai_stream_tools.to_anthropic.sse",
        std::str::from_utf8(&whole).unwrap(),
    );
    for size in CHUNK_SIZES {
        assert_eq!(
            openai_to_anthropic_sse(input.as_bytes(), size).0,
            whole,
            "chunk size {size}"
        );
    }
    // The stream says what the non-streaming translation of the same answer says.
    let mut items = Vec::new();
    for ev in SseReader::default().feed(input.as_bytes()) {
        if ev.data != "[DONE]" {
            items.push(serde_json::from_str::<StreamItem>(&ev.data).unwrap());
        }
    }
    let expected = openai_to_anthropic_response(accumulate_openai(&items)).unwrap();
    assert_eq!(accumulate_anthropic(&events), expected);
    let names: Vec<&str> = events.iter().map(|e| e.event_name()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
}

#[test]
fn openai_text_stream_to_anthropic() {
    let input = read("openai_stream_text.sse");
    let (whole, events, complete) = openai_to_anthropic_sse(input.as_bytes(), 5);
    assert!(complete);
    check(
        "openai_stream_text.to_anthropic.sse",
        std::str::from_utf8(&whole).unwrap(),
    );
    let msg = accumulate_anthropic(&events);
    assert_eq!(
        msg.content,
        [an::ContentBlock::text("Hello! How can I help you today?")]
    );
    assert_eq!(msg.stop_reason, Some(an::StopReason::EndTurn));
    assert_eq!((msg.usage.input_tokens, msg.usage.output_tokens), (19, 10));
}

#[test]
fn anthropic_stream_to_openai_chunk_by_chunk() {
    let input = read("anthropic_stream_thinking_tool.sse");
    for include_usage in [true, false] {
        let (whole, items, complete) =
            anthropic_to_openai_sse(input.as_bytes(), usize::MAX, include_usage);
        assert!(complete);
        let name = if include_usage {
            "anthropic_stream_thinking_tool.to_openai.sse"
        } else {
            "anthropic_stream_thinking_tool.to_openai.no_usage.sse"
        };
        check(name, std::str::from_utf8(&whole).unwrap());
        for size in CHUNK_SIZES {
            assert_eq!(
                anthropic_to_openai_sse(input.as_bytes(), size, include_usage).0,
                whole,
                "chunk size {size}"
            );
        }
        let has_usage = items
            .iter()
            .any(|i| matches!(i, StreamItem::Chunk(c) if c.usage.is_some()));
        assert_eq!(has_usage, include_usage);
        if include_usage {
            let mut events = Vec::new();
            for ev in SseReader::default().feed(input.as_bytes()) {
                events.push(serde_json::from_str::<StreamEvent>(&ev.data).unwrap());
            }
            let mut expected =
                anthropic_to_openai_response(accumulate_anthropic(&events), CREATED).unwrap();
            normalize_arguments(&mut expected);
            assert_eq!(accumulate_openai(&items), expected);
        }
    }
}

#[test]
fn stream_round_trip_openai_anthropic_openai() {
    let input = read("openai_stream_tools.sse");
    let (anthropic_sse, _, _) = openai_to_anthropic_sse(input.as_bytes(), 13);
    let (_, items, complete) = anthropic_to_openai_sse(&anthropic_sse, 13, true);
    assert!(complete);
    let mut original = Vec::new();
    for ev in SseReader::default().feed(input.as_bytes()) {
        if ev.data != "[DONE]" {
            original.push(serde_json::from_str::<StreamItem>(&ev.data).unwrap());
        }
    }
    let a = accumulate_openai(&original);
    let b = accumulate_openai(&items);
    assert_eq!(
        a.choices[0].message.tool_calls,
        b.choices[0].message.tool_calls
    );
    assert_eq!(a.choices[0].finish_reason, b.choices[0].finish_reason);
    let (ua, ub) = (a.usage.unwrap(), b.usage.unwrap());
    assert_eq!(Usage::from_openai(&ua), Usage::from_openai(&ub));
}

#[test]
fn cut_short_streams_say_so() {
    // The OpenAI upstream dies before `finish_reason`: the client still gets a well-formed end,
    // with no stop reason, and the caller learns the answer was cut.
    let input = read("openai_stream_tools.sse");
    let cut = &input[..input.find("\"finish_reason\":\"tool_calls\"").unwrap()];
    let cut = &cut[..cut.rfind("\n\n").unwrap() + 2];
    let mut tr = OpenAiToAnthropicStream::new();
    let mut events = Vec::new();
    for e in SseReader::default().feed(cut.as_bytes()) {
        tr.push(serde_json::from_str(&e.data).unwrap(), &mut events);
    }
    events.clear();
    assert!(!tr.finish(&mut events));
    let names: Vec<&str> = events.iter().map(|e| e.event_name()).collect();
    assert_eq!(
        names,
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        matches!(&events[1], StreamEvent::MessageDelta { delta, .. } if delta.stop_reason.is_none())
    );

    // The Anthropic upstream dies before `message_delta`.
    let input = read("anthropic_stream_thinking_tool.sse");
    let cut = &input[..input.find("event: message_delta").unwrap()];
    let (_, _, complete) = anthropic_to_openai_sse(cut.as_bytes(), 9, true);
    assert!(!complete);
}

#[test]
fn stream_errors_cross_over() {
    let mut tr = OpenAiToAnthropicStream::new();
    let mut out = Vec::new();
    let item: StreamItem = serde_json::from_str(&read("openai_error.json")).unwrap();
    tr.push(item, &mut out);
    let mut sse = Vec::new();
    for e in &out {
        write_anthropic_event(&mut sse, e).unwrap();
    }
    check(
        "openai_error.stream_to_anthropic.sse",
        std::str::from_utf8(&sse).unwrap(),
    );

    let mut tr = AnthropicToOpenAiStream::new(true, CREATED);
    let mut out = Vec::new();
    let err: an::ErrorBody = load("anthropic_error.json");
    tr.push(StreamEvent::Error { error: err.error }, &mut out);
    assert!(tr.finish(&mut Vec::new()));
    let mut sse = Vec::new();
    for i in &out {
        write_openai_item(&mut sse, i).unwrap();
    }
    check(
        "anthropic_error.stream_to_openai.sse",
        std::str::from_utf8(&sse).unwrap(),
    );
}

// === errors ===

#[test]
fn error_bodies_both_ways() {
    let oa_err: oa::ErrorBody = load("openai_error.json");
    check_json(
        "openai_error.to_anthropic.json",
        &openai_error_to_anthropic(oa_err, 429),
    );
    let an_err: an::ErrorBody = load("anthropic_error.json");
    check_json(
        "anthropic_error.to_openai.json",
        &anthropic_error_to_openai(an_err, 529),
    );
}

// === untranslatable fields ===

fn openai_refuses(patch: Value) -> String {
    let mut body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
    });
    let (Value::Object(b), Value::Object(p)) = (&mut body, patch) else {
        panic!()
    };
    b.extend(p);
    let req: oa::ChatCompletionRequest = serde_json::from_value(body).unwrap();
    match openai_to_anthropic_request(req, &ToAnthropicOptions::default()) {
        Err(Error::Untranslatable { field }) => field,
        other => panic!("expected Untranslatable, got {other:?}"),
    }
}

#[test]
fn every_untranslatable_openai_field_is_named() {
    use serde_json::json;
    let cases = [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"seed": 7}), "seed"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
        (json!({"frequency_penalty": -0.5}), "frequency_penalty"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format.type=json_object",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
            "response_format.type=json_schema",
        ),
        (json!({"temperature": 1.5}), "temperature"),
        (json!({"store": true}), "store"),
        (
            json!({"prediction": {"type": "content", "content": "x"}}),
            "prediction",
        ),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
            "messages[0].content[0].type=input_audio",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].type=image_url",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi", "audio": {"id": "a"}}]}),
            "messages[0].audio",
        ),
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type=custom",
        ),
        (
            json!({"reasoning_effort": "high", "max_tokens": 600}),
            "reasoning_effort",
        ),
    ];
    for (patch, field) in cases {
        assert_eq!(openai_refuses(patch.clone()), field, "{patch}");
    }
    // Values that say "default" are not refused.
    for ok in [
        json!({"n": 1, "logprobs": false, "presence_penalty": 0, "store": false}),
        json!({"response_format": {"type": "text"}, "temperature": 1.0, "logit_bias": {}}),
    ] {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(ok.as_object().unwrap().clone());
        let req: oa::ChatCompletionRequest = serde_json::from_value(body).unwrap();
        openai_to_anthropic_request(req, &ToAnthropicOptions::default()).unwrap();
    }
}

fn anthropic_refuses(patch: Value) -> String {
    let mut body = serde_json::json!({
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    });
    let (Value::Object(b), Value::Object(p)) = (&mut body, patch) else {
        panic!()
    };
    b.extend(p);
    let req: an::MessagesRequest = serde_json::from_value(body).unwrap();
    match anthropic_to_openai_request(req, &ToOpenAiOptions::default()) {
        Err(Error::Untranslatable { field }) => field,
        other => panic!("expected Untranslatable, got {other:?}"),
    }
}

#[test]
fn every_untranslatable_anthropic_field_is_named() {
    use serde_json::json;
    let cases = [
        (json!({"top_k": 40}), "top_k"),
        (
            json!({"stop_sequences": ["a", "b", "c", "d", "e"]}),
            "stop_sequences",
        ),
        (json!({"container": "c_1"}), "container"),
        (json!({"mcp_servers": []}), "mcp_servers"),
        (json!({"service_tier": "auto"}), "service_tier"),
        (
            json!({"metadata": {"user_id": "u", "other": 1}}),
            "metadata.other",
        ),
        (
            json!({"thinking": {"type": "adaptive"}}),
            "thinking.type=adaptive",
        ),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]}),
            "tools[0].type=web_search_20250305",
        ),
        (
            json!({"system": [{"type": "text", "text": "s", "weird": 1}]}),
            "system[0].weird",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            "messages[0].content[0].type=document",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
            "messages[0].content[0].source.type=file",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}]}),
            "messages[0].content[0].content[0].type=image",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]}),
            "messages[0].content[0].type=server_tool_use",
        ),
    ];
    for (patch, field) in cases {
        assert_eq!(anthropic_refuses(patch.clone()), field, "{patch}");
    }
}

#[test]
fn untranslatable_responses() {
    let mut two: oa::ChatCompletion = load("openai_response.json");
    two.choices.push(two.choices[0].clone());
    assert_eq!(
        openai_to_anthropic_response(two).unwrap_err(),
        Error::Untranslatable {
            field: "choices".into()
        }
    );
    let mut msg: an::MessagesResponse = load("anthropic_response.json");
    msg.content.push(serde_json::from_value(serde_json::json!(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
    )).unwrap());
    assert_eq!(
        anthropic_to_openai_response(msg, CREATED).unwrap_err(),
        Error::Untranslatable {
            field: "content[3].type=server_tool_use".into()
        }
    );
}
