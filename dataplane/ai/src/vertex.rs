//! Vertex AI access tokens: each key of a Vertex provider is a service account; a signed JWT
//! assertion is exchanged at the token endpoint for an OAuth access token, which is cached (all
//! cores share it) and refreshed five minutes before it expires. The exchange itself is an HTTP
//! call the proxy makes; this module says what to send and keeps what comes back.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use weir_ai_auth::google::ServiceAccount;
use weir_config::BaseUrl;

use crate::keys::KeySpec;
use crate::{Error, Result};

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const REFRESH_EARLY: Duration = Duration::from_secs(300);

/// The service accounts of a Vertex provider's keys and their current tokens.
pub struct TokenCache {
    accounts: Vec<ServiceAccount>,
    token_url: Vec<String>,
    tokens: Mutex<Vec<Option<(String, SystemTime)>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("accounts", &self.accounts.len())
            .finish()
    }
}

/// A token exchange to make: POST `body` (form-encoded) to `url`'s host and path.
#[derive(Debug)]
pub struct TokenRequest {
    /// The token endpoint.
    pub url: BaseUrl,
    /// The form body (holds a signed assertion: never log it).
    pub body: String,
}

impl TokenCache {
    /// Parses the service accounts (the keys' secrets are their JSON files).
    pub fn new(config: &weir_config::Provider, keys: &[KeySpec]) -> Result<TokenCache> {
        let mut accounts = Vec::with_capacity(keys.len());
        let mut token_url = Vec::with_capacity(keys.len());
        for KeySpec { id, secret, .. } in keys {
            let sa = ServiceAccount::from_json(secret.expose()).map_err(|e| {
                Error::Config(format!(
                    "provider `{}` key `{id}`: not a service-account JSON: {e}",
                    config.name
                ))
            })?;
            let url = config
                .vertex
                .as_ref()
                .and_then(|v| v.token_url.clone())
                .unwrap_or_else(|| sa.token_uri.clone());
            BaseUrl::parse(&url).map_err(|e| {
                Error::Config(format!(
                    "provider `{}` key `{id}`: token URL {e}",
                    config.name
                ))
            })?;
            token_url.push(url);
            accounts.push(sa);
        }
        Ok(TokenCache {
            tokens: Mutex::new(vec![None; accounts.len()]),
            accounts,
            token_url,
        })
    }

    /// A token of key `k` still good for five minutes, if one is cached.
    pub fn cached(&self, k: usize, now: SystemTime) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        match tokens.get(k)? {
            Some((t, exp)) if now + REFRESH_EARLY < *exp => Some(t.clone()),
            _ => None,
        }
    }

    /// The exchange that mints a token for key `k`.
    pub fn request(&self, k: usize, now: SystemTime) -> Result<TokenRequest> {
        let sa = self
            .accounts
            .get(k)
            .ok_or_else(|| Error::Auth("no such key".into()))?;
        let assertion = sa
            .jwt_assertion(SCOPE, now)
            .map_err(|e| Error::Auth(e.to_string()))?;
        let url = BaseUrl::parse(&self.token_url[k]).map_err(Error::Auth)?;
        Ok(TokenRequest {
            url,
            body: weir_ai_auth::google::token_request_body(&assertion),
        })
    }

    /// Keeps the token the endpoint answered (`body`) for key `k`; returns it.
    pub fn store(&self, k: usize, body: &[u8], now: SystemTime) -> Result<String> {
        let (token, expires_in) = weir_ai_auth::google::parse_token_response(body)
            .map_err(|e| Error::Auth(e.to_string()))?;
        if let Ok(mut tokens) = self.tokens.lock() {
            if let Some(slot) = tokens.get_mut(k) {
                *slot = Some((token.clone(), now + Duration::from_secs(expires_in)));
            }
        }
        Ok(token)
    }
}
