//! OpenAI Chat Completions ⇄ AWS Bedrock Converse, as pure functions.
//!
//! - requests: [`openai_to_bedrock_request`] (the model goes in the URL, not the body);
//! - responses: [`bedrock_to_openai_response`]; streams, event by event: [`BedrockToOpenAiStream`];
//! - errors: [`bedrock_error_to_openai`], [`bedrock_exception_status`];
//! - usage and stop reasons: [`bedrock_usage`], [`bedrock_finish_reason`];
//! - Titan text embeddings for `/v1/embeddings`: [`titan_embeddings_request`],
//!   [`titan_embeddings_response`].
//!
//! Only the OpenAI → Bedrock direction of requests exists: clients speak OpenAI (or Anthropic,
//! translated to OpenAI first), never Converse.

use serde_json::{json, Value};

use super::openai_error_type;
use crate::bedrock::{self as br, ContentBlock, Role};
use crate::error::{Error, Result};
use crate::openai::{self as oa, ChatMessage, ContentPart, MessageContent, StreamItem};
use crate::Usage;

/// Thinking budgets for OpenAI `reasoning_effort` on Anthropic models (the same as the Anthropic
/// translation's); Anthropic's minimum budget is 1024.
const EFFORT_BUDGETS: [(&str, u32); 3] = [("low", 2048), ("medium", 8192), ("high", 24576)];
const MIN_THINKING_BUDGET: u32 = 1024;
/// Tokens left for the answer when thinking is on and the client set no limit.
const ANSWER_TOKENS_AFTER_THINKING: u32 = 4096;

/// Refuses every key of `extra` except those in `ignored`.
fn refuse_extra(extra: &oa::Extra, path: &str, ignored: &[&str]) -> Result<()> {
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

// === OpenAI → Bedrock ===

/// Translates an OpenAI chat completion request into a Converse request body.
///
/// The model is not part of the body: the caller puts `req.model` (read before handing the
/// request over, and mapped to a Bedrock model id or inference profile) in the URL,
/// `/model/{modelId}/converse` or `/converse-stream` for `stream: true`.
///
/// `system` and `developer` messages become `system` blocks (hoisted, in order); `tool` messages
/// become `toolResult` blocks of a user turn; assistant `tool_calls` become `toolUse` blocks;
/// consecutive messages of one role are merged into one turn, because Converse requires the roles
/// to alternate. Images must be `data:` URLs of PNG, JPEG, GIF or WebP (Converse takes bytes, not
/// URLs). `reasoning_effort` becomes Anthropic's `thinking` in `additionalModelRequestFields` for
/// Anthropic models (any model id containing `anthropic.`).
///
/// Refused as untranslatable: `n > 1`, `logprobs`, `top_logprobs`, `seed`, non-zero penalties,
/// `logit_bias`, `response_format` other than `text`, `temperature > 1`, `parallel_tool_calls:
/// false` with tools, `tool_choice: none` when the conversation already holds tool calls,
/// `reasoning_effort` on other models, non-function tools, `http(s)` image URLs and other image
/// types, content parts other than text and image, and any field this crate does not model.
/// Ignored: `user` (an abuse-monitoring id with no Converse field; it does not change the answer),
/// participant `name`s (as in the Anthropic translation), image `detail`, `strict` on tools,
/// `stream` and `stream_options` (the caller picks the endpoint; the stream translator shapes the
/// answer).
pub fn openai_to_bedrock_request(req: oa::ChatCompletionRequest) -> Result<br::ConverseRequest> {
    let oa::ChatCompletionRequest {
        model,
        messages,
        max_tokens,
        max_completion_tokens,
        temperature,
        top_p,
        n,
        stream: _,
        stream_options: _,
        stop,
        seed,
        response_format,
        tools,
        tool_choice,
        parallel_tool_calls,
        user: _,
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
        // Converse has no JSON mode; forcing a tool call would change the answer's shape.
        if rf.kind != "text" {
            return Err(Error::untranslatable(format!(
                "response_format.type={}",
                rf.kind
            )));
        }
    }
    // Converse's range is 0..=1; scaling would change the sampling the client asked for.
    if temperature.is_some_and(|t| t > 1.0) {
        return Err(Error::untranslatable("temperature"));
    }
    if extra.get("store").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(Error::untranslatable("store"));
    }
    refuse_extra(&extra, "", &["store"])?;

    let mut system: Vec<br::SystemContentBlock> = Vec::new();
    let mut out: Vec<br::Message> = Vec::with_capacity(messages.len());
    let mut has_tool_blocks = false;
    for (i, message) in messages.into_iter().enumerate() {
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                for text in texts(m.content, &format!("messages[{i}]"))? {
                    // Converse refuses blank text blocks.
                    if !text.is_empty() {
                        system.push(br::SystemContentBlock::Text(text));
                    }
                }
            }
            ChatMessage::User(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                let blocks = match m.content {
                    MessageContent::Text(t) => vec![ContentBlock::Text(t)],
                    MessageContent::Parts(parts) => {
                        let mut blocks = Vec::with_capacity(parts.len());
                        for (j, part) in parts.into_iter().enumerate() {
                            blocks.push(user_part(part, i, j)?);
                        }
                        blocks
                    }
                };
                push_turn(&mut out, Role::User, blocks);
            }
            ChatMessage::Assistant(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                let mut blocks = Vec::new();
                match m.content {
                    Some(MessageContent::Text(t)) => blocks.push(ContentBlock::Text(t)),
                    Some(MessageContent::Parts(parts)) => {
                        for (j, part) in parts.into_iter().enumerate() {
                            let path = format!("messages[{i}].content[{j}]");
                            let text = match part {
                                ContentPart::Refusal { refusal, .. } => refusal,
                                part => text_part(part, &path)?,
                            };
                            blocks.push(ContentBlock::Text(text));
                        }
                    }
                    None => {}
                }
                if let Some(refusal) = m.refusal {
                    blocks.push(ContentBlock::Text(refusal));
                }
                // Converse refuses blank text blocks; an empty turn says nothing.
                blocks.retain(|b| !matches!(b, ContentBlock::Text(t) if t.is_empty()));
                for (j, call) in m.tool_calls.into_iter().flatten().enumerate() {
                    let input = parse_arguments(
                        &call.function.arguments,
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    )?;
                    has_tool_blocks = true;
                    blocks.push(ContentBlock::ToolUse(br::ToolUseBlock {
                        tool_use_id: call.id,
                        name: call.function.name,
                        input,
                        extra: br::Extra::new(),
                    }));
                }
                if !blocks.is_empty() {
                    push_turn(&mut out, Role::Assistant, blocks);
                }
            }
            ChatMessage::Tool(m) => {
                refuse_extra(&m.extra, &format!("messages[{i}]"), &[])?;
                has_tool_blocks = true;
                let content = texts(m.content, &format!("messages[{i}]"))?
                    .into_iter()
                    .map(br::ToolResultContentBlock::Text)
                    .collect();
                let block = ContentBlock::ToolResult(br::ToolResultBlock {
                    tool_use_id: m.tool_call_id,
                    content,
                    status: None,
                    extra: br::Extra::new(),
                });
                push_turn(&mut out, Role::User, vec![block]);
            }
        }
    }

    let mut max_tokens = max_completion_tokens.or(max_tokens);
    let additional_model_request_fields = match reasoning_effort.as_deref() {
        None | Some("none") | Some("minimal") => None,
        Some(effort) => {
            // Converse has no common reasoning switch: each model family takes its own field in
            // `additionalModelRequestFields`, and only Anthropic's is known here.
            if !model.contains("anthropic.") {
                return Err(Error::untranslatable("reasoning_effort"));
            }
            let budget = EFFORT_BUDGETS
                .iter()
                .find(|(name, _)| *name == effort)
                .map(|&(_, b)| b)
                .ok_or_else(|| Error::invalid("reasoning_effort", "unknown effort"))?;
            // Anthropic wants the budget below max_tokens.
            let budget = match max_tokens {
                Some(m) => budget.min(m.saturating_sub(1)),
                None => {
                    max_tokens = Some(budget + ANSWER_TOKENS_AFTER_THINKING);
                    budget
                }
            };
            if budget < MIN_THINKING_BUDGET {
                return Err(Error::untranslatable("reasoning_effort"));
            }
            Some(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}))
        }
    };

    let has_tools = tools.as_ref().is_some_and(|t| !t.is_empty());
    if has_tools && parallel_tool_calls == Some(false) {
        return Err(Error::untranslatable("parallel_tool_calls"));
    }
    // Converse cannot forbid tools, only omit them.
    let mut omit_tools = false;
    let tool_choice = match tool_choice {
        None => None,
        Some(oa::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(br::ToolChoice::Auto(br::Empty {})),
            "required" => Some(br::ToolChoice::Any(br::Empty {})),
            // Converse refuses a conversation holding tool blocks without a tool configuration.
            "none" if has_tool_blocks => return Err(Error::untranslatable("tool_choice")),
            "none" => {
                omit_tools = true;
                None
            }
            _ => return Err(Error::invalid("tool_choice", "unknown mode")),
        },
        Some(oa::ToolChoice::Named(named)) => Some(br::ToolChoice::Tool(br::SpecificTool {
            name: named.function.name,
        })),
    };
    let tool_config = match tools {
        Some(tools) if !tools.is_empty() && !omit_tools => {
            let mut specs = Vec::with_capacity(tools.len());
            for (j, tool) in tools.into_iter().enumerate() {
                specs.push(openai_tool(tool, j)?);
            }
            Some(br::ToolConfig {
                tools: specs,
                tool_choice,
            })
        }
        _ => None,
    };

    Ok(br::ConverseRequest {
        messages: out,
        system,
        inference_config: inference_config(max_tokens, temperature, top_p, stop),
        tool_config,
        additional_model_request_fields,
        extra: br::Extra::new(),
    })
}

fn inference_config(
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<oa::Stop>,
) -> Option<br::InferenceConfig> {
    // Converse refuses empty stop sequences.
    let stop_sequences = stop
        .map(|s| {
            s.into_vec()
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty());
    if max_tokens.is_none() && temperature.is_none() && top_p.is_none() && stop_sequences.is_none()
    {
        return None;
    }
    Some(br::InferenceConfig {
        max_tokens,
        temperature,
        top_p,
        stop_sequences,
        extra: br::Extra::new(),
    })
}

/// Appends a turn, merging it into the previous one when the role repeats: Converse requires
/// alternation, and OpenAI sends consecutive tool results (and a user message after them) as
/// separate messages.
fn push_turn(out: &mut Vec<br::Message>, role: Role, content: Vec<ContentBlock>) {
    if let Some(last) = out.last_mut() {
        if last.role == role {
            last.content.extend(content);
            return;
        }
    }
    out.push(br::Message { role, content });
}

/// The texts of content that may only be text.
fn texts(content: MessageContent, path: &str) -> Result<Vec<String>> {
    match content {
        MessageContent::Text(t) => Ok(vec![t]),
        MessageContent::Parts(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                texts.push(text_part(part, &format!("{path}.content[{j}]"))?);
            }
            Ok(texts)
        }
    }
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
            // `detail` is a resolution hint with no Converse counterpart; it is ignored.
            Ok(ContentBlock::Image(image_block(
                &image_url.url,
                &format!("{path}.image_url.url"),
            )?))
        }
        part => Ok(ContentBlock::Text(text_part(part, &path)?)),
    }
}

/// `data:image/<png|jpeg|gif|webp>;base64,<data>` → an image block with the base64 bytes. Remote
/// URLs are untranslatable: Converse takes bytes or S3 locations, and fetching is not a
/// translation's job.
fn image_block(url: &str, path: &str) -> Result<br::ImageBlock> {
    let Some(rest) = url.strip_prefix("data:") else {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Err(Error::untranslatable(path));
        }
        return Err(Error::invalid(path, "neither a data: nor an http(s): URL"));
    };
    let (media_type, data) = rest
        .split_once(";base64,")
        .ok_or_else(|| Error::invalid(path, "data URL not base64"))?;
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return Err(Error::untranslatable(path)),
    };
    Ok(br::ImageBlock {
        format: format.to_owned(),
        source: br::ImageSource::Bytes(data.to_owned()),
    })
}

/// Tool-call arguments as the JSON object Converse wants. An empty string (some servers send it
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

fn openai_tool(tool: oa::Tool, j: usize) -> Result<br::Tool> {
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
    // `strict` asks OpenAI to enforce the schema exactly; Converse models follow the schema
    // without that switch, so it is ignored.
    Ok(br::Tool::ToolSpec(br::ToolSpec {
        name: f.name,
        description: f.description,
        input_schema: br::ToolInputSchema {
            json: f
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        },
    }))
}

// === Bedrock → OpenAI ===

/// Converse `stopReason` → OpenAI `finish_reason`.
///
/// Guardrails and content filters are `content_filter`; a full context window is `length`;
/// values this crate does not know (`malformed_model_output`, …) are `stop`.
pub fn bedrock_finish_reason(reason: &br::StopReason) -> oa::FinishReason {
    match reason {
        br::StopReason::EndTurn | br::StopReason::StopSequence => oa::FinishReason::Stop,
        br::StopReason::ToolUse => oa::FinishReason::ToolCalls,
        br::StopReason::MaxTokens | br::StopReason::ModelContextWindowExceeded => {
            oa::FinishReason::Length
        }
        br::StopReason::GuardrailIntervened | br::StopReason::ContentFiltered => {
            oa::FinishReason::ContentFilter
        }
        br::StopReason::Other(_) => oa::FinishReason::Stop,
    }
}

/// Normalized usage of a Converse `usage` object. `inputTokens` excludes cache reads and writes,
/// so [`Usage::input`] adds them back.
pub fn bedrock_usage(u: &br::TokenUsage) -> Usage {
    let cached_input = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_write_input_tokens.unwrap_or(0);
    Usage {
        input: u.input_tokens + cached_input + cache_write,
        output: u.output_tokens,
        cached_input,
        cache_write,
        reasoning: 0,
    }
}

/// Translates a Converse response into an OpenAI chat completion. Converse answers carry no id
/// and no model, so the caller passes them (the model the client asked for, and an id such as
/// `chatcmpl-` + the `x-amzn-RequestId` header), with `created`, the Unix time to stamp.
///
/// Text blocks are joined into `content`; `reasoningText` becomes `reasoning_content` (its
/// signature and redacted reasoning have no OpenAI field and are left out); `toolUse` blocks
/// become `tool_calls`; cache points are skipped. `metrics`, `trace` and
/// `additionalModelResponseFields` are response metadata with no OpenAI field and are left out.
/// Other blocks (images, documents, guard or citation content) are untranslatable.
pub fn bedrock_to_openai_response(
    resp: br::ConverseResponse,
    model: &str,
    id: String,
    created: u64,
) -> Result<oa::ChatCompletion> {
    let message = resp
        .output
        .message
        .ok_or_else(|| Error::invalid("output.message", "missing"))?;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for (j, block) in message.content.into_iter().enumerate() {
        match block {
            ContentBlock::Text(t) => text.get_or_insert_with(String::new).push_str(&t),
            ContentBlock::ToolUse(t) => calls.push(oa::ToolCall {
                id: t.tool_use_id,
                kind: "function".to_owned(),
                function: oa::FunctionCall {
                    name: t.name,
                    arguments: t.input.to_string(),
                },
            }),
            ContentBlock::ReasoningContent(br::ReasoningContentBlock::ReasoningText(r)) => {
                reasoning.get_or_insert_with(String::new).push_str(&r.text)
            }
            ContentBlock::ReasoningContent(_) | ContentBlock::CachePoint(_) => {}
            other => {
                return Err(Error::untranslatable(format!(
                    "output.message.content[{j}].{}",
                    other.type_name()
                )))
            }
        }
    }
    Ok(oa::ChatCompletion {
        id,
        object: "chat.completion".to_owned(),
        created,
        model: model.to_owned(),
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
            finish_reason: Some(bedrock_finish_reason(&resp.stop_reason)),
            logprobs: None,
            extra: oa::Extra::new(),
        }],
        usage: Some(bedrock_usage(&resp.usage).to_openai()),
        system_fingerprint: None,
        extra: oa::Extra::new(),
    })
}

// === impl BedrockToOpenAiStream ===

/// Turns a `ConverseStream` event sequence into OpenAI chunks: a first chunk with the role, one
/// chunk per text, reasoning (`reasoning_content`) or tool-input delta, a tool-call chunk with id
/// and name per `contentBlockStart`, a chunk with `finish_reason` at `messageStop`, and, when the
/// client asked `include_usage`, a last chunk with usage and no choices once `metadata` (which
/// follows `messageStop`) has arrived. The caller writes `data: [DONE]` after
/// [`finish`](Self::finish) ([`crate::sse::write_openai_done`]).
///
/// Exceptions inside the stream (`:message-type: exception`) are passed to [`push`](Self::push)
/// with their `:exception-type` as the event type, and become one OpenAI error item that ends
/// the stream.
#[derive(Debug)]
pub struct BedrockToOpenAiStream {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    started: bool,
    stopped: bool,
    usage_seen: bool,
    done: bool,
    usage: Usage,
    /// Converse block index → OpenAI tool-call index.
    tools: Vec<(u32, u32)>,
}

impl BedrockToOpenAiStream {
    /// A translator for one stream. Converse events carry no id and no model: `model` (the name
    /// the client asked for), `id` and `created` (Unix seconds) are stamped on every chunk.
    pub fn new(model: String, id: String, created: u64, include_usage: bool) -> Self {
        BedrockToOpenAiStream {
            model,
            id,
            created,
            include_usage,
            started: false,
            stopped: false,
            usage_seen: false,
            done: false,
            usage: Usage::default(),
            tools: Vec::new(),
        }
    }

    /// The usage seen so far (exact once `metadata` has arrived).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Translates one event-stream message: `event_type` is its `:event-type` header (or its
    /// `:exception-type` for an exception message) and `payload` its JSON payload. Unknown event
    /// types are skipped; a known event whose payload does not parse is an
    /// [`Error::Invalid`] naming the event type (the stream is then broken: the caller ends it).
    pub fn push(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<StreamItem>,
    ) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if event_type.ends_with("Exception") {
            out.push(StreamItem::Error(bedrock_error_to_openai(
                payload,
                Some(event_type),
                0,
            )));
            self.done = true;
            return Ok(());
        }
        match br::StreamEvent::parse(event_type, payload) {
            Ok(Some(event)) => {
                self.push_event(event, out);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(_) => Err(Error::invalid(event_type, "malformed event payload")),
        }
    }

    /// Translates one parsed event.
    pub fn push_event(&mut self, event: br::StreamEvent, out: &mut Vec<StreamItem>) {
        if self.done {
            return;
        }
        if !self.started {
            // `messageStart` comes first; should it be missing, the role chunk still leads.
            self.started = true;
            out.push(self.chunk(
                oa::Delta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            ));
        }
        match event {
            br::StreamEvent::MessageStart(_) | br::StreamEvent::ContentBlockStop(_) => {}
            br::StreamEvent::ContentBlockStart(e) => {
                if let br::ContentBlockStart::ToolUse(t) = e.start {
                    let oa_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                    self.tools.push((e.content_block_index, oa_index));
                    out.push(self.tool_chunk(oa::ToolCallDelta {
                        index: oa_index,
                        id: Some(t.tool_use_id),
                        kind: Some("function".to_owned()),
                        function: Some(oa::FunctionCallDelta {
                            name: Some(t.name),
                            arguments: Some(String::new()),
                        }),
                    }));
                }
            }
            br::StreamEvent::ContentBlockDelta(e) => match e.delta {
                // Empty pieces would be empty chunks.
                br::ContentBlockDelta::Text(t) if t.is_empty() => {}
                br::ContentBlockDelta::Text(t) => out.push(self.chunk(
                    oa::Delta {
                        content: Some(t),
                        ..Default::default()
                    },
                    None,
                )),
                br::ContentBlockDelta::ToolUse(t) if t.input.is_empty() => {}
                br::ContentBlockDelta::ToolUse(t) => {
                    let known = self
                        .tools
                        .iter()
                        .find(|(i, _)| *i == e.content_block_index)
                        .map(|&(_, oa_index)| oa_index);
                    if let Some(oa_index) = known {
                        out.push(self.tool_chunk(oa::ToolCallDelta {
                            index: oa_index,
                            function: Some(oa::FunctionCallDelta {
                                name: None,
                                arguments: Some(t.input),
                            }),
                            ..Default::default()
                        }));
                    }
                }
                br::ContentBlockDelta::ReasoningContent(br::ReasoningDelta::Text(t))
                    if !t.is_empty() =>
                {
                    out.push(self.chunk(
                        oa::Delta {
                            reasoning_content: Some(t),
                            ..Default::default()
                        },
                        None,
                    ))
                }
                // Signatures and redacted reasoning only matter for sending reasoning back;
                // citations have no OpenAI chunk field.
                br::ContentBlockDelta::ReasoningContent(_) | br::ContentBlockDelta::Other(_) => {}
            },
            br::StreamEvent::MessageStop(e) => {
                self.stopped = true;
                out.push(self.chunk(
                    oa::Delta::default(),
                    Some(bedrock_finish_reason(&e.stop_reason)),
                ));
                if self.usage_seen {
                    self.end(out);
                }
            }
            br::StreamEvent::Metadata(e) => {
                self.usage = bedrock_usage(&e.usage);
                self.usage_seen = true;
                if self.stopped {
                    self.end(out);
                }
            }
        }
    }

    /// Ends the stream (end of the upstream body). Returns whether the upstream had said how it
    /// ended: `messageStop` arrived, or an exception was passed on to the client. `false` means
    /// the answer was cut short; the usage chunk is still sent if asked, with what is known.
    pub fn finish(&mut self, out: &mut Vec<StreamItem>) -> bool {
        if self.done {
            return true;
        }
        if self.started {
            self.end(out);
        }
        self.stopped
    }

    fn end(&mut self, out: &mut Vec<StreamItem>) {
        if self.include_usage {
            let mut chunk = self.chunk_raw(Vec::new());
            chunk.usage = Some(self.usage.to_openai());
            out.push(StreamItem::Chunk(chunk));
        }
        self.done = true;
    }

    fn tool_chunk(&self, call: oa::ToolCallDelta) -> StreamItem {
        self.chunk(
            oa::Delta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: oa::Delta, finish_reason: Option<oa::FinishReason>) -> StreamItem {
        StreamItem::Chunk(self.chunk_raw(vec![oa::ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
            extra: oa::Extra::new(),
        }]))
    }

    fn chunk_raw(&self, choices: Vec<oa::ChunkChoice>) -> oa::ChatCompletionChunk {
        oa::ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: None,
            system_fingerprint: None,
            extra: oa::Extra::new(),
        }
    }
}

// === errors ===

/// HTTP status for a Bedrock exception type, as named by the `x-amzn-ErrorType` header
/// (`ValidationException`, possibly followed by `:` and a namespace URL) or a stream message's
/// `:exception-type` (`validationException`); case is not significant.
///
/// The statuses are AWS's, except that `modelStreamErrorException` and `modelErrorException`
/// (424 at AWS: the model failed) are 502, a status clients know to retry, and
/// `serviceQuotaExceededException` is 429, as OpenAI answers an exhausted quota. Unknown types
/// are 500.
pub fn bedrock_exception_status(exception_type: &str) -> u16 {
    let name = exception_type.split(':').next().unwrap_or_default().trim();
    const STATUSES: [(&str, u16); 14] = [
        ("validationException", 400),
        ("accessDeniedException", 403),
        ("unrecognizedClientException", 403),
        ("invalidSignatureException", 403),
        ("expiredTokenException", 403),
        ("resourceNotFoundException", 404),
        ("modelTimeoutException", 408),
        ("throttlingException", 429),
        ("modelNotReadyException", 429),
        ("serviceQuotaExceededException", 429),
        ("internalServerException", 500),
        ("modelStreamErrorException", 502),
        ("modelErrorException", 502),
        ("serviceUnavailableException", 503),
    ];
    STATUSES
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(name))
        .map_or(500, |&(_, status)| status)
}

/// A Bedrock error (a non-streaming error body with its `x-amzn-ErrorType` header, or a stream
/// exception's payload with its `:exception-type`) → the OpenAI body for the client.
///
/// `status` is the HTTP status of the provider's answer; 0 (or 200, for an exception inside a
/// stream) derives it from the type. The message is the body's `message` (or the body itself
/// when it is not JSON, as a load balancer's page would be); the Bedrock type, without its
/// namespace, is kept as `code` so nothing is lost.
pub fn bedrock_error_to_openai(
    body: &[u8],
    error_type: Option<&str>,
    status: u16,
) -> oa::ErrorBody {
    let parsed: Option<br::ErrorBody> = serde_json::from_slice(body).ok();
    // Some AWS JSON protocols name the type in the body as `namespace#Type`.
    let body_type = parsed
        .as_ref()
        .and_then(|b| b.extra.get("__type"))
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t));
    let kind: Option<String> = error_type
        .map(|t| t.split(':').next().unwrap_or(t).trim())
        .filter(|t| !t.is_empty())
        .or(body_type)
        .map(str::to_owned);
    let kind = kind.as_deref();
    let message = match parsed {
        Some(b) if !b.message.is_empty() => b.message,
        Some(_) => kind.unwrap_or("Bedrock error").to_owned(),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                kind.unwrap_or("Bedrock error").to_owned()
            } else {
                text.chars().take(1024).collect()
            }
        }
    };
    let status = match status {
        0 | 200 => kind.map_or(500, bedrock_exception_status),
        s => s,
    };
    let (oa_kind, code) = openai_error_type(status);
    oa::ErrorBody {
        error: oa::ErrorDetail {
            message,
            kind: oa_kind.to_owned(),
            param: None,
            code: kind
                .map(str::to_owned)
                .or(code.map(str::to_owned))
                .map(Value::String),
        },
    }
}

// === Titan text embeddings ===

/// The `InvokeModel` body for `amazon.titan-embed-text-v2:0` (or `-v1`, which takes no
/// `dimensions`), embedding one input: OpenAI's `/v1/embeddings` takes a list, Titan one text per
/// call, so the caller fans a list out.
pub fn titan_embeddings_request(input: &str, dimensions: Option<u32>) -> Value {
    match dimensions {
        Some(d) => json!({"inputText": input, "dimensions": d}),
        None => json!({"inputText": input}),
    }
}

/// The vector and `inputTextTokenCount` of a Titan text embeddings response.
pub fn titan_embeddings_response(body: &[u8]) -> Result<(Vec<f32>, u64)> {
    let resp: br::TitanEmbeddingsResponse = serde_json::from_slice(body)
        .map_err(|_| Error::invalid("embedding", "not a Titan embeddings response"))?;
    Ok((resp.embedding, resp.input_text_token_count))
}
