//! Host normalization: the port and a trailing dot are never part of host matching, and names compare
//! case-insensitively, so both the configured hosts and the request's authority are reduced to
//! lowercase `name` (or `[v6]`) before they meet.

use crate::error::{Error, Result};

/// Authorities up to this long are lowercased on the stack. DNS names stop at 253 bytes, so only a
/// bogus `Host` ever takes the heap path.
const STACK_HOST: usize = 256;

/// `Example.COM:8080` → `Example.COM`, `[::1]:80` → `[::1]`, `example.com.` → `example.com`.
pub(crate) fn strip_port(authority: &[u8]) -> &[u8] {
    let host = if authority.first() == Some(&b'[') {
        match memchr::memchr(b']', authority) {
            Some(i) => &authority[..=i],
            None => authority,
        }
    } else {
        match memchr::memchr(b':', authority) {
            Some(i) => &authority[..i],
            None => authority,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// Calls `f` with the request authority reduced to a lowercase host, without allocating for any
/// real host name.
pub(crate) fn with_host<R>(authority: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let host = strip_port(authority);
    if !host.iter().any(u8::is_ascii_uppercase) {
        return f(host);
    }
    if host.len() <= STACK_HOST {
        let mut buf = [0u8; STACK_HOST];
        let buf = &mut buf[..host.len()];
        buf.copy_from_slice(host);
        buf.make_ascii_lowercase();
        f(buf)
    } else {
        f(&host.to_ascii_lowercase())
    }
}

/// A route's host condition: exact names and `*.suffix` wildcards, any of which may match.
#[derive(Debug, Clone)]
pub(crate) struct HostCond {
    /// Lowercase names without port.
    pub(crate) exact: Vec<Box<[u8]>>,
    /// Lowercase suffixes with their leading dot: `*.example.com` is `.example.com`.
    pub(crate) suffixes: Vec<Box<[u8]>>,
}

impl HostCond {
    /// Compiles `match.host`; `None` when the list is empty (any host).
    pub(crate) fn new(hosts: &[String]) -> Result<Option<HostCond>> {
        if hosts.is_empty() {
            return Ok(None);
        }
        let mut cond = HostCond {
            exact: Vec::new(),
            suffixes: Vec::new(),
        };
        for (i, h) in hosts.iter().enumerate() {
            let field = || format!("match.host[{i}]");
            let (wild, bare) = match h.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, h.as_str()),
            };
            let bare = strip_port(bare.as_bytes());
            if bare.is_empty() {
                return Err(Error::invalid(field(), "empty host"));
            }
            if bare
                .iter()
                .any(|b| matches!(b, b'*' | b'/' | b'?' | b'#' | b'@') || !b.is_ascii_graphic())
            {
                return Err(Error::invalid(
                    field(),
                    "use an exact host or `*.suffix` (one leading wildcard label)",
                ));
            }
            let lower = bare.to_ascii_lowercase();
            if wild {
                let mut s = Vec::with_capacity(lower.len() + 1);
                s.push(b'.');
                s.extend_from_slice(&lower);
                cond.suffixes.push(s.into_boxed_slice());
            } else {
                cond.exact.push(lower.into_boxed_slice());
            }
        }
        Ok(Some(cond))
    }

    /// `host` must already be normalized (see [`with_host`]).
    pub(crate) fn matches(&self, host: &[u8]) -> bool {
        self.exact.iter().any(|e| **e == *host)
            || self.suffixes.iter().any(|s| wild_matches(s, host))
    }
}

/// `.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
pub(crate) fn wild_matches(suffix: &[u8], host: &[u8]) -> bool {
    host.len() > suffix.len() && host.ends_with(suffix)
}
