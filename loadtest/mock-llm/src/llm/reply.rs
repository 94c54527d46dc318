//! The answer every provider endpoint gives, decided before it is dressed in a wire format: the
//! text or the tool calls, split into the tokens a stream sends one per event, and the token
//! counts. Everything here is deterministic so tests can assert on exact values.
//!
//! - Text: `Hello from the mock of FAMILY: you said: QUOTE`, QUOTE being the first
//!   [`QUOTE_CHARS`] characters of the last user text. After a tool result:
//!   `tool result: QUOTE` of the result.
//! - Tool calls: when the request offers tools and its last message is not a tool result, a call
//!   to the first tool (the first two when the last user text has the word "parallel"), with
//!   arguments built from the tool's JSON schema ([`schema_arguments`]), streamed in fragments of
//!   [`FRAGMENT_CHARS`] characters.
//! - Tokens: one per word (a word takes the whitespace before it). Input tokens: for each message
//!   (a system prompt counts as one), [`PER_MESSAGE`] plus the words of every string in it other
//!   than `role` and `type` values. Output tokens: the number of streamed token events.

use serde_json::Value;

/// How many characters of the user's text (or of a tool result) the reply quotes.
pub const QUOTE_CHARS: usize = 40;
/// Characters per streamed fragment of a tool call's arguments.
pub const FRAGMENT_CHARS: usize = 4;
/// Tokens counted per message on top of its words.
pub const PER_MESSAGE: u64 = 4;
/// Embedding dimension when the request asks for none.
pub const DEFAULT_DIMS: usize = 8;
/// Largest embedding dimension the mock builds.
pub const MAX_DIMS: usize = 8192;
/// The signature of every thinking block.
pub const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

/// What the mock reads from a chat request, whatever the provider.
#[derive(Debug, Default, Clone)]
pub struct Chat {
    pub input_tokens: u64,
    /// Text of the last user message that has text.
    pub last_user_text: String,
    /// Text of the tool result, when the last message is one.
    pub tool_result: Option<String>,
    pub tools: Vec<Tool>,
    /// The request's output limit; cuts a text reply short.
    pub max_tokens: Option<u64>,
    /// Extended thinking asked for (Anthropic).
    pub thinking: bool,
}

impl Chat {
    /// Counts one message (or a system prompt) in the input tokens.
    pub fn count_message(&mut self, message: &Value) {
        self.input_tokens += PER_MESSAGE + words_in(message);
    }
}

/// A tool the request offers: its name and the JSON schema of its arguments.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub schema: Value,
}

impl Tool {
    pub fn new(name: Option<&Value>, schema: Option<&Value>) -> Tool {
        Tool {
            name: name.and_then(Value::as_str).unwrap_or_default().to_owned(),
            schema: schema.cloned().unwrap_or(Value::Null),
        }
    }
}

/// Why the reply ended, before each provider names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolUse,
}

/// One tool call of the reply.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    /// The arguments as compact JSON text.
    pub arguments: String,
    /// `arguments` cut into the pieces a stream sends.
    pub fragments: Vec<String>,
}

impl Call {
    fn new(tool: &Tool) -> Call {
        let arguments = schema_arguments(&tool.schema);
        let fragments = fragments(&arguments, FRAGMENT_CHARS);
        Call {
            name: tool.name.clone(),
            arguments,
            fragments,
        }
    }

    /// The arguments as a JSON object.
    pub fn input(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// The reply to one chat request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Thinking tokens (empty unless thinking was asked for).
    pub thinking: Vec<String>,
    /// Text tokens (empty when the reply is tool calls).
    pub text: Vec<String>,
    pub calls: Vec<Call>,
    pub finish: Finish,
    pub input_tokens: u64,
    /// Thinking tokens + text tokens + argument fragments.
    pub output_tokens: u64,
}

impl Plan {
    /// Decides the reply; `family` is the provider family named in the text.
    pub fn new(family: &str, chat: &Chat) -> Plan {
        let quote_user = quote(&chat.last_user_text);
        let thinking = if chat.thinking {
            word_tokens(&format!("Let me think about: {quote_user}"))
        } else {
            Vec::new()
        };
        let (mut text, calls) = match &chat.tool_result {
            Some(result) => (
                word_tokens(&format!("tool result: {}", quote(result))),
                Vec::new(),
            ),
            None if !chat.tools.is_empty() => {
                let n = if chat.tools.len() >= 2 && mentions_parallel(&chat.last_user_text) {
                    2
                } else {
                    1
                };
                (Vec::new(), chat.tools[..n].iter().map(Call::new).collect())
            }
            None => (
                word_tokens(&format!(
                    "Hello from the mock of {family}: you said: {quote_user}"
                )),
                Vec::new(),
            ),
        };
        let mut finish = if calls.is_empty() {
            Finish::Stop
        } else {
            Finish::ToolUse
        };
        if let Some(max) = chat.max_tokens {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if calls.is_empty() && text.len() > max {
                text.truncate(max);
                finish = Finish::Length;
            }
        }
        let fragments: usize = calls.iter().map(|c| c.fragments.len()).sum();
        let output_tokens = (thinking.len() + text.len() + fragments) as u64;
        Plan {
            thinking,
            text,
            calls,
            finish,
            input_tokens: chat.input_tokens,
            output_tokens,
        }
    }

    /// The whole reply text.
    pub fn text(&self) -> String {
        self.text.concat()
    }

    /// The whole thinking text.
    pub fn thinking_text(&self) -> String {
        self.thinking.concat()
    }

    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The first [`QUOTE_CHARS`] characters of `s`.
pub fn quote(s: &str) -> &str {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Splits `s` into word tokens: each word keeps the whitespace before it, and whitespace at the
/// end goes with the last word. Concatenated, the tokens give `s` back.
pub fn word_tokens(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
        } else {
            in_word = true;
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        match out.last_mut() {
            Some(last) if !in_word => last.push_str(&cur),
            _ => out.push(cur),
        }
    }
    out
}

/// Whitespace-separated words of `s`.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words of every string inside `v`, except the values of `role` and `type` keys.
pub fn words_in(v: &Value) -> u64 {
    match v {
        Value::String(s) => words(s),
        Value::Array(items) => items.iter().map(words_in).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "role" && k.as_str() != "type")
            .map(|(_, v)| words_in(v))
            .sum(),
        _ => 0,
    }
}

/// The readable text of a message's content, whatever its shape: a string; an array of parts
/// (their texts joined by a space); a part's `text`, Bedrock's `json` (as compact JSON), or
/// Cohere's `document.data`. Other parts (images, tool calls, tool results) give nothing.
pub fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| text_of(Some(p)))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        Some(Value::Object(part)) => {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                t.to_owned()
            } else if let Some(j) = part.get("json") {
                j.to_string()
            } else if let Some(doc) = part.get("document") {
                match doc.get("data") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => doc.to_string(),
                }
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// Whether `text` has the word "parallel" (any case).
pub fn mentions_parallel(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("parallel"))
}

/// Arguments for a tool, from its JSON schema: each `required` property, in order, gets a value
/// by its `type`: string → `"sample"`, number or integer → `1`, boolean → `true`, anything else
/// → `null`. Built as text so the key order is the schema's.
pub fn schema_arguments(schema: &Value) -> String {
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = String::from("{");
    for name in required.iter().filter_map(Value::as_str) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&Value::from(name).to_string());
        out.push(':');
        let ty = schema
            .pointer(&format!("/properties/{}", pointer_escape(name)))
            .and_then(|p| p.get("type"))
            .and_then(first_type)
            .map(str::to_ascii_lowercase);
        out.push_str(match ty.as_deref() {
            Some("string") => "\"sample\"",
            Some("number" | "integer") => "1",
            Some("boolean") => "true",
            _ => "null",
        });
    }
    out.push('}');
    out
}

/// A schema's `type`: the string, or the first non-null member of a type array.
fn first_type(ty: &Value) -> Option<&str> {
    match ty {
        Value::String(s) => Some(s),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null")),
        _ => None,
    }
}

fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `s` in pieces of `n` characters (the last may be shorter).
pub fn fragments(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

/// A unit-length embedding of `dims` values (clamped to 1..=[`MAX_DIMS`]) drawn from a
/// SplitMix64 sequence seeded with the FNV-1a hash of `input`: equal inputs, equal vectors.
pub fn embedding(input: &str, dims: usize) -> Vec<f32> {
    let dims = dims.clamp(1, MAX_DIMS);
    let mut state = fnv1a(input.as_bytes());
    let raw: Vec<f64> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// The requested embedding dimension, or [`DEFAULT_DIMS`].
pub fn dims(v: Option<&Value>) -> usize {
    v.and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_DIMS)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_round_trip() {
        for s in [
            "Hello from the mock",
            "  lead",
            "trail  ",
            "a\nb  c",
            "",
            "x",
        ] {
            assert_eq!(word_tokens(s).concat(), s, "{s:?}");
        }
        assert_eq!(word_tokens("a b  c "), ["a", " b", "  c "]);
        assert_eq!(word_tokens("you said: "), ["you", " said: "]);
        assert_eq!(words(" a  b\tc "), 3);
    }

    #[test]
    fn quote_counts_chars() {
        let s = "é".repeat(50);
        assert_eq!(quote(&s).chars().count(), 40);
        assert_eq!(quote("short"), "short");
    }

    #[test]
    fn text_plan_and_usage() {
        let mut chat = Chat {
            last_user_text: "what is the weather like in Paris today, tell me please".into(),
            ..Chat::default()
        };
        chat.count_message(&json!({"role": "system", "content": "be brief"}));
        chat.count_message(
            &json!({"role": "user", "content": [{"type": "text", "text": "a b c"}]}),
        );
        assert_eq!(chat.input_tokens, 4 + 2 + 4 + 3);
        let plan = Plan::new("openai", &chat);
        assert_eq!(
            plan.text(),
            "Hello from the mock of openai: you said: what is the weather like in Paris today,"
        );
        assert_eq!(plan.output_tokens, plan.text.len() as u64);
        assert_eq!(plan.text.len(), 16);
        assert_eq!(plan.finish, Finish::Stop);
        chat.max_tokens = Some(3);
        let plan = Plan::new("openai", &chat);
        assert_eq!(
            (plan.text(), plan.finish),
            ("Hello from the".into(), Finish::Length)
        );
    }

    #[test]
    fn tool_calls_and_results() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "x/y": {"type": ["null", "boolean"]},
            "o": {"type": "object"}, "unit": {"type": "STRING"}},
            "required": ["city", "days", "x/y", "o", "unit", "missing"]});
        assert_eq!(
            schema_arguments(&schema),
            r#"{"city":"sample","days":1,"x/y":true,"o":null,"unit":"sample","missing":null}"#
        );
        assert_eq!(schema_arguments(&json!({})), "{}");
        let tools = vec![
            Tool::new(Some(&json!("a")), Some(&schema)),
            Tool::new(Some(&json!("b")), None),
        ];
        let mut chat = Chat {
            tools,
            last_user_text: "do it".into(),
            ..Chat::default()
        };
        let plan = Plan::new("x", &chat);
        assert_eq!(plan.calls.len(), 1);
        assert_eq!(plan.finish, Finish::ToolUse);
        assert_eq!(plan.calls[0].fragments.concat(), plan.calls[0].arguments);
        assert!(plan.calls[0]
            .fragments
            .iter()
            .all(|f| f.chars().count() <= 4));
        assert_eq!(plan.output_tokens, plan.calls[0].fragments.len() as u64);
        assert_eq!(plan.calls[0].input()["days"], 1);
        chat.last_user_text = "Run these in Parallel, please".into();
        let plan = Plan::new("x", &chat);
        assert_eq!(plan.calls.len(), 2);
        assert_eq!(plan.calls[1].arguments, "{}");
        chat.tool_result = Some("sunny and 21 degrees".into());
        let plan = Plan::new("x", &chat);
        assert_eq!(plan.text(), "tool result: sunny and 21 degrees");
        assert!(plan.calls.is_empty());
        assert!(!mentions_parallel("unparalleled"));
    }

    #[test]
    fn thinking_tokens_count() {
        let chat = Chat {
            thinking: true,
            last_user_text: "hi".into(),
            ..Chat::default()
        };
        let plan = Plan::new("anthropic", &chat);
        assert_eq!(plan.thinking_text(), "Let me think about: hi");
        assert_eq!(
            plan.output_tokens,
            (plan.thinking.len() + plan.text.len()) as u64
        );
    }

    #[test]
    fn text_shapes() {
        assert_eq!(text_of(Some(&json!("s"))), "s");
        assert_eq!(
            text_of(Some(
                &json!([{"type": "text", "text": "a"}, {"type": "image"}, {"text": "b"}])
            )),
            "a b"
        );
        assert_eq!(text_of(Some(&json!([{"json": {"k": 1}}]))), r#"{"k":1}"#);
        assert_eq!(
            text_of(Some(
                &json!([{"type": "document", "document": {"data": "d"}}])
            )),
            "d"
        );
        assert_eq!(text_of(None), "");
        assert_eq!(
            words_in(&json!({"role": "user", "type": "message", "content": "one two", "n": 3})),
            2
        );
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello", 8);
        assert_eq!(a, embedding("hello", 8));
        assert_ne!(a, embedding("hellp", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(embedding("x", 0).len(), 1);
        assert_eq!(embedding("x", 1 << 20).len(), MAX_DIMS);
        assert_eq!(dims(Some(&json!(3))), 3);
        assert_eq!(dims(None), DEFAULT_DIMS);
    }
}
