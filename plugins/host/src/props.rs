//! Properties (`proxy_get_property`/`proxy_set_property`): a path of segments separated by NUL,
//! as Envoy encodes it. Strings are returned as bytes, integers as 8 little-endian bytes.
//!
//! | path | value |
//! | --- | --- |
//! | `request.path`, `request.url_path`, `request.query`, `request.method`, `request.host`, `request.scheme`, `request.protocol`, `request.id` | the request |
//! | `request.headers.<name>` | a request field (in request callbacks) |
//! | `response.code` | the status (integer) |
//! | `source.address`, `source.port` | the client |
//! | `route_name`, `cluster_name` | where the request goes |
//! | `plugin_name`, `plugin_root_id`, `plugin_vm_id` | the plugin's name (the VM id is empty) |
//! | `consumer`, `model`, `provider`, `tokens.input`, `tokens.output` (also under `weir.`) | Weir's auth and AI context |
//! | `weir.worker` | the core index (integer) |
//!
//! A property a plugin sets is kept for the rest of the request and read back by later callbacks.

use crate::abi::Status;
use crate::state::HostState;

fn int(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn s(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// The value of the property at `path`.
pub fn get(st: &HostState, path: &[u8]) -> Option<Vec<u8>> {
    if let Some((_, v)) = st.ex.set_props.iter().find(|(k, _)| k == path) {
        return Some(v.clone());
    }
    let segs = segments(path);
    let none;
    let p = match st.ex.props.as_deref() {
        Some(p) => p,
        // A root callback: no request.
        None => {
            none = crate::context::Props::default();
            &none
        }
    };
    let text = |v: &[u8]| Some(v.to_vec());
    match strip_weir(&segs) {
        [b"request", b"path"] => text(&p.target),
        [b"request", b"url_path"] => {
            text(p.target.split(|b| *b == b'?').next().unwrap_or_default())
        }
        [b"request", b"query"] => {
            let q = memchr_q(&p.target);
            text(&p.target[q..])
        }
        [b"request", b"method"] => text(&p.method),
        [b"request", b"host"] => st.ex.req.as_ref().map(|r| r.host.to_vec()),
        [b"request", b"scheme"] => Some(s(if p.tls { "https" } else { "http" })),
        [b"request", b"protocol"] => Some(s(if p.http2 { "HTTP/2" } else { "HTTP/1.1" })),
        [b"request", b"id"] => p.request_id.as_deref().map(s),
        [b"request", b"headers", name] => {
            let name = std::str::from_utf8(name).ok()?;
            st.ex.req.as_ref()?.headers.value(name).map(<[u8]>::to_vec)
        }
        [b"response", b"code"] => (p.status != 0).then(|| int(u64::from(p.status))),
        [b"source", b"address"] => p.source.map(|a| s(&a.to_string())),
        [b"source", b"port"] => p.source.map(|a| int(u64::from(a.port()))),
        [b"route_name"] => p.route.as_deref().map(s),
        [b"cluster_name"] => p.cluster.as_deref().map(s),
        [b"plugin_name"] | [b"plugin_root_id"] => Some(s(&st.plugin.name)),
        [b"plugin_vm_id"] => Some(Vec::new()),
        [b"consumer"] => p.consumer.as_deref().map(s),
        [b"model"] => p.model.as_deref().map(s),
        [b"provider"] => p.provider.as_deref().map(s),
        [b"tokens", b"input"] => p.tokens.map(|t| int(t.0)),
        [b"tokens", b"output"] => p.tokens.map(|t| int(t.1)),
        [b"worker"] => Some(int(st.worker as u64)),
        _ => None,
    }
}

fn segments(path: &[u8]) -> Vec<&[u8]> {
    path.split(|b| *b == 0)
        .filter(|seg| !seg.is_empty())
        .collect()
}

fn strip_weir<'a, 'b>(segs: &'a [&'b [u8]]) -> &'a [&'b [u8]] {
    match segs {
        [b"weir", rest @ ..] if !rest.is_empty() => rest,
        other => other,
    }
}

/// Whether `path` names one of the gateway's own properties (read-only), whether or not it has a
/// value in this request: `consumer` stays the gateway's even on a route without auth.
fn builtin(path: &[u8]) -> bool {
    let segs = segments(path);
    matches!(
        strip_weir(&segs),
        [
            b"request",
            b"path"
                | b"url_path"
                | b"query"
                | b"method"
                | b"host"
                | b"scheme"
                | b"protocol"
                | b"id"
        ] | [b"request", b"headers", _]
            | [b"response", b"code"]
            | [b"source", b"address" | b"port"]
            | [b"route_name"]
            | [b"cluster_name"]
            | [b"plugin_name"]
            | [b"plugin_root_id"]
            | [b"plugin_vm_id"]
            | [b"consumer"]
            | [b"model"]
            | [b"provider"]
            | [b"tokens", b"input" | b"output"]
            | [b"worker"]
    )
}

fn memchr_q(target: &[u8]) -> usize {
    target
        .iter()
        .position(|b| *b == b'?')
        .map_or(target.len(), |i| i + 1)
}

/// Sets a property for the rest of the request. The gateway's own properties are read-only
/// (`BadArgument`), as is an empty path.
pub fn set(st: &mut HostState, path: Vec<u8>, value: Vec<u8>) -> Status {
    if segments(&path).is_empty() || builtin(&path) {
        return Status::BadArgument;
    }
    match st.ex.set_props.iter_mut().find(|(k, _)| *k == path) {
        Some(slot) => slot.1 = value,
        None => {
            if st.ex.set_props.len() >= 64 {
                return Status::InternalFailure;
            }
            st.ex.set_props.push((path, value));
        }
    }
    Status::Ok
}
