//! Translation between the OpenAI and Anthropic protocols, both ways, as pure functions.
//!
//! - requests: [`openai_to_anthropic_request`], [`anthropic_to_openai_request`];
//! - non-streaming responses: [`openai_to_anthropic_response`], [`anthropic_to_openai_response`];
//! - streams, event by event: [`OpenAiToAnthropicStream`], [`AnthropicToOpenAiStream`];
//! - errors and statuses: [`openai_error_to_anthropic`], [`anthropic_error_to_openai`],
//!   [`anthropic_error_type`], [`openai_error_type`];
//! - stop reasons: [`finish_to_stop_reason`], [`stop_to_finish_reason`].
//!
//! Requests are taken by value so strings move instead of being copied. A request field with no
//! counterpart is an [`Error::Untranslatable`](crate::Error::Untranslatable), never dropped.

pub mod bedrock;
pub mod cohere;
mod errors;
pub mod gemini;
mod request;
mod response;
mod stream;

pub use errors::{
    anthropic_error_to_openai, anthropic_error_type, anthropic_status_for_type,
    openai_error_to_anthropic, openai_error_type,
};
pub use request::{
    anthropic_to_openai_request, openai_to_anthropic_request, MaxTokensField, ToAnthropicOptions,
    ToOpenAiOptions,
};
pub use response::{anthropic_to_openai_response, openai_to_anthropic_response};
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};

use crate::anthropic::StopReason;
use crate::openai::FinishReason;

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
///
/// OpenAI does not say whether `stop` came from a stop sequence, so it is `end_turn`.
pub fn finish_to_stop_reason(reason: &FinishReason) -> StopReason {
    match reason {
        FinishReason::Stop => StopReason::EndTurn,
        FinishReason::Length => StopReason::MaxTokens,
        FinishReason::ToolCalls | FinishReason::FunctionCall => StopReason::ToolUse,
        FinishReason::ContentFilter => StopReason::Refusal,
        FinishReason::Other(_) => StopReason::EndTurn,
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn stop_to_finish_reason(reason: &StopReason) -> FinishReason {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::PauseTurn => {
            FinishReason::Stop
        }
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::Refusal => FinishReason::ContentFilter,
        StopReason::Other(_) => FinishReason::Stop,
    }
}

#[cfg(test)]
mod tests;
