//! Checks that serde cannot make: names unique and referenced objects present, addresses, patterns,
//! CIDRs and codes well-formed, options that exclude each other not both set.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::error::Problem;
use crate::schema::*;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            field: field.into(),
            message: message.into(),
        });
    }

    fn regex(&mut self, field: String, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            self.fail(field, format!("invalid regular expression: {e}"));
        }
    }

    fn socket_addr(&mut self, field: String, addr: &str) {
        if addr.parse::<SocketAddr>().is_err() {
            self.fail(field, format!("`{addr}` is not an ip:port address"));
        }
    }

    fn header_name(&mut self, field: String, name: &str) {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !ok {
            self.fail(field, format!("`{name}` is not a valid header name"));
        }
    }
}

/// Fields the proxy re-makes itself; a filter setting them could smuggle a second framing.
const FRAMING: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Every problem with `config`, or `Ok` when there is none.
pub fn validate(config: &Config) -> Result<(), Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    if config.workers > 1024 {
        c.fail("workers", "at most 1024 workers");
    }
    if let Some(a) = &config.admin.address {
        c.socket_addr("admin.address".into(), a);
    }
    let l = &config.limits;
    if l.max_header_count == 0 || l.max_header_count > 1000 {
        c.fail("limits.max_header_count", "must be between 1 and 1000");
    }
    if l.max_request_line.0 < 64 || l.max_request_line.0 > l.max_header_bytes.0 {
        c.fail(
            "limits.max_request_line",
            "must be at least 64 bytes and at most limits.max_header_bytes",
        );
    }
    if l.max_header_bytes.0 > 1 << 20 {
        c.fail("limits.max_header_bytes", "at most 1MiB");
    }
    if l.max_response_header_bytes.0 < 1024 || l.max_response_header_bytes.0 > 1 << 20 {
        c.fail(
            "limits.max_response_header_bytes",
            "must be between 1KiB and 1MiB",
        );
    }

    let clusters: HashSet<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, cl) in config.clusters.iter().enumerate() {
        let f = format!("clusters[{i}]");
        if !seen.insert(cl.name.as_str()) {
            c.fail(
                format!("{f}.name"),
                format!("cluster `{}` is defined twice", cl.name),
            );
        }
        check_cluster(&mut c, &f, cl);
    }

    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    if config.listeners.is_empty() {
        c.fail("listeners", "at least one listener is needed");
    }
    for (i, lis) in config.listeners.iter().enumerate() {
        let f = format!("listeners[{i}]");
        if !names.insert(lis.name.as_str()) {
            c.fail(
                format!("{f}.name"),
                format!("listener `{}` is defined twice", lis.name),
            );
        }
        c.socket_addr(format!("{f}.address"), &lis.address);
        if !addrs.insert(lis.address.as_str()) {
            c.fail(
                format!("{f}.address"),
                format!("`{}` is used by two listeners", lis.address),
            );
        }
        let mut route_names = HashSet::new();
        for (j, r) in lis.routes.iter().enumerate() {
            let f = format!("{f}.routes[{j}]");
            if !route_names.insert(r.name.as_str()) {
                c.fail(
                    format!("{f}.name"),
                    format!("route `{}` is defined twice", r.name),
                );
            }
            check_route(&mut c, &f, r, &clusters);
        }
    }
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(c.problems)
    }
}

fn check_cluster(c: &mut Checker, f: &str, cl: &Cluster) {
    if cl.endpoints.is_empty() {
        c.fail(
            format!("{f}.endpoints"),
            "a cluster needs at least one endpoint",
        );
    }
    for (i, e) in cl.endpoints.iter().enumerate() {
        let a = e.address();
        let ok = match a.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
            None => false,
        };
        if !ok {
            c.fail(
                format!("{f}.endpoints[{i}]"),
                format!("`{a}` is not host:port"),
            );
        }
        if !(1..=1000).contains(&e.weight()) {
            c.fail(
                format!("{f}.endpoints[{i}].weight"),
                "weight must be 1..=1000",
            );
        }
    }
    if let LoadBalancing::ConsistentHash { hash_on } = &cl.lb {
        let ok = hash_on == "source_ip"
            || hash_on
                .strip_prefix("header:")
                .is_some_and(|h| !h.is_empty())
            || hash_on
                .strip_prefix("cookie:")
                .is_some_and(|h| !h.is_empty());
        if !ok {
            c.fail(
                format!("{f}.lb.hash_on"),
                format!("`{hash_on}`: use header:NAME, cookie:NAME or source_ip"),
            );
        }
    }
    if cl.connect_timeout.get().is_zero() {
        c.fail(format!("{f}.connect_timeout"), "must be more than 0");
    }
    if let Some(hc) = &cl.health_check {
        if !hc.path.starts_with('/') {
            c.fail(format!("{f}.health_check.path"), "must start with /");
        }
        if hc.interval.get().is_zero() || hc.timeout.get().is_zero() {
            c.fail(
                format!("{f}.health_check.interval"),
                "interval and timeout must be more than 0",
            );
        }
        if hc.healthy_threshold == 0 || hc.unhealthy_threshold == 0 {
            c.fail(
                format!("{f}.health_check.healthy_threshold"),
                "thresholds must be at least 1",
            );
        }
        for (i, s) in hc.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                c.fail(
                    format!("{f}.health_check.expected_statuses[{i}]"),
                    "not an HTTP status",
                );
            }
        }
    }
    if let Some(o) = &cl.outlier {
        if o.consecutive_failures == 0 {
            c.fail(
                format!("{f}.outlier.consecutive_failures"),
                "must be at least 1",
            );
        }
        if o.max_ejection_percent > 100 {
            c.fail(format!("{f}.outlier.max_ejection_percent"), "at most 100");
        }
    }
}

fn check_route(c: &mut Checker, f: &str, r: &Route, clusters: &HashSet<&str>) {
    let actions = [
        r.cluster.is_some(),
        r.direct_response.is_some(),
        r.redirect.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if actions != 1 {
        c.fail(
            f.to_string(),
            "a route needs exactly one of `cluster`, `direct_response`, `redirect`",
        );
    }
    if let Some(cl) = &r.cluster {
        if !clusters.contains(cl.as_str()) {
            c.fail(format!("{f}.cluster"), format!("no cluster named `{cl}`"));
        }
    }
    let m = &r.matches;
    for (i, h) in m.host.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        if bare.is_empty() || bare.contains('*') || bare.contains('/') {
            c.fail(
                format!("{f}.match.host[{i}]"),
                format!("`{h}`: use an exact host or `*.suffix`"),
            );
        }
    }
    match &m.path {
        Some(PathMatch::Exact(p)) | Some(PathMatch::Prefix(p)) if !p.starts_with('/') => {
            c.fail(format!("{f}.match.path"), "a path must start with /");
        }
        Some(PathMatch::Regex(p)) => c.regex(format!("{f}.match.path.regex"), p),
        _ => {}
    }
    for (i, meth) in m.methods.iter().enumerate() {
        if meth.is_empty() || !meth.bytes().all(|b| b.is_ascii_uppercase()) {
            c.fail(
                format!("{f}.match.methods[{i}]"),
                format!("`{meth}` is not a method"),
            );
        }
    }
    for (kind, list) in [("headers", &m.headers), ("query", &m.query)] {
        for (i, v) in list.iter().enumerate() {
            let vf = format!("{f}.match.{kind}[{i}]");
            if kind == "headers" {
                c.header_name(format!("{vf}.name"), &v.name);
            }
            let n = [v.exact.is_some(), v.regex.is_some(), v.present.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 1 {
                c.fail(
                    vf.clone(),
                    "give exactly one of `exact`, `regex`, `present`",
                );
            }
            if let Some(re) = &v.regex {
                c.regex(format!("{vf}.regex"), re);
            }
        }
    }
    if let Some(rw) = &r.rewrite {
        if rw.path_prefix.is_some() && rw.path_regex.is_some() {
            c.fail(
                format!("{f}.rewrite"),
                "give `path_prefix` or `path_regex`, not both",
            );
        }
        if rw.path_prefix.is_some() && !matches!(m.path, Some(PathMatch::Prefix(_))) {
            c.fail(
                format!("{f}.rewrite.path_prefix"),
                "needs the route to match a path prefix",
            );
        }
        if let Some(p) = &rw.path_prefix {
            if !p.starts_with('/') {
                c.fail(format!("{f}.rewrite.path_prefix"), "must start with /");
            }
        }
        if let Some(rr) = &rw.path_regex {
            c.regex(format!("{f}.rewrite.path_regex.pattern"), &rr.pattern);
        }
        if let Some(h) = &rw.host {
            if h.is_empty() || h.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
                c.fail(format!("{f}.rewrite.host"), format!("`{h}` is not a host"));
            }
        }
    }
    if let Some(d) = &r.direct_response {
        if !(200..=599).contains(&d.status) {
            c.fail(format!("{f}.direct_response.status"), "must be 200..=599");
        }
        for name in d.headers.keys() {
            c.header_name(format!("{f}.direct_response.headers.{name}"), name);
        }
    }
    if let Some(rd) = &r.redirect {
        if ![301, 302, 303, 307, 308].contains(&rd.status) {
            c.fail(
                format!("{f}.redirect.status"),
                "must be 301, 302, 303, 307 or 308",
            );
        }
        if let Some(s) = &rd.scheme {
            if s != "http" && s != "https" {
                c.fail(format!("{f}.redirect.scheme"), "must be http or https");
            }
        }
        if let Some(p) = &rd.path {
            if !p.starts_with('/') {
                c.fail(format!("{f}.redirect.path"), "must start with /");
            }
        }
    }
    if let Some(rt) = &r.retry {
        if rt.attempts > 10 {
            c.fail(format!("{f}.retry.attempts"), "at most 10");
        }
        if !(0.0..=100.0).contains(&rt.budget_percent) {
            c.fail(format!("{f}.retry.budget_percent"), "must be 0..=100");
        }
        for (i, on) in rt.on.iter().enumerate() {
            if let RetryOn::Status(s) = on {
                if !(500..=599).contains(s) && *s != 429 && *s != 408 {
                    c.fail(
                        format!("{f}.retry.on[{i}]"),
                        "retry statuses must be 408, 429 or 5xx",
                    );
                }
            }
        }
    }
    if r.timeouts.first_byte.get().is_zero() {
        c.fail(format!("{f}.timeouts.first_byte"), "must be more than 0");
    }
    for (i, filt) in r.filters.iter().enumerate() {
        let ff = format!("{f}.filters[{i}]");
        match filt {
            FilterConfig::Headers { request, response } => {
                for (side, ops) in [("request", request), ("response", response)] {
                    for n in ops
                        .set
                        .keys()
                        .chain(ops.add.keys())
                        .chain(ops.remove.iter())
                    {
                        c.header_name(format!("{ff}.{side}"), n);
                    }
                    for (n, v) in ops.set.iter().chain(ops.add.iter()) {
                        if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                            c.fail(
                                format!("{ff}.{side}.{n}"),
                                "a header value cannot hold control characters",
                            );
                        }
                        if FRAMING.iter().any(|h| n.eq_ignore_ascii_case(h)) {
                            c.fail(
                                format!("{ff}.{side}.{n}"),
                                format!(
                                    "`{n}` is a framing or hop-by-hop field the gateway manages"
                                ),
                            );
                        }
                    }
                }
            }
            FilterConfig::Cors(cors) => {
                if cors.allow_origins.is_empty() {
                    c.fail(format!("{ff}.allow_origins"), "list at least one origin");
                }
                if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
                    c.fail(
                        format!("{ff}.allow_credentials"),
                        "credentials cannot be allowed for origin `*`",
                    );
                }
            }
            FilterConfig::IpAcl { allow, deny } => {
                for (side, list) in [("allow", allow), ("deny", deny)] {
                    for (k, cidr) in list.iter().enumerate() {
                        let ok = cidr.parse::<ipnet::IpNet>().is_ok()
                            || cidr.parse::<std::net::IpAddr>().is_ok();
                        if !ok {
                            c.fail(
                                format!("{ff}.{side}[{k}]"),
                                format!("`{cidr}` is not an IP address or CIDR"),
                            );
                        }
                    }
                }
            }
            FilterConfig::SizeLimit { .. } => {}
        }
    }
}
