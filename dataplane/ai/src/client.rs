//! The client's request, read just enough to route it: the model, whether it streams, and
//! whether it asked for stream usage. The body is kept as bytes; a pass-through call re-writes
//! only the top-level fields it must change.

use bytes::Bytes;
use serde::Deserialize;

use crate::api::ClientApi;
use crate::{Error, Result};

/// A client request to an `ai` route.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The endpoint.
    pub api: ClientApi,
    /// The JSON body as received.
    pub body: Bytes,
    /// The model asked for.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage: true` (the client wants the usage chunk).
    pub include_usage: bool,
}

#[derive(Deserialize)]
struct Probe {
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl ClientRequest {
    /// Reads the routing fields of `body`. Errors say what is wrong, for a 400.
    pub fn parse(api: ClientApi, body: Bytes) -> Result<ClientRequest> {
        let probe: Probe = serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("the body is not a JSON object: {e}")))?;
        let model = match probe.model {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m,
            Some(_) => {
                return Err(Error::BadRequest(
                    "`model` must be a non-empty string".into(),
                ))
            }
            None => return Err(Error::BadRequest("`model` is required".into())),
        };
        let stream = match probe.stream {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(Error::BadRequest("`stream` must be a boolean".into())),
        };
        if matches!(api, ClientApi::Embeddings | ClientApi::CountTokens) && stream {
            return Err(Error::BadRequest(format!(
                "the {} API does not stream",
                api.as_str()
            )));
        }
        Ok(ClientRequest {
            api,
            include_usage: probe
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            body,
            model,
            stream,
        })
    }
}

/// The `model` of a JSON body, if it has a string one (a cheap look, for filters that run before
/// the body is parsed in full).
pub fn probe_model(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Model {
        model: Option<String>,
    }
    serde_json::from_slice::<Model>(body).ok()?.model
}

/// Re-writes the top-level object of `body`: `model` becomes `model`, fields named in `drop` go,
/// and `(name, json)` pairs of `set` replace or join the others. Every other field is copied as
/// raw text, unparsed, so nothing the gateway does not know about is lost or reformatted.
pub fn rewrite_top_level(
    body: &[u8],
    model: Option<&str>,
    drop: &[&str],
    set: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let fields: Vec<(std::borrow::Cow<'_, str>, &serde_json::value::RawValue)> =
        serde_json::from_slice::<RawObject<'_>>(body)
            .map_err(|e| Error::BadRequest(format!("the body is not a JSON object: {e}")))?
            .0;
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    for (k, v) in &fields {
        if drop.contains(&k.as_ref()) || set.iter().any(|(n, _)| *n == k.as_ref()) {
            continue;
        }
        sep(&mut out);
        write_key(&mut out, k);
        match (k.as_ref(), model) {
            ("model", Some(m)) => write_string(&mut out, m),
            _ => out.extend_from_slice(v.get().as_bytes()),
        }
    }
    for (k, v) in set {
        sep(&mut out);
        write_key(&mut out, k);
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

fn write_key(out: &mut Vec<u8>, k: &str) {
    write_string(out, k);
    out.push(b':');
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // serde_json writes a str as a valid JSON string; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON object as its fields in order, values left raw.
struct RawObject<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let v: &'de serde_json::value::RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routing_fields() {
        let body = Bytes::from_static(
            br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
        );
        let r = ClientRequest::parse(ClientApi::Chat, body).expect("parse");
        assert_eq!(
            (r.model.as_str(), r.stream, r.include_usage),
            ("gpt-4o", true, true)
        );
        for bad in [
            &b"[1]"[..],
            b"{}",
            br#"{"model":3}"#,
            br#"{"model":"m","stream":"yes"}"#,
            b"{",
        ] {
            let e = ClientRequest::parse(ClientApi::Chat, Bytes::copy_from_slice(bad));
            assert!(matches!(e, Err(Error::BadRequest(_))), "{bad:?}");
        }
    }

    #[test]
    fn rewrites_only_what_it_must() {
        let body = br#"{"model":"fast","messages":[{"role":"user","content":"h\u00e9 \"q\""}],"stream_options":{"include_usage":false},"x":1.50}"#;
        let out = rewrite_top_level(
            body,
            Some("gpt-4o"),
            &[],
            &[("stream_options", r#"{"include_usage":true}"#)],
        )
        .expect("rewrite");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\u00e9 \"q\""}],"x":1.50,"stream_options":{"include_usage":true}}"#
        );
    }
}
