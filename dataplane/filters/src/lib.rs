//! `weir-filters`: Weir's first built-in filters, one module per filter.
//!
//! | config `type` | module | factory | does |
//! | --- | --- | --- | --- |
//! | `headers` | [`headers`] | [`HeadersFactory`] | removes, sets and adds request and response fields |
//! | `cors` | [`cors`] | [`CorsFactory`] | answers preflights, adds CORS fields to responses |
//! | `ip_acl` | [`ip_acl`] | [`IpAclFactory`] | refuses clients by address (403) |
//! | `size_limit` | [`size_limit`] | [`SizeLimitFactory`] | refuses request bodies past a size (413) |
//!
//! [`build`] turns one validated [`weir_config::FilterConfig`] into a
//! [`weir_filter::FilterFactory`]. The per-core runtime calls it while it *prepares* a config
//! generation, once per filter per route per core; an [`Error`] there makes the core refuse the
//! generation (NACK) instead of running half of it. Everything a filter needs is computed then:
//! lowercased names and values as `Bytes`, parsed networks, the fixed part of a CORS preflight
//! answer. [`weir_filter::FilterFactory::create`] then only boxes a small struct (an `Rc` of that
//! data, or two integers) for each request, and the phases do no parsing and no allocation beyond
//! the fields they add.
//!
//! On the request path these are ordinary [`weir_filter::Filter`]s, run by the request-path
//! runner in the order the route lists them. They refuse a request by returning a
//! [`weir_filter::ProxyError`] (kinds `cors_forbidden`, `ip_denied`, `body_too_large`), which the
//! runner turns into the JSON error response. Order matters: `cors` adds its fields to a local
//! response only once it has seen the request's `Origin`, so list it before the filters whose
//! errors a browser script should be able to read (a 413, a 429); `ip_acl` usually goes first, so
//! that a refused client costs nothing more.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cors;
mod error;
pub mod headers;
pub mod ip_acl;
pub mod size_limit;
#[cfg(test)]
mod testing;

use std::rc::Rc;

use bytes::Bytes;
use weir_config::FilterConfig;
use weir_filter::FilterFactory;

pub use cors::CorsFactory;
pub use error::{Error, Result};
pub use headers::HeadersFactory;
pub use ip_acl::IpAclFactory;
pub use size_limit::SizeLimitFactory;

/// Builds the factory of one configured filter. Called once per core per config generation.
pub fn build(cfg: &FilterConfig) -> Result<Rc<dyn FilterFactory>> {
    Ok(match cfg {
        FilterConfig::Headers { request, response } => {
            Rc::new(HeadersFactory::new(request, response)?)
        }
        FilterConfig::Cors(cors) => Rc::new(CorsFactory::new(cors)?),
        FilterConfig::IpAcl { allow, deny } => Rc::new(IpAclFactory::new(allow, deny)?),
        FilterConfig::Auth(_) | FilterConfig::Quota(_) | FilterConfig::Wasm { .. } => {
            return Err(Error::NotHere(
                "auth, quota and wasm filters are built by the runtime with the shared state they need",
            ))
        }
        FilterConfig::SizeLimit { max_request_bytes } => {
            Rc::new(SizeLimitFactory::new(max_request_bytes.0))
        }
    })
}

// === helpers shared by the filters ===

/// Whether `s` is an RFC 9110 token (header names, methods).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A configured header name, checked and lowercased (the form sent on the wire).
fn header_name(filter: &'static str, name: &str) -> Result<Bytes> {
    if !is_token(name) {
        return Err(Error::HeaderName {
            filter,
            name: name.to_owned(),
        });
    }
    Ok(shared(name.to_ascii_lowercase().into_bytes()))
}

/// `Bytes` that the request path clones without allocating.
///
/// `Bytes::from(Vec)` is lazily shared: its first clone allocates the shared header. Cloning once
/// here, at build time, makes every per-request clone a reference-count increment.
fn shared(v: Vec<u8>) -> Bytes {
    let b = Bytes::from(v);
    drop(b.clone());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::{ByteSize, Cors, HeaderOps};

    #[test]
    fn builds_every_kind_with_its_name() {
        let cfgs = [
            (
                FilterConfig::Headers {
                    request: HeaderOps::default(),
                    response: HeaderOps::default(),
                },
                "headers",
            ),
            (
                FilterConfig::Cors(Cors {
                    allow_origins: vec!["*".into()],
                    allow_methods: vec!["GET".into()],
                    allow_headers: vec![],
                    expose_headers: vec![],
                    max_age: None,
                    allow_credentials: false,
                }),
                "cors",
            ),
            (
                FilterConfig::IpAcl {
                    allow: vec!["10.0.0.0/8".into()],
                    deny: vec![],
                },
                "ip_acl",
            ),
            (
                FilterConfig::SizeLimit {
                    max_request_bytes: ByteSize(1024),
                },
                "size_limit",
            ),
        ];
        for (cfg, name) in cfgs {
            let f = build(&cfg).expect("builds");
            assert_eq!(f.name(), name);
            let _filter = f.create();
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let bad = FilterConfig::IpAcl {
            allow: vec!["10.0.0.0/33".into()],
            deny: vec![],
        };
        assert_eq!(build(&bad).err(), Some(Error::Cidr("10.0.0.0/33".into())));
        let bad = FilterConfig::Cors(Cors {
            allow_origins: vec![],
            allow_methods: vec![],
            allow_headers: vec![],
            expose_headers: vec![],
            max_age: None,
            allow_credentials: false,
        });
        assert_eq!(build(&bad).err(), Some(Error::NoOrigins));
    }

    #[test]
    fn names_are_checked_and_lowercased() {
        assert_eq!(
            &header_name("headers", "X-Req-ID").expect("ok")[..],
            b"x-req-id"
        );
        assert!(header_name("headers", "bad name").is_err());
        assert!(header_name("headers", "").is_err());
        assert!(header_name("headers", "x:y").is_err());
    }
}
