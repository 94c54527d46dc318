//! Non-streaming response bodies, both ways.

use serde_json::Value;

use super::{finish_to_stop_reason, stop_to_finish_reason};
use crate::anthropic::{self as an, ContentBlock};
use crate::error::{Error, Result};
use crate::openai as oa;
use crate::Usage;

/// Translates an OpenAI chat completion into an Anthropic message.
///
/// `reasoning_content` becomes a leading thinking block (without signature), the text a text
/// block, a refusal a text block with `stop_reason: refusal`, tool calls `tool_use` blocks. More
/// than one choice cannot be expressed (requests with `n > 1` are already refused).
pub fn openai_to_anthropic_response(resp: oa::ChatCompletion) -> Result<an::MessagesResponse> {
    if resp.choices.len() > 1 {
        return Err(Error::untranslatable("choices"));
    }
    let usage = resp
        .usage
        .as_ref()
        .map(Usage::from_openai)
        .unwrap_or_default()
        .to_anthropic();
    let Some(choice) = resp.choices.into_iter().next() else {
        return Err(Error::invalid("choices", "empty"));
    };
    let m = choice.message;
    let mut content = Vec::new();
    if let Some(thinking) = m.reasoning_content.filter(|t| !t.is_empty()) {
        content.push(ContentBlock::Thinking {
            thinking,
            signature: String::new(),
            extra: an::Extra::new(),
        });
    }
    if let Some(text) = m.content.filter(|t| !t.is_empty()) {
        content.push(ContentBlock::text(text));
    }
    let refused = m.refusal.as_ref().is_some_and(|r| !r.is_empty());
    if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
        content.push(ContentBlock::text(refusal));
    }
    for (j, call) in m.tool_calls.into_iter().flatten().enumerate() {
        content.push(ContentBlock::ToolUse {
            input: tool_input(&call.function.arguments, j)?,
            id: call.id,
            name: call.function.name,
            extra: an::Extra::new(),
        });
    }
    let stop_reason = if refused {
        Some(an::StopReason::Refusal)
    } else {
        choice.finish_reason.as_ref().map(finish_to_stop_reason)
    };
    Ok(an::MessagesResponse {
        id: resp.id,
        kind: "message".to_owned(),
        role: an::Role::Assistant,
        content,
        model: resp.model,
        stop_reason,
        stop_sequence: None,
        usage,
        extra: an::Extra::new(),
    })
}

fn tool_input(arguments: &str, j: usize) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Error::invalid(
            format!("choices[0].message.tool_calls[{j}].function.arguments"),
            "not a JSON object",
        )),
    }
}

/// Translates an Anthropic message into an OpenAI chat completion. `created` is the Unix time to
/// stamp it with (the translation reads no clock).
///
/// Text blocks are joined into `content`; thinking becomes `reasoning_content` (signatures and
/// redacted thinking have no OpenAI field and are left out); `tool_use` blocks become
/// `tool_calls`. Other blocks (server tools, citations-only blocks) are untranslatable.
pub fn anthropic_to_openai_response(
    msg: an::MessagesResponse,
    created: u64,
) -> Result<oa::ChatCompletion> {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for (j, block) in msg.content.into_iter().enumerate() {
        match block {
            ContentBlock::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(&t),
            ContentBlock::Thinking { thinking, .. } => reasoning
                .get_or_insert_with(String::new)
                .push_str(&thinking),
            ContentBlock::RedactedThinking { .. } => {}
            ContentBlock::ToolUse {
                id, name, input, ..
            } => calls.push(oa::ToolCall {
                id,
                kind: "function".to_owned(),
                function: oa::FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            other => {
                return Err(Error::untranslatable(format!(
                    "content[{j}].type={}",
                    other.type_name()
                )))
            }
        }
    }
    Ok(oa::ChatCompletion {
        id: msg.id,
        object: "chat.completion".to_owned(),
        created,
        model: msg.model,
        choices: vec![oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".to_owned(),
                content: text,
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: reasoning,
                extra: oa::Extra::new(),
            },
            finish_reason: msg.stop_reason.as_ref().map(stop_to_finish_reason),
            logprobs: None,
            extra: oa::Extra::new(),
        }],
        usage: Some(Usage::from_anthropic(&msg.usage).to_openai()),
        system_fingerprint: None,
        extra: oa::Extra::new(),
    })
}
