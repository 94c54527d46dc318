//! `size_limit`: refuse request bodies larger than a limit, with 413.
//!
//! ```yaml
//! filters:
//!   - type: size_limit
//!     max_request_bytes: 1MiB
//! ```
//!
//! - A body with a `Content-Length` over the limit is refused in `on_request_headers`, before a
//!   byte of it is read (and before `100 Continue` would be sent).
//! - A chunked body is counted as it streams through `on_request_body` and refused as soon as the
//!   count passes the limit: what came before has been read, nothing past the limit is forwarded
//!   to the upstream by the runner after the refusal.
//! - Both answers are 413 with kind `body_too_large` (downstream side). A body of exactly the
//!   limit passes. The count is payload bytes (chunk framing is not counted).

use weir_filter::{Action, Filter, FilterFactory, ProxyError, RequestCtx, Side};
use weir_http::{BodyKind, RequestHead};

const NAME: &str = "size_limit";

/// Makes [`SizeLimitFilter`]s.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimitFactory {
    max: u64,
}

/// The filter of one request: the limit and the bytes seen so far.
#[derive(Debug)]
pub struct SizeLimitFilter {
    max: u64,
    seen: u64,
}

// === impl SizeLimitFactory ===

impl SizeLimitFactory {
    /// A limit of `max_request_bytes` bytes of request body.
    pub fn new(max_request_bytes: u64) -> Self {
        SizeLimitFactory {
            max: max_request_bytes,
        }
    }
}

impl FilterFactory for SizeLimitFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(SizeLimitFilter {
            max: self.max,
            seen: 0,
        })
    }
}

// === impl SizeLimitFilter ===

impl SizeLimitFilter {
    fn too_large(&self) -> ProxyError {
        ProxyError::new(
            413,
            "body_too_large",
            Side::Downstream,
            "the request body is larger than this route allows",
        )
    }
}

impl Filter for SizeLimitFilter {
    fn on_request_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        match req.body {
            BodyKind::Length(n) if n > self.max => Err(self.too_large()),
            _ => Ok(Action::Continue),
        }
    }

    fn on_request_body(
        &mut self,
        _ctx: &mut RequestCtx,
        chunk: &[u8],
        _end: bool,
    ) -> Result<Action, ProxyError> {
        // Counted for every framing: the codec enforces a Content-Length, but the count is cheap
        // and keeps the limit true should a body ever arrive some other way.
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        if self.seen > self.max {
            return Err(self.too_large());
        }
        Ok(Action::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{continued, ctx, refused, request};

    fn post(framing: &str) -> RequestHead {
        request(&format!(
            "POST /v1/chat HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n"
        ))
    }

    fn assert_413(e: ProxyError) {
        assert_eq!(
            (e.status, e.kind, e.side),
            (413, "body_too_large", Side::Downstream)
        );
    }

    #[test]
    fn content_length_over_the_limit_is_refused_at_once() {
        let f = SizeLimitFactory::new(1024);
        let mut c = ctx("127.0.0.1:1");
        let mut req = post("Content-Length: 1025");
        assert_413(refused(f.create().on_request_headers(&mut c, &mut req)));
        let mut req = post("Content-Length: 1024");
        assert!(continued(&f.create().on_request_headers(&mut c, &mut req)));
        let mut req = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(continued(
            &SizeLimitFactory::new(0)
                .create()
                .on_request_headers(&mut c, &mut req)
        ));
    }

    #[test]
    fn chunked_body_is_refused_when_the_count_passes_the_limit() {
        let f = SizeLimitFactory::new(10);
        let mut c = ctx("127.0.0.1:1");
        let mut filter = f.create();
        let mut req = post("Transfer-Encoding: chunked");
        assert!(continued(&filter.on_request_headers(&mut c, &mut req)));
        assert!(continued(&filter.on_request_body(&mut c, b"hello", false)));
        assert!(continued(&filter.on_request_body(&mut c, b"", false)));
        assert!(continued(&filter.on_request_body(&mut c, b"world", false)));
        assert_413(refused(filter.on_request_body(&mut c, b"!", false)));
    }

    #[test]
    fn a_body_of_exactly_the_limit_passes() {
        let f = SizeLimitFactory::new(4);
        let mut c = ctx("127.0.0.1:1");
        let mut filter = f.create();
        let mut req = post("Transfer-Encoding: chunked");
        assert!(continued(&filter.on_request_headers(&mut c, &mut req)));
        assert!(continued(&filter.on_request_body(&mut c, b"ab", false)));
        assert!(continued(&filter.on_request_body(&mut c, b"cd", true)));
    }

    #[test]
    fn each_request_counts_from_zero() {
        let f = SizeLimitFactory::new(3);
        let mut c = ctx("127.0.0.1:1");
        for _ in 0..3 {
            let mut filter = f.create();
            assert!(continued(&filter.on_request_body(&mut c, b"abc", true)));
        }
    }
}
