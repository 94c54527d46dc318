//! Cohere API v2 wire format: chat and embed.
//!
//! Reference: <https://docs.cohere.com/reference/chat> (`POST /v2/chat`, with `stream: true`
//! server-sent events whose `data:` is a JSON event tagged by `type`: `message-start`,
//! `content-start`, `content-delta`, `content-end`, `tool-plan-delta`, `tool-call-start`,
//! `tool-call-delta`, `tool-call-end`, `citation-start`, `citation-end`, `message-end`),
//! <https://docs.cohere.com/reference/embed> (`POST /v2/embed`) and
//! <https://docs.cohere.com/reference/errors> (error body `{"message": …}`). Open-ended objects
//! keep the fields this crate does not model in `extra`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields this crate does not model, kept so that pass-through never drops data.
pub type Extra = Map<String, Value>;

// === request ===

/// `POST /v2/chat` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Force tool calls to follow the tool definitions exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_tools: Option<bool>,
    /// Text or JSON output, with an optional schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Upper bound of generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Up to five stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature (non-negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Frequency penalty, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Top-k sampling (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Nucleus sampling, 0.01 to 0.99 (default 0.75).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    /// Return the log probability of each generated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Force or forbid tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Reasoning models: thinking on or off, and its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Everything else (`documents`, `citation_options`, `safety_mode`, `priority`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions.
    System(SystemMessage),
    /// The end user.
    User(UserMessage),
    /// The model (earlier turns).
    Assistant(AssistantMessage),
    /// A tool's result.
    Tool(ToolMessage),
}

/// A `system` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemMessage {
    /// Text or text parts.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `user` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    /// Text, or text and image parts.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An `assistant` message sent back as history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Text or parts; absent when the turn only called tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The plan the model wrote before its tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_plan: Option<String>,
    /// Everything else (`citations`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `tool` message: the result of one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolMessage {
    /// The call it answers.
    pub tool_call_id: String,
    /// The result: text, or text and document parts.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts.
    Parts(Vec<ContentPart>),
}

/// One content part, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// An image by URL (`https:` or `data:`), in user turns.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Reasoning text, in answers of reasoning models.
    Thinking {
        /// The reasoning.
        thinking: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Any other part (`document`, …), kept as it came.
    #[serde(untagged)]
    Other(Value),
}

/// `image_url` of an image part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://…` or `data:<media type>;base64,<data>`.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, echoed by the `tool` message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Function name and JSON arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

/// Function name and arguments of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ToolChoice {
    /// The model must call at least one tool.
    Required,
    /// The model must not call tools.
    None,
    /// A value this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// `response_format`: `{"type":"text"}` or `{"type":"json_object","json_schema":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    /// `text` or `json_object`.
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON Schema the output must follow (with `json_object`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking`: `{"type":"enabled","token_budget":N}` or `{"type":"disabled"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thinking {
    /// `enabled` or `disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tokens the model may spend thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u32>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

// === response ===

/// Non-streaming `/v2/chat` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Response id.
    pub id: String,
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// The answer.
    pub message: ResponseMessage,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Log probabilities, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<LogprobItem>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The assistant message of a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text and thinking parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentPart>>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The plan the model wrote before its tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_plan: Option<String>,
    /// Everything else (`citations`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `finish_reason`. Cohere writes it in capitals; older API versions wrote it in lower case,
/// which is read too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinishReason {
    /// Natural end.
    #[serde(alias = "complete")]
    Complete,
    /// A stop sequence matched.
    #[serde(alias = "stop_sequence")]
    StopSequence,
    /// `max_tokens` reached.
    #[serde(alias = "max_tokens")]
    MaxTokens,
    /// The model called tools.
    #[serde(alias = "tool_call")]
    ToolCall,
    /// Generation failed.
    #[serde(alias = "error")]
    Error,
    /// Generation timed out.
    #[serde(alias = "timeout")]
    Timeout,
    /// Blocked by the safety system.
    #[serde(alias = "content_blocked")]
    ContentBlocked,
    /// A value this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// `usage`: billed units and actual tokens. Cohere has sent counts as floats (`37.0`); both
/// forms are read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// What is billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<BilledUnits>,
    /// What the model saw and wrote (templates and tool prompts included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Input tokens read from the prompt cache.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.billed_units` (also `meta.billed_units` of embed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BilledUnits {
    /// Billed input tokens.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_tokens: Option<u64>,
    /// Billed output tokens.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens: Option<u64>,
    /// Everything else (`search_units`, `classifications`, `images`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input tokens the model saw.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_tokens: Option<u64>,
    /// Output tokens the model wrote.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A token count written as an integer or a float.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(n.and_then(|n| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                // Saturating: a count beyond u64 is not a count.
                .map(|f| f.round() as u64)
        })
    }))
}

/// Log probabilities of a stretch of output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogprobItem {
    /// The text of the tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Token ids.
    #[serde(default)]
    pub token_ids: Vec<u64>,
    /// One log probability per token.
    #[serde(default)]
    pub logprobs: Vec<f64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

// === streaming ===

/// One streamed event, the JSON of one `data:` line, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StreamEvent {
    /// First event: the response id.
    MessageStart {
        /// Response id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// `{"message":{"role":"assistant",…}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<Value>,
    },
    /// A content block (text or thinking) begins.
    ContentStart {
        /// Block position.
        #[serde(default)]
        index: u32,
        /// `{"message":{"content":{"type":"text","text":""}}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<EventDelta<ContentMessage>>,
    },
    /// More text or thinking.
    ContentDelta {
        /// Block position.
        #[serde(default)]
        index: u32,
        /// `{"message":{"content":{"text":…}}}` or `{…{"thinking":…}}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<EventDelta<ContentMessage>>,
        /// Log probabilities of this piece, when asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Value>,
    },
    /// A content block ends.
    ContentEnd {
        /// Block position.
        #[serde(default)]
        index: u32,
    },
    /// More of the plan the model writes before tool calls.
    ToolPlanDelta {
        /// `{"message":{"tool_plan":…}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<EventDelta<ToolPlanMessage>>,
    },
    /// A tool call begins: id and name (arguments follow).
    ToolCallStart {
        /// Tool-call position.
        #[serde(default)]
        index: u32,
        /// `{"message":{"tool_calls":{"id","type","function":{"name","arguments"}}}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<EventDelta<ToolCallMessage>>,
    },
    /// More tool-call arguments.
    ToolCallDelta {
        /// Tool-call position.
        #[serde(default)]
        index: u32,
        /// `{"message":{"tool_calls":{"function":{"arguments":…}}}}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<EventDelta<ToolCallMessage>>,
    },
    /// A tool call ends.
    ToolCallEnd {
        /// Tool-call position.
        #[serde(default)]
        index: u32,
    },
    /// A citation (only with documents, which translated requests never send).
    CitationStart {
        /// Citation position.
        #[serde(default)]
        index: u32,
        /// The citation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<Value>,
    },
    /// A citation ends.
    CitationEnd {
        /// Citation position.
        #[serde(default)]
        index: u32,
    },
    /// Last event: finish reason and usage (or an error).
    MessageEnd {
        /// Response id (usually absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Finish reason, usage, error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<MessageEndDelta>,
    },
    /// Any other event (`debug`, …), kept as it came.
    #[serde(untagged)]
    Other(Value),
}

impl StreamEvent {
    /// The `type` of the event.
    pub fn event_type(&self) -> &str {
        match self {
            StreamEvent::MessageStart { .. } => "message-start",
            StreamEvent::ContentStart { .. } => "content-start",
            StreamEvent::ContentDelta { .. } => "content-delta",
            StreamEvent::ContentEnd { .. } => "content-end",
            StreamEvent::ToolPlanDelta { .. } => "tool-plan-delta",
            StreamEvent::ToolCallStart { .. } => "tool-call-start",
            StreamEvent::ToolCallDelta { .. } => "tool-call-delta",
            StreamEvent::ToolCallEnd { .. } => "tool-call-end",
            StreamEvent::CitationStart { .. } => "citation-start",
            StreamEvent::CitationEnd { .. } => "citation-end",
            StreamEvent::MessageEnd { .. } => "message-end",
            StreamEvent::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }
}

/// The `delta` of an event: `{"message": M}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventDelta<M> {
    /// The piece of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<M>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `delta.message` of content events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentMessage {
    /// The piece of content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<StreamContent>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A piece of content: text or thinking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamContent {
    /// `text` or `thinking` (in `content-start`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// More thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `delta.message` of `tool-plan-delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolPlanMessage {
    /// More plan text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_plan: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `delta.message` of tool-call events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallMessage {
    /// The piece of the call (one object, not a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<ToolCallPiece>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A piece of a streamed tool call: id and name in `tool-call-start`, argument text after.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallPiece {
    /// Call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and/or argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionPiece>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Function part of a tool-call piece.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionPiece {
    /// Function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `delta` of `message-end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageEndDelta {
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What went wrong, when generation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

// === embed ===

/// `POST /v2/embed` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// Model name.
    pub model: String,
    /// Texts to embed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<Vec<String>>,
    /// `search_document`, `search_query`, `classification`, `clustering` or `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    /// `float`, `int8`, `uint8`, `binary`, `ubinary`, `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_types: Option<Vec<String>>,
    /// Embedding size (newer models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u32>,
    /// `NONE` (error on too long input), `START` or `END` (cut it; the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<String>,
    /// Everything else (`images`, `inputs`, `max_tokens`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `/v2/embed` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// Response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The embeddings.
    pub embeddings: Embeddings,
    /// The texts, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<Vec<String>>,
    /// Billing and warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// Everything else (`response_type`, `images`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `embeddings`: by type (`embedding_types` given, as v2 requires), or a bare list of floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Embeddings {
    /// `{"float":[[…]], "int8":…}`.
    ByType(EmbeddingsByType),
    /// `[[…]]`.
    Floats(Vec<Vec<f32>>),
}

/// `embeddings` by type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsByType {
    /// Float vectors, one per input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<Vec<Vec<f32>>>,
    /// Everything else (`int8`, `binary`, `base64`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `meta` of an embed response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// What is billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<BilledUnits>,
    /// Actual tokens, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Everything else (`api_version`, `warnings`).
    #[serde(flatten)]
    pub extra: Extra,
}

// === errors ===

/// Error response body: `{"message": …}` (some gateways add an `id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}
