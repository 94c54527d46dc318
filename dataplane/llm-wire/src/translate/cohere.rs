//! OpenAI Chat Completions ⇄ Cohere v2 chat, plus embeddings and errors.
//!
//! - requests: [`openai_to_cohere_request`] (the model stays in the body);
//! - responses: [`cohere_to_openai_response`]; streams: [`CohereToOpenAiStream`], one
//!   [`co::StreamEvent`] at a time;
//! - errors: [`cohere_error_to_openai`]; usage: [`cohere_usage`];
//! - embeddings: [`cohere_embeddings_request`], [`cohere_embeddings_response`].
//!
//! A request field Cohere cannot express is an [`Error::Untranslatable`] naming it.

use serde_json::{json, Value};

use super::gemini::{
    assistant_texts, embedding_texts, refuse_extra, refuse_openai_extra, texts, ChunkWriter,
};
use super::openai_error_type;
use crate::cohere as co;
use crate::embeddings as em;
use crate::error::{Error, Result};
use crate::openai::{self as oa, ChatMessage, ContentPart, MessageContent, StreamItem};
use crate::Usage;

/// Thinking budgets for OpenAI `reasoning_effort` values (as for Anthropic); `none` and
/// `minimal` turn thinking off.
const EFFORT_BUDGETS: [(&str, u32); 3] = [("low", 2048), ("medium", 8192), ("high", 24576)];

/// Cohere's range of `p`.
const P_MIN: f64 = 0.01;
const P_MAX: f64 = 0.99;

/// Longest error text taken from a body that is not Cohere's JSON (an HTML error page, …).
const MAX_RAW_ERROR: usize = 512;

// === OpenAI → Cohere request ===

/// Translates an OpenAI chat completion request into a Cohere `/v2/chat` request. The model name
/// is kept.
///
/// Messages keep their order and roles (`developer` becomes `system`); images stay `image_url`
/// parts; assistant `tool_calls` and `tool` messages have the same shape in both APIs, and an
/// assistant's `reasoning_content` beside its tool calls goes back as Cohere's `tool_plan`
/// (which is where [`cohere_to_openai_response`] puts the plan). `tool_choice: required` /
/// `none` become `REQUIRED` / `NONE`; a named tool choice offers only that tool, with
/// `REQUIRED`. `json_object` / `json_schema` become `json_object` with the schema; all-`strict`
/// functions become `strict_tools`. `top_p` becomes `p`, clamped to Cohere's 0.01..=0.99
/// (Cohere's default is 0.75, so leaving `top_p: 1` out would narrow sampling). `user` and
/// message `name`s have no Cohere field and no effect on the answer, and are left out.
///
/// Refused as untranslatable: `n > 1`, `top_logprobs`, `logit_bias`, penalties outside 0..=1,
/// `parallel_tool_calls: false`, a mix of strict and non-strict functions, non-function tools,
/// content parts other than text (and images in user turns), and any unmodelled field.
pub fn openai_to_cohere_request(req: oa::ChatCompletionRequest) -> Result<co::ChatRequest> {
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
        user: _, // abuse-tracking hint; Cohere has no field for it
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
    // Cohere returns the chosen tokens' log probabilities only, no alternatives.
    if top_logprobs.is_some_and(|n| n > 0) {
        return Err(Error::untranslatable("top_logprobs"));
    }
    if logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(Error::untranslatable("logit_bias"));
    }
    let presence_penalty = penalty(presence_penalty, "presence_penalty")?;
    let frequency_penalty = penalty(frequency_penalty, "frequency_penalty")?;
    refuse_openai_extra(&extra)?;
    let has_tools = tools.as_ref().is_some_and(|t| !t.is_empty());
    if parallel_tool_calls == Some(false) && has_tools {
        return Err(Error::untranslatable("parallel_tool_calls"));
    }

    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let path = format!("messages[{i}]");
        match message {
            ChatMessage::System(m) | ChatMessage::Developer(m) => {
                refuse_extra(&m.extra, &path, &[])?;
                out.push(co::Message::System(co::SystemMessage {
                    content: text_content(texts(m.content, &path)?),
                    extra: co::Extra::new(),
                }));
            }
            ChatMessage::User(m) => {
                refuse_extra(&m.extra, &path, &[])?;
                let content = match m.content {
                    MessageContent::Text(t) => co::Content::Text(t),
                    MessageContent::Parts(parts) => {
                        let mut out = Vec::with_capacity(parts.len());
                        for (j, part) in parts.into_iter().enumerate() {
                            out.push(user_part(part, &format!("{path}.content[{j}]"))?);
                        }
                        co::Content::Parts(out)
                    }
                };
                out.push(co::Message::User(co::UserMessage {
                    content,
                    extra: co::Extra::new(),
                }));
            }
            ChatMessage::Assistant(m) => {
                refuse_extra(&m.extra, &path, &["reasoning_content"])?;
                let plan = m
                    .extra
                    .get("reasoning_content")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned);
                let texts = assistant_texts(m.content, m.refusal, &path)?;
                let calls: Vec<co::ToolCall> = m
                    .tool_calls
                    .into_iter()
                    .flatten()
                    .map(|c| co::ToolCall {
                        id: c.id,
                        kind: "function".to_owned(),
                        function: co::FunctionCall {
                            name: c.function.name,
                            arguments: c.function.arguments,
                        },
                    })
                    .collect();
                let message = if calls.is_empty() {
                    if texts.is_empty() {
                        continue;
                    }
                    // Earlier turns' thinking is not read back by Cohere.
                    co::AssistantMessage {
                        content: Some(text_content(texts)),
                        ..Default::default()
                    }
                } else {
                    // Cohere takes no content beside tool calls: what the model said before
                    // calling (its reasoning, and any text) is the call's plan.
                    let plan: Vec<String> = plan.into_iter().chain(texts).collect();
                    co::AssistantMessage {
                        tool_plan: (!plan.is_empty()).then(|| plan.join("\n\n")),
                        tool_calls: Some(calls),
                        ..Default::default()
                    }
                };
                out.push(co::Message::Assistant(message));
            }
            ChatMessage::Tool(m) => {
                refuse_extra(&m.extra, &path, &[])?;
                out.push(co::Message::Tool(co::ToolMessage {
                    tool_call_id: m.tool_call_id,
                    content: text_content(texts(m.content, &path)?),
                    extra: co::Extra::new(),
                }));
            }
        }
    }

    let (mut tools, strict_tools) = match tools {
        Some(tools) if !tools.is_empty() => {
            let (tools, strict) = cohere_tools(tools)?;
            (Some(tools), strict)
        }
        _ => (None, None),
    };
    let tool_choice = match tool_choice {
        None => None,
        Some(oa::ToolChoice::Mode(mode)) => match (mode.as_str(), has_tools) {
            // `auto` is Cohere's default; without tools, `none` is what happens anyway.
            ("auto", _) | ("none", false) => None,
            ("none", true) => Some(co::ToolChoice::None),
            ("required", true) => Some(co::ToolChoice::Required),
            ("required", false) => return Err(Error::invalid("tool_choice", "requires tools")),
            _ => return Err(Error::invalid("tool_choice", "unknown mode")),
        },
        Some(oa::ToolChoice::Named(named)) => {
            if named.kind != "function" {
                return Err(Error::untranslatable(format!(
                    "tool_choice.type={}",
                    named.kind
                )));
            }
            // Cohere cannot name the tool to call; offering only that one and requiring a call
            // asks for the same thing.
            let offered = tools.as_mut().map_or(0, |tools| {
                tools.retain(|t| t.function.name == named.function.name);
                tools.len()
            });
            if offered == 0 {
                return Err(Error::invalid(
                    "tool_choice.function.name",
                    "names no offered tool",
                ));
            }
            Some(co::ToolChoice::Required)
        }
    };

    let response_format = match response_format {
        None => None,
        Some(rf) => {
            if !matches!(rf.kind.as_str(), "text" | "json_object" | "json_schema") {
                return Err(Error::untranslatable(format!(
                    "response_format.type={}",
                    rf.kind
                )));
            }
            refuse_extra(&rf.extra, "response_format", &[])?;
            match rf.kind.as_str() {
                "json_object" => Some(json_object(None)),
                // `name`, `description` and `strict` have no field: Cohere always constrains
                // output to the schema.
                "json_schema" => Some(json_object(match rf.json_schema {
                    Some(Value::Object(mut m)) => m.remove("schema"),
                    _ => None,
                })),
                _ => None, // `text`
            }
        }
    };

    let thinking = match reasoning_effort.as_deref() {
        None => None,
        Some("none" | "minimal") => Some(thinking("disabled", None)),
        Some(effort) => {
            let budget = EFFORT_BUDGETS
                .iter()
                .find(|(name, _)| *name == effort)
                .map(|&(_, b)| b)
                .ok_or_else(|| Error::invalid("reasoning_effort", "unknown effort"))?;
            Some(thinking("enabled", Some(budget)))
        }
    };

    Ok(co::ChatRequest {
        model,
        messages: out,
        stream,
        tools,
        strict_tools,
        response_format,
        max_tokens: max_completion_tokens.or(max_tokens),
        stop_sequences: stop.map(oa::Stop::into_vec),
        temperature,
        seed,
        frequency_penalty,
        presence_penalty,
        k: None,
        p: top_p.map(|p| p.clamp(P_MIN, P_MAX)),
        logprobs: logprobs.filter(|&l| l),
        tool_choice,
        thinking,
        extra: co::Extra::new(),
    })
}

/// OpenAI penalties span -2..=2, Cohere's 0..=1: values outside cannot be expressed.
fn penalty(value: Option<f64>, field: &str) -> Result<Option<f64>> {
    match value {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(Error::untranslatable(field)),
        other => Ok(other),
    }
}

/// One text as a string, several as text parts.
fn text_content(mut texts: Vec<String>) -> co::Content {
    if texts.len() == 1 {
        return co::Content::Text(texts.swap_remove(0));
    }
    co::Content::Parts(
        texts
            .into_iter()
            .map(|text| co::ContentPart::Text {
                text,
                extra: co::Extra::new(),
            })
            .collect(),
    )
}

fn user_part(part: ContentPart, path: &str) -> Result<co::ContentPart> {
    match part {
        ContentPart::Text { text, extra } => {
            refuse_extra(&extra, path, &[])?;
            Ok(co::ContentPart::Text {
                text,
                extra: co::Extra::new(),
            })
        }
        ContentPart::ImageUrl { image_url, extra } => {
            refuse_extra(&extra, path, &[])?;
            Ok(co::ContentPart::ImageUrl {
                image_url: co::ImageUrl {
                    url: image_url.url,
                    detail: image_url.detail,
                },
                extra: co::Extra::new(),
            })
        }
        other => Err(Error::untranslatable(format!(
            "{path}.type={}",
            super::gemini::part_type(&other)
        ))),
    }
}

/// Function tools, and `strict_tools` when every function is strict (Cohere's switch is global).
fn cohere_tools(tools: Vec<oa::Tool>) -> Result<(Vec<co::Tool>, Option<bool>)> {
    let mut out = Vec::with_capacity(tools.len());
    let mut strict = Vec::with_capacity(tools.len());
    for (j, tool) in tools.into_iter().enumerate() {
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
        strict.push(f.strict == Some(true));
        out.push(co::Tool {
            kind: "function".to_owned(),
            function: co::FunctionDef {
                name: f.name,
                description: f.description,
                parameters: f.parameters,
            },
            extra: co::Extra::new(),
        });
    }
    let strict_tools = match strict.iter().position(|&s| s) {
        None => None,
        Some(_) if strict.iter().all(|&s| s) => Some(true),
        Some(j) => {
            return Err(Error::untranslatable(format!("tools[{j}].function.strict")));
        }
    };
    Ok((out, strict_tools))
}

fn json_object(schema: Option<Value>) -> co::ResponseFormat {
    co::ResponseFormat {
        kind: "json_object".to_owned(),
        json_schema: schema,
        extra: co::Extra::new(),
    }
}

fn thinking(kind: &str, token_budget: Option<u32>) -> co::Thinking {
    co::Thinking {
        kind: kind.to_owned(),
        token_budget,
        extra: co::Extra::new(),
    }
}

// === Cohere → OpenAI response ===

/// Cohere `finish_reason` → OpenAI `finish_reason`. A failed or timed-out generation has no
/// OpenAI value; it is passed on as `error` / `timeout` rather than pretending it ended well.
pub fn cohere_finish_reason(reason: &co::FinishReason) -> oa::FinishReason {
    use co::FinishReason as F;
    match reason {
        F::Complete | F::StopSequence => oa::FinishReason::Stop,
        F::MaxTokens => oa::FinishReason::Length,
        F::ToolCall => oa::FinishReason::ToolCalls,
        F::ContentBlocked => oa::FinishReason::ContentFilter,
        F::Error => oa::FinishReason::Other("error".to_owned()),
        F::Timeout => oa::FinishReason::Other("timeout".to_owned()),
        F::Other(s) => oa::FinishReason::Other(s.to_ascii_lowercase()),
    }
}

/// Normalized usage of a Cohere `usage`: actual `tokens` when reported, `billed_units`
/// otherwise (billing leaves out the prompt template and tool prompts).
pub fn cohere_usage(u: &co::Usage) -> Usage {
    let tokens = u.tokens.as_ref();
    let billed = u.billed_units.as_ref();
    let pick = |t: Option<u64>, b: Option<u64>| t.or(b).unwrap_or(0);
    Usage {
        input: pick(
            tokens.and_then(|t| t.input_tokens),
            billed.and_then(|b| b.input_tokens),
        ),
        output: pick(
            tokens.and_then(|t| t.output_tokens),
            billed.and_then(|b| b.output_tokens),
        ),
        cached_input: u.cached_tokens.unwrap_or(0),
        cache_write: 0,
        reasoning: 0,
    }
}

/// Cohere log probabilities → OpenAI `logprobs`. A Cohere item may span several tokens; it
/// becomes one OpenAI entry with its text and the sum of its log probabilities (the log
/// probability of the whole stretch). Cohere gives no alternatives.
fn logprobs_json(items: &[co::LogprobItem]) -> Value {
    let content: Vec<Value> = items
        .iter()
        .map(|item| {
            let token = item.text.as_deref().unwrap_or_default();
            json!({
                "token": token,
                "logprob": item.logprobs.iter().sum::<f64>(),
                "bytes": token.as_bytes(),
                "top_logprobs": [],
            })
        })
        .collect();
    json!({ "content": content })
}

/// Translates a Cohere `/v2/chat` response into an OpenAI chat completion (`model` and `created`
/// are stamped on it; the id is Cohere's).
///
/// Text parts are joined into `content`; thinking parts and the tool plan go into
/// `reasoning_content`; tool calls keep their ids. Citations (only produced for documents, which
/// translated requests never send) are left out; other content parts are untranslatable.
pub fn cohere_to_openai_response(
    resp: co::ChatResponse,
    model: &str,
    created: u64,
) -> Result<oa::ChatCompletion> {
    let m = resp.message;
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    for (j, part) in m.content.into_iter().flatten().enumerate() {
        match part {
            co::ContentPart::Text { text: t, .. } => {
                text.get_or_insert_with(String::new).push_str(&t)
            }
            co::ContentPart::Thinking { thinking, .. } => reasoning
                .get_or_insert_with(String::new)
                .push_str(&thinking),
            co::ContentPart::ImageUrl { .. } => {
                return Err(Error::untranslatable(format!(
                    "message.content[{j}].type=image_url"
                )))
            }
            co::ContentPart::Other(v) => {
                return Err(Error::untranslatable(format!(
                    "message.content[{j}].type={}",
                    v.get("type").and_then(Value::as_str).unwrap_or("unknown")
                )))
            }
        }
    }
    if let Some(plan) = m.tool_plan.filter(|p| !p.is_empty()) {
        reasoning.get_or_insert_with(String::new).push_str(&plan);
    }
    let calls: Vec<oa::ToolCall> = m
        .tool_calls
        .into_iter()
        .flatten()
        .map(|c| oa::ToolCall {
            id: c.id,
            kind: "function".to_owned(),
            function: oa::FunctionCall {
                name: c.function.name,
                arguments: c.function.arguments,
            },
        })
        .collect();
    Ok(oa::ChatCompletion {
        id: resp.id,
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
            finish_reason: resp.finish_reason.as_ref().map(cohere_finish_reason),
            logprobs: resp.logprobs.as_deref().map(logprobs_json),
            extra: oa::Extra::new(),
        }],
        usage: resp.usage.as_ref().map(|u| cohere_usage(u).to_openai()),
        system_fingerprint: None,
        extra: oa::Extra::new(),
    })
}

// === impl CohereToOpenAiStream ===

/// Turns a Cohere v2 chat event stream into OpenAI chunks: a first chunk with the role (at
/// `message-start`, whose id becomes the chunks' id), one chunk per text delta (`content`),
/// thinking or tool-plan delta (`reasoning_content`), a tool-call delta per `tool-call-start`
/// (index, id, name) and per `tool-call-delta` (argument text), then at `message-end` a chunk
/// with `finish_reason` and, when the client asked `include_usage`, a last chunk with usage and
/// no choices. An `error` in `message-end` becomes an OpenAI error item. The caller writes
/// `data: [DONE]` after [`finish`](Self::finish).
#[derive(Debug)]
pub struct CohereToOpenAiStream {
    writer: ChunkWriter,
    include_usage: bool,
    started: bool,
    ended: bool,
    complete: bool,
    usage: Usage,
    /// Cohere tool-call index → OpenAI tool-call index.
    tools: Vec<(u32, u32)>,
}

impl CohereToOpenAiStream {
    /// A translator for one stream; `created` (Unix seconds) is stamped on every chunk.
    pub fn new(model: String, created: u64, include_usage: bool) -> Self {
        CohereToOpenAiStream {
            writer: ChunkWriter {
                id: String::new(),
                model,
                created,
            },
            include_usage,
            started: false,
            ended: false,
            complete: false,
            usage: Usage::default(),
            tools: Vec::new(),
        }
    }

    /// The usage seen so far (known once `message-end` has arrived).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Translates one upstream event.
    pub fn push(&mut self, event: co::StreamEvent, out: &mut Vec<StreamItem>) {
        if self.ended {
            return;
        }
        match event {
            co::StreamEvent::MessageStart { id, .. } => {
                if let Some(id) = id {
                    self.writer.id = id;
                }
                self.start(out);
            }
            co::StreamEvent::ContentStart { delta, .. } => {
                self.content(delta, None, out);
            }
            co::StreamEvent::ContentDelta {
                delta, logprobs, ..
            } => {
                // Best effort: log probabilities of an unexpected shape are left out rather
                // than failing the stream.
                let logprobs = logprobs
                    .and_then(|v| serde_json::from_value::<co::LogprobItem>(v).ok())
                    .map(|item| logprobs_json(std::slice::from_ref(&item)));
                self.content(delta, logprobs, out);
            }
            co::StreamEvent::ToolPlanDelta { delta } => {
                if let Some(plan) = delta
                    .and_then(|d| d.message)
                    .and_then(|m| m.tool_plan)
                    .filter(|p| !p.is_empty())
                {
                    self.start(out);
                    let delta = oa::Delta {
                        reasoning_content: Some(plan),
                        ..Default::default()
                    };
                    out.push(self.writer.chunk(0, delta, None, None));
                }
            }
            co::StreamEvent::ToolCallStart { index, delta } => {
                self.start(out);
                let piece = delta
                    .and_then(|d| d.message)
                    .and_then(|m| m.tool_calls)
                    .unwrap_or_default();
                let function = piece.function.unwrap_or_default();
                let oa_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.push((index, oa_index));
                let call = oa::ToolCallDelta {
                    index: oa_index,
                    id: Some(piece.id.unwrap_or_else(|| format!("call_{oa_index}"))),
                    kind: Some("function".to_owned()),
                    function: Some(oa::FunctionCallDelta {
                        name: Some(function.name.unwrap_or_default()),
                        arguments: Some(function.arguments.unwrap_or_default()),
                    }),
                };
                out.push(self.writer.tool_call(0, call));
            }
            co::StreamEvent::ToolCallDelta { index, delta } => {
                let arguments = delta
                    .and_then(|d| d.message)
                    .and_then(|m| m.tool_calls)
                    .and_then(|c| c.function)
                    .and_then(|f| f.arguments)
                    .filter(|a| !a.is_empty());
                let known = self.tools.iter().find(|(i, _)| *i == index);
                if let (Some(arguments), Some(&(_, oa_index))) = (arguments, known) {
                    let call = oa::ToolCallDelta {
                        index: oa_index,
                        function: Some(oa::FunctionCallDelta {
                            name: None,
                            arguments: Some(arguments),
                        }),
                        ..Default::default()
                    };
                    out.push(self.writer.tool_call(0, call));
                }
            }
            co::StreamEvent::MessageEnd { delta, .. } => {
                let delta = delta.unwrap_or_default();
                if let Some(u) = &delta.usage {
                    self.usage = cohere_usage(u);
                }
                if let Some(message) = delta.error {
                    let (kind, _) = openai_error_type(500);
                    out.push(StreamItem::Error(oa::ErrorBody::new(kind, message)));
                    self.ended = true;
                    self.complete = true;
                    return;
                }
                self.start(out);
                let reason = match &delta.finish_reason {
                    Some(r) => cohere_finish_reason(r),
                    None if !self.tools.is_empty() => oa::FinishReason::ToolCalls,
                    None => oa::FinishReason::Stop,
                };
                out.push(
                    self.writer
                        .chunk(0, oa::Delta::default(), Some(reason), None),
                );
                self.complete = true;
                self.end(out);
            }
            co::StreamEvent::ContentEnd { .. }
            | co::StreamEvent::ToolCallEnd { .. }
            | co::StreamEvent::CitationStart { .. }
            | co::StreamEvent::CitationEnd { .. }
            | co::StreamEvent::Other(_) => {}
        }
    }

    /// Ends the stream (end of the upstream body). Returns whether `message-end` (or an error)
    /// had arrived; `false` means the answer was cut short (the usage chunk is still sent if
    /// asked, with what is known).
    pub fn finish(&mut self, out: &mut Vec<StreamItem>) -> bool {
        if self.ended {
            return self.complete;
        }
        if self.started {
            self.end(out);
        }
        self.ended = true;
        false
    }

    fn start(&mut self, out: &mut Vec<StreamItem>) {
        if !self.started {
            self.started = true;
            out.push(self.writer.role(0));
        }
    }

    fn content(
        &mut self,
        delta: Option<co::EventDelta<co::ContentMessage>>,
        logprobs: Option<Value>,
        out: &mut Vec<StreamItem>,
    ) {
        let Some(content) = delta.and_then(|d| d.message).and_then(|m| m.content) else {
            return;
        };
        if let Some(text) = content.text.filter(|t| !t.is_empty()) {
            self.start(out);
            let delta = oa::Delta {
                content: Some(text),
                ..Default::default()
            };
            out.push(self.writer.chunk(0, delta, None, logprobs));
        }
        if let Some(thinking) = content.thinking.filter(|t| !t.is_empty()) {
            self.start(out);
            let delta = oa::Delta {
                reasoning_content: Some(thinking),
                ..Default::default()
            };
            out.push(self.writer.chunk(0, delta, None, None));
        }
    }

    fn end(&mut self, out: &mut Vec<StreamItem>) {
        if self.include_usage {
            out.push(self.writer.usage(&self.usage));
        }
        self.ended = true;
    }
}

// === errors ===

/// A Cohere error body (`{"message": …}`, or anything else a proxy in front of Cohere answered)
/// → the OpenAI body for the client. The type follows the HTTP status (0 or 200 for an error
/// inside a stream: a server error).
pub fn cohere_error_to_openai(body: &[u8], status: u16) -> oa::ErrorBody {
    let message = match serde_json::from_slice::<co::ErrorBody>(body) {
        Ok(co::ErrorBody {
            message: Some(m), ..
        }) => m,
        _ => {
            let raw = String::from_utf8_lossy(body);
            let raw = raw.trim();
            match raw.char_indices().nth(MAX_RAW_ERROR) {
                _ if raw.is_empty() => format!("upstream error (HTTP {status})"),
                Some((cut, _)) => format!("{}…", &raw[..cut]),
                None => raw.to_owned(),
            }
        }
    };
    let status = match status {
        0 | 200 => 500,
        s => s,
    };
    let (kind, code) = openai_error_type(status);
    oa::ErrorBody {
        error: oa::ErrorDetail {
            message,
            kind: kind.to_owned(),
            param: None,
            code: code.map(|c| Value::String(c.to_owned())),
        },
    }
}

// === embeddings ===

/// Translates an OpenAI embeddings request into a Cohere `/v2/embed` request for `model`: texts
/// as `search_document` inputs, float embeddings, `dimensions` as `output_dimension`, and
/// `truncate: NONE`, so an input too long is an error as with OpenAI rather than silently cut.
/// Token-id input is untranslatable; `user` has no Cohere field and is left out.
pub fn cohere_embeddings_request(
    req: em::EmbeddingsRequest,
    model: &str,
) -> Result<co::EmbedRequest> {
    let dimensions = req.dimensions;
    let texts = embedding_texts(req)?;
    Ok(co::EmbedRequest {
        model: model.to_owned(),
        texts: Some(texts),
        input_type: Some("search_document".to_owned()),
        embedding_types: Some(vec!["float".to_owned()]),
        output_dimension: dimensions,
        truncate: Some("NONE".to_owned()),
        extra: co::Extra::new(),
    })
}

/// Translates a Cohere `/v2/embed` response into an OpenAI embeddings response; prompt tokens
/// are the actual tokens when reported, the billed input tokens otherwise.
pub fn cohere_embeddings_response(resp: co::EmbedResponse, model: &str) -> em::EmbeddingsResponse {
    let prompt_tokens = resp.meta.as_ref().map_or(0, |m| {
        m.tokens
            .as_ref()
            .and_then(|t| t.input_tokens)
            .or_else(|| m.billed_units.as_ref().and_then(|b| b.input_tokens))
            .unwrap_or(0)
    });
    let vectors = match resp.embeddings {
        co::Embeddings::ByType(by_type) => by_type.float.unwrap_or_default(),
        co::Embeddings::Floats(v) => v,
    };
    em::EmbeddingsResponse::new(model, vectors, prompt_tokens)
}
