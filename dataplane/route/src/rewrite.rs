//! Path and host rewriting before a request goes upstream: [`Rewriter`].

use bytes::Bytes;
use regex::bytes::Regex;
use weir_config::{PathMatch, Rewrite, RouteMatch};
use weir_http::RequestHead;

use crate::error::{regex, Error, Result};
use crate::matcher::prefix_matches;

/// A route's `rewrite`, compiled. The query string is always kept.
#[derive(Debug, Clone)]
pub struct Rewriter {
    path: PathRewrite,
    host: Option<Bytes>,
}

#[derive(Debug, Clone)]
enum PathRewrite {
    None,
    /// Replace the route's matched prefix.
    Prefix {
        /// The route's prefix as configured (for the match check).
        prefix: Box<[u8]>,
        /// The same without a trailing `/`: what is cut off the path.
        cut: usize,
        replacement: Box<[u8]>,
    },
    /// Substitute every match of `re` in the path.
    Regex {
        re: Regex,
        substitution: Box<[u8]>,
    },
}

impl Rewriter {
    /// Compiles `rewrite` for a route matching with `m`; `path_prefix` needs `m` to match a path
    /// prefix, since that prefix is what it replaces.
    pub fn new(rewrite: &Rewrite, m: &RouteMatch) -> Result<Rewriter> {
        let path = match (&rewrite.path_prefix, &rewrite.path_regex) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "rewrite",
                    "give `path_prefix` or `path_regex`, not both",
                ))
            }
            (Some(replacement), None) => {
                let Some(PathMatch::Prefix(prefix)) = &m.path else {
                    return Err(Error::invalid(
                        "rewrite.path_prefix",
                        "needs the route to match a path prefix",
                    ));
                };
                if !replacement.starts_with('/') {
                    return Err(Error::invalid("rewrite.path_prefix", "must start with /"));
                }
                PathRewrite::Prefix {
                    prefix: prefix.as_bytes().into(),
                    cut: prefix.strip_suffix('/').unwrap_or(prefix).len(),
                    replacement: replacement.as_bytes().into(),
                }
            }
            (None, Some(rr)) => PathRewrite::Regex {
                re: regex("rewrite.path_regex.pattern", &rr.pattern, &rr.pattern)?,
                substitution: rr.substitution.as_bytes().into(),
            },
            (None, None) => PathRewrite::None,
        };
        let host = match &rewrite.host {
            Some(h) if h.is_empty() || h.bytes().any(|b| !b.is_ascii_graphic() || b == b'/') => {
                return Err(Error::invalid("rewrite.host", "not a host"))
            }
            Some(h) => Some(Bytes::copy_from_slice(h.as_bytes())),
            None => None,
        };
        Ok(Rewriter { path, host })
    }

    /// Rewrites the request's target and host in place. A path the rewrite does not apply to (a
    /// prefix that is not there, a regex that does not match) is left as it was.
    pub fn apply(&self, req: &mut RequestHead) {
        if let Some(path) = self.new_path(req.path()) {
            let query = req.query();
            let mut target = Vec::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
            target.extend_from_slice(&path);
            if let Some(q) = query {
                target.push(b'?');
                target.extend_from_slice(q);
            }
            req.target = Bytes::from(target);
        }
        if let Some(h) = &self.host {
            req.host = h.clone();
            req.headers.set(Bytes::from_static(b"host"), h.clone());
        }
    }

    /// The rewritten path, or `None` to keep it.
    fn new_path(&self, path: &[u8]) -> Option<Vec<u8>> {
        match &self.path {
            PathRewrite::None => None,
            PathRewrite::Prefix {
                prefix,
                cut,
                replacement,
            } => {
                if !prefix_matches(prefix, path) {
                    return None;
                }
                // At a segment boundary, so `rest` is empty or starts with `/`.
                let rest = path.get(*cut..).unwrap_or_default();
                let mut out = Vec::with_capacity(replacement.len() + rest.len());
                out.extend_from_slice(replacement);
                if out.ends_with(b"/") && rest.starts_with(b"/") {
                    out.pop();
                }
                out.extend_from_slice(rest);
                Some(out)
            }
            PathRewrite::Regex { re, substitution } => {
                // Every match is replaced, as in Envoy's `regex_rewrite`.
                let out = re.replace_all(path, &**substitution);
                if let std::borrow::Cow::Borrowed(_) = out {
                    return None;
                }
                let mut out = out.into_owned();
                if !out.starts_with(b"/") {
                    out.insert(0, b'/');
                }
                Some(out)
            }
        }
    }
}
