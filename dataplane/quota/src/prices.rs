//! Model prices for budgets: a shipped table for common models of the built-in providers, and the
//! filter's own `prices` over it.
//!
//! The shipped prices are a snapshot of the providers' public list prices (USD per million
//! tokens, standard tier, short contexts) taken when this file was last edited; providers change
//! them, so check them and override what matters in the config.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use weir_config::quota::Price;

/// One model's prices in picodollars (1e-12) per token, so that every listed price is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens served from the provider's cache.
    pub cached_input: u64,
}

impl ModelPrice {
    fn per_million(input: f64, output: f64, cached: Option<f64>) -> Self {
        let pico = |x: f64| (x * 1e6).round() as u64;
        ModelPrice {
            input: pico(input),
            output: pico(output),
            cached_input: pico(cached.unwrap_or(input)),
        }
    }

    /// The cost in nano-units (1e-9) of `input` tokens of which `cached` came from the cache, and
    /// `output` tokens; rounded up.
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> u64 {
        let cached = cached.min(input);
        let pico = u128::from(input - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(output) * u128::from(self.output);
        u64::try_from(pico.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// (model or prefix ending in `*`, input, output, cached input) in USD per million tokens.
const SHIPPED: &[(&str, f64, f64, f64)] = &[
    // OpenAI
    ("gpt-5", 1.25, 10.0, 0.125),
    ("gpt-5-*", 1.25, 10.0, 0.125),
    ("gpt-5-mini*", 0.25, 2.0, 0.025),
    ("gpt-5-nano*", 0.05, 0.40, 0.005),
    ("gpt-4.1", 2.0, 8.0, 0.50),
    ("gpt-4.1-2*", 2.0, 8.0, 0.50),
    ("gpt-4.1-mini*", 0.40, 1.60, 0.10),
    ("gpt-4.1-nano*", 0.10, 0.40, 0.025),
    ("gpt-4o", 2.50, 10.0, 1.25),
    ("gpt-4o-2*", 2.50, 10.0, 1.25),
    ("gpt-4o-mini*", 0.15, 0.60, 0.075),
    ("gpt-4-turbo*", 10.0, 30.0, 10.0),
    ("gpt-4", 30.0, 60.0, 30.0),
    ("gpt-3.5-turbo*", 0.50, 1.50, 0.50),
    ("o1", 15.0, 60.0, 7.50),
    ("o1-2*", 15.0, 60.0, 7.50),
    ("o1-mini*", 1.10, 4.40, 0.55),
    ("o3", 2.0, 8.0, 0.50),
    ("o3-2*", 2.0, 8.0, 0.50),
    ("o3-mini*", 1.10, 4.40, 0.55),
    ("o4-mini*", 1.10, 4.40, 0.275),
    ("text-embedding-3-small", 0.02, 0.0, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13),
    ("text-embedding-ada-002", 0.10, 0.0, 0.10),
    // Anthropic (cached: cache reads)
    ("claude-opus-4-5*", 5.0, 25.0, 0.50),
    ("claude-opus-4*", 15.0, 75.0, 1.50),
    ("claude-sonnet-4*", 3.0, 15.0, 0.30),
    ("claude-haiku-4-5*", 1.0, 5.0, 0.10),
    ("claude-3-7-sonnet*", 3.0, 15.0, 0.30),
    ("claude-3-5-sonnet*", 3.0, 15.0, 0.30),
    ("claude-3-5-haiku*", 0.80, 4.0, 0.08),
    ("claude-3-opus*", 15.0, 75.0, 1.50),
    ("claude-3-haiku*", 0.25, 1.25, 0.03),
    // Google Gemini / Vertex AI (prompts up to 200k tokens)
    ("gemini-2.5-pro*", 1.25, 10.0, 0.125),
    ("gemini-2.5-flash-lite*", 0.10, 0.40, 0.01),
    ("gemini-2.5-flash*", 0.30, 2.50, 0.03),
    ("gemini-2.0-flash-lite*", 0.075, 0.30, 0.075),
    ("gemini-2.0-flash*", 0.10, 0.40, 0.025),
    ("gemini-1.5-pro*", 1.25, 5.0, 0.3125),
    ("gemini-1.5-flash*", 0.075, 0.30, 0.01875),
    ("text-embedding-004", 0.0, 0.0, 0.0),
    // Cohere
    ("command-a*", 2.50, 10.0, 2.50),
    ("command-r-plus*", 2.50, 10.0, 2.50),
    ("command-r7b*", 0.0375, 0.15, 0.0375),
    ("command-r*", 0.15, 0.60, 0.15),
    ("embed-v4.0", 0.12, 0.0, 0.12),
    // Mistral
    ("mistral-large*", 2.0, 6.0, 2.0),
    ("mistral-medium*", 0.40, 2.0, 0.40),
    ("mistral-small*", 0.10, 0.30, 0.10),
    ("codestral*", 0.30, 0.90, 0.30),
    // DeepSeek
    ("deepseek-chat", 0.28, 0.42, 0.028),
    ("deepseek-reasoner", 0.28, 0.42, 0.028),
    // xAI
    ("grok-4*", 3.0, 15.0, 0.75),
    ("grok-3-mini*", 0.30, 0.50, 0.075),
    ("grok-3*", 3.0, 15.0, 0.75),
    // Groq
    ("llama-3.3-70b-versatile", 0.59, 0.79, 0.59),
    ("llama-3.1-8b-instant", 0.05, 0.08, 0.05),
];

/// Exact names and prefixes, longest prefix first.
#[derive(Debug, Default)]
struct Table {
    exact: HashMap<String, ModelPrice>,
    prefixes: Vec<(String, ModelPrice)>,
}

impl Table {
    fn insert(&mut self, pattern: &str, p: ModelPrice) {
        match pattern.strip_suffix('*') {
            Some(prefix) => self.prefixes.push((prefix.to_owned(), p)),
            None => {
                self.exact.insert(pattern.to_owned(), p);
            }
        }
    }

    fn seal(&mut self) {
        self.prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    fn get(&self, name: &str) -> Option<ModelPrice> {
        self.exact.get(name).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix.as_str()))
                .map(|(_, p)| *p)
        })
    }
}

/// Models whose price is remembered; past this, prices are looked up every time.
const MEMO: usize = 1024;

/// The prices a filter uses: its own, then the shipped table, then its `"*"`. Per core: the
/// models already priced are remembered, since a lookup in the tables tries several spellings of
/// the name and scans the prefixes, many times what one hash lookup costs.
#[derive(Debug)]
pub struct Prices {
    own: Table,
    shipped: Table,
    any: Option<ModelPrice>,
    memo: RefCell<HashMap<Box<str>, Option<ModelPrice>>>,
    /// The model priced last, checked before the memo: most routes see one model at a time,
    /// and comparing a short name costs less than hashing it.
    last: RefCell<(Box<str>, Option<ModelPrice>)>,
}

impl Prices {
    /// The shipped table under the filter's `prices`.
    pub fn new(own: &BTreeMap<String, Price>) -> Prices {
        let mut t = Table::default();
        let mut any = None;
        for (name, p) in own {
            let mp = ModelPrice::per_million(p.input, p.output, p.cached_input);
            if name == "*" {
                any = Some(mp);
            } else {
                t.insert(name, mp);
            }
        }
        t.seal();
        let mut shipped = Table::default();
        for (name, i, o, c) in SHIPPED {
            shipped.insert(name, ModelPrice::per_million(*i, *o, Some(*c)));
        }
        shipped.seal();
        Prices {
            own: t,
            shipped,
            any,
            memo: RefCell::default(),
            last: RefCell::new((Box::from(""), None)),
        }
    }

    /// The price of `model`, trying the name as given, then without a router prefix
    /// (`openai/gpt-4o`), a Bedrock region and vendor prefix (`us.anthropic.claude-...`) or a
    /// Vertex version suffix (`claude-sonnet-4-5@20250929`).
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        {
            let last = self.last.borrow();
            if *last.0 == *model && !model.is_empty() {
                return last.1;
            }
        }
        let known = self.memo.borrow().get(model).copied();
        let p = known.unwrap_or_else(|| {
            let p = self.lookup(model);
            let mut memo = self.memo.borrow_mut();
            if memo.len() < MEMO {
                memo.insert(model.into(), p);
            }
            p
        });
        *self.last.borrow_mut() = (model.into(), p);
        p
    }

    fn lookup(&self, model: &str) -> Option<ModelPrice> {
        let mut names: [&str; 3] = [model; 3];
        if let Some((_, rest)) = model.rsplit_once('/') {
            names[1] = rest;
        }
        let bare = names[1];
        let bare = bare.split_once('@').map_or(bare, |(n, _)| n);
        let bare = match bare.split_once('.') {
            // `us.anthropic.claude-...`, `anthropic.claude-...`, `meta.llama...`
            Some((a, rest)) if !a.contains('-') && a.len() <= 10 => match rest.split_once('.') {
                Some((b, rest2)) if !b.contains('-') && b.len() <= 10 => rest2,
                _ => rest,
            },
            _ => bare,
        };
        // Bedrock ids end in a version (`-v1:0`).
        let bare = bare.split_once(":").map_or(bare, |(n, _)| n);
        let bare = bare.strip_suffix("-v1").unwrap_or(bare);
        names[2] = bare;
        for t in [&self.own, &self.shipped] {
            for n in names {
                if let Some(p) = t.get(n) {
                    return Some(p);
                }
            }
        }
        self.any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_remembered_per_model() {
        let p = Prices::new(&BTreeMap::new());
        let first = p.get("gpt-4o-mini");
        assert!(first.is_some());
        assert_eq!(p.get("gpt-4o-mini"), first);
        assert_eq!(p.get("no-such-model"), None);
        assert_eq!(p.get("no-such-model"), None);
        assert_eq!(p.memo.borrow().len(), 2);
    }

    #[test]
    fn shipped_prices_and_name_forms() {
        let p = Prices::new(&BTreeMap::new());
        let gpt4o = p.get("gpt-4o").expect("priced");
        assert_eq!(gpt4o.input, 2_500_000);
        assert_eq!(p.get("gpt-4o-2024-08-06"), Some(gpt4o));
        assert_eq!(p.get("openai/gpt-4o"), Some(gpt4o));
        let mini = p.get("gpt-4o-mini-2024-07-18").expect("priced");
        assert_eq!(mini.output, 600_000);
        let haiku = p.get("claude-3-5-haiku-20241022").expect("priced");
        assert_eq!(
            p.get("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            Some(haiku)
        );
        assert_eq!(
            p.get("anthropic.claude-3-5-haiku-20241022-v1:0"),
            Some(haiku)
        );
        assert_eq!(
            p.get("claude-sonnet-4-5@20250929"),
            p.get("claude-sonnet-4-5")
        );
        assert_eq!(p.get("claude-opus-4-5").map(|x| x.input), Some(5_000_000));
        assert_eq!(p.get("claude-opus-4-1").map(|x| x.input), Some(15_000_000));
        assert_eq!(p.get("no-such-model"), None);
    }

    #[test]
    fn own_prices_win_and_star_catches_the_rest() {
        let mut own = BTreeMap::new();
        own.insert(
            "gpt-4o".to_owned(),
            Price {
                input: 1.0,
                output: 2.0,
                cached_input: Some(0.5),
            },
        );
        own.insert(
            "*".to_owned(),
            Price {
                input: 0.0,
                output: 0.0,
                cached_input: None,
            },
        );
        let p = Prices::new(&own);
        let g = p.get("gpt-4o").expect("priced");
        assert_eq!(
            (g.input, g.output, g.cached_input),
            (1_000_000, 2_000_000, 500_000)
        );
        // A dated name still finds the shipped prefix before the catch-all.
        assert_eq!(p.get("gpt-4o-mini").map(|x| x.input), Some(150_000));
        assert_eq!(p.get("local-llama").map(|x| x.input), Some(0));
    }

    #[test]
    fn costs_in_nano_units() {
        let g = ModelPrice::per_million(2.5, 10.0, Some(1.25));
        // 1000 input (200 cached) + 500 output: 800×2.5 + 200×1.25 + 500×10 per million.
        let nano = g.cost(1000, 200, 500);
        assert_eq!(nano, 2_000_000 + 250_000 + 5_000_000);
        assert_eq!(ModelPrice::per_million(0.0375, 0.0, None).cost(1, 0, 0), 38);
    }
}
