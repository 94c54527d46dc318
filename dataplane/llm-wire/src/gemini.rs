//! Google Gemini API wire format (Generative Language API, REST JSON, `v1beta`).
//!
//! Reference: <https://ai.google.dev/api/generate-content> (`models.generateContent`,
//! `models.streamGenerateContent` with `alt=sse`, where every `data:` is a whole
//! [`GenerateContentResponse`]), <https://ai.google.dev/api/tokens> (`countTokens`),
//! <https://ai.google.dev/api/embeddings> (`batchEmbedContents`) and
//! <https://ai.google.dev/gemini-api/docs/troubleshooting> (error body
//! `{"error":{"code","message","status"}}`).
//!
//! The REST JSON is the proto3 JSON mapping, so every field is camelCase. The model name is not
//! in the generate-content body but in the URL (`models/{model}:generateContent`). Open-ended
//! objects keep the fields this crate does not model (`safetySettings`, `googleSearch`,
//! `groundingMetadata`, …) in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields this crate does not model, kept so that pass-through never drops data.
pub type Extra = Map<String, Value>;

// === request ===

/// `POST models/{model}:generateContent` (and `:streamGenerateContent`) request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation: `user` and `model` turns.
    #[serde(default)]
    pub contents: Vec<Content>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model may use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// System instructions (text parts; the role is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Sampling and output settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Everything else (`safetySettings`, `cachedContent`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A turn, or the system instruction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// `user` or `model` (absent in `systemInstruction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The parts, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn. The API's `Part` is a union keyed by field name (`text`, `inlineData`,
/// `functionCall`, …) beside which `thought` and `thoughtSignature` may appear, so it is a struct
/// of options rather than an enum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text (or thought-summary text when `thought` is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inline bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// Bytes by URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A call the model makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// The result of a call, sent back by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// The part is a thought summary, not answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque signature of the model's reasoning, to be sent back with the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Everything else (`executableCode`, `codeExecutionResult`, `videoMetadata`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Part {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    /// What the part carries, by its wire field name (for error paths).
    pub fn kind(&self) -> &str {
        if self.function_call.is_some() {
            "functionCall"
        } else if self.function_response.is_some() {
            "functionResponse"
        } else if self.inline_data.is_some() {
            "inlineData"
        } else if self.file_data.is_some() {
            "fileData"
        } else if self.text.is_some() {
            "text"
        } else {
            self.extra.keys().next().map_or("empty", String::as_str)
        }
    }
}

/// `inlineData`: base64 bytes with their media type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// `image/png`, `audio/wav`, `application/pdf`, …
    pub mime_type: String,
    /// Base64 data.
    pub data: String,
}

/// `fileData`: bytes by URI (Files API, or a public URL the API fetches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// Media type of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The URI.
    pub file_uri: String,
}

/// `functionCall`: a call the model makes, arguments as a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCall {
    /// Call id, when the API assigns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    pub name: String,
    /// Arguments (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// `functionResponse`: a function's result, a JSON object (`output` or `error` by convention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionResponse {
    /// Id of the call it answers, when the call had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name (how Gemini matches results to calls).
    pub name: String,
    /// The result (a JSON object).
    pub response: Value,
}

/// A tool: function declarations, or a built-in tool kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    /// Everything else (`googleSearch`, `codeExecution`, `urlContext`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// Name the model calls it by.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments as Gemini's `Schema` (an OpenAPI 3.0 subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Arguments as JSON Schema (exclusive with `parameters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<Value>,
    /// Everything else (`response`, `responseJsonSchema`, `behavior`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `toolConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// Function-calling mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_calling_config: Option<FunctionCallingConfig>,
    /// Everything else (`retrievalConfig`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY`, `NONE` (or `VALIDATED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// With `ANY`: the functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_function_names: Option<Vec<String>>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `generationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// Up to five stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// `text/plain` or `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// Output schema as Gemini's `Schema` (OpenAPI subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// Output schema as JSON Schema (exclusive with `responseSchema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    /// Number of candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    /// Upper bound of generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Return the log probability of each chosen token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_logprobs: Option<bool>,
    /// With `responseLogprobs`: how many alternatives per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Thinking budget and thought summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
    /// Everything else (`responseModalities`, `speechConfig`, `mediaResolution`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Return thought summaries as `thought` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    /// Thinking tokens allowed: `0` disables, `-1` lets the model decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i32>,
    /// Gemini 3 models: `low` or `high` (exclusive with `thinkingBudget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

// === response ===

/// Response of `generateContent`, and each `data:` of `streamGenerateContent?alt=sse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// One per `candidateCount` (none when the prompt was blocked).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Why the prompt was blocked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts (cumulative in every stream chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// Model version that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One candidate answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The answer's parts (absent when blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Why generation stopped (only in the last chunk of a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Position among the candidates (often omitted for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Log probabilities, with `responseLogprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs_result: Option<LogprobsResult>,
    /// Everything else (`safetyRatings`, `citationMetadata`, `groundingMetadata`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `finishReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinishReason {
    /// Natural end or a stop sequence (also after function calls).
    Stop,
    /// `maxOutputTokens` reached.
    MaxTokens,
    /// Flagged by the safety filters.
    Safety,
    /// Flagged for reciting training data.
    Recitation,
    /// Unsupported language.
    Language,
    /// Forbidden terms.
    Blocklist,
    /// Prohibited content.
    ProhibitedContent,
    /// Sensitive personally identifiable information.
    Spii,
    /// A generated image was flagged.
    ImageSafety,
    /// The model wrote a function call that does not parse.
    MalformedFunctionCall,
    /// Another reason.
    Other,
    /// A value this crate does not know (`FINISH_REASON_UNSPECIFIED`, `TOO_MANY_TOOL_CALLS`, …).
    #[serde(untagged)]
    Unknown(String),
}

/// `promptFeedback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `OTHER`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
    /// Everything else (`safetyRatings`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `logprobsResult` of a candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogprobsResult {
    /// Per step: the most likely tokens.
    #[serde(default)]
    pub top_candidates: Vec<TopCandidates>,
    /// Per step: the chosen token.
    #[serde(default)]
    pub chosen_candidates: Vec<LogprobCandidate>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Alternatives of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopCandidates {
    /// Most likely first.
    #[serde(default)]
    pub candidates: Vec<LogprobCandidate>,
}

/// One token and its log probability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogprobCandidate {
    /// Token text.
    #[serde(default)]
    pub token: String,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    /// Log probability.
    #[serde(default)]
    pub log_probability: f64,
}

/// `usageMetadata`. Every count may be absent (zero).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens, cached ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_count: Option<u64>,
    /// Prompt tokens read from the context cache (part of `promptTokenCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<u64>,
    /// Answer tokens, thoughts excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates_token_count: Option<u64>,
    /// Tokens of the results of built-in tools (grounding, code execution) fed to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_prompt_token_count: Option<u64>,
    /// Thinking tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<u64>,
    /// Sum of all the above but the cached count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_token_count: Option<u64>,
    /// Everything else (`promptTokensDetails`, `candidatesTokensDetails`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// What one `data:` of a stream carries: a chunk, or an error object. `{"error":…}` would also
/// parse as an (empty) [`GenerateContentResponse`], so the error is tried first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamItem {
    /// A failure; the stream ends.
    Error(ErrorBody),
    /// A chunk.
    Response(GenerateContentResponse),
}

// === countTokens ===

/// `POST models/{model}:countTokens` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest {
    /// Contents to count (exclusive with `generateContentRequest`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    /// A whole request to count (system instruction and tools included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_content_request: Option<Box<GenerateContentRequest>>,
}

/// `countTokens` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    /// Tokens of the prompt.
    #[serde(default)]
    pub total_tokens: u64,
    /// Of which from the context cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<u64>,
    /// Everything else (`promptTokensDetails`).
    #[serde(flatten)]
    pub extra: Extra,
}

// === embeddings ===

/// `POST models/{model}:batchEmbedContents` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchEmbedContentsRequest {
    /// One request per input.
    pub requests: Vec<EmbedContentRequest>,
}

/// One input of `batchEmbedContents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedContentRequest {
    /// `models/{model}`: must equal the model of the URL.
    pub model: String,
    /// The text, as parts.
    pub content: Content,
    /// `RETRIEVAL_DOCUMENT`, `SEMANTIC_SIMILARITY`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Truncate the embedding to this many dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
    /// Everything else (`title`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `batchEmbedContents` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchEmbedContentsResponse {
    /// One per request, in order.
    #[serde(default)]
    pub embeddings: Vec<ContentEmbedding>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One embedding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentEmbedding {
    /// The vector.
    #[serde(default)]
    pub values: Vec<f32>,
}

// === errors ===

/// Error response body: `{"error":{"code","message","status","details"}}` (Google's common
/// `google.rpc.Status` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Canonical code: `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Everything else (`details`).
    #[serde(flatten)]
    pub extra: Extra,
}
