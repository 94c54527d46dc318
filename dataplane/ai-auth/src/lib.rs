//! `weir-ai-auth`: the credentials LLM providers want on a request, made without an SDK.
//!
//! - [`sigv4`]: AWS Signature Version 4 for Bedrock. [`sigv4::sign`] takes the request as it will
//!   be sent (method, host, encoded path and query, headers, body) and [`sigv4::Credentials`], and
//!   returns the headers to add (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and
//!   `x-amz-security-token` for temporary credentials).
//! - [`google`]: OAuth 2.0 access tokens for Vertex AI from a service account.
//!   [`google::ServiceAccount`] is read from the JSON key file; it mints the RS256-signed JWT
//!   assertion ([`google::ServiceAccount::jwt_assertion`]) that the token endpoint exchanges for
//!   an access token ([`google::token_request_body`], [`google::parse_token_response`]).
//!
//! Where it sits on the request path: the AI provider filter signs each upstream request in its
//! request phase, once the body is final (SigV4 signs the body's hash). Google tokens live an
//! hour: the filter keeps one per service account and refreshes it ahead of expiry, off the
//! request path; this crate does no I/O and reads no clock (the time is a parameter).
//!
//! Secrets (secret access keys, session tokens, private keys) never appear in `Debug` or in
//! errors.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod google;
pub mod sigv4;

pub use error::{Error, Result};
