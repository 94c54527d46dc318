//! A listener's `tls` object: TLS towards clients (certificates by SNI, versions, ALPN, session
//! resumption, client certificates), and its validation.
//!
//! The files are read here only to check them (PEM that parses, a certificate and a key in each
//! pair); the data plane loads them again when it builds a generation, and there a key that does
//! not fit its certificate fails the generation with the file named.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::units::Dur;

/// TLS on a listener. The first certificate is the default: it is served when the client sends
/// no SNI or a name that no certificate carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates with their keys (RSA or ECDSA), picked by the SNI name of each handshake.
    pub certificates: Vec<ServerCertificate>,
    /// The oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Protocols offered by ALPN, in order of preference: `h2` and `http/1.1` (`h2` needs the
    /// listener's `http2.enabled`, the default).
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
    /// Stateless session tickets (TLS 1.2 and 1.3), encrypted with a key shared by every core
    /// and rotated every 6 hours, so a resumption works on whichever core it lands.
    #[serde(default = "yes")]
    pub session_tickets: bool,
    /// Sessions kept per core for resumption by session id (TLS 1.2 clients without tickets);
    /// 0 turns the cache off.
    #[serde(default = "session_cache")]
    pub session_cache: usize,
    /// The handshake must finish within this, counted from the accept.
    #[serde(default = "handshake_timeout")]
    pub handshake_timeout: Dur,
    /// Client certificates (mutual TLS).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// A certificate chain and its key, both PEM files, watched for changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCertificate {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// SNI names this certificate answers (`api.example.com`, `*.example.com`). Empty: the DNS
    /// names of the certificate itself.
    #[serde(default)]
    pub names: Vec<String>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    Tls13,
}

/// Client certificates on a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// PEM bundle of the CAs that client certificates must chain to.
    pub ca_file: PathBuf,
    /// `required` (default): a handshake without a valid client certificate fails. `optional`:
    /// a client may present none, but one it presents must verify.
    #[serde(default)]
    pub mode: ClientAuthMode,
    /// Send the verified client's subject upstream in this header (a client-sent value of it
    /// is always removed). Absent: nothing is sent.
    #[serde(default)]
    pub forward_header: Option<String>,
}

/// Whether a client certificate is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// Every client must present a valid certificate.
    #[default]
    Required,
    /// A certificate is verified when presented; clients without one are let in.
    Optional,
}

fn default_alpn() -> Vec<String> {
    vec!["h2".into(), "http/1.1".into()]
}
fn yes() -> bool {
    true
}
fn session_cache() -> usize {
    1024
}
fn handshake_timeout() -> Dur {
    Dur::secs(10)
}

/// Whether `name` is a DNS name or a wildcard one (`*.` and a DNS name of two labels or more).
pub fn valid_sni_name(name: &str) -> bool {
    let base = match name.strip_prefix("*.") {
        Some(rest) if rest.contains('.') => rest,
        Some(_) => return false,
        None => name,
    };
    !base.is_empty()
        && base.len() <= 253
        && base.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a listener's `tls` (at `f`): reports each problem through `fail(field, message)`.
pub(crate) fn check(
    f: &str,
    tls: &ListenerTls,
    fail: &mut dyn FnMut(String, String),
    pem_certificates: fn(&Path) -> Result<(), String>,
    pem_key: fn(&Path) -> Result<(), String>,
) {
    if tls.certificates.is_empty() {
        fail(
            format!("{f}.certificates"),
            "at least one certificate is needed".into(),
        );
    }
    for (i, c) in tls.certificates.iter().enumerate() {
        let f = format!("{f}.certificates[{i}]");
        if let Err(e) = pem_certificates(&c.cert) {
            fail(format!("{f}.cert"), e);
        }
        if let Err(e) = pem_key(&c.key) {
            fail(format!("{f}.key"), e);
        }
        for (j, n) in c.names.iter().enumerate() {
            if !valid_sni_name(n) {
                fail(
                    format!("{f}.names[{j}]"),
                    format!("`{n}` is not a DNS name or a wildcard (`*.example.com`)"),
                );
            }
        }
    }
    for (i, p) in tls.alpn.iter().enumerate() {
        if p != "http/1.1" && p != "h2" {
            fail(
                format!("{f}.alpn[{i}]"),
                format!("`{p}` is not served on this listener (only `h2` and `http/1.1`)"),
            );
        }
    }
    if tls.handshake_timeout.get().is_zero() {
        fail(
            format!("{f}.handshake_timeout"),
            "must be more than 0".into(),
        );
    }
    if let Some(ca) = &tls.client_auth {
        if let Err(e) = pem_certificates(&ca.ca_file) {
            fail(format!("{f}.client_auth.ca_file"), e);
        }
        if let Some(h) = &ca.forward_header {
            let ok = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !ok {
                fail(
                    format!("{f}.client_auth.forward_header"),
                    format!("`{h}` is not a valid header name"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names() {
        for ok in ["a.example.com", "localhost", "*.example.com", "x-1.y"] {
            assert!(valid_sni_name(ok), "{ok}");
        }
        for bad in [
            "", "*", "*.com", "a..b", "-a.b", "a_b.c", "*.*.b.c", "a.*.c",
        ] {
            assert!(!valid_sni_name(bad), "{bad}");
        }
    }
}
