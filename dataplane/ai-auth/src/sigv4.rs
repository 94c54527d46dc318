//! AWS Signature Version 4, header form
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! [`sign`] is what the gateway calls; [`canonical_request`], [`string_to_sign`] and
//! [`authorization`] are its steps, public so that each can be checked against AWS's published
//! test suite.
//!
//! # What the path and query must be
//!
//! `path` and `query` are exactly what goes on the wire, **already percent-encoded once** (a
//! Bedrock model id `anthropic.claude-3-5-sonnet-20240620-v1:0` is sent as
//! `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`), with no `.` or `..` segments and
//! without the `?`. For every service but S3, AWS canonicalizes the path by encoding it once more:
//! each byte other than `A-Z a-z 0-9 - _ . ~ /` becomes `%XX`, so the `%3A` above is `%253A` in the
//! canonical request (what botocore and the AWS SDKs do). For S3 the wire path is used as it is.
//! The query's names and values are percent-decoded, re-encoded with the same rule (space is
//! `%20`, `+` a literal plus), and sorted.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

// === impl Credentials ===

/// AWS credentials: a long-term key, or temporary credentials with their session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` (long-term) or `ASIA…` (temporary).
    pub access_key_id: String,
    /// The secret key; never printed.
    pub secret_access_key: String,
    /// The session token of temporary credentials; never printed.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// With a session token (temporary credentials from STS, SSO or an instance role).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

// === signing ===

/// Signs a request and returns the headers to add to it: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256` and, with a session token, `x-amz-security-token`.
///
/// `host` is the `Host` header the request is sent with (`bedrock-runtime.us-east-1.amazonaws.com`,
/// with `:port` if not the default); `path` and `query` are as sent, already percent-encoded once
/// (see the [module documentation](self)); `headers` are the other headers to sign, typically
/// `content-type` (names in any case; do not pass `host`, `authorization` or the `x-amz-*` headers
/// this function adds, which are skipped). Every header passed is signed, so it must be sent
/// unchanged. `payload` is the exact body. `service` is the signing name (`bedrock` for
/// `bedrock-runtime`), `now` the signing time (requests are refused 5 minutes off).
// The parameters are the request's own parts; a struct would only rename them at each call.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(now);
    let payload_sha256 = sha256_hex(payload);
    const OURS: [&str; 5] = [
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ];
    let mut signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| !OURS.iter().any(|o| o.eq_ignore_ascii_case(name)))
        .copied()
        .collect();
    signed.push(("host", host));
    signed.push(("x-amz-date", &amz_date));
    signed.push(("x-amz-content-sha256", &payload_sha256));
    if let Some(token) = &creds.session_token {
        signed.push(("x-amz-security-token", token));
    }
    let request = Request {
        method,
        path,
        query,
        headers: &signed,
        payload_sha256: &payload_sha256,
    };
    let authorization = authorization(&request, creds, region, service, &amz_date);

    let mut out = Vec::with_capacity(4);
    out.push(("authorization", authorization));
    out.push(("x-amz-date", amz_date));
    out.push(("x-amz-content-sha256", payload_sha256));
    if let Some(token) = &creds.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out
}

/// The parts of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as sent, percent-encoded once.
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    /// Every header to sign, `host` and `x-amz-date` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lowercase hex SHA-256 of the body.
    pub payload_sha256: &'a str,
}

/// A canonical request and the list of headers it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The canonical request text.
    pub text: String,
    /// `SignedHeaders`: the lowercase header names, sorted, joined by `;`.
    pub signed_headers: String,
}

/// Step 1: the canonical request. Header names are lowercased and sorted; values are trimmed and
/// inner runs of spaces collapse to one; repeated headers are joined with `,` in order.
pub fn canonical_request(req: &Request<'_>, service: &str) -> CanonicalRequest {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), collapse_spaces(value)))
        .collect();
    // Stable: repeated headers keep their order.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut signed_headers = String::new();
    let mut previous: Option<&str> = None;
    for (name, value) in &headers {
        if previous == Some(name.as_str()) {
            // Remove the line end, append the repeated value.
            canonical_headers.pop();
            canonical_headers.push(',');
        } else {
            if previous.is_some() {
                signed_headers.push(';');
            }
            signed_headers.push_str(name);
            canonical_headers.push_str(name);
            canonical_headers.push(':');
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
        previous = Some(name);
    }

    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri = if service == "s3" {
        path.to_owned()
    } else {
        let mut uri = String::with_capacity(path.len() + 16);
        encode_into(&mut uri, path.as_bytes(), true);
        uri
    };

    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.payload_sha256
    );
    CanonicalRequest {
        text,
        signed_headers,
    }
}

/// Step 2: the string to sign, for `amz_date` (`20150830T123600Z`) and the credential scope
/// (`20150830/us-east-1/service/aws4_request`).
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Steps 1 to 4: the `Authorization` header value for a request whose headers (in `req`) are
/// already complete, `x-amz-date` included.
pub fn authorization(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let canonical = canonical_request(req, service);
    let to_sign = string_to_sign(amz_date, &scope, &canonical.text);

    let secret = format!("AWS4{}", creds.secret_access_key);
    let key = hmac(secret.as_bytes(), date.as_bytes());
    let key = hmac(&key, region.as_bytes());
    let key = hmac(&key, service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    let signature = hex(&hmac(&key, to_sign.as_bytes()));

    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id, canonical.signed_headers
    )
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC. A time before 1970 (a broken clock) is the epoch.
pub fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

// === helpers ===

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_ascii_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Appends `bytes` percent-encoded the AWS way: unreserved characters stay, every other byte is
/// `%XX` (uppercase), and `/` stays when `keep_slash`.
fn encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 0xf)] as char);
        }
    }
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical query string: each `name=value` decoded and encoded again, sorted by name then
/// value; a parameter without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let mut n = String::new();
            encode_into(&mut n, &percent_decode(name), false);
            let mut v = String::new();
            encode_into(&mut v, &percent_decode(value), false);
            (n, v)
        })
        .collect();
    params.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests;
