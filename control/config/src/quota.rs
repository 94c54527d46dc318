//! Quotas, rate limits and budgets: the `quota` filter.
//!
//! ```yaml
//! filters:
//!   - type: quota
//!     limits:
//!       - { name: per-ip, key: [ip], requests: 20, per: second }
//!       - { name: team-tokens, key: [consumer], tokens: 100000, per: minute }
//!       - { name: team-budget, key: [consumer], budget: 25.0, per: month, scope: cluster }
//!     prices: { my-model: { input: 1.0, output: 2.0 } }   # per million tokens, over the shipped table
//!     redis: { url: "redis://127.0.0.1:6379/0" }          # for `scope: cluster` limits
//! ```
//!
//! A limit counts one unit (requests, tokens of a kind, or money) per window of time, separately
//! for each value of its `key`. Limits with the same `name` in several filters are one limit
//! (one set of counters): their definitions must then be equal.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Problem;
use crate::schema::{Config, FilterConfig};
use crate::units::Dur;

/// The `quota` filter: limits on requests, tokens and spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaFilter {
    /// The limits; a request must fit in every one that applies to it.
    #[serde(default)]
    pub limits: Vec<Limit>,
    /// Prices per model, in money per million tokens, over (and before) the shipped table. A name
    /// ending in `*` is a prefix; `"*"` prices every model the table does not know.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, Price>,
    /// The Redis server that `scope: cluster` limits are kept in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
    /// Output tokens reserved for a request that sets no `max_tokens` (nor
    /// `max_completion_tokens`, `max_output_tokens`).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// How the prompt's tokens are estimated before the request is sent.
    #[serde(default)]
    pub prompt_estimate: PromptEstimate,
    /// Send `x-ratelimit-*` fields on answers (they are always on the 429).
    #[serde(default = "yes")]
    pub headers: bool,
}

fn default_max_tokens() -> u64 {
    1024
}

fn yes() -> bool {
    true
}

/// One limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Names the limit in errors, metrics, the admin API and Redis keys. Limits with the same
    /// name in several filters share their counters.
    pub name: String,
    /// What is counted separately: any of `consumer`, `key` (the consumer's credential), `route`,
    /// `model` (as requested), `ip` (the client's address), `header:NAME`. Empty: one counter
    /// for every request the limit sees.
    #[serde(default)]
    pub key: Vec<String>,
    /// Requests per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Tokens (input + output) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Input tokens (cached ones included) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (reasoning included) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Money per window, priced with the filter's price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// The window: `second`, `minute`, `hour`, `day`, `month` (calendar, UTC), or a duration
    /// (`10s`, `5m`) counted from the Unix epoch.
    pub per: Window,
    /// `local` (this process) or `cluster` (every process sharing the filter's Redis).
    #[serde(default)]
    pub scope: Scope,
    /// What a `cluster` limit does while Redis cannot be reached: `open` (let requests through,
    /// each process holding them to the whole limit on its own) or `closed` (refuse with 503).
    #[serde(default)]
    pub on_redis_error: FailMode,
    /// Units a core takes from the process's pool at a time (default: the limit / (8 × cores),
    /// smaller as the pool empties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
    /// Units a process takes from Redis at a time (default: the limit / 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_lease: Option<u64>,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Requests.
    Requests(u64),
    /// Input plus output tokens.
    Tokens(u64),
    /// Input tokens.
    InputTokens(u64),
    /// Output tokens.
    OutputTokens(u64),
    /// Money.
    Budget(f64),
}

impl Limit {
    /// What the limit counts, when exactly one amount is set.
    pub fn amount(&self) -> Option<Amount> {
        let set = [
            self.requests.map(Amount::Requests),
            self.tokens.map(Amount::Tokens),
            self.input_tokens.map(Amount::InputTokens),
            self.output_tokens.map(Amount::OutputTokens),
            self.budget.map(Amount::Budget),
        ];
        let mut it = set.into_iter().flatten();
        match (it.next(), it.next()) {
            (Some(a), None) => Some(a),
            _ => None,
        }
    }
}

/// A limit's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// A calendar second.
    Second,
    /// A calendar minute.
    Minute,
    /// A calendar hour.
    Hour,
    /// A calendar day (UTC).
    Day,
    /// A calendar month (UTC).
    Month,
    /// Fixed windows of this many whole seconds from the Unix epoch.
    Every(u64),
}

impl Window {
    /// The length of a fixed window in seconds (None for months).
    pub fn seconds(self) -> Option<u64> {
        match self {
            Window::Second => Some(1),
            Window::Minute => Some(60),
            Window::Hour => Some(3600),
            Window::Day => Some(86_400),
            Window::Month => None,
            Window::Every(s) => Some(s),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Second => f.write_str("second"),
            Window::Minute => f.write_str("minute"),
            Window::Hour => f.write_str("hour"),
            Window::Day => f.write_str("day"),
            Window::Month => f.write_str("month"),
            Window::Every(s) => write!(f, "{}", Dur(Duration::from_secs(*s))),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "second" => Window::Second,
            "minute" => Window::Minute,
            "hour" => Window::Hour,
            "day" => Window::Day,
            "month" => Window::Month,
            other => {
                let d = crate::units::parse_duration(other).map_err(|e| {
                    de::Error::custom(format!(
                        "{e}; a window is second, minute, hour, day, month or a duration"
                    ))
                })?;
                if d.subsec_nanos() != 0 || d.as_secs() == 0 {
                    return Err(de::Error::custom(format!(
                        "window `{other}` must be a whole number of seconds, at least 1s"
                    )));
                }
                Window::Every(d.as_secs())
            }
        })
    }
}

/// Where a limit's counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// In this process (per-core leases from a process-wide pool).
    #[default]
    Local,
    /// In Redis, shared by every process that uses it (each process leasing from it).
    Cluster,
}

/// What a cluster limit does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let requests through (each process holds them to the whole limit on its own).
    #[default]
    Open,
    /// Refuse them (503 `quota_unavailable`).
    Closed,
}

/// How prompt tokens are estimated when a request is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptEstimate {
    /// A quarter of the JSON body's bytes (rounded up): free, and above the real count for
    /// most English prompts because of the JSON around the text.
    #[default]
    Bytes,
    /// The `o200k_base` tokenizer over the messages' text: within a few percent, but costs
    /// microseconds per kilobyte.
    Tokenizer,
}

/// A model's prices, in money per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens not served from the provider's cache.
    pub input: f64,
    /// Output tokens (reasoning included).
    pub output: f64,
    /// Input tokens served from the provider's prompt cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
}

/// The Redis server of `scope: cluster` limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/socket`.
    pub url: String,
    /// Longest wait for a connection or an answer (off the request path).
    #[serde(default = "default_redis_timeout")]
    pub timeout: Dur,
}

fn default_redis_timeout() -> Dur {
    Dur::ms(500)
}

/// The dimensions a limit's `key` may name.
pub const KEY_PARTS: [&str; 5] = ["consumer", "key", "route", "model", "ip"];

fn header_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Every `quota` filter of the config with its route, as `(field path, route, filter)`.
pub fn quota_filters(config: &Config) -> Vec<(String, &crate::schema::Route, &QuotaFilter)> {
    let mut out = Vec::new();
    for (li, l) in config.listeners.iter().enumerate() {
        for (ri, r) in l.routes.iter().enumerate() {
            for (fi, f) in r.filters.iter().enumerate() {
                if let FilterConfig::Quota(q) = f {
                    out.push((format!("listeners[{li}].routes[{ri}].filters[{fi}]"), r, q));
                }
            }
        }
    }
    out
}

/// Problems with `quota` filters.
pub(crate) fn validate(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut fail = |field: String, message: String| {
        out.push(Problem {
            line: None,
            field,
            message,
        })
    };
    // name → (field, definition, redis) of its first appearance
    let mut seen: HashMap<&str, (String, &Limit, Option<&Redis>)> = HashMap::new();
    for (f, route, q) in quota_filters(config) {
        if q.limits.is_empty() {
            fail(
                format!("{f}.limits"),
                "a quota filter needs at least one limit".into(),
            );
        }
        if q.default_max_tokens == 0 {
            fail(
                format!("{f}.default_max_tokens"),
                "must be at least 1".into(),
            );
        }
        if let Some(r) = &q.redis {
            if !(r.url.starts_with("redis://") || r.url.starts_with("redis+unix://")) {
                fail(
                    format!("{f}.redis.url"),
                    format!(
                        "`{}` is not a redis:// or redis+unix:// URL (TLS to Redis is not supported)",
                        r.url
                    ),
                );
            }
            if r.timeout.get().is_zero() {
                fail(format!("{f}.redis.timeout"), "must be more than 0".into());
            }
        }
        for (model, p) in &q.prices {
            let pf = format!("{f}.prices.{model}");
            let cached = p.cached_input.unwrap_or(0.0);
            if [p.input, p.output, cached]
                .iter()
                .any(|x| !x.is_finite() || *x < 0.0 || *x > 1e6)
            {
                fail(
                    pf,
                    "prices are numbers from 0 to 1000000 (money per million tokens)".into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, l) in q.limits.iter().enumerate() {
            let lf = format!("{f}.limits[{i}]");
            let name_ok = !l.name.is_empty()
                && l.name.len() <= 64
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                fail(
                    format!("{lf}.name"),
                    "a name of 1 to 64 letters, digits, `-`, `_` or `.`".into(),
                );
            }
            if !names.insert(l.name.as_str()) {
                fail(
                    format!("{lf}.name"),
                    format!("limit `{}` appears twice in this filter", l.name),
                );
            }
            match l.amount() {
                None => fail(
                    lf.clone(),
                    "set exactly one of requests, tokens, input_tokens, output_tokens, budget"
                        .into(),
                ),
                Some(Amount::Budget(b)) => {
                    if !b.is_finite() || b <= 0.0 || b > 1e9 {
                        fail(
                            format!("{lf}.budget"),
                            "a budget is a positive amount of money (at most 1e9)".into(),
                        );
                    }
                }
                Some(
                    Amount::Requests(n)
                    | Amount::Tokens(n)
                    | Amount::InputTokens(n)
                    | Amount::OutputTokens(n),
                ) => {
                    if n == 0 || n > (1 << 53) {
                        fail(lf.clone(), "a limit is from 1 to 2^53".into());
                    }
                }
            }
            let counts_tokens = !matches!(l.amount(), Some(Amount::Requests(_)) | None);
            let mut parts = std::collections::HashSet::new();
            for (k, part) in l.key.iter().enumerate() {
                let ok = match part.strip_prefix("header:") {
                    Some(h) => header_ok(h),
                    None => KEY_PARTS.contains(&part.as_str()),
                };
                if !ok {
                    fail(
                        format!("{lf}.key[{k}]"),
                        format!(
                            "`{part}` is not one of consumer, key, route, model, ip, header:NAME"
                        ),
                    );
                }
                if !parts.insert(part.to_ascii_lowercase()) {
                    fail(format!("{lf}.key[{k}]"), format!("`{part}` is named twice"));
                }
                if part == "model" && route.ai.is_none() {
                    fail(
                        format!("{lf}.key[{k}]"),
                        "`model` is known only on routes with an `ai` action".into(),
                    );
                }
            }
            if counts_tokens && route.ai.is_none() {
                fail(
                    lf.clone(),
                    "token and budget limits apply only on routes with an `ai` action".into(),
                );
            }
            if l.lease == Some(0) {
                fail(format!("{lf}.lease"), "must be at least 1".into());
            }
            if l.cluster_lease == Some(0) {
                fail(format!("{lf}.cluster_lease"), "must be at least 1".into());
            }
            if l.scope == Scope::Cluster && q.redis.is_none() {
                fail(
                    format!("{lf}.scope"),
                    "a cluster limit needs the filter's `redis`".into(),
                );
            }
            let redis = (l.scope == Scope::Cluster)
                .then_some(q.redis.as_ref())
                .flatten();
            match seen.get(l.name.as_str()) {
                Some((first, def, r)) => {
                    if *def != l || *r != redis {
                        fail(
                            format!("{lf}.name"),
                            format!(
                                "limit `{}` is also defined at {first} differently (limits of one \
                                 name share their counters, so their definitions must be equal)",
                                l.name
                            ),
                        );
                    }
                }
                None => {
                    seen.insert(&l.name, (lf.clone(), l, redis));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        match crate::parse(yaml, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(crate::Error::Invalid { problems, .. }) => {
                problems.iter().map(|p| p.to_string_in("t.yaml")).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    fn config(filters: &str, ai: bool) -> String {
        let action = if ai {
            "ai: { models: [{ model: \"*\", targets: [{ provider: m }] }] }"
        } else {
            "direct_response: { status: 200 }"
        };
        format!(
            "providers: [{{ name: m, type: mock }}]\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: r\n        {action}\n        filters:\n{filters}\n"
        )
    }

    #[test]
    fn a_full_filter_parses() {
        let yaml = config(
            "          - type: quota\n            limits:\n              - { name: per-ip, key: [ip, \"header:x-team\"], requests: 20, per: second }\n              - { name: tok, key: [consumer, model], tokens: 1000, per: 10s, lease: 50 }\n              - { name: money, key: [consumer], budget: 2.5, per: month, scope: cluster, on_redis_error: closed }\n            prices: { m1: { input: 1, output: 2, cached_input: 0.5 } }\n            redis: { url: \"redis://127.0.0.1:6379/0\" }\n            default_max_tokens: 256\n            prompt_estimate: tokenizer",
            true,
        );
        let c = crate::parse(&yaml, "t.yaml").expect("valid");
        let (_, _, q) = quota_filters(&c).pop().expect("one filter");
        assert_eq!(q.limits.len(), 3);
        assert_eq!(q.limits[1].per, Window::Every(10));
        assert_eq!(q.limits[2].per, Window::Month);
        assert_eq!(q.limits[2].amount(), Some(Amount::Budget(2.5)));
        assert_eq!(q.limits[2].on_redis_error, FailMode::Closed);
        assert_eq!(q.prompt_estimate, PromptEstimate::Tokenizer);
        assert!(q.headers);
        // Round trip: the control daemon stores configs as YAML.
        let text = serde_yaml_ng::to_string(q).expect("serialize");
        let back: QuotaFilter = serde_yaml_ng::from_str(&text).expect("parse back");
        assert_eq!(&back, q);
    }

    #[test]
    fn mistakes_are_named() {
        let p = problems(&config(
            "          - type: quota\n            limits:\n              - { name: a, requests: 1, tokens: 2, per: minute }\n              - { name: \"b c\", key: [ip, ip, user], requests: 1, per: minute }\n              - { name: d, tokens: 5, per: minute }\n              - { name: e, requests: 5, per: minute, scope: cluster }\n              - { name: f, key: [model], requests: 5, per: minute }",
            false,
        ));
        let all = p.join("\n");
        assert!(all.contains("limits[0]`: set exactly one"), "{all}");
        assert!(all.contains("limits[1].name"), "{all}");
        assert!(all.contains("`ip` is named twice"), "{all}");
        assert!(all.contains("`user` is not one of"), "{all}");
        assert!(
            all.contains("limits[2]`: token and budget limits apply only"),
            "{all}"
        );
        assert!(
            all.contains("limits[3].scope`: a cluster limit needs"),
            "{all}"
        );
        assert!(
            all.contains("limits[4].key[0]`: `model` is known only"),
            "{all}"
        );

        let p = problems(&config(
            "          - type: quota\n            limits: [{ name: a, requests: 1, per: 1.5s }]",
            false,
        ));
        assert!(p.join("\n").contains("whole number of seconds"), "{p:?}");
        let p = problems(&config(
            "          - type: quota\n            limits: [{ name: a, requests: 1, per: minute }]\n            redis: { url: \"rediss://x:1\" }\n            prices: { m: { input: -1, output: 1 } }",
            false,
        ));
        let all = p.join("\n");
        assert!(all.contains("redis.url"), "{all}");
        assert!(all.contains("prices.m"), "{all}");
    }

    #[test]
    fn one_name_one_definition() {
        let yaml = config(
            "          - type: quota\n            limits: [{ name: a, requests: 1, per: minute }]\n          - type: quota\n            limits: [{ name: a, requests: 2, per: minute }]",
            false,
        );
        let p = problems(&yaml);
        assert!(
            p.join("\n")
                .contains("filters[1].limits[0].name`: limit `a` is also defined"),
            "{p:?}"
        );
        let same = config(
            "          - type: quota\n            limits: [{ name: a, requests: 1, per: minute }]\n          - type: quota\n            limits: [{ name: a, requests: 1, per: minute }]",
            false,
        );
        assert!(problems(&same).is_empty());
    }
}
