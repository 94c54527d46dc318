//! Cheap looks into an event's `data` for the two things the gateway needs from every stream: the
//! end marker and the token usage. Neither parses the JSON: they walk its structure, skipping
//! strings with `memchr`, so the caller parses only the small `usage` object it is handed.

use memchr::{memchr2, memmem};

/// Whether an event's data is OpenAI's end-of-stream marker `[DONE]` (surrounding ASCII whitespace
/// allowed).
pub fn is_done(data: &[u8]) -> bool {
    data.trim_ascii() == b"[DONE]"
}

/// Find the `usage` object of a streamed chunk without parsing the JSON, and return its bytes
/// (`{` to `}`), ready to be parsed alone.
///
/// Looked for: a `"usage"` key of the top-level object (an OpenAI chat/completions chunk, an
/// Anthropic `message_delta`), or of the object under the top-level `"message"` key (Anthropic's
/// `message_start`). `"usage": null`, a `usage` nested anywhere else (inside a string, a choice,
/// a tool's arguments), and malformed JSON give `None`.
///
/// ```
/// let chunk = br#"{"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12}}"#;
/// assert_eq!(
///     weir_sse::find_usage(chunk),
///     Some(&br#"{"prompt_tokens":9,"completion_tokens":12}"#[..])
/// );
/// let start = br#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25}}}"#;
/// assert_eq!(weir_sse::find_usage(start), Some(&br#"{"input_tokens":25}"#[..]));
/// ```
pub fn find_usage(data: &[u8]) -> Option<&[u8]> {
    // Most chunks of a stream carry no usage: one SIMD search settles them.
    memmem::find(data, b"\"usage\"")?;
    let start = skip_ws(data, 0);
    object_usage(data, start, true)
}

/// Look for `"usage": {...}` among the keys of the object starting at `i`; descend once into a
/// `"message"` object when `nested` is true.
fn object_usage(data: &[u8], mut i: usize, nested: bool) -> Option<&[u8]> {
    if *data.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(data, i + 1);
    if *data.get(i)? == b'}' {
        return None;
    }
    loop {
        if *data.get(i)? != b'"' {
            return None;
        }
        let key_end = skip_string(data, i)?;
        let key = &data[i + 1..key_end - 1];
        i = skip_ws(data, key_end);
        if *data.get(i)? != b':' {
            return None;
        }
        i = skip_ws(data, i + 1);
        let value_end = skip_value(data, i)?;
        let is_object = data[i] == b'{';
        if is_object && key == b"usage" {
            return Some(&data[i..value_end]);
        }
        if is_object && nested && key == b"message" {
            if let Some(u) = object_usage(&data[..value_end], i, false) {
                return Some(u);
            }
        }
        i = skip_ws(data, value_end);
        match *data.get(i)? {
            b',' => i = skip_ws(data, i + 1),
            _ => return None,
        }
    }
}

fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = data.get(i) {
        i += 1;
    }
    i
}

/// `data[i]` is `"`: the index just past the closing quote.
fn skip_string(data: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr2(b'"', b'\\', data.get(j..)?)?;
        if data[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    }
}

/// Deepest nesting [`skip_value`] follows (one bit per level in a `u128`); LLM chunks nest a
/// handful of levels, and anything deeper is refused rather than tracked on the heap.
const MAX_DEPTH: u32 = 128;

/// The index just past the JSON value starting at `data[i]`. Containers are matched bracket for
/// bracket (strings skipped), so a returned `{` always closes with its own `}`; scalars and the
/// inside of strings are not validated: the caller's parse of the slice does that.
fn skip_value(data: &[u8], i: usize) -> Option<usize> {
    match *data.get(i)? {
        b'"' => skip_string(data, i),
        b'{' | b'[' => {
            // Bit n of `open` is 1 when the container at depth n+1 is an array.
            let mut open: u128 = 0;
            let mut depth = 0u32;
            let mut j = i;
            while let Some(&b) = data.get(j) {
                match b {
                    b'"' => {
                        j = skip_string(data, j)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        open = (open << 1) | u128::from(b == b'[');
                        depth += 1;
                    }
                    b'}' | b']' => {
                        if open & 1 != u128::from(b == b']') {
                            return None;
                        }
                        open >>= 1;
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while let Some(&b) = data.get(j) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_marker() {
        assert!(is_done(b"[DONE]"));
        assert!(is_done(b" [DONE]\r\n"));
        assert!(!is_done(b"[DONE"));
        assert!(!is_done(b"{\"done\":true}"));
        assert!(!is_done(b""));
    }

    #[test]
    fn openai_usage_chunk() {
        let c = br#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
        let u = find_usage(c).unwrap();
        assert!(u.starts_with(b"{\"prompt_tokens\":9"));
        assert!(u.ends_with(b"\"reasoning_tokens\":0}}"));
    }

    #[test]
    fn openai_null_usage_and_usage_in_content() {
        let c = br#"{"id":"c","choices":[{"index":0,"delta":{"content":"the \"usage\":{} key"}}],"usage":null}"#;
        assert_eq!(find_usage(c), None);
        // A usage object nested in a choice is not the chunk's usage.
        let c = br#"{"choices":[{"usage":{"x":1}}]}"#;
        assert_eq!(find_usage(c), None);
        let c = br#"{"choices":[{"delta":{"content":"}]\"{"}}], "usage" : {"total_tokens":3} }"#;
        assert_eq!(find_usage(c), Some(&br#"{"total_tokens":3}"#[..]));
    }

    #[test]
    fn anthropic_events() {
        let start = br#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#;
        assert_eq!(
            find_usage(start),
            Some(&br#"{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}"#[..])
        );
        let delta = br#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#;
        assert_eq!(find_usage(delta), Some(&br#"{"output_tokens":15}"#[..]));
        let text = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"usage"}}"#;
        assert_eq!(find_usage(text), None);
    }

    #[test]
    fn malformed_is_none_never_panics() {
        for c in [
            &b""[..],
            b"\"usage\"",
            b"{\"usage\"",
            b"{\"usage\":",
            b"{\"usage\":{",
            b"{\"usage\":{\"a\":\"\\",
            b"[\"usage\"]",
            b"{\"a\":1 \"usage\":{}}",
            b"{\"message\":{\"usage\":{\"a\":1}",
        ] {
            let _ = find_usage(c);
        }
        assert_eq!(find_usage(b"{\"a\":1 \"usage\":{}}"), None);
        // Brackets must match: the slice handed back always closes its own `{`.
        assert_eq!(find_usage(b"{\"usage\":{\"a\":1]}"), None);
        assert_eq!(find_usage(b"{\"usage\":{\"a\":[}]}"), None);
        let deep = format!(
            "{{\"usage\":{{\"a\":{}{}}}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(find_usage(deep.as_bytes()), None);
        let ok = format!(
            "{{\"usage\":{{\"a\":{}{}}}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(find_usage(ok.as_bytes()).is_some());
    }
}
