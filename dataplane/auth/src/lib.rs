//! `weir-auth` (being written by the consumers and quotas work).
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::Arc;

use weir_filter::FilterFactory;

/// Why the auth state or a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// What all cores share: built once per generation on the main thread, carried over while the
/// config it comes from is unchanged.
#[derive(Debug, Default)]
pub struct SharedAuth;

impl SharedAuth {
    /// Builds the shared state of `config`, reusing `prev`'s where it still applies.
    pub fn new(
        _config: &weir_config::Config,
        _prev: Option<&Arc<SharedAuth>>,
    ) -> Result<Arc<SharedAuth>, Error> {
        Ok(Arc::new(SharedAuth))
    }
}

/// The factory of one `auth` filter on one core.
pub fn factory(
    _filter: &weir_config::AuthFilter,
    _shared: &Arc<SharedAuth>,
    _core: usize,
) -> Result<Rc<dyn FilterFactory>, Error> {
    Err(Error("the auth filter is not built yet".into()))
}
