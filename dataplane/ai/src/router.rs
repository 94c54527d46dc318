//! Model routing: a requested model (after aliases) selects a model route — exact, prefix, `*`,
//! or a regex with captures, optionally also by request headers — which becomes a chain of
//! targets: one picked from the weighted split (sticky per client when asked), then the rest of
//! the split by weight, then the fallback list.

use regex::Regex;
use weir_config::{AiRoute, ValueMatch};
use weir_http::Headers;

use crate::Error;

/// One step of a chain: a provider (index into the route's providers) and the model to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Index of the provider.
    pub provider: usize,
    /// The model name sent to the provider.
    pub model: String,
}

enum Pattern {
    Exact(String),
    Prefix(String),
    Any,
    Regex(Regex),
}

enum HeaderCond {
    Exact(String),
    Regex(Regex),
    Present(bool),
}

struct CompiledTarget {
    provider: usize,
    model: Option<String>,
    weight: u32,
}

struct CompiledRoute {
    pattern: Pattern,
    headers: Vec<(String, HeaderCond)>,
    targets: Vec<CompiledTarget>,
    fallback: Vec<CompiledTarget>,
    sticky: bool,
}

/// The compiled model routes of one `ai` route.
pub struct ModelRouter {
    routes: Vec<CompiledRoute>,
    aliases: Vec<(String, String)>,
}

impl ModelRouter {
    /// Compiles `cfg`; `provider_index` maps a provider name to its index.
    pub fn new(
        cfg: &AiRoute,
        provider_index: impl Fn(&str) -> Option<usize>,
    ) -> Result<ModelRouter, Error> {
        let compile_targets = |list: &[weir_config::Target]| {
            list.iter()
                .map(|t| {
                    Ok(CompiledTarget {
                        provider: provider_index(&t.provider).ok_or_else(|| {
                            Error::Config(format!("no provider named `{}`", t.provider))
                        })?,
                        model: t.model.clone(),
                        weight: t.weight,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()
        };
        let mut routes = Vec::with_capacity(cfg.models.len());
        for m in &cfg.models {
            let pattern = if m.model == "*" {
                Pattern::Any
            } else if let Some(re) = m.model.strip_prefix('~') {
                Pattern::Regex(
                    Regex::new(re).map_err(|e| Error::Config(format!("model `{re}`: {e}")))?,
                )
            } else if let Some(p) = m.model.strip_suffix('*') {
                Pattern::Prefix(p.to_string())
            } else {
                Pattern::Exact(m.model.clone())
            };
            let headers = m
                .headers
                .iter()
                .map(compile_header)
                .collect::<Result<Vec<_>, _>>()?;
            routes.push(CompiledRoute {
                pattern,
                headers,
                targets: compile_targets(&m.targets)?,
                fallback: compile_targets(&m.fallback)?,
                sticky: m.sticky,
            });
        }
        Ok(ModelRouter {
            routes,
            aliases: cfg
                .aliases
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
        })
    }

    /// The model an alias stands for (or the name itself).
    pub fn resolve_alias<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases
            .iter()
            .find(|(a, _)| a == model)
            .map_or(model, |(_, m)| m.as_str())
    }

    /// The chain for `model` (already de-aliased), or None when no model route takes it.
    /// `sticky_key` identifies the client for sticky splits.
    pub fn plan(
        &self,
        model: &str,
        headers: &Headers,
        sticky_key: Option<&[u8]>,
    ) -> Option<Vec<Hop>> {
        for r in &self.routes {
            let captures = match &r.pattern {
                Pattern::Exact(m) if m == model => None,
                Pattern::Prefix(p) if model.starts_with(p.as_str()) => None,
                Pattern::Any => None,
                Pattern::Regex(re) => match re.captures(model) {
                    Some(c) => Some(c),
                    None => continue,
                },
                _ => continue,
            };
            if !r
                .headers
                .iter()
                .all(|(name, cond)| header_ok(headers, name, cond))
            {
                continue;
            }
            let name = |t: &CompiledTarget| match (&t.model, &captures) {
                (None, _) => model.to_string(),
                (Some(m), Some(c)) => {
                    let mut out = String::new();
                    c.expand(m, &mut out);
                    out
                }
                (Some(m), None) => m.clone(),
            };
            let first = pick_weighted(&r.targets, r.sticky.then_some(sticky_key).flatten());
            let mut rest: Vec<usize> = (0..r.targets.len()).filter(|i| *i != first).collect();
            rest.sort_by_key(|i| std::cmp::Reverse(r.targets[*i].weight));
            let mut chain = Vec::with_capacity(r.targets.len() + r.fallback.len());
            for i in std::iter::once(first).chain(rest) {
                let t = &r.targets[i];
                chain.push(Hop {
                    provider: t.provider,
                    model: name(t),
                });
            }
            for t in &r.fallback {
                chain.push(Hop {
                    provider: t.provider,
                    model: name(t),
                });
            }
            // The same provider and model twice in a chain adds nothing but latency.
            let mut seen = Vec::with_capacity(chain.len());
            chain.retain(|h| {
                let dup = seen.contains(h);
                if !dup {
                    seen.push(h.clone());
                }
                !dup
            });
            return Some(chain);
        }
        None
    }

    /// The model names `GET /v1/models` lists: exact routes and aliases, in config order, plus
    /// `provider_models(i)` for the providers of wildcard routes.
    pub fn listed_models(&self, provider_models: impl Fn(usize) -> Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |m: String| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        for r in &self.routes {
            match &r.pattern {
                Pattern::Exact(m) => push(m.clone()),
                pattern => {
                    for t in r.targets.iter().chain(&r.fallback) {
                        for m in provider_models(t.provider) {
                            let takes = match pattern {
                                Pattern::Prefix(p) => m.starts_with(p.as_str()),
                                Pattern::Regex(re) => re.is_match(&m),
                                _ => true,
                            };
                            if takes {
                                push(m);
                            }
                        }
                    }
                }
            }
        }
        for (alias, _) in &self.aliases {
            push(alias.clone());
        }
        out
    }
}

fn compile_header(v: &ValueMatch) -> Result<(String, HeaderCond), Error> {
    let cond = if let Some(e) = &v.exact {
        HeaderCond::Exact(e.clone())
    } else if let Some(re) = &v.regex {
        HeaderCond::Regex(
            Regex::new(re).map_err(|e| Error::Config(format!("header regex `{re}`: {e}")))?,
        )
    } else {
        HeaderCond::Present(v.present.unwrap_or(true))
    };
    Ok((v.name.to_ascii_lowercase(), cond))
}

fn header_ok(headers: &Headers, name: &str, cond: &HeaderCond) -> bool {
    let value = headers.get(name);
    match cond {
        HeaderCond::Present(want) => value.is_some() == *want,
        HeaderCond::Exact(e) => value.is_some_and(|v| v == e.as_bytes()),
        HeaderCond::Regex(re) => {
            value.is_some_and(|v| std::str::from_utf8(v).is_ok_and(|s| re.is_match(s)))
        }
    }
}

fn pick_weighted(targets: &[CompiledTarget], sticky: Option<&[u8]>) -> usize {
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if targets.len() <= 1 || total == 0 {
        return 0;
    }
    let mut point = match sticky {
        Some(k) => fnv1a(k) % total,
        None => fastrand::u64(0..total),
    };
    for (i, t) in targets.iter().enumerate() {
        if point < u64::from(t.weight) {
            return i;
        }
        point -= u64::from(t.weight);
    }
    0
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(yaml: &str) -> ModelRouter {
        let cfg: AiRoute = serde_yaml_ng::from_str(yaml).expect("yaml");
        ModelRouter::new(&cfg, |n| ["a", "b", "c"].iter().position(|p| *p == n)).expect("router")
    }

    fn head(extra: &str) -> Headers {
        let text = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
        let mut buf = bytes::BytesMut::from(text.as_bytes());
        weir_http::parse_request(&mut buf, &Default::default())
            .expect("parse")
            .expect("complete")
            .headers
    }

    #[test]
    fn exact_prefix_regex_any() {
        let r = router(
            r#"
models:
  - model: gpt-4o
    targets: [{provider: a}]
    fallback: [{provider: b, model: claude-x}]
  - model: "gpt-*"
    targets: [{provider: b}]
  - model: "~^claude-(.+)$"
    targets: [{provider: c, model: "anthropic.claude-$1"}]
  - model: "*"
    targets: [{provider: a, model: default}]
aliases: {fast: gpt-4o}
"#,
        );
        let h = head("");
        let plan = |m: &str| r.plan(r.resolve_alias(m), &h, None).expect("route");
        assert_eq!(
            plan("fast"),
            vec![
                Hop {
                    provider: 0,
                    model: "gpt-4o".into()
                },
                Hop {
                    provider: 1,
                    model: "claude-x".into()
                }
            ]
        );
        assert_eq!(
            plan("gpt-4.1")[0],
            Hop {
                provider: 1,
                model: "gpt-4.1".into()
            }
        );
        assert_eq!(
            plan("claude-sonnet")[0].model,
            "anthropic.claude-sonnet".to_string()
        );
        assert_eq!(
            plan("llama")[0],
            Hop {
                provider: 0,
                model: "default".into()
            }
        );
        let listed = r.listed_models(|p| match p {
            1 => vec!["gpt-4.1".into(), "o3".into()],
            _ => vec![],
        });
        assert_eq!(listed, ["gpt-4o", "gpt-4.1", "fast"]);
    }

    #[test]
    fn header_routing_and_splits() {
        let r = router(
            r#"
models:
  - model: m
    headers: [{name: x-tier, exact: premium}]
    targets: [{provider: c}]
  - model: m
    targets: [{provider: a, weight: 3}, {provider: b, weight: 1}]
    sticky: true
"#,
        );
        assert_eq!(
            r.plan("m", &head("x-tier: premium\r\n"), None).expect("p")[0].provider,
            2
        );
        let plain = head("");
        let mut firsts = [0; 3];
        for i in 0..400u32 {
            let key = i.to_string();
            let chain = r.plan("m", &plain, Some(key.as_bytes())).expect("p");
            assert_eq!(chain.len(), 2, "the other target is the fallback");
            firsts[chain[0].provider] += 1;
            // Sticky: the same client lands on the same target.
            assert_eq!(
                r.plan("m", &plain, Some(key.as_bytes())).expect("p")[0],
                chain[0]
            );
        }
        assert!(firsts[0] > 220 && firsts[1] > 40, "{firsts:?}");
        assert!(r.plan("other", &plain, None).is_none());
    }
}
