//! Checks that serde cannot make: names unique and referenced objects present, addresses, patterns,
//! CIDRs and codes well-formed, options that exclude each other not both set.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::ai::*;
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
    let mut providers = HashSet::new();
    for (i, p) in config.providers.iter().enumerate() {
        let f = format!("providers[{i}]");
        if !providers.insert(p.name.as_str()) {
            c.fail(
                format!("{f}.name"),
                format!("provider `{}` is defined twice", p.name),
            );
        }
        check_provider(&mut c, &f, p);
    }
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

    let h2_clusters: HashSet<&str> = config
        .clusters
        .iter()
        .filter(|c| c.protocol == UpstreamProtocol::H2)
        .map(|c| c.name.as_str())
        .collect();
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
        if let Some(tls) = &lis.tls {
            let mut fail = |field: String, message: String| c.fail(field, message);
            crate::listener_tls::check(
                &format!("{f}.tls"),
                tls,
                &mut fail,
                pem_certificates,
                pem_key,
            );
        }
        check_http2(&mut c, &f, lis);
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
            if r.retry.is_some()
                && r.cluster
                    .as_deref()
                    .is_some_and(|n| h2_clusters.contains(n))
            {
                c.fail(
                    format!("{f}.retry"),
                    "requests to a `protocol: h2` cluster are not retried (a gRPC client retries \
                     by its own policy)",
                );
            }
            if let Some(ai) = &r.ai {
                check_ai_route(&mut c, &format!("{f}.ai"), ai, &config.providers);
            }
        }
    }
    {
        let mut fail = |field: String, message: String| c.fail(field, message);
        crate::l4::check(config, &mut fail);
    }
    c.problems.extend(crate::auth::validate(config));
    c.problems.extend(crate::quota::validate(config));
    c.problems.extend(crate::plugin::validate(config));
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(c.problems)
    }
}

fn check_http2(c: &mut Checker, f: &str, lis: &Listener) {
    let h = &lis.http2;
    let f = format!("{f}.http2");
    if !(1..=10_000).contains(&h.max_concurrent_streams) {
        c.fail(format!("{f}.max_concurrent_streams"), "must be 1..=10000");
    }
    let window = 65_535..=(1u64 << 31) - 1;
    if !window.contains(&h.initial_stream_window.0) {
        c.fail(
            format!("{f}.initial_stream_window"),
            "must be between 65535 bytes and 2GiB-1",
        );
    }
    if !window.contains(&h.initial_connection_window.0) {
        c.fail(
            format!("{f}.initial_connection_window"),
            "must be between 65535 bytes and 2GiB-1",
        );
    }
    if !((16 << 10)..(16 << 20)).contains(&h.max_frame_size.0) {
        c.fail(
            format!("{f}.max_frame_size"),
            "must be at least 16KiB and below 16MiB",
        );
    }
    if !(1024..=(1 << 20)).contains(&h.max_header_list_size.0) {
        c.fail(
            format!("{f}.max_header_list_size"),
            "must be between 1KiB and 1MiB",
        );
    }
    if !(1..=10_000).contains(&h.max_pending_resets) {
        c.fail(format!("{f}.max_pending_resets"), "must be 1..=10000");
    }
    if h.max_send_buffer.0 < 1024 || h.max_send_buffer.0 > 64 << 20 {
        c.fail(
            format!("{f}.max_send_buffer"),
            "must be between 1KiB and 64MiB",
        );
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
        match &hc.grpc {
            None if !hc.path.starts_with('/') => {
                c.fail(format!("{f}.health_check.path"), "must start with /");
            }
            Some(_) if !hc.path.is_empty() => c.fail(
                format!("{f}.health_check.path"),
                "a gRPC health check asks grpc.health.v1.Health/Check: give `path` or `grpc`, \
                 not both",
            ),
            Some(_) if cl.protocol != UpstreamProtocol::H2 => c.fail(
                format!("{f}.health_check.grpc"),
                "gRPC needs HTTP/2: the cluster must have `protocol: h2`",
            ),
            Some(_) if !hc.expected_statuses.is_empty() => c.fail(
                format!("{f}.health_check.expected_statuses"),
                "a gRPC health check passes on SERVING, not on HTTP statuses",
            ),
            _ => {}
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
    if let Some(tls) = &cl.tls {
        check_tls(c, &format!("{f}.tls"), tls);
        if tls.sni.is_none() {
            for (i, e) in cl.endpoints.iter().enumerate() {
                let host = e.address().rsplit_once(':').map_or("", |(h, _)| h);
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                if !host.is_empty() && ServerName::try_from(host).is_err() {
                    c.fail(
                        format!("{f}.endpoints[{i}]"),
                        format!("`{host}` is not a TLS server name; set `tls.sni`"),
                    );
                }
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
        r.ai.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if actions != 1 {
        c.fail(
            f.to_string(),
            "a route needs exactly one of `cluster`, `direct_response`, `redirect`, `ai`",
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
            // Checked with the consumers and quotas they refer to (`auth.rs`, `quota.rs`).
            FilterConfig::Auth(_) | FilterConfig::Quota(_) => {}
            // Checked with the plugins it refers to (`plugin.rs`).
            FilterConfig::Wasm { .. } => {}
        }
    }
}

fn check_provider(c: &mut Checker, f: &str, p: &Provider) {
    if p.name.is_empty() {
        c.fail(format!("{f}.name"), "a provider needs a name");
    }
    let kind = p.kind;
    match p.effective_base_url() {
        None if kind != ProviderKind::Mock => c.fail(
            format!("{f}.base_url"),
            format!("a `{}` provider needs `base_url`", kind.as_str()),
        ),
        None => {}
        Some(url) => match BaseUrl::parse(&url) {
            Err(e) => c.fail(format!("{f}.base_url"), e),
            Ok(u) if u.scheme != "https" && p.tls.is_some() => c.fail(
                format!("{f}.tls"),
                format!("`tls` options are for an https base_url, and `{url}` is plain http"),
            ),
            Ok(u) => {
                if let Some(tls) = &p.tls {
                    check_tls(c, &format!("{f}.tls"), tls);
                }
                if u.scheme == "https"
                    && p.tls.as_ref().is_none_or(|t| t.sni.is_none())
                    && ServerName::try_from(u.host.as_str()).is_err()
                {
                    c.fail(
                        format!("{f}.base_url"),
                        format!("`{}` is not a TLS server name; set `tls.sni`", u.host),
                    );
                }
            }
        },
    }
    if kind == ProviderKind::Mock && p.tls.is_some() {
        c.fail(
            format!("{f}.tls"),
            "the `mock` provider runs in process; it has no TLS",
        );
    }
    if kind == ProviderKind::Mock && p.base_url.is_some() {
        c.fail(
            format!("{f}.base_url"),
            "the `mock` provider runs in process; it has no base_url",
        );
    }
    if kind.needs_key() && p.keys.is_empty() {
        c.fail(
            format!("{f}.keys"),
            format!("a `{}` provider needs at least one key", kind.as_str()),
        );
    }
    if !kind.needs_key() && !p.keys.is_empty() && kind == ProviderKind::Mock {
        c.fail(format!("{f}.keys"), "the `mock` provider takes no keys");
    }
    let mut ids = HashSet::new();
    for (i, k) in p.keys.iter().enumerate() {
        let kf = format!("{f}.keys[{i}]");
        let sources = [k.value.is_some(), k.env.is_some(), k.file.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if sources != 1 {
            c.fail(kf.clone(), "give exactly one of `value`, `env`, `file`");
        }
        if let Some(id) = &k.id {
            if !ids.insert(id.as_str()) {
                c.fail(format!("{kf}.id"), format!("key id `{id}` is used twice"));
            }
        }
        if k.weight == 0 || k.weight > 10_000 {
            c.fail(format!("{kf}.weight"), "must be between 1 and 10000");
        }
        if kind == ProviderKind::Bedrock && k.access_key_id.is_none() {
            c.fail(
                format!("{kf}.access_key_id"),
                "a Bedrock key needs `access_key_id` (the secret is the secret access key)",
            );
        }
        if kind != ProviderKind::Bedrock && (k.access_key_id.is_some() || k.session_token.is_some())
        {
            c.fail(
                kf.clone(),
                "`access_key_id`/`session_token` are for Bedrock keys",
            );
        }
        if kind == ProviderKind::Vertex && k.file.is_none() {
            c.fail(
                format!("{kf}.file"),
                "a Vertex key is a service-account JSON file (`file:`)",
            );
        }
    }
    let options = [
        (ProviderKind::Azure, p.azure.is_some(), "azure"),
        (ProviderKind::Bedrock, p.bedrock.is_some(), "bedrock"),
        (ProviderKind::Vertex, p.vertex.is_some(), "vertex"),
        (ProviderKind::Mock, p.mock.is_some(), "mock"),
    ];
    for (k, present, field) in options {
        if present && kind != k {
            c.fail(
                format!("{f}.{field}"),
                format!("`{field}` options are for `{}` providers", k.as_str()),
            );
        }
        if !present && kind == k && k != ProviderKind::Mock {
            c.fail(
                format!("{f}.{field}"),
                format!("a `{}` provider needs `{field}` options", k.as_str()),
            );
        }
    }
    if p.anthropic_version.is_some() && kind != ProviderKind::Anthropic {
        c.fail(
            format!("{f}.anthropic_version"),
            "only for `anthropic` providers",
        );
    }
    for name in p.headers.keys() {
        c.header_name(format!("{f}.headers.{name}"), name);
        let lower = name.to_ascii_lowercase();
        if FRAMING.contains(&lower.as_str()) || lower == "host" {
            c.fail(
                format!("{f}.headers.{name}"),
                "the gateway writes this field itself",
            );
        }
    }
}

fn check_ai_route(c: &mut Checker, f: &str, ai: &AiRoute, providers: &[Provider]) {
    let known: HashSet<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    if ai.models.is_empty() {
        c.fail(
            format!("{f}.models"),
            "an ai route needs at least one model route",
        );
    }
    for (i, m) in ai.models.iter().enumerate() {
        let mf = format!("{f}.models[{i}]");
        if m.model.is_empty() {
            c.fail(format!("{mf}.model"), "empty model pattern");
        }
        if let Some(re) = m.model.strip_prefix('~') {
            c.regex(format!("{mf}.model"), re);
        } else if m.model.len() > 1 && m.model[..m.model.len() - 1].contains('*') {
            c.fail(
                format!("{mf}.model"),
                "`*` is only allowed at the end (prefix) or alone; use `~regex` otherwise",
            );
        }
        for (j, h) in m.headers.iter().enumerate() {
            let hf = format!("{mf}.headers[{j}]");
            c.header_name(format!("{hf}.name"), &h.name);
            if let Some(re) = &h.regex {
                c.regex(format!("{hf}.regex"), re);
            }
        }
        if m.targets.is_empty() {
            c.fail(format!("{mf}.targets"), "at least one target");
        }
        for (kind, list) in [("targets", &m.targets), ("fallback", &m.fallback)] {
            for (j, t) in list.iter().enumerate() {
                let tf = format!("{mf}.{kind}[{j}]");
                if !known.contains(t.provider.as_str()) {
                    c.fail(
                        format!("{tf}.provider"),
                        format!("no provider named `{}`", t.provider),
                    );
                }
                if t.weight == 0 && kind == "targets" {
                    c.fail(format!("{tf}.weight"), "must be at least 1");
                }
            }
        }
    }
    for (alias, target) in &ai.aliases {
        if ai.aliases.contains_key(target) {
            c.fail(
                format!("{f}.aliases.{alias}"),
                "an alias may not point to another alias",
            );
        }
    }
    let r = &ai.retry;
    if r.max_attempts == 0 || r.max_attempts > 20 {
        c.fail(
            format!("{f}.retry.max_attempts"),
            "must be between 1 and 20",
        );
    }
    if r.backoff_base.get() > r.backoff_max.get() {
        c.fail(
            format!("{f}.retry.backoff_base"),
            "must not be above backoff_max",
        );
    }
    for (i, on) in ai.fallback_on.iter().enumerate() {
        if let FallbackOn::Status(s) = on {
            if !(400..=599).contains(s) {
                c.fail(format!("{f}.fallback_on[{i}]"), "a status must be 400..599");
            }
        }
    }
}

/// A `tls` object: the server name is one, the files exist and hold what they should. The
/// data plane reads the files again when it builds the cluster (and there checks that the key
/// fits the certificate); here, in the control daemon too, a missing or garbled file is caught
/// before a generation is made.
fn check_tls(c: &mut Checker, f: &str, tls: &UpstreamTls) {
    if let Some(sni) = &tls.sni {
        if ServerName::try_from(sni.as_str()).is_err() {
            c.fail(
                format!("{f}.sni"),
                format!("`{sni}` is not a DNS name or an IP address"),
            );
        }
    }
    if tls.insecure_skip_verify && tls.ca_file.is_some() {
        c.fail(
            format!("{f}.insecure_skip_verify"),
            "give `ca_file` or `insecure_skip_verify`, not both",
        );
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => c.fail(format!("{f}.client_key"), "`client_cert` needs its key"),
        (None, Some(_)) => c.fail(
            format!("{f}.client_cert"),
            "`client_key` needs its certificate",
        ),
        _ => {}
    }
    for (field, path) in [("ca_file", &tls.ca_file), ("client_cert", &tls.client_cert)] {
        if let Some(path) = path {
            if let Err(e) = pem_certificates(path) {
                c.fail(format!("{f}.{field}"), e);
            }
        }
    }
    if let Some(path) = &tls.client_key {
        if let Err(e) = pem_key(path) {
            c.fail(format!("{f}.client_key"), e);
        }
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

fn pem_certificates(path: &Path) -> Result<(), String> {
    let text = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}`: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no CERTIFICATE", path.display()));
    }
    Ok(())
}

fn pem_key(path: &Path) -> Result<(), String> {
    let text = read_pem(path)?;
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(_) => Ok(()),
        Err(pem::Error::NoItemsFound) => Err(format!("`{}` holds no PRIVATE KEY", path.display())),
        Err(e) => Err(format!("`{}`: bad PEM: {e}", path.display())),
    }
}
