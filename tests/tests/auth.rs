//! Consumers and the `auth` filter, end to end with the real binaries: API keys (Bearer,
//! `x-api-key`, query), basic auth (a hash made by `weirctl hash-password`), JWT (HS256, and
//! ES256 from a JWKS URL that rotates), HMAC signatures (skew, replay, body digest); refusals in
//! the client's protocol; model allow-lists on `ai` routes; credentials never reaching the
//! upstream; and virtual keys made and revoked through `weir-control` + `weirctl`, refused on
//! every core once the revocation returns.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};
use sha2::Digest;
use weir_tests::*;

const ALICE: &str = "wk-alice-3c2b1a0f9e8d7c6b5a493827161504f3e2d1c0b";
const BOB: &str = "wk-bob-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5";
const EXPIRED: &str = "wk-expired-00112233445566778899aabbccddeeff00";
const HS_SECRET: &str = "jwt-secret-0123456789abcdef0123456789";
const HMAC_SECRET: &str = "hmac-secret-0123456789abcdef";

fn hex_digest(key: &str) -> String {
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// alice: every route, models `mock-gpt*`; bob: key only; carol: basic auth (`extra`).
fn consumers(extra: &str) -> String {
    format!(
        r#"consumers:
  - name: alice
    attributes: {{ team: research }}
    keys:
      - {{ id: alice-1, sha256: "{a}" }}
      - {{ id: alice-old, sha256: "{e}", expires_at: "2020-01-01T00:00:00Z" }}
    jwt_subjects: [alice@example.com]
    hmac: [{{ id: alice-hmac, secret: "{hs}" }}]
    allow: {{ models: ["mock-gpt*"] }}
  - name: bob
    keys: [{{ id: bob-1, sha256: "{b}" }}]
{extra}"#,
        a = hex_digest(ALICE),
        e = hex_digest(EXPIRED),
        b = hex_digest(BOB),
        hs = HMAC_SECRET,
    )
}

fn get_with(gw: &Gateway, path: &str, headers: &str) -> Response {
    gw.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
}

fn post_with(gw: &Gateway, path: &str, headers: &str, body: &str) -> Response {
    gw.request(
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

both_drivers! {
    /// API keys in `Authorization: Bearer`, `x-api-key` and a query parameter: accepted, the
    /// credential removed before the upstream, the consumer named upstream; wrong, expired and
    /// missing keys refused with 401 and `WWW-Authenticate`, without reaching the upstream.
    fn key_auth_on_a_proxy_route(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&consumers(""))
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, filters: [{ type: auth, key: { headers: [authorization, x-api-key], query: [api_key] }, attribute_headers: { team: x-team } }] }")
            .start();

        let r = get_with(&gw, "/inspect", &format!("Authorization: Bearer {ALICE}\r\nx-team: spoofed\r\n"));
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.inspected("authorization").is_empty(), "the consumer's key must not reach the upstream");
        assert_eq!(r.inspected("x-weir-consumer"), ["alice"]);
        assert_eq!(r.inspected("x-team"), ["research"]);

        let r = get_with(&gw, "/inspect", &format!("x-api-key: {BOB}\r\n"));
        assert_eq!(r.status(), 200);
        assert!(r.inspected("x-api-key").is_empty());
        assert_eq!(r.inspected("x-weir-consumer"), ["bob"]);
        assert!(r.inspected("x-team").is_empty());

        let r = get_with(&gw, &format!("/inspect?x=1&api_key={BOB}"), "");
        assert_eq!(r.status(), 200);
        assert_eq!(r.json()["path"], "/inspect?x=1", "the key parameter is removed");
        assert!(!r.text().contains(BOB));

        // `/stats` counts itself: one more per look.
        let before = m.stat("requests");
        for (headers, kind) in [
            ("Authorization: Bearer wk-not-a-key\r\n".to_string(), "invalid_api_key"),
            (format!("x-api-key: {EXPIRED}\r\n"), "expired_api_key"),
            (String::new(), "missing_credentials"),
        ] {
            let r = get_with(&gw, "/inspect", &headers);
            assert_eq!(r.status(), 401, "{headers}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"weir\""));
            let v = r.json();
            assert_eq!(v["error"]["type"], kind, "{v}");
            assert!(v["error"]["request_id"].is_string());
        }
        assert_eq!(m.stat("requests"), before + 1, "refused requests never reach the upstream");

        // The access log names the consumer and the key id, never the key.
        let lines = gw.wait_access_log(6, Duration::from_secs(5), |_| true);
        let text = serde_json::to_string(&lines).unwrap();
        assert!(!text.contains(ALICE) && !text.contains(BOB), "a key in the access log");
    }
}

both_drivers! {
    /// On `ai` routes: refusals in the client's protocol (OpenAI on `/v1/chat/completions`,
    /// Anthropic on `/v1/messages`), and the consumer's model allow-list checked on the model
    /// asked for (403 `permission_error`), the connection kept.
    fn ai_routes_and_model_allow_lists(d) {
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&consumers(""))
            .top_yaml("providers: [{ name: mock, type: mock, models: [mock-gpt, mock-claude], mock: { token_interval: 1ms } }]")
            .route("{ name: llm, match: { path: { prefix: /v1/ } }, ai: { models: [{ model: \"*\", targets: [{ provider: mock }] }] }, filters: [{ type: auth }] }")
            .start();
        let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let msg = |model: &str| json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}).to_string();

        let r = post_with(&gw, "/v1/chat/completions", &format!("Authorization: Bearer {ALICE}\r\n"), &chat("mock-gpt"));
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.json()["object"], "chat.completion");

        // Not in alice's list: 403 in OpenAI's shape, and the connection still serves.
        let mut c = gw.connect();
        let body = chat("mock-claude");
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = c.request(raw.as_bytes());
        assert_eq!(r.status(), 403);
        let v = r.json();
        assert_eq!(v["error"]["type"], "permission_error", "{v}");
        assert_eq!(v["error"]["code"], "model_not_allowed");
        let body = chat("mock-gpt-mini");
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(c.request(raw.as_bytes()).status(), 200, "same connection after a 403");

        // bob has no list: any model.
        let r = post_with(&gw, "/v1/messages", &format!("x-api-key: {BOB}\r\nanthropic-version: 2023-06-01\r\n"), &msg("mock-claude"));
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.json()["type"], "message");

        // Anthropic clients get Anthropic errors.
        let r = post_with(&gw, "/v1/messages", &format!("x-api-key: {ALICE}\r\n"), &msg("mock-claude"));
        assert_eq!(r.status(), 403);
        let v = r.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        let r = post_with(&gw, "/v1/messages", "x-api-key: wk-wrong\r\n", &msg("mock-claude"));
        assert_eq!(r.status(), 401);
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        // OpenAI clients OpenAI errors, missing and expired keys alike.
        let r = post_with(&gw, "/v1/chat/completions", "", &chat("mock-gpt"));
        assert_eq!(r.status(), 401);
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        assert_eq!(r.json()["error"]["code"], "missing_credentials");
        let r = post_with(&gw, "/v1/chat/completions", &format!("Authorization: Bearer {EXPIRED}\r\n"), &chat("mock-gpt"));
        assert_eq!(r.status(), 401);
        assert_eq!(r.json()["error"]["code"], "expired_api_key");
    }
}

/// `weirctl hash-password` with `password` on stdin.
fn hash_password(password: &str) -> String {
    let mut child = Command::new(bin_path("weirctl"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

both_drivers! {
    /// Basic auth against an Argon2id hash made by `weirctl hash-password`.
    fn basic_auth(d) {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let carol = format!("  - name: carol\n    basic_auth: [{{ username: carol, password_hash: \"{hash}\" }}]\n");
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&consumers(&carol))
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, filters: [{ type: auth, basic: { realm: staff } }] }")
            .start();
        let basic = |up: &str| format!("Authorization: Basic {}\r\n", STANDARD.encode(up));
        for _ in 0..2 {
            let r = get_with(&gw, "/inspect", &basic("carol:correct horse"));
            assert_eq!(r.status(), 200);
            assert!(r.inspected("authorization").is_empty());
            assert_eq!(r.inspected("x-weir-consumer"), ["carol"]);
        }
        for (h, what) in [(basic("carol:wrong"), "wrong"), (basic("mallory:x"), "unknown user"), (String::new(), "missing")] {
            let r = get_with(&gw, "/inspect", &h);
            assert_eq!(r.status(), 401, "{what}");
            assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"staff\", charset=\"UTF-8\""));
        }
        // API keys are not a method of this route.
        assert_eq!(get_with(&gw, "/inspect", &format!("x-api-key: {ALICE}\r\n")).status(), 401);
    }
}

fn hs256(claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HS_SECRET.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A P-256 signing key and its public JWK.
struct EcKey {
    pair: signature::EcdsaKeyPair,
    kid: String,
}

impl EcKey {
    fn new(kid: &str) -> EcKey {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        EcKey {
            pair: signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap(),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let pt = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": URL_SAFE_NO_PAD.encode(&pt[1..33]), "y": URL_SAFE_NO_PAD.encode(&pt[33..65])})
    }

    fn sign(&self, claims: &Value) -> String {
        let head = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// A JWKS endpoint on loopback serving whatever `doc` holds; counts its hits. Over TLS when
/// started with a certificate.
struct JwksServer {
    addr: std::net::SocketAddr,
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl JwksServer {
    fn start(doc: String) -> JwksServer {
        JwksServer::serve(doc, None)
    }

    /// HTTPS with the test PKI's server certificate.
    fn start_tls(doc: String, pki: &TestPki) -> JwksServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(pki.server_cert())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.server_key()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        JwksServer::serve(doc, Some(Arc::new(config)))
    }

    fn serve(doc: String, tls: Option<Arc<rustls::ServerConfig>>) -> JwksServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let doc = Arc::new(Mutex::new(doc));
        let hits = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, h, s) = (doc.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let body = d.lock().unwrap().clone();
                        let answered = match &tls {
                            None => answer(c, &body),
                            Some(config) => {
                                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                                answer(rustls::StreamOwned::new(conn, c), &body)
                            }
                        };
                        if answered {
                            h.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        JwksServer {
            addr,
            doc,
            hits,
            stop,
        }
    }
}

/// Reads one request head and answers `body` as JSON; false when the request never came (a
/// TLS client that refused the certificate, say).
fn answer(mut c: impl Read + Write, body: &str) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = c.write_all(
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    );
    let _ = c.flush();
    true
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// JWT keys from an `https` JWKS URL signed by a private CA: trusted through `jwks_tls.ca_file`,
/// and not fetched (so tokens are refused) where the route trusts another CA.
#[test]
fn jwt_jwks_over_https() {
    let pki = TestPki::new();
    let k1 = EcKey::new("k1");
    let jwks = JwksServer::start_tls(json!({"keys": [k1.jwk()]}).to_string(), &pki);
    let m = MockUpstream::start();
    let url = format!("https://localhost:{}/jwks", jwks.addr.port());
    let route = |name: &str, ca: &std::path::Path| {
        format!("{{ name: {name}, match: {{ path: {{ prefix: /{name} }} }}, cluster: mock, rewrite: {{ path_prefix: /inspect }}, filters: [{{ type: auth, jwt: {{ jwks_url: \"{url}\", jwks_tls: {{ ca_file: \"{}\" }}, jwks_refresh: 1h }} }}] }}", ca.display())
    };
    let gw = Gateway::new()
        .top_yaml(&consumers(""))
        .cluster("mock", &[m.endpoint()])
        .route(&route("good", &pki.ca()))
        .route(&route("wrong", &pki.other_ca()))
        .start();
    let token = k1.sign(&json!({"sub": "alice@example.com", "exp": now() + 3600}));
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let r = get_with(&gw, "/good", &bearer);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.inspected("x-weir-consumer"), ["alice"]);
    let r = get_with(&gw, "/wrong", &bearer);
    assert_eq!(
        r.status(),
        401,
        "no keys from a server whose CA is not trusted: {}",
        r.text()
    );
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        1,
        "only the trusted fetch got an answer"
    );
}

both_drivers! {
    /// JWT: HS256 with a shared secret, and ES256 with keys from a JWKS URL that rotates (a token
    /// signed by a new key is refused until the JWKS is fetched again, which the unknown `kid`
    /// triggers); issuer, audience and expiry checked; a claim sent upstream as a header and a
    /// client's own copy of that header dropped; the token never reaches the upstream.
    fn jwt(d) {
        let k1 = EcKey::new("k1");
        let k2 = EcKey::new("k2");
        let jwks = JwksServer::start(json!({"keys": [k1.jwk()]}).to_string());
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&consumers(""))
            .cluster("mock", &[m.endpoint()])
            .route(&format!("{{ name: es, match: {{ path: {{ prefix: /es }} }}, cluster: mock, rewrite: {{ path_prefix: /inspect }}, filters: [{{ type: auth, jwt: {{ jwks_url: \"http://{}/jwks\", jwks_refresh: 1h, issuer: https://idp.test, audiences: [weir], claims_to_headers: {{ email: x-user-email }} }} }}] }}", jwks.addr))
            .route(&format!("{{ name: hs, match: {{ path: {{ prefix: / }} }}, cluster: mock, rewrite: {{ path_prefix: /inspect }}, filters: [{{ type: auth, jwt: {{ secret: \"{HS_SECRET}\" }} }}] }}"))
            .start();
        let exp = now() + 3600;
        let claims = json!({"sub": "alice@example.com", "iss": "https://idp.test", "aud": "weir", "exp": exp, "email": "alice@example.com"});
        let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");

        for _ in 0..3 {
            let r = get_with(&gw, "/es", &format!("{}x-user-email: spoofed\r\n", bearer(&k1.sign(&claims))));
            assert_eq!(r.status(), 200, "{}", r.text());
            assert!(r.inspected("authorization").is_empty());
            assert_eq!(r.inspected("x-user-email"), ["alice@example.com"]);
            assert_eq!(r.inspected("x-weir-consumer"), ["alice"]);
        }
        for (c, what) in [
            (json!({"sub": "alice@example.com", "iss": "https://idp.test", "aud": "weir", "exp": now() - 600}), "expired"),
            (json!({"sub": "alice@example.com", "iss": "https://evil.test", "aud": "weir", "exp": exp}), "issuer"),
            (json!({"sub": "alice@example.com", "iss": "https://idp.test", "aud": "other", "exp": exp}), "audience"),
        ] {
            let r = get_with(&gw, "/es", &bearer(&k1.sign(&c)));
            assert_eq!(r.status(), 401, "{what}");
            assert_eq!(r.json()["error"]["type"], "invalid_token");
        }
        let r = get_with(&gw, "/es", &bearer(&k1.sign(&json!({"sub": "mallory", "iss": "https://idp.test", "aud": "weir", "exp": exp}))));
        assert_eq!(r.status(), 403, "a valid token for no consumer");
        assert_eq!(get_with(&gw, "/es", "").status(), 401);
        // A forged signature: k2 signs as k1.
        let forged = {
            let t = k2.sign(&claims);
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[0] = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "k1"}).to_string());
            parts.join(".")
        };
        assert_eq!(get_with(&gw, "/es", &bearer(&forged)).status(), 401);

        // Rotation: the IdP now signs with k2 and publishes both keys.
        *jwks.doc.lock().unwrap() = json!({"keys": [k1.jwk(), k2.jwk()]}).to_string();
        let hits = jwks.hits.load(Ordering::SeqCst);
        let t2 = k2.sign(&claims);
        wait_until("a token signed by the rotated-in key is accepted", Duration::from_secs(20), Duration::from_millis(200), || {
            (get_with(&gw, "/es", &bearer(&t2)).status() == 200).then_some(())
        });
        assert!(jwks.hits.load(Ordering::SeqCst) > hits, "the JWKS was fetched again");

        // HS256.
        let hs = hs256(&json!({"sub": "bob", "exp": exp}));
        let r = get_with(&gw, "/", &bearer(&hs));
        assert_eq!(r.status(), 200);
        assert_eq!(r.inspected("x-weir-consumer"), ["bob"]);
        let bad = hs256(&json!({"sub": "bob", "exp": now() - 100}));
        assert_eq!(get_with(&gw, "/", &bearer(&bad)).status(), 401);
        // An ES256 token is not accepted where only the HS secret is configured.
        assert_eq!(get_with(&gw, "/", &bearer(&k1.sign(&claims))).status(), 401);
    }
}

fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A request signed with `secret` (covering the target, the date and, with a body, its digest).
fn signed(
    method: &str,
    target: &str,
    date: &str,
    secret: &str,
    body: Option<(&str, &str)>,
) -> String {
    let mut covered = "(request-target) date".to_string();
    let mut text = format!(
        "(request-target): {} {target}\ndate: {date}",
        method.to_lowercase()
    );
    let mut extra = String::new();
    let mut payload = "";
    if let Some((signed_body, sent_body)) = body {
        let d = STANDARD.encode(sha2::Sha256::digest(signed_body.as_bytes()));
        covered.push_str(" digest");
        text.push_str(&format!("\ndigest: SHA-256={d}"));
        extra = format!(
            "Digest: SHA-256={d}\r\nContent-Length: {}\r\n",
            sent_body.len()
        );
        payload = sent_body;
    }
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        text.as_bytes(),
    );
    format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\nDate: {date}\r\n{extra}Authorization: Signature keyId=\"alice-hmac\",algorithm=\"hmac-sha256\",headers=\"{covered}\",signature=\"{}\"\r\n\r\n{payload}",
        STANDARD.encode(tag.as_ref())
    )
}

both_drivers! {
    /// HMAC signatures: accepted once; the same request again is a replay (401); a date outside
    /// the skew window, a wrong secret, a changed target and a body that does not match its
    /// signed digest are refused; the signature never reaches the upstream.
    fn hmac_signatures(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(&consumers(""))
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, filters: [{ type: auth, hmac: { clock_skew: 30s, require_digest: true } }] }")
            .start();
        let date = http_date(now());
        let raw = signed("GET", "/inspect?n=1", &date, HMAC_SECRET, None);
        let mut c = gw.connect();
        let r = c.request(raw.as_bytes());
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.inspected("authorization").is_empty());
        assert_eq!(r.inspected("x-weir-consumer"), ["alice"]);
        let r = c.request(raw.as_bytes());
        assert_eq!(r.status(), 401);
        assert_eq!(r.json()["error"]["message"], "the request was replayed");

        let stale = signed("GET", "/inspect?n=2", &http_date(now() - 300), HMAC_SECRET, None);
        assert_eq!(gw.request(stale.as_bytes()).status(), 401);
        let wrong = signed("GET", "/inspect?n=3", &date, "not-the-secret-0123456789", None);
        assert_eq!(gw.request(wrong.as_bytes()).status(), 401);
        let moved = signed("GET", "/inspect?n=4", &date, HMAC_SECRET, None).replace("GET /inspect?n=4", "GET /inspect?n=5");
        assert_eq!(gw.request(moved.as_bytes()).status(), 401);

        // Bodies: the digest is checked against what arrives.
        let ok = signed("POST", "/echo", &date, HMAC_SECRET, Some(("{\"a\":1}", "{\"a\":1}")));
        let r = gw.request(ok.as_bytes());
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "{\"a\":1}");
        let tampered = signed("POST", "/echo?t", &date, HMAC_SECRET, Some(("{\"a\":1}", "{\"a\":2}")));
        let r = gw.request(tampered.as_bytes());
        assert_eq!(r.status(), 401, "{}", r.text());
        // A body without a signed digest.
        let nodigest = signed("POST", "/echo?u", &date, HMAC_SECRET, None).replace("\r\n\r\n", "\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(gw.request(nodigest.as_bytes()).status(), 401);
    }
}

both_drivers! {
    /// Virtual keys through `weir-control` and `weirctl`: a key made at run time works on every
    /// core of a two-core plane; once `weirctl key revoke` returns (the plane ACKed), the very
    /// connections that used it (spread over both cores) are refused with 401; a rotated key
    /// works and the old one does not; the listing shows the states and never a secret.
    fn revoked_virtual_key_stops_on_every_core(d) {
        let yaml = Gateway::new()
            .top_yaml("consumers: [{ name: team-a, allow: { models: [\"mock-*\"] } }]")
            .route("{ name: r, direct_response: { status: 200, body: ok }, filters: [{ type: auth }] }")
            .yaml();
        let daemon = ControlDaemon::start(&yaml);
        let gw = Gateway::new().driver(d).workers(2).control(&daemon).plane_id("p").start();
        let weirctl_json = |args: &[&str]| -> Value {
            let mut all = vec!["-o", "json"];
            all.extend_from_slice(args);
            let out = daemon.weirctl(&all);
            assert!(out.status.success(), "weirctl {all:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let v = weirctl_json(&["key", "create", "team-a", "--id", "ci", "--wait", "10"]);
        assert_eq!(v["planes"][0]["result"], "ack", "{v}");
        let secret = v["key"]["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("wk-"));
        // The config keeps the digest only.
        let cfg = daemon.get_json("/v1/config").to_string();
        assert!(!cfg.contains(&secret));

        let mut conns: Vec<Client> = (0..16).map(|_| gw.connect()).collect();
        let req = format!("GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {secret}\r\n\r\n");
        for c in &mut conns {
            let r = c.request(req.as_bytes());
            assert_eq!(r.status(), 200, "{}", r.text());
        }

        let out = daemon.weirctl(&["key", "revoke", "team-a", "ci", "--wait", "10"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for c in &mut conns {
            let r = c.request(req.as_bytes());
            assert_eq!(r.status(), 401, "a revoked key answered on some core");
        }
        let out = daemon.weirctl(&["key", "list", "team-a"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("ci") && text.contains("revoked"), "{text}");
        assert!(!text.contains(&secret));

        // Rotation: new key works at once, the old one stops (no grace).
        let v = weirctl_json(&["key", "create", "team-a", "--id", "ci-2", "--wait", "10"]);
        let s2 = v["key"]["secret"].as_str().unwrap().to_owned();
        let v = weirctl_json(&["key", "rotate", "team-a", "ci-2", "--new-id", "ci-3", "--wait", "10"]);
        let s3 = v["key"]["secret"].as_str().unwrap().to_owned();
        let with = |s: &str| format!("GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {s}\r\n\r\n");
        for c in &mut conns {
            assert_eq!(c.request(with(&s3).as_bytes()).status(), 200);
            assert_eq!(c.request(with(&s2).as_bytes()).status(), 401);
        }
        // An expiry in the past: refused as expired.
        let out = daemon.weirctl(&["key", "expire", "team-a", "ci-3", "--wait", "10"]);
        assert!(out.status.success());
        let r = conns[0].request(with(&s3).as_bytes());
        assert_eq!(r.status(), 401);
        assert_eq!(r.json()["error"]["type"], "expired_api_key");
    }
}
