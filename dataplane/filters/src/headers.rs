//! `headers`: remove, set and add header fields on the request sent upstream and on the response
//! sent downstream.
//!
//! ```yaml
//! filters:
//!   - type: headers
//!     request:
//!       set: { x-env: prod, host: api.internal }   # replace every field of the name, or add one
//!       add: { x-via: weir }                       # append, keeping fields already there
//!       remove: [x-debug]
//!     response:
//!       set: { strict-transport-security: "max-age=31536000" }
//!       remove: [server, x-powered-by]
//! ```
//!
//! - Each side applies its ops in the order remove, then set, then add, so `remove: [x-a]` with
//!   `add: { x-a: "1" }` leaves exactly one `x-a: 1`. Names match case-insensitively and are sent
//!   lowercase, as configured.
//! - Request ops run in `on_request_headers`. Response ops run in `on_response_headers`, and on
//!   responses the gateway makes itself (errors, preflights, redirects) in `on_local_response`, so
//!   a security header is on every response of the route, not only on proxied ones.
//! - Refused when the filter is built: values with control characters (CR, LF, NUL: header
//!   injection), setting or adding framing and hop-by-hop fields (`content-length`,
//!   `transfer-encoding`, `connection`, ...: the codec writes those, and a second one would let the
//!   upstream read the message differently from Weir), and adding or removing `host` on a request
//!   (HTTP/1.1 needs exactly one; `set` it to rewrite it, which also updates the authority the
//!   rest of the request path sees).

use std::rc::Rc;

use bytes::Bytes;
use weir_config::HeaderOps;
use weir_filter::{Action, Filter, FilterFactory, LocalResponse, ProxyError, RequestCtx};
use weir_http::{Headers, RequestHead, ResponseHead, HOP_BY_HOP};

use crate::error::{Error, Result};
use crate::{header_name, shared};

const NAME: &str = "headers";

/// Makes [`HeadersFilter`]s; holds the ops of both sides, checked and lowercased.
#[derive(Debug)]
pub struct HeadersFactory {
    ops: Rc<Ops>,
}

#[derive(Debug)]
struct Ops {
    request: SideOps,
    response: SideOps,
    /// A request `set: { host: ... }`, mirrored into `RequestHead::host`.
    request_host: Option<Bytes>,
}

/// The edits of one side. Names are lowercase.
#[derive(Debug, Default)]
struct SideOps {
    remove: Box<[Box<str>]>,
    set: Box<[(Bytes, Bytes)]>,
    add: Box<[(Bytes, Bytes)]>,
}

/// The filter of one request: applies the factory's ops.
#[derive(Debug)]
pub struct HeadersFilter {
    ops: Rc<Ops>,
}

// === impl HeadersFactory ===

impl HeadersFactory {
    /// Checks and precomputes the request and response ops.
    pub fn new(request: &HeaderOps, response: &HeaderOps) -> Result<Self> {
        // The last one, as `set` applies them in this order and the last one stays.
        let request_host = request
            .set
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(n, v)| header_value(n, v))
            .transpose()?;
        Ok(HeadersFactory {
            ops: Rc::new(Ops {
                request: SideOps::new(request, true)?,
                response: SideOps::new(response, false)?,
                request_host,
            }),
        })
    }
}

impl FilterFactory for HeadersFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(HeadersFilter {
            ops: self.ops.clone(),
        })
    }
}

// === impl SideOps ===

impl SideOps {
    fn new(ops: &HeaderOps, request: bool) -> Result<Self> {
        let mut remove = Vec::with_capacity(ops.remove.len());
        for n in &ops.remove {
            let name = header_name(NAME, n)?;
            if request && &name[..] == b"host" {
                return Err(reserved(
                    n,
                    "removed",
                    "a request needs exactly one; set it instead",
                ));
            }
            // Hop-by-hop fields are never in a parsed head: removing one is a harmless no-op.
            remove.push(n.to_ascii_lowercase().into_boxed_str());
        }
        let set = pairs(&ops.set, "set")?;
        let add = pairs(&ops.add, "added")?;
        if request && add.iter().any(|(n, _)| &n[..] == b"host") {
            return Err(reserved(
                "host",
                "added",
                "a request needs exactly one; set it instead",
            ));
        }
        Ok(SideOps {
            remove: remove.into(),
            set: set.into(),
            add: add.into(),
        })
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    fn apply(&self, headers: &mut Headers) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.set(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Checked, lowercased `(name, value)` pairs of a `set` or `add` map.
fn pairs(
    map: &std::collections::BTreeMap<String, String>,
    op: &'static str,
) -> Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::with_capacity(map.len());
    for (n, v) in map {
        let name = header_name(NAME, n)?;
        if HOP_BY_HOP.iter().any(|h| h.as_bytes() == &name[..]) {
            return Err(reserved(
                n,
                op,
                "framing and hop-by-hop fields are made by the codec",
            ));
        }
        out.push((name, header_value(n, v)?));
    }
    Ok(out)
}

/// A configured value: surrounding whitespace trimmed (as a parser would), no control characters
/// but tab, so it cannot end the field and start another.
fn header_value(name: &str, value: &str) -> Result<Bytes> {
    let v = value.trim_matches([' ', '\t']);
    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Error::HeaderValue {
            name: name.to_owned(),
        });
    }
    Ok(shared(v.as_bytes().to_vec()))
}

fn reserved(name: &str, op: &'static str, why: &'static str) -> Error {
    Error::ReservedHeader {
        name: name.to_owned(),
        op,
        why,
    }
}

// === impl HeadersFilter ===

impl Filter for HeadersFilter {
    fn on_request_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        self.ops.request.apply(&mut req.headers);
        if let Some(host) = &self.ops.request_host {
            req.host = host.clone();
        }
        Ok(Action::Continue)
    }

    fn on_response_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<Action, ProxyError> {
        self.ops.response.apply(&mut resp.headers);
        Ok(Action::Continue)
    }

    fn on_local_response(&mut self, _ctx: &RequestCtx, resp: &mut LocalResponse) {
        if !self.ops.response.is_empty() {
            self.ops.response.apply(&mut resp.headers);
        }
    }
}

#[cfg(test)]
mod tests;
