//! Helpers for the unit tests of the provider modules: a context, and readers of replies.

#![allow(clippy::unwrap_used)] // tests may unwrap

use super::{Ctx, Family, Reply};
use serde_json::Value;

/// A context for `family` with usage on.
pub fn ctx(family: Family) -> Ctx<'static> {
    Ctx {
        family,
        model: "m-1",
        usage: true,
        id: 7,
        created: 1_700_000_000,
        query: "",
    }
}

/// The JSON body of a 200 reply.
pub fn json(reply: &Reply) -> &Value {
    match reply {
        Reply::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

/// The status and body of an error reply.
pub fn status(reply: &Reply) -> (u16, &Value) {
    match reply {
        Reply::Status { status, body, .. } => (*status, body),
        other => panic!("expected a status, got {other:?}"),
    }
}

/// The records of a stream reply, as bytes.
pub fn records(reply: &Reply) -> Vec<&[u8]> {
    match reply {
        Reply::Stream { records, .. } => records.list.iter().map(|r| r.bytes.as_slice()).collect(),
        other => panic!("expected a stream, got {other:?}"),
    }
}

/// The pause flags of a stream reply's records.
pub fn pauses(reply: &Reply) -> Vec<bool> {
    match reply {
        Reply::Stream { records, .. } => records.list.iter().map(|r| r.pause).collect(),
        other => panic!("expected a stream, got {other:?}"),
    }
}

/// The SSE events of a stream reply: (event name, data). `[DONE]` comes as a JSON string.
pub fn sse(reply: &Reply) -> Vec<(Option<String>, Value)> {
    records(reply)
        .into_iter()
        .map(|r| {
            let text = std::str::from_utf8(r).unwrap();
            assert!(text.ends_with("\n\n"), "unterminated record {text:?}");
            let mut event = None;
            let mut data = None;
            for line in text.trim_end().lines() {
                let line = line.trim_end_matches('\r');
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(if d == "[DONE]" {
                        Value::String(d.into())
                    } else {
                        serde_json::from_str(d).unwrap()
                    });
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            (event, data.unwrap())
        })
        .collect()
}
