use super::*;
use crate::{anthropic as an, openai as oa, Usage};

#[test]
fn every_finish_reason_maps() {
    let cases = [
        (FinishReason::Stop, StopReason::EndTurn),
        (FinishReason::Length, StopReason::MaxTokens),
        (FinishReason::ToolCalls, StopReason::ToolUse),
        (FinishReason::FunctionCall, StopReason::ToolUse),
        (FinishReason::ContentFilter, StopReason::Refusal),
        (FinishReason::Other("eos".into()), StopReason::EndTurn),
    ];
    for (from, to) in cases {
        assert_eq!(finish_to_stop_reason(&from), to, "{from:?}");
    }
}

#[test]
fn every_stop_reason_maps() {
    let cases = [
        (StopReason::EndTurn, FinishReason::Stop),
        (StopReason::StopSequence, FinishReason::Stop),
        (StopReason::PauseTurn, FinishReason::Stop),
        (StopReason::MaxTokens, FinishReason::Length),
        (StopReason::ModelContextWindowExceeded, FinishReason::Length),
        (StopReason::ToolUse, FinishReason::ToolCalls),
        (StopReason::Refusal, FinishReason::ContentFilter),
        (StopReason::Other("new_reason".into()), FinishReason::Stop),
    ];
    for (from, to) in cases {
        assert_eq!(stop_to_finish_reason(&from), to, "{from:?}");
    }
}

#[test]
fn stop_reasons_round_trip_where_both_sides_have_them() {
    for r in [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::ToolCalls,
        FinishReason::ContentFilter,
    ] {
        assert_eq!(stop_to_finish_reason(&finish_to_stop_reason(&r)), r);
    }
    for r in [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::ToolUse,
        StopReason::Refusal,
    ] {
        assert_eq!(finish_to_stop_reason(&stop_to_finish_reason(&r)), r);
    }
}

#[test]
fn unknown_reasons_parse_and_serialize_as_they_came() {
    let r: FinishReason = serde_json::from_str("\"eos\"").unwrap();
    assert_eq!(r, FinishReason::Other("eos".into()));
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"eos\"");
    let r: StopReason = serde_json::from_str("\"tool_use\"").unwrap();
    assert_eq!(r, StopReason::ToolUse);
    let r: StopReason = serde_json::from_str("\"brand_new\"").unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"brand_new\"");
}

#[test]
fn statuses_map_to_error_types() {
    let cases = [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (402, "billing_error", "invalid_request_error"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "invalid_request_error"),
        (408, "timeout_error", "timeout_error"),
        (413, "request_too_large", "invalid_request_error"),
        (422, "invalid_request_error", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "server_error"),
        (502, "api_error", "server_error"),
        (503, "overloaded_error", "server_error"),
        (504, "timeout_error", "timeout_error"),
        (529, "overloaded_error", "server_error"),
    ];
    for (status, anthropic, openai) in cases {
        assert_eq!(anthropic_error_type(status), anthropic, "{status}");
        assert_eq!(openai_error_type(status).0, openai, "{status}");
    }
    for status in [400, 401, 402, 403, 404, 413, 429, 504, 529] {
        assert_eq!(
            anthropic_status_for_type(anthropic_error_type(status)),
            status
        );
    }
    assert_eq!(anthropic_status_for_type("something_new"), 500);
}

#[test]
fn errors_keep_message_and_source_type() {
    let e = anthropic_error_to_openai(an::ErrorBody::new("rate_limit_error", "slow down"), 429);
    assert_eq!(e.error.kind, "rate_limit_error");
    assert_eq!(e.error.message, "slow down");
    assert_eq!(e.error.code, Some("rate_limit_error".into()));
    // In a stream (no status), the type decides.
    let e = anthropic_error_to_openai(an::ErrorBody::new("overloaded_error", "busy"), 0);
    assert_eq!(e.error.kind, "server_error");
    let e = openai_error_to_anthropic(oa::ErrorBody::new("server_error", "boom"), 500);
    assert_eq!(
        (e.kind.as_str(), e.error.kind.as_str()),
        ("error", "api_error")
    );
    let e = openai_error_to_anthropic(oa::ErrorBody::new("tokens", "tpm"), 0);
    assert_eq!(e.error.kind, "rate_limit_error");
}

#[test]
fn usage_normalizes_both_ways() {
    let o: oa::Usage = serde_json::from_value(serde_json::json!({
        "prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 200}
    }))
    .unwrap();
    let u = Usage::from_openai(&o);
    assert_eq!(
        u,
        Usage {
            input: 1000,
            output: 300,
            cached_input: 800,
            cache_write: 0,
            reasoning: 200
        }
    );
    assert_eq!(u.to_openai(), {
        let mut o = o.clone();
        o.extra.clear();
        o
    });
    let a = u.to_anthropic();
    assert_eq!(
        (a.input_tokens, a.cache_read_input_tokens),
        (200, Some(800))
    );

    let a: an::Usage = serde_json::from_value(serde_json::json!({
        "input_tokens": 10, "output_tokens": 5,
        "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30
    }))
    .unwrap();
    let u = Usage::from_anthropic(&a);
    assert_eq!((u.input, u.cached_input, u.cache_write), (60, 30, 20));
    assert_eq!(u.to_anthropic(), a);

    let mut u = Usage::from_anthropic(&an::Usage {
        input_tokens: 10,
        output_tokens: 1,
        ..Default::default()
    });
    u.merge_anthropic_delta(&an::DeltaUsage {
        output_tokens: 42,
        ..Default::default()
    });
    assert_eq!((u.input, u.output), (10, 42));
    u.merge_anthropic_delta(&an::DeltaUsage {
        output_tokens: 43,
        input_tokens: Some(12),
        cache_read_input_tokens: Some(5),
        ..Default::default()
    });
    assert_eq!((u.input, u.output, u.cached_input), (17, 43, 5));
}

#[test]
fn images_and_tool_arguments() {
    let req: oa::ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}
        ]
    }))
    .unwrap();
    let err = openai_to_anthropic_request(req, &ToAnthropicOptions::default()).unwrap_err();
    assert_eq!(err.field(), "messages[0].content[0].image_url.url");

    let req: oa::ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{not json"}}]}
        ]
    }))
    .unwrap();
    let err = openai_to_anthropic_request(req, &ToAnthropicOptions::default()).unwrap_err();
    assert!(matches!(err, crate::Error::Invalid { .. }));

    // Empty arguments mean no arguments; a missing max_tokens takes the default.
    let req: oa::ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "m",
        "messages": [
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": ""}}]}
        ]
    }))
    .unwrap();
    let out = openai_to_anthropic_request(
        req,
        &ToAnthropicOptions {
            default_max_tokens: 777,
        },
    )
    .unwrap();
    assert_eq!(out.max_tokens, 777);
    let an::Content::Blocks(blocks) = &out.messages[0].content else {
        panic!("blocks")
    };
    assert_eq!(blocks.len(), 1, "empty text is not sent");
    assert!(
        matches!(&blocks[0], an::ContentBlock::ToolUse { input, .. } if input == &serde_json::json!({}))
    );
}

#[test]
fn tool_choice_mapping() {
    fn oa_to_an(choice: serde_json::Value, parallel: Option<bool>) -> Option<an::ToolChoice> {
        let mut body = serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        });
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        if let Some(p) = parallel {
            body["parallel_tool_calls"] = p.into();
        }
        let req = serde_json::from_value(body).unwrap();
        openai_to_anthropic_request(req, &ToAnthropicOptions::default())
            .unwrap()
            .tool_choice
    }
    use an::ToolChoice as T;
    assert_eq!(
        oa_to_an("auto".into(), None),
        Some(T::Auto {
            disable_parallel_tool_use: None
        })
    );
    assert_eq!(
        oa_to_an("required".into(), None),
        Some(T::Any {
            disable_parallel_tool_use: None
        })
    );
    assert_eq!(oa_to_an("none".into(), None), Some(T::None));
    assert_eq!(
        oa_to_an(
            serde_json::json!({"type": "function", "function": {"name": "f"}}),
            Some(false)
        ),
        Some(T::Tool {
            name: "f".into(),
            disable_parallel_tool_use: Some(true)
        })
    );
    assert_eq!(
        oa_to_an(serde_json::Value::Null, Some(false)),
        Some(T::Auto {
            disable_parallel_tool_use: Some(true)
        })
    );
    assert_eq!(oa_to_an(serde_json::Value::Null, Some(true)), None);
}

#[test]
fn reasoning_effort_and_thinking() {
    let req: oa::ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high", "max_tokens": 4000
    }))
    .unwrap();
    let out = openai_to_anthropic_request(req, &ToAnthropicOptions::default()).unwrap();
    assert_eq!(out.thinking.unwrap().budget_tokens, Some(3999));

    for (budget, effort) in [
        (1024, "low"),
        (2048, "low"),
        (5000, "medium"),
        (30000, "high"),
    ] {
        let req: an::MessagesRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": budget}
        }))
        .unwrap();
        let out = anthropic_to_openai_request(req, &ToOpenAiOptions::default()).unwrap();
        assert_eq!(out.reasoning_effort.as_deref(), Some(effort), "{budget}");
    }
}

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> oa::StreamItem {
    serde_json::from_value(serde_json::json!({
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    }))
    .unwrap()
}

fn names(events: &[an::StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            an::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => format!("start {index} {}", content_block.type_name()),
            an::StreamEvent::ContentBlockDelta { index, delta } => {
                let kind = serde_json::to_value(delta).unwrap()["type"].clone();
                format!("delta {index} {}", kind.as_str().unwrap())
            }
            an::StreamEvent::ContentBlockStop { index } => format!("stop {index}"),
            e => e.event_name().to_owned(),
        })
        .collect()
}

#[test]
fn reasoning_then_text_then_refusal_stream() {
    let mut tr = OpenAiToAnthropicStream::new();
    let mut out = Vec::new();
    tr.push(
        chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ),
        &mut out,
    );
    tr.push(
        chunk(serde_json::json!({"reasoning_content": "hmm"}), None),
        &mut out,
    );
    tr.push(
        chunk(serde_json::json!({"reasoning_content": "..."}), None),
        &mut out,
    );
    tr.push(
        chunk(serde_json::json!({"content": "I can't"}), None),
        &mut out,
    );
    tr.push(
        chunk(serde_json::json!({"refusal": " help with that."}), None),
        &mut out,
    );
    tr.push(chunk(serde_json::json!({}), Some("stop")), &mut out);
    assert!(tr.finish(&mut out));
    assert_eq!(
        names(&out),
        [
            "message_start",
            "start 0 thinking",
            "delta 0 thinking_delta",
            "delta 0 thinking_delta",
            "stop 0",
            "start 1 text",
            "delta 1 text_delta",
            "delta 1 text_delta",
            "stop 1",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(
        matches!(&out[9], an::StreamEvent::MessageDelta { delta, .. }
        if delta.stop_reason == Some(StopReason::Refusal))
    );
    // Nothing after the end.
    let n = out.len();
    tr.push(
        chunk(serde_json::json!({"content": "late"}), None),
        &mut out,
    );
    assert!(tr.finish(&mut out));
    assert_eq!(out.len(), n);
}

#[test]
fn interleaved_parallel_tool_calls_keep_their_index() {
    let call = |index: u32, id: Option<&str>, args: &str| {
        let mut c = serde_json::json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = id.into();
            c["type"] = "function".into();
            c["function"]["name"] = "f".into();
        }
        chunk(serde_json::json!({"tool_calls": [c]}), None)
    };
    let mut tr = OpenAiToAnthropicStream::new();
    let mut out = Vec::new();
    tr.push(call(0, Some("a"), "{\"x\""), &mut out);
    tr.push(call(1, Some("b"), "{\"y\""), &mut out);
    tr.push(call(0, None, ":1}"), &mut out);
    tr.push(call(1, None, ":2}"), &mut out);
    tr.push(chunk(serde_json::json!({}), Some("tool_calls")), &mut out);
    tr.finish(&mut out);
    assert_eq!(
        names(&out),
        [
            "message_start",
            "start 0 tool_use",
            "delta 0 input_json_delta",
            "stop 0",
            "start 1 tool_use",
            "delta 1 input_json_delta",
            "delta 0 input_json_delta",
            "delta 1 input_json_delta",
            "stop 1",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(tr.usage(), None, "no usage chunk came");
}

#[test]
fn anthropic_stream_without_include_usage_still_counts() {
    let events: Vec<an::StreamEvent> = [
        serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": "claude", "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        serde_json::json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        serde_json::json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Hi"}}),
        serde_json::json!({"type": "content_block_stop", "index": 0}),
        serde_json::json!({"type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
            "usage": {"output_tokens": 7}}),
        serde_json::json!({"type": "message_stop"}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let mut tr = AnthropicToOpenAiStream::new(false, 9);
    let mut out = Vec::new();
    for e in events {
        tr.push(e, &mut out);
    }
    assert!(tr.finish(&mut out));
    assert_eq!(out.len(), 3, "role, text, finish");
    let oa::StreamItem::Chunk(last) = &out[2] else {
        panic!("chunk")
    };
    assert_eq!(last.choices[0].finish_reason, Some(FinishReason::Length));
    assert_eq!((tr.usage().input, tr.usage().output), (25, 7));
}
