//! One view of token usage across protocols, for quotas, metrics and logs.
//!
//! The protocols count input differently: OpenAI's `prompt_tokens` includes cached tokens, while
//! Anthropic's `input_tokens` excludes both cache reads and cache writes. [`Usage::input`] is
//! always *all* input tokens; the cached and cache-write parts are broken out beside it.

use crate::{anthropic, openai};

/// Normalized token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the provider's prompt cache (part of `input`).
    pub cached_input: u64,
    /// Input tokens written to the prompt cache (part of `input`; Anthropic only).
    pub cache_write: u64,
    /// Reasoning tokens (part of `output`; OpenAI reports them, Anthropic does not).
    pub reasoning: u64,
}

impl Usage {
    /// From an OpenAI `usage` object.
    pub fn from_openai(u: &openai::Usage) -> Self {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached_input: u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write: 0,
            reasoning: u
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }

    /// From an Anthropic `usage` object.
    pub fn from_anthropic(u: &anthropic::Usage) -> Self {
        let cached_input = u.cache_read_input_tokens.unwrap_or(0);
        let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input: u.input_tokens + cached_input + cache_write,
            output: u.output_tokens,
            cached_input,
            cache_write,
            reasoning: 0,
        }
    }

    /// Folds in the cumulative usage of an Anthropic `message_delta` (fields it carries win).
    pub fn merge_anthropic_delta(&mut self, d: &anthropic::DeltaUsage) {
        self.output = d.output_tokens;
        if d.input_tokens.is_some()
            || d.cache_read_input_tokens.is_some()
            || d.cache_creation_input_tokens.is_some()
        {
            let uncached = d.input_tokens.unwrap_or_else(|| {
                self.input
                    .saturating_sub(self.cached_input + self.cache_write)
            });
            if let Some(r) = d.cache_read_input_tokens {
                self.cached_input = r;
            }
            if let Some(w) = d.cache_creation_input_tokens {
                self.cache_write = w;
            }
            self.input = uncached + self.cached_input + self.cache_write;
        }
    }

    /// As an OpenAI `usage` object. The details objects are written only when they say something.
    pub fn to_openai(&self) -> openai::Usage {
        openai::Usage {
            prompt_tokens: self.input,
            completion_tokens: self.output,
            total_tokens: self.input + self.output,
            prompt_tokens_details: (self.cached_input > 0).then(|| openai::PromptTokensDetails {
                cached_tokens: Some(self.cached_input),
                extra: Default::default(),
            }),
            completion_tokens_details: (self.reasoning > 0).then(|| {
                openai::CompletionTokensDetails {
                    reasoning_tokens: Some(self.reasoning),
                    extra: Default::default(),
                }
            }),
            extra: Default::default(),
        }
    }

    /// As an Anthropic `usage` object (reasoning has no field there: it stays in `output_tokens`).
    pub fn to_anthropic(&self) -> anthropic::Usage {
        anthropic::Usage {
            input_tokens: self
                .input
                .saturating_sub(self.cached_input + self.cache_write),
            output_tokens: self.output,
            cache_creation_input_tokens: Some(self.cache_write),
            cache_read_input_tokens: Some(self.cached_input),
            extra: Default::default(),
        }
    }
}
