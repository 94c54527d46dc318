//! Adapter for the google dialect (being written).

use crate::call::{CallInput, UpstreamCall};
use crate::{Error, Result};

pub(crate) fn build(input: &CallInput<'_>) -> Result<UpstreamCall> {
    Err(Error::Unsupported {
        provider: input.provider.name().to_string(),
        kind: input.provider.config.kind.as_str(),
        api: input.client.api.as_str(),
    })
}
