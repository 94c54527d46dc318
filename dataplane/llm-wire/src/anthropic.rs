//! Anthropic Messages wire format.
//!
//! Reference: <https://docs.anthropic.com/en/api/messages> (request and response),
//! <https://docs.anthropic.com/en/docs/build-with-claude/streaming> (SSE events) and
//! <https://docs.anthropic.com/en/api/errors>. Open-ended objects keep unmodelled fields
//! (`cache_control`, `citations`, …) in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields this crate does not model, kept so that pass-through never drops data.
pub type Extra = Map<String, Value>;

// === request ===

/// `POST /v1/messages` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model name as the client wrote it.
    pub model: String,
    /// Alternating user and assistant turns.
    pub messages: Vec<Message>,
    /// Upper bound of generated tokens (required by Anthropic).
    pub max_tokens: u32,
    /// System prompt: text or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// `user_id` for abuse tracking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model should use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Everything else (`service_tier`, `container`, `mcp_servers`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `system`: a string or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum System {
    /// Plain text.
    Text(String),
    /// Blocks (text, with `cache_control` in `extra`).
    Blocks(Vec<ContentBlock>),
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Opaque end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking`: `{"type":"enabled","budget_tokens":N}` or `{"type":"disabled"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thinking {
    /// `enabled` or `disabled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tokens the model may spend thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: Content,
}

/// Turn content: a string or blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

impl Content {
    /// The content as blocks.
    pub fn into_blocks(self) -> Vec<ContentBlock> {
        match self {
            Content::Text(text) => vec![ContentBlock::text(text)],
            Content::Blocks(blocks) => blocks,
        }
    }
}

/// A content block, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Everything else (`cache_control`, `citations`).
        #[serde(flatten)]
        extra: Extra,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// A tool call by the model.
    ToolUse {
        /// `toolu_…`, echoed by the matching `tool_result`.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        input: Value,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// A tool's result, in a user turn.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// Text or blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        /// The tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Extended thinking.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Signature that lets the block be sent back.
        #[serde(default)]
        signature: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Thinking redacted by the safety system (opaque).
    RedactedThinking {
        /// Encrypted reasoning.
        data: String,
        /// Everything else.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Any other block (`document`, `server_tool_use`, `web_search_tool_result`, …), kept as is.
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text {
            text: text.into(),
            extra: Extra::new(),
        }
    }

    /// The wire name of the block type.
    pub fn type_name(&self) -> &str {
        match self {
            ContentBlock::Text { .. } => "text",
            ContentBlock::Image { .. } => "image",
            ContentBlock::ToolUse { .. } => "tool_use",
            ContentBlock::ToolResult { .. } => "tool_result",
            ContentBlock::Thinking { .. } => "thinking",
            ContentBlock::RedactedThinking { .. } => "redacted_thinking",
            ContentBlock::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("unknown"),
        }
    }
}

/// Source of an image block, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline bytes.
    Base64 {
        /// `image/png`, `image/jpeg`, `image/gif`, `image/webp`.
        media_type: String,
        /// Base64 data.
        data: String,
    },
    /// Fetched by Anthropic.
    Url {
        /// `https://…`.
        url: String,
    },
    /// Any other source (`file`), kept as is.
    #[serde(untagged)]
    Other(Value),
}

/// A tool offered to the model: a client tool (`input_schema`) or a server tool (`type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Absent or `custom` for client tools; `web_search_20250305`, `bash_…`, … for server tools.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Everything else (`cache_control`, server-tool settings).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `tool_choice`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        /// Tool name.
        name: String,
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

// === response ===

/// Non-streaming response (`type: "message"`), also the `message` of `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_…`.
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `assistant`.
    pub role: Role,
    /// The answer's blocks.
    pub content: Vec<ContentBlock>,
    /// Model that answered.
    pub model: String,
    /// Why generation stopped (null in `message_start`).
    pub stop_reason: Option<StopReason>,
    /// Which stop sequence matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
    /// Everything else (`container`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stop_reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end.
    EndTurn,
    /// `max_tokens` reached.
    MaxTokens,
    /// A custom stop sequence matched.
    StopSequence,
    /// The model called tools.
    ToolUse,
    /// A long server-tool turn was paused.
    PauseTurn,
    /// Declined by the safety system.
    Refusal,
    /// The context window is full.
    ModelContextWindowExceeded,
    /// A value this crate does not know.
    #[serde(untagged)]
    Other(String),
}

/// `usage` of a response or of `message_start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Everything else (`service_tier`, `server_tool_use`, `cache_creation`).
    #[serde(flatten)]
    pub extra: Extra,
}

// === streaming ===

/// One SSE event of a streamed answer; the `event:` name equals the JSON `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First event: the message with empty content and the input usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A block begins.
    ContentBlockStart {
        /// Block position.
        index: u32,
        /// The block, empty (`text: ""`, `input: {}`).
        content_block: ContentBlock,
    },
    /// A piece of a block.
    ContentBlockDelta {
        /// Block position.
        index: u32,
        /// The piece.
        delta: BlockDelta,
    },
    /// A block ends.
    ContentBlockStop {
        /// Block position.
        index: u32,
    },
    /// Top-level changes at the end: stop reason and cumulative usage.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDeltaBody,
        /// Cumulative usage.
        usage: DeltaUsage,
    },
    /// Last event.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// A failure mid-stream.
    Error {
        /// The error.
        error: ErrorDetail,
    },
}

impl StreamEvent {
    /// The SSE `event:` name.
    pub fn event_name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// The delta of `content_block_delta`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// More text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// More tool input JSON (partial: only valid once all pieces are joined).
    InputJsonDelta {
        /// The piece.
        partial_json: String,
    },
    /// More thinking.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The thinking block's signature, just before its stop.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// Any other delta (`citations_delta`, …), kept as is.
    #[serde(untagged)]
    Other(Value),
}

/// `delta` of `message_delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    pub stop_reason: Option<StopReason>,
    /// Which stop sequence matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage` of `message_delta`: cumulative; `output_tokens` always, the others in newer API
/// versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaUsage {
    /// Output tokens so far.
    pub output_tokens: u64,
    /// Input tokens not from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

// === errors ===

/// Error response body: `{"type":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorDetail,
    /// Everything else (`request_id`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `rate_limit_error`, `overloaded_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

impl ErrorBody {
    /// An error body with the given type and message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            kind: "error".to_owned(),
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
            extra: Extra::new(),
        }
    }
}
