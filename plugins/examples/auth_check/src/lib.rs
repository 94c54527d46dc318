//! `auth_check`: a custom auth check. A request passes only when the configured header carries one
//! of the configured tokens; any other request is answered here with 401 and a JSON body, and never
//! reaches the upstream.
//!
//! Configuration:
//! ```json
//! {"header": "x-api-token", "tokens": ["t0k3n-a", "t0k3n-b"], "strip": true}
//! ```
//! `header` defaults to `authorization` (then a token is matched with or without a `Bearer `
//! prefix). `strip` (default true) removes the header before the request goes upstream, so the
//! token is not leaked to it.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

fn default_header() -> String {
    "authorization".to_string()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_header")]
    header: String,
    tokens: Vec<String>,
    #[serde(default = "default_true")]
    strip: bool,
}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("auth_check: a configuration with `tokens` is required");
            return false;
        };
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(mut c) => {
                c.header.make_ascii_lowercase();
                c.tokens.retain(|t| !t.is_empty());
                if c.tokens.is_empty() {
                    // No token could ever match: refuse rather than lock every request out silently.
                    log::error!("auth_check: `tokens` is empty");
                    return false;
                }
                log::info!(
                    "auth_check: header {:?}, {} token(s)",
                    c.header,
                    c.tokens.len()
                );
                self.config = Some(Rc::new(c));
                true
            }
            Err(e) => {
                log::error!("auth_check: bad configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // on_configure refused to start without a configuration, so this is set.
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(Check { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Compares without an early exit on the first differing byte, so the time taken does not tell
/// how much of a guessed token was right.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Check {
    config: Rc<Config>,
}

impl Check {
    fn allowed(&self, value: &[u8]) -> bool {
        let bearer = self.config.header == "authorization";
        let value = match value.strip_prefix(b"Bearer ") {
            Some(rest) if bearer => rest,
            _ => value,
        };
        // Check every token (no short-circuit) for the same reason as `same_token`.
        self.config
            .tokens
            .iter()
            .fold(false, |ok, t| same_token(value, t.as_bytes()) | ok)
    }
}

impl Context for Check {}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let ok = self
            .get_http_request_header_bytes(&self.config.header)
            .is_some_and(|v| self.allowed(&v));
        if ok {
            if self.config.strip {
                self.remove_http_request_header(&self.config.header);
            }
            return Action::Continue;
        }
        let message = format!(
            "missing or invalid credentials in header {}",
            self.config.header
        );
        let body =
            serde_json::json!({"error": {"message": message, "type": "unauthorized", "code": 401}});
        self.send_http_response(
            401,
            vec![
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer"),
            ],
            Some(body.to_string().as_bytes()),
        );
        Action::Pause
    }
}
