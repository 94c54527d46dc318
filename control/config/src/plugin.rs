//! Proxy-Wasm plugins: the top-level `plugins:` list and its checks.
//!
//! A plugin's module comes from a `file` (read by the data plane when it builds a generation) or
//! from `module` (the bytes, base64, as the control daemon sends them); `sha256`, when given, must
//! match the bytes. Compiling the module is the data plane's job: a module that does not compile or
//! is not a Proxy-Wasm 0.2.x module makes the data plane refuse the generation (NACK), and the
//! previous one keeps running.

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Dur};

/// One Proxy-Wasm plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Name, referenced by `{type: wasm, plugin: NAME}` filters; also the `plugin_name` property.
    pub name: String,
    /// Path of the `.wasm` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The module itself, base64 (how the control daemon ships a module it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Lower-case hex SHA-256 of the module bytes; checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Plugin configuration (any YAML value), handed to the plugin as JSON in
    /// `proxy_on_configure` (a string is handed over as is).
    #[serde(default)]
    pub config: serde_json::Value,
    /// VM configuration, handed over the same way in `proxy_on_vm_start`.
    #[serde(default)]
    pub vm_config: serde_json::Value,
    /// What a request sees when the plugin fails (trap, deadline, memory cap, ABI misuse).
    #[serde(default)]
    pub on_error: OnError,
    /// Largest linear memory of one instance.
    #[serde(default = "default_max_memory")]
    pub max_memory: ByteSize,
    /// Longest CPU time of one callback.
    #[serde(default = "default_deadline")]
    pub callback_deadline: Dur,
    /// Longest time a request may stay paused by the plugin (`Pause` from a request callback
    /// without an HTTP callout) until it continues it with `proxy_continue_stream`; past it the
    /// request is answered 504.
    #[serde(default = "default_pause_limit")]
    pub pause_limit: Dur,
    /// Runs on every route, before the route's own filters.
    #[serde(default)]
    pub global: bool,
    /// Which bodies the plugin sees whole (buffered) rather than chunk by chunk; a buffered body
    /// can be read and replaced with `get/set_buffer_bytes`.
    #[serde(default)]
    pub buffer: Buffering,
}

/// Bodies a plugin sees whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Buffering {
    /// The request body, before it is sent upstream.
    #[serde(default)]
    pub request: bool,
    /// The response body, before it is sent downstream.
    #[serde(default)]
    pub response: bool,
}

/// Fail open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The request goes on as if the plugin were not there.
    Open,
    /// The request is answered with a 503 error.
    #[default]
    Closed,
}

fn default_max_memory() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_deadline() -> Dur {
    Dur::ms(100)
}

fn default_pause_limit() -> Dur {
    Dur::ms(30_000)
}

/// Every problem with the plugins and the `wasm` filters that name them.
pub(crate) fn validate(config: &crate::Config) -> Vec<crate::Problem> {
    let mut out = Vec::new();
    let mut fail = |field: String, message: String| {
        out.push(crate::Problem {
            line: None,
            field,
            message,
        })
    };
    let mut names = std::collections::HashSet::new();
    for (i, p) in config.plugins.iter().enumerate() {
        let f = format!("plugins[{i}]");
        if p.name.is_empty() || !p.name.bytes().all(|b| b.is_ascii_graphic()) {
            fail(
                format!("{f}.name"),
                "a plugin name is printable ASCII without spaces".into(),
            );
        }
        if !names.insert(p.name.as_str()) {
            fail(
                format!("{f}.name"),
                format!("plugin `{}` is defined twice", p.name),
            );
        }
        match (&p.file, &p.module) {
            (None, None) => fail(
                format!("{f}.file"),
                "give the module's `file` (or its bytes in `module`)".into(),
            ),
            (Some(_), Some(_)) => fail(
                format!("{f}.module"),
                "`file` and `module` exclude each other".into(),
            ),
            (Some(path), None) => {
                if let Err(e) = std::fs::metadata(path) {
                    fail(format!("{f}.file"), format!("cannot read `{path}`: {e}"));
                }
            }
            (None, Some(_)) => {}
        }
        if let Some(h) = &p.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                fail(
                    format!("{f}.sha256"),
                    "64 lower-case hex digits expected".into(),
                );
            }
        }
        if p.max_memory.0 < 1 << 16 || p.max_memory.0 > 4 << 30 {
            fail(
                format!("{f}.max_memory"),
                "must be between 64KiB (one Wasm page) and 4GiB".into(),
            );
        }
        let d = p.callback_deadline.get();
        if d < std::time::Duration::from_millis(1) || d > std::time::Duration::from_secs(10) {
            fail(
                format!("{f}.callback_deadline"),
                "must be between 1ms and 10s".into(),
            );
        }
        let d = p.pause_limit.get();
        if d < std::time::Duration::from_millis(1) || d > std::time::Duration::from_secs(3600) {
            fail(
                format!("{f}.pause_limit"),
                "must be between 1ms and 1h".into(),
            );
        }
    }
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, r) in l.routes.iter().enumerate() {
            for (k, filt) in r.filters.iter().enumerate() {
                if let crate::FilterConfig::Wasm { plugin } = filt {
                    if !names.contains(plugin.as_str()) {
                        fail(
                            format!("listeners[{i}].routes[{j}].filters[{k}].plugin"),
                            format!("no plugin named `{plugin}` in `plugins`"),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Replaces each plugin's `file` by its bytes (`module`, base64) and their `sha256`: what the
/// control daemon sends, so a data plane needs no access to the daemon's files. A file that
/// cannot be read is left as a path (the data plane then reads it, or refuses the generation);
/// a configured `sha256` that does not match the file is an error.
pub fn embed_modules(config: &mut crate::Config) -> Result<(), String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    for p in &mut config.plugins {
        let Some(path) = &p.file else { continue };
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some(expected) = &p.sha256 {
            if *expected != sha {
                return Err(format!(
                    "plugin `{}`: `{path}` has sha256 {sha}, the config says {expected}",
                    p.name
                ));
            }
        }
        p.module = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
        p.sha256 = Some(sha);
        p.file = None;
    }
    Ok(())
}
