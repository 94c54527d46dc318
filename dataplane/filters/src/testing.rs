//! Helpers for the filters' unit tests: heads parsed from raw bytes, as the codec makes them.

use std::net::SocketAddr;

use bytes::BytesMut;
use weir_filter::{Action, ProxyError, RequestCtx};
use weir_http::{HeadLimits, RequestHead, ResponseHead};

/// A request head parsed from `raw` (which must be a complete head).
pub(crate) fn request(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid request")
        .expect("complete request head")
}

/// A response head parsed from `raw`.
pub(crate) fn response(raw: &str) -> ResponseHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_response(&mut buf, 64 << 10, false)
        .expect("valid response")
        .expect("complete response head")
}

/// A context for a request from `client` (`ip:port`).
pub(crate) fn ctx(client: &str) -> RequestCtx {
    let addr: SocketAddr = client.parse().expect("socket address");
    RequestCtx::new("req-1".into(), addr, "main".into(), 0)
}

/// The error a phase returned, or a panic naming what it did instead.
pub(crate) fn refused(r: Result<Action, ProxyError>) -> ProxyError {
    match r {
        Err(e) => e,
        Ok(a) => panic!("expected an error, got {a:?}"),
    }
}

/// Whether a phase let the request continue.
pub(crate) fn continued(r: &Result<Action, ProxyError>) -> bool {
    matches!(r, Ok(Action::Continue))
}

/// Every value of `name`, as text, in order.
pub(crate) fn values(h: &weir_http::Headers, name: &str) -> Vec<String> {
    h.get_all(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}
