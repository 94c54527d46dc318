//! `weir-quota` (being written by the consumers and quotas work).
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::Arc;

use weir_filter::FilterFactory;

/// Why the quota state or a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// What all cores share: built once per generation on the main thread, carried over while the
/// config it comes from is unchanged.
#[derive(Debug, Default)]
pub struct SharedQuota;

impl SharedQuota {
    /// Builds the shared state of `config`, reusing `prev`'s where it still applies.
    pub fn new(
        _config: &weir_config::Config,
        _prev: Option<&Arc<SharedQuota>>,
    ) -> Result<Arc<SharedQuota>, Error> {
        Ok(Arc::new(SharedQuota))
    }
}

/// The factory of one `quota` filter on one core.
pub fn factory(
    _filter: &weir_config::QuotaFilter,
    _shared: &Arc<SharedQuota>,
    _core: usize,
) -> Result<Rc<dyn FilterFactory>, Error> {
    Err(Error("the quota filter is not built yet".into()))
}
