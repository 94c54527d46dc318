//! Consumers and their API keys (virtual keys) through the admin API.
//!
//! Keys are part of the config the daemon owns: creating, rotating, expiring or revoking one is a
//! change like any other, so it becomes a generation (persisted before the answer) that every data
//! plane applies on all its cores at once. The secret of a new key is made here (256 random bits
//! from the kernel), returned once in the answer, and never stored: the config keeps its SHA-256.
//!
//! Keys made here are marked `managed`. They are API state: editing the config file, applying a
//! whole config or rolling back to an older generation keeps the current managed keys of every
//! consumer that still exists ([`carry_managed_keys`]), so a revoked key never comes back and a
//! new one never vanishes because of an unrelated edit.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;
use weir_config::{Config, Consumer, ConsumerKey};

use super::{
    body_format, body_text, change_response, checked, not_allowed, object_response, parse_object,
    to_json, wants_yaml, ChangeOpts,
};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::state::Shared;
use crate::store::{now_rfc3339, rfc3339, Source};

/// Routes `/v1/consumers/...` (`rest` is what follows `consumers`).
pub(super) fn route(shared: &Shared, req: &Request, rest: &[&str]) -> Result<Response, ApiError> {
    let m = req.method.as_str();
    match rest {
        [] => match m {
            "GET" => Ok(list(shared)),
            _ => not_allowed("GET"),
        },
        [name] => match m {
            "GET" => get(shared, req, name),
            "PUT" => put(shared, req, name),
            "DELETE" => delete(shared, req, name),
            _ => not_allowed("GET, PUT, DELETE"),
        },
        [name, "keys"] => match m {
            "GET" => list_keys(shared, name),
            "POST" => create_key(shared, req, name),
            _ => not_allowed("GET, POST"),
        },
        [name, "keys", id] => match m {
            "GET" => get_key(shared, name, id),
            "DELETE" => revoke_key(shared, req, name, id),
            _ => not_allowed("GET, DELETE"),
        },
        [name, "keys", id, "rotate"] => match m {
            "POST" => rotate_key(shared, req, name, id),
            _ => not_allowed("POST"),
        },
        [name, "keys", id, "expire"] => match m {
            "POST" => expire_key(shared, req, name, id),
            _ => not_allowed("POST"),
        },
        _ => Err(ApiError::not_found(format!("no endpoint {}", req.path))),
    }
}

/// Keeps the current managed keys (`cur`) of every consumer of `new` that `cur` also has: the
/// managed keys `new` brings (from a file or an old generation) are replaced by today's.
pub fn carry_managed_keys(mut new: Config, cur: &Config) -> Config {
    for c in &mut new.consumers {
        let Some(old) = cur.consumers.iter().find(|o| o.name == c.name) else {
            continue;
        };
        c.keys.retain(|k| !k.managed);
        for k in old.keys.iter().filter(|k| k.managed) {
            if !c.keys.iter().any(|x| x.id == k.id) {
                c.keys.push(k.clone());
            }
        }
    }
    new
}

// === consumers ===

fn list(shared: &Shared) -> Response {
    let g = shared.current();
    let now = now_secs();
    let items: Vec<Value> = g
        .config
        .consumers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "disabled": c.disabled,
                "keys": c.keys.iter().filter(|k| key_state(k, now) == "active").count(),
                "basic_auth": c.basic_auth.iter().map(|b| b.username.clone()).collect::<Vec<_>>(),
                "jwt_subjects": c.jwt_subjects,
                "hmac": c.hmac.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
                "allow": c.allow,
            })
        })
        .collect();
    Response::json(
        200,
        &json!({ "generation": g.meta.generation, "consumers": items }),
    )
}

fn find<'a>(config: &'a Config, name: &str) -> Result<&'a Consumer, ApiError> {
    config
        .consumers
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no consumer named `{name}`")))
}

fn find_mut<'a>(config: &'a mut Config, name: &str) -> Result<&'a mut Consumer, ApiError> {
    config
        .consumers
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no consumer named `{name}`")))
}

fn get(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let g = shared.current();
    let c = find(&g.config, name)?;
    object_response(g.meta.generation, to_json(c)?, wants_yaml(req))
}

/// Creates or replaces a consumer. A body without `keys` keeps the consumer's current keys.
fn put(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let consumer: Consumer = parse_object(body_text(req)?, body_format(req), name)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        match c.consumers.iter_mut().find(|c| c.name == name) {
            Some(slot) => {
                let keys = std::mem::take(&mut slot.keys);
                *slot = consumer;
                if slot.keys.is_empty() {
                    slot.keys = keys;
                }
            }
            None => c.consumers.push(consumer),
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn delete(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        let before = c.consumers.len();
        c.consumers.retain(|c| c.name != name);
        if c.consumers.len() == before {
            return Err(ApiError::not_found(format!("no consumer named `{name}`")));
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

// === keys ===

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn key_state(k: &ConsumerKey, now: i64) -> &'static str {
    let at = |t: &Option<String>| t.as_deref().and_then(weir_config::auth::parse_rfc3339);
    if at(&k.revoked_at).is_some_and(|t| t <= now) {
        "revoked"
    } else if at(&k.expires_at).is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// A key as the API shows it: never the secret, never the digest.
fn key_json(k: &ConsumerKey, now: i64) -> Value {
    json!({
        "id": k.id,
        "state": key_state(k, now),
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "managed": k.managed,
    })
}

fn list_keys(shared: &Shared, name: &str) -> Result<Response, ApiError> {
    let g = shared.current();
    let c = find(&g.config, name)?;
    let now = now_secs();
    let keys: Vec<Value> = c.keys.iter().map(|k| key_json(k, now)).collect();
    Ok(Response::json(
        200,
        &json!({ "generation": g.meta.generation, "consumer": name, "keys": keys }),
    ))
}

fn get_key(shared: &Shared, name: &str, id: &str) -> Result<Response, ApiError> {
    let g = shared.current();
    let c = find(&g.config, name)?;
    let k = c
        .keys
        .iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::not_found(format!("consumer `{name}` has no key `{id}`")))?;
    Ok(Response::json(
        200,
        &json!({ "generation": g.meta.generation, "consumer": name, "key": key_json(k, now_secs()) }),
    ))
}

/// The body of `POST .../keys` (all optional; `?id=`, `?expires_at=`, `?expires_in=` work too).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    id: Option<String>,
    expires_at: Option<String>,
    expires_in: Option<String>,
}

fn new_key_opts(req: &Request) -> Result<NewKey, ApiError> {
    let mut k: NewKey = if req.body.iter().all(u8::is_ascii_whitespace) {
        NewKey::default()
    } else {
        let text = body_text(req)?;
        serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("bad key options: {e}")))?
    };
    if let Some(v) = req.query("id") {
        k.id = Some(v.to_owned());
    }
    if let Some(v) = req.query("expires_at") {
        k.expires_at = Some(v.to_owned());
    }
    if let Some(v) = req.query("expires_in") {
        k.expires_in = Some(v.to_owned());
    }
    Ok(k)
}

/// `expires_at` (RFC 3339) or `expires_in` (a duration from now), normalized to RFC 3339 UTC.
fn expiry(at: Option<&str>, within: Option<&str>) -> Result<Option<String>, ApiError> {
    match (at, within) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give expires_at or expires_in, not both",
        )),
        (Some(a), None) => {
            let t = weir_config::auth::parse_rfc3339(a)
                .ok_or_else(|| ApiError::bad_request(format!("`{a}` is not an RFC 3339 time")))?;
            Ok(Some(rfc3339(t.max(0) as u64)))
        }
        (None, Some(d)) => {
            let d = weir_config::units::parse_duration(d).map_err(ApiError::bad_request)?;
            Ok(Some(rfc3339(now_secs() as u64 + d.as_secs())))
        }
        (None, None) => Ok(None),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(b)
}

/// A new secret (`wk-` + 43 base64url characters: 256 bits) and its digest.
fn new_secret() -> Result<(String, String), ApiError> {
    use base64::Engine;
    let raw = random_bytes::<32>()?;
    let secret = format!(
        "wk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((secret, hex))
}

fn new_id() -> Result<String, ApiError> {
    let r = random_bytes::<4>()?;
    Ok(format!(
        "key-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "key id `{id}`: 1 to 128 of A-Z a-z 0-9 - _ . : @"
        )))
    }
}

/// The answer of a change that made a key: the generation, and the key with its secret (shown
/// this once).
fn with_secret(
    shared: &Shared,
    commit: crate::state::Commit,
    opts: &ChangeOpts,
    name: &str,
    key: &ConsumerKey,
    secret: &str,
) -> Response {
    let mut r = change_response(shared, commit, opts);
    if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
        let mut k = key_json(key, now_secs());
        k["secret"] = json!(secret);
        v["consumer"] = json!(name);
        v["key"] = k;
        r = Response::json(r.status, &v);
    }
    r
}

fn create_key(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let o = new_key_opts(req)?;
    let id = match o.id {
        Some(id) => id,
        None => new_id()?,
    };
    check_id(&id)?;
    let expires_at = expiry(o.expires_at.as_deref(), o.expires_in.as_deref())?;
    let (secret, sha256) = new_secret()?;
    let key = ConsumerKey {
        id,
        sha256,
        created_at: Some(now_rfc3339()),
        expires_at,
        revoked_at: None,
        managed: true,
    };
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        if c.consumers
            .iter()
            .flat_map(|c| &c.keys)
            .any(|k| k.id == key.id)
        {
            return Err(ApiError::new(
                409,
                "conflict",
                format!("a key with id `{}` exists", key.id),
            ));
        }
        find_mut(&mut c, name)?.keys.push(key.clone());
        checked(c)
    })?;
    Ok(with_secret(shared, commit, &opts, name, &key, &secret))
}

/// Marks key `id` of `name` with `f`; 404 when there is no such key.
fn change_key(
    shared: &Shared,
    req: &Request,
    name: &str,
    id: &str,
    f: impl FnOnce(&mut ConsumerKey) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        let k = find_mut(&mut c, name)?
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| ApiError::not_found(format!("consumer `{name}` has no key `{id}`")))?;
        f(k)?;
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

/// Revokes a key now. It stays listed (state `revoked`); the data planes refuse it as soon as
/// they ACK the generation.
fn revoke_key(shared: &Shared, req: &Request, name: &str, id: &str) -> Result<Response, ApiError> {
    change_key(shared, req, name, id, |k| {
        if k.revoked_at.is_none() {
            k.revoked_at = Some(now_rfc3339());
        }
        Ok(())
    })
}

/// Sets (or with neither option, clears) a key's expiry: `?at=RFC3339` or `?in=DURATION`.
fn expire_key(shared: &Shared, req: &Request, name: &str, id: &str) -> Result<Response, ApiError> {
    let at = expiry(req.query("at"), req.query("in"))?;
    let at = match at {
        Some(a) => Some(a),
        None if req.query("never").is_some() => None,
        None => Some(now_rfc3339()),
    };
    change_key(shared, req, name, id, |k| {
        k.expires_at = at;
        Ok(())
    })
}

/// A new key for the consumer; the old one expires after `?grace=DURATION` (default: now). The
/// new key's id is `?new_id=` or generated.
fn rotate_key(shared: &Shared, req: &Request, name: &str, id: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let grace = match req.query("grace") {
        Some(g) => weir_config::units::parse_duration(g).map_err(ApiError::bad_request)?,
        None => std::time::Duration::ZERO,
    };
    let new_id = match req.query("new_id") {
        Some(n) => n.to_owned(),
        None => new_id()?,
    };
    check_id(&new_id)?;
    let (secret, sha256) = new_secret()?;
    let old_until = rfc3339(now_secs() as u64 + grace.as_secs());
    let mut made: Option<ConsumerKey> = None;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        if c.consumers
            .iter()
            .flat_map(|c| &c.keys)
            .any(|k| k.id == new_id)
        {
            return Err(ApiError::new(
                409,
                "conflict",
                format!("a key with id `{new_id}` exists"),
            ));
        }
        let consumer = find_mut(&mut c, name)?;
        let old = consumer
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| ApiError::not_found(format!("consumer `{name}` has no key `{id}`")))?;
        if grace.is_zero() {
            old.revoked_at.get_or_insert_with(now_rfc3339);
        } else {
            old.expires_at = Some(old_until.clone());
        }
        let key = ConsumerKey {
            id: new_id.clone(),
            sha256: sha256.clone(),
            created_at: Some(now_rfc3339()),
            expires_at: None,
            revoked_at: None,
            managed: true,
        };
        consumer.keys.push(key.clone());
        made = Some(key);
        checked(c)
    })?;
    let key = made.ok_or_else(|| ApiError::internal("the new key was not made"))?;
    Ok(with_secret(shared, commit, &opts, name, &key, &secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::store::{Generation, Meta, Store};

    const BASE: &str = "\
consumers:
  - name: team-a
    allow: { models: [\"gpt-*\"] }
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: llm
        direct_response: { status: 200 }
        filters: [{ type: auth }]
";

    fn shared() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(dir.path(), 5).unwrap();
        let g = Generation {
            meta: Meta {
                generation: 1,
                created_at: now_rfc3339(),
                source: Source::File,
                comment: None,
            },
            file_hash: None,
            config: Arc::new(weir_config::parse(BASE, "base").unwrap()),
        };
        store.write(&g).unwrap();
        (dir, Shared::new(store, g, None))
    }

    fn call(s: &Shared, method: &str, target: &str, body: &str) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let r = Request {
            method: method.into(),
            path: path.into(),
            query: crate::http::parse_query(query),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            http10: false,
        };
        let resp = crate::api::handle(s, &r);
        (resp.status, serde_json::from_slice(&resp.body).unwrap())
    }

    #[test]
    fn keys_are_made_listed_rotated_expired_and_revoked() {
        let (_d, s) = shared();
        let (st, v) = call(&s, "POST", "/v1/consumers/team-a/keys", r#"{"id":"ci"}"#);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["generation"], 2);
        let secret = v["key"]["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("wk-") && secret.len() == 46, "{secret}");
        // Stored as its digest, never in the clear.
        let cfg = s.current().config.clone();
        let k = &cfg.consumers[0].keys[0];
        assert_eq!(k.sha256, {
            let d = sha2::Sha256::digest(secret.as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        assert!(k.managed);
        let text = serde_json::to_string(&*cfg).unwrap();
        assert!(!text.contains(&secret));
        // The listing has no secret and no digest.
        let (_, v) = call(&s, "GET", "/v1/consumers/team-a/keys", "");
        assert_eq!(v["keys"][0]["id"], "ci");
        assert_eq!(v["keys"][0]["state"], "active");
        assert!(!v.to_string().contains(&k.sha256));
        // Same id again: 409.
        let (st, _) = call(&s, "POST", "/v1/consumers/team-a/keys?id=ci", "");
        assert_eq!(st, 409);
        // Rotate with a grace period: a new key, the old one expires later.
        let (st, v) = call(
            &s,
            "POST",
            "/v1/consumers/team-a/keys/ci/rotate?grace=1h&new_id=ci2",
            "",
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["key"]["id"], "ci2");
        assert!(v["key"]["secret"].as_str().unwrap() != secret);
        let (_, v) = call(&s, "GET", "/v1/consumers/team-a/keys/ci", "");
        assert_eq!(v["key"]["state"], "active");
        assert!(v["key"]["expires_at"].is_string());
        // Expire now, then revoke.
        let (st, _) = call(&s, "POST", "/v1/consumers/team-a/keys/ci/expire", "");
        assert_eq!(st, 200);
        let (_, v) = call(&s, "GET", "/v1/consumers/team-a/keys/ci", "");
        assert_eq!(v["key"]["state"], "expired");
        let (st, _) = call(&s, "DELETE", "/v1/consumers/team-a/keys/ci2", "");
        assert_eq!(st, 200);
        let (_, v) = call(&s, "GET", "/v1/consumers/team-a/keys/ci2", "");
        assert_eq!(v["key"]["state"], "revoked");
        // Unknown consumer, unknown key.
        assert_eq!(call(&s, "POST", "/v1/consumers/nobody/keys", "").0, 404);
        assert_eq!(
            call(&s, "DELETE", "/v1/consumers/team-a/keys/nope", "").0,
            404
        );
    }

    #[test]
    fn consumers_are_patched_and_keys_survive_applies_and_rollbacks() {
        let (_d, s) = shared();
        let (st, v) = call(
            &s,
            "PUT",
            "/v1/consumers/team-b",
            r#"{"allow":{"models":["claude-*"]}}"#,
        );
        assert_eq!(st, 200, "{v}");
        let (_, v) = call(&s, "POST", "/v1/consumers/team-b/keys", "");
        let id = v["key"]["id"].as_str().unwrap().to_owned();
        let (_, v) = call(&s, "GET", "/v1/consumers", "");
        assert_eq!(v["consumers"][1]["name"], "team-b");
        assert_eq!(v["consumers"][1]["keys"], 1);
        // A PUT without keys keeps them.
        call(&s, "PUT", "/v1/consumers/team-b", r#"{"disabled":true}"#);
        let cfg = s.current().config.clone();
        assert_eq!(cfg.consumers[1].keys.len(), 1);
        assert!(cfg.consumers[1].disabled);
        // Revoke, then roll back to a generation where the key was live: it stays revoked.
        call(&s, "DELETE", &format!("/v1/consumers/team-b/keys/{id}"), "");
        let n = s.current().meta.generation;
        let (st, _) = call(&s, "POST", &format!("/v1/rollback/{}", n - 1), "");
        assert_eq!(st, 200);
        let cfg = s.current().config.clone();
        assert!(cfg.consumers[1].keys[0].revoked_at.is_some());
        // Applying a whole config without the key keeps it (it is API state).
        let whole = format!("{BASE}  - name: team-b\n").replace(
            "    allow: { models: [\"gpt-*\"] }\nlisteners:",
            "    allow: { models: [\"gpt-*\"] }\n  - name: team-b\nlisteners:",
        );
        let whole = whole.trim_end_matches("  - name: team-b\n").to_string();
        let body = serde_json::to_string(&weir_config::parse(&whole, "w").unwrap()).unwrap();
        let (st, v) = call(&s, "PUT", "/v1/config", &body);
        assert_eq!(st, 200, "{v}");
        let cfg = s.current().config.clone();
        assert_eq!(cfg.consumers[1].keys.len(), 1);
        // Deleting a consumer.
        assert_eq!(call(&s, "DELETE", "/v1/consumers/team-a", "").0, 200);
        assert_eq!(call(&s, "GET", "/v1/consumers/team-a", "").0, 404);
    }
}
