//! `add_headers`: adds and strips request and response headers, as its plugin configuration says.
//!
//! This is also the header-rewrite plugin of the Envoy-vs-Weir benchmark, so the per-request work is
//! only the header hostcalls: the configuration is parsed once, in `on_configure`, and every HTTP
//! context borrows it through an `Rc`.
//!
//! Configuration (every field optional):
//! ```json
//! {"request_add": {"x-plugin": "on"}, "request_remove": ["x-secret"],
//!  "response_add": {"x-served-by": "weir"}, "response_remove": ["server"]}
//! ```
//! Removals run before additions, so a name in both lists is replaced, not duplicated.

use std::collections::BTreeMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { rules: Rc::default() }) });
}}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    request_add: BTreeMap<String, String>,
    #[serde(default)]
    request_remove: Vec<String>,
    #[serde(default)]
    response_add: BTreeMap<String, String>,
    #[serde(default)]
    response_remove: Vec<String>,
}

/// The configuration as flat lists, header names lower-cased (HTTP/2 and Envoy's maps want that).
#[derive(Debug, Default)]
struct Rules {
    request_add: Vec<(String, String)>,
    request_remove: Vec<String>,
    response_add: Vec<(String, String)>,
    response_remove: Vec<String>,
}

impl From<Config> for Rules {
    fn from(c: Config) -> Self {
        let lower = |v: Vec<String>| v.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        let lower_pairs = |m: BTreeMap<String, String>| {
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        };
        Rules {
            request_add: lower_pairs(c.request_add),
            request_remove: lower(c.request_remove),
            response_add: lower_pairs(c.response_add),
            response_remove: lower(c.response_remove),
        }
    }
}

struct Root {
    rules: Rc<Rules>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let rules = match self.get_plugin_configuration() {
            None => Rules::default(),
            Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Rules::default(),
            Some(bytes) => match serde_json::from_slice::<Config>(&bytes) {
                Ok(c) => c.into(),
                Err(e) => {
                    // Refusing the configuration makes the host reject the plugin, loudly.
                    log::error!("add_headers: bad configuration: {e}");
                    return false;
                }
            },
        };
        log::info!(
            "add_headers: request +{} -{}, response +{} -{}",
            rules.request_add.len(),
            rules.request_remove.len(),
            rules.response_add.len(),
            rules.response_remove.len()
        );
        self.rules = Rc::new(rules);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Headers {
            rules: Rc::clone(&self.rules),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Headers {
    rules: Rc<Rules>,
}

impl Context for Headers {}

impl HttpContext for Headers {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for name in &self.rules.request_remove {
            self.remove_http_request_header(name);
        }
        for (name, value) in &self.rules.request_add {
            self.add_http_request_header(name, value);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for name in &self.rules.response_remove {
            self.remove_http_response_header(name);
        }
        for (name, value) in &self.rules.response_add {
            self.add_http_response_header(name, value);
        }
        Action::Continue
    }
}
