//! `weir-config`: the configuration of a Weir gateway, shared by the data plane (`weir`) and the
//! control daemon (`weir-control`).
//!
//! - [`Config`] and its parts ([`schema`]) are the serde schema of `weir.yaml`; every struct refuses
//!   unknown fields.
//! - [`parse`] / [`load_file`] turn YAML into a [`Config`] and run [`validate`], which checks
//!   what serde cannot (references between objects, addresses, regexes, CIDRs, status codes) and
//!   reports every [`Problem`] with the file, line and field.
//! - [`QUICKSTART`] is the bundled configuration `weir` runs with no arguments.
//!
//! The data plane compiles a validated `Config` into per-core state; nothing downstream re-checks it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ai;
pub mod auth;
mod error;
pub mod l4;
pub mod listener_tls;
pub mod plugin;
pub mod quota;
pub mod schema;
mod source_map;
pub mod units;
mod validate;

pub use ai::*;
pub use auth::{AuthFilter, Consumer, ConsumerKey};
pub use error::{Error, Problem, Result};
pub use l4::{ProxyProtocolIn, ProxyProtocolVersion, SniRoute, TcpProxy};
pub use listener_tls::{ClientAuth, ClientAuthMode, ListenerTls, ServerCertificate, TlsVersion};
pub use plugin::{Buffering, OnError, Plugin};
pub use quota::QuotaFilter;
pub use schema::*;
pub use units::{ByteSize, Dur};
pub use validate::validate;

use source_map::SourceMap;

/// The bundled quickstart configuration (listener 127.0.0.1:8080, admin 127.0.0.1:9901).
pub const QUICKSTART: &str = include_str!("../quickstart.yaml");

/// Parses and validates YAML text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config> {
    let map = SourceMap::new(text);
    // `singleton_map_recursive`: enums are written `{ prefix: /api }` in YAML, as in JSON, not as tags.
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let config: Config =
        serde_yaml_ng::with::singleton_map_recursive::deserialize(de).map_err(|e| {
            let (field, message) = split_serde_message(&e.to_string());
            let line = e
                .location()
                .map(|l| l.line())
                .or_else(|| map.line_of(&field));
            Error::Invalid {
                file: file.to_string(),
                problems: vec![Problem {
                    line,
                    field,
                    message,
                }],
            }
        })?;
    validate(&config).map_err(|mut problems| {
        for p in &mut problems {
            p.line = map.line_of(&p.field);
        }
        Error::Invalid {
            file: file.to_string(),
            problems,
        }
    })?;
    Ok(config)
}

/// Reads, parses and validates a YAML file.
pub fn load_file(path: &std::path::Path) -> Result<Config> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

/// serde_yaml_ng writes `path.to.field: message at line L column C`; keep the path and the message.
fn split_serde_message(msg: &str) -> (String, String) {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() && path != "." => {
            (path.to_string(), rest.to_string())
        }
        _ => (String::new(), msg.to_string()),
    }
}

#[cfg(test)]
mod tests;
