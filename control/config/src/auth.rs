//! Consumers and authentication: who may call, with which credentials (filled in by the
//! consumers work).

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::schema::Config;

/// A consumer: a caller of the gateway with credentials and permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Unique name, used in logs, metrics and quotas.
    pub name: String,
}

/// The `auth` filter: which credentials a route accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFilter {}

/// Problems with consumers and `auth` filters.
pub(crate) fn validate(_config: &Config) -> Vec<Problem> {
    Vec::new()
}
