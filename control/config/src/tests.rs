use super::*;

const FULL: &str = r#"
workers: 2
driver: epoll
limits:
  max_body_bytes: 10MiB
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: api
        match:
          host: ["api.example.com", "*.example.org"]
          path: { prefix: /api }
          methods: [GET, POST]
          headers: [{ name: x-env, exact: prod }]
          query: [{ name: debug, present: false }]
        rewrite: { path_prefix: /, host: backend.local }
        cluster: backend
        retry: { attempts: 2, on: [connect_failure, 503] }
        timeouts: { first_byte: 5s, idle: 30s, total: 0 }
        filters:
          - type: headers
            request: { set: { x-a: "1" }, remove: [x-b] }
          - type: cors
            allow_origins: ["https://app.example.com"]
          - type: ip_acl
            allow: [10.0.0.0/8, 127.0.0.1]
          - type: size_limit
            max_request_bytes: 1MiB
      - name: moved
        match: { path: { exact: /old } }
        redirect: { status: 301, path: /new }
clusters:
  - name: backend
    endpoints: ["127.0.0.1:9000", { address: "localhost:9001", weight: 3 }]
    lb: { policy: consistent_hash, hash_on: "header:x-user" }
    health_check: { path: /healthz, interval: 1s }
    outlier: { consecutive_failures: 3 }
"#;

#[test]
fn full_config_parses() {
    let c = parse(FULL, "full.yaml").expect("valid");
    assert_eq!(c.workers, 2);
    assert_eq!(c.driver, Driver::Epoll);
    assert_eq!(c.limits.max_body_bytes.0, 10 << 20);
    let r = &c.listeners[0].routes[0];
    assert_eq!(r.matches.path, Some(PathMatch::Prefix("/api".into())));
    assert_eq!(r.filters.len(), 4);
    assert_eq!(c.clusters[0].endpoints[1].weight(), 3);
    assert_eq!(
        r.retry.as_ref().map(|r| r.on.clone()),
        Some(vec![
            RetryOn::Named(RetryCondition::ConnectFailure),
            RetryOn::Status(503)
        ])
    );
    // Round trip through JSON: the snapshot format of the control socket.
    let json = serde_json::to_string(&c).expect("serialize");
    let back: Config = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, c);
}

#[test]
fn quickstart_is_valid() {
    let c = parse(QUICKSTART, "quickstart.yaml").expect("valid");
    assert_eq!(c.listeners[0].address, "127.0.0.1:8080");
    assert_eq!(c.admin.address.as_deref(), Some("127.0.0.1:9901"));
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "t.yaml") {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn unknown_field_names_line_and_field() {
    let p = problems("listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routez: []\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(4), "{p:?}");
    assert!(p[0].message.contains("routez"), "{p:?}");
    let text = Error::Invalid {
        file: "t.yaml".into(),
        problems: p,
    }
    .to_string();
    assert!(text.starts_with("t.yaml:4: "), "{text}");
}

#[test]
fn missing_cluster_points_at_the_reference() {
    let text = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - name: r\n        cluster: nope\n";
    let p = problems(text);
    assert_eq!(p[0].field, "listeners[0].routes[0].cluster");
    assert_eq!(p[0].line, Some(6));
    assert!(p[0].message.contains("nope"));
}

#[test]
fn collects_every_problem() {
    let text = r#"
listeners:
  - name: a
    address: nowhere
    routes:
      - name: r
        match: { path: { regex: "(" }, methods: [get] }
        direct_response: { status: 99 }
      - name: r
        redirect: { status: 200 }
clusters:
  - name: c
    endpoints: ["127.0.0.1"]
"#;
    let fields: Vec<String> = problems(text).into_iter().map(|p| p.field).collect();
    for want in [
        "listeners[0].address",
        "listeners[0].routes[0].match.path.regex",
        "listeners[0].routes[0].match.methods[0]",
        "listeners[0].routes[0].direct_response.status",
        "listeners[0].routes[1].name",
        "listeners[0].routes[1].redirect.status",
        "clusters[0].endpoints[0]",
    ] {
        assert!(
            fields.iter().any(|f| f == want),
            "missing {want} in {fields:?}"
        );
    }
}

#[test]
fn bad_values_are_refused() {
    assert!(!problems("listeners: []\n").is_empty());
    let p = problems("limits: { max_body_bytes: 10 lightyears }\nlisteners: []\n");
    assert!(p[0].message.contains("unit"), "{p:?}");
    let acl = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - name: r\n        direct_response: { status: 200 }\n        filters:\n          - type: ip_acl\n            deny: [10.0.0.0/33]\n";
    assert_eq!(
        problems(acl)[0].field,
        "listeners[0].routes[0].filters[0].deny[0]"
    );
}

#[test]
fn header_filters_cannot_forge_framing() {
    let text = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes:\n      - name: r\n        direct_response: { status: 200 }\n        filters:\n          - type: headers\n            request: { set: { content-length: \"5\", x-ok: \"a\\r\\nb\" } }\n";
    let fields: Vec<String> = problems(text).into_iter().map(|p| p.field).collect();
    assert!(
        fields.iter().any(|f| f.ends_with("request.content-length")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.ends_with("request.x-ok")),
        "{fields:?}"
    );
}

/// A temp dir with PEM-shaped files: validation reads the PEM structure, not the certificates.
struct PemDir(std::path::PathBuf);

impl PemDir {
    fn new(tag: &str) -> PemDir {
        let dir = std::env::temp_dir().join(format!("weir-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = [
            (
                "ca.pem",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            ),
            (
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
            ),
            (
                "garbled.pem",
                "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        PemDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cluster_with_tls(tls: &str) -> String {
    format!(
        "listeners: [{{ name: l, address: \"127.0.0.1:1\" }}]\nclusters:\n  - name: c\n    endpoints: [\"api.internal:443\"]\n    tls: {tls}\n"
    )
}

#[test]
fn cluster_tls_is_checked() {
    let d = PemDir::new("tls");
    let ok = cluster_with_tls(&format!(
        "{{ sni: api.example.com, ca_file: \"{}\", client_cert: \"{}\", client_key: \"{}\" }}",
        d.path("ca.pem"),
        d.path("ca.pem"),
        d.path("key.pem")
    ));
    let c = parse(&ok, "t.yaml").expect("valid");
    let tls = c.clusters[0].tls.as_ref().expect("tls");
    assert_eq!(tls.sni.as_deref(), Some("api.example.com"));
    assert!(!tls.insecure_skip_verify);
    parse(&cluster_with_tls("{}"), "t.yaml").expect("tls with defaults");

    let cases = [
        (
            format!("{{ ca_file: \"{}\" }}", d.path("missing.pem")),
            "clusters[0].tls.ca_file",
            "cannot read",
        ),
        (
            format!("{{ ca_file: \"{}\" }}", d.path("key.pem")),
            "clusters[0].tls.ca_file",
            "no CERTIFICATE",
        ),
        (
            format!("{{ ca_file: \"{}\" }}", d.path("garbled.pem")),
            "clusters[0].tls.ca_file",
            "bad PEM",
        ),
        (
            format!("{{ client_cert: \"{}\" }}", d.path("ca.pem")),
            "clusters[0].tls.client_key",
            "needs its key",
        ),
        (
            format!(
                "{{ client_cert: \"{}\", client_key: \"{}\" }}",
                d.path("ca.pem"),
                d.path("ca.pem")
            ),
            "clusters[0].tls.client_key",
            "no PRIVATE KEY",
        ),
        (
            format!(
                "{{ ca_file: \"{}\", insecure_skip_verify: true }}",
                d.path("ca.pem")
            ),
            "clusters[0].tls.insecure_skip_verify",
            "not both",
        ),
        (
            "{ sni: \"bad name!\" }".to_string(),
            "clusters[0].tls.sni",
            "not a DNS name",
        ),
    ];
    for (tls, field, message) in cases {
        let p = problems(&cluster_with_tls(&tls));
        assert_eq!(p.len(), 1, "{tls}: {p:?}");
        assert_eq!(p[0].field, field, "{tls}: {p:?}");
        assert!(p[0].message.contains(message), "{tls}: {p:?}");
        assert_eq!(p[0].line, Some(5), "the line of `tls`: {p:?}");
    }
}

#[test]
fn providers_take_https_and_tls_options() {
    let d = PemDir::new("provider");
    let text = format!(
        "listeners: [{{ name: l, address: \"127.0.0.1:1\" }}]\nproviders:\n  - {{ name: o, type: openai, keys: [{{ value: k }}], tls: {{ ca_file: \"{}\" }} }}\n  - {{ name: a, type: anthropic, keys: [{{ value: k }}] }}\n",
        d.path("ca.pem")
    );
    let c = parse(&text, "t.yaml").expect("https providers are valid");
    assert!(c.providers[0].tls.is_some());
    let p = problems(
        "listeners: [{ name: l, address: \"127.0.0.1:1\" }]\nproviders:\n  - { name: o, type: openai, base_url: \"http://127.0.0.1:9/v1\", keys: [{ value: k }], tls: {} }\n",
    );
    assert_eq!(p[0].field, "providers[0].tls", "{p:?}");
    assert!(p[0].message.contains("https"), "{p:?}");
}

#[test]
fn jwks_tls_needs_an_https_url() {
    let route = |jwt: &str| {
        format!(
            "listeners: [{{ name: m, address: 127.0.0.1:0, routes: [{{ name: r, match: {{ path: {{ prefix: / }} }}, direct_response: {{ status: 200 }}, filters: [{{ type: auth, jwt: {jwt} }}] }}] }}]\n"
        )
    };
    parse(
        &route("{ jwks_url: \"https://idp.test/jwks\", jwks_tls: { ca_file: /etc/ca.pem } }"),
        "t.yaml",
    )
    .expect("https with a CA");
    let p = problems(&route(
        "{ jwks_url: \"http://idp.test/jwks\", jwks_tls: { ca_file: /etc/ca.pem } }",
    ));
    assert!(p.iter().any(|p| p.field.ends_with("jwt.jwks_tls")), "{p:?}");
}

fn listener_with_tls(tls: &str) -> String {
    format!("listeners:\n  - name: l\n    address: \"127.0.0.1:1\"\n    tls: {tls}\n")
}

#[test]
fn listener_tls_is_checked() {
    let d = PemDir::new("ltls");
    let ok = listener_with_tls(&format!(
        "{{ certificates: [{{ cert: \"{}\", key: \"{}\", names: [\"*.example.com\"] }}], min_version: \"1.3\", client_auth: {{ ca_file: \"{}\", mode: optional, forward_header: x-client-cert-subject }} }}",
        d.path("ca.pem"),
        d.path("key.pem"),
        d.path("ca.pem")
    ));
    let c = parse(&ok, "t.yaml").expect("valid");
    let tls = c.listeners[0].tls.as_ref().expect("tls");
    assert_eq!(tls.min_version, crate::TlsVersion::Tls13);
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert!(tls.session_tickets);
    let ca = tls.client_auth.as_ref().expect("client_auth");
    assert_eq!(ca.mode, crate::ClientAuthMode::Optional);
    let cert = |cert: &str, key: &str, extra: &str| {
        listener_with_tls(&format!(
            "{{ certificates: [{{ cert: \"{}\", key: \"{}\" }}]{extra} }}",
            d.path(cert),
            d.path(key)
        ))
    };
    let cases = [
        (
            listener_with_tls("{ certificates: [] }"),
            "listeners[0].tls.certificates",
            "at least one",
        ),
        (
            cert("missing.pem", "key.pem", ""),
            "listeners[0].tls.certificates[0].cert",
            "missing.pem",
        ),
        (
            cert("garbled.pem", "key.pem", ""),
            "listeners[0].tls.certificates[0].cert",
            "garbled.pem",
        ),
        (
            cert("ca.pem", "ca.pem", ""),
            "listeners[0].tls.certificates[0].key",
            "no PRIVATE KEY",
        ),
        (
            cert("ca.pem", "key.pem", ", alpn: [spdy/3]"),
            "listeners[0].tls.alpn[0]",
            "not served",
        ),
        (
            cert(
                "ca.pem",
                "key.pem",
                ", client_auth: { ca_file: \"/nonexistent/ca.pem\" }",
            ),
            "listeners[0].tls.client_auth.ca_file",
            "/nonexistent/ca.pem",
        ),
        (
            cert(
                "ca.pem",
                "key.pem",
                ", client_auth: { ca_file: \"/x\", mode: maybe }",
            ),
            "",
            "unknown variant",
        ),
    ];
    for (yaml, field, message) in cases {
        let p = problems(&yaml);
        assert!(!p.is_empty(), "{yaml}");
        if !field.is_empty() {
            assert_eq!(p[0].field, field, "{yaml}: {p:?}");
        }
        assert!(p[0].message.contains(message), "{yaml}: {p:?}");
    }
}

#[test]
fn http2_limits_and_cluster_protocol_are_checked() {
    let ok = "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    http2: { max_concurrent_streams: 64, initial_stream_window: 1MiB }\n    routes: [{ name: r, cluster: g }]\nclusters:\n  - { name: g, protocol: h2, endpoints: [\"127.0.0.1:2\"] }\n";
    let c = crate::parse(ok, "t.yaml").expect("valid");
    assert_eq!(c.listeners[0].http2.max_concurrent_streams, 64);
    assert_eq!(c.listeners[0].http2.initial_stream_window.0, 1 << 20);
    assert!(c.listeners[0].http2.enabled);
    assert_eq!(c.clusters[0].protocol, crate::UpstreamProtocol::H2);
    for (bad, field) in [
        (
            "max_concurrent_streams: 0",
            "listeners[0].http2.max_concurrent_streams",
        ),
        (
            "initial_stream_window: 1KiB",
            "listeners[0].http2.initial_stream_window",
        ),
        ("max_frame_size: 1KiB", "listeners[0].http2.max_frame_size"),
        (
            "max_header_list_size: 10",
            "listeners[0].http2.max_header_list_size",
        ),
        (
            "max_pending_resets: 0",
            "listeners[0].http2.max_pending_resets",
        ),
    ] {
        let y = format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    http2: {{ {bad} }}\n    routes: [{{ name: r, direct_response: {{ status: 200 }} }}]\n"
        );
        let p = problems(&y);
        assert!(p.iter().any(|p| p.field == field), "{bad}: {p:?}");
    }
    let hc = "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    routes: [{ name: r, cluster: g, retry: { attempts: 2 } }]\nclusters:\n  - { name: g, protocol: h2, endpoints: [\"127.0.0.1:2\"], health_check: { path: /h } }\n";
    let p = problems(hc);
    assert!(
        p.iter()
            .all(|p| !p.field.starts_with("clusters[0].health_check")),
        "an h2 cluster is checked over HTTP/2: {p:?}"
    );
    assert!(
        p.iter().any(|p| p.field == "listeners[0].routes[0].retry"),
        "{p:?}"
    );
    // The gRPC health protocol: on h2 clusters only, instead of a path.
    let grpc = |proto: &str, hc: &str| {
        format!("listeners:\n  - name: l\n    address: 127.0.0.1:1\n    routes: [{{ name: r, cluster: g }}]\nclusters:\n  - {{ name: g, {proto}endpoints: [\"127.0.0.1:2\"], health_check: {hc} }}\n")
    };
    let c = crate::parse(
        &grpc("protocol: h2, ", "{ grpc: { service: echo.Echo } }"),
        "t.yaml",
    )
    .expect("valid");
    let hc = c.clusters[0].health_check.as_ref().expect("health_check");
    assert_eq!(
        hc.grpc.as_ref().map(|g| g.service.as_str()),
        Some("echo.Echo")
    );
    for (proto, hc, field) in [
        ("", "{ grpc: {} }", "clusters[0].health_check.grpc"),
        (
            "protocol: h2, ",
            "{ grpc: {}, path: /h }",
            "clusters[0].health_check.path",
        ),
        (
            "protocol: h2, ",
            "{ grpc: {}, expected_statuses: [200] }",
            "clusters[0].health_check.expected_statuses",
        ),
        (
            "protocol: h2, ",
            "{ interval: 1s }",
            "clusters[0].health_check.path",
        ),
    ] {
        let p = problems(&grpc(proto, hc));
        assert!(p.iter().any(|p| p.field == field), "{hc}: {p:?}");
    }
    let unknown = "clusters:\n  - { name: g, protocol: h3, endpoints: [\"127.0.0.1:2\"] }\nlisteners:\n  - { name: l, address: \"127.0.0.1:1\" }\n";
    assert!(crate::parse(unknown, "t.yaml").is_err());
}

#[test]
fn proxy_protocol_to_http_clusters() {
    // An HTTP/1.1 cluster behind HTTP routes may send the header (its connections are kept per
    // client connection), with TLS and health checks too.
    let ok = "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    routes: [{ name: r, cluster: g }]\nclusters:\n  - { name: g, endpoints: [\"127.0.0.1:2\"], proxy_protocol: v2, tls: {}, health_check: { path: /h } }\n";
    let c = crate::parse(ok, "t.yaml").expect("valid");
    assert_eq!(
        c.clusters[0].proxy_protocol,
        Some(crate::ProxyProtocolVersion::V2)
    );
    // An h2 cluster shares one connection among all clients: refused, on its field.
    let h2 = "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    routes: [{ name: r, cluster: g }]\nclusters:\n  - { name: g, protocol: h2, endpoints: [\"127.0.0.1:2\"], proxy_protocol: v1 }\n";
    let p = problems(h2);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "clusters[0].proxy_protocol");
    assert!(p[0].message.contains("protocol: h2"), "{p:?}");
}

#[test]
fn a_plugin_pause_limit_defaults_to_30s_and_is_bounded() {
    let module = "AGFzbQEAAAA="; // an empty module: the config checks no more than its form
    let plugin = |extra: &str| {
        format!(
            "plugins:\n  - {{ name: p, module: \"{module}\"{extra} }}\nlisteners:\n  - name: a\n    address: 127.0.0.1:1\n"
        )
    };
    let c = parse(&plugin(""), "t.yaml").expect("valid");
    assert_eq!(
        c.plugins[0].pause_limit.get(),
        std::time::Duration::from_secs(30)
    );
    let c = parse(&plugin(", pause_limit: 250ms"), "t.yaml").expect("valid");
    assert_eq!(
        c.plugins[0].pause_limit.get(),
        std::time::Duration::from_millis(250)
    );
    for bad in ["0ms", "2h"] {
        let p = problems(&plugin(&format!(", pause_limit: {bad}")));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert_eq!(p[0].field, "plugins[0].pause_limit", "{bad}: {p:?}");
    }
}

#[test]
fn defer_accept_is_on_for_http_listeners_and_off_for_tcp_ones() {
    let yaml = |extra: &str| {
        format!(
            "listeners:\n  - name: l\n    address: \"127.0.0.1:1\"\n{extra}clusters:\n  - name: up\n    endpoints: [\"127.0.0.1:2\"]\n"
        )
    };
    let defers =
        |extra: &str| parse(&yaml(extra), "t.yaml").expect("valid").listeners[0].defers_accept();
    assert!(defers(""));
    assert!(!defers("    defer_accept: false\n"));
    assert!(!defers("    tcp: { cluster: up }\n"));
    assert!(defers("    tcp: { cluster: up }\n    defer_accept: true\n"));
}
