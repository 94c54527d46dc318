//! OpenAI ⇄ Cohere v2: golden files under `tests/golden/cohere_*` (real-shaped `/v2/chat`
//! bodies and event streams) and unit cases. `WEIR_BLESS=1 cargo test -p weir-llm-wire` rewrites
//! the expected files (review the diff before keeping it).

// The helpers below are test code too: a panic is how they report a failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use weir_llm_wire::cohere as co;
use weir_llm_wire::embeddings::EmbeddingsRequest;
use weir_llm_wire::openai::{self as oa, StreamItem};
use weir_llm_wire::sse::{write_openai_done, write_openai_item};
use weir_llm_wire::translate::cohere::*;
use weir_llm_wire::{Error, Usage};

const CREATED: u64 = 1_741_760_036;
const MODEL: &str = "command-a-03-2025";

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

/// `(event, data)` of an SSE body, in order, fed in pieces of `chunk` bytes.
fn sse_events(input: &[u8], chunk: usize) -> Vec<(Option<String>, String)> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.min(input.len()).max(1)) {
        buf.extend(piece.iter().filter(|&&b| b != b'\r'));
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = std::str::from_utf8(&block[..end]).unwrap();
            let mut event = None;
            let mut data = Vec::new();
            for line in text.split('\n') {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            out.push((event, data.join("\n")));
        }
    }
    out
}

const CHUNK_SIZES: [usize; 6] = [1, 2, 7, 61, 512, usize::MAX];

fn events(input: &str) -> Vec<co::StreamEvent> {
    sse_events(input.as_bytes(), usize::MAX)
        .into_iter()
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect()
}

/// Runs a Cohere SSE body through the translator: the OpenAI SSE text, its items, and whether
/// the stream was complete.
fn translate_sse(
    input: &[u8],
    chunk: usize,
    include_usage: bool,
) -> (String, Vec<StreamItem>, bool) {
    let mut tr = CohereToOpenAiStream::new(MODEL.into(), CREATED, include_usage);
    let mut items = Vec::new();
    for (name, data) in sse_events(input, chunk) {
        let event: co::StreamEvent = serde_json::from_str(&data).unwrap();
        if let Some(name) = name {
            assert_eq!(name, event.event_type());
        }
        tr.push(event, &mut items);
    }
    let complete = tr.finish(&mut items);
    let mut out = Vec::new();
    for i in &items {
        write_openai_item(&mut out, i).unwrap();
    }
    write_openai_done(&mut out);
    (String::from_utf8(out).unwrap(), items, complete)
}

/// What an SDK makes of an OpenAI chunk stream (one choice).
fn accumulate(items: &[StreamItem]) -> oa::ChatCompletion {
    let mut resp: Option<oa::ChatCompletion> = None;
    for item in items {
        let StreamItem::Chunk(c) = item.clone() else {
            panic!("error item {item:?}")
        };
        let r = resp.get_or_insert_with(|| {
            let first = &c.choices[0].delta;
            assert_eq!(first.role.as_deref(), Some("assistant"), "role first");
            oa::ChatCompletion {
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
            }
        });
        assert_eq!(c.id, r.id, "one id per stream");
        if c.usage.is_some() {
            r.usage = c.usage;
        }
        for ch in c.choices {
            let choice = &mut r.choices[0];
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
                assert!(choice.finish_reason.is_none(), "one finish");
                choice.finish_reason = ch.finish_reason;
            }
        }
    }
    resp.unwrap()
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
    rt::<co::ChatResponse>(&read("cohere_response.json"), "response");
    rt::<co::ErrorBody>(&read("cohere_error.json"), "error");
    rt::<co::EmbedResponse>(&read("cohere_embed_response.json"), "embed");
    rt::<co::ChatRequest>(
        &read("cohere_openai_request.to_cohere.json"),
        "translated request",
    );
    for name in ["cohere_stream_text.sse", "cohere_stream_tool.sse"] {
        for (_, data) in sse_events(read(name).as_bytes(), usize::MAX) {
            // Counts written as floats (`37.0`) come back as integers.
            let data = data.replace(".0,", ",").replace(".0}", "}");
            rt::<co::StreamEvent>(&data, name);
        }
    }
    // Unknown events are kept as they came.
    let debug = json!({"type": "debug", "prompt": "<BOS_TOKEN>…"});
    let event: co::StreamEvent = serde_json::from_value(debug.clone()).unwrap();
    assert!(matches!(event, co::StreamEvent::Other(_)));
    assert_eq!(event.event_type(), "debug");
    assert_eq!(to_value(&event), debug);
}

// === requests ===

#[test]
fn openai_request_to_cohere() {
    let req: oa::ChatCompletionRequest = load("cohere_openai_request.json");
    let out = openai_to_cohere_request(req).unwrap();
    check_json("cohere_openai_request.to_cohere.json", &out);
    let v = to_value(&out);
    assert_eq!(v["model"], json!(MODEL), "the model stays in the body");
    assert_eq!(
        v["messages"],
        json!([
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "system", "content": [{"type": "text", "text": "Answer in metric units."}, {"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is the weather in Madrid and Brasilia? Here is a map."},
                {"type": "image_url", "image_url": {"url": "https://example.com/map.jpg", "detail": "high"}}
            ]},
            {"role": "assistant", "tool_plan": "I will look up the weather in Madrid and Brasilia.", "tool_calls": [
                {"id": "get_weather_p1t92w7gfgq7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Madrid\"}"}},
                {"id": "get_weather_ay6nmvjgp9vn", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Brasilia\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "get_weather_p1t92w7gfgq7", "content": "{\"temperature\": 24}"},
            {"role": "tool", "tool_call_id": "get_weather_ay6nmvjgp9vn", "content": "{\"temperature\": 28}"},
            {"role": "assistant", "content": "It is 24°C in Madrid and 28°C in Brasilia."},
            {"role": "user", "content": "Thanks! And Berlin?"}
        ])
    );
    let mut rest = v.as_object().unwrap().clone();
    rest.remove("messages");
    rest.remove("tools");
    assert_eq!(
        Value::Object(rest),
        json!({
            "model": MODEL,
            "stream": true,
            "strict_tools": true,
            "response_format": {"type": "json_object"},
            "max_tokens": 1024,
            "stop_sequences": ["END"],
            "temperature": 0.3,
            "seed": 7,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.5,
            "p": 0.99,
            "logprobs": true,
            "tool_choice": "REQUIRED",
            "thinking": {"type": "enabled", "token_budget": 8192}
        })
    );
    assert_eq!(
        v["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Gets the weather of a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "the location to get weather, example: San Francisco, CA"}}, "required": ["location"]}
        }}])
    );
}

#[test]
fn text_beside_tool_calls_is_the_plan() {
    let call =
        json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let out = openai_to_cohere_request(openai_request(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "", "reasoning_content": "Plan A.", "refusal": "", "tool_calls": [call]},
        {"role": "assistant", "content": [{"type": "text", "text": "Done"}, {"type": "refusal", "refusal": "partly"}]},
        {"role": "assistant", "content": ""}
    ]})))
    .unwrap();
    assert_eq!(
        to_value(&out.messages[1..]),
        json!([
            {"role": "assistant", "tool_plan": "Let me check.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "tool_plan": "Plan A.", "tool_calls": [call]},
            {"role": "assistant", "content": [{"type": "text", "text": "Done"}, {"type": "text", "text": "partly"}]}
        ])
    );
}

#[test]
fn tool_choices_formats_and_efforts() {
    let tools = json!([
        {"type": "function", "function": {"name": "a"}},
        {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}
    ]);
    let out = openai_to_cohere_request(openai_request(json!({
        "tools": tools, "tool_choice": {"type": "function", "function": {"name": "b"}}
    })))
    .unwrap();
    assert_eq!(
        (to_value(&out.tools), to_value(&out.tool_choice)),
        (
            json!([{"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}]),
            json!("REQUIRED")
        ),
        "a named choice offers only that tool"
    );
    for (choice, expected) in [(json!("auto"), Value::Null), (json!("none"), json!("NONE"))] {
        let out = openai_to_cohere_request(openai_request(
            json!({"tools": tools, "tool_choice": choice}),
        ))
        .unwrap();
        assert_eq!(to_value(&out.tool_choice), expected);
        assert_eq!(out.strict_tools, None);
    }
    let out = openai_to_cohere_request(openai_request(json!({
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {"type": "object", "required": ["a"]}}},
        "reasoning_effort": "minimal", "top_p": 0.001, "n": 1, "top_logprobs": 0, "store": false
    })))
    .unwrap();
    assert_eq!(
        to_value(&out),
        json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object", "json_schema": {"type": "object", "required": ["a"]}},
            "p": 0.01,
            "thinking": {"type": "disabled"}
        })
    );
}

#[test]
fn every_untranslatable_field_is_named() {
    let cases = [
        (json!({"n": 2}), "n"),
        (json!({"top_logprobs": 2, "logprobs": true}), "top_logprobs"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"presence_penalty": -0.5}), "presence_penalty"),
        (json!({"frequency_penalty": 1.5}), "frequency_penalty"),
        (
            json!({"parallel_tool_calls": false, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "parallel_tool_calls",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "strict": true}}, {"type": "function", "function": {"name": "g"}}]}),
            "tools[0].function.strict",
        ),
        (
            json!({"tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type=custom",
        ),
        (json!({"store": true}), "store"),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (
            json!({"response_format": {"type": "grammar", "grammar": "x"}}),
            "response_format.type=grammar",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
            "messages[0].content[0].type=input_audio",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].type=image_url",
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "t", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].type=image_url",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi", "audio": {"id": "a"}}]}),
            "messages[0].audio",
        ),
    ];
    for (patch, field) in cases {
        match openai_to_cohere_request(openai_request(patch.clone())) {
            Err(Error::Untranslatable { field: f }) => assert_eq!(f, field, "{patch}"),
            other => panic!("{patch}: expected Untranslatable, got {other:?}"),
        }
    }
    for (patch, field) in [
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}),
            "tool_choice.function.name",
        ),
        (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
    ] {
        match openai_to_cohere_request(openai_request(patch.clone())) {
            Err(e @ Error::Invalid { .. }) => assert_eq!(e.field(), field, "{patch}"),
            other => panic!("{patch}: expected Invalid, got {other:?}"),
        }
    }
}

// === responses ===

#[test]
fn cohere_response_to_openai() {
    let resp: co::ChatResponse = load("cohere_response.json");
    let out = cohere_to_openai_response(resp, MODEL, CREATED).unwrap();
    check_json("cohere_response.to_openai.json", &out);
    assert_eq!(
        to_value(&out),
        json!({
            "id": "fba98ad3-e5a1-413c-a8de-84fbf9baabf7",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [
                        {"id": "get_weather_p1t92w7gfgq7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Madrid\"}"}},
                        {"id": "get_weather_ay6nmvjgp9vn", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Brasilia\"}"}}
                    ],
                    "reasoning_content": "I will search for the weather in Madrid and Brasilia."
                },
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 913, "completion_tokens": 83, "total_tokens": 996, "prompt_tokens_details": {"cached_tokens": 512}}
        })
    );
    // The plan comes back as the tool plan when the history is sent again.
    let history = openai_request(json!({"messages": [
        {"role": "user", "content": "weather?"},
        to_value(&out.choices[0].message)
    ]}));
    let again = openai_to_cohere_request(history).unwrap();
    let co::Message::Assistant(m) = &again.messages[1] else {
        panic!()
    };
    assert_eq!(
        m.tool_plan.as_deref(),
        Some("I will search for the weather in Madrid and Brasilia.")
    );
}

#[test]
fn text_thinking_and_logprobs() {
    let resp: co::ChatResponse = serde_json::from_value(json!({
        "id": "r1",
        "finish_reason": "complete",
        "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Simple greeting."},
            {"type": "text", "text": "Hello"},
            {"type": "text", "text": " there!"}
        ]},
        "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 3}},
        "logprobs": [{"token_ids": [34, 56], "text": "Hello", "logprobs": [-0.25, -0.5]}]
    }))
    .unwrap();
    let out = cohere_to_openai_response(resp, MODEL, CREATED).unwrap();
    assert_eq!(
        to_value(&out.choices[0]),
        json!({
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!", "reasoning_content": "Simple greeting."},
            "finish_reason": "stop",
            "logprobs": {"content": [{"token": "Hello", "logprob": -0.75, "bytes": [72, 101, 108, 108, 111], "top_logprobs": []}]}
        })
    );
    assert_eq!(
        to_value(&out.usage),
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    );

    let doc: co::ChatResponse = serde_json::from_value(json!({
        "id": "r2", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "document", "document": {"data": "x"}}]}
    }))
    .unwrap();
    assert_eq!(
        cohere_to_openai_response(doc, MODEL, CREATED).unwrap_err(),
        Error::Untranslatable {
            field: "message.content[0].type=document".into()
        }
    );
}

#[test]
fn finish_reasons_and_usage() {
    use co::FinishReason as F;
    use oa::FinishReason as O;
    for (wire, expected) in [
        ("\"COMPLETE\"", O::Stop),
        ("\"complete\"", O::Stop),
        ("\"STOP_SEQUENCE\"", O::Stop),
        ("\"MAX_TOKENS\"", O::Length),
        ("\"TOOL_CALL\"", O::ToolCalls),
        ("\"tool_call\"", O::ToolCalls),
        ("\"content_blocked\"", O::ContentFilter),
        ("\"ERROR\"", O::Other("error".into())),
        ("\"TIMEOUT\"", O::Other("timeout".into())),
        ("\"ERROR_LIMIT\"", O::Other("error_limit".into())),
    ] {
        let r: F = serde_json::from_str(wire).unwrap();
        assert_eq!(cohere_finish_reason(&r), expected, "{wire}");
    }
    // Tokens win over billed units; either may be missing; floats are read.
    let u: co::Usage = serde_json::from_value(json!({
        "billed_units": {"input_tokens": 37.0, "output_tokens": 28.0},
        "tokens": {"input_tokens": 913.0},
        "cached_tokens": 100
    }))
    .unwrap();
    assert_eq!(
        cohere_usage(&u),
        Usage {
            input: 913,
            output: 28,
            cached_input: 100,
            cache_write: 0,
            reasoning: 0
        }
    );
    assert_eq!(cohere_usage(&co::Usage::default()), Usage::default());
}

// === streams ===

#[test]
fn tool_stream_to_openai() {
    let input = read("cohere_stream_tool.sse");
    let (whole, items, complete) = translate_sse(input.as_bytes(), usize::MAX, true);
    assert!(complete);
    check("cohere_stream_tool.to_openai.sse", &whole);
    let id = "fba98ad3-e5a1-413c-a8de-84fbf9baabf7";
    let head = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let args = |index: u32, a: &str| {
        head(
            json!({"tool_calls": [{"index": index, "function": {"arguments": a}}]}),
            Value::Null,
        )
    };
    assert_eq!(
        to_value(&items),
        json!([
            head(json!({"role": "assistant", "content": ""}), Value::Null),
            head(json!({"reasoning_content": "I will search"}), Value::Null),
            head(json!({"reasoning_content": " for the weather in Madrid and Brasilia."}), Value::Null),
            head(json!({"tool_calls": [{"index": 0, "id": "get_weather_p1t92w7gfgq7", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}), Value::Null),
            args(0, "{\n    \""),
            args(0, "location\": \"Madrid"),
            args(0, "\"\n}"),
            head(json!({"tool_calls": [{"index": 1, "id": "get_weather_ay6nmvjgp9vn", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}), Value::Null),
            args(1, "{\n    \"location\": \"Bras"),
            args(1, "ilia\"\n}"),
            head(json!({}), json!("tool_calls")),
            {"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL, "choices": [],
             "usage": {"prompt_tokens": 913, "completion_tokens": 83, "total_tokens": 996}}
        ])
    );
    for size in CHUNK_SIZES {
        assert_eq!(
            translate_sse(input.as_bytes(), size, true).0,
            whole,
            "chunk size {size}"
        );
    }
    // The stream says what the non-streaming translation of the same answer says.
    let acc = accumulate(&items);
    let expected = cohere_to_openai_response(load("cohere_response.json"), MODEL, CREATED).unwrap();
    let calls = |r: &oa::ChatCompletion| -> Vec<(String, String, Value)> {
        r.choices[0]
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|c| {
                let args: Value = serde_json::from_str(&c.function.arguments).unwrap();
                (c.id.clone(), c.function.name.clone(), args)
            })
            .collect()
    };
    assert_eq!(calls(&acc), calls(&expected));
    assert_eq!(
        acc.choices[0].message.reasoning_content,
        expected.choices[0].message.reasoning_content
    );
    assert_eq!(
        acc.choices[0].finish_reason,
        expected.choices[0].finish_reason
    );
}

#[test]
fn text_stream_to_openai() {
    let input = read("cohere_stream_text.sse");
    let (whole, items, complete) = translate_sse(input.as_bytes(), 7, true);
    assert!(complete);
    check("cohere_stream_text.to_openai.sse", &whole);
    let (no_usage, short, _) = translate_sse(input.as_bytes(), 7, false);
    check("cohere_stream_text.to_openai.no_usage.sse", &no_usage);
    assert_eq!(short.len() + 1, items.len(), "only the usage chunk differs");
    let resp = accumulate(&items);
    assert_eq!(resp.id, "e8f9afc1-0888-46f0-a9ed-eb0e5a51e17f");
    assert_eq!(
        resp.choices[0].message.content.as_deref(),
        Some("It is currently 24°C in Madrid and 28°C in Brasilia.")
    );
    assert_eq!(resp.choices[0].finish_reason, Some(oa::FinishReason::Stop));
    assert_eq!(
        to_value(&resp.usage),
        json!({"prompt_tokens": 1203, "completion_tokens": 15, "total_tokens": 1218})
    );
}

#[test]
fn thinking_and_logprobs_stream() {
    let mut tr = CohereToOpenAiStream::new(MODEL.into(), CREATED, false);
    let mut items = Vec::new();
    for event in [
        json!({"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "Short."}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": "Hi"}}},
               "logprobs": {"token_ids": [9], "text": "Hi", "logprobs": [-0.5]}}),
        json!({"type": "content-end", "index": 1}),
        json!({"type": "debug", "prompt": "x"}),
        json!({"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS"}}),
    ] {
        tr.push(serde_json::from_value(event).unwrap(), &mut items);
    }
    assert!(tr.finish(&mut items));
    let choices: Vec<Value> = items
        .iter()
        .map(|i| {
            let StreamItem::Chunk(c) = i else { panic!() };
            assert_eq!(c.id, "m1");
            to_value(&c.choices[0])
        })
        .collect();
    assert_eq!(
        Value::Array(choices),
        json!([
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null},
            {"index": 0, "delta": {"reasoning_content": "Short."}, "finish_reason": null},
            {"index": 0, "delta": {"content": "Hi"}, "finish_reason": null,
             "logprobs": {"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]}},
            {"index": 0, "delta": {}, "finish_reason": "length"}
        ])
    );
}

#[test]
fn cut_short_and_failed_streams_say_so() {
    // The body ends before `message-end`: the usage chunk is still sent, the caller learns the
    // answer was cut.
    let input = read("cohere_stream_tool.sse");
    let cut = &input[..input.find("event: message-end").unwrap()];
    let (_, items, complete) = translate_sse(cut.as_bytes(), 9, true);
    assert!(!complete);
    let StreamItem::Chunk(last) = items.last().unwrap() else {
        panic!()
    };
    assert!(last.choices.is_empty() && last.usage.is_some());
    assert_eq!(accumulate(&items).choices[0].finish_reason, None);

    // Nothing arrived: nothing to say.
    let mut tr = CohereToOpenAiStream::new(MODEL.into(), CREATED, true);
    let mut items = Vec::new();
    assert!(!tr.finish(&mut items));
    assert!(items.is_empty());

    // An error in `message-end` becomes an OpenAI error item, and usage is still counted.
    let mut tr = CohereToOpenAiStream::new(MODEL.into(), CREATED, true);
    let mut items = Vec::new();
    for e in events(&read("cohere_stream_text.sse")).into_iter().take(3) {
        tr.push(e, &mut items);
    }
    tr.push(
        serde_json::from_value(json!({"type": "message-end", "delta": {
            "finish_reason": "ERROR", "error": "internal generation error",
            "usage": {"tokens": {"input_tokens": 10, "output_tokens": 2}}
        }}))
        .unwrap(),
        &mut items,
    );
    let n = items.len();
    assert!(tr.finish(&mut items));
    assert_eq!(items.len(), n, "nothing after the error");
    assert_eq!(
        to_value(items.last().unwrap()),
        json!({"error": {"message": "internal generation error", "type": "server_error", "param": null, "code": null}})
    );
    assert_eq!((tr.usage().input, tr.usage().output), (10, 2));
}

// === errors ===

#[test]
fn error_bodies() {
    let body = read("cohere_error.json");
    check_json(
        "cohere_error.to_openai.json",
        &cohere_error_to_openai(body.as_bytes(), 429),
    );
    assert_eq!(
        to_value(&cohere_error_to_openai(body.as_bytes(), 429)),
        json!({"error": {
            "message": "You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'.",
            "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"
        }})
    );
    assert_eq!(
        to_value(&cohere_error_to_openai(
            br#"{"message":"invalid api token"}"#,
            401
        )),
        json!({"error": {"message": "invalid api token", "type": "authentication_error", "param": null, "code": "invalid_api_key"}})
    );
    // Not Cohere's JSON: the text, trimmed and capped.
    assert_eq!(
        to_value(&cohere_error_to_openai(
            b"  <html>Bad Gateway</html>\n",
            502
        )),
        json!({"error": {"message": "<html>Bad Gateway</html>", "type": "server_error", "param": null, "code": null}})
    );
    assert_eq!(
        cohere_error_to_openai(b"", 0).error.message,
        "upstream error (HTTP 0)"
    );
    let long = "é".repeat(600);
    let msg = cohere_error_to_openai(long.as_bytes(), 500).error.message;
    assert_eq!(msg.chars().count(), 513);
    assert!(msg.ends_with('…'));
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
        embeddings_request(json!({"dimensions": 512, "encoding_format": "float", "user": "u"}));
    assert_eq!(
        to_value(&cohere_embeddings_request(req, "embed-v4.0").unwrap()),
        json!({
            "model": "embed-v4.0",
            "texts": ["hello", "goodbye"],
            "input_type": "search_document",
            "embedding_types": ["float"],
            "output_dimension": 512,
            "truncate": "NONE"
        })
    );
    let out = cohere_embeddings_response(load("cohere_embed_response.json"), "embed-v4.0");
    assert_eq!(
        to_value(&out),
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.016296387, -0.008354187, -0.04699707, -0.07104492]},
                {"object": "embedding", "index": 1, "embedding": [-0.028427124, 0.0032806396, -0.036376953, 0.055511475]}
            ],
            "model": "embed-v4.0",
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        })
    );
    // The older bare-list shape is read too.
    let bare: co::EmbedResponse =
        serde_json::from_value(json!({"id": "x", "embeddings": [[0.5, 0.25]], "meta": {"billed_units": {"input_tokens": 1}}}))
            .unwrap();
    assert_eq!(
        to_value(&cohere_embeddings_response(bare, "m").data),
        json!([{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}])
    );

    let tokens = embeddings_request(json!({"input": [1, 2, 3]}));
    assert_eq!(
        cohere_embeddings_request(tokens, "m").unwrap_err(),
        Error::Untranslatable {
            field: "input".into()
        }
    );
}
