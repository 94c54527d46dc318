//! Token counts made by the gateway, with a real BPE tokenizer (OpenAI's `o200k_base`), for
//! providers that report no usage and for the in-process mock. Counts of other providers' models
//! differ from their own tokenizers by a few percent; such counts are marked estimated.

use tiktoken_rs::CoreBPE;

fn bpe() -> &'static CoreBPE {
    // Loaded once per process on first use (tens of milliseconds), shared by all cores.
    tiktoken_rs::o200k_base_singleton()
}

/// Tokens of `text`.
pub fn count(text: &str) -> u64 {
    bpe().encode_ordinary(text).len() as u64
}

/// `text` cut into its tokens (for streaming an answer token by token).
pub fn split(text: &str) -> Vec<String> {
    let bpe = bpe();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for t in bpe.encode_ordinary(text) {
        pending.push(t);
        // A token may end inside a UTF-8 character: keep it until the piece decodes.
        if let Ok(piece) = bpe.decode(pending.clone()) {
            out.push(piece);
            pending.clear();
        }
    }
    out
}

/// Prompt tokens of an OpenAI chat request or an Anthropic messages request: every text in
/// `messages`, `system`, `tools`, plus the chat format's overhead (3 per message, 3 to prime the
/// answer), as OpenAI documents for its chat models.
pub fn prompt_tokens(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let mut n = 3;
    let mut text = String::new();
    if let Some(msgs) = v.get("messages").and_then(|m| m.as_array()) {
        n += 3 * msgs.len() as u64;
        for m in msgs {
            collect_text(m, &mut text);
        }
    }
    for field in ["system", "tools", "input", "prompt"] {
        if let Some(x) = v.get(field) {
            collect_text(x, &mut text);
        }
    }
    n + count(&text)
}

/// Output tokens of an answer's texts.
pub fn completion_tokens(texts: &[&str]) -> u64 {
    texts.iter().map(|t| count(t)).sum()
}

fn collect_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_text(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                // Image payloads are not text; counting base64 would be wildly off.
                if k != "image_url" && k != "source" && k != "data" {
                    collect_text(x, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_real_tokenizer() {
        assert_eq!(count("hello world"), 2);
        let pieces = split("Hello, wörld!");
        assert_eq!(pieces.concat(), "Hello, wörld!");
        assert!(pieces.len() >= 4);
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#;
        // 3 priming + 3 for the message + "user\n" and "hello world\n".
        assert!(prompt_tokens(body) >= 8);
    }
}

/// Output tokens of an answer the provider reported no usage for, from the client's bytes: the
/// text of its messages (`content`, `text`, tool `arguments`, `partial_json`, `thinking` values in
/// each SSE event or the JSON document) counted with the tokenizer. `sample` may be the first part
/// of a longer answer of `total` bytes: the count is scaled to the whole.
pub fn answer_tokens(sample: &[u8], total: u64) -> u64 {
    let mut text = String::new();
    let mut parsed = false;
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(sample) {
        collect_answer(&v, &mut text);
        parsed = true;
    } else {
        for line in sample.split(|b| *b == b'\n') {
            if let Some(data) = line.strip_prefix(b"data: ") {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                    collect_answer(&v, &mut text);
                    parsed = true;
                }
            }
        }
    }
    if !parsed || sample.is_empty() {
        // Nothing readable: about four bytes a token.
        return total / 4;
    }
    let n = count(&text);
    if (sample.len() as u64) < total {
        n * total / sample.len() as u64
    } else {
        n
    }
}

fn collect_answer(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    (
                        "content" | "text" | "arguments" | "partial_json" | "thinking" | "refusal",
                        serde_json::Value::String(s),
                    ) => out.push_str(s),
                    _ => collect_answer(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_answer(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn counts_answer_text_not_framing() {
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"hello\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(answer_tokens(sse, sse.len() as u64), 2);
        let json = br#"{"content":[{"type":"text","text":"hello world"}]}"#;
        assert_eq!(answer_tokens(json, json.len() as u64), 2);
        // A sample of half the answer counts for the whole.
        assert_eq!(answer_tokens(sse, 2 * sse.len() as u64), 4);
    }
}
