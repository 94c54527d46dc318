//! Google OAuth 2.0 access tokens from a service account, for Vertex AI
//! (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>).
//!
//! The flow: sign a JWT assertion with the account's RSA key ([`ServiceAccount::jwt_assertion`]),
//! `POST` it to the account's `token_uri` as a form ([`token_request_body`]), read the access
//! token and its lifetime from the answer ([`parse_token_response`]), and send it as
//! `Authorization: Bearer …` until shortly before it expires. The scope for Vertex AI is
//! [`CLOUD_PLATFORM_SCOPE`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};

/// The OAuth scope Vertex AI accepts.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google's token endpoint, for key files that do not name one.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Lifetime asked for the assertion; Google's maximum.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

// === impl ServiceAccount ===

/// A service account: who it is and the key it signs with. `Debug` shows no key.
pub struct ServiceAccount {
    /// `name@project.iam.gserviceaccount.com`: the JWT's issuer.
    pub client_email: String,
    /// Id of the key, sent as the JWT's `kid`.
    pub private_key_id: String,
    /// The token endpoint, also the JWT's audience.
    pub token_uri: String,
    /// The RSA key, parsed once from its PEM (PKCS#8 `PRIVATE KEY`, as Google issues it, or
    /// PKCS#1 `RSA PRIVATE KEY`).
    private_key: RsaKeyPair,
}

/// The members of a key file this crate reads.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// A service account from its parts; `private_key` is the PEM text.
    pub fn new(
        client_email: impl Into<String>,
        private_key: &str,
        private_key_id: impl Into<String>,
        token_uri: impl Into<String>,
    ) -> Result<Self> {
        let (der, pkcs1) = pem_to_der(private_key)?;
        let key = if pkcs1 {
            RsaKeyPair::from_der(&der)
        } else {
            RsaKeyPair::from_pkcs8(&der)
        }
        .map_err(|e| Error::KeyRejected(e.to_string()))?;
        Ok(ServiceAccount {
            client_email: client_email.into(),
            private_key_id: private_key_id.into(),
            token_uri: token_uri.into(),
            private_key: key,
        })
    }

    /// Reads the JSON key file Google issues for a service account (`"type":
    /// "service_account"`, with `client_email`, `private_key`, `private_key_id`, and `token_uri`,
    /// which defaults to [`DEFAULT_TOKEN_URI`]).
    pub fn from_json(json: &str) -> Result<Self> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| Error::json(&e))?;
        if let Some(kind) = file.kind.as_deref() {
            if kind != "service_account" {
                return Err(Error::ServiceAccount("`type` is not `service_account`"));
            }
        }
        let client_email = file
            .client_email
            .ok_or(Error::ServiceAccount("no `client_email`"))?;
        let private_key = file
            .private_key
            .ok_or(Error::ServiceAccount("no `private_key`"))?;
        let private_key_id = file
            .private_key_id
            .ok_or(Error::ServiceAccount("no `private_key_id`"))?;
        let token_uri = file
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        Self::new(client_email, &private_key, private_key_id, token_uri)
    }

    /// The signed JWT assertion for `scope` (space-separated scopes), issued at `now` and valid an
    /// hour: header `{"alg":"RS256","typ":"JWT","kid":…}`, claims `{"iss", "scope", "aud":
    /// token_uri, "iat", "exp"}`, RSASSA-PKCS1-v1_5 with SHA-256.
    pub fn jwt_assertion(&self, scope: &str, now: SystemTime) -> Result<String> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));

        let mut signature = vec![0; self.private_key.public().modulus_len()];
        self.private_key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Sign)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        Ok(jwt)
    }

    /// The public half of the key (DER `RSAPublicKey`), to check signatures with.
    pub fn public_key_der(&self) -> &[u8] {
        self.private_key.public().as_ref()
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The DER bytes inside a PEM private key, and whether it is PKCS#1 (`RSA PRIVATE KEY`) rather
/// than PKCS#8 (`PRIVATE KEY`). Other labels, or several keys, are refused.
fn pem_to_der(pem: &str) -> Result<(Vec<u8>, bool)> {
    for (label, pkcs1) in [("PRIVATE KEY", false), ("RSA PRIVATE KEY", true)] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = pem.find(&begin) else {
            continue;
        };
        let body = &pem[start + begin.len()..];
        let stop = body
            .find(&end)
            .ok_or(Error::PrivateKey("PEM without its END line"))?;
        let b64: String = body[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| Error::PrivateKey("PEM body is not base64"))?;
        return Ok((der, pkcs1));
    }
    Err(Error::PrivateKey("no PEM `PRIVATE KEY` block"))
}

// === token endpoint ===

/// The `application/x-www-form-urlencoded` body that exchanges an assertion for an access token.
pub fn token_request_body(assertion: &str) -> String {
    let mut body = String::with_capacity(96 + assertion.len());
    body.push_str("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=");
    // A JWT is base64url and dots, which need no escaping; anything else is escaped anyway.
    for b in assertion.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            body.push(b as char);
        } else {
            body.push_str(&format!("%{b:02X}"));
        }
    }
    body
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The access token and its lifetime in seconds from the token endpoint's answer, or the
/// endpoint's refusal (`{"error": "invalid_grant", "error_description": …}`).
pub fn parse_token_response(body: &[u8]) -> Result<(String, u64)> {
    let resp: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| Error::TokenResponse("not a JSON token response"))?;
    if let Some(error) = resp.error {
        return Err(Error::TokenRefused {
            error,
            description: resp.error_description.unwrap_or_default(),
        });
    }
    let token = resp
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(Error::TokenResponse("no `access_token`"))?;
    let expires_in = resp
        .expires_in
        .ok_or(Error::TokenResponse("no `expires_in`"))?;
    Ok((token, expires_in))
}

#[cfg(test)]
mod tests;
