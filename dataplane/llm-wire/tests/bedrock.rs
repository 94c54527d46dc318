//! Bedrock Converse translation: golden files under `tests/golden/bedrock_*` (bless with
//! `WEIR_BLESS=1 cargo test -p weir-llm-wire --test bedrock`, then review the diff), and unit tests
//! per translation.
//!
//! Stream goldens are lists of `[event type, payload]`; the test frames them with the AWS
//! event-stream encoder of `weir-sse`, decodes them back in chunks of every size (as the proxy
//! sees the upstream body), and compares the OpenAI SSE the translator writes.

// Test code: a panic is how a helper reports a failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};
use weir_llm_wire::bedrock as br;
use weir_llm_wire::openai::{self as oa, StreamItem};
use weir_llm_wire::sse::{write_openai_done, write_openai_item};
use weir_llm_wire::translate::bedrock::*;
use weir_llm_wire::{Error, Usage};
use weir_sse::eventstream::{encode, Decoder, Header, HeaderValue};

const CREATED: u64 = 1_741_760_036;
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
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

fn request(patch: Value) -> oa::ChatCompletionRequest {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
    });
    let (Value::Object(b), Value::Object(p)) = (&mut body, patch) else {
        panic!()
    };
    b.extend(p);
    serde_json::from_value(body).unwrap()
}

fn to_bedrock(patch: Value) -> Value {
    serde_json::to_value(openai_to_bedrock_request(request(patch)).unwrap()).unwrap()
}

fn refuses(patch: Value) -> String {
    match openai_to_bedrock_request(request(patch)) {
        Err(Error::Untranslatable { field }) => field,
        other => panic!("expected Untranslatable, got {other:?}"),
    }
}

// === requests ===

#[test]
fn openai_request_to_bedrock() {
    let req: oa::ChatCompletionRequest =
        serde_json::from_str(&read("bedrock_openai_request.json")).unwrap();
    let out = openai_to_bedrock_request(req).unwrap();
    check_json("bedrock_openai_request.to_bedrock.json", &out);

    // Roles alternate, starting with the user, as Converse requires.
    let roles: Vec<br::Role> = out.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles[0], br::Role::User);
    assert!(roles.windows(2).all(|w| w[0] != w[1]), "{roles:?}");
    // The model is not in the body.
    let body = serde_json::to_value(&out).unwrap();
    assert!(body.get("model").is_none());
    assert!(!body.to_string().contains("claude"));
}

#[test]
fn consecutive_turns_merge_and_tool_results_lead_their_turn() {
    let body = to_bedrock(json!({
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]},
            {"role": "assistant", "content": "and more"},
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            {"role": "user", "content": "three"}
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}]
    }));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
                {"text": "and more"}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "r1"}]}},
                {"text": "three"}
            ]}
        ])
    );
    // A tool without parameters gets an empty object schema.
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]})
    );
}

#[test]
fn images_only_as_data_urls_of_four_types() {
    let image = |url: &str| {
        json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}]})
    };
    for (media, format) in [
        ("image/png", "png"),
        ("image/jpeg", "jpeg"),
        ("image/gif", "gif"),
        ("image/webp", "webp"),
    ] {
        let body = to_bedrock(image(&format!("data:{media};base64,AAAA")));
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"image": {"format": format, "source": {"bytes": "AAAA"}}})
        );
    }
    for url in [
        "https://example.com/cat.png",
        "http://example.com/cat.png",
        "data:image/bmp;base64,AAAA",
    ] {
        assert_eq!(refuses(image(url)), "messages[0].content[1].image_url.url");
    }
    let err = openai_to_bedrock_request(request(image("data:image/png,rawbytes"))).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert_eq!(err.field(), "messages[0].content[1].image_url.url");
}

#[test]
fn tool_choice_modes() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let choice = |c: Value| to_bedrock(json!({"tools": tools, "tool_choice": c}));
    assert_eq!(
        choice(json!("auto"))["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );
    assert_eq!(
        choice(json!("required"))["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}}))["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    // `none` with no tool calls in the conversation: the tools are left out.
    assert!(choice(json!("none")).get("toolConfig").is_none());
    // Parallel calls allowed is the default; without tools the flag says nothing.
    to_bedrock(json!({"tools": tools, "parallel_tool_calls": true}));
    to_bedrock(json!({"parallel_tool_calls": false}));
}

#[test]
fn inference_config_and_reasoning() {
    let body = to_bedrock(json!({"max_tokens": 50, "stop": "END", "temperature": 0, "top_p": 1}));
    assert_eq!(
        body["inferenceConfig"],
        json!({"maxTokens": 50, "temperature": 0.0, "topP": 1.0, "stopSequences": ["END"]})
    );
    // Nothing to say, no inferenceConfig; an empty stop sequence is not sent.
    assert!(to_bedrock(json!({"stop": [""]}))
        .get("inferenceConfig")
        .is_none());

    let body = to_bedrock(json!({"reasoning_effort": "medium", "max_completion_tokens": 4000}));
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 3999}})
    );
    let body = to_bedrock(json!({"reasoning_effort": "low"}));
    assert_eq!(body["inferenceConfig"]["maxTokens"], json!(2048 + 4096));
    assert_eq!(
        body["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        json!(2048)
    );
    assert!(to_bedrock(json!({"reasoning_effort": "minimal"}))
        .get("additionalModelRequestFields")
        .is_none());
}

#[test]
fn every_untranslatable_field_is_named() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
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
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
            "messages[0].content[0].type=input_audio",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]}),
            "messages[0].content[0].type=image_url",
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "t", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]}),
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
            json!({"tools": tools, "parallel_tool_calls": false}),
            "parallel_tool_calls",
        ),
        (
            json!({"tools": tools, "tool_choice": "none", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": "ok"}
            ]}),
            "tool_choice",
        ),
        (
            json!({"model": "amazon.nova-pro-v1:0", "reasoning_effort": "high"}),
            "reasoning_effort",
        ),
        (
            json!({"reasoning_effort": "high", "max_tokens": 600}),
            "reasoning_effort",
        ),
    ];
    for (patch, field) in cases {
        assert_eq!(refuses(patch.clone()), field, "{patch}");
    }
    // Values that say "default" are not refused.
    to_bedrock(json!({"n": 1, "logprobs": false, "presence_penalty": 0, "store": false}));
    to_bedrock(json!({"response_format": {"type": "text"}, "temperature": 1.0, "logit_bias": {}}));
}

// === responses ===

#[test]
fn bedrock_response_to_openai() {
    let resp: br::ConverseResponse = serde_json::from_str(&read("bedrock_response.json")).unwrap();
    let out = bedrock_to_openai_response(resp, "claude-sonnet", "chatcmpl-1".into(), CREATED);
    check_json("bedrock_response.to_openai.json", &out.unwrap());
}

#[test]
fn response_stop_reasons_and_untranslatable_blocks() {
    let resp = |content: Value, stop: &str| -> br::ConverseResponse {
        serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}
        }))
        .unwrap()
    };
    for (stop, finish) in [
        ("end_turn", oa::FinishReason::Stop),
        ("stop_sequence", oa::FinishReason::Stop),
        ("tool_use", oa::FinishReason::ToolCalls),
        ("max_tokens", oa::FinishReason::Length),
        ("model_context_window_exceeded", oa::FinishReason::Length),
        ("guardrail_intervened", oa::FinishReason::ContentFilter),
        ("content_filtered", oa::FinishReason::ContentFilter),
        ("malformed_model_output", oa::FinishReason::Stop),
    ] {
        let out =
            bedrock_to_openai_response(resp(json!([{"text": "x"}]), stop), "m", "i".into(), 0)
                .unwrap();
        assert_eq!(out.choices[0].finish_reason, Some(finish), "{stop}");
        assert_eq!(out.choices[0].message.content.as_deref(), Some("x"));
    }
    let image = json!([{"text": "x"}, {"image": {"format": "png", "source": {"bytes": "AA"}}}]);
    assert_eq!(
        bedrock_to_openai_response(resp(image, "end_turn"), "m", "i".into(), 0).unwrap_err(),
        Error::Untranslatable {
            field: "output.message.content[1].image".into()
        }
    );
    let doc = json!([{"citationsContent": {"content": []}}]);
    assert_eq!(
        bedrock_to_openai_response(resp(doc, "end_turn"), "m", "i".into(), 0)
            .unwrap_err()
            .field(),
        "output.message.content[0].citationsContent"
    );
    let mut empty = resp(json!([]), "end_turn");
    empty.output.message = None;
    assert_eq!(
        bedrock_to_openai_response(empty, "m", "i".into(), 0)
            .unwrap_err()
            .field(),
        "output.message"
    );
}

#[test]
fn usage_counts_cache_reads_and_writes_as_input() {
    let u: br::TokenUsage = serde_json::from_value(json!({
        "inputTokens": 100, "outputTokens": 20, "totalTokens": 1620,
        "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 500
    }))
    .unwrap();
    let usage = bedrock_usage(&u);
    assert_eq!(
        usage,
        Usage {
            input: 1600,
            output: 20,
            cached_input: 1000,
            cache_write: 500,
            reasoning: 0
        }
    );
    assert_eq!(usage.to_openai().total_tokens, u.total_tokens);
}

#[test]
fn bedrock_bodies_round_trip_through_the_types() {
    // Unknown fields and blocks are kept, so a body parsed and written again loses nothing.
    let req = json!({
        "messages": [{"role": "user", "content": [
            {"text": "Summarize"},
            {"document": {"format": "pdf", "name": "doc", "source": {"bytes": "JVBERi0="}}},
            {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k.png"}}}},
            {"cachePoint": {"type": "default"}}
        ]}, {"role": "assistant", "content": [
            {"reasoningContent": {"redactedContent": "c2VjcmV0"}},
            {"toolUse": {"toolUseId": "t", "name": "f", "input": [1, 2]}}
        ]}, {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t", "content": [{"json": {"a": 1}}, {"text": "ok"}], "status": "error"}}
        ]}],
        "system": [{"text": "s"}, {"cachePoint": {"type": "default"}}, {"guardContent": {"text": {"text": "g"}}}],
        "inferenceConfig": {"maxTokens": 10, "topK": 5},
        "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}, {"cachePoint": {"type": "default"}}], "toolChoice": {"any": {}}},
        "additionalModelRequestFields": {"top_k": 40},
        "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
        "performanceConfig": {"latency": "optimized"}
    });
    let parsed: br::ConverseRequest = serde_json::from_value(req.clone()).unwrap();
    assert!(matches!(
        parsed.messages[0].content[1],
        br::ContentBlock::Other(_)
    ));
    assert_eq!(serde_json::to_value(&parsed).unwrap(), req);

    let resp: Value = serde_json::from_str(&read("bedrock_response.json")).unwrap();
    let parsed: br::ConverseResponse = serde_json::from_value(resp.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), resp);
}

// === streams ===

/// The golden events framed as `ConverseStream` sends them.
fn frames(events: &[(String, Value)]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (event_type, payload) in events {
        let payload = serde_json::to_vec(payload).unwrap();
        let exception = event_type.ends_with("Exception");
        let headers = [
            Header::new(
                if exception {
                    ":exception-type"
                } else {
                    ":event-type"
                },
                HeaderValue::String(event_type),
            ),
            Header::new(":content-type", HeaderValue::String("application/json")),
            Header::new(
                ":message-type",
                HeaderValue::String(if exception { "exception" } else { "event" }),
            ),
        ];
        encode(&headers, &payload, &mut wire).unwrap();
    }
    wire
}

fn load_events(name: &str) -> Vec<(String, Value)> {
    serde_json::from_str(&read(name)).unwrap()
}

const CHUNK_SIZES: [usize; 6] = [1, 2, 7, 61, 512, usize::MAX];

/// Decodes `wire` in chunks of `chunk` bytes and translates each message, as the proxy does:
/// the OpenAI SSE written, the items, and what `finish` said.
fn translate_wire(
    wire: &[u8],
    chunk: usize,
    include_usage: bool,
) -> (String, Vec<StreamItem>, bool) {
    let mut decoder = Decoder::new();
    let mut tr = BedrockToOpenAiStream::new(
        "claude-sonnet".into(),
        "chatcmpl-1".into(),
        CREATED,
        include_usage,
    );
    let mut items = Vec::new();
    let mut all = Vec::new();
    let mut out = Vec::new();
    for piece in wire.chunks(chunk.min(wire.len()).max(1)) {
        decoder
            .feed(piece, |m| {
                let event_type = match m.message_type() {
                    Some("exception") => m.exception_type(),
                    _ => m.event_type(),
                }
                .unwrap();
                tr.push(event_type, m.payload(), &mut items).unwrap();
                for i in items.drain(..) {
                    write_openai_item(&mut out, &i).unwrap();
                    all.push(i);
                }
            })
            .unwrap();
    }
    decoder.finish().unwrap();
    let complete = tr.finish(&mut items);
    for i in items.drain(..) {
        write_openai_item(&mut out, &i).unwrap();
        all.push(i);
    }
    write_openai_done(&mut out);
    (String::from_utf8(out).unwrap(), all, complete)
}

fn golden_stream(name: &str) -> (String, Vec<StreamItem>) {
    let wire = frames(&load_events(&format!("{name}.events.json")));
    let (first, items, complete) = translate_wire(&wire, usize::MAX, true);
    assert!(complete);
    for chunk in CHUNK_SIZES {
        let (sse, _, complete) = translate_wire(&wire, chunk, true);
        assert!(complete);
        assert_eq!(sse, first, "{name} split every {chunk} bytes");
    }
    check(&format!("{name}.to_openai.sse"), &first);
    (first, items)
}

fn chunks(items: &[StreamItem]) -> Vec<&oa::ChatCompletionChunk> {
    items
        .iter()
        .map(|i| match i {
            StreamItem::Chunk(c) => c,
            StreamItem::Error(e) => panic!("unexpected error {e:?}"),
        })
        .collect()
}

#[test]
fn text_stream_to_openai() {
    let (_, items) = golden_stream("bedrock_stream_text");
    let chunks = chunks(&items);
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "Berlin is 14°C and rainy right now.");
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 37);
}

#[test]
fn tool_stream_to_openai() {
    let (_, items) = golden_stream("bedrock_stream_tools");
    // What an SDK accumulates: two calls, arguments whole.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut reasoning = String::new();
    let mut finish = None;
    for c in chunks(&items) {
        for choice in &c.choices {
            reasoning.push_str(choice.delta.reasoning_content.as_deref().unwrap_or(""));
            finish = choice.finish_reason.clone().or(finish);
            for call in choice.delta.tool_calls.iter().flatten() {
                let f = call.function.as_ref().unwrap();
                if let Some(id) = &call.id {
                    assert_eq!(call.index as usize, calls.len());
                    calls.push((id.clone(), f.name.clone().unwrap(), String::new()));
                }
                calls[call.index as usize]
                    .2
                    .push_str(f.arguments.as_deref().unwrap_or(""));
            }
        }
    }
    assert_eq!(
        reasoning,
        "The user asks about two cities.\nI should call get_weather twice."
    );
    assert_eq!(finish, Some(oa::FinishReason::ToolCalls));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].2).unwrap(),
        json!({"city": "Tokyo"})
    );
}

#[test]
fn stream_without_usage_chunk_and_usage_kept() {
    let wire = frames(&load_events("bedrock_stream_tools.events.json"));
    let (_, items, complete) = translate_wire(&wire, 61, false);
    assert!(complete);
    assert!(chunks(&items)
        .iter()
        .all(|c| c.usage.is_none() && !c.choices.is_empty()));

    let mut tr = BedrockToOpenAiStream::new("m".into(), "i".into(), 0, false);
    let mut out = Vec::new();
    for (t, p) in load_events("bedrock_stream_tools.events.json") {
        tr.push(&t, &serde_json::to_vec(&p).unwrap(), &mut out)
            .unwrap();
    }
    assert_eq!(
        tr.usage(),
        Usage {
            input: 2520,
            output: 140,
            cached_input: 2048,
            cache_write: 0,
            reasoning: 0
        }
    );
}

#[test]
fn stream_exception_becomes_an_openai_error() {
    let mut events = load_events("bedrock_stream_text.events.json");
    events.truncate(3);
    events.push((
        "throttlingException".into(),
        json!({"message": "Too many tokens, please wait before trying again."}),
    ));
    let (sse, items, complete) = translate_wire(&frames(&events), 7, true);
    assert!(complete, "the client was told");
    let StreamItem::Error(e) = items.last().unwrap() else {
        panic!("{items:?}")
    };
    assert_eq!(e.error.kind, "rate_limit_error");
    assert_eq!(e.error.code, Some(json!("throttlingException")));
    assert!(sse.ends_with("\n\ndata: [DONE]\n\n"));
}

#[test]
fn cut_short_stream_says_so() {
    let mut events = load_events("bedrock_stream_text.events.json");
    events.truncate(4);
    let (_, items, complete) = translate_wire(&frames(&events), 2, true);
    assert!(!complete);
    let chunks = chunks(&items);
    assert!(chunks
        .iter()
        .all(|c| c.choices.iter().all(|c| c.finish_reason.is_none())));
    assert!(chunks.last().unwrap().usage.is_some());

    // Nothing at all: nothing to send, and not complete.
    let mut tr = BedrockToOpenAiStream::new("m".into(), "i".into(), 0, true);
    let mut out = Vec::new();
    assert!(!tr.finish(&mut out));
    assert!(out.is_empty());
}

#[test]
fn unknown_events_are_skipped_and_malformed_ones_refused() {
    let mut tr = BedrockToOpenAiStream::new("m".into(), "i".into(), 0, true);
    let mut out = Vec::new();
    tr.push("messageStart", br#"{"role":"assistant"}"#, &mut out)
        .unwrap();
    out.clear();
    tr.push("somethingNew", br#"{"x":1}"#, &mut out).unwrap();
    tr.push(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"citation":{"title":"t"}}}"#,
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    let err = tr
        .push("contentBlockDelta", br#"{"delta":"#, &mut out)
        .unwrap_err();
    assert_eq!(err.field(), "contentBlockDelta");
}

// === errors ===

#[test]
fn error_body_to_openai() {
    let body = read("bedrock_error.json");
    let out = bedrock_error_to_openai(
        body.as_bytes(),
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        429,
    );
    check_json("bedrock_error.to_openai.json", &out);
}

#[test]
fn error_types_statuses_and_odd_bodies() {
    for (t, status) in [
        ("throttlingException", 429),
        ("ThrottlingException", 429),
        ("validationException", 400),
        (
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            400,
        ),
        ("accessDeniedException", 403),
        ("resourceNotFoundException", 404),
        ("modelTimeoutException", 408),
        ("modelNotReadyException", 429),
        ("serviceQuotaExceededException", 429),
        ("internalServerException", 500),
        ("modelStreamErrorException", 502),
        ("modelErrorException", 502),
        ("serviceUnavailableException", 503),
        ("somethingNewException", 500),
    ] {
        assert_eq!(bedrock_exception_status(t), status, "{t}");
    }

    // A stream exception: the status comes from the type.
    let e = bedrock_error_to_openai(br#"{"message":"bad"}"#, Some("validationException"), 0);
    assert_eq!(
        (e.error.kind.as_str(), e.error.message.as_str()),
        ("invalid_request_error", "bad")
    );
    // The type in the body, as some AWS protocols put it.
    let e = bedrock_error_to_openai(
        br#"{"__type":"com.amazon.bedrock#AccessDeniedException","Message":"denied"}"#,
        None,
        403,
    );
    assert_eq!(e.error.code, Some(json!("AccessDeniedException")));
    assert_eq!(e.error.message, "denied");
    assert_eq!(e.error.kind, "permission_error");
    // Not JSON (a load balancer's page): the text is the message; no type, the status decides.
    let e = bedrock_error_to_openai(b"<html>502 Bad Gateway</html>", None, 502);
    assert_eq!(e.error.message, "<html>502 Bad Gateway</html>");
    assert_eq!(e.error.kind, "server_error");
    let e = bedrock_error_to_openai(b"", Some("serviceUnavailableException"), 0);
    assert_eq!(e.error.message, "serviceUnavailableException");
    assert_eq!(e.error.code, Some(json!("serviceUnavailableException")));
}

// === Titan embeddings ===

#[test]
fn titan_embeddings() {
    assert_eq!(
        titan_embeddings_request("hello", Some(256)),
        json!({"inputText": "hello", "dimensions": 256})
    );
    assert_eq!(
        titan_embeddings_request("hello", None),
        json!({"inputText": "hello"})
    );
    let body = br#"{"embedding":[0.25,-0.5,1.0],"inputTextTokenCount":2,"embeddingsByType":{"float":[0.25,-0.5,1.0]}}"#;
    assert_eq!(
        titan_embeddings_response(body).unwrap(),
        (vec![0.25, -0.5, 1.0], 2)
    );
    let err = titan_embeddings_response(br#"{"message":"nope"}"#).unwrap_err();
    assert_eq!(err.field(), "embedding");
}
