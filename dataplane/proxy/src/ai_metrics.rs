//! What a finished request tells the LLM metrics ([`weir_metrics::ai`]): read off the request
//! context when the request ends, recorded into the core's own series.

use std::time::Instant;

use weir_filter::RequestCtx;
use weir_metrics::ai::{operation_name, AiRecorder, AiSample, Tokens};

/// Records `ctx` (ended at `now`): its LLM series if it was an LLM request, and a quota
/// rejection if a quota filter refused it.
pub(crate) fn record(rec: &AiRecorder, ctx: &RequestCtx, now: Instant) {
    if let Some(limit) = ctx.quota_rejected {
        rec.quota_rejected(ctx.route.as_ref(), ctx.consumer.as_ref(), limit);
    }
    let Some(ai) = ctx.ai.as_deref() else {
        return;
    };
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
        retries: ctx.retries,
        fallback: ai.tried.len() > 1 && ai.tried.first() != ai.tried.last(),
    });
}
