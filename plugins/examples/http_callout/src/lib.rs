//! `http_callout`: asks an external service about each request before letting it through
//! (`dispatch_http_call`). On the request headers it sends `GET <path>` to the configured cluster,
//! copying the configured request headers onto the callout, and holds the request. When the answer
//! comes back with status 200 it copies the configured headers of the answer onto the request and
//! resumes it; any other status, a timeout or a failed dispatch denies the request with 403.
//!
//! Configuration:
//! ```json
//! {"cluster": "authz", "path": "/check", "authority": "authz.local", "timeout_ms": 1000,
//!  "forward_headers": ["x-api-key"], "copy_headers": ["x-user"]}
//! ```
//! `cluster` is the host's name for the upstream (an Envoy cluster, a Weir callout cluster).

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

fn default_path() -> String {
    "/".to_string()
}

fn default_timeout() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    cluster: String,
    #[serde(default = "default_path")]
    path: String,
    /// `:authority` of the callout; defaults to the cluster name.
    #[serde(default)]
    authority: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    forward_headers: Vec<String>,
    #[serde(default)]
    copy_headers: Vec<String>,
}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("http_callout: a configuration with `cluster` is required");
            return false;
        };
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(mut c) => {
                for h in c
                    .forward_headers
                    .iter_mut()
                    .chain(c.copy_headers.iter_mut())
                {
                    h.make_ascii_lowercase();
                }
                log::info!(
                    "http_callout: GET {}{} within {} ms",
                    c.cluster,
                    c.path,
                    c.timeout_ms
                );
                self.config = Some(Rc::new(c));
                true
            }
            Err(e) => {
                log::error!("http_callout: bad configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = Rc::clone(self.config.as_ref()?);
        Some(Box::new(Callout {
            config,
            token: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Callout {
    config: Rc<Config>,
    /// The pending callout, if any: an answer with another token is not ours.
    token: Option<u32>,
}

impl Callout {
    fn deny(&self, why: &str) {
        log::info!("http_callout: denied: {why}");
        let body = serde_json::json!({"error": {"message": format!("denied: {why}"), "type": "forbidden", "code": 403}});
        self.send_http_response(
            403,
            vec![("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        );
    }
}

impl HttpContext for Callout {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let c = Rc::clone(&self.config);
        let forwarded: Vec<(String, String)> = c
            .forward_headers
            .iter()
            .filter_map(|h| self.get_http_request_header(h).map(|v| (h.clone(), v)))
            .collect();
        let authority = c.authority.as_deref().unwrap_or(&c.cluster);
        let mut headers = vec![
            (":method", "GET"),
            (":path", c.path.as_str()),
            (":authority", authority),
        ];
        headers.extend(forwarded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match self.dispatch_http_call(
            &c.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(c.timeout_ms),
        ) {
            Ok(token) => {
                self.token = Some(token);
                Action::Pause
            }
            Err(status) => {
                self.deny(&format!(
                    "callout to {} could not be sent ({status:?})",
                    c.cluster
                ));
                Action::Pause
            }
        }
    }
}

impl Context for Callout {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
        if self.token != Some(token_id) {
            return;
        }
        self.token = None;
        // A timeout or a reset answers with no headers at all, so no status either.
        match self.get_http_call_response_header(":status").as_deref() {
            Some("200") => {
                for h in &self.config.copy_headers {
                    // Set, not add: a client must not smuggle its own value of a header the
                    // upstream will trust.
                    let value = self.get_http_call_response_header(h);
                    self.set_http_request_header(h, value.as_deref());
                }
                self.resume_http_request();
            }
            Some(other) => self.deny(&format!("authorization service answered {other}")),
            None => self.deny("authorization service did not answer"),
        }
    }
}
