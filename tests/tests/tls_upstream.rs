//! TLS towards upstreams: clusters with a `tls` object and `https` AI providers, against
//! `weir-mock-llm --tls-cert/--tls-key` serving a certificate from a throwaway test CA
//! ([`TestPki`]). The mock speaks only HTTPS, so what it saw (`/stats`: handshakes and the SNI of
//! each, `/mock/requests`) is read through the gateway itself.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use serde_json::Value;
use weir_tests::*;

/// A TLS cluster `up` to `mock` with these `tls` fields (flow YAML, no braces), and a route to it.
fn gateway(d: Driver, mock: &MockUpstream, tls: &str, extra_cluster: &str) -> Gateway {
    Gateway::new()
        .driver(d)
        .cluster_yaml(&format!(
            "{{ name: up, endpoints: [\"{}\"], tls: {{ {tls} }}{extra_cluster} }}",
            mock.endpoint()
        ))
        .route("{ name: r, cluster: up }")
        .start()
}

/// The mock's `/stats`, fetched through the gateway.
fn stats(gw: &Gateway) -> Value {
    let r = gw.get("/stats");
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

fn post(c: &mut Client, path: &str, body: &str) -> Response {
    c.request(
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

both_drivers! {
    /// A cluster over TLS with the test CA: bodies both ways, a streamed answer, and every
    /// request on one pooled TLS connection (one handshake, one upstream connection opened).
    fn tls_cluster_with_private_ca(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::id("tls").tls(&pki).start();
        let gw = gateway(d, &mock, &format!("ca_file: \"{}\"", pki.ca().display()), "");
        let mut c = gw.connect();
        for _ in 0..20 {
            let r = c.get("/");
            assert_eq!((r.status(), r.text().as_str()), (200, "ok"));
            assert_eq!(r.header("x-mock-id"), Some("tls"));
        }
        let body = "x".repeat(200_000);
        let r = post(&mut c, "/echo", &body);
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), body);
        let r = c.get("/sse?events=5&interval_ms=10");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().matches("data: {").count(), 5, "{}", r.text());
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());

        let s = stats(&gw);
        assert_eq!(s["tls_handshakes"], 1, "one TLS connection, reused: {s}");
        // An IP endpoint is checked against the certificate's IP name; TLS sends no SNI for it.
        assert_eq!(s["tls_sni"], serde_json::json!([""]), "{s}");
        let m = gw.metrics();
        let opened = metric(&m, "weir_upstream_connections_opened_total", &[("cluster", "up")]);
        assert_eq!(opened, Some(1.0));
    }
}

both_drivers! {
    /// The wrong CA: the handshake fails and the client gets a 502 saying so.
    fn wrong_ca_is_refused(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = gateway(d, &mock, &format!("ca_file: \"{}\"", pki.other_ca().display()), "");
        let r = gw.get("/");
        assert_eq!(r.status(), 502, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], "upstream_connect_failed", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("certificate verification failed"), "{msg}");
        // The default roots (system + bundled) do not know the test CA either.
        let gw = gateway(d, &mock, "", "");
        let r = gw.get("/");
        assert_eq!(r.status(), 502);
        assert!(r.text().contains("certificate verification failed"), "{}", r.text());
        let m = gw.metrics();
        let failures = metric(&m, "weir_upstream_connect_failures_total", &[("cluster", "up")]);
        assert!(failures.is_some_and(|n| n >= 1.0), "{m}");
    }
}

both_drivers! {
    /// `insecure_skip_verify`: any certificate passes (even for a name it does not carry), and
    /// the gateway says loudly that it is insecure.
    fn insecure_skip_verify_works_and_warns(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = gateway(d, &mock, "insecure_skip_verify: true, sni: not-in-the-cert.test", "");
        let r = gw.get("/");
        assert_eq!(r.status(), 200, "{}", r.text());
        let err = gw.stderr();
        assert!(
            err.contains("WARN") && err.contains("insecure_skip_verify"),
            "no warning in: {err}"
        );
    }
}

both_drivers! {
    /// The `sni` override is what the server sees, and the name the certificate is checked
    /// against: one it does not carry is refused.
    fn sni_is_sent(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let ca = pki.ca();
        let gw = gateway(d, &mock, &format!("ca_file: \"{}\", sni: upstream.test", ca.display()), "");
        let s = stats(&gw);
        assert_eq!(s["tls_sni"], serde_json::json!(["upstream.test"]), "{s}");

        let gw = gateway(d, &mock, &format!("ca_file: \"{}\", sni: elsewhere.test", ca.display()), "");
        let r = gw.get("/");
        assert_eq!(r.status(), 502);
        assert!(r.text().contains("certificate verification failed"), "{}", r.text());
    }
}

both_drivers! {
    /// Active health checks of a TLS cluster probe over TLS: the endpoint stays healthy (a plain
    /// probe would fail every time), and the mock counts the probes' handshakes.
    fn health_checks_use_tls(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = gateway(
            d,
            &mock,
            &format!("ca_file: \"{}\"", pki.ca().display()),
            ", health_check: { path: /healthz, interval: 100ms, unhealthy_threshold: 1 }",
        );
        wait_until("three health probes", Duration::from_secs(10), Duration::from_millis(100), || {
            (stats(&gw)["tls_handshakes"].as_u64().unwrap() >= 4).then_some(())
        });
        let m = gw.metrics();
        let healthy = metric(&m, "weir_upstream_healthy", &[("cluster", "up")]);
        assert_eq!(healthy, Some(1.0), "{m}");
        assert_eq!(gw.get("/").status(), 200);
    }
}

/// An `https` OpenAI provider behind a private CA, and a plain route to the same mock for its
/// scripts and request log.
fn ai_gateway(d: Driver, pki: &TestPki, mock: &MockUpstream, keys: &str) -> Gateway {
    ai_gateway_with_ca(d, pki, &pki.ca(), mock, keys)
}

fn ai_gateway_with_ca(
    d: Driver,
    pki: &TestPki,
    provider_ca: &std::path::Path,
    mock: &MockUpstream,
    keys: &str,
) -> Gateway {
    Gateway::new()
        .driver(d)
        .top_yaml(&format!(
            "providers:\n  - {{ name: tlsai, type: openai, base_url: \"https://{}/v1\", keys: [{keys}], \
             key_probe_interval: 200ms, tls: {{ ca_file: \"{}\" }} }}",
            mock.endpoint(),
            provider_ca.display()
        ))
        .cluster_yaml(&format!(
            "{{ name: mock, endpoints: [\"{}\"], tls: {{ ca_file: \"{}\" }} }}",
            mock.endpoint(),
            pki.ca().display()
        ))
        .route("{ name: mock, match: { path: { prefix: /mock } }, cluster: mock }")
        .route("{ name: llm, ai: { models: [{ model: \"*\", targets: [{ provider: tlsai }] }] } }")
        .start()
}

both_drivers! {
    /// An https AI provider (`base_url: https://127.0.0.1:PORT/v1` with `tls: { ca_file }`)
    /// answers chat calls, whole and streamed, through the mock over TLS.
    fn https_provider_answers(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = ai_gateway(d, &pki, &mock, "{ value: sk-test }");
        let mut c = gw.connect();
        let r = post(&mut c, "/v1/chat/completions", r#"{"model":"gpt-4o","messages":[{"role":"user","content":"over tls"}]}"#);
        assert_eq!(r.status(), 200, "{}", r.text());
        let v = r.json();
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.contains("mock of openai") && text.contains("over tls"), "{text}");
        let r = post(&mut c, "/v1/chat/completions", r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"streamed"}]}"#);
        assert_eq!(r.status(), 200);
        assert!(r.text().trim_end().ends_with("data: [DONE]"), "{}", r.text());
        // The provider saw the key, over TLS, with the base URL's host as the Host header.
        let log = gw.get("/mock/requests").json();
        let first = &log.as_array().unwrap()[0];
        assert_eq!(first["key"], "sk-test", "{first}");
        let host = first["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("host")))
            .map(|h| h[1].clone());
        assert_eq!(host, Some(Value::from(mock.endpoint())), "{first}");
    }
}

both_drivers! {
    /// A key refused with 401 is probed over TLS (`GET /v1/models` with that key) and re-admitted.
    fn key_probes_use_tls(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = ai_gateway(d, &pki, &mock, "{ id: bad, value: sk-bad }, { id: good, value: sk-good }");
        let mut c = gw.connect();
        let r = post(&mut c, "/mock/script", r#"{"match": {"key": "sk-bad"}, "status": 401, "times": 1}"#);
        assert_eq!(r.status(), 200, "{}", r.text());
        for _ in 0..2 {
            let r = post(&mut c, "/v1/chat/completions", r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
            assert_eq!(r.status(), 200, "{}", r.text());
        }
        wait_until("a passing probe of the refused key", Duration::from_secs(10), Duration::from_millis(100), || {
            let log = gw.get("/mock/requests").json();
            log.as_array().unwrap().iter().any(|e| {
                e["method"] == "GET"
                    && e["key"] == "sk-bad"
                    && e["status"] == 200
                    && e["path"].as_str().is_some_and(|p| p.ends_with("/models"))
            })
            .then_some(())
        });
    }
}

both_drivers! {
    /// An https provider whose certificate does not verify: 502 `provider_unreachable`, the
    /// reason in the message (in the OpenAI error format).
    fn https_provider_with_wrong_ca_is_502(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start_tls(&pki);
        let gw = ai_gateway_with_ca(d, &pki, &pki.other_ca(), &mock, "{ value: sk-test }");
        let mut c = gw.connect();
        let r = post(&mut c, "/v1/chat/completions", r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(r.status(), 502, "{}", r.text());
        let v = r.json();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("certificate verification failed"), "{msg}");
    }
}
