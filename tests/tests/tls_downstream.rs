//! TLS towards clients: a listener's `tls` object with the real `weir` binary. curl over HTTPS
//! with ALPN `http/1.1`; certificates picked by SNI (exact, wildcard, default, RSA beside
//! ECDSA); mutual TLS, required and optional, with the client's subject forwarded upstream;
//! a certificate rotated on disk served to new connections while an old one stays up; bad files
//! refused at start and kept out on reload; garbage, old versions and silent clients closed and
//! counted; session resumption. The certificates come from a throwaway CA ([`TestPki`]), and the
//! client is rustls ([`TlsClient`]), which can say which certificate it was served.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir_tests::*;

/// The listener `tls` object for these certificates (the first is the default) and extra keys.
fn tls_yaml(certs: &[(PathBuf, PathBuf)], extra: &str) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| format!("{{ cert: \"{}\", key: \"{}\" }}", c.display(), k.display()))
        .collect();
    format!("tls: {{ certificates: [{}]{extra} }}", list.join(", "))
}

/// A gateway whose listener `main` has `tls`, routing everything to `mock` (plain HTTP).
fn gateway(d: Driver, tls: &str, mock: &MockUpstream) -> Gateway {
    Gateway::new()
        .driver(d)
        .listener_yaml(tls)
        .cluster("up", &[mock.endpoint()])
        .route("{ name: r, cluster: up }")
        .start()
}

fn first_der(pem: &Path) -> Vec<u8> {
    pem_certs(pem)[0].as_ref().to_vec()
}

fn anything() -> std::sync::Arc<rustls::ClientConfig> {
    tls_client_config(&TlsClientOptions::default())
}

fn metric_of(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&gw.metrics(), name, labels).unwrap_or(0.0)
}

both_drivers! {
    /// curl over HTTPS (the test CA, SNI `localhost`): ALPN settles on http/1.1, the upstream
    /// hears `x-forwarded-proto: https`, and the handshake, the session and the request are in
    /// the metrics and the access log.
    fn curl_over_https(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = gateway(d, &tls_yaml(&[(pki.server_cert(), pki.server_key())], ""), &mock);
        let port = gw.addr().port();
        let out = Command::new("curl")
            .args(["-sS", "-v", "--http1.1", "--max-time", "20", "--cacert"])
            .arg(pki.ca())
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg(format!("https://localhost:{port}/inspect"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl failed: {stderr}");
        assert!(stderr.contains("ALPN: server accepted http/1.1"), "{stderr}");
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let proto: Vec<&str> = body["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "x-forwarded-proto")
            .filter_map(|h| h[1].as_str())
            .collect();
        assert_eq!(proto, ["https"], "{body}");

        // The same with the test client: ALPN and the version it reports.
        let cfg = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
        assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(c.version(), Some(rustls::ProtocolVersion::TLSv1_3));
        // The client (rustls) lists AES-256-GCM-SHA384 first; the gateway picks its own order.
        assert_eq!(c.suite(), Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        for _ in 0..3 {
            let r = c.get("/", &[]).unwrap();
            assert_eq!(r.status, 200, "{r:?}");
        }
        let lines = gw.wait_access_log(4, Duration::from_secs(10), |l| l["tls"].is_object());
        assert_eq!(lines[3]["tls"]["version"], "TLSv1.3", "{}", lines[3]);
        assert_eq!(lines[3]["tls"]["sni"], "localhost", "{}", lines[3]);
        assert_eq!(lines[3]["tls"]["client_subject"], serde_json::Value::Null);
        let done = metric_of(&gw, "weir_tls_handshakes_total", &[("listener", "main")]);
        assert_eq!(done, 2.0);
    }
}

both_drivers! {
    /// SNI picks the certificate: exact before wildcard, a wildcard covers one label only, no
    /// SNI or an unknown name gets the first (default) certificate, and where a name has an
    /// ECDSA and an RSA certificate, a client that only takes RSA signatures gets the RSA one.
    fn sni_picks_the_certificate(d) {
        let pki = TestPki::new();
        let default = pki.server("default", &["default.test"], KeyKind::Ecdsa);
        let wild = pki.server("wild", &["*.wild.test"], KeyKind::Ecdsa);
        let exact = pki.server("exact", &["exact.wild.test"], KeyKind::Rsa);
        let dual_ec = pki.server("dual-ec", &["dual.test"], KeyKind::Ecdsa);
        let dual_rsa = pki.server("dual-rsa", &["dual.test"], KeyKind::Rsa);
        let certs = [default.clone(), wild.clone(), exact.clone(), dual_ec.clone(), dual_rsa.clone()];
        let mock = MockUpstream::start();
        let gw = gateway(d, &tls_yaml(&certs, ""), &mock);
        let verified = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let served = |sni: &str, cfg: &std::sync::Arc<rustls::ClientConfig>| {
            let mut c = TlsClient::connect(gw.addr(), sni, cfg)
                .unwrap_or_else(|e| panic!("{sni}: {e}"));
            assert_eq!(c.get("/", &[]).unwrap().status, 200);
            c.server_cert()
        };
        assert_eq!(served("exact.wild.test", &verified), first_der(&exact.0));
        assert_eq!(served("a.wild.test", &verified), first_der(&wild.0));
        assert_eq!(served("EXACT.Wild.Test", &verified), first_der(&exact.0), "names are case-insensitive");
        assert_eq!(served("default.test", &verified), first_der(&default.0));
        // Not verifiable (the default certificate does not carry these names): only looked at.
        assert_eq!(served("a.b.wild.test", &anything()), first_der(&default.0));
        assert_eq!(served("unknown.test", &anything()), first_der(&default.0));
        assert_eq!(served("127.0.0.1", &anything()), first_der(&default.0), "no SNI");
        assert_eq!(served("dual.test", &verified), first_der(&dual_ec.0));
        let rsa = tls_client_config(&TlsClientOptions {
            ca: Some(&pki.ca()),
            rsa_only: true,
            ..Default::default()
        });
        assert_eq!(served("dual.test", &rsa), first_der(&dual_rsa.0));
        // And over TLS 1.2 too.
        let rsa12 = tls_client_config(&TlsClientOptions {
            ca: Some(&pki.ca()),
            rsa_only: true,
            tls12_only: true,
            ..Default::default()
        });
        assert_eq!(served("dual.test", &rsa12), first_der(&dual_rsa.0));
    }
}

both_drivers! {
    /// Mutual TLS, required: a certificate of the client CA gets in, its subject reaches the
    /// upstream in the configured header (a client-sent value of it is dropped) and the access
    /// log; no certificate, or one of another CA, fails the handshake and is counted.
    fn mtls_required(d) {
        let pki = TestPki::new();
        let (alice, alice_key) = pki.client("alice", "alice", false);
        let (mallory, mallory_key) = pki.client("mallory", "mallory", true);
        let mock = MockUpstream::start();
        let extra = format!(
            ", client_auth: {{ ca_file: \"{}\", forward_header: x-client-cert-subject }}",
            pki.ca().display()
        );
        let gw = gateway(d, &tls_yaml(&[(pki.server_cert(), pki.server_key())], &extra), &mock);
        let good = tls_client_config(&TlsClientOptions {
            ca: Some(&pki.ca()),
            client_cert: Some((&alice, &alice_key)),
            ..Default::default()
        });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &good).unwrap();
        let r = c.get("/inspect", &["x-client-cert-subject: CN=admin"]).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let subjects: Vec<&str> = body["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "x-client-cert-subject")
            .filter_map(|h| h[1].as_str())
            .collect();
        assert_eq!(subjects, ["CN=alice,O=Weir Tests"], "{body}");
        let lines = gw.wait_access_log(1, Duration::from_secs(10), |l| l["tls"].is_object());
        assert_eq!(lines[0]["tls"]["client_subject"], "CN=alice,O=Weir Tests", "{}", lines[0]);

        let none = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let bad = tls_client_config(&TlsClientOptions {
            ca: Some(&pki.ca()),
            client_cert: Some((&mallory, &mallory_key)),
            ..Default::default()
        });
        for (what, cfg) in [("no certificate", &none), ("another CA", &bad)] {
            // TLS 1.3: the client learns of the refusal at its first read.
            let res = TlsClient::connect(gw.addr(), "localhost", cfg).and_then(|mut c| c.get("/", &[]));
            assert!(res.is_err(), "{what}: {res:?}");
        }
        wait_until("two refusals counted", Duration::from_secs(10), Duration::from_millis(50), || {
            let n = metric_of(&gw, "weir_tls_handshake_errors_total", &[("listener", "main"), ("reason", "client_certificate")]);
            (n >= 2.0).then_some(())
        });
        // The worker keeps serving.
        let mut c = TlsClient::connect(gw.addr(), "localhost", &good).unwrap();
        assert_eq!(c.get("/", &[]).unwrap().status, 200);
    }
}

both_drivers! {
    /// Mutual TLS, optional: a client without a certificate gets in, and the subject header it
    /// forges is removed; one with a certificate has its subject forwarded.
    fn mtls_optional(d) {
        let pki = TestPki::new();
        let (bob, bob_key) = pki.client("bob", "bob", false);
        let mock = MockUpstream::start();
        let extra = format!(
            ", client_auth: {{ ca_file: \"{}\", mode: optional, forward_header: X-Client-Cert-Subject }}",
            pki.ca().display()
        );
        let gw = gateway(d, &tls_yaml(&[(pki.server_cert(), pki.server_key())], &extra), &mock);
        let subjects = |r: &TlsResponse| -> Vec<String> {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body["headers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("x-client-cert-subject")))
                .filter_map(|h| h[1].as_str().map(str::to_owned))
                .collect()
        };
        let none = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &none).unwrap();
        let r = c.get("/inspect", &["X-Client-Cert-Subject: CN=forged"]).unwrap();
        assert_eq!(r.status, 200);
        assert!(subjects(&r).is_empty(), "{}", r.body);
        let with = tls_client_config(&TlsClientOptions {
            ca: Some(&pki.ca()),
            client_cert: Some((&bob, &bob_key)),
            ..Default::default()
        });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &with).unwrap();
        let r = c.get("/inspect", &[]).unwrap();
        assert_eq!(subjects(&r), ["CN=bob,O=Weir Tests"], "{}", r.body);
    }
}

both_drivers! {
    /// A certificate rewritten on disk is served to new connections without a restart, while a
    /// connection made before keeps working; a broken rewrite is logged and the last good
    /// certificate stays.
    fn certificate_rotation(d) {
        let pki = TestPki::new();
        let (cert, key) = pki.server("rot", &["localhost"], KeyKind::Ecdsa);
        let mock = MockUpstream::start();
        let gw = gateway(d, &tls_yaml(&[(cert.clone(), key.clone())], ""), &mock);
        let cfg = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let mut old = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
        assert_eq!(old.get("/", &[]).unwrap().status, 200);
        let before = old.server_cert();
        assert_eq!(before, first_der(&cert));

        pki.server("rot", &["localhost"], KeyKind::Rsa);
        let after = first_der(&cert);
        assert_ne!(before, after);
        wait_until("the new certificate served", Duration::from_secs(15), Duration::from_millis(100), || {
            let c = TlsClient::connect(gw.addr(), "localhost", &cfg).ok()?;
            (c.server_cert() == after).then_some(())
        });
        // The connection made before the rotation is still served.
        for _ in 0..3 {
            assert_eq!(old.get("/", &[]).unwrap().status, 200);
        }
        assert!(gw.stderr().contains("TLS certificate reloaded"), "{}", gw.stderr());

        // A broken certificate: logged, the rotated one stays.
        std::fs::write(&cert, "not a certificate\n").unwrap();
        wait_until("the bad file logged", Duration::from_secs(15), Duration::from_millis(100), || {
            gw.stderr().contains("not reloaded").then_some(())
        });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
        assert_eq!(c.server_cert(), after);
        assert_eq!(c.get("/", &[]).unwrap().status, 200);
    }
}

/// A bad certificate or key file fails the start with the file named: garbage, a missing file,
/// and a key that belongs to another certificate.
#[test]
fn bad_files_fail_the_start() {
    let pki = TestPki::new();
    let (other_cert, other_key) = pki.server("other", &["other.test"], KeyKind::Ecdsa);
    let garbage = pki.file("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let missing = pki.file("missing.pem");
    for (cert, key, named) in [
        (garbage.clone(), pki.server_key(), garbage.clone()),
        (missing.clone(), pki.server_key(), missing.clone()),
        (pki.server_cert(), other_key.clone(), other_key.clone()),
    ] {
        let err = Gateway::new()
            .listener_yaml(&tls_yaml(&[(cert, key)], ""))
            .route("{ name: r, direct_response: { status: 200 } }")
            .try_start()
            .err()
            .unwrap_or_else(|| panic!("started with a bad file: {}", named.display()));
        assert!(
            err.stderr.contains(&*named.to_string_lossy()),
            "{} not named in: {}",
            named.display(),
            err.stderr
        );
    }
    drop(other_cert);
    // A protocol that is not served (`h3`): refused rather than advertised.
    let err = Gateway::new()
        .listener_yaml(&tls_yaml(
            &[(pki.server_cert(), pki.server_key())],
            ", alpn: [h3, http/1.1]",
        ))
        .route("{ name: r, direct_response: { status: 200 } }")
        .try_start()
        .expect_err("h3 in alpn is refused");
    assert!(err.stderr.contains("alpn"), "{}", err.stderr);
}

both_drivers! {
    /// Bad clients: garbage instead of a ClientHello, a TLS 1.2 client on a 1.3-only listener, a
    /// client that sends nothing: each is closed, logged at debug and counted by reason, and the
    /// worker keeps serving.
    fn bad_clients_are_closed_and_counted(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = gateway(
            d,
            &tls_yaml(
                &[(pki.server_cert(), pki.server_key())],
                ", min_version: \"1.3\", handshake_timeout: 300ms",
            ),
            &mock,
        );
        // Plain HTTP on the TLS port.
        let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(!String::from_utf8_lossy(&got).contains("HTTP/1.1 200"));
        // TLS 1.2 only.
        let old = tls_client_config(&TlsClientOptions { tls12_only: true, ..Default::default() });
        assert!(TlsClient::connect(gw.addr(), "localhost", &old).and_then(|mut c| c.get("/", &[])).is_err());
        // Silence: closed at the handshake timeout.
        let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        let n = s.read(&mut [0u8; 16]).unwrap_or(0);
        assert_eq!(n, 0);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

        wait_until("each reason counted", Duration::from_secs(10), Duration::from_millis(50), || {
            let m = gw.metrics();
            let n = |r: &str| metric(&m, "weir_tls_handshake_errors_total", &[("listener", "main"), ("reason", r)]).unwrap_or(0.0);
            (n("protocol") >= 1.0 && n("incompatible") >= 1.0 && n("timeout") >= 1.0).then_some(())
        });
        let cfg = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        let mut c = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
        assert_eq!(c.get("/", &[]).unwrap().status, 200);
    }
}

both_drivers! {
    /// Session resumption, TLS 1.3 and 1.2: a client's next connection resumes (no certificate
    /// sent again), and the resumptions are counted.
    fn sessions_resume(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .listener_yaml(&tls_yaml(&[(pki.server_cert(), pki.server_key())], ""))
            .cluster("up", &[mock.endpoint()])
            .route("{ name: r, cluster: up }")
            .start();
        for tls12_only in [false, true] {
            let cfg = tls_client_config(&TlsClientOptions {
                ca: Some(&pki.ca()),
                tls12_only,
                ..Default::default()
            });
            let mut first = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
            assert!(!first.resumed());
            // TLS 1.3 tickets arrive after the handshake: a request makes sure they were read.
            assert_eq!(first.get("/", &[]).unwrap().status, 200);
            for _ in 0..4 {
                let mut c = TlsClient::connect(gw.addr(), "localhost", &cfg).unwrap();
                assert!(c.resumed(), "tls12_only {tls12_only}: not resumed");
                assert_eq!(c.get("/", &[]).unwrap().status, 200);
            }
        }
        let resumed = metric_of(&gw, "weir_tls_resumed_total", &[("listener", "main")]);
        assert_eq!(resumed, 8.0);
    }
}

both_drivers! {
    /// Upstream TLS with a client certificate, end to end: an edge gateway's cluster presents
    /// its certificate to an inner gateway that requires one (mutual TLS both ways of the hop);
    /// the inner one forwards the edge's subject. Without the certificate the edge gets a 502.
    fn upstream_client_certificate(d) {
        let pki = TestPki::new();
        let (edge_cert, edge_key) = pki.client("edge", "weir-edge", false);
        let mock = MockUpstream::start();
        let extra = format!(
            ", client_auth: {{ ca_file: \"{}\", forward_header: x-client-cert-subject }}",
            pki.ca().display()
        );
        let inner = gateway(d, &tls_yaml(&[(pki.server_cert(), pki.server_key())], &extra), &mock);
        let edge = |cert: &str| {
            Gateway::new()
                .driver(d)
                .cluster_yaml(&format!(
                    "{{ name: inner, endpoints: [\"{}\"], tls: {{ ca_file: \"{}\", sni: localhost{cert} }} }}",
                    inner.addr(),
                    pki.ca().display()
                ))
                .route("{ name: r, cluster: inner }")
                .start()
        };
        let with = edge(&format!(
            ", client_cert: \"{}\", client_key: \"{}\"",
            edge_cert.display(),
            edge_key.display()
        ));
        let r = with.get("/inspect");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.inspected("x-client-cert-subject"), ["CN=weir-edge,O=Weir Tests"]);
        assert_eq!(r.inspected("x-forwarded-proto"), ["https"]);
        let without = edge("");
        let r = without.get("/inspect");
        assert_eq!(r.status(), 502, "{}", r.text());
    }
}
