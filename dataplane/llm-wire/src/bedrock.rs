//! AWS Bedrock Converse wire format (`bedrock-runtime`, API version 2023-09-30).
//!
//! Reference: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! and `API_runtime_ConverseStream.html`. The model is not in the body: it is the `{modelId}` of
//! the path (`POST /model/{modelId}/converse` or `/converse-stream`).
//!
//! Converse unions (`ContentBlock`, `ToolResultContentBlock`, the stream deltas, …) are JSON
//! objects with exactly one member naming the variant (`{"text": "…"}`, `{"toolUse": {…}}`), which
//! is serde's externally tagged enum; a member this crate does not know is kept whole in an
//! `Other` variant. Open-ended objects keep unknown fields in `extra`, as in [`crate::openai`].
//!
//! `ConverseStream` answers `application/vnd.amazon.eventstream` (decoded by `weir-sse`'s
//! `eventstream` module); each event message carries its kind in the `:event-type` header and one
//! of the `*Event` objects below as its JSON payload. Bedrock pads every payload with a random `p`
//! member (so that lengths do not reveal content), which lands in `extra` and is ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields this crate does not model, kept so that pass-through never drops data.
pub type Extra = Map<String, Value>;

// === request ===

/// `POST /model/{modelId}/converse` (and `/converse-stream`) request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation; roles must alternate, starting with `user`.
    pub messages: Vec<Message>,
    /// System prompt blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock>,
    /// Sampling parameters common to all models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Model-specific parameters, passed to the model as they are (`top_k`, `thinking`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    /// Everything else (`guardrailConfig`, `performanceConfig`, `requestMetadata`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `inferenceConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    /// Upper bound of generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Up to four stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: Vec<ContentBlock>,
}

/// `role` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One block of message content: an object with exactly one member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    /// Text.
    Text(String),
    /// An image.
    Image(ImageBlock),
    /// A tool call the model made.
    ToolUse(ToolUseBlock),
    /// The result of a tool call.
    ToolResult(ToolResultBlock),
    /// The model's reasoning (responses and assistant history).
    ReasoningContent(ReasoningContentBlock),
    /// A prompt-cache checkpoint (`{"type": "default"}`).
    CachePoint(Value),
    /// Any other block (`document`, `video`, `guardContent`, `citationsContent`, …), kept whole.
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// The member name of the block, for error paths.
    pub fn type_name(&self) -> &str {
        match self {
            ContentBlock::Text(_) => "text",
            ContentBlock::Image(_) => "image",
            ContentBlock::ToolUse(_) => "toolUse",
            ContentBlock::ToolResult(_) => "toolResult",
            ContentBlock::ReasoningContent(_) => "reasoningContent",
            ContentBlock::CachePoint(_) => "cachePoint",
            ContentBlock::Other(v) => member_name(v),
        }
    }
}

/// The name of the single member of a union object, or `unknown`.
fn member_name(v: &Value) -> &str {
    match v {
        Value::Object(m) => m.keys().next().map_or("unknown", String::as_str),
        _ => "unknown",
    }
}

/// `image` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: String,
    /// Where the bytes are.
    pub source: ImageSource,
}

/// `image.source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    /// The image bytes, base64-encoded (how the REST API carries a blob).
    Bytes(String),
    /// Any other source (`s3Location`), kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `toolUse` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    /// Call id, echoed by the `toolResult` that answers it.
    pub tool_use_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments, a JSON document.
    pub input: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `toolResult` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    /// The call it answers.
    pub tool_use_id: String,
    /// The result.
    pub content: Vec<ToolResultContentBlock>,
    /// `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One block of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContentBlock {
    /// Text.
    Text(String),
    /// A JSON document.
    Json(Value),
    /// An image.
    Image(ImageBlock),
    /// Any other block (`document`, `video`), kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `reasoningContent` block of a response (or of assistant history sent back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContentBlock {
    /// Readable reasoning.
    ReasoningText(ReasoningText),
    /// Reasoning the provider encrypted, base64.
    RedactedContent(String),
    /// Anything else, kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `reasoningContent.reasoningText`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningText {
    /// The reasoning.
    pub text: String,
    /// Signature to send it back with (Anthropic models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// One block of the system prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock {
    /// Text.
    Text(String),
    /// A prompt-cache checkpoint.
    CachePoint(Value),
    /// Any other block (`guardContent`), kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `toolConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The tools.
    pub tools: Vec<Tool>,
    /// Which tool the model must call; absent is `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// One entry of `toolConfig.tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    /// A tool definition.
    ToolSpec(ToolSpec),
    /// A prompt-cache checkpoint after the tools.
    CachePoint(Value),
    /// Anything else, kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `toolSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    pub input_schema: ToolInputSchema,
}

/// `toolSpec.inputSchema`: a union whose one member is `json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInputSchema {
    /// The JSON Schema.
    pub json: Value,
}

/// `toolConfig.toolChoice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    /// The model decides (`{"auto": {}}`).
    Auto(Empty),
    /// The model must call some tool (`{"any": {}}`).
    Any(Empty),
    /// The model must call this tool (`{"tool": {"name": …}}`).
    Tool(SpecificTool),
}

/// An empty object, `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// `toolChoice.tool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecificTool {
    /// Tool name.
    pub name: String,
}

// === response ===

/// Non-streaming response body of `Converse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// The answer.
    pub output: ConverseOutput,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Token counts.
    pub usage: TokenUsage,
    /// Latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Model-specific response fields asked for with `additionalModelResponseFieldPaths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    /// Everything else (`trace`, `performanceConfig`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `output`: a union whose one member is `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConverseOutput {
    /// The assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stopReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end of the turn.
    EndTurn,
    /// The model called tools.
    ToolUse,
    /// Token limit.
    MaxTokens,
    /// A stop sequence was generated.
    StopSequence,
    /// A guardrail intervened.
    GuardrailIntervened,
    /// Content was filtered.
    ContentFiltered,
    /// The context window is full.
    ModelContextWindowExceeded,
    /// A value this crate does not know (`malformed_model_output`, …).
    #[serde(untagged)]
    Other(String),
}

/// `usage`. `inputTokens` excludes the cache reads and writes, which are counted beside it (as
/// Anthropic counts them); `totalTokens` is the sum of all four.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    /// Everything else (`cacheDetails`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Latency of the call.
    #[serde(default)]
    pub latency_ms: u64,
    /// Everything else (`timeToFirstByteMs`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

// === stream events ===

/// `messageStart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStartEvent {
    /// Always `assistant`.
    pub role: Role,
    /// Everything else (the `p` padding).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockStart`: sent for tool-use blocks (text blocks start with their first delta).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent {
    /// Index of the block in the message.
    pub content_block_index: u32,
    /// What starts.
    pub start: ContentBlockStart,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockStart.start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockStart {
    /// A tool call.
    ToolUse(ToolUseStart),
    /// Anything else, kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `start.toolUse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    /// Call id.
    pub tool_use_id: String,
    /// Tool name.
    pub name: String,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockDelta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent {
    /// Index of the block in the message.
    pub content_block_index: u32,
    /// What it adds.
    pub delta: ContentBlockDelta,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `contentBlockDelta.delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockDelta {
    /// More text.
    Text(String),
    /// More tool input.
    ToolUse(ToolUseDelta),
    /// More reasoning.
    ReasoningContent(ReasoningDelta),
    /// Anything else (`citation`, …), kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `delta.toolUse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUseDelta {
    /// A piece of the input's JSON text.
    pub input: String,
}

/// `delta.reasoningContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningDelta {
    /// More reasoning text.
    Text(String),
    /// The signature of the reasoning block.
    Signature(String),
    /// Encrypted reasoning, base64.
    RedactedContent(String),
    /// Anything else, kept whole.
    #[serde(untagged)]
    Other(Value),
}

/// `contentBlockStop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStopEvent {
    /// Index of the block in the message.
    pub content_block_index: u32,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `messageStop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent {
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Model-specific response fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `metadata`: the last event of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataEvent {
    /// Token counts of the whole call.
    pub usage: TokenUsage,
    /// Latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Everything else (`trace`, `performanceConfig`, the `p` padding).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `ConverseStream` event, named by its `:event-type` header.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `messageStart`.
    MessageStart(MessageStartEvent),
    /// `contentBlockStart`.
    ContentBlockStart(ContentBlockStartEvent),
    /// `contentBlockDelta`.
    ContentBlockDelta(ContentBlockDeltaEvent),
    /// `contentBlockStop`.
    ContentBlockStop(ContentBlockStopEvent),
    /// `messageStop`.
    MessageStop(MessageStopEvent),
    /// `metadata`.
    Metadata(MetadataEvent),
}

impl StreamEvent {
    /// Parses the JSON payload of an event message. `Ok(None)` for an event type this crate does
    /// not know (a newer API may add some); an error when a known event's payload is malformed.
    pub fn parse(event_type: &str, payload: &[u8]) -> Result<Option<Self>, serde_json::Error> {
        Ok(Some(match event_type {
            "messageStart" => StreamEvent::MessageStart(serde_json::from_slice(payload)?),
            "contentBlockStart" => StreamEvent::ContentBlockStart(serde_json::from_slice(payload)?),
            "contentBlockDelta" => StreamEvent::ContentBlockDelta(serde_json::from_slice(payload)?),
            "contentBlockStop" => StreamEvent::ContentBlockStop(serde_json::from_slice(payload)?),
            "messageStop" => StreamEvent::MessageStop(serde_json::from_slice(payload)?),
            "metadata" => StreamEvent::Metadata(serde_json::from_slice(payload)?),
            _ => return Ok(None),
        }))
    }

    /// The `:event-type` of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart(_) => "messageStart",
            StreamEvent::ContentBlockStart(_) => "contentBlockStart",
            StreamEvent::ContentBlockDelta(_) => "contentBlockDelta",
            StreamEvent::ContentBlockStop(_) => "contentBlockStop",
            StreamEvent::MessageStop(_) => "messageStop",
            StreamEvent::Metadata(_) => "metadata",
        }
    }

    /// The JSON payload of this event.
    pub fn payload(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            StreamEvent::MessageStart(e) => serde_json::to_vec(e),
            StreamEvent::ContentBlockStart(e) => serde_json::to_vec(e),
            StreamEvent::ContentBlockDelta(e) => serde_json::to_vec(e),
            StreamEvent::ContentBlockStop(e) => serde_json::to_vec(e),
            StreamEvent::MessageStop(e) => serde_json::to_vec(e),
            StreamEvent::Metadata(e) => serde_json::to_vec(e),
        }
    }
}

// === errors ===

/// Error body of a non-streaming call, and payload of a stream exception: `{"message": "…"}`. The
/// error's kind is not in the body but in the `x-amzn-ErrorType` header (or the stream message's
/// `:exception-type` header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message (`Message` in some AWS services).
    #[serde(default, alias = "Message")]
    pub message: String,
    /// Everything else (`__type` in some AWS protocols).
    #[serde(flatten)]
    pub extra: Extra,
}

// === Titan text embeddings ===

/// `InvokeModel` body of `amazon.titan-embed-text-v1` / `-v2:0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbeddingsRequest {
    /// The text to embed.
    pub input_text: String,
    /// Vector size (v2 only: 256, 512 or 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Everything else (`normalize`, `embeddingTypes`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Titan text embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbeddingsResponse {
    /// The vector.
    pub embedding: Vec<f32>,
    /// Tokens of the input.
    #[serde(default)]
    pub input_text_token_count: u64,
    /// Everything else (`embeddingsByType`).
    #[serde(flatten)]
    pub extra: Extra,
}
