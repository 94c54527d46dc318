//! `weir-auth`: consumers and the `auth` filter: who is calling, with which credential, and
//! whether they may.
//!
//! - [`SharedAuth`]: what every core shares for one config generation, built on the main thread
//!   by the runtime's `snapshot()`: the compiled consumers ([`store::Store`]: API keys by the
//!   SHA-256 of their secret, basic-auth users, JWT subjects, HMAC keys) and the JWKS sources
//!   ([`jwt::JwksSource`], kept fresh by a thread of their own). Both are carried over from the
//!   previous generation while their config is unchanged.
//! - [`factory`]: the per-core factory of one configured `auth` filter ([`filter`]); it makes one
//!   [`weir_filter::Filter`] per request.
//!
//! On the request path the filter runs in `on_request_headers`: it finds the credential (API key
//! in `Authorization: Bearer`, `x-api-key`, another header or a query parameter; `Basic`; a JWT
//! in `Bearer`; an HMAC `Signature`), verifies it, applies the consumer's permissions (routes,
//! client networks), sets `RequestCtx::consumer` and `consumer_key` (the credential's id, never
//! its secret), and removes the credential before the request goes upstream. At the end of the
//! body it checks the model an `ai` route was asked for against the consumer's allow-list, and an
//! HMAC-signed body digest. Refusals are 401 (with `WWW-Authenticate`) or 403, in the protocol of
//! the client (OpenAI or Anthropic error objects on LLM paths).
//!
//! Costs: an API key is one SHA-256 of the presented key and one hash-map probe. A JWT is
//! verified once per core and then found in a per-core cache until it expires. A password is
//! verified with its slow hash once per core, then remembered for 10 minutes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fetch;
pub mod filter;
pub mod jwt;
pub mod password;
pub mod signature;
pub mod store;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use weir_config::FilterConfig;
use weir_filter::FilterFactory;

pub use filter::AuthFactory;
pub use password::hash_password;
pub use store::Store;

/// Why the auth state or a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// What all cores share: built once per generation on the main thread, carried over while the
/// config it comes from is unchanged.
#[derive(Debug, Default)]
pub struct SharedAuth {
    consumers: Vec<weir_config::Consumer>,
    store: Arc<Store>,
    jwks: jwt::Sources,
}

impl SharedAuth {
    /// Builds the shared state of `config`, reusing `prev`'s where it still applies.
    pub fn new(
        config: &weir_config::Config,
        prev: Option<&Arc<SharedAuth>>,
    ) -> Result<Arc<SharedAuth>, Error> {
        let store = match prev {
            Some(p) if p.consumers == config.consumers => p.store.clone(),
            _ => Arc::new(Store::new(&config.consumers)?),
        };
        let mut jwks: jwt::Sources = HashMap::new();
        for l in &config.listeners {
            for r in &l.routes {
                for f in &r.filters {
                    let FilterConfig::Auth(a) = f else { continue };
                    let Some(j) = &a.jwt else { continue };
                    let Some(origin) = jwt::Origin::of(j) else {
                        continue;
                    };
                    let key = (origin, j.jwks_refresh.get());
                    if jwks.contains_key(&key) {
                        continue;
                    }
                    let src = match prev.and_then(|p| p.jwks.get(&key)) {
                        Some(s) => s.clone(),
                        None => jwt::JwksSource::start(key.0.clone(), key.1).map_err(Error)?,
                    };
                    jwks.insert(key, src);
                }
            }
        }
        Ok(Arc::new(SharedAuth {
            consumers: config.consumers.clone(),
            store,
            jwks,
        }))
    }

    /// The compiled consumers.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The JWKS source of `origin` refreshed every `refresh`, if a filter uses it.
    pub fn jwks(
        &self,
        origin: &jwt::Origin,
        refresh: std::time::Duration,
    ) -> Option<&Arc<jwt::JwksSource>> {
        self.jwks.get(&(origin.clone(), refresh))
    }
}

/// The factory of one `auth` filter on one core.
pub fn factory(
    filter: &weir_config::AuthFilter,
    shared: &Arc<SharedAuth>,
    core: usize,
) -> Result<Rc<dyn FilterFactory>, Error> {
    Ok(Rc::new(AuthFactory::new(filter, shared, core)?))
}

/// Lowercase hex SHA-256 of an API key: the form the config stores.
pub fn key_digest_hex(secret: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests;
