//! What a finished request tells the LLM metrics ([`weir_metrics::ai`]): read off the request
//! context when the request ends, recorded into the core's own series.

use std::time::Instant;

use weir_filter::{ProxyError, RequestCtx, TokenUsage};
use weir_metrics::ai::{operation_name, AiRecorder, AiSample, Tokens};
use weir_quota::prices::{ModelPrice, Prices};

/// An `ai` route's prices (its quota filter's `prices` over the shipped table; they remember
/// the models already priced on this core).
#[derive(Debug)]
pub struct RoutePrices {
    prices: Prices,
}

impl RoutePrices {
    /// The route's prices.
    pub fn new(prices: Prices) -> Self {
        RoutePrices { prices }
    }

    /// The estimated cost of `u` on `model`, in nano-units of the prices' currency; None when
    /// the model has no price.
    pub fn cost(&self, model: &str, u: &TokenUsage) -> Option<u64> {
        let price: Option<ModelPrice> = self.prices.get(model);
        price.map(|p| p.cost(u.input, u.cached_input, u.output))
    }
}

/// Records `ctx` (ended at `now`): a quota refusal, and for an LLM request its series. Sets what
/// the access log then shows: the refusal's kind of limit, and the estimated cost from `prices`
/// (the route's).
pub(crate) fn record(
    rec: &AiRecorder,
    ctx: &mut RequestCtx,
    now: Instant,
    prices: Option<&RoutePrices>,
) {
    ctx.quota_rejected = ctx
        .quota_rejected
        .or_else(|| quota_refusal(ctx.error.as_ref()));
    if let Some(limit) = ctx.quota_rejected {
        rec.quota_rejected(ctx.route.as_ref(), ctx.consumer.as_ref(), limit);
    }
    let Some(ai) = ctx.ai.as_deref_mut() else {
        return;
    };
    if let (Some(u), Some(p), Some(m)) = (ai.usage, prices, ai.model.as_deref()) {
        ai.cost_nano = p.cost(m, &u);
    }
    let ai = &*ai;
    // Time to first token, chunk gaps and stream time are measures of streams only (for a JSON
    // answer the "first token" is the whole answer).
    let first = ai.first_token.filter(|_| ai.stream);
    rec.record(&AiSample {
        route: ctx.route.as_ref(),
        operation: operation_name(ai.api),
        provider_name: ai.provider_name,
        provider: ai.provider.as_ref(),
        model: ai.model.as_ref(),
        consumer: ctx.consumer.as_ref(),
        duration: now.saturating_duration_since(ctx.timings.start),
        first_token: first.map(|f| f.saturating_duration_since(ctx.timings.start)),
        stream: first.map(|f| now.saturating_duration_since(f)),
        chunks: first.map(|f| {
            let last = ai.chunks.last().unwrap_or(f);
            (&ai.chunks, last.saturating_duration_since(f))
        }),
        tokens: ai.usage.map(|u| Tokens {
            input: u.input,
            output: u.output,
            cached_input: u.cached_input,
            reasoning: u.reasoning,
            estimated: u.estimated,
        }),
        error: ctx.error.as_ref().map(|e| e.kind),
        cost_nano: ai.cost_nano,
        retries: ctx.retries,
        fallback: ai.tried.len() > 1 && ai.tried.first() != ai.tried.last(),
    });
}

/// The `quota` filter's refusals, by the errors it answers with (it need not set
/// `quota_rejected` itself): the kind of limit that refused.
fn quota_refusal(e: Option<&ProxyError>) -> Option<&'static str> {
    match e.map(|e| (e.status, e.kind))? {
        (429, "rate_limit_exceeded") => Some("rate"),
        (429, "insufficient_quota") => Some("budget"),
        (429, "request_too_large") => Some("too_large"),
        (503, "quota_unavailable") => Some("unavailable"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_of_a_priced_model() {
        let p = RoutePrices::new(Prices::new(&Default::default()));
        let u = TokenUsage {
            input: 1000,
            output: 100,
            ..Default::default()
        };
        // $0.15 and $0.60 per million: 150 000 + 60 000 nano-dollars.
        assert_eq!(p.cost("gpt-4o-mini", &u), Some(210_000));
        assert_eq!(p.cost("no-such-model", &u), None);
    }
}
