//! `body_rewrite`: rewrites response bodies (and request bodies, with `"requests": true`). It buffers the whole response body with the ABI's
//! buffering semantics (every body chunk answers `Pause` until `end_of_stream`, so the host keeps
//! buffering it) and replaces the configured substrings in the complete body.
//!
//! Content length: the response headers leave before the body is known, so on a response it will
//! rewrite the plugin removes `content-length` (the body is then framed by chunked encoding on
//! HTTP/1.1, by the stream's end on HTTP/2), and the length the client sees is always the real one.
//! It does not hold the headers with `Pause` instead: in Envoy, the reference host, a `Pause` from
//! the headers callback stops all iteration (no body callbacks until `resume_http_response`), so a
//! plugin that paused its headers there would never see its body.
//!
//! Configuration:
//! ```json
//! {"replace": [{"from": "hello", "to": "goodbye"}],
//!  "content_types": ["text/", "application/json"], "max_body_bytes": 1048576,
//!  "requests": false, "mark": "x-body-rewritten"}
//! ```
//! With `mark`, a message whose body was rewritten carries that header with the number of
//! replacements, set from the body callback on the head that waits for the body. Weir keeps a
//! head back until the body callbacks let bytes out on every route with such a plugin; Envoy
//! keeps it only when the headers callback paused it, so there the mark is not sent.
//! With `requests`, request bodies are rewritten the same way before they go upstream (any
//! content type).
//! Only responses whose `content-type` starts with one of `content_types` (default: any) and that
//! are not content-encoded (a gzip body is not text) are rewritten. A body that grows past
//! `max_body_bytes` (default 1 MiB), or that ends with trailers, is let through unchanged: what was
//! held is released as it was.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replacement {
    from: String,
    to: String,
}

fn default_max() -> usize {
    1 << 20
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    replace: Vec<Replacement>,
    #[serde(default)]
    content_types: Vec<String>,
    #[serde(default = "default_max")]
    max_body_bytes: usize,
    #[serde(default)]
    requests: bool,
    #[serde(default)]
    mark: Option<String>,
}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("body_rewrite: a configuration with `replace` is required");
            return false;
        };
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(c) if c.replace.iter().any(|r| r.from.is_empty()) => {
                log::error!("body_rewrite: an empty `from` would match everywhere");
                false
            }
            Ok(c) => {
                log::info!(
                    "body_rewrite: {} replacement(s), max body {} bytes",
                    c.replace.len(),
                    c.max_body_bytes
                );
                self.config = Some(Rc::new(c));
                true
            }
            Err(e) => {
                log::error!("body_rewrite: bad configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(Rewrite {
            config,
            state: State::Pass,
            request: State::Pass,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Debug, PartialEq)]
enum State {
    /// Not a body we rewrite (or it outgrew the limit): everything continues untouched.
    Pass,
    /// Body being buffered by the host until its end.
    Buffering,
}

/// Replaces every occurrence of every `from`, in order, in `body`: the new body and the number of
/// replacements, `None` when nothing matched.
fn rewrite(body: &[u8], replace: &[Replacement]) -> Option<(Vec<u8>, usize)> {
    let mut out: Option<Vec<u8>> = None;
    let mut count = 0;
    for r in replace {
        let current = out.as_deref().unwrap_or(body);
        let from = r.from.as_bytes();
        if current.len() < from.len() || !current.windows(from.len()).any(|w| w == from) {
            continue;
        }
        let mut next = Vec::with_capacity(current.len());
        let mut i = 0;
        while i < current.len() {
            if current[i..].starts_with(from) {
                next.extend_from_slice(r.to.as_bytes());
                i += from.len();
                count += 1;
            } else {
                next.push(current[i]);
                i += 1;
            }
        }
        out = Some(next);
    }
    out.map(|o| (o, count))
}

struct Rewrite {
    config: Rc<Config>,
    /// The response body's.
    state: State,
    /// The request body's.
    request: State,
}

impl Rewrite {
    fn wanted(&self) -> bool {
        let encoded = self
            .get_http_response_header("content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity") && !e.trim().is_empty());
        if encoded {
            return false;
        }
        if self.config.content_types.is_empty() {
            return true;
        }
        let ct = self
            .get_http_response_header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.config
            .content_types
            .iter()
            .any(|p| ct.starts_with(&p.to_ascii_lowercase()))
    }
}

impl Context for Rewrite {}

impl HttpContext for Rewrite {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.config.requests && !end_of_stream {
            self.request = State::Buffering;
            // As for a response: the new length is known only at the end.
            self.set_http_request_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.request != State::Buffering {
            return Action::Continue;
        }
        if body_size > self.config.max_body_bytes {
            log::warn!(
                "body_rewrite: request body over {} bytes, passed through unchanged",
                self.config.max_body_bytes
            );
            self.request = State::Pass;
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.request = State::Pass;
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        if let Some((new, count)) = rewrite(&body, &self.config.replace) {
            self.set_http_request_body(0, body_size, &new);
            if let Some(mark) = &self.config.mark {
                self.set_http_request_header(mark, Some(&count.to_string()));
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream || !self.wanted() {
            return Action::Continue;
        }
        // A declared length over the limit: don't even start buffering.
        let declared = self
            .get_http_response_header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes) {
            return Action::Continue;
        }
        self.state = State::Buffering;
        // The headers go on now, and the new length is only known at the end: drop the old one.
        self.set_http_response_header("content-length", None);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.state != State::Buffering {
            return Action::Continue;
        }
        if body_size > self.config.max_body_bytes {
            log::warn!(
                "body_rewrite: body over {} bytes, passed through unchanged",
                self.config.max_body_bytes
            );
            self.state = State::Pass;
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.state = State::Pass;
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        if let Some((new, count)) = rewrite(&body, &self.config.replace) {
            self.set_http_response_body(0, body_size, &new);
            if let Some(mark) = &self.config.mark {
                self.set_http_response_header(mark, Some(&count.to_string()));
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body that ends with trailers never saw end_of_stream: release it unchanged.
        if self.state == State::Buffering {
            log::warn!("body_rewrite: response with trailers passed through unchanged");
            self.state = State::Pass;
        }
        Action::Continue
    }
}
