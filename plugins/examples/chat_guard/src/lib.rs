//! `chat_guard`: checks the JSON body of chat requests before they reach the model.
//!
//! For `POST /v1/chat/completions` (the path is configurable) it buffers the whole request body
//! (every body chunk answers `Pause` until `end_of_stream`), parses it with serde_json and
//! refuses, with 400 in the OpenAI error format, a request whose messages contain a blocked word
//! (case-insensitive; plain string contents and `text` parts of array contents) or whose
//! `max_tokens` / `max_completion_tokens` exceeds the configured maximum. A body that is not JSON is
//! refused with 400 too, and one over `max_body_bytes` with 413. Other requests pass untouched.
//!
//! Configuration:
//! ```json
//! {"blocked_words": ["forbidden"], "max_tokens": 1024,
//!  "path": "/v1/chat/completions", "max_body_bytes": 1048576}
//! ```

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

fn default_path() -> String {
    "/v1/chat/completions".to_string()
}

fn default_max_body() -> usize {
    1 << 20
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    blocked_words: Vec<String>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let parsed = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_str::<Config>("{}")
        } else {
            serde_json::from_slice::<Config>(&bytes)
        };
        match parsed {
            Ok(mut c) => {
                c.blocked_words.retain(|w| !w.is_empty());
                for w in &mut c.blocked_words {
                    *w = w.to_lowercase();
                }
                log::info!(
                    "chat_guard: {} blocked word(s), max_tokens {:?} on {}",
                    c.blocked_words.len(),
                    c.max_tokens,
                    c.path
                );
                self.config = Some(Rc::new(c));
                true
            }
            Err(e) => {
                log::error!("chat_guard: bad configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(Guard {
            config,
            checking: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Why a request is refused: status, OpenAI error `type`, `code`, message.
struct Refusal(u32, &'static str, &'static str, String);

/// The whole check of one parsed chat request.
fn check(config: &Config, body: &[u8]) -> Result<(), Refusal> {
    let req: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    if let Some(max) = config.max_tokens {
        for field in ["max_tokens", "max_completion_tokens"] {
            if let Some(n) = req.get(field).and_then(Value::as_u64) {
                if n > max {
                    return Err(Refusal(
                        400,
                        "invalid_request_error",
                        "max_tokens_exceeded",
                        format!("{field} is {n}, above this gateway's maximum of {max}"),
                    ));
                }
            }
        }
    }
    if config.blocked_words.is_empty() {
        return Ok(());
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (i, m) in messages.iter().enumerate() {
        let texts: Vec<&str> = match m.get("content") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => Vec::new(),
        };
        for text in texts {
            let lower = text.to_lowercase();
            if config
                .blocked_words
                .iter()
                .any(|w| lower.contains(w.as_str()))
            {
                return Err(Refusal(
                    400,
                    "invalid_request_error",
                    "content_blocked",
                    format!("messages[{i}] contains a word blocked by this gateway"),
                ));
            }
        }
    }
    Ok(())
}

struct Guard {
    config: Rc<Config>,
    checking: bool,
}

impl Guard {
    fn refuse(&self, r: Refusal) -> Action {
        let Refusal(status, kind, code, message) = r;
        log::info!("chat_guard: refused ({code}): {message}");
        let body = serde_json::json!({
            "error": {"message": message, "type": kind, "param": null, "code": code}
        });
        self.send_http_response(
            status,
            vec![("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        );
        Action::Pause
    }
}

impl Context for Guard {}

impl HttpContext for Guard {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        if !method.eq_ignore_ascii_case("POST") || path != self.config.path {
            return Action::Continue;
        }
        if end_of_stream {
            return self.refuse(Refusal(
                400,
                "invalid_request_error",
                "invalid_json",
                "request body is empty".into(),
            ));
        }
        // Buffer the body (Pause in the body callback). The headers are not held with Pause: in
        // Envoy that stops all iteration and the body would never reach this plugin. A refusal
        // then resets whatever the host already started upstream.
        self.checking = true;
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.checking {
            return Action::Continue;
        }
        if body_size > self.config.max_body_bytes {
            self.checking = false;
            let msg = format!("request body is over {} bytes", self.config.max_body_bytes);
            return self.refuse(Refusal(
                413,
                "invalid_request_error",
                "request_too_large",
                msg,
            ));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.checking = false;
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        match check(&self.config, &body) {
            Ok(()) => Action::Continue,
            Err(r) => self.refuse(r),
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body ended by trailers: judge what was buffered.
        if !self.checking {
            return Action::Continue;
        }
        self.checking = false;
        let body = self
            .get_http_request_body(0, self.config.max_body_bytes)
            .unwrap_or_default();
        match check(&self.config, &body) {
            Ok(()) => Action::Continue,
            Err(r) => self.refuse(r),
        }
    }
}
