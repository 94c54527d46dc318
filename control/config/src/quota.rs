//! Quotas, rate limits and budgets (filled in by the quotas work).

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::schema::Config;

/// The `quota` filter: limits on requests, tokens and spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaFilter {}

/// Problems with `quota` filters.
pub(crate) fn validate(_config: &Config) -> Vec<Problem> {
    Vec::new()
}
