//! `weir-ai`: the AI layer of the request path, as pure logic the proxy drives.
//!
//! A route with an `ai` action serves the OpenAI API (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/responses`, `/v1/models`) and the Anthropic API (`/v1/messages`,
//! `/v1/messages/count_tokens`) for every configured provider:
//!
//! - [`ClientApi`] / [`Protocol`]: which endpoint was called and which protocol answers.
//! - [`ClientRequest`]: the client's body, read just enough to route it.
//! - [`ModelRouter`]: the requested model (after aliases) → a chain of [`Hop`]s (split, then
//!   fallback).
//! - [`SharedProvider`] and [`KeyPool`]: a provider's base URL, options and keys, shared by all
//!   cores; key health (401/403 disable, 429 cool-down) is process-wide.
//! - [`call::build`]: the provider adapters — one client request and one hop become an
//!   [`UpstreamCall`] (path, headers, body in the provider's schema) with a [`Shaper`] that
//!   carries the answer back in the client's protocol, stream events translated one at a time.
//! - [`provider_error`]: a provider's error answer, as an error in the client's protocol.
//! - [`mock`]: the in-process `mock` provider of the quickstart.
//! - [`estimate`]: token counts with a real tokenizer when a provider reports none.
//!
//! The I/O (connections, timeouts, fallback loop, streaming) lives in `weir-proxy`'s `ai`
//! module; this crate decides, that one moves bytes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
mod bedrock;
pub mod call;
pub mod client;
mod cohere;
mod error;
pub mod estimate;
mod google;
pub mod keys;
pub mod mock;
pub mod provider;
pub mod router;
pub mod shape;
pub mod vertex;

use std::rc::Rc;
use std::sync::Arc;

pub use api::{ClientApi, Protocol};
pub use call::{CallInput, UpstreamCall};
pub use client::ClientRequest;
pub use error::{Error, Result};
pub use keys::{KeyPool, KeysDown};
pub use provider::{Dialect, SharedProvider};
pub use router::{Hop, ModelRouter};
pub use shape::Shaper;

use weir_config::{FallbackCondition, FallbackOn};
use weir_filter::{ProxyError, Side};

/// One `ai` route, compiled for a core.
pub struct AiService {
    /// Providers the route may use, by index (as in [`Hop::provider`]).
    pub providers: Vec<Arc<SharedProvider>>,
    /// Model routing.
    pub router: ModelRouter,
    /// Failures that move a request to the next target.
    pub fallback: FallbackPolicy,
    /// Attempts, backoff, deadline.
    pub retry: weir_config::AiRetry,
    /// The `GET /v1/models` body.
    pub models_body: bytes::Bytes,
    /// Per provider: this core's round-robin key cursor.
    pub cursors: Vec<std::cell::Cell<u32>>,
}

/// Which failures move on to the next target.
#[derive(Debug, Clone, Default)]
pub struct FallbackPolicy {
    /// Connect errors and resets before an answer.
    pub connect_error: bool,
    /// First-byte timeouts.
    pub timeout: bool,
    /// Any 5xx.
    pub server_error: bool,
    /// These statuses.
    pub statuses: Vec<u16>,
}

impl FallbackPolicy {
    /// From the config list.
    pub fn new(on: &[FallbackOn]) -> Self {
        let mut p = FallbackPolicy::default();
        for o in on {
            match o {
                FallbackOn::Named(FallbackCondition::ConnectError) => p.connect_error = true,
                FallbackOn::Named(FallbackCondition::Timeout) => p.timeout = true,
                FallbackOn::Named(FallbackCondition::Status5xx) => p.server_error = true,
                FallbackOn::Status(s) => p.statuses.push(*s),
            }
        }
        p
    }

    /// Whether a provider status moves on.
    pub fn on_status(&self, status: u16) -> bool {
        (self.server_error && status >= 500) || self.statuses.contains(&status)
    }
}

impl AiService {
    /// Compiles an `ai` route for a core from the providers of the snapshot.
    pub fn new(
        cfg: &weir_config::AiRoute,
        providers: &std::collections::HashMap<String, Arc<SharedProvider>>,
    ) -> Result<Rc<AiService>> {
        // Only the providers this route names, in first-use order.
        let mut used: Vec<Arc<SharedProvider>> = Vec::new();
        for m in &cfg.models {
            for t in m.targets.iter().chain(&m.fallback) {
                let p = providers
                    .get(&t.provider)
                    .ok_or_else(|| Error::Config(format!("no provider named `{}`", t.provider)))?;
                if !used.iter().any(|u| Arc::ptr_eq(u, p)) {
                    used.push(p.clone());
                }
            }
        }
        let router = ModelRouter::new(cfg, |name| used.iter().position(|p| p.name() == name))?;
        let models = router.listed_models(|i| used[i].config.models.clone());
        let owner = |m: &str| {
            router
                .plan(
                    router.resolve_alias(m),
                    &weir_http::Headers::default(),
                    None,
                )
                .and_then(|chain| chain.first().map(|h| used[h.provider].name().to_string()))
                .unwrap_or_else(|| "weir".into())
        };
        let data: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": owner(m)})
            })
            .collect();
        let body = serde_json::json!({"object": "list", "data": data}).to_string();
        Ok(Rc::new(AiService {
            cursors: used.iter().map(|_| std::cell::Cell::new(0)).collect(),
            providers: used,
            router,
            fallback: FallbackPolicy::new(&cfg.fallback_on),
            retry: cfg.retry.clone(),
            models_body: bytes::Bytes::from(body),
        }))
    }
}

/// A provider's error answer as the client's error: the provider's status, kept as it is so each
/// SDK raises the matching exception (a 401/403 says the provider refused the gateway's key, which
/// the message makes plain), and the provider's message.
pub fn provider_error(p: &SharedProvider, status: u16, body: &[u8]) -> ProxyError {
    let message = error_message(p.dialect, body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    let (status, kind) = match status {
        401 | 403 => (status, "provider_auth_failed"),
        429 => (429, "provider_rate_limited"),
        400..=499 => (status, "provider_rejected"),
        _ => (status.max(500), "provider_error"),
    };
    let side = if status < 500 && !matches!(status, 401 | 403 | 429) {
        Side::Downstream
    } else {
        Side::Upstream
    };
    ProxyError::new(
        status,
        kind,
        side,
        format!("{} ({}): {message}", p.name(), p.config.kind.as_str()),
    )
}

/// The human message of a provider's error body.
fn error_message(dialect: Dialect, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = match dialect {
        Dialect::Bedrock | Dialect::Cohere => v.get("message").or_else(|| v.get("Message")),
        _ => v.get("error").and_then(|e| e.get("message").or(Some(e))),
    }?;
    Some(match s {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and treated as absent).
pub fn retry_after(value: Option<&[u8]>) -> Option<std::time::Duration> {
    let s = std::str::from_utf8(value?).ok()?.trim();
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| std::time::Duration::from_secs_f64(x.min(3600.0)))
}

/// The client-facing usage of a finished call, for the request context.
pub fn token_usage(
    u: Option<weir_llm_wire::Usage>,
    estimate: impl FnOnce() -> (u64, u64),
) -> weir_filter::TokenUsage {
    match u {
        Some(u) => weir_filter::TokenUsage {
            input: u.input,
            output: u.output,
            cached_input: u.cached_input,
            reasoning: u.reasoning,
            estimated: false,
        },
        None => {
            let (input, output) = estimate();
            weir_filter::TokenUsage {
                input,
                output,
                estimated: true,
                ..Default::default()
            }
        }
    }
}
#[cfg(test)]
mod tests;
