//! Scripted behaviour of the provider endpoints: rules posted to `POST /mock/script` make
//! matching requests fail, hang, reset, slow down or drop their usage. Process-wide (every worker
//! sees the same rules) behind one mutex: only provider requests look here.
//!
//! A rule is a JSON object:
//!
//! ```json
//! {"match": {"key": "sk-1", "model": "gpt-4o", "path_contains": "/chat/"},
//!  "times": 2, "status": 429, "retry_after": 3}
//! ```
//!
//! Every `match` field is optional (absent matches anything). The first live matching rule wins;
//! with `times` it expires after that many matches. Unknown fields are refused, so a typo fails
//! the test that made it instead of silently matching everything.

use serde_json::{json, Map, Value};
use std::sync::{Mutex, PoisonError};

/// What a matching rule does to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Answer this status with the provider's error body.
    pub status: Option<u16>,
    /// Seconds for a `Retry-After` header (with `status`).
    pub retry_after: Option<u64>,
    /// Stream: send this many records, then close the connection without ending the body.
    /// Whole answers: close the connection before answering.
    pub reset_after_events: Option<u64>,
    /// Stream: send this many records, then the provider's in-stream error (of kind `status`,
    /// default 500), and end the stream. Whole answers get `status` (if any) as usual.
    pub error_after_events: Option<u64>,
    /// Read the request and never answer.
    pub hang: bool,
    pub ttft_ms: Option<u64>,
    pub token_interval_ms: Option<u64>,
    /// `false`: leave usage out of the answer.
    pub usage: bool,
}

impl Default for Effect {
    fn default() -> Self {
        Effect {
            status: None,
            retry_after: None,
            reset_after_events: None,
            error_after_events: None,
            hang: false,
            ttft_ms: None,
            token_interval_ms: None,
            usage: true,
        }
    }
}

/// One rule: what it matches, how many more times, and its effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub key: Option<String>,
    pub model: Option<String>,
    pub path_contains: Option<String>,
    /// Matches left; `None` never expires.
    pub times: Option<u64>,
    pub effect: Effect,
}

impl Rule {
    fn matches(&self, key: Option<&str>, model: Option<&str>, target: &str) -> bool {
        let field = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        field(&self.key, key)
            && field(&self.model, model)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| target.contains(p))
    }

    /// Parses one rule object.
    pub fn parse(v: &Value) -> Result<Rule, String> {
        let obj = v.as_object().ok_or("a rule must be a JSON object")?;
        const FIELDS: [&str; 11] = [
            "match",
            "times",
            "status",
            "retry_after",
            "reset_after_events",
            "error_after_events",
            "hang",
            "ttft_ms",
            "token_interval_ms",
            "usage",
            "comment",
        ];
        known(obj, &FIELDS, "rule")?;
        let empty = Map::new();
        let m = match obj.get("match") {
            None => &empty,
            Some(m) => m.as_object().ok_or("match must be an object")?,
        };
        known(m, &["key", "model", "path_contains"], "match")?;
        let string = |map: &Map<String, Value>, name: &str| -> Result<Option<String>, String> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{name} must be a string")),
            }
        };
        let number = |name: &str| -> Result<Option<u64>, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} must be a non-negative integer")),
            }
        };
        let boolean = |name: &str, default: bool| -> Result<bool, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| format!("{name} must be a boolean")),
            }
        };
        let status = match number("status")? {
            None => None,
            Some(s @ 400..=599) => Some(s as u16),
            Some(_) => return Err("status must be 400..=599".into()),
        };
        let times = number("times")?;
        if times == Some(0) {
            return Err("times must be at least 1".into());
        }
        Ok(Rule {
            key: string(m, "key")?,
            model: string(m, "model")?,
            path_contains: string(m, "path_contains")?,
            times,
            effect: Effect {
                status,
                retry_after: number("retry_after")?,
                reset_after_events: number("reset_after_events")?,
                error_after_events: number("error_after_events")?,
                hang: boolean("hang", false)?,
                ttft_ms: number("ttft_ms")?,
                token_interval_ms: number("token_interval_ms")?,
                usage: boolean("usage", true)?,
            },
        })
    }

    /// The rule as JSON (for `GET /mock/script`), `times` being the matches left.
    pub fn to_json(&self) -> Value {
        let e = &self.effect;
        json!({
            "match": {"key": self.key, "model": self.model, "path_contains": self.path_contains},
            "times": self.times, "status": e.status, "retry_after": e.retry_after,
            "reset_after_events": e.reset_after_events,
            "error_after_events": e.error_after_events, "hang": e.hang, "ttft_ms": e.ttft_ms,
            "token_interval_ms": e.token_interval_ms, "usage": e.usage,
        })
    }
}

fn known(obj: &Map<String, Value>, fields: &[&str], what: &str) -> Result<(), String> {
    match obj.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown {what} field {k:?} (known: {})",
            fields.join(", ")
        )),
        None => Ok(()),
    }
}

/// An ordered list of rules.
#[derive(Debug, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Parses a JSON array of rules (or one rule) and appends them all, or none on an error.
    /// Returns how many rules are live now.
    pub fn add(&mut self, body: &[u8]) -> Result<usize, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let new = match &v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, r)| Rule::parse(r).map_err(|e| format!("rule {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            other => vec![Rule::parse(other)?],
        };
        self.0.extend(new);
        Ok(self.0.len())
    }

    /// The effect of the first live rule matching this request, counting the match.
    pub fn take(&mut self, key: Option<&str>, model: Option<&str>, target: &str) -> Option<Effect> {
        let i = self.0.iter().position(|r| r.matches(key, model, target))?;
        let effect = self.0[i].effect.clone();
        match &mut self.0[i].times {
            Some(1) => {
                self.0.remove(i);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(effect)
    }

    /// The live rules as a JSON array.
    pub fn to_json(&self) -> String {
        Value::Array(self.0.iter().map(Rule::to_json).collect()).to_string()
    }
}

static RULES: Mutex<Rules> = Mutex::new(Rules(Vec::new()));

fn rules() -> std::sync::MutexGuard<'static, Rules> {
    RULES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends rules to the process-wide list (see [`Rules::add`]).
pub fn add(body: &[u8]) -> Result<usize, String> {
    rules().add(body)
}

/// Removes every rule.
pub fn clear() {
    rules().0.clear();
}

/// The live rules as a JSON array.
pub fn to_json() -> String {
    rules().to_json()
}

/// The effect of the first live matching rule of the process-wide list (see [`Rules::take`]).
pub fn take(key: Option<&str>, model: Option<&str>, target: &str) -> Option<Effect> {
    rules().take(key, model, target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    #[test]
    fn parse_and_match() {
        let r = Rule::parse(&json!({"match": {"key": "k", "path_contains": "/chat"},
                                    "status": 429, "retry_after": 2, "times": 1}))
        .unwrap();
        assert!(r.matches(Some("k"), None, "/v1/chat/completions"));
        assert!(!r.matches(Some("other"), None, "/v1/chat/completions"));
        assert!(!r.matches(None, None, "/v1/chat/completions"));
        assert!(!r.matches(Some("k"), None, "/v1/embeddings"));
        assert_eq!(r.effect.status, Some(429));
        assert!(r.effect.usage);
        let any = Rule::parse(&json!({"hang": true})).unwrap();
        assert!(any.matches(None, None, "/x"));
        assert!(Rule::parse(&json!({"model": "m"}))
            .unwrap_err()
            .contains("unknown rule field"));
        assert!(Rule::parse(&json!({"match": {"keys": "k"}})).is_err());
        assert!(Rule::parse(&json!({"status": 200})).is_err());
        assert!(Rule::parse(&json!({"times": 0})).is_err());
        assert!(Rule::parse(&json!({"usage": "no"})).is_err());
        assert!(Rule::parse(&json!([1])).is_err());
        let back = Rule::parse(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn times_expire_and_first_match_wins() {
        let mut rules = Rules::default();
        let n = rules
            .add(
                br#"[{"match": {"model": "m"}, "times": 2, "status": 500},
                     {"status": 503}]"#,
            )
            .unwrap();
        assert_eq!(n, 2);
        let mut status = || rules.take(None, Some("m"), "/p").map(|e| e.status);
        assert_eq!(status(), Some(Some(500)));
        assert_eq!(status(), Some(Some(500)));
        assert_eq!(status(), Some(Some(503)));
        assert_eq!(rules.take(None, Some("x"), "/p").unwrap().status, Some(503));
        let err = rules
            .add(br#"[{"status": 503}, {"bogus": 1}]"#)
            .unwrap_err();
        assert!(err.starts_with("rule 1"), "{err}");
        let live: Value = serde_json::from_str(&rules.to_json()).unwrap();
        assert_eq!(live.as_array().unwrap().len(), 1);
        assert!(Rules::default().take(None, None, "/p").is_none());
    }
}
