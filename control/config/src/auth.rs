//! Consumers and authentication: who may call, with which credentials, and what they may reach.
//!
//! - A [`Consumer`] (top-level `consumers:`) is a caller with credentials: API keys stored as
//!   SHA-256 digests ([`ConsumerKey`]), basic-auth users with slow password hashes
//!   ([`BasicCredential`]), JWT subjects, HMAC signing keys ([`HmacCredential`]); and permissions
//!   ([`Permissions`]: routes, models, client networks).
//! - The `auth` filter ([`AuthFilter`]) says which methods a route accepts and how.
//!
//! Secrets that can be hashed are: an API key is a 256-bit random string, so a plain SHA-256
//! digest is safe to store; a password is not, so it is stored as an Argon2id or PBKDF2 hash
//! (a plain password is refused). HMAC keys cannot be: the gateway must compute the same MAC,
//! so they are read from the data plane's environment or a file, or given inline (masked by the
//! admin API).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::schema::{Config, FilterConfig};
use crate::units::Dur;

/// A consumer: a caller of the gateway with credentials and permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Unique name, used in logs, metrics and quotas.
    pub name: String,
    /// Free labels (team, tier, ...); an `auth` filter may send them upstream as headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// A disabled consumer's credentials are all refused (401).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// API keys (virtual keys): `Authorization: Bearer`, `x-api-key`, a header or a query
    /// parameter, as the route's `auth` filter says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ConsumerKey>,
    /// Basic-auth users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic_auth: Vec<BasicCredential>,
    /// JWT: the values of the filter's `consumer_claim` (default `sub`) that are this consumer,
    /// besides its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_subjects: Vec<String>,
    /// HMAC request-signing keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hmac: Vec<HmacCredential>,
    /// What the consumer may reach; every list empty: anything its routes serve.
    #[serde(default, skip_serializing_if = "Permissions::is_empty")]
    pub allow: Permissions,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An API key, stored as the SHA-256 digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerKey {
    /// Names the key in logs, metrics and the admin API (never the secret). Unique among all
    /// consumers' keys.
    pub id: String,
    /// Lowercase hex SHA-256 of the secret (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// When it was made (RFC 3339), for the listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// From this moment (RFC 3339, UTC `Z` or an offset) the key is refused (401 `expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Revoked at this moment (RFC 3339): refused from then on; kept for the listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Made through the admin API (`weirctl key create`): kept when the config file is edited.
    #[serde(default, skip_serializing_if = "is_false")]
    pub managed: bool,
}

/// A basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// The user name (unique among all consumers).
    pub username: String,
    /// A PHC string: `$argon2id$v=19$m=..,t=..,p=..$SALT$HASH` (`weirctl hash-password`) or
    /// `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`.
    pub password_hash: String,
}

/// An HMAC signing key: exactly one of `secret`, `secret_env`, `secret_file`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacCredential {
    /// The `keyId` clients name in their signature (unique among all consumers).
    pub id: String,
    /// The shared secret, inline (masked by the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// An environment variable of the data plane holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// A file holding it (whitespace trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for HmacCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacCredential")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "****"))
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// What a consumer may reach. Empty lists restrict nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Route names (`*` alone, or a `prefix*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Models as the client names them, on `ai` routes: exact, `prefix*`, `~regex`, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Client networks (CIDRs or addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

impl Permissions {
    /// No restriction at all.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.models.is_empty() && self.ips.is_empty()
    }
}

/// The `auth` filter: which credentials a route accepts. With none of `key`, `basic`, `jwt`,
/// `hmac` given, it takes API keys in `Authorization: Bearer` and `x-api-key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFilter {
    /// API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Box<KeyAuth>>,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// JSON Web Tokens in `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Box<JwtAuth>>,
    /// HMAC request signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<Box<HmacAuth>>,
    /// Only these consumers may use the route (names; empty: every consumer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
    /// Remove the credential (header or query parameter) before the request goes upstream.
    #[serde(default = "yes")]
    pub hide_credentials: bool,
    /// Send the consumer's name upstream in this header (`null`: do not).
    #[serde(default = "default_consumer_header")]
    pub consumer_header: Option<String>,
    /// Consumer attributes sent upstream: attribute name → header name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attribute_headers: BTreeMap<String, String>,
    /// The shape of 401/403 answers: `auto` (by path: `/v1/messages*` Anthropic, other `/v1/*`
    /// OpenAI, else the gateway's), `gateway`, `openai` or `anthropic`.
    #[serde(default)]
    pub error_format: AuthErrorFormat,
}

fn yes() -> bool {
    true
}

fn default_consumer_header() -> Option<String> {
    Some("x-weir-consumer".into())
}

/// The shape of the `auth` filter's error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthErrorFormat {
    /// By the request path.
    #[default]
    Auto,
    /// `{"error":{"type","message","request_id"}}`.
    Gateway,
    /// OpenAI's error object.
    Openai,
    /// Anthropic's error object.
    Anthropic,
}

/// Where API keys are looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    /// Header names; `authorization` takes the `Bearer` scheme, any other the whole value.
    #[serde(default = "default_key_headers")]
    pub headers: Vec<String>,
    /// Query parameter names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<String>,
}

impl Default for KeyAuth {
    fn default() -> Self {
        KeyAuth {
            headers: default_key_headers(),
            query: Vec::new(),
        }
    }
}

fn default_key_headers() -> Vec<String> {
    vec!["authorization".into(), "x-api-key".into()]
}

/// Basic auth (`Authorization: Basic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The realm of `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_realm() -> String {
    "weir".into()
}

/// JWT verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuth {
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud` must contain one of these (empty: not checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// A JWKS document (RSA, EC P-256/P-384, Ed25519 keys), re-read when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`http` or `https`), fetched off the request path and refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// TLS towards an `https` `jwks_url` (a private CA, a client certificate); default: the
    /// system's roots plus the bundled public ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_tls: Option<crate::UpstreamTls>,
    /// How often the JWKS is fetched again (a token with an unknown `kid` also triggers a
    /// fetch, at most every 10 s).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: Dur,
    /// HS256/384/512 shared secret, inline (masked by the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// ... or from this environment variable of the data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Algorithms accepted (default: every one the configured keys can verify).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// The claim naming the consumer.
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// A valid token whose claim names no consumer: `false` refuses it (403); `true` lets it
    /// through as a consumer of that name, without permissions of its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unknown_consumers: bool,
    /// Claims sent upstream: claim name → header name (strings, numbers and booleans).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims_to_headers: BTreeMap<String, String>,
    /// Tolerance on `exp`, `nbf`, `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: Dur,
    /// Refuse tokens without `exp`.
    #[serde(default = "yes")]
    pub require_exp: bool,
}

fn default_jwks_refresh() -> Dur {
    Dur::secs(300)
}
fn default_consumer_claim() -> String {
    "sub".into()
}
fn default_leeway() -> Dur {
    Dur::secs(30)
}

/// JWT algorithms the gateway verifies.
pub const JWT_ALGORITHMS: [&str; 11] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384",
];

/// HMAC request signatures (`Authorization: Signature keyId=..,algorithm=..,headers=..,signature=..`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacAuth {
    /// `Date` (or `X-Date`) must be within this of the gateway's clock; signatures are
    /// remembered (per core) this long to refuse replays.
    #[serde(default = "default_skew")]
    pub clock_skew: Dur,
    /// Header names (and `@request-target`) every signature must cover; `date` (or `x-date`)
    /// and `@request-target` always are required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_headers: Vec<String>,
    /// Requests with a body must sign a `Digest: SHA-256=<base64>` header, which is checked
    /// against the body.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_digest: bool,
    /// Signatures remembered per core; when full of live ones, new signatures are refused (503).
    #[serde(default = "default_replay_cache")]
    pub replay_cache_size: usize,
}

fn default_skew() -> Dur {
    Dur::secs(300)
}
fn default_replay_cache() -> usize {
    100_000
}

// === time ===

/// Parses an RFC 3339 timestamp (`2027-01-31T12:00:00Z`, fractions and offsets allowed) into
/// Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// === validation ===

/// Whether `s` is a well-formed PHC password hash of a kind the gateway verifies.
fn password_hash_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('$').collect();
    match parts.as_slice() {
        ["", "argon2id" | "argon2i" | "argon2d", rest @ ..] => rest.len() >= 3,
        ["", "pbkdf2-sha256" | "pbkdf2-sha512", params, salt, hash] => {
            params.split(',').any(|p| {
                p.strip_prefix("i=")
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n >= 1000)
            }) && !salt.is_empty()
                && !hash.is_empty()
        }
        _ => false,
    }
}

fn pattern_ok(p: &str) -> Result<(), String> {
    if let Some(re) = p.strip_prefix('~') {
        regex::Regex::new(re)
            .map(|_| ())
            .map_err(|e| format!("invalid regular expression: {e}"))
    } else if p.is_empty() {
        Err("an empty pattern".into())
    } else {
        Ok(())
    }
}

fn cidr_ok(s: &str) -> bool {
    let s = s.trim();
    s.parse::<ipnet::IpNet>().is_ok() || s.parse::<std::net::IpAddr>().is_ok()
}

fn header_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Problems with consumers and `auth` filters.
pub(crate) fn validate(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut fail = |field: String, message: String| {
        out.push(Problem {
            line: None,
            field,
            message,
        })
    };
    let mut names = std::collections::HashSet::new();
    let mut key_ids = std::collections::HashSet::new();
    let mut digests = std::collections::HashSet::new();
    let mut users = std::collections::HashSet::new();
    let mut hmac_ids = std::collections::HashSet::new();
    let mut subjects = std::collections::HashMap::new();
    for (i, c) in config.consumers.iter().enumerate() {
        let f = format!("consumers[{i}]");
        if c.name.is_empty() || c.name.len() > 128 || c.name.chars().any(char::is_control) {
            fail(
                format!("{f}.name"),
                "a name of 1 to 128 printable characters".into(),
            );
        }
        if !names.insert(c.name.as_str()) {
            fail(
                format!("{f}.name"),
                format!("consumer `{}` is defined twice", c.name),
            );
        }
        for (j, k) in c.keys.iter().enumerate() {
            let kf = format!("{f}.keys[{j}]");
            if k.id.is_empty() || k.id.len() > 128 || k.id.chars().any(char::is_control) {
                fail(
                    format!("{kf}.id"),
                    "an id of 1 to 128 printable characters".into(),
                );
            }
            if !key_ids.insert(k.id.as_str()) {
                fail(
                    format!("{kf}.id"),
                    format!("key id `{}` is used twice", k.id),
                );
            }
            let hex_ok = k.sha256.len() == 64
                && k.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                fail(
                    format!("{kf}.sha256"),
                    "64 lowercase hex digits: the SHA-256 of the key (plain keys are not stored)"
                        .into(),
                );
            } else if !digests.insert(k.sha256.as_str()) {
                fail(format!("{kf}.sha256"), "the same key is given twice".into());
            }
            for (name, v) in [
                ("created_at", &k.created_at),
                ("expires_at", &k.expires_at),
                ("revoked_at", &k.revoked_at),
            ] {
                if let Some(t) = v {
                    if parse_rfc3339(t).is_none() {
                        fail(
                            format!("{kf}.{name}"),
                            format!("`{t}` is not an RFC 3339 time (2027-01-31T12:00:00Z)"),
                        );
                    }
                }
            }
        }
        for (j, b) in c.basic_auth.iter().enumerate() {
            let bf = format!("{f}.basic_auth[{j}]");
            if b.username.is_empty() || b.username.contains(':') {
                fail(
                    format!("{bf}.username"),
                    "a non-empty user name without `:`".into(),
                );
            }
            if !users.insert(b.username.as_str()) {
                fail(
                    format!("{bf}.username"),
                    format!("user `{}` is defined twice", b.username),
                );
            }
            if !password_hash_ok(&b.password_hash) {
                fail(
                    format!("{bf}.password_hash"),
                    "a PHC hash: `$argon2id$...` (weirctl hash-password) or \
                     `$pbkdf2-sha256$i=N$...` with N >= 1000; plain passwords are refused"
                        .into(),
                );
            }
        }
        for s in &c.jwt_subjects {
            if let Some(other) = subjects.insert(s.as_str(), c.name.as_str()) {
                if other != c.name {
                    fail(
                        format!("{f}.jwt_subjects"),
                        format!("subject `{s}` is also consumer `{other}`'s"),
                    );
                }
            }
        }
        for (j, h) in c.hmac.iter().enumerate() {
            let hf = format!("{f}.hmac[{j}]");
            if h.id.is_empty() || h.id.contains('"') {
                fail(format!("{hf}.id"), "a non-empty id without `\"`".into());
            }
            if !hmac_ids.insert(h.id.as_str()) {
                fail(
                    format!("{hf}.id"),
                    format!("HMAC key id `{}` is used twice", h.id),
                );
            }
            let given = [
                h.secret.is_some(),
                h.secret_env.is_some(),
                h.secret_file.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                fail(
                    hf.clone(),
                    "exactly one of secret, secret_env, secret_file".into(),
                );
            }
            if h.secret.as_ref().is_some_and(|s| s.len() < 16) {
                fail(format!("{hf}.secret"), "at least 16 bytes of secret".into());
            }
        }
        for (j, r) in c.allow.routes.iter().enumerate() {
            if r.is_empty() {
                fail(format!("{f}.allow.routes[{j}]"), "an empty name".into());
            }
        }
        for (j, m) in c.allow.models.iter().enumerate() {
            if let Err(e) = pattern_ok(m) {
                fail(format!("{f}.allow.models[{j}]"), e);
            }
        }
        for (j, ip) in c.allow.ips.iter().enumerate() {
            if !cidr_ok(ip) {
                fail(
                    format!("{f}.allow.ips[{j}]"),
                    format!("`{ip}` is not a CIDR or an IP address"),
                );
            }
        }
    }
    for (li, l) in config.listeners.iter().enumerate() {
        for (ri, r) in l.routes.iter().enumerate() {
            for (fi, filter) in r.filters.iter().enumerate() {
                let FilterConfig::Auth(a) = filter else {
                    continue;
                };
                let f = format!("listeners[{li}].routes[{ri}].filters[{fi}]");
                check_filter(&mut fail, &f, a, &names);
            }
        }
    }
    out
}

fn check_filter(
    fail: &mut impl FnMut(String, String),
    f: &str,
    a: &AuthFilter,
    consumers: &std::collections::HashSet<&str>,
) {
    for (i, c) in a.consumers.iter().enumerate() {
        if !consumers.contains(c.as_str()) {
            fail(
                format!("{f}.consumers[{i}]"),
                format!("no consumer named `{c}`"),
            );
        }
    }
    if let Some(h) = &a.consumer_header {
        if !header_ok(h) {
            fail(
                format!("{f}.consumer_header"),
                format!("`{h}` is not a valid header name"),
            );
        }
    }
    for (attr, h) in &a.attribute_headers {
        if !header_ok(h) {
            fail(
                format!("{f}.attribute_headers.{attr}"),
                format!("`{h}` is not a valid header name"),
            );
        }
    }
    if let Some(k) = &a.key {
        if k.headers.is_empty() && k.query.is_empty() {
            fail(
                format!("{f}.key"),
                "name at least one header or query parameter".into(),
            );
        }
        for (i, h) in k.headers.iter().enumerate() {
            if !header_ok(h) {
                fail(
                    format!("{f}.key.headers[{i}]"),
                    format!("`{h}` is not a valid header name"),
                );
            }
        }
        for (i, q) in k.query.iter().enumerate() {
            if q.is_empty() || q.contains(['&', '=', '#']) {
                fail(
                    format!("{f}.key.query[{i}]"),
                    format!("`{q}` is not a query parameter name"),
                );
            }
        }
    }
    if let Some(j) = &a.jwt {
        let sources = [
            j.jwks_file.is_some(),
            j.jwks_url.is_some(),
            j.secret.is_some() || j.secret_env.is_some(),
        ];
        if !sources.iter().any(|s| *s) {
            fail(
                format!("{f}.jwt"),
                "give jwks_file, jwks_url, or secret / secret_env (HS256)".into(),
            );
        }
        if j.secret.is_some() && j.secret_env.is_some() {
            fail(
                format!("{f}.jwt"),
                "secret and secret_env exclude each other".into(),
            );
        }
        if j.secret.as_ref().is_some_and(|s| s.len() < 32) {
            fail(
                format!("{f}.jwt.secret"),
                "at least 32 bytes of secret".into(),
            );
        }
        if j.jwks_file.is_some() && j.jwks_url.is_some() {
            fail(
                format!("{f}.jwt"),
                "jwks_file and jwks_url exclude each other".into(),
            );
        }
        if let Some(u) = &j.jwks_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                fail(
                    format!("{f}.jwt.jwks_url"),
                    format!("`{u}` is not an http or https URL"),
                );
            }
        }
        if j.jwks_tls.is_some()
            && !j
                .jwks_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
        {
            fail(
                format!("{f}.jwt.jwks_tls"),
                "applies to an https jwks_url only".into(),
            );
        }
        if j.jwks_refresh.get() < std::time::Duration::from_secs(1) {
            fail(format!("{f}.jwt.jwks_refresh"), "at least 1s".into());
        }
        for (i, alg) in j.algorithms.iter().enumerate() {
            if !JWT_ALGORITHMS.contains(&alg.as_str()) && alg != "HS512" {
                fail(
                    format!("{f}.jwt.algorithms[{i}]"),
                    format!("`{alg}` is not one of {}, HS512", JWT_ALGORITHMS.join(", ")),
                );
            }
        }
        if j.consumer_claim.is_empty() {
            fail(format!("{f}.jwt.consumer_claim"), "a claim name".into());
        }
        for (claim, h) in &j.claims_to_headers {
            if !header_ok(h) {
                fail(
                    format!("{f}.jwt.claims_to_headers.{claim}"),
                    format!("`{h}` is not a valid header name"),
                );
            }
        }
    }
    if let Some(h) = &a.hmac {
        if h.clock_skew.get() < std::time::Duration::from_secs(1)
            || h.clock_skew.get() > std::time::Duration::from_secs(3600)
        {
            fail(format!("{f}.hmac.clock_skew"), "between 1s and 1h".into());
        }
        if h.replay_cache_size == 0 {
            fail(format!("{f}.hmac.replay_cache_size"), "at least 1".into());
        }
        for (i, name) in h.required_headers.iter().enumerate() {
            if name != "@request-target" && !header_ok(name) {
                fail(
                    format!("{f}.hmac.required_headers[{i}]"),
                    format!("`{name}` is not a header name or @request-target"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-21T10:11:48Z"), Some(1_795_255_908));
        assert_eq!(
            parse_rfc3339("2026-11-21T12:11:48.123+02:00"),
            Some(1_795_255_908)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T10:11:48",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn password_hashes() {
        assert!(password_hash_ok(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
        ));
        assert!(password_hash_ok("$pbkdf2-sha256$i=600000$c2FsdA$aGFzaA"));
        assert!(!password_hash_ok("$pbkdf2-sha256$i=10$c2FsdA$aGFzaA"));
        assert!(!password_hash_ok("hunter2"));
    }

    fn problems(yaml: &str) -> Vec<String> {
        let base = format!(
            "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: r\n        direct_response: {{ status: 200 }}\n        filters: [{{ type: auth, consumers: [ghost], jwt: {{ secret: short }} }}]\n{yaml}"
        );
        match crate::parse(&base, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(crate::Error::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.to_string()).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn consumers_are_checked() {
        let p = problems(
            "consumers:\n  - name: a\n    keys: [{ id: k, sha256: abc }, { id: k, sha256: abc }]\n    basic_auth: [{ username: u, password_hash: plain }]\n    allow: { models: [\"~(\"], ips: [10.0.0.0/33] }\n  - name: a\n",
        );
        let text = p.join("\n");
        for want in [
            "consumers[0].keys[0].sha256",
            "consumers[0].keys[1].id",
            "consumers[0].basic_auth[0].password_hash",
            "consumers[0].allow.models[0]",
            "consumers[0].allow.ips[0]",
            "consumers[1].name",
            "filters[0].consumers[0]",
            "filters[0].jwt.secret",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
    }
}
