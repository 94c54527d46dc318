//! `cors`: cross-origin resource sharing, with preflights answered by the gateway.
//!
//! ```yaml
//! filters:
//!   - type: cors
//!     allow_origins: ["https://app.example.com", "*.example.org"]  # or ["*"]
//!     allow_methods: [GET, POST, PUT]      # default GET, HEAD, POST; `*` for any
//!     allow_headers: [authorization, content-type]  # `*`: whatever the preflight asks
//!     expose_headers: [x-request-id]
//!     max_age: 600                         # seconds a browser may cache a preflight
//!     allow_credentials: true
//! ```
//!
//! Origin patterns:
//! - an exact origin, `https://app.example.com` or `http://localhost:3000` (scheme, host and
//!   port; case-insensitive; a trailing `/` is ignored; `null` is allowed too);
//! - `*`: any origin;
//! - `*.example.com`: any subdomain of `example.com` at any depth, with any scheme and port
//!   (`https://a.example.com`, `http://a.b.example.com:8080`), but not `example.com` itself: list
//!   it as well if wanted. `https://*.example.com` also pins the scheme.
//!
//! Behaviour:
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) never reaches the
//!   upstream. Allowed: `204` with `access-control-allow-origin` (the origin echoed, or `*` when `*`
//!   is allowed and credentials are not), `-allow-methods` (the requested method when `*` is
//!   configured), `-allow-headers` (the requested headers when `*` is configured), `-max-age`,
//!   `-allow-credentials: true`, and `vary: origin`. An origin that is not allowed, or a method
//!   that is not listed (compared case-insensitively), is refused with 403 (`cors_forbidden`). The
//!   requested headers are not checked by the gateway: the browser compares them with the list.
//! - Any other request with an allowed `Origin` goes upstream unchanged; its response gets
//!   `access-control-allow-origin`, `-allow-credentials`, `-expose-headers` (replacing any the
//!   upstream sent) and `vary: origin`. So do responses made by the gateway itself (errors, 429s)
//!   through `on_local_response`, so that a browser script can read why it failed; this needs
//!   `cors` to be before the filter that answered. A request whose origin is not allowed is
//!   proxied without CORS fields, and the browser keeps its response from the script.
//! - Refused when the filter is built: no origin, a malformed pattern, credentials with `*`,
//!   methods or header names that are not tokens.

use std::rc::Rc;

use bytes::Bytes;
use weir_config::Cors;
use weir_filter::{Action, Filter, FilterFactory, LocalResponse, ProxyError, RequestCtx, Side};
use weir_http::{has_token, Headers, RequestHead, ResponseHead};

use crate::error::{Error, Result};
use crate::{header_name, is_token, shared};

const NAME: &str = "cors";

const ALLOW_ORIGIN: &[u8] = b"access-control-allow-origin";
const ALLOW_METHODS: &[u8] = b"access-control-allow-methods";
const ALLOW_HEADERS: &[u8] = b"access-control-allow-headers";
const ALLOW_CREDENTIALS: &[u8] = b"access-control-allow-credentials";
const EXPOSE_HEADERS: &[u8] = b"access-control-expose-headers";
const MAX_AGE: &[u8] = b"access-control-max-age";
const VARY: &[u8] = b"vary";
const ORIGIN: &[u8] = b"origin";
const STAR: &[u8] = b"*";
const TRUE: &[u8] = b"true";

/// Makes [`CorsFilter`]s; holds the policy, with the fixed fields of every answer precomputed.
#[derive(Debug)]
pub struct CorsFactory {
    policy: Rc<Policy>,
}

#[derive(Debug)]
struct Policy {
    origins: Box<[OriginPattern]>,
    /// `*` is allowed and credentials are not: answer `*` rather than echo the origin.
    answer_star: bool,
    /// Uppercase, for the preflight check; empty when any method is allowed.
    methods: Box<[Box<[u8]>]>,
    /// `access-control-allow-methods`, or `None` to echo the requested method (`*` configured).
    allow_methods: Option<Bytes>,
    allow_headers: AllowHeaders,
    expose_headers: Option<Bytes>,
    max_age: Option<Bytes>,
    credentials: bool,
}

#[derive(Debug)]
enum AllowHeaders {
    /// None configured: the field is left out, and only CORS-safelisted headers pass.
    None,
    /// `*`: echo `access-control-request-headers`.
    Echo,
    /// The configured list, joined.
    List(Bytes),
}

/// One entry of `allow_origins`, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    /// `*`.
    Any,
    /// `scheme://host[:port]`, or `null`.
    Exact(Box<[u8]>),
    /// `[scheme://]*.domain`: `suffix` is `.domain`.
    Subdomain {
        scheme: Option<Box<[u8]>>,
        suffix: Box<[u8]>,
    },
}

/// The filter of one request: remembers the request's `Origin` once it is known to be allowed.
#[derive(Debug)]
pub struct CorsFilter {
    policy: Rc<Policy>,
    /// The allowed `Origin` of a request that is not a preflight (a slice of the request head).
    origin: Option<Bytes>,
}

// === impl CorsFactory ===

impl CorsFactory {
    /// Checks the policy and precomputes the fields of its answers.
    pub fn new(cfg: &Cors) -> Result<Self> {
        if cfg.allow_origins.is_empty() {
            return Err(Error::NoOrigins);
        }
        let origins = cfg
            .allow_origins
            .iter()
            .map(|o| OriginPattern::parse(o))
            .collect::<Result<Box<[_]>>>()?;
        let any_origin = origins.contains(&OriginPattern::Any);
        if any_origin && cfg.allow_credentials {
            return Err(Error::CredentialsWithAnyOrigin);
        }

        let mut methods = Vec::with_capacity(cfg.allow_methods.len());
        for m in &cfg.allow_methods {
            if !is_token(m) {
                return Err(Error::Method(m.clone()));
            }
            // Browsers send standard methods in upper case; a lowercase `put` in a config would
            // otherwise be answered and then refused by the browser.
            methods.push(m.to_ascii_uppercase());
        }
        let any_method = methods.iter().any(|m| m == "*");
        let allow_methods = (!any_method).then(|| join(&methods));
        let methods = if any_method {
            Box::default()
        } else {
            methods
                .iter()
                .map(|m| m.as_bytes().into())
                .collect::<Box<[Box<[u8]>]>>()
        };

        let allow_headers = if cfg.allow_headers.iter().any(|h| h == "*") {
            AllowHeaders::Echo
        } else {
            match names(&cfg.allow_headers)? {
                Some(list) => AllowHeaders::List(list),
                None => AllowHeaders::None,
            }
        };

        Ok(CorsFactory {
            policy: Rc::new(Policy {
                origins,
                answer_star: any_origin && !cfg.allow_credentials,
                methods,
                allow_methods,
                allow_headers,
                expose_headers: names(&cfg.expose_headers)?,
                max_age: cfg.max_age.map(|s| shared(s.to_string().into_bytes())),
                credentials: cfg.allow_credentials,
            }),
        })
    }
}

impl FilterFactory for CorsFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(CorsFilter {
            policy: self.policy.clone(),
            origin: None,
        })
    }
}

/// `a, b, c`, ready to send.
fn join(items: &[String]) -> Bytes {
    shared(items.join(", ").into_bytes())
}

/// Header names, checked, lowercased and joined; `None` for an empty list.
fn names(list: &[String]) -> Result<Option<Bytes>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for n in list {
        let name = header_name(NAME, n)?;
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(&name);
    }
    Ok(Some(shared(out)))
}

// === impl Policy ===

impl Policy {
    fn allows_origin(&self, origin: &[u8]) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }

    fn allows_method(&self, method: &[u8]) -> bool {
        self.allow_methods.is_none() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// The value of `access-control-allow-origin` for an allowed `origin`.
    fn allow_origin(&self, origin: &Bytes) -> Bytes {
        if self.answer_star {
            Bytes::from_static(STAR)
        } else {
            origin.clone()
        }
    }

    /// The 204 answer to an allowed preflight.
    fn preflight(&self, origin: &Bytes, method: &Bytes, req: &RequestHead) -> LocalResponse {
        let mut h = Headers::with_capacity(6);
        h.append(Bytes::from_static(ALLOW_ORIGIN), self.allow_origin(origin));
        h.append(
            Bytes::from_static(ALLOW_METHODS),
            self.allow_methods.clone().unwrap_or_else(|| method.clone()),
        );
        match &self.allow_headers {
            AllowHeaders::None => {}
            AllowHeaders::List(list) => h.append(Bytes::from_static(ALLOW_HEADERS), list.clone()),
            AllowHeaders::Echo => {
                if let Some(asked) = req.headers.get("access-control-request-headers") {
                    if !asked.is_empty() {
                        h.append(Bytes::from_static(ALLOW_HEADERS), asked.clone());
                    }
                }
            }
        }
        if let Some(age) = &self.max_age {
            h.append(Bytes::from_static(MAX_AGE), age.clone());
        }
        if self.credentials {
            h.append(
                Bytes::from_static(ALLOW_CREDENTIALS),
                Bytes::from_static(TRUE),
            );
        }
        h.append(Bytes::from_static(VARY), Bytes::from_static(ORIGIN));
        LocalResponse {
            status: 204,
            headers: h,
            body: Bytes::new(),
        }
    }

    /// The fields of a response to an allowed actual request. They replace any the upstream sent:
    /// two `access-control-allow-origin` fields make the browser refuse the response.
    fn decorate(&self, h: &mut Headers, origin: &Bytes) {
        h.set(Bytes::from_static(ALLOW_ORIGIN), self.allow_origin(origin));
        if self.credentials {
            h.set(
                Bytes::from_static(ALLOW_CREDENTIALS),
                Bytes::from_static(TRUE),
            );
        }
        if let Some(expose) = &self.expose_headers {
            h.set(Bytes::from_static(EXPOSE_HEADERS), expose.clone());
        }
        // Whether the fields are there depends on `Origin`, so caches must key on it.
        let varies = h
            .get_all("vary")
            .any(|v| has_token(v, "origin") || has_token(v, "*"));
        if !varies {
            h.append(Bytes::from_static(VARY), Bytes::from_static(ORIGIN));
        }
    }
}

// === impl OriginPattern ===

impl OriginPattern {
    fn parse(pattern: &str) -> Result<Self> {
        let bad = || Error::Origin(pattern.to_owned());
        let p = pattern.trim().to_ascii_lowercase();
        let p = p.strip_suffix('/').unwrap_or(&p);
        if p == "*" {
            return Ok(OriginPattern::Any);
        }
        if p == "null" {
            return Ok(OriginPattern::Exact(p.as_bytes().into()));
        }
        let (scheme, authority) = match p.split_once("://") {
            Some((s, a)) => {
                if !is_scheme(s.as_bytes()) {
                    return Err(bad());
                }
                (Some(s), a)
            }
            None => (None, p),
        };
        if let Some(domain) = authority.strip_prefix("*.") {
            if !is_hostname(domain.as_bytes()) {
                return Err(bad());
            }
            return Ok(OriginPattern::Subdomain {
                scheme: scheme.map(|s| s.as_bytes().into()),
                suffix: authority.as_bytes()[1..].into(),
            });
        }
        // An exact origin needs its scheme: `app.example.com` alone never equals an `Origin`.
        if scheme.is_none() || !is_authority(authority.as_bytes()) {
            return Err(bad());
        }
        Ok(OriginPattern::Exact(p.as_bytes().into()))
    }

    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => origin.eq_ignore_ascii_case(o),
            OriginPattern::Subdomain { scheme, suffix } => {
                let Some(i) = find(origin, b"://") else {
                    return false;
                };
                let (s, rest) = (&origin[..i], &origin[i + 3..]);
                if scheme
                    .as_ref()
                    .is_some_and(|want| !s.eq_ignore_ascii_case(want))
                {
                    return false;
                }
                let host = match rest.iter().rposition(|b| *b == b':') {
                    Some(c) if rest[c + 1..].iter().all(u8::is_ascii_digit) => &rest[..c],
                    Some(_) => return false,
                    None => rest,
                };
                host.len() > suffix.len()
                    && is_hostname(host)
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A DNS name (or IPv4 address): dot-separated non-empty labels of letters, digits and `-`.
fn is_hostname(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|b| *b == b'.')
            .all(|l| !l.is_empty() && l.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
}

/// `host[:port]`, where host is a name, an IPv4 address or a bracketed IPv6 address.
fn is_authority(s: &[u8]) -> bool {
    let (host, port) = if s.first() == Some(&b'[') {
        match s.iter().position(|b| *b == b']') {
            Some(end) => {
                let inner = &s[1..end];
                let ok = !inner.is_empty()
                    && inner
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
                if !ok {
                    return false;
                }
                (None, &s[end + 1..])
            }
            None => return false,
        }
    } else {
        match s.iter().position(|b| *b == b':') {
            Some(c) => (Some(&s[..c]), &s[c..]),
            None => (Some(s), &s[s.len()..]),
        }
    };
    if host.is_some_and(|h| !is_hostname(h)) {
        return false;
    }
    match port.split_first() {
        None => true,
        Some((b':', digits)) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

// === impl CorsFilter ===

impl Filter for CorsFilter {
    fn on_request_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        let Some(origin) = req.headers.get("origin") else {
            return Ok(Action::Continue);
        };
        let allowed = self.policy.allows_origin(origin);
        let preflight = &req.method[..] == b"OPTIONS";
        if preflight {
            if let Some(method) = req.headers.get("access-control-request-method") {
                if !allowed {
                    return Err(forbidden("origin not allowed by the CORS policy"));
                }
                if !self.policy.allows_method(method) {
                    return Err(forbidden("method not allowed by the CORS policy"));
                }
                return Ok(Action::Respond(self.policy.preflight(origin, method, req)));
            }
        }
        if allowed {
            self.origin = Some(origin.clone());
        }
        Ok(Action::Continue)
    }

    fn on_response_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<Action, ProxyError> {
        if let Some(origin) = &self.origin {
            self.policy.decorate(&mut resp.headers, origin);
        }
        Ok(Action::Continue)
    }

    fn on_local_response(&mut self, _ctx: &RequestCtx, resp: &mut LocalResponse) {
        if let Some(origin) = &self.origin {
            self.policy.decorate(&mut resp.headers, origin);
        }
    }
}

fn forbidden(message: &'static str) -> ProxyError {
    ProxyError::new(403, "cors_forbidden", Side::Downstream, message)
}

#[cfg(test)]
mod tests;
