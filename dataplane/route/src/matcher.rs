//! One route's conditions, compiled: [`RouteMatcher`].

use regex::bytes::Regex;
use weir_config::{PathMatch, RouteMatch, ValueMatch};
use weir_http::RequestHead;

use crate::error::{whole_regex, Error, Result};
use crate::host::{with_host, HostCond};
use crate::query;

/// The compiled conditions of one route; a request matches when every given condition holds, and a
/// route with no conditions matches every request.
///
/// Conditions are checked cheapest first: method, host, exact or prefix path, header and query
/// equality and presence, and only then regular expressions.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    methods: Box<[Box<[u8]>]>,
    pub(crate) hosts: Option<HostCond>,
    path: PathCond,
    headers: Conds,
    query: Conds,
}

#[derive(Debug, Clone)]
enum PathCond {
    Any,
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    /// `literal` is what every match must start with (may be empty): a `starts_with` turns most
    /// non-matching paths away before the regex engine is entered at all.
    Regex {
        literal: Box<[u8]>,
        re: Regex,
    },
}

/// Header or query conditions, equality and presence first, regexes from `first_regex` on.
#[derive(Debug, Clone)]
struct Conds {
    list: Box<[ValueCond]>,
    first_regex: usize,
}

#[derive(Debug, Clone)]
struct ValueCond {
    name: String,
    kind: ValueKind,
}

#[derive(Debug, Clone)]
enum ValueKind {
    Exact(Box<[u8]>),
    Regex(Regex),
    Present(bool),
}

/// What a request is matched on, worked out once per lookup.
pub(crate) struct Prepared<'a> {
    /// Lowercase host without port (empty when no route looks at hosts).
    pub(crate) host: &'a [u8],
    /// Path without the query.
    pub(crate) path: &'a [u8],
    /// Query without `?`.
    pub(crate) query: Option<&'a [u8]>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(req: &'a RequestHead, host: &'a [u8]) -> Self {
        let (path, query) = match memchr::memchr(b'?', &req.target) {
            Some(i) => (&req.target[..i], Some(&req.target[i + 1..])),
            None => (&req.target[..], None),
        };
        Prepared { host, path, query }
    }
}

// === impl RouteMatcher ===

impl RouteMatcher {
    /// Compiles a route's `match` block.
    pub fn new(m: &RouteMatch) -> Result<RouteMatcher> {
        let mut methods = Vec::with_capacity(m.methods.len());
        for (i, meth) in m.methods.iter().enumerate() {
            if meth.is_empty() || !meth.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::invalid(
                    format!("match.methods[{i}]"),
                    "a method is uppercase letters",
                ));
            }
            methods.push(meth.as_bytes().into());
        }
        let path = match &m.path {
            None => PathCond::Any,
            Some(PathMatch::Exact(p)) => {
                check_path("match.path.exact", p)?;
                PathCond::Exact(p.as_bytes().into())
            }
            Some(PathMatch::Prefix(p)) => {
                check_path("match.path.prefix", p)?;
                if p == "/" {
                    PathCond::Any
                } else {
                    PathCond::Prefix(p.as_bytes().into())
                }
            }
            Some(PathMatch::Regex(p)) => PathCond::Regex {
                re: whole_regex("match.path.regex", p)?,
                literal: literal_prefix(p),
            },
        };
        Ok(RouteMatcher {
            methods: methods.into_boxed_slice(),
            hosts: HostCond::new(&m.host)?,
            path,
            headers: Conds::new("headers", &m.headers)?,
            query: Conds::new("query", &m.query)?,
        })
    }

    /// Whether `req` satisfies every condition.
    pub fn matches(&self, req: &RequestHead) -> bool {
        if self.hosts.is_some() {
            with_host(&req.host, |host| {
                self.matches_prepared(req, &Prepared::new(req, host), false)
            })
        } else {
            self.matches_prepared(req, &Prepared::new(req, b""), true)
        }
    }

    /// Whether the route has no condition at all.
    pub fn is_catch_all(&self) -> bool {
        self.methods.is_empty()
            && self.hosts.is_none()
            && matches!(self.path, PathCond::Any)
            && self.headers.list.is_empty()
            && self.query.list.is_empty()
    }

    /// The first path segment every path this route takes has (`api` for prefix `/api` or
    /// `/api/v1`, exact `/api/x`, or a regex starting `/api/`), if the path condition fixes one.
    pub(crate) fn first_segment(&self) -> Option<&[u8]> {
        match &self.path {
            PathCond::Any => None,
            // A prefix holds at a segment boundary, so `/api` fixes `api` even without a slash
            // after it (`/` itself is `Any`).
            PathCond::Exact(p) | PathCond::Prefix(p) => first_segment(p),
            PathCond::Regex { literal, .. } => {
                let rest = literal.strip_prefix(b"/")?;
                memchr::memchr(b'/', rest).map(|i| &rest[..i])
            }
        }
    }

    /// The check itself; `host_checked` says the caller already knows the host matches.
    pub(crate) fn matches_prepared(
        &self,
        req: &RequestHead,
        at: &Prepared<'_>,
        host_checked: bool,
    ) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| **m == *req.method) {
            return false;
        }
        if !host_checked {
            if let Some(h) = &self.hosts {
                if !h.matches(at.host) {
                    return false;
                }
            }
        }
        match &self.path {
            PathCond::Exact(p) if **p != *at.path => return false,
            PathCond::Prefix(p) if !prefix_matches(p, at.path) => return false,
            PathCond::Regex { literal, .. } if !at.path.starts_with(literal) => return false,
            _ => {}
        }
        let (hc, hr) = self.headers.split();
        let (qc, qr) = self.query.split();
        hc.iter().all(|c| c.header_matches(req))
            && qc.iter().all(|c| c.query_matches(at.query))
            && match &self.path {
                PathCond::Regex { re, .. } => re.is_match(at.path),
                _ => true,
            }
            && hr.iter().all(|c| c.header_matches(req))
            && qr.iter().all(|c| c.query_matches(at.query))
    }
}

fn check_path(field: &str, p: &str) -> Result<()> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(Error::invalid(field, "a path must start with /"))
    }
}

/// The bytes every match of the whole-path regex `pattern` starts with: `/users/` for
/// `/users/[0-9]+`, `/` for `/a|/b`, nothing for `.*` or `(?i)api`. Any doubt gives nothing, which
/// only costs speed.
pub(crate) fn literal_prefix(pattern: &str) -> Box<[u8]> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    // As `regex::bytes` parses it: UTF-8 mode off, so `(?-u:\xFF)` is accepted too.
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
    else {
        return Box::default();
    };
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    seq.longest_common_prefix().unwrap_or_default().into()
}

/// `api` for `/api/x` and `/api`, the empty segment for `/`; `None` for a path not starting with `/`
/// (`*`).
pub(crate) fn first_segment(path: &[u8]) -> Option<&[u8]> {
    let rest = path.strip_prefix(b"/")?;
    Some(match memchr::memchr(b'/', rest) {
        Some(i) => &rest[..i],
        None => rest,
    })
}

/// `/api` matches `/api` and `/api/x`, not `/apix`; `/api/` matches `/api/` and `/api/x`.
pub(crate) fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with(b"/") || matches!(path.get(prefix.len()), None | Some(b'/')))
}

// === impl Conds ===

impl Conds {
    fn new(kind: &'static str, list: &[ValueMatch]) -> Result<Conds> {
        let mut conds = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let field = |leaf: &str| format!("match.{kind}[{i}]{leaf}");
            if v.name.is_empty() {
                return Err(Error::invalid(field(".name"), "empty name"));
            }
            let given = [v.exact.is_some(), v.regex.is_some(), v.present.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(Error::invalid(
                    field(""),
                    "give exactly one of `exact`, `regex`, `present`",
                ));
            }
            let cond = match (&v.exact, &v.regex, v.present) {
                (Some(e), _, _) => ValueKind::Exact(e.as_bytes().into()),
                (_, Some(re), _) => ValueKind::Regex(whole_regex(field(".regex"), re)?),
                (_, _, Some(p)) => ValueKind::Present(p),
                (None, None, None) => {
                    return Err(Error::invalid(field(""), "no condition"));
                }
            };
            conds.push(ValueCond {
                name: v.name.clone(),
                kind: cond,
            });
        }
        // Stable: equal-cost conditions keep their configured order.
        conds.sort_by_key(|c| matches!(c.kind, ValueKind::Regex(_)));
        let first_regex = conds
            .iter()
            .position(|c| matches!(c.kind, ValueKind::Regex(_)))
            .unwrap_or(conds.len());
        Ok(Conds {
            list: conds.into_boxed_slice(),
            first_regex,
        })
    }

    fn split(&self) -> (&[ValueCond], &[ValueCond]) {
        self.list.split_at(self.first_regex)
    }
}

// === impl ValueCond ===

impl ValueCond {
    /// Any field of that name (case-insensitive) may satisfy `exact` or `regex`; `present: false`
    /// wants none at all.
    fn header_matches(&self, req: &RequestHead) -> bool {
        let mut values = req.headers.get_all(&self.name);
        match &self.kind {
            ValueKind::Present(want) => values.next().is_some() == *want,
            ValueKind::Exact(e) => values.any(|v| **v == **e),
            ValueKind::Regex(re) => values.any(|v| re.is_match(v)),
        }
    }

    /// Names and values compare percent-decoded (`+` as space); names are case-sensitive. Any
    /// occurrence of the parameter may satisfy `exact` or `regex`.
    fn query_matches(&self, query: Option<&[u8]>) -> bool {
        let mut values = query::pairs(query.unwrap_or_default())
            .filter(|(n, _)| *query::decode(n) == *self.name.as_bytes())
            .map(|(_, v)| v);
        match &self.kind {
            ValueKind::Present(want) => values.next().is_some() == *want,
            ValueKind::Exact(e) => values.any(|v| *query::decode(v) == **e),
            ValueKind::Regex(re) => values.any(|v| re.is_match(&query::decode(v))),
        }
    }
}
