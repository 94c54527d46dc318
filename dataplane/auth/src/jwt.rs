//! JSON Web Tokens: JWKS documents, signature verification with *ring*, claim checks.
//!
//! A [`KeySet`] holds the keys of one JWKS document (RSA, EC P-256/P-384, Ed25519) and/or one
//! HMAC secret. [`verify`] checks a compact JWS: the algorithm must be allowed and fit the key's
//! type (an HMAC algorithm is never tried with a public key, so the classic "HS256 signed with
//! the RSA public key" confusion cannot happen), `none` is refused, then the claims are parsed.
//!
//! A [`JwksSource`] keeps a JWKS from a file or a URL fresh on a thread of its own: every
//! `jwks_refresh`, and soon after a token names a `kid` it does not know (at most every 10 s),
//! so a rotated key is picked up without a restart. Cores see a new set through a version number
//! (one relaxed atomic load per verification); they never wait for a fetch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature;
use serde_json::Value;

/// A token refetch on an unknown `kid` is not asked more often than this.
const KID_REFETCH: Duration = Duration::from_secs(10);
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The algorithms a token may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256/384/512.
    Rs256,
    /// RS384.
    Rs384,
    /// RS512.
    Rs512,
    /// RSASSA-PSS with SHA-256/384/512.
    Ps256,
    /// PS384.
    Ps384,
    /// PS512.
    Ps512,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// HMAC SHA-256/384/512.
    Hs256,
    /// HS384.
    Hs384,
    /// HS512.
    Hs512,
}

impl Alg {
    /// From the JOSE name.
    pub fn parse(s: &str) -> Option<Alg> {
        Some(match s {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            "HS256" => Alg::Hs256,
            "HS384" => Alg::Hs384,
            "HS512" => Alg::Hs512,
            _ => return None,
        })
    }

    fn is_hmac(self) -> bool {
        matches!(self, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
    }
}

/// One public key of a JWKS.
#[derive(Debug, Clone)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<Alg>,
    key: PublicKey,
}

/// The keys a token may be signed with.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
    hmac: Option<Vec<u8>>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys":[...]}`); keys of unknown types, and encryption keys,
    /// are skipped.
    pub fn from_jwks(doc: &[u8]) -> Result<KeySet, String> {
        let v: Value = serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
        let list = v["keys"].as_array().ok_or("a JWKS needs a `keys` array")?;
        let mut keys = Vec::new();
        for k in list {
            if k["use"].as_str().is_some_and(|u| u != "sig") {
                continue;
            }
            let field = |name: &str| {
                k[name]
                    .as_str()
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            };
            let key = match (k["kty"].as_str(), k["crv"].as_str()) {
                (Some("RSA"), _) => match (field("n"), field("e")) {
                    (Some(n), Some(e)) => PublicKey::Rsa { n, e },
                    _ => continue,
                },
                (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => match (field("x"), field("y")) {
                    (Some(x), Some(y)) => {
                        let mut point = Vec::with_capacity(1 + x.len() + y.len());
                        point.push(4);
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        if crv == "P-256" {
                            PublicKey::P256(point)
                        } else {
                            PublicKey::P384(point)
                        }
                    }
                    _ => continue,
                },
                (Some("OKP"), Some("Ed25519")) => match field("x") {
                    Some(x) => PublicKey::Ed25519(x),
                    None => continue,
                },
                _ => continue,
            };
            keys.push(Jwk {
                kid: k["kid"].as_str().map(str::to_owned),
                alg: k["alg"].as_str().and_then(Alg::parse),
                key,
            });
        }
        Ok(KeySet { keys, hmac: None })
    }

    /// A set holding only an HMAC secret.
    pub fn hmac(secret: Vec<u8>) -> KeySet {
        KeySet {
            keys: Vec::new(),
            hmac: Some(secret),
        }
    }

    /// Whether a key has this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// How many public keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.hmac.is_none()
    }
}

/// Why a token was refused; the message is safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not a compact JWS, bad base64 or JSON.
    Malformed(&'static str),
    /// The algorithm is not accepted.
    Algorithm,
    /// No key fits (`kid` unknown, or no key of the algorithm's type).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` passed (or missing when required).
    Expired,
    /// `nbf`/`iat` in the future.
    NotYetValid,
    /// Wrong `iss`.
    Issuer,
    /// Wrong `aud`.
    Audience,
}

impl JwtError {
    /// For the client.
    pub fn message(&self) -> &'static str {
        match self {
            JwtError::Malformed(m) => m,
            JwtError::Algorithm => "the token's algorithm is not accepted",
            JwtError::UnknownKey => "no key to verify the token with",
            JwtError::Signature => "the token's signature is invalid",
            JwtError::Expired => "the token has expired",
            JwtError::NotYetValid => "the token is not valid yet",
            JwtError::Issuer => "the token's issuer is not accepted",
            JwtError::Audience => "the token's audience is not accepted",
        }
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accepted algorithms (empty: all).
    pub algorithms: Vec<Alg>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// `aud` must contain one.
    pub audiences: Vec<String>,
    /// Seconds of tolerance on times.
    pub leeway: i64,
    /// `exp` is required.
    pub require_exp: bool,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its claims.
    pub claims: serde_json::Map<String, Value>,
    /// Its `kid`, if any.
    pub kid: Option<String>,
    /// `exp` (Unix seconds), if any.
    pub exp: Option<i64>,
}

/// The header of a token, decoded (to pick the key before verifying).
pub fn header(token: &str) -> Result<(Alg, Option<String>), JwtError> {
    let h = token.split('.').next().unwrap_or("");
    let raw = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| JwtError::Malformed("the token's header is not base64url"))?;
    let v: Value = serde_json::from_slice(&raw)
        .map_err(|_| JwtError::Malformed("the token's header is not JSON"))?;
    let alg = v["alg"]
        .as_str()
        .and_then(Alg::parse)
        .ok_or(JwtError::Algorithm)?;
    Ok((alg, v["kid"].as_str().map(str::to_owned)))
}

/// Verifies `token` with `keys` under `rules` at Unix time `now`.
pub fn verify(token: &str, keys: &KeySet, rules: &Rules, now: i64) -> Result<Verified, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("the token is not a compact JWS"));
    };
    let (alg, kid) = header(token)?;
    if !rules.algorithms.is_empty() && !rules.algorithms.contains(&alg) {
        return Err(JwtError::Algorithm);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Malformed("the token's signature is not base64url"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    check_signature(alg, kid.as_deref(), keys, signed, &sig)?;
    let raw = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| JwtError::Malformed("the token's payload is not base64url"))?;
    let claims = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(JwtError::Malformed(
                "the token's payload is not a JSON object",
            ))
        }
    };
    let num = |name: &str| claims.get(name).and_then(Value::as_f64).map(|f| f as i64);
    let exp = num("exp");
    match exp {
        Some(e) if now > e + rules.leeway => return Err(JwtError::Expired),
        None if rules.require_exp => return Err(JwtError::Expired),
        _ => {}
    }
    if num("nbf").is_some_and(|n| now + rules.leeway < n) {
        return Err(JwtError::NotYetValid);
    }
    if num("iat").is_some_and(|n| now + rules.leeway < n) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iss) = &rules.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
            return Err(JwtError::Issuer);
        }
    }
    if !rules.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => rules.audiences.iter().any(|x| x == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| rules.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Audience);
        }
    }
    Ok(Verified { claims, kid, exp })
}

fn check_signature(
    alg: Alg,
    kid: Option<&str>,
    keys: &KeySet,
    signed: &[u8],
    sig: &[u8],
) -> Result<(), JwtError> {
    if alg.is_hmac() {
        let secret = keys.hmac.as_ref().ok_or(JwtError::UnknownKey)?;
        let a = match alg {
            Alg::Hs256 => ring::hmac::HMAC_SHA256,
            Alg::Hs384 => ring::hmac::HMAC_SHA384,
            _ => ring::hmac::HMAC_SHA512,
        };
        // Constant-time comparison inside ring.
        return ring::hmac::verify(&ring::hmac::Key::new(a, secret), signed, sig)
            .map_err(|_| JwtError::Signature);
    }
    let mut tried = false;
    for k in &keys.keys {
        if kid.is_some() && k.kid.as_deref() != kid {
            continue;
        }
        if k.alg.is_some_and(|a| a != alg) {
            continue;
        }
        let ok = match (&k.key, alg) {
            (PublicKey::Rsa { n, e }, Alg::Rs256 | Alg::Rs384 | Alg::Rs512)
            | (PublicKey::Rsa { n, e }, Alg::Ps256 | Alg::Ps384 | Alg::Ps512) => {
                let params: &signature::RsaParameters = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                tried = true;
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, signed, sig)
                    .is_ok()
            }
            (PublicKey::P256(point), Alg::Es256) => {
                tried = true;
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed, sig)
                    .is_ok()
            }
            (PublicKey::P384(point), Alg::Es384) => {
                tried = true;
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(signed, sig)
                    .is_ok()
            }
            (PublicKey::Ed25519(x), Alg::EdDsa) => {
                tried = true;
                signature::UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(signed, sig)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
    }
    Err(if tried {
        JwtError::Signature
    } else {
        JwtError::UnknownKey
    })
}

// === JwksSource ===

/// Where a JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A file, re-read when its modification time changes.
    File(PathBuf),
    /// An `http(s)` URL, and the TLS options of an `https` one.
    Url(String, weir_tls::ClientOptions),
}

impl Origin {
    /// The JWKS source of a `jwt` config, when it names one (not for a shared secret).
    pub fn of(j: &weir_config::auth::JwtAuth) -> Option<Origin> {
        match (&j.jwks_file, &j.jwks_url) {
            (Some(p), _) => Some(Origin::File(p.clone())),
            (_, Some(u)) => {
                let t = j.jwks_tls.clone().unwrap_or_default();
                Some(Origin::Url(
                    u.clone(),
                    weir_tls::ClientOptions {
                        sni: t.sni,
                        ca_file: t.ca_file,
                        client_cert: t.client_cert,
                        client_key: t.client_key,
                        insecure_skip_verify: t.insecure_skip_verify,
                    },
                ))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Signal {
    stop: AtomicBool,
    wake: Mutex<bool>,
    cond: Condvar,
}

/// A JWKS kept fresh off the request path; shared by every core.
#[derive(Debug)]
pub struct JwksSource {
    origin: Origin,
    /// The TLS client of an `https` URL, built once (a bad CA file fails the config).
    tls: Option<weir_tls::Connector>,
    refresh: Duration,
    set: RwLock<Arc<KeySet>>,
    version: AtomicU64,
    /// When a refetch was last asked for by a core (for unknown `kid`s).
    asked: Mutex<Option<Instant>>,
    signal: Arc<Signal>,
    fetches: AtomicU64,
}

impl JwksSource {
    /// Loads the JWKS now (a file must read; a URL that fails is retried by the refresher, and
    /// tokens are refused meanwhile) and starts the refresher thread.
    pub fn start(origin: Origin, refresh: Duration) -> Result<Arc<JwksSource>, String> {
        let tls = match &origin {
            Origin::Url(u, opts) if u.starts_with("https://") => {
                Some(weir_tls::Connector::new(opts).map_err(|e| format!("jwt.jwks_tls: {e}"))?)
            }
            _ => None,
        };
        let (initial, mtime) = match &origin {
            Origin::File(p) => {
                let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let set = KeySet::from_jwks(&text).map_err(|e| format!("{}: {e}", p.display()))?;
                (set, modified(p))
            }
            Origin::Url(u, _) => {
                match crate::fetch::get(u, FETCH_TIMEOUT, tls.as_ref())
                    .and_then(|b| KeySet::from_jwks(&b))
                {
                    Ok(set) => (set, None),
                    Err(e) => {
                        tracing::warn!(url = %u, error = %e, "JWKS not fetched; tokens are refused until it is");
                        (KeySet::default(), None)
                    }
                }
            }
        };
        let src = Arc::new(JwksSource {
            origin,
            tls,
            refresh,
            set: RwLock::new(Arc::new(initial)),
            version: AtomicU64::new(1),
            asked: Mutex::new(None),
            signal: Arc::new(Signal::default()),
            fetches: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&src);
        let signal = src.signal.clone();
        std::thread::Builder::new()
            .name("weir-jwks".into())
            .spawn(move || refresher(weak, signal, mtime))
            .map_err(|e| format!("cannot start the JWKS refresher: {e}"))?;
        Ok(src)
    }

    /// The version of the current set: changes when a new set is installed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current set.
    pub fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times the source was loaded (for tests).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Asks the refresher for a fetch soon (a token named an unknown `kid`); at most every 10 s.
    /// Never blocks the caller.
    pub fn ask_refetch(&self) {
        let Ok(mut asked) = self.asked.try_lock() else {
            return;
        };
        if asked.is_some_and(|t| t.elapsed() < KID_REFETCH) {
            return;
        }
        *asked = Some(Instant::now());
        drop(asked);
        if let Ok(mut w) = self.signal.wake.try_lock() {
            *w = true;
            self.signal.cond.notify_one();
        }
    }

    fn install(&self, set: KeySet) {
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for JwksSource {
    fn drop(&mut self) {
        self.signal.stop.store(true, Ordering::SeqCst);
        let _w = self.signal.wake.lock();
        self.signal.cond.notify_all();
    }
}

fn modified(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The refresher: a file is looked at every second (and re-read when it changed); a URL is
/// fetched every `refresh`, when a core asks, and after a failure with backoff (1 s doubling).
fn refresher(src: Weak<JwksSource>, signal: Arc<Signal>, mut mtime: Option<SystemTime>) {
    let mut backoff: Option<Duration> = None;
    loop {
        let Some(s) = src.upgrade() else { return };
        let interval = match &s.origin {
            Origin::File(_) => Duration::from_secs(1),
            Origin::Url(..) => backoff.unwrap_or(s.refresh),
        };
        drop(s);
        {
            let mut woken = signal.wake.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken && !signal.stop.load(Ordering::SeqCst) {
                woken = signal
                    .cond
                    .wait_timeout(woken, interval)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            *woken = false;
        }
        if signal.stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(s) = src.upgrade() else { return };
        match &s.origin {
            Origin::File(p) => {
                let now = modified(p);
                if now == mtime {
                    continue;
                }
                match std::fs::read(p)
                    .map_err(|e| e.to_string())
                    .and_then(|b| KeySet::from_jwks(&b))
                {
                    Ok(set) => {
                        mtime = now;
                        tracing::info!(file = %p.display(), keys = set.len(), "JWKS re-read");
                        s.fetches.fetch_add(1, Ordering::Relaxed);
                        s.install(set);
                    }
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "JWKS unreadable; the previous keys stay")
                    }
                }
            }
            Origin::Url(u, _) => {
                match crate::fetch::get(u, FETCH_TIMEOUT, s.tls.as_ref())
                    .and_then(|b| KeySet::from_jwks(&b))
                {
                    Ok(set) => {
                        backoff = None;
                        s.fetches.fetch_add(1, Ordering::Relaxed);
                        s.install(set);
                    }
                    Err(e) => {
                        let next = backoff
                            .map_or(Duration::from_secs(1), |b| b * 2)
                            .min(s.refresh);
                        tracing::warn!(url = %u, error = %e, retry_in = ?next, "JWKS fetch failed; the previous keys stay");
                        backoff = Some(next);
                    }
                }
            }
        }
    }
}

/// JWKS sources by origin, shared across generations while their config is unchanged.
pub(crate) type Sources = HashMap<(Origin, Duration), Arc<JwksSource>>;

#[cfg(test)]
pub(crate) mod testkit {
    //! Signing for tests: tokens made with *ring* keys.
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::KeyPair;

    /// A P-256 key and its JWK.
    pub struct EcKey {
        pair: signature::EcdsaKeyPair,
        /// The public JWK.
        pub jwk: Value,
    }

    impl EcKey {
        /// A fresh key with id `kid`.
        pub fn new(kid: &str) -> EcKey {
            let rng = SystemRandom::new();
            let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .expect("generate");
            let pair = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
                &rng,
            )
            .expect("parse");
            let pt = pair.public_key().as_ref();
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&pt[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&pt[33..65]),
            });
            EcKey { pair, jwk }
        }

        /// A token with these claims.
        pub fn sign(&self, claims: &Value) -> String {
            let head = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.jwk["kid"]});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(head.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign");
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    /// An HS256 token.
    pub fn hs256(secret: &[u8], claims: &Value) -> String {
        let head = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            algorithms: Vec::new(),
            issuer: Some("https://issuer.test".into()),
            audiences: vec!["weir".into()],
            leeway: 0,
            require_exp: true,
        }
    }

    #[test]
    fn es256_and_claims() {
        let k = EcKey::new("k1");
        let set = KeySet::from_jwks(json!({"keys": [k.jwk]}).to_string().as_bytes()).expect("jwks");
        let good = json!({"sub": "alice", "iss": "https://issuer.test", "aud": ["x", "weir"], "exp": 2000});
        let v = verify(&k.sign(&good), &set, &rules(), 1000).expect("valid");
        assert_eq!(v.claims["sub"], "alice");
        assert_eq!(v.kid.as_deref(), Some("k1"));
        assert_eq!(
            verify(&k.sign(&good), &set, &rules(), 2001).err(),
            Some(JwtError::Expired)
        );
        let mut bad = good.clone();
        bad["iss"] = json!("evil");
        assert_eq!(
            verify(&k.sign(&bad), &set, &rules(), 1000).err(),
            Some(JwtError::Issuer)
        );
        let mut bad = good.clone();
        bad["aud"] = json!("other");
        assert_eq!(
            verify(&k.sign(&bad), &set, &rules(), 1000).err(),
            Some(JwtError::Audience)
        );
        let mut bad = good.clone();
        bad["nbf"] = json!(1500);
        assert_eq!(
            verify(&k.sign(&bad), &set, &rules(), 1000).err(),
            Some(JwtError::NotYetValid)
        );
        // Another key with the same kid: signature invalid.
        let other = EcKey::new("k1");
        assert_eq!(
            verify(&other.sign(&good), &set, &rules(), 1000).err(),
            Some(JwtError::Signature)
        );
        // Unknown kid.
        let stranger = EcKey::new("k2");
        assert_eq!(
            verify(&stranger.sign(&good), &set, &rules(), 1000).err(),
            Some(JwtError::UnknownKey)
        );
        // A tampered payload.
        let t = k.sign(&good);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "root", "exp": 2000}).to_string());
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &set, &rules(), 1000).err(),
            Some(JwtError::Signature)
        );
    }

    #[test]
    fn hs256_and_algorithm_confusion() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let set = KeySet::hmac(secret.clone());
        let claims =
            json!({"sub": "bob", "iss": "https://issuer.test", "aud": "weir", "exp": 2000});
        assert!(verify(&hs256(&secret, &claims), &set, &rules(), 1000).is_ok());
        assert_eq!(
            verify(
                &hs256(b"wrong-secret-wrong-secret-wrong!", &claims),
                &set,
                &rules(),
                1000
            )
            .err(),
            Some(JwtError::Signature)
        );
        // HS256 against a set of public keys only: no key, never a MAC with a public key.
        let k = EcKey::new("k1");
        let pub_set =
            KeySet::from_jwks(json!({"keys": [k.jwk]}).to_string().as_bytes()).expect("jwks");
        assert_eq!(
            verify(&hs256(&secret, &claims), &pub_set, &rules(), 1000).err(),
            Some(JwtError::UnknownKey)
        );
        // `alg: none` is not an algorithm.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(
            verify(&none, &set, &rules(), 1000).err(),
            Some(JwtError::Algorithm)
        );
        // Restricted algorithms.
        let mut r = rules();
        r.algorithms = vec![Alg::Es256];
        assert_eq!(
            verify(&hs256(&secret, &claims), &set, &r, 1000).err(),
            Some(JwtError::Algorithm)
        );
    }

    #[test]
    fn file_source_rotates() {
        let dir = std::env::temp_dir().join(format!("weir-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jwks.json");
        let k1 = EcKey::new("k1");
        std::fs::write(&path, json!({"keys": [k1.jwk]}).to_string()).expect("write");
        let src =
            JwksSource::start(Origin::File(path.clone()), Duration::from_secs(60)).expect("start");
        assert!(src.current().has_kid("k1"));
        let v = src.version();
        // mtime granularity: make sure the change is visible.
        std::thread::sleep(Duration::from_millis(20));
        let k2 = EcKey::new("k2");
        std::fs::write(&path, json!({"keys": [k1.jwk, k2.jwk]}).to_string()).expect("write");
        let f = std::fs::File::options()
            .append(true)
            .open(&path)
            .expect("open");
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .expect("mtime");
        let deadline = Instant::now() + Duration::from_secs(10);
        while src.version() == v && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(src.current().has_kid("k2"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
