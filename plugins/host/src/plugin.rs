//! A plugin as the whole process shares it: its compiled module and settings, built once per
//! config generation on the main thread, then instantiated on every core.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{ExternType, Module};

use crate::engine::{self, TICK};
use crate::error::{Error, Result};

/// A compiled plugin and its settings.
#[derive(Debug)]
pub struct Plugin {
    /// Name (the `plugin_name` property, the `plugin` label of metrics).
    pub name: String,
    /// SHA-256 of the module bytes, hex.
    pub sha256: String,
    /// The compiled module.
    pub module: Module,
    /// `config` as handed to `proxy_on_configure`.
    pub config: Vec<u8>,
    /// `vm_config` as handed to `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// Answer 503 (closed) or go on (open) when the plugin fails.
    pub fail_open: bool,
    /// Linear memory cap, bytes.
    pub max_memory: usize,
    /// Epoch ticks a callback may run.
    pub deadline_ticks: u64,
    /// Longest a request stays paused by the plugin before it is answered 504.
    pub pause_limit: std::time::Duration,
    /// Runs on every route.
    pub global: bool,
    /// Sees the request body whole.
    pub buffer_request: bool,
    /// Sees the response body whole.
    pub buffer_response: bool,
    /// Exports `proxy_on_request_body` and does not buffer the request: its routes may hold
    /// request body pieces back at run time (`StopIterationAndBuffer`).
    pub request_body_hold: bool,
    /// The same for `proxy_on_response_body` and the response.
    pub response_body_hold: bool,
    /// Exports `proxy_on_request_body` (without it a request body costs the plugin nothing).
    pub request_body: bool,
    /// Exports `proxy_on_response_body`.
    pub response_body: bool,
    /// Imports `proxy_get_property`: the values behind properties are gathered for each of its
    /// callbacks (a plugin that cannot read them is spared that).
    pub reads_properties: bool,
    /// Exports `proxy_on_request_trailers`: its routes read request trailers.
    pub request_trailers: bool,
    /// Exports `proxy_on_response_trailers`: its routes read response trailers.
    pub response_trailers: bool,
    /// The settings it was built from, to reuse it when a new generation keeps them.
    pub source: weir_config::Plugin,
}

/// The JSON form of a config value; a string is handed over as its own bytes (as Envoy does with
/// a `StringValue`), nothing as empty.
fn config_bytes(v: &serde_json::Value) -> Vec<u8> {
    match v {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

impl Plugin {
    /// Reads, checks and compiles a configured plugin (`cache`: where compiled modules are kept).
    /// `prev`, a plugin of the previous generation, is reused when nothing changed.
    pub fn build(
        cfg: &weir_config::Plugin,
        cache: Option<&Path>,
        prev: Option<&Arc<Plugin>>,
    ) -> Result<Arc<Plugin>> {
        let bytes = read_module(cfg)?;
        let sha = engine::sha256_hex(&bytes);
        if let Some(expected) = &cfg.sha256 {
            if *expected != sha {
                return Err(Error::Hash {
                    name: cfg.name.clone(),
                    expected: expected.clone(),
                    actual: sha,
                });
            }
        }
        if let Some(p) = prev {
            if p.sha256 == sha && p.source == *cfg {
                return Ok(p.clone());
            }
        }
        let module = engine::load(&bytes, &sha, cache).map_err(|e| match e {
            Error::Compile(m) => Error::Start(cfg.name.clone(), format!("does not compile: {m}")),
            other => other,
        })?;
        check_abi(&cfg.name, &module)?;
        // Decided once, from the exports: a plugin without trailer callbacks costs its routes
        // nothing at a body's end. (The Rust SDK exports both whatever the plugin implements.)
        let exports = |n: &str| {
            module
                .exports()
                .any(|e| e.name() == n && matches!(e.ty(), ExternType::Func(_)))
        };
        let (request_trailers, response_trailers) = (
            exports("proxy_on_request_trailers"),
            exports("proxy_on_response_trailers"),
        );
        let (request_body, response_body) = (
            exports("proxy_on_request_body"),
            exports("proxy_on_response_body"),
        );
        let request_body_hold = !cfg.buffer.request && request_body;
        let response_body_hold = !cfg.buffer.response && response_body;
        let reads_properties = module
            .imports()
            .any(|i| i.name() == "proxy_get_property" && matches!(i.ty(), ExternType::Func(_)));
        let deadline: Duration = cfg.callback_deadline.get();
        Ok(Arc::new(Plugin {
            name: cfg.name.clone(),
            sha256: sha,
            module,
            config: config_bytes(&cfg.config),
            vm_config: config_bytes(&cfg.vm_config),
            fail_open: cfg.on_error == weir_config::OnError::Open,
            max_memory: usize::try_from(cfg.max_memory.0).unwrap_or(usize::MAX),
            deadline_ticks: (deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1,
            pause_limit: cfg.pause_limit.get(),
            global: cfg.global,
            buffer_request: cfg.buffer.request,
            buffer_response: cfg.buffer.response,
            request_body_hold,
            response_body_hold,
            request_body,
            response_body,
            reads_properties,
            request_trailers,
            response_trailers,
            source: cfg.clone(),
        }))
    }
}

fn read_module(cfg: &weir_config::Plugin) -> Result<Vec<u8>> {
    let read_err = |m: String| Error::Read(cfg.name.clone(), m);
    match (&cfg.file, &cfg.module) {
        (Some(path), _) => std::fs::read(path).map_err(|e| read_err(format!("`{path}`: {e}"))),
        (None, Some(b64)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| read_err(format!("module is not base64: {e}")))
        }
        (None, None) => Err(read_err("no `file` and no `module`".into())),
    }
}

/// A Proxy-Wasm 0.2.x module exports its ABI version and a memory; its linear memory must fit
/// under the pool's cap.
fn check_abi(name: &str, module: &Module) -> Result<()> {
    let abi = |m: &str| Error::Abi(name.to_owned(), m.to_owned());
    let has = |n: &str| module.exports().any(|e| e.name() == n);
    if !has("proxy_abi_version_0_2_1") && !has("proxy_abi_version_0_2_0") {
        if has("proxy_abi_version_0_1_0") {
            return Err(abi(
                "exports ABI 0.1.0 only; this host speaks 0.2.1 (and 0.2.0)",
            ));
        }
        return Err(abi(
            "exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0",
        ));
    }
    if !module
        .exports()
        .any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(_)))
    {
        return Err(abi("exports no `memory`"));
    }
    if !has("proxy_on_memory_allocate") && !has("malloc") {
        return Err(abi("exports neither proxy_on_memory_allocate nor malloc"));
    }
    Ok(())
}
