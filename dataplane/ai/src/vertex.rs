//! Vertex AI access tokens (being written).

use crate::keys::Secret;
use crate::Result;

/// Access tokens minted from the keys' service accounts.
#[derive(Debug)]
pub struct TokenCache;

impl TokenCache {
    /// Parses the service accounts.
    pub fn new(
        _config: &weir_config::Provider,
        _keys: &[(String, Secret, Option<String>, Option<Secret>, u32)],
    ) -> Result<TokenCache> {
        Ok(TokenCache)
    }
}
