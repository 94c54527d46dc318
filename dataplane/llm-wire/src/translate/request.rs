//! Request bodies, OpenAI Chat Completions ⇄ Anthropic Messages.

use serde_json::{json, Value};

use crate::anthropic::{self as an, ContentBlock, Role};
use crate::error::{Error, Result};
use crate::openai::{self as oa, ChatMessage, ContentPart, MessageContent};

/// Options of OpenAI → Anthropic request translation.
#[derive(Debug, Clone)]
pub struct ToAnthropicOptions {
    /// `max_tokens` when the OpenAI request has none (Anthropic requires it).
    pub default_max_tokens: u32,
}

impl Default for ToAnthropicOptions {
    fn default() -> Self {
        ToAnthropicOptions {
            default_max_tokens: 4096,
        }
    }
}

/// Which OpenAI field carries the token limit upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: what OpenAI itself wants (its reasoning models refuse
    /// `max_tokens`).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: what many OpenAI-compatible servers still read.
    MaxTokens,
}

/// Options of Anthropic → OpenAI request translation.
#[derive(Debug, Clone, Default)]
pub struct ToOpenAiOptions {
    /// Field for `max_tokens`.
    pub max_tokens_field: MaxTokensField,
}

/// Thinking budgets for OpenAI `reasoning_effort` values. Anthropic's minimum budget is 1024.
const EFFORT_BUDGETS: [(&str, u32); 3] = [("low", 2048), ("medium", 8192), ("high", 24576)];
const MIN_THINKING_BUDGET: u32 = 1024;

/// Marks a failed tool result in OpenAI history, which has no `is_error` flag.
pub(crate) const TOOL_ERROR_PREFIX: &str = "[tool error] ";

/// Refuses every key of `extra` except those in `ignored` (hints with no effect on the answer).
fn refuse_extra(extra: &an::Extra, path: &str, ignored: &[&str]) -> Result<()> {
    // A field sent as `null` asks for nothing (SDKs serialize unset optionals so): not refused.
    match extra
        .iter()
        .find(|(k, v)| !v.is_null() && !ignored.contains(&k.as_str()))
        .map(|(k, _)| k)
    {
        Some(k) if path.is_empty() => Err(Error::untranslatable(k.as_str())),
        Some(k) => Err(Error::untranslatable(format!("{path}.{k}"))),
        None => Ok(()),
    }
}

// === OpenAI → Anthropic ===

/// Translates an OpenAI chat completion request into an Anthropic Messages request.
///
/// `system` and `developer` messages become `system` (hoisted, in order); `tool` messages become
/// `tool_result` blocks of a user turn; assistant `tool_calls` become `tool_use` blocks; image
/// `data:` URLs become base64 sources and `http(s)` URLs URL sources. Refused as untranslatable:
/// `n > 1`, `logprobs`, `top_logprobs`, `seed`, non-zero penalties, `logit_bias`,
/// `response_format` other than `text`, `temperature > 1`, non-function tools, content parts other
/// than text and image, and any field this crate does not model.
pub fn openai_to_anthropic_request(
    req: oa::ChatCompletionRequest,
    opts: &ToAnthropicOptions,
) -> Result<an::MessagesRequest> {
    let oa::ChatCompletionRequest {
        model,
        messages,
        max_tokens,
        max_completion_tokens,
        temperature,
        top_p,
        n,
        stream,
        stream_options: _, // only shapes the answer stream, which the translator produces
        stop,
        seed,
        response_format,
        tools,
        tool_choice,
        parallel_tool_calls,
        user,
        logprobs,
        top_logprobs,
        presence_penalty,
        frequency_penalty,
        logit_bias,
        reasoning_effort,
        extra,
    } = req;

    if n.is_some_and(|n| n > 1) {
        return Err(Error::untranslatable("n"));
    }
    if logprobs == Some(true) {
        return Err(Error::untranslatable("logprobs"));
    }
    if top_logprobs.is_some_and(|n| n > 0) {
        return Err(Error::untranslatable("top_logprobs"));
    }
    if seed.is_some() {
        return Err(Error::untranslatable("seed"));
    }
    if presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(Error::untranslatable("presence_penalty"));
    }
    if frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(Error::untranslatable("frequency_penalty"));
    }
    if logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(Error::untranslatable("logit_bias"));
    }
    if let Some(rf) = &response_format {
        if rf.kind != "text" {
            return Err(Error::untranslatable(format!(
                "response_format.type={}",
                rf.kind
            )));
        }
    }
    // Anthropic's range is 0..=1; scaling would change the sampling the client asked for.
    if temperature.is_some_and(|t| t > 1.0) {
        return Err(Error::untranslatable("temperature"));
    }
    if extra.get("store").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(Error::untranslatable("store"));
    }
    refuse_extra(
        &extra,
        "",
        &[
            "store",
            "metadata",
            "service_tier",
            "prompt_cache_key",
            "safety_identifier",
        ],
    )?;

    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<an::Message> = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                match m.content {
                    MessageContent::Text(t) => system.push(t),
                    MessageContent::Parts(parts) => {
                        for (j, part) in parts.into_iter().enumerate() {
                            system.push(text_part(part, &format!("messages[{i}].content[{j}]"))?);
                        }
                    }
                }
            }
            ChatMessage::User(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                let content = match m.content {
                    MessageContent::Text(t) => an::Content::Text(t),
                    MessageContent::Parts(parts) => {
                        let mut blocks = Vec::with_capacity(parts.len());
                        for (j, part) in parts.into_iter().enumerate() {
                            blocks.push(user_part(part, i, j)?);
                        }
                        an::Content::Blocks(blocks)
                    }
                };
                push_turn(&mut out, Role::User, content);
            }
            ChatMessage::Assistant(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                let mut blocks = Vec::new();
                match m.content {
                    Some(MessageContent::Text(t)) if !t.is_empty() => {
                        blocks.push(ContentBlock::text(t))
                    }
                    Some(MessageContent::Parts(parts)) => {
                        for (j, part) in parts.into_iter().enumerate() {
                            let path = format!("messages[{i}].content[{j}]");
                            let text = match part {
                                ContentPart::Refusal { refusal, .. } => refusal,
                                part => text_part(part, &path)?,
                            };
                            if !text.is_empty() {
                                blocks.push(ContentBlock::text(text));
                            }
                        }
                    }
                    _ => {}
                }
                if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
                    blocks.push(ContentBlock::text(refusal));
                }
                for (j, call) in m.tool_calls.into_iter().flatten().enumerate() {
                    let input = parse_arguments(
                        &call.function.arguments,
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    )?;
                    blocks.push(ContentBlock::ToolUse {
                        id: call.id,
                        name: call.function.name,
                        input,
                        extra: an::Extra::new(),
                    });
                }
                // An assistant turn with nothing in it says nothing; Anthropic refuses empty text.
                if !blocks.is_empty() {
                    push_turn(&mut out, Role::Assistant, an::Content::Blocks(blocks));
                }
            }
            ChatMessage::Tool(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                let mut is_error = None;
                let mut texts = match m.content {
                    MessageContent::Text(t) => vec![t],
                    MessageContent::Parts(parts) => {
                        let mut texts = Vec::with_capacity(parts.len());
                        for (j, part) in parts.into_iter().enumerate() {
                            texts.push(text_part(part, &format!("messages[{i}].content[{j}]"))?);
                        }
                        texts
                    }
                };
                // Undo the marker the reverse translation writes, so the flag round-trips.
                if let Some(first) = texts.first_mut() {
                    if first.starts_with(TOOL_ERROR_PREFIX) {
                        first.drain(..TOOL_ERROR_PREFIX.len());
                        is_error = Some(true);
                    }
                }
                let content = match texts.len() {
                    1 => an::Content::Text(texts.swap_remove(0)),
                    _ => an::Content::Blocks(texts.into_iter().map(ContentBlock::text).collect()),
                };
                let block = ContentBlock::ToolResult {
                    tool_use_id: m.tool_call_id,
                    content: Some(content),
                    is_error,
                    extra: an::Extra::new(),
                };
                push_turn(&mut out, Role::User, an::Content::Blocks(vec![block]));
            }
        }
    }

    let max_tokens = max_completion_tokens
        .or(max_tokens)
        .unwrap_or(opts.default_max_tokens);

    let thinking = match reasoning_effort.as_deref() {
        None | Some("none") | Some("minimal") => None,
        Some(effort) => {
            let budget = EFFORT_BUDGETS
                .iter()
                .find(|(name, _)| *name == effort)
                .map(|&(_, b)| b)
                .ok_or_else(|| Error::invalid("reasoning_effort", "unknown effort"))?;
            // The budget must stay below max_tokens.
            let budget = budget.min(max_tokens.saturating_sub(1));
            if budget < MIN_THINKING_BUDGET {
                return Err(Error::untranslatable("reasoning_effort"));
            }
            Some(an::Thinking {
                kind: "enabled".to_owned(),
                budget_tokens: Some(budget),
                extra: an::Extra::new(),
            })
        }
    };

    let has_tools = tools.as_ref().is_some_and(|t| !t.is_empty());
    let tools = match tools {
        None => None,
        Some(tools) => {
            let mut out = Vec::with_capacity(tools.len());
            for (j, tool) in tools.into_iter().enumerate() {
                out.push(openai_tool(tool, j)?);
            }
            Some(out)
        }
    };

    let disable_parallel = (parallel_tool_calls == Some(false)).then_some(true);
    let tool_choice = match tool_choice {
        None if disable_parallel.is_some() && has_tools => Some(an::ToolChoice::Auto {
            disable_parallel_tool_use: disable_parallel,
        }),
        None => None,
        Some(oa::ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => an::ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => an::ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            },
            "none" => an::ToolChoice::None,
            _ => return Err(Error::invalid("tool_choice", "unknown mode")),
        }),
        Some(oa::ToolChoice::Named(named)) => Some(an::ToolChoice::Tool {
            name: named.function.name,
            disable_parallel_tool_use: disable_parallel,
        }),
    };

    let system = match system.len() {
        0 => None,
        1 => system.pop().map(an::System::Text),
        _ => Some(an::System::Blocks(
            system.into_iter().map(ContentBlock::text).collect(),
        )),
    };

    Ok(an::MessagesRequest {
        model,
        messages: out,
        max_tokens,
        system,
        metadata: user.map(|u| an::Metadata {
            user_id: Some(u),
            extra: an::Extra::new(),
        }),
        stop_sequences: stop.map(oa::Stop::into_vec),
        stream,
        temperature,
        top_p,
        top_k: None,
        tools,
        tool_choice,
        thinking,
        extra: an::Extra::new(),
    })
}

/// Appends a turn, merging it into the previous one when the role repeats (consecutive tool
/// results, or a user message after them, form one Anthropic user turn).
fn push_turn(out: &mut Vec<an::Message>, role: Role, content: an::Content) {
    if let Some(last) = out.last_mut() {
        if last.role == role {
            let prev = std::mem::replace(&mut last.content, an::Content::Blocks(Vec::new()));
            let mut blocks = prev.into_blocks();
            blocks.extend(content.into_blocks());
            last.content = an::Content::Blocks(blocks);
            return;
        }
    }
    out.push(an::Message { role, content });
}

/// The text of a part that may only be text.
fn text_part(part: ContentPart, path: &str) -> Result<String> {
    match part {
        ContentPart::Text { text, extra } => {
            refuse_extra(&extra, path, &[])?;
            Ok(text)
        }
        other => Err(Error::untranslatable(format!(
            "{path}.type={}",
            part_type(&other)
        ))),
    }
}

fn part_type(part: &ContentPart) -> &str {
    match part {
        ContentPart::Text { .. } => "text",
        ContentPart::ImageUrl { .. } => "image_url",
        ContentPart::Refusal { .. } => "refusal",
        ContentPart::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
    }
}

fn user_part(part: ContentPart, i: usize, j: usize) -> Result<ContentBlock> {
    let path = format!("messages[{i}].content[{j}]");
    match part {
        ContentPart::ImageUrl { image_url, extra } => {
            refuse_extra(&extra, &path, &[])?;
            // `detail` is a resolution hint with no Anthropic counterpart; it is ignored.
            Ok(ContentBlock::Image {
                source: image_source(image_url.url, &path)?,
                extra: an::Extra::new(),
            })
        }
        part => Ok(ContentBlock::text(text_part(part, &path)?)),
    }
}

/// `data:<media type>;base64,<data>` → base64 source; `http(s)://` → URL source.
fn image_source(url: String, path: &str) -> Result<an::ImageSource> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
            Error::invalid(format!("{path}.image_url.url"), "data URL not base64")
        })?;
        return Ok(an::ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(an::ImageSource::Url { url });
    }
    Err(Error::invalid(
        format!("{path}.image_url.url"),
        "neither a data: nor an http(s): URL",
    ))
}

/// Tool-call arguments as the JSON object Anthropic wants. An empty string (some servers send it
/// for argument-less calls) is `{}`.
fn parse_arguments(arguments: &str, path: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::invalid(path, "not a JSON object")),
        Err(_) => Err(Error::invalid(path, "not valid JSON")),
    }
}

fn openai_tool(tool: oa::Tool, j: usize) -> Result<an::Tool> {
    if tool.kind != "function" {
        return Err(Error::untranslatable(format!(
            "tools[{j}].type={}",
            tool.kind
        )));
    }
    refuse_extra(&tool.extra, &format!("tools[{j}]"), &[])?;
    let f = tool
        .function
        .ok_or_else(|| Error::invalid(format!("tools[{j}].function"), "missing"))?;
    // `strict` asks OpenAI to enforce the schema exactly; Anthropic follows the schema without
    // that switch, so it is ignored.
    Ok(an::Tool {
        kind: None,
        name: f.name,
        description: f.description,
        input_schema: Some(
            f.parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        ),
        extra: an::Extra::new(),
    })
}

// === Anthropic → OpenAI ===

/// Translates an Anthropic Messages request into an OpenAI chat completion request.
///
/// `system` becomes a leading system message; `tool_result` blocks become `tool` messages placed
/// before the rest of their user turn; `tool_use` blocks become `tool_calls`; thinking blocks of
/// earlier turns are omitted (OpenAI has no way to send them back, and Anthropic itself does not
/// read earlier turns' thinking); `thinking` becomes `reasoning_effort`. A stream asks for
/// `include_usage`, so the usage of every call is known. Refused as untranslatable: `top_k`,
/// more than four `stop_sequences`, server tools, blocks other than text, image, tool_use,
/// tool_result and thinking, images inside tool results, and any unmodelled field.
pub fn anthropic_to_openai_request(
    req: an::MessagesRequest,
    opts: &ToOpenAiOptions,
) -> Result<oa::ChatCompletionRequest> {
    let an::MessagesRequest {
        model,
        messages,
        max_tokens,
        system,
        metadata,
        stop_sequences,
        stream,
        temperature,
        top_p,
        top_k,
        tools,
        tool_choice,
        thinking,
        extra,
    } = req;

    refuse_extra(&extra, "", &[])?;
    if top_k.is_some() {
        return Err(Error::untranslatable("top_k"));
    }
    if stop_sequences.as_ref().is_some_and(|s| s.len() > 4) {
        return Err(Error::untranslatable("stop_sequences"));
    }
    let user = match metadata {
        Some(m) => {
            refuse_extra(&m.extra, "metadata", &[])?;
            m.user_id
        }
        None => None,
    };

    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
    match system {
        None => {}
        Some(an::System::Text(t)) => out.push(instruction(MessageContent::Text(t))),
        Some(an::System::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.into_iter().enumerate() {
                parts.push(text_of_block(block, &format!("system[{j}]"))?);
            }
            out.push(instruction(text_content(parts)));
        }
    }

    for (i, message) in messages.into_iter().enumerate() {
        match message.role {
            Role::User => user_turn(message.content, i, &mut out)?,
            Role::Assistant => out.push(assistant_turn(message.content, i)?),
        }
    }

    let tools = match tools {
        None => None,
        Some(tools) => {
            let mut out = Vec::with_capacity(tools.len());
            for (j, tool) in tools.into_iter().enumerate() {
                out.push(anthropic_tool(tool, j)?);
            }
            Some(out)
        }
    };

    let mut parallel_tool_calls = None;
    let tool_choice = tool_choice.map(|choice| {
        let (choice, disable) = match choice {
            an::ToolChoice::Auto {
                disable_parallel_tool_use: d,
            } => (oa::ToolChoice::Mode("auto".to_owned()), d),
            an::ToolChoice::Any {
                disable_parallel_tool_use: d,
            } => (oa::ToolChoice::Mode("required".to_owned()), d),
            an::ToolChoice::None => (oa::ToolChoice::Mode("none".to_owned()), None),
            an::ToolChoice::Tool {
                name,
                disable_parallel_tool_use: d,
            } => (
                oa::ToolChoice::Named(oa::NamedToolChoice {
                    kind: "function".to_owned(),
                    function: oa::NamedFunction { name },
                }),
                d,
            ),
        };
        if disable == Some(true) {
            parallel_tool_calls = Some(false);
        }
        choice
    });

    let reasoning_effort = match thinking {
        None => None,
        Some(t) => {
            refuse_extra(&t.extra, "thinking", &[])?;
            match t.kind.as_str() {
                "disabled" => None,
                "enabled" => {
                    let budget = t.budget_tokens.unwrap_or(0);
                    let effort = EFFORT_BUDGETS
                        .iter()
                        .find(|&&(_, b)| budget <= b)
                        .map_or("high", |&(name, _)| name);
                    Some(effort.to_owned())
                }
                other => return Err(Error::untranslatable(format!("thinking.type={other}"))),
            }
        }
    };

    let (max_tokens, max_completion_tokens) = match opts.max_tokens_field {
        MaxTokensField::MaxTokens => (Some(max_tokens), None),
        MaxTokensField::MaxCompletionTokens => (None, Some(max_tokens)),
    };
    let stream_options = (stream == Some(true)).then(|| oa::StreamOptions {
        include_usage: Some(true),
        extra: oa::Extra::new(),
    });

    Ok(oa::ChatCompletionRequest {
        model,
        messages: out,
        max_tokens,
        max_completion_tokens,
        temperature,
        top_p,
        n: None,
        stream,
        stream_options,
        stop: stop_sequences.map(oa::Stop::Many),
        seed: None,
        response_format: None,
        tools,
        tool_choice,
        parallel_tool_calls,
        user,
        logprobs: None,
        top_logprobs: None,
        presence_penalty: None,
        frequency_penalty: None,
        logit_bias: None,
        reasoning_effort,
        extra: oa::Extra::new(),
    })
}

fn instruction(content: MessageContent) -> ChatMessage {
    ChatMessage::System(oa::InstructionMessage {
        content,
        name: None,
        extra: oa::Extra::new(),
    })
}

/// One text stays a plain string; several become text parts.
fn text_content(mut texts: Vec<String>) -> MessageContent {
    if texts.len() == 1 {
        if let Some(t) = texts.pop() {
            return MessageContent::Text(t);
        }
    }
    MessageContent::Parts(
        texts
            .into_iter()
            .map(|text| ContentPart::Text {
                text,
                extra: oa::Extra::new(),
            })
            .collect(),
    )
}

/// The text of a block that may only be text. `cache_control` is ignored: OpenAI caches prompt
/// prefixes automatically.
fn text_of_block(block: ContentBlock, path: &str) -> Result<String> {
    match block {
        ContentBlock::Text { text, extra } => {
            refuse_extra(&extra, path, &["cache_control", "citations"])?;
            Ok(text)
        }
        other => Err(Error::untranslatable(format!(
            "{path}.type={}",
            other.type_name()
        ))),
    }
}

fn user_turn(content: an::Content, i: usize, out: &mut Vec<ChatMessage>) -> Result<()> {
    let blocks = match content {
        an::Content::Text(t) => {
            out.push(user_message(MessageContent::Text(t)));
            return Ok(());
        }
        an::Content::Blocks(blocks) => blocks,
    };
    let mut parts: Vec<ContentPart> = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                extra,
            } => {
                refuse_extra(&extra, &path, &["cache_control"])?;
                let mut texts = match content {
                    None => Vec::new(),
                    Some(an::Content::Text(t)) => vec![t],
                    Some(an::Content::Blocks(blocks)) => {
                        let mut texts = Vec::with_capacity(blocks.len());
                        for (k, b) in blocks.into_iter().enumerate() {
                            texts.push(text_of_block(b, &format!("{path}.content[{k}]"))?);
                        }
                        texts
                    }
                };
                // OpenAI has no error flag on tool results; the model is told in the text.
                if texts.is_empty() {
                    texts.push(String::new());
                }
                if is_error == Some(true) {
                    texts[0].insert_str(0, TOOL_ERROR_PREFIX);
                }
                // Tool messages must directly follow the assistant's tool calls, so they go
                // before the rest of this turn.
                out.push(ChatMessage::Tool(oa::ToolMessage {
                    content: text_content(texts),
                    tool_call_id: tool_use_id,
                    extra: oa::Extra::new(),
                }));
            }
            ContentBlock::Text { text, extra } => {
                refuse_extra(&extra, &path, &["cache_control", "citations"])?;
                parts.push(ContentPart::Text {
                    text,
                    extra: oa::Extra::new(),
                });
            }
            ContentBlock::Image { source, extra } => {
                refuse_extra(&extra, &path, &["cache_control"])?;
                let url = match source {
                    an::ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                    an::ImageSource::Url { url } => url,
                    an::ImageSource::Other(v) => {
                        let t = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
                        return Err(Error::untranslatable(format!("{path}.source.type={t}")));
                    }
                };
                parts.push(ContentPart::ImageUrl {
                    image_url: oa::ImageUrl { url, detail: None },
                    extra: oa::Extra::new(),
                });
            }
            other => {
                return Err(Error::untranslatable(format!(
                    "{path}.type={}",
                    other.type_name()
                )))
            }
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [ContentPart::Text { .. }] => match parts.pop() {
                Some(ContentPart::Text { text, .. }) => MessageContent::Text(text),
                _ => MessageContent::Parts(parts),
            },
            _ => MessageContent::Parts(parts),
        };
        out.push(user_message(content));
    }
    Ok(())
}

fn user_message(content: MessageContent) -> ChatMessage {
    ChatMessage::User(oa::UserMessage {
        content,
        name: None,
        extra: oa::Extra::new(),
    })
}

fn assistant_turn(content: an::Content, i: usize) -> Result<ChatMessage> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in content.into_blocks().into_iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match block {
            ContentBlock::Text { text: t, extra } => {
                refuse_extra(&extra, &path, &["cache_control", "citations"])?;
                text.push_str(&t);
            }
            ContentBlock::ToolUse {
                id,
                name,
                input,
                extra,
            } => {
                refuse_extra(&extra, &path, &["cache_control"])?;
                calls.push(oa::ToolCall {
                    id,
                    kind: "function".to_owned(),
                    function: oa::FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                });
            }
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {}
            other => {
                return Err(Error::untranslatable(format!(
                    "{path}.type={}",
                    other.type_name()
                )))
            }
        }
    }
    Ok(ChatMessage::Assistant(oa::AssistantMessage {
        content: (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
        refusal: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        name: None,
        extra: oa::Extra::new(),
    }))
}

fn anthropic_tool(tool: an::Tool, j: usize) -> Result<oa::Tool> {
    if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
        return Err(Error::untranslatable(format!("tools[{j}].type={kind}")));
    }
    refuse_extra(&tool.extra, &format!("tools[{j}]"), &["cache_control"])?;
    let parameters = tool
        .input_schema
        .ok_or_else(|| Error::invalid(format!("tools[{j}].input_schema"), "missing"))?;
    Ok(oa::Tool {
        kind: "function".to_owned(),
        function: Some(oa::FunctionDef {
            name: tool.name,
            description: tool.description,
            parameters: Some(parameters),
            strict: None,
        }),
        extra: oa::Extra::new(),
    })
}
