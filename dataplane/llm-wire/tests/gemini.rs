//! OpenAI ⇄ Gemini: golden files under `tests/golden/gemini_*` (real-shaped `generateContent`
//! bodies and `alt=sse` streams) and unit cases. `WEIR_BLESS=1 cargo test -p weir-llm-wire`
//! rewrites the expected files (review the diff before keeping it).

// The helpers below are test code too: a panic is how they report a failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use weir_llm_wire::embeddings::{EmbeddingsRequest, EmbeddingsResponse};
use weir_llm_wire::gemini as gm;
use weir_llm_wire::openai::{self as oa, StreamItem};
use weir_llm_wire::sse::{write_openai_done, write_openai_item};
use weir_llm_wire::translate::gemini::*;
use weir_llm_wire::{Error, Usage};

const CREATED: u64 = 1_741_760_036;
const MODEL: &str = "gemini-2.5-flash";
const ID: &str = "chatcmpl-gemini-1";

// === harness ===

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

/// `data:` payloads of an SSE body, in order, fed in pieces of `chunk` bytes as the proxy would
/// see them. Gemini frames events with `\r\n`; a raw CR never occurs inside JSON, so dropping
/// them reads both framings.
fn sse_data(input: &[u8], chunk: usize) -> Vec<String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.min(input.len()).max(1)) {
        buf.extend(piece.iter().filter(|&&b| b != b'\r'));
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = std::str::from_utf8(&block[..end]).unwrap();
            let data: Vec<&str> = text
                .split('\n')
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            out.push(data.join("\n"));
        }
    }
    out
}

const CHUNK_SIZES: [usize; 6] = [1, 2, 7, 61, 512, usize::MAX];

/// Runs a Gemini SSE body through the translator: the OpenAI SSE text, its items, and whether
/// the stream was complete.
fn translate_sse(
    input: &[u8],
    chunk: usize,
    include_usage: bool,
) -> (String, Vec<StreamItem>, bool) {
    let mut tr = GeminiToOpenAiStream::new(MODEL.into(), ID.into(), CREATED, include_usage);
    let mut items = Vec::new();
    for data in sse_data(input, chunk) {
        match serde_json::from_str::<gm::StreamItem>(&data).unwrap() {
            gm::StreamItem::Response(r) => tr.push(r, &mut items),
            gm::StreamItem::Error(e) => tr.push_error(e, &mut items),
        }
    }
    let complete = tr.finish(&mut items);
    let mut out = Vec::new();
    for i in &items {
        write_openai_item(&mut out, i).unwrap();
    }
    write_openai_done(&mut out);
    (String::from_utf8(out).unwrap(), items, complete)
}

fn chunks(input: &str) -> Vec<gm::GenerateContentResponse> {
    sse_data(input.as_bytes(), usize::MAX)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// One response out of a stream's chunks: parts concatenated per candidate, the last finish
/// reason and usage.
fn merge(chunks: Vec<gm::GenerateContentResponse>) -> gm::GenerateContentResponse {
    let mut out = gm::GenerateContentResponse::default();
    for c in chunks {
        if c.usage_metadata.is_some() {
            out.usage_metadata = c.usage_metadata;
        }
        for cand in c.candidates {
            let index = cand.index.unwrap_or(0);
            let slot = match out.candidates.iter().position(|x| x.index == Some(index)) {
                Some(s) => s,
                None => {
                    out.candidates.push(gm::Candidate {
                        index: Some(index),
                        content: Some(gm::Content::default()),
                        ..Default::default()
                    });
                    out.candidates.len() - 1
                }
            };
            let target = &mut out.candidates[slot];
            if let Some(content) = cand.content {
                target.content.as_mut().unwrap().parts.extend(content.parts);
            }
            if cand.finish_reason.is_some() {
                target.finish_reason = cand.finish_reason;
            }
        }
    }
    out
}

/// What an SDK makes of an OpenAI chunk stream.
fn accumulate(items: &[StreamItem]) -> oa::ChatCompletion {
    let mut resp = oa::ChatCompletion {
        id: String::new(),
        object: "chat.completion".into(),
        created: 0,
        model: String::new(),
        choices: Vec::new(),
        usage: None,
        system_fingerprint: None,
        extra: Default::default(),
    };
    for item in items {
        let StreamItem::Chunk(c) = item.clone() else {
            panic!("error item {item:?}")
        };
        resp.id = c.id;
        resp.created = c.created;
        resp.model = c.model;
        if c.usage.is_some() {
            resp.usage = c.usage;
        }
        for ch in c.choices {
            let slot = match resp.choices.iter().position(|x| x.index == ch.index) {
                Some(s) => s,
                None => {
                    assert_eq!(ch.delta.role.as_deref(), Some("assistant"), "role first");
                    resp.choices.push(oa::Choice {
                        index: ch.index,
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
                    });
                    resp.choices.len() - 1
                }
            };
            let choice = &mut resp.choices[slot];
            let m = &mut choice.message;
            if let Some(t) = ch.delta.content.filter(|t| !t.is_empty()) {
                m.content.get_or_insert_with(String::new).push_str(&t);
            }
            if let Some(t) = ch.delta.reasoning_content {
                m.reasoning_content
                    .get_or_insert_with(String::new)
                    .push_str(&t);
            }
            for d in ch.delta.tool_calls.into_iter().flatten() {
                let calls = m.tool_calls.get_or_insert_with(Vec::new);
                let i = d.index as usize;
                if i == calls.len() {
                    calls.push(oa::ToolCall {
                        id: d.id.clone().unwrap(),
                        kind: d.kind.clone().unwrap(),
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
                assert!(choice.finish_reason.is_none(), "one finish per choice");
                choice.finish_reason = ch.finish_reason;
            }
        }
    }
    resp.choices.sort_by_key(|c| c.index);
    resp
}

/// `v` as it reads on the wire (through text, so `f32`s keep their shortest form).
fn to_value<T: Serialize + ?Sized>(v: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
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

fn openai_request(patch: Value) -> oa::ChatCompletionRequest {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let (Value::Object(b), Value::Object(p)) = (&mut body, patch) else {
        panic!()
    };
    b.extend(p);
    serde_json::from_value(body).unwrap()
}

fn refused(patch: Value) -> String {
    match openai_to_gemini_request(openai_request(patch.clone())) {
        Err(Error::Untranslatable { field }) => field,
        other => panic!("{patch}: expected Untranslatable, got {other:?}"),
    }
}

// === parsing keeps everything ===

#[test]
fn golden_bodies_round_trip_through_the_types() {
    fn rt<T: DeserializeOwned + Serialize>(text: &str, what: &str) {
        let mut original: Value = serde_json::from_str(text).unwrap();
        let mut again = to_value(&serde_json::from_str::<T>(text).unwrap());
        strip_nulls(&mut original);
        strip_nulls(&mut again);
        assert_eq!(original, again, "{what}");
    }
    rt::<gm::GenerateContentResponse>(&read("gemini_response.json"), "response");
    rt::<gm::ErrorBody>(&read("gemini_error.json"), "error");
    rt::<gm::BatchEmbedContentsResponse>(&read("gemini_embed_response.json"), "embed");
    rt::<gm::GenerateContentRequest>(
        &read("gemini_openai_request.to_gemini.json"),
        "translated request",
    );
    for name in ["gemini_stream_tool.sse", "gemini_stream_text.sse"] {
        for data in sse_data(read(name).as_bytes(), usize::MAX) {
            rt::<gm::StreamItem>(&data, name);
        }
    }
    // An error `data:` is an error, not an empty chunk.
    let item: gm::StreamItem = serde_json::from_str(&read("gemini_error.json")).unwrap();
    assert!(matches!(item, gm::StreamItem::Error(_)));
}

// === requests ===

#[test]
fn openai_request_to_gemini() {
    let req: oa::ChatCompletionRequest = load("gemini_openai_request.json");
    let original = req.clone();
    let out = openai_to_gemini_request(req).unwrap();
    check_json("gemini_openai_request.to_gemini.json", &out);

    // System and developer hoisted, in order.
    assert_eq!(
        to_value(&out.system_instruction),
        json!({"parts": [{"text": "You are a weather assistant."}, {"text": "Answer in metric units."}]})
    );
    let roles: Vec<&str> = out
        .contents
        .iter()
        .map(|c| c.role.as_deref().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user", "model", "user"]);
    // Images and audio.
    assert_eq!(
        to_value(&out.contents[0].parts[1..]),
        json!([
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/maps/europe.JPG?v=3"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA="}}
        ])
    );
    // Calls, with the signature Gemini wants on the first of a step, and results by name.
    assert_eq!(
        to_value(&out.contents[1]),
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SKIP_THOUGHT_SIGNATURE},
            {"functionCall": {"name": "get_time", "args": {"city": "Tokyo", "tz": true}}}
        ]})
    );
    assert_eq!(
        to_value(&out.contents[2]),
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "18°C, cloudy"}}},
            {"functionResponse": {"name": "get_time", "response": {"error": "time service unavailable"}}}
        ]})
    );
    // The schema goes through untouched ($ref, $defs, type arrays…).
    let decls = out.tools.as_ref().unwrap()[0]
        .function_declarations
        .as_ref()
        .unwrap();
    assert_eq!(
        decls[0].parameters_json_schema,
        original.tools.as_ref().unwrap()[0]
            .function
            .as_ref()
            .unwrap()
            .parameters
    );
    assert!(decls.iter().all(|d| d.parameters.is_none()));
    assert_eq!(
        to_value(&out.tool_config),
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        to_value(&out.generation_config),
        json!({
            "stopSequences": ["\n\nHuman:", "END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}}, "required": ["city", "celsius"]},
            "candidateCount": 2,
            "maxOutputTokens": 1024,
            "temperature": 0.7,
            "topP": 0.9,
            "seed": 42,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.25,
            "responseLogprobs": true,
            "logprobs": 3,
            "thinkingConfig": {"thinkingBudget": 1024}
        })
    );
}

#[test]
fn minimal_request_is_minimal() {
    let out = openai_to_gemini_request(openai_request(json!({
        "stream": true, "n": 1, "max_tokens": 50, "user": "u", "parallel_tool_calls": false,
        "logprobs": false, "response_format": {"type": "text"}, "tool_choice": "none",
        "service_tier": "auto", "logit_bias": {}
    })))
    .unwrap();
    assert_eq!(
        to_value(&out),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 50}
        })
    );
}

#[test]
fn tool_choices_and_efforts() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    for (choice, expected) in [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("required"), json!({"mode": "ANY"})),
        (json!("none"), json!({"mode": "NONE"})),
    ] {
        let out = openai_to_gemini_request(openai_request(
            json!({"tools": tools, "tool_choice": choice}),
        ))
        .unwrap();
        assert_eq!(
            to_value(&out.tool_config),
            json!({ "functionCallingConfig": expected })
        );
        // A function without parameters is declared without them.
        assert_eq!(
            to_value(&out.tools),
            json!([{"functionDeclarations": [{"name": "f"}]}])
        );
    }
    for (effort, budget) in [
        ("none", 0),
        ("minimal", 1024),
        ("medium", 8192),
        ("high", 24576),
    ] {
        let out = openai_to_gemini_request(openai_request(json!({ "reasoning_effort": effort })))
            .unwrap();
        assert_eq!(
            to_value(&out.generation_config),
            json!({"thinkingConfig": {"thinkingBudget": budget}}),
            "{effort}"
        );
    }
    let out = openai_to_gemini_request(openai_request(
        json!({"response_format": {"type": "json_object"}}),
    ))
    .unwrap();
    assert_eq!(
        to_value(&out.generation_config),
        json!({"responseMimeType": "application/json"})
    );
}

#[test]
fn every_untranslatable_field_is_named() {
    let cases = [
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (
            json!({"parallel_tool_calls": false, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "parallel_tool_calls",
        ),
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type=custom",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}, "cache": true}]}),
            "tools[0].cache",
        ),
        (json!({"store": true}), "store"),
        (
            json!({"prediction": {"type": "content", "content": "x"}}),
            "prediction",
        ),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"response_format": {"type": "grammar", "grammar": "x"}}),
            "response_format.type=grammar",
        ),
        (
            json!({"tool_choice": {"type": "custom", "function": {"name": "x"}}, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tool_choice.type=custom",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/render?id=1"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            "messages[0].content[0].file.file_id",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "flac"}}]}]}),
            "messages[0].content[0].input_audio.format",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "x"}}]}]}),
            "messages[0].content[0].type=video_url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]}),
            "messages[0].content[0].type=refusal",
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
            json!({"messages": [{"role": "assistant", "content": "x", "audio": {"id": "a"}}]}),
            "messages[0].audio",
        ),
    ];
    for (patch, field) in cases {
        assert_eq!(refused(patch.clone()), field, "{patch}");
    }
}

#[test]
fn invalid_requests_say_where() {
    let cases = [
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
        (json!({"tool_choice": "required"}), "tool_choice"),
    ];
    for (patch, field) in cases {
        match openai_to_gemini_request(openai_request(patch.clone())) {
            Err(e @ Error::Invalid { .. }) => assert_eq!(e.field(), field, "{patch}"),
            other => panic!("{patch}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn tool_results_find_the_latest_call_with_their_id() {
    // `call_0` is reused by the next turn (ids are numbered per response).
    let out = openai_to_gemini_request(openai_request(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "first", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "1"},
        {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "second", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "2"}
    ]})))
    .unwrap();
    assert_eq!(
        to_value(&out.contents),
        json!([
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "first", "args": {}}, "thoughtSignature": SKIP_THOUGHT_SIGNATURE}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "first", "response": {"output": "1"}}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "second", "args": {}}, "thoughtSignature": SKIP_THOUGHT_SIGNATURE}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "second", "response": {"output": "2"}}}]}
        ])
    );
}

// === responses ===

#[test]
fn gemini_response_to_openai() {
    let resp: gm::GenerateContentResponse = load("gemini_response.json");
    let out = gemini_to_openai_response(resp, MODEL, ID.into(), CREATED).unwrap();
    check_json("gemini_response.to_openai.json", &out);
    assert_eq!(
        to_value(&out.choices),
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check both cities.",
                "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\",\"unit\":\"celsius\"}"}}
                ],
                "reasoning_content": "The user wants the weather in two cities."
            },
            "finish_reason": "tool_calls"
        }])
    );
    assert_eq!(
        to_value(&out.usage),
        json!({
            "prompt_tokens": 1117,
            "completion_tokens": 135,
            "total_tokens": 1252,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 89}
        })
    );
}

#[test]
fn response_edge_cases() {
    // Blocked prompt: no candidate, one empty choice filtered.
    let blocked: gm::GenerateContentResponse = serde_json::from_value(json!({
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}
    }))
    .unwrap();
    let out = gemini_to_openai_response(blocked, MODEL, ID.into(), CREATED).unwrap();
    assert_eq!(
        to_value(&out.choices),
        json!([{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}])
    );

    // Two candidates; one cut by the token limit; a call with Gemini's own id; log probabilities.
    let two: gm::GenerateContentResponse = serde_json::from_value(json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "MAX_TOKENS",
         "logprobsResult": {
            "topCandidates": [{"candidates": [{"token": "A", "logProbability": -0.1}, {"token": "B", "logProbability": -2.5}]}],
            "chosenCandidates": [{"token": "A", "logProbability": -0.1}]
         }},
        {"content": {"role": "model", "parts": [{"functionCall": {"id": "fc-7", "name": "f"}}]}, "finishReason": "STOP", "index": 1}
    ]}))
    .unwrap();
    let out = gemini_to_openai_response(two, MODEL, ID.into(), CREATED).unwrap();
    assert_eq!(
        to_value(&out.choices),
        json!([
            {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length",
             "logprobs": {"content": [{"token": "A", "logprob": -0.1, "bytes": [65], "top_logprobs": [
                {"token": "A", "logprob": -0.1, "bytes": [65]},
                {"token": "B", "logprob": -2.5, "bytes": [66]}
             ]}]}},
            {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "fc-7", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}
        ])
    );
    assert_eq!(out.usage, None);

    // A generated image has no OpenAI field.
    let image: gm::GenerateContentResponse = serde_json::from_value(json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "Here:"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}, "finishReason": "STOP"}
    ]}))
    .unwrap();
    assert_eq!(
        gemini_to_openai_response(image, MODEL, ID.into(), CREATED).unwrap_err(),
        Error::Untranslatable {
            field: "candidates[0].content.parts[1].inlineData".into()
        }
    );
    let code: gm::GenerateContentResponse = serde_json::from_value(json!({"candidates": [
        {"content": {"role": "model", "parts": [{"executableCode": {"language": "PYTHON", "code": "1+1"}}]}}
    ]}))
    .unwrap();
    assert_eq!(
        gemini_to_openai_response(code, MODEL, ID.into(), CREATED).unwrap_err(),
        Error::Untranslatable {
            field: "candidates[0].content.parts[0].executableCode".into()
        }
    );
}

#[test]
fn usage_counts_thoughts_and_tool_prompts() {
    let u: gm::UsageMetadata = serde_json::from_value(json!({
        "promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
        "toolUsePromptTokenCount": 5, "thoughtsTokenCount": 30, "totalTokenCount": 155
    }))
    .unwrap();
    assert_eq!(
        gemini_usage(&u),
        Usage {
            input: 105,
            output: 50,
            cached_input: 60,
            cache_write: 0,
            reasoning: 30
        }
    );
    assert_eq!(
        gemini_usage(&gm::UsageMetadata::default()),
        Usage::default()
    );
}

// === streams ===

#[test]
fn tool_stream_to_openai() {
    let input = read("gemini_stream_tool.sse");
    let (whole, items, complete) = translate_sse(input.as_bytes(), usize::MAX, true);
    assert!(complete);
    check("gemini_stream_tool.to_openai.sse", &whole);
    let head = |delta: Value, finish: Value| {
        json!({"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    assert_eq!(
        to_value(&items),
        json!([
            head(json!({"role": "assistant", "content": ""}), Value::Null),
            head(json!({"content": "I'll check"}), Value::Null),
            head(json!({"content": " the weather in Paris and Tokyo."}), Value::Null),
            head(json!({"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}), Value::Null),
            head(json!({"tool_calls": [{"index": 1, "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\",\"unit\":\"celsius\"}"}}]}), Value::Null),
            head(json!({}), json!("tool_calls")),
            {"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL, "choices": [],
             "usage": {"prompt_tokens": 72, "completion_tokens": 103, "total_tokens": 175,
                       "completion_tokens_details": {"reasoning_tokens": 65}}}
        ])
    );
    // However the body is cut, and with Gemini's CRLF framing, the output is the same.
    for size in CHUNK_SIZES {
        assert_eq!(
            translate_sse(input.as_bytes(), size, true).0,
            whole,
            "chunk size {size}"
        );
    }
    let crlf = input.replace('\n', "\r\n");
    assert_eq!(translate_sse(crlf.as_bytes(), 3, true).0, whole);
    // The stream says what the non-streaming translation of the same answer says.
    let expected =
        gemini_to_openai_response(merge(chunks(&input)), MODEL, ID.into(), CREATED).unwrap();
    let mut got = accumulate(&items);
    got.object = expected.object.clone();
    assert_eq!(got, expected);
}

#[test]
fn text_stream_to_openai() {
    let input = read("gemini_stream_text.sse");
    let (whole, items, complete) = translate_sse(input.as_bytes(), 5, true);
    assert!(complete);
    check("gemini_stream_text.to_openai.sse", &whole);
    let (no_usage, items_no_usage, _) = translate_sse(input.as_bytes(), 5, false);
    check("gemini_stream_text.to_openai.no_usage.sse", &no_usage);
    assert_eq!(
        items_no_usage.len() + 1,
        items.len(),
        "only the usage chunk differs"
    );
    let resp = accumulate(&items);
    assert_eq!(
        resp.choices[0].message.content.as_deref(),
        Some("Hello! How can I help you today?")
    );
    assert_eq!(resp.choices[0].finish_reason, Some(oa::FinishReason::Stop));
    let usage = Usage::from_openai(resp.usage.as_ref().unwrap());
    assert_eq!(
        usage,
        Usage {
            input: 9,
            output: 52,
            cached_input: 4,
            cache_write: 0,
            reasoning: 43
        }
    );
}

#[test]
fn candidates_stream_as_choices() {
    let mut tr = GeminiToOpenAiStream::new(MODEL.into(), ID.into(), CREATED, false);
    let mut items = Vec::new();
    for chunk in [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "A1"}]}, "index": 0},
                              {"content": {"role": "model", "parts": [{"text": "B1"}]}, "index": 1}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking", "thought": true}, {"text": "B2"}]}, "finishReason": "STOP", "index": 1}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}, "finishReason": "STOP", "index": 0}]}),
    ] {
        tr.push(serde_json::from_value(chunk).unwrap(), &mut items);
    }
    assert!(tr.finish(&mut items));
    let deltas: Vec<Value> = items
        .iter()
        .map(|i| {
            let StreamItem::Chunk(c) = i else { panic!() };
            let ch = &c.choices[0];
            json!([ch.index, ch.delta, ch.finish_reason])
        })
        .collect();
    assert_eq!(
        Value::Array(deltas),
        json!([
            [0, {"role": "assistant", "content": ""}, null],
            [0, {"content": "A1"}, null],
            [1, {"role": "assistant", "content": ""}, null],
            [1, {"content": "B1"}, null],
            [1, {"reasoning_content": "thinking"}, null],
            [1, {"content": "B2"}, null],
            [1, {}, "stop"],
            [0, {"tool_calls": [{"index": 0, "id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]}, null],
            [0, {}, "tool_calls"]
        ])
    );
}

#[test]
fn cut_short_and_failed_streams_say_so() {
    // The body ends before any finishReason: the usage chunk is still sent, and the caller learns
    // the answer was cut.
    let input = read("gemini_stream_tool.sse");
    let cut = &input[..input.find("\"finishReason\"").unwrap()];
    let cut = &cut[..cut.rfind("\n\n").unwrap() + 2];
    let (_, items, complete) = translate_sse(cut.as_bytes(), 11, true);
    assert!(!complete);
    assert!(
        matches!(items.last(), Some(StreamItem::Chunk(c)) if c.usage.is_some() && c.choices.is_empty())
    );
    assert!(items.iter().all(|i| match i {
        StreamItem::Chunk(c) => c.choices.iter().all(|ch| ch.finish_reason.is_none()),
        StreamItem::Error(_) => false,
    }));

    // Nothing at all arrived.
    let mut tr = GeminiToOpenAiStream::new(MODEL.into(), ID.into(), CREATED, true);
    let mut items = Vec::new();
    assert!(!tr.finish(&mut items));
    assert!(items.is_empty());

    // An error mid-stream becomes an OpenAI error item and ends the stream.
    let mut body = input[..input.find("\n\n").unwrap() + 2].to_owned();
    body.push_str(&format!(
        "data: {}\n\n",
        serde_json::to_string(&load::<Value>("gemini_error.json")).unwrap()
    ));
    body.push_str(&input[input.find("\n\n").unwrap() + 2..]);
    let (_, items, complete) = translate_sse(body.as_bytes(), 64, true);
    assert!(complete);
    assert_eq!(items.len(), 3, "role, text, error: nothing after the error");
    assert_eq!(
        to_value(&items[2]),
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                         "type": "rate_limit_error", "param": null, "code": "RESOURCE_EXHAUSTED"}})
    );

    // A prompt blocked before any candidate.
    let mut tr = GeminiToOpenAiStream::new(MODEL.into(), ID.into(), CREATED, false);
    let mut items = Vec::new();
    tr.push(
        serde_json::from_value(json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))
            .unwrap(),
        &mut items,
    );
    assert!(tr.finish(&mut items));
    assert_eq!(
        accumulate(&items).choices[0].finish_reason,
        Some(oa::FinishReason::ContentFilter)
    );
}

// === errors ===

#[test]
fn error_bodies() {
    let err: gm::ErrorBody = load("gemini_error.json");
    check_json(
        "gemini_error.to_openai.json",
        &gemini_error_to_openai(err.clone(), 429),
    );
    assert_eq!(
        to_value(&gemini_error_to_openai(err, 429)),
        json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                         "type": "rate_limit_error", "param": null, "code": "RESOURCE_EXHAUSTED"}})
    );
    // Inside a 200 stream, the body's status decides; without a code, the canonical status.
    let bad: gm::ErrorBody = serde_json::from_value(
        json!({"error": {"message": "API key not valid.", "status": "UNAUTHENTICATED"}}),
    )
    .unwrap();
    assert_eq!(
        to_value(&gemini_error_to_openai(bad, 0)),
        json!({"error": {"message": "API key not valid.", "type": "authentication_error", "param": null, "code": "UNAUTHENTICATED"}})
    );
    let bare: gm::ErrorBody =
        serde_json::from_value(json!({"error": {"code": 503, "message": "overloaded"}})).unwrap();
    assert_eq!(
        to_value(&gemini_error_to_openai(bare, 200)),
        json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": "overloaded"}})
    );
}

// === embeddings ===

fn embeddings_request(patch: Value) -> EmbeddingsRequest {
    let mut body = json!({"model": "text-embedding-3-small", "input": ["hello", "goodbye"]});
    body.as_object_mut()
        .unwrap()
        .extend(patch.as_object().unwrap().clone());
    serde_json::from_value(body).unwrap()
}

#[test]
fn embeddings_both_ways() {
    let req =
        embeddings_request(json!({"dimensions": 256, "encoding_format": "base64", "user": "u"}));
    assert_eq!(
        to_value(&gemini_count_tokens_request(&req).unwrap()),
        json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}, {"role": "user", "parts": [{"text": "goodbye"}]}]})
    );
    assert_eq!(
        to_value(&gemini_embeddings_request(req, "gemini-embedding-001").unwrap()),
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 256},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "goodbye"}]}, "outputDimensionality": 256}
        ]})
    );
    let one = embeddings_request(json!({"input": "solo"}));
    assert_eq!(
        to_value(&gemini_embeddings_request(one, "models/text-embedding-004").unwrap()),
        json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "solo"}]}}]})
    );

    let resp: gm::BatchEmbedContentsResponse = load("gemini_embed_response.json");
    let out: EmbeddingsResponse = gemini_embeddings_response(resp, "gemini-embedding-001", 4);
    assert_eq!(
        to_value(&out),
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.013168523, -0.008711934, -0.046782676, 0.000699695]},
                {"object": "embedding", "index": 1, "embedding": [-0.031405553, 0.0025513354, -0.0103829, 0.04277516]}
            ],
            "model": "gemini-embedding-001",
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })
    );
}

#[test]
fn embeddings_refusals() {
    let tokens = embeddings_request(json!({"input": [[1, 2, 3]]}));
    assert_eq!(
        gemini_embeddings_request(tokens, "m").unwrap_err(),
        Error::Untranslatable {
            field: "input".into()
        }
    );
    let extra = embeddings_request(json!({"truncate": "END"}));
    assert_eq!(
        gemini_embeddings_request(extra, "m").unwrap_err(),
        Error::Untranslatable {
            field: "truncate".into()
        }
    );
    let format = embeddings_request(json!({"encoding_format": "int8"}));
    assert_eq!(
        gemini_embeddings_request(format, "m").unwrap_err().field(),
        "encoding_format"
    );
    let empty = embeddings_request(json!({"input": []}));
    assert_eq!(
        gemini_embeddings_request(empty, "m").unwrap_err().field(),
        "input"
    );
}
