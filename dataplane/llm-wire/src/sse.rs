//! Writing server-sent events (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
//!
//! Anthropic names each event (`event: message_start`) and repeats the name as the JSON `type`;
//! OpenAI sends only `data:` lines and ends with `data: [DONE]`.

use serde::Serialize;

/// Appends one event: an optional `event:` line, one `data:` line per line of `data`, and the
/// blank line that ends the event. A `\r\n` or `\r` in `data` also starts a new `data:` line, as a
/// reader would split it.
pub fn write_sse(out: &mut Vec<u8>, event: Option<&str>, data: &[u8]) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
        out.extend_from_slice(b"data: ");
        match end {
            None => {
                out.extend_from_slice(rest);
                out.push(b'\n');
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                out.push(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
}

/// Appends one event whose data is `value` as compact JSON, serialized straight into `out`
/// (compact JSON has no raw line breaks, so it is always a single `data:` line).
pub fn write_sse_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    event: Option<&str>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(b"\n\n");
    Ok(())
}

/// Appends an Anthropic stream event with its `event:` name.
pub fn write_anthropic_event(
    out: &mut Vec<u8>,
    event: &crate::anthropic::StreamEvent,
) -> Result<(), serde_json::Error> {
    write_sse_json(out, Some(event.event_name()), event)
}

/// Appends an OpenAI stream item as a `data:` line.
pub fn write_openai_item(
    out: &mut Vec<u8>,
    item: &crate::openai::StreamItem,
) -> Result<(), serde_json::Error> {
    write_sse_json(out, None, item)
}

/// Appends the `data: [DONE]` that ends an OpenAI stream.
pub fn write_openai_done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_event() {
        let mut out = Vec::new();
        write_sse(&mut out, Some("ping"), br#"{"type":"ping"}"#);
        assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    #[test]
    fn multiline_data_splits_on_every_line_break() {
        let mut out = Vec::new();
        write_sse(&mut out, None, b"a\nb\r\nc\rd");
        assert_eq!(out, b"data: a\ndata: b\ndata: c\ndata: d\n\n");
        out.clear();
        write_sse(&mut out, None, b"");
        assert_eq!(out, b"data: \n\n");
    }

    #[test]
    fn json_event_and_done() {
        let mut out = Vec::new();
        write_sse_json(&mut out, None, &serde_json::json!({"a": "x\ny"})).unwrap();
        write_openai_done(&mut out);
        assert_eq!(out, b"data: {\"a\":\"x\\ny\"}\n\ndata: [DONE]\n\n");
    }
}
