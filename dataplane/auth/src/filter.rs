//! The `auth` filter: finds and verifies the credential, applies the consumer's permissions, and
//! hides the credential from the upstream.
//!
//! Which credential is tried is decided by what the request carries, among the methods the
//! filter enables:
//!
//! | request carries | method |
//! | --- | --- |
//! | `Authorization: Basic …` | basic |
//! | `Authorization: Signature …` (or `hmac …`) | HMAC |
//! | `Authorization: Bearer X`, X a compact JWS (`a.b.c`) and `jwt` enabled | JWT |
//! | `Authorization: Bearer X` otherwise, a key header, a key query parameter | API key |
//!
//! Per-core state, never shared between cores: the verified-JWT cache (per filter), good
//! basic-auth credentials and the per-user failure counts (per generation). Shared by the process:
//! the HMAC replay cache (sharded, kept across generations: a reload must not re-open a replay
//! window, and a replay must be caught on whichever core it lands).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use sha2::Digest as _;
use weir_config::auth::AuthErrorFormat;
use weir_filter::{
    Action, ErrorFormat, Filter, FilterFactory, LocalResponse, ProxyError, RequestCtx, Side,
};
use weir_http::RequestHead;

use crate::jwt::{self, Alg, JwksSource, KeySet, Rules};
use crate::signature;
use crate::store::{Digest, DigestMap, Store};
use crate::{Error, SharedAuth};

const NAME: &str = "auth";
/// Verified JWTs kept per filter per core.
const JWT_CACHE: usize = 10_000;
/// Good basic-auth credentials are remembered this long.
const BASIC_TTL: Duration = Duration::from_secs(600);
/// Failed password checks allowed per user per core in [`FAIL_WINDOW`] before checks stop.
const MAX_FAILS: u32 = 10;
const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Good basic-auth credentials remembered per core.
const BASIC_CACHE: usize = 10_000;

// === per-core tables ===

/// The per-core view of a generation's [`Store`]: names as `Rc<str>` (so a request clones a
/// pointer, never a string), and the basic-auth caches.
struct CoreTables {
    store: Arc<Store>,
    names: Vec<Rc<str>>,
    key_ids: Vec<Rc<str>>,
    /// SHA-256 of `user \0 password` → (consumer, credential id, verified at).
    basic_ok: RefCell<DigestMap<(u32, u32, Instant)>>,
    /// Credential id → (failures, window start).
    basic_fails: RefCell<HashMap<u32, (u32, Instant)>>,
}

thread_local! {
    /// One table set per core, replaced when the store changes.
    static TABLES: RefCell<Option<Rc<CoreTables>>> = const { RefCell::new(None) };
}

/// Shards of the HMAC replay cache.
const REPLAY_SHARDS: usize = 16;

/// HMAC signatures seen by this process (first 32 bytes) → Unix second they stop mattering.
/// Process-wide, so a replay is caught whichever core it lands on (the kernel spreads new
/// connections over the cores); sharded by the signature's first byte so cores rarely meet on a
/// lock, which is taken only on HMAC-signed requests, after the HMAC itself was verified. Static,
/// so a reload never re-opens a replay window.
static REPLAY: std::sync::LazyLock<[std::sync::Mutex<HashMap<Digest, i64>>; REPLAY_SHARDS]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|_| std::sync::Mutex::new(HashMap::new())));

fn tables(store: &Arc<Store>) -> Rc<CoreTables> {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        if let Some(cur) = t.as_ref() {
            if Arc::ptr_eq(&cur.store, store) {
                return cur.clone();
            }
        }
        let new = Rc::new(CoreTables {
            store: store.clone(),
            names: store
                .consumers
                .iter()
                .map(|c| Rc::from(c.name.as_str()))
                .collect(),
            key_ids: store.key_ids.iter().map(|k| Rc::from(k.as_str())).collect(),
            basic_ok: RefCell::new(DigestMap::default()),
            basic_fails: RefCell::new(HashMap::new()),
        });
        *t = Some(new.clone());
        new
    })
}

// === compiled config ===

struct KeyConf {
    /// Header names (lowercase); `authorization` means its `Bearer` token.
    headers: Vec<String>,
    query: Vec<String>,
}

struct JwtConf {
    rules: Rules,
    source: Option<Arc<JwksSource>>,
    /// The JWKS as last seen by this core, and its version.
    view: RefCell<(u64, Arc<KeySet>)>,
    hmac: Option<KeySet>,
    consumer_claim: String,
    allow_unknown: bool,
    claim_headers: Vec<(String, Bytes)>,
    /// Verified tokens by a hash of their tail (the signature's last bytes: random for every
    /// signed token, cheap to hash); the whole token is compared on a hit.
    cache: RefCell<HashMap<u64, CachedToken>>,
    seed: std::collections::hash_map::RandomState,
}

#[derive(Clone)]
struct CachedToken {
    token: Box<str>,
    consumer: Option<u32>,
    name: Rc<str>,
    key_id: Rc<str>,
    headers: Rc<[(Bytes, Bytes)]>,
    /// Valid until this Unix second (`exp` + leeway), if it expires.
    until: Option<i64>,
}

struct HmacConf {
    skew: i64,
    required: Vec<String>,
    require_digest: bool,
    cache_size: usize,
}

struct Compiled {
    tables: Rc<CoreTables>,
    key: Option<KeyConf>,
    basic: bool,
    jwt: Option<JwtConf>,
    hmac: Option<HmacConf>,
    /// Consumers allowed on this route (None: all).
    only: Option<HashSet<u32>>,
    hide: bool,
    consumer_header: Option<Bytes>,
    attribute_headers: Vec<(String, Bytes)>,
    format: AuthErrorFormat,
    challenges: Vec<Bytes>,
}

/// Makes [`AuthFilter`]s for one route on one core.
pub struct AuthFactory {
    c: Rc<Compiled>,
}

impl std::fmt::Debug for AuthFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFactory").finish_non_exhaustive()
    }
}

impl AuthFactory {
    /// Compiles `cfg` against the generation's consumers. Called on the core that will use it.
    pub fn new(
        cfg: &weir_config::AuthFilter,
        shared: &Arc<SharedAuth>,
        _core: usize,
    ) -> Result<AuthFactory, Error> {
        let tables = tables(shared.store());
        let store = &tables.store;
        let none_given =
            cfg.key.is_none() && cfg.basic.is_none() && cfg.jwt.is_none() && cfg.hmac.is_none();
        let key = match (&cfg.key, none_given) {
            (Some(k), _) => Some((**k).clone()),
            (None, true) => Some(weir_config::auth::KeyAuth::default()),
            (None, false) => None,
        }
        .map(|k| KeyConf {
            headers: k.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            query: k.query.clone(),
        });
        let jwt = match &cfg.jwt {
            None => None,
            Some(j) => {
                let source = jwt::Origin::of(j)
                    .map(|o| {
                        shared
                            .jwks(&o, j.jwks_refresh.get())
                            .cloned()
                            .ok_or_else(|| Error("the JWKS source was not started".into()))
                    })
                    .transpose()?;
                let secret = match (&j.secret, &j.secret_env) {
                    (Some(s), _) => Some(s.clone()),
                    (_, Some(var)) => Some(std::env::var(var).map_err(|_| {
                        Error(format!(
                            "jwt.secret_env: `{var}` is not set in weir's environment"
                        ))
                    })?),
                    _ => None,
                };
                let algorithms = j
                    .algorithms
                    .iter()
                    .map(|a| Alg::parse(a).ok_or_else(|| Error(format!("unknown algorithm {a}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let view = match &source {
                    Some(s) => (s.version(), s.current()),
                    None => (0, Arc::new(KeySet::default())),
                };
                Some(JwtConf {
                    rules: Rules {
                        algorithms,
                        issuer: j.issuer.clone(),
                        audiences: j.audiences.clone(),
                        leeway: j.leeway.get().as_secs() as i64,
                        require_exp: j.require_exp,
                    },
                    source,
                    view: RefCell::new(view),
                    hmac: secret.map(|s| KeySet::hmac(s.into_bytes())),
                    consumer_claim: j.consumer_claim.clone(),
                    allow_unknown: j.allow_unknown_consumers,
                    claim_headers: j
                        .claims_to_headers
                        .iter()
                        .map(|(c, h)| (c.clone(), Bytes::from(h.to_ascii_lowercase())))
                        .collect(),
                    cache: RefCell::new(HashMap::new()),
                    seed: std::collections::hash_map::RandomState::new(),
                })
            }
        };
        let hmac = cfg.hmac.as_ref().map(|h| HmacConf {
            skew: h.clock_skew.get().as_secs().max(1) as i64,
            required: h
                .required_headers
                .iter()
                .map(|n| match n.to_ascii_lowercase().as_str() {
                    "@request-target" => "(request-target)".to_owned(),
                    other => other.to_owned(),
                })
                .collect(),
            require_digest: h.require_digest,
            cache_size: h.replay_cache_size.max(1),
        });
        let only = if cfg.consumers.is_empty() {
            None
        } else {
            Some(
                cfg.consumers
                    .iter()
                    .map(|n| {
                        store
                            .by_name
                            .get(n)
                            .copied()
                            .ok_or_else(|| Error(format!("no consumer named `{n}`")))
                    })
                    .collect::<Result<HashSet<_>, _>>()?,
            )
        };
        let realm = cfg
            .basic
            .as_ref()
            .map_or_else(|| "weir".to_owned(), |b| b.realm.replace('"', ""));
        let mut challenges = Vec::new();
        if key.is_some() || jwt.is_some() {
            challenges.push(Bytes::from(format!("Bearer realm=\"{realm}\"")));
        }
        if cfg.basic.is_some() {
            challenges.push(Bytes::from(format!(
                "Basic realm=\"{realm}\", charset=\"UTF-8\""
            )));
        }
        if hmac.is_some() {
            challenges.push(Bytes::from(format!(
                "Signature realm=\"{realm}\",headers=\"(request-target) date\""
            )));
        }
        Ok(AuthFactory {
            c: Rc::new(Compiled {
                tables: tables.clone(),
                key,
                basic: cfg.basic.is_some(),
                jwt,
                hmac,
                only,
                hide: cfg.hide_credentials,
                consumer_header: cfg
                    .consumer_header
                    .as_ref()
                    .map(|h| Bytes::from(h.to_ascii_lowercase())),
                attribute_headers: cfg
                    .attribute_headers
                    .iter()
                    .map(|(a, h)| (a.clone(), Bytes::from(h.to_ascii_lowercase())))
                    .collect(),
                format: cfg.error_format,
                challenges,
            }),
        })
    }
}

impl FilterFactory for AuthFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(AuthFilter {
            c: self.c.clone(),
            consumer: None,
            digest: None,
            format: ErrorFormat::Gateway,
        })
    }
}

// === the request ===

/// The filter of one request.
pub struct AuthFilter {
    c: Rc<Compiled>,
    /// The consumer, once authenticated (None for a JWT subject that is no configured consumer).
    consumer: Option<u32>,
    /// HMAC-signed body digest: running hash and the expected value.
    digest: Option<(sha2::Sha256, Digest)>,
    format: ErrorFormat,
}

/// Where the credential was, to hide it.
enum Found {
    Header(&'static str),
    NamedHeader(usize),
    Query(usize),
}

/// Who the request is.
struct Identity {
    consumer: Option<u32>,
    name: Rc<str>,
    key_id: Rc<str>,
    headers: Option<Rc<[(Bytes, Bytes)]>>,
}

/// A refusal.
struct Deny {
    status: u16,
    kind: &'static str,
    message: std::borrow::Cow<'static, str>,
}

fn deny(
    status: u16,
    kind: &'static str,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> Deny {
    Deny {
        status,
        kind,
        message: message.into(),
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn sha256(parts: &[&[u8]]) -> Digest {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The error shape for this request (see `error_format` in the config).
fn pick_format(cfg: AuthErrorFormat, ctx: &RequestCtx, path: &[u8]) -> ErrorFormat {
    match cfg {
        AuthErrorFormat::Gateway => ErrorFormat::Gateway,
        AuthErrorFormat::Openai => ErrorFormat::OpenAi,
        AuthErrorFormat::Anthropic => ErrorFormat::Anthropic,
        AuthErrorFormat::Auto if ctx.error_format != ErrorFormat::Gateway => ctx.error_format,
        AuthErrorFormat::Auto => {
            let has = |needle: &[u8]| path.windows(needle.len()).any(|w| w == needle);
            if path.starts_with(b"/v1/messages") || has(b"/v1/messages") {
                ErrorFormat::Anthropic
            } else if path.starts_with(b"/v1/") || has(b"/v1/") {
                ErrorFormat::OpenAi
            } else {
                ErrorFormat::Gateway
            }
        }
    }
}

impl AuthFilter {
    fn refuse(&self, ctx: &mut RequestCtx, d: Deny) -> LocalResponse {
        let e = ProxyError::new(d.status, d.kind, Side::Downstream, d.message);
        let mut resp = e.to_response(&ctx.request_id, self.format);
        if d.status == 401 {
            for c in &self.c.challenges {
                resp.headers
                    .append(Bytes::from_static(b"www-authenticate"), c.clone());
            }
        }
        ctx.error = Some(e);
        resp
    }

    fn authenticate(&mut self, req: &RequestHead, now: i64) -> Result<(Identity, Found), Deny> {
        let c = self.c.clone();
        if let Some(auth) = req.headers.get("authorization") {
            let (scheme, rest) = match memchr_space(auth) {
                Some(i) => (&auth[..i], auth[i + 1..].trim_ascii()),
                None => (&auth[..], &b""[..]),
            };
            if scheme.eq_ignore_ascii_case(b"basic") && c.basic {
                return self
                    .basic(rest)
                    .map(|i| (i, Found::Header("authorization")));
            }
            if (scheme.eq_ignore_ascii_case(b"signature") || scheme.eq_ignore_ascii_case(b"hmac"))
                && c.hmac.is_some()
            {
                return self
                    .hmac(req, now)
                    .map(|i| (i, Found::Header("authorization")));
            }
            if scheme.eq_ignore_ascii_case(b"bearer") {
                let looks_jwt = rest.iter().filter(|b| **b == b'.').count() == 2;
                let key_takes = c
                    .key
                    .as_ref()
                    .is_some_and(|k| k.headers.iter().any(|h| h == "authorization"));
                if c.jwt.is_some() && (looks_jwt || !key_takes) {
                    return self
                        .jwt(rest, now)
                        .map(|i| (i, Found::Header("authorization")));
                }
                if key_takes {
                    return self
                        .key(rest, now)
                        .map(|i| (i, Found::Header("authorization")));
                }
            }
        }
        if let Some(k) = &c.key {
            for (i, h) in k.headers.iter().enumerate() {
                if h == "authorization" {
                    continue;
                }
                if let Some(v) = req.headers.get(h) {
                    return self
                        .key(v.trim_ascii(), now)
                        .map(|id| (id, Found::NamedHeader(i)));
                }
            }
            if !k.query.is_empty() {
                if let Some(q) = req.query() {
                    for (i, name) in k.query.iter().enumerate() {
                        if let Some(v) = query_value(q, name.as_bytes()) {
                            let v = percent_decode(v);
                            return self.key(&v, now).map(|id| (id, Found::Query(i)));
                        }
                    }
                }
            }
        }
        Err(deny(
            401,
            "missing_credentials",
            "no credentials were given",
        ))
    }

    fn key(&self, secret: &[u8], now: i64) -> Result<Identity, Deny> {
        if secret.is_empty() {
            return Err(deny(
                401,
                "missing_credentials",
                "no credentials were given",
            ));
        }
        let t = &self.c.tables;
        // The lookup is by the digest: timing can tell an attacker about digests, never about a
        // key, and equality of 32 random bytes cannot be approached byte by byte.
        let digest = sha256(&[secret]);
        let Some(k) = t.store.keys.get(&digest) else {
            return Err(deny(401, "invalid_api_key", "invalid API key"));
        };
        if k.revoked.is_some_and(|r| r <= now) {
            return Err(deny(401, "invalid_api_key", "the API key was revoked"));
        }
        if k.expires.is_some_and(|e| e <= now) {
            return Err(deny(401, "expired_api_key", "the API key has expired"));
        }
        Ok(Identity {
            consumer: Some(k.consumer),
            name: t.names[k.consumer as usize].clone(),
            key_id: t.key_ids[k.id as usize].clone(),
            headers: None,
        })
    }

    fn basic(&self, b64: &[u8]) -> Result<Identity, Deny> {
        let bad = || deny(401, "invalid_credentials", "invalid user name or password");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| deny(401, "invalid_credentials", "malformed basic credentials"))?;
        let colon = raw.iter().position(|b| *b == b':').ok_or_else(bad)?;
        let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
        let t = &self.c.tables;
        let user = std::str::from_utf8(user).map_err(|_| bad())?;
        let Some((consumer, id, phc)) = t.store.users.get(user) else {
            return Err(bad());
        };
        let ident = || Identity {
            consumer: Some(*consumer),
            name: t.names[*consumer as usize].clone(),
            key_id: t.key_ids[*id as usize].clone(),
            headers: None,
        };
        let cache_key = sha256(&[user.as_bytes(), b"\0", pass]);
        if let Some((_, _, at)) = t.basic_ok.borrow().get(&cache_key) {
            if at.elapsed() < BASIC_TTL {
                return Ok(ident());
            }
        }
        {
            let fails = t.basic_fails.borrow();
            if let Some((n, since)) = fails.get(id) {
                if *n >= MAX_FAILS && since.elapsed() < FAIL_WINDOW {
                    return Err(deny(
                        401,
                        "too_many_failures",
                        "too many failed attempts for this user; try again in a minute",
                    ));
                }
            }
        }
        if crate::password::verify(phc, pass) {
            let mut ok = t.basic_ok.borrow_mut();
            if ok.len() >= BASIC_CACHE {
                ok.retain(|_, (_, _, at)| at.elapsed() < BASIC_TTL);
                if ok.len() >= BASIC_CACHE {
                    ok.clear();
                }
            }
            ok.insert(cache_key, (*consumer, *id, Instant::now()));
            t.basic_fails.borrow_mut().remove(id);
            Ok(ident())
        } else {
            let mut fails = t.basic_fails.borrow_mut();
            let e = fails.entry(*id).or_insert((0, Instant::now()));
            if e.1.elapsed() >= FAIL_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
            Err(bad())
        }
    }

    fn jwt(&self, token: &[u8], now: i64) -> Result<Identity, Deny> {
        let Some(j) = &self.c.jwt else {
            return Err(deny(401, "invalid_token", "tokens are not accepted here"));
        };
        let token = std::str::from_utf8(token)
            .map_err(|_| deny(401, "invalid_token", "the token is not text"))?;
        let tail = &token.as_bytes()[token.len().saturating_sub(32)..];
        let slot = std::hash::BuildHasher::hash_one(&j.seed, tail);
        if let Some(hit) = j.cache.borrow().get(&slot) {
            if &*hit.token == token && hit.until.is_none_or(|u| now <= u) {
                return Ok(Identity {
                    consumer: hit.consumer,
                    name: hit.name.clone(),
                    key_id: hit.key_id.clone(),
                    headers: Some(hit.headers.clone()),
                });
            }
        }
        let (alg, kid) = jwt::header(token).map_err(|e| deny(401, "invalid_token", e.message()))?;
        let keys = if matches!(alg, Alg::Hs256 | Alg::Hs384 | Alg::Hs512) {
            match &j.hmac {
                Some(k) => Arc::new(k.clone()),
                None => Arc::new(KeySet::default()),
            }
        } else if let Some(src) = &j.source {
            let v = src.version();
            let mut view = j.view.borrow_mut();
            if view.0 != v {
                *view = (v, src.current());
            }
            view.1.clone()
        } else {
            Arc::new(KeySet::default())
        };
        let verified = match jwt::verify(token, &keys, &j.rules, now) {
            Ok(v) => v,
            Err(e) => {
                if e == jwt::JwtError::UnknownKey {
                    if let (Some(src), Some(kid)) = (&j.source, &kid) {
                        if !keys.has_kid(kid) {
                            src.ask_refetch();
                        }
                    }
                }
                return Err(deny(401, "invalid_token", e.message()));
            }
        };
        let subject = match verified.claims.get(&j.consumer_claim) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(deny(
                    401,
                    "invalid_token",
                    format!("the token has no `{}` claim", j.consumer_claim),
                ))
            }
        };
        let t = &self.c.tables;
        let (consumer, name) = match t.store.subjects.get(&subject) {
            Some(i) => (Some(*i), t.names[*i as usize].clone()),
            None if j.allow_unknown => (None, Rc::from(subject.as_str())),
            None => {
                return Err(deny(
                    403,
                    "unknown_consumer",
                    "the token's subject is not a consumer of this gateway",
                ))
            }
        };
        let headers: Rc<[(Bytes, Bytes)]> = j
            .claim_headers
            .iter()
            .filter_map(|(claim, h)| {
                let v = match verified.claims.get(claim)? {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                (!v.bytes().any(|b| b.is_ascii_control())).then(|| (h.clone(), Bytes::from(v)))
            })
            .collect();
        let key_id: Rc<str> = Rc::from(verified.kid.as_deref().unwrap_or("jwt"));
        let entry = CachedToken {
            token: token.into(),
            consumer,
            name: name.clone(),
            key_id: key_id.clone(),
            headers: headers.clone(),
            until: verified.exp.map(|e| e + j.rules.leeway),
        };
        let mut cache = j.cache.borrow_mut();
        if cache.len() >= JWT_CACHE {
            cache.retain(|_, v| v.until.is_none_or(|u| now <= u));
            if cache.len() >= JWT_CACHE {
                cache.clear();
            }
        }
        cache.insert(slot, entry);
        Ok(Identity {
            consumer,
            name,
            key_id,
            headers: Some(headers),
        })
    }

    fn hmac(&mut self, req: &RequestHead, now: i64) -> Result<Identity, Deny> {
        let Some(h) = &self.c.hmac else {
            return Err(deny(
                401,
                "invalid_signature",
                "signatures are not accepted here",
            ));
        };
        let bad = |m: &'static str| deny(401, "invalid_signature", m);
        let auth = req
            .headers
            .get("authorization")
            .ok_or_else(|| bad("no signature"))?;
        let sig = match signature::parse(auth) {
            Some(Ok(s)) => s,
            Some(Err(m)) => return Err(bad(m)),
            None => return Err(bad("not a signature")),
        };
        let t = &self.c.tables;
        let Some(key) = t.store.hmac.get(&sig.key_id) else {
            return Err(bad("unknown signing key"));
        };
        let covers = |n: &str| sig.headers.iter().any(|x| x == n);
        if !covers("(request-target)") {
            return Err(bad("the signature must cover (request-target)"));
        }
        let date_field = if covers("x-date") {
            "x-date"
        } else if covers("date") {
            "date"
        } else {
            return Err(bad("the signature must cover date or x-date"));
        };
        for r in &h.required {
            if !covers(r) {
                return Err(deny(
                    401,
                    "invalid_signature",
                    format!("the signature must cover {r}"),
                ));
            }
        }
        let has_body = !matches!(req.body, weir_http::BodyKind::Empty);
        if h.require_digest && has_body && !covers("digest") {
            return Err(bad("the signature must cover a digest of the body"));
        }
        let date = req
            .headers
            .get(date_field)
            .and_then(|v| signature::parse_http_date(v))
            .ok_or_else(|| bad("the signed date is missing or not an HTTP date"))?;
        if (now - date).abs() > h.skew {
            return Err(bad("the request's date is outside the allowed clock skew"));
        }
        let text = signature::signing_string(&sig.headers, &req.method, &req.target, &req.headers)
            .map_err(|m| deny(401, "invalid_signature", m))?;
        let k = if sig.sha512 { &key.sha512 } else { &key.sha256 };
        // Constant-time comparison inside ring.
        ring::hmac::verify(k, &text, &sig.signature)
            .map_err(|_| bad("the signature does not match"))?;
        if covers("digest") {
            let expected = req
                .headers
                .get("digest")
                .and_then(|v| signature::digest_sha256(v))
                .ok_or_else(|| bad("the signed digest is not SHA-256=<base64>"))?;
            if has_body {
                self.digest = Some((sha2::Sha256::new(), expected));
            } else if !bool::from(subtle::ConstantTimeEq::ct_eq(
                &sha256(&[])[..],
                &expected[..],
            )) {
                return Err(bad("the body does not match the signed digest"));
            }
        }
        let mut id = [0u8; 32];
        let n = sig.signature.len().min(32);
        id[..n].copy_from_slice(&sig.signature[..n]);
        {
            let shard = &REPLAY[usize::from(id[0]) % REPLAY_SHARDS];
            let mut r = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if r.get(&id).is_some_and(|until| *until >= now) {
                return Err(bad("the request was replayed"));
            }
            let cap = h.cache_size.div_ceil(REPLAY_SHARDS).max(1);
            if r.len() >= cap {
                r.retain(|_, until| *until >= now);
                if r.len() >= cap {
                    return Err(deny(
                        503,
                        "replay_cache_full",
                        "too many signed requests in the clock-skew window; try again",
                    ));
                }
            }
            r.insert(id, date + h.skew);
        }
        Ok(Identity {
            consumer: Some(key.consumer),
            name: t.names[key.consumer as usize].clone(),
            key_id: t.key_ids[key.id as usize].clone(),
            headers: None,
        })
    }

    /// Permissions of an authenticated consumer on this request.
    fn permit(&self, ctx: &RequestCtx, who: &Identity) -> Result<(), Deny> {
        let Some(i) = who.consumer else {
            return Ok(());
        };
        let c = &self.c.tables.store.consumers[i as usize];
        if c.disabled {
            return Err(deny(401, "consumer_disabled", "this consumer is disabled"));
        }
        if self.c.only.as_ref().is_some_and(|o| !o.contains(&i)) {
            return Err(deny(
                403,
                "forbidden",
                "this consumer may not use this route",
            ));
        }
        if let Some(route) = &ctx.route {
            if !c.route_allowed(route) {
                return Err(deny(
                    403,
                    "forbidden",
                    "this consumer may not use this route",
                ));
            }
        }
        if !c.ip_allowed(ctx.client_addr.ip()) {
            return Err(deny(
                403,
                "forbidden",
                "this consumer may not call from this address",
            ));
        }
        Ok(())
    }
}

fn memchr_space(v: &[u8]) -> Option<usize> {
    v.iter().position(|b| *b == b' ')
}

/// The raw value of parameter `name` in a query string.
fn query_value<'a>(q: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    q.split(|b| *b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (k == name).then_some(v)
    })
}

fn percent_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' if i + 2 < v.len() => {
                let hex = std::str::from_utf8(&v[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `target` without the parameters named `name`.
fn strip_query(target: &[u8], name: &[u8]) -> Bytes {
    let Some(qi) = target.iter().position(|b| *b == b'?') else {
        return Bytes::copy_from_slice(target);
    };
    let mut out = target[..qi].to_vec();
    let kept: Vec<&[u8]> = target[qi + 1..]
        .split(|b| *b == b'&')
        .filter(|pair| {
            let k = match pair.iter().position(|b| *b == b'=') {
                Some(i) => &pair[..i],
                None => pair,
            };
            k != name && !pair.is_empty()
        })
        .collect();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend_from_slice(&kept.join(&b'&'));
    }
    Bytes::from(out)
}

impl Filter for AuthFilter {
    fn on_request_headers(
        &mut self,
        ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        self.format = pick_format(self.c.format, ctx, req.path());
        let now = now_unix();
        let (who, found) = match self.authenticate(req, now) {
            Ok(x) => x,
            Err(d) => return Ok(Action::Respond(self.refuse(ctx, d))),
        };
        if let Err(d) = self.permit(ctx, &who) {
            return Ok(Action::Respond(self.refuse(ctx, d)));
        }
        let c = self.c.clone();
        if let (Found::Query(i), Some(k)) = (&found, &c.key) {
            // The access log shows the target: never with the key in it.
            ctx.target = strip_query(&ctx.target, k.query[*i].as_bytes());
        }
        if c.hide {
            match found {
                Found::Header(h) => {
                    req.headers.remove(h);
                }
                Found::NamedHeader(i) => {
                    if let Some(k) = &c.key {
                        req.headers.remove(&k.headers[i]);
                    }
                }
                Found::Query(i) => {
                    if let Some(k) = &c.key {
                        req.target = strip_query(&req.target, k.query[i].as_bytes());
                    }
                }
            }
        }
        if let Some(h) = &c.consumer_header {
            let v = match who.consumer {
                Some(i) => c.tables.store.consumers[i as usize].name_value.clone(),
                None => Bytes::copy_from_slice(who.name.as_bytes()),
            };
            req.headers.set(h.clone(), v);
        }
        if !c.attribute_headers.is_empty() {
            let attrs = who
                .consumer
                .map(|i| &c.tables.store.consumers[i as usize].attributes);
            for (attr, h) in &c.attribute_headers {
                match attrs.and_then(|a| a.get(attr)) {
                    Some(v) => req.headers.set(h.clone(), v.clone()),
                    None => {
                        req.headers.remove(std::str::from_utf8(h).unwrap_or(""));
                    }
                }
            }
        }
        if let Some(j) = &c.jwt {
            // A client must not be able to pose as a claim.
            for (_, h) in &j.claim_headers {
                req.headers.remove(std::str::from_utf8(h).unwrap_or(""));
            }
            if let Some(hs) = &who.headers {
                for (h, v) in hs.iter() {
                    req.headers.set(h.clone(), v.clone());
                }
            }
        }
        self.consumer = who.consumer;
        ctx.consumer = Some(who.name);
        ctx.consumer_key = Some(who.key_id);
        Ok(Action::Continue)
    }

    fn on_request_body(
        &mut self,
        ctx: &mut RequestCtx,
        chunk: &[u8],
        end: bool,
    ) -> Result<Action, ProxyError> {
        if let Some((h, _)) = &mut self.digest {
            h.update(chunk);
        }
        if !end {
            return Ok(Action::Continue);
        }
        if let Some((h, expected)) = self.digest.take() {
            let got: Digest = h.finalize().into();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&got[..], &expected[..])) {
                let d = deny(
                    401,
                    "invalid_signature",
                    "the body does not match the signed digest",
                );
                return self.answer(ctx, d);
            }
        }
        if let (Some(i), Some(ai)) = (self.consumer, ctx.ai.as_ref()) {
            let c = &self.c.tables.store.consumers[i as usize];
            if !c.models.is_empty() {
                if let Some(model) = ai.requested_model.clone() {
                    if !c.model_allowed(&model) {
                        // The AI layer has set the client's protocol by now.
                        self.format = pick_format(self.c.format, ctx, b"");
                        let d = deny(
                            403,
                            "model_not_allowed",
                            format!("this consumer may not use the model `{model}`"),
                        );
                        return self.answer(ctx, d);
                    }
                }
            }
        }
        Ok(Action::Continue)
    }

    /// `GET /v1/models` lists only the models this consumer may use.
    fn on_local_response(&mut self, ctx: &RequestCtx, resp: &mut LocalResponse) {
        let (Some(i), Some(ai)) = (self.consumer, ctx.ai.as_ref()) else {
            return;
        };
        let c = &self.c.tables.store.consumers[i as usize];
        if ai.api != "models" || resp.status != 200 || c.models.is_empty() {
            return;
        }
        let Ok(mut list) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
            return;
        };
        if let Some(data) = list.get_mut("data").and_then(|d| d.as_array_mut()) {
            data.retain(|m| m["id"].as_str().is_some_and(|id| c.model_allowed(id)));
        }
        if let Ok(body) = serde_json::to_vec(&list) {
            resp.body = Bytes::from(body);
        }
    }
}

impl AuthFilter {
    /// A refusal at the end of the body: on `ai` routes the body was read whole, so the answer
    /// keeps the connection; on proxy routes the body went upstream as it came, so the request
    /// is failed instead (before any of the upstream's answer reaches the client).
    fn answer(&mut self, ctx: &mut RequestCtx, d: Deny) -> Result<Action, ProxyError> {
        if ctx.ai.is_some() {
            Ok(Action::Respond(self.refuse(ctx, d)))
        } else {
            Err(ProxyError::new(
                d.status,
                d.kind,
                Side::Downstream,
                d.message,
            ))
        }
    }
}

#[cfg(test)]
pub(crate) fn test_strip_query(target: &[u8], name: &[u8]) -> Bytes {
    strip_query(target, name)
}

#[cfg(test)]
pub(crate) fn test_percent_decode(v: &[u8]) -> Vec<u8> {
    percent_decode(v)
}
