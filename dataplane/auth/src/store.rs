//! The consumers of one config generation, indexed for the request path: API keys by the
//! SHA-256 of their secret, basic-auth users by name, JWT subjects, HMAC key ids. Built once per
//! change of `consumers:` on the main thread, shared by every core.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use bytes::Bytes;
use ipnet::IpNet;
use weir_config::Consumer;

use crate::Error;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Hashes a digest by its first 8 bytes: they are already uniformly random (SHA-256 of a
/// secret), and an attacker cannot aim at a bucket without a preimage.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` is hashed as its length, then its bytes.
        if bytes.len() >= 8 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[..8]);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

/// A map keyed by digests.
pub type DigestMap<V> = HashMap<Digest, V, BuildHasherDefault<DigestHasher>>;

/// One API key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Index of its consumer.
    pub consumer: u32,
    /// Index of its id in [`Store::key_ids`].
    pub id: u32,
    /// Unix seconds from which it is refused.
    pub expires: Option<i64>,
    /// Unix seconds from which it is revoked.
    pub revoked: Option<i64>,
}

/// A model pattern: exact, `prefix*`, `*`, `~regex`.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Anything.
    Any,
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches (whole).
    Regex(regex::Regex),
}

impl Pattern {
    /// Compiles a pattern (validated by the config already).
    pub fn new(p: &str) -> Result<Pattern, Error> {
        Ok(if p == "*" {
            Pattern::Any
        } else if let Some(re) = p.strip_prefix('~') {
            Pattern::Regex(
                regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| Error(format!("pattern `{p}`: {e}")))?,
            )
        } else if let Some(pre) = p.strip_suffix('*') {
            Pattern::Prefix(pre.to_owned())
        } else {
            Pattern::Exact(p.to_owned())
        })
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => e == s,
            Pattern::Prefix(p) => s.starts_with(p.as_str()),
            Pattern::Regex(r) => r.is_match(s),
        }
    }
}

/// One consumer, compiled.
#[derive(Debug)]
pub struct ConsumerEntry {
    /// Name.
    pub name: String,
    /// The name as a header value.
    pub name_value: Bytes,
    /// Attributes as header values.
    pub attributes: HashMap<String, Bytes>,
    /// Refused whatever the credential.
    pub disabled: bool,
    /// Allowed routes (empty: all).
    pub routes: Vec<Pattern>,
    /// Allowed models (empty: all).
    pub models: Vec<Pattern>,
    /// Allowed client networks (empty: all).
    pub ips: Vec<IpNet>,
}

impl ConsumerEntry {
    /// Whether the consumer may use route `route`.
    pub fn route_allowed(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|p| p.matches(route))
    }

    /// Whether the consumer may ask for `model`.
    pub fn model_allowed(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| p.matches(model))
    }

    /// Whether the consumer may call from `ip`.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ips.is_empty() || self.ips.iter().any(|n| n.contains(&ip))
    }
}

/// An HMAC key.
pub struct HmacEntry {
    /// Its consumer.
    pub consumer: u32,
    /// Its id, for `consumer_key`.
    pub id: u32,
    /// HMAC-SHA256 key.
    pub sha256: ring::hmac::Key,
    /// HMAC-SHA512 key.
    pub sha512: ring::hmac::Key,
}

impl std::fmt::Debug for HmacEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacEntry")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// Every consumer and credential of a generation.
#[derive(Debug, Default)]
pub struct Store {
    /// Consumers, by index.
    pub consumers: Vec<ConsumerEntry>,
    /// Consumer index by name.
    pub by_name: HashMap<String, u32>,
    /// Credential ids (key ids, user names, HMAC key ids), by index.
    pub key_ids: Vec<String>,
    /// API keys by the SHA-256 of their secret.
    pub keys: DigestMap<KeyEntry>,
    /// Basic-auth users: name → (consumer, credential id, PHC hash).
    pub users: HashMap<String, (u32, u32, String)>,
    /// JWT subjects → consumer.
    pub subjects: HashMap<String, u32>,
    /// HMAC keys by id.
    pub hmac: HashMap<String, HmacEntry>,
}

/// Lowercase hex to a digest.
pub fn parse_hex(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Store {
    /// Compiles the consumers of a (validated) config. HMAC secrets given by `secret_env` or
    /// `secret_file` are read now: a missing one fails the generation.
    pub fn new(consumers: &[Consumer]) -> Result<Store, Error> {
        let mut s = Store::default();
        for c in consumers {
            let idx = s.consumers.len() as u32;
            let compile = |list: &[String]| -> Result<Vec<Pattern>, Error> {
                list.iter().map(|p| Pattern::new(p)).collect()
            };
            let ips = c
                .allow
                .ips
                .iter()
                .map(|t| {
                    let t = t.trim();
                    t.parse::<IpNet>()
                        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                        .map(|n| match n {
                            IpNet::V6(v6) => match v6.network().to_ipv4_mapped() {
                                Some(v4) if v6.prefix_len() >= 96 => {
                                    IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(n)
                                }
                                _ => n,
                            },
                            n => n,
                        })
                        .map_err(|_| Error(format!("consumer `{}`: bad network `{t}`", c.name)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            s.consumers.push(ConsumerEntry {
                name: c.name.clone(),
                name_value: Bytes::from(c.name.clone()),
                attributes: c
                    .attributes
                    .iter()
                    .filter(|(_, v)| !v.bytes().any(|b| b.is_ascii_control()))
                    .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
                    .collect(),
                disabled: c.disabled,
                routes: compile(&c.allow.routes)?,
                models: compile(&c.allow.models)?,
                ips,
            });
            s.by_name.insert(c.name.clone(), idx);
            for k in &c.keys {
                let digest = parse_hex(&k.sha256)
                    .ok_or_else(|| Error(format!("key `{}`: bad sha256", k.id)))?;
                let time =
                    |t: &Option<String>| t.as_deref().and_then(weir_config::auth::parse_rfc3339);
                let id = s.push_id(&k.id);
                s.keys.insert(
                    digest,
                    KeyEntry {
                        consumer: idx,
                        id,
                        expires: time(&k.expires_at),
                        revoked: time(&k.revoked_at),
                    },
                );
            }
            for b in &c.basic_auth {
                let id = s.push_id(&b.username);
                s.users
                    .insert(b.username.clone(), (idx, id, b.password_hash.clone()));
            }
            s.subjects.insert(c.name.clone(), idx);
            for sub in &c.jwt_subjects {
                s.subjects.insert(sub.clone(), idx);
            }
            for h in &c.hmac {
                let secret = match (&h.secret, &h.secret_env, &h.secret_file) {
                    (Some(v), _, _) => v.clone(),
                    (_, Some(var), _) => std::env::var(var).map_err(|_| {
                        Error(format!(
                            "HMAC key `{}`: environment variable `{var}` is not set",
                            h.id
                        ))
                    })?,
                    (_, _, Some(path)) => std::fs::read_to_string(path)
                        .map_err(|e| {
                            Error(format!("HMAC key `{}`: {}: {e}", h.id, path.display()))
                        })?
                        .trim()
                        .to_owned(),
                    _ => return Err(Error(format!("HMAC key `{}` has no secret", h.id))),
                };
                let id = s.push_id(&h.id);
                s.hmac.insert(
                    h.id.clone(),
                    HmacEntry {
                        consumer: idx,
                        id,
                        sha256: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
                        sha512: ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret.as_bytes()),
                    },
                );
            }
        }
        Ok(s)
    }

    fn push_id(&mut self, id: &str) -> u32 {
        self.key_ids.push(id.to_owned());
        (self.key_ids.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = |s: &str| Pattern::new(s).expect("pattern");
        assert!(p("*").matches("x"));
        assert!(p("gpt-4o").matches("gpt-4o") && !p("gpt-4o").matches("gpt-4o-mini"));
        assert!(p("gpt-4o*").matches("gpt-4o-mini"));
        assert!(p("~claude-(haiku|sonnet)").matches("claude-haiku"));
        assert!(!p("~claude-(haiku|sonnet)").matches("claude-haiku-x"));
    }

    #[test]
    fn hex() {
        let h = "00".repeat(31) + "ff";
        assert_eq!(parse_hex(&h).expect("hex")[31], 255);
        assert!(parse_hex("zz").is_none());
    }
}
