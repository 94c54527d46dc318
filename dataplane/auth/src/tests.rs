//! Unit tests of the `auth` filter, driven as the request path drives it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base64::Engine;
use bytes::BytesMut;
use serde_json::json;
use weir_filter::{Action, AiInfo, ErrorFormat, FilterFactory, LocalResponse, RequestCtx};
use weir_http::{HeadLimits, RequestHead};

use crate::jwt::testkit::{hs256, EcKey};
use crate::*;

const KEY_A: &str = "wk-alpha-0123456789abcdef0123456789abcdef";
const KEY_OLD: &str = "wk-expired-0123456789abcdef0123456789ab";
const KEY_REVOKED: &str = "wk-revoked-0123456789abcdef0123456789ab";
const KEY_B: &str = "wk-bravo-0123456789abcdef0123456789abcdef";
const KEY_D: &str = "wk-delta-0123456789abcdef0123456789abcdef";
const HS_SECRET: &str = "0123456789abcdef0123456789abcdef";
const HMAC_SECRET: &str = "hmac-secret-0123456789";

fn pbkdf2(password: &str) -> String {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(1000).unwrap(),
        b"saltsalt",
        password.as_bytes(),
        &mut out,
    );
    let b = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$pbkdf2-sha256$i=1000${}${}",
        b.encode(b"saltsalt"),
        b.encode(out)
    )
}

fn config(filter: &str, extra_consumer: &str) -> weir_config::Config {
    let yaml = format!(
        r#"
consumers:
  - name: alice
    attributes: {{ team: research }}
    keys:
      - {{ id: a1, sha256: "{a}" }}
      - {{ id: old, sha256: "{old}", expires_at: "2020-01-01T00:00:00Z" }}
      - {{ id: gone, sha256: "{rev}", revoked_at: "2021-01-01T00:00:00Z" }}
    basic_auth: [{{ username: alice, password_hash: "{pw}" }}]
    hmac: [{{ id: alice-hmac, secret: "{hs}" }}]
    allow: {{ models: ["gpt-4o*"] }}
  - name: bob
    keys: [{{ id: b1, sha256: "{b}" }}]
    jwt_subjects: [bob@example.com]
  - name: dave
    keys: [{{ id: d1, sha256: "{d}" }}]
    allow: {{ routes: [other], ips: [10.0.0.0/8] }}
{extra_consumer}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: r
        direct_response: {{ status: 200 }}
        filters: [{filter}]
"#,
        a = key_digest_hex(KEY_A),
        old = key_digest_hex(KEY_OLD),
        rev = key_digest_hex(KEY_REVOKED),
        b = key_digest_hex(KEY_B),
        d = key_digest_hex(KEY_D),
        pw = pbkdf2("s3cret"),
        hs = HMAC_SECRET,
    );
    weir_config::parse(&yaml, "t.yaml").unwrap()
}

fn build(filter: &str) -> Box<dyn FilterFactory> {
    build_with(filter, "")
}

fn build_with(filter: &str, extra: &str) -> Box<dyn FilterFactory> {
    let cfg = config(filter, extra);
    let shared = SharedAuth::new(&cfg, None).unwrap();
    let weir_config::FilterConfig::Auth(a) = &cfg.listeners[0].routes[0].filters[0] else {
        panic!("not an auth filter")
    };
    Box::new(filter::AuthFactory::new(a, &shared, 0).unwrap())
}

fn head(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .unwrap()
        .unwrap()
}

fn ctx(client: &str) -> RequestCtx {
    let mut c = RequestCtx::new("req-1".into(), client.parse().unwrap(), "main".into(), 0);
    c.route = Some("r".into());
    c
}

/// Runs the headers phase; `Ok(head)` if it continued.
fn run(f: &dyn FilterFactory, raw: &str) -> (Result<RequestHead, LocalResponse>, RequestCtx) {
    let mut c = ctx("127.0.0.1:5000");
    let mut h = head(raw);
    let mut filter = f.create();
    let r = match filter.on_request_headers(&mut c, &mut h).unwrap() {
        Action::Continue => Ok(h),
        Action::Respond(r) => Err(r),
        Action::Wait(_) => panic!("an auth filter never waits"),
    };
    (r, c)
}

fn get(extra: &str) -> String {
    format!("GET /x HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

fn json_of(r: &LocalResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn key_auth_accepts_and_hides_the_key() {
    let f = build("{ type: auth }");
    let (r, c) = run(&*f, &get(&format!("Authorization: Bearer {KEY_A}\r\n")));
    let h = r.expect("accepted");
    assert_eq!(c.consumer.as_deref(), Some("alice"));
    assert_eq!(c.consumer_key.as_deref(), Some("a1"));
    assert!(
        h.headers.get("authorization").is_none(),
        "credential hidden"
    );
    assert_eq!(h.headers.get_str("x-weir-consumer"), Some("alice"));

    let (r, c) = run(&*f, &get(&format!("x-api-key: {KEY_B}\r\n")));
    let h = r.expect("accepted");
    assert_eq!(c.consumer.as_deref(), Some("bob"));
    assert!(h.headers.get("x-api-key").is_none());
}

#[test]
fn key_auth_refuses_wrong_expired_revoked_missing() {
    let f = build("{ type: auth }");
    for (hdr, kind) in [
        (
            "Authorization: Bearer wk-nope\r\n".to_string(),
            "invalid_api_key",
        ),
        (format!("x-api-key: {KEY_OLD}\r\n"), "expired_api_key"),
        (format!("x-api-key: {KEY_REVOKED}\r\n"), "invalid_api_key"),
        (String::new(), "missing_credentials"),
    ] {
        let (r, c) = run(&*f, &get(&hdr));
        let r = r.expect_err("refused");
        assert_eq!(r.status, 401, "{hdr}");
        assert_eq!(json_of(&r)["error"]["type"], kind, "{hdr}");
        assert_eq!(
            r.headers.get_str("www-authenticate"),
            Some("Bearer realm=\"weir\"")
        );
        assert!(c.consumer.is_none());
        assert_eq!(c.error.as_ref().map(|e| e.kind), Some(kind));
    }
}

#[test]
fn errors_speak_the_clients_protocol() {
    let f = build("{ type: auth }");
    let (r, _) = run(
        &*f,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    let v = json_of(&r.expect_err("refused"));
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(v["error"]["code"], "missing_credentials");
    let (r, _) = run(
        &*f,
        "POST /v1/messages HTTP/1.1\r\nHost: t\r\nx-api-key: bad\r\nContent-Length: 0\r\n\r\n",
    );
    let v = json_of(&r.expect_err("refused"));
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let f = build("{ type: auth, error_format: anthropic }");
    let (r, _) = run(&*f, &get(""));
    assert_eq!(json_of(&r.expect_err("refused"))["type"], "error");
}

#[test]
fn key_in_a_query_parameter_is_removed() {
    let f = build("{ type: auth, key: { headers: [], query: [api_key] } }");
    let (r, c) = run(
        &*f,
        &format!("GET /x?a=1&api_key={KEY_A}&b=2 HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    let h = r.expect("accepted");
    assert_eq!(c.consumer.as_deref(), Some("alice"));
    assert_eq!(&h.target[..], b"/x?a=1&b=2");
    // Headers are not looked at.
    let (r, _) = run(&*f, &get(&format!("x-api-key: {KEY_A}\r\n")));
    assert_eq!(r.expect_err("refused").status, 401);
    assert_eq!(&filter::test_strip_query(b"/p?k=1", b"k")[..], b"/p");
    assert_eq!(filter::test_percent_decode(b"a%2Fb+c%zz"), b"a/b c%zz");
}

#[test]
fn consumer_route_and_ip_lists() {
    let f = build("{ type: auth }");
    let mut c = ctx("10.1.2.3:5000");
    c.route = Some("r".into());
    let mut h = head(&get(&format!("x-api-key: {KEY_D}\r\n")));
    let mut filter = f.create();
    match filter.on_request_headers(&mut c, &mut h).unwrap() {
        Action::Respond(r) => {
            assert_eq!(r.status, 403);
            assert_eq!(json_of(&r)["error"]["type"], "forbidden");
        }
        Action::Continue => panic!("route r is not in bob's list"),
        Action::Wait(_) => panic!("an auth filter never waits"),
    }
    let mut c = ctx("10.1.2.3:5000");
    c.route = Some("other".into());
    let mut h = head(&get(&format!("x-api-key: {KEY_D}\r\n")));
    assert!(matches!(
        f.create().on_request_headers(&mut c, &mut h).unwrap(),
        Action::Continue
    ));
    let mut c = ctx("192.168.1.1:5000");
    c.route = Some("other".into());
    let mut h = head(&get(&format!("x-api-key: {KEY_D}\r\n")));
    assert!(matches!(
        f.create().on_request_headers(&mut c, &mut h).unwrap(),
        Action::Respond(_)
    ));

    let f = build("{ type: auth, consumers: [bob] }");
    let (r, _) = run(&*f, &get(&format!("x-api-key: {KEY_A}\r\n")));
    assert_eq!(r.expect_err("alice is not listed").status, 403);
}

#[test]
fn models_are_checked_at_the_end_of_the_body() {
    let f = build("{ type: auth }");
    for (model, allowed) in [("gpt-4o-mini", true), ("claude-3", false)] {
        let mut c = ctx("127.0.0.1:1");
        let mut h = head(&format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY_A}\r\nContent-Length: 2\r\n\r\n"
        ));
        let mut filter = f.create();
        assert!(matches!(
            filter.on_request_headers(&mut c, &mut h).unwrap(),
            Action::Continue
        ));
        c.error_format = ErrorFormat::OpenAi;
        c.ai = Some(Box::new(AiInfo {
            requested_model: Some(model.into()),
            ..Default::default()
        }));
        assert!(matches!(
            filter.on_request_body(&mut c, b"{}", false).unwrap(),
            Action::Continue
        ));
        match filter.on_request_body(&mut c, &[], true).unwrap() {
            Action::Continue => assert!(allowed, "{model}"),
            Action::Wait(_) => panic!("an auth filter never waits"),
            Action::Respond(r) => {
                assert!(!allowed, "{model}");
                assert_eq!(r.status, 403);
                let v = json_of(&r);
                assert_eq!(v["error"]["type"], "permission_error");
                assert_eq!(v["error"]["code"], "model_not_allowed");
            }
        }
    }
}

#[test]
fn basic_auth() {
    let f = build("{ type: auth, basic: {} }");
    let b = base64::engine::general_purpose::STANDARD;
    let (r, c) = run(
        &*f,
        &get(&format!(
            "Authorization: Basic {}\r\n",
            b.encode("alice:s3cret")
        )),
    );
    assert!(r.expect("accepted").headers.get("authorization").is_none());
    assert_eq!(c.consumer_key.as_deref(), Some("alice"));
    // Cached: still accepted.
    let (r, _) = run(
        &*f,
        &get(&format!(
            "Authorization: Basic {}\r\n",
            b.encode("alice:s3cret")
        )),
    );
    assert!(r.is_ok());
    let (r, _) = run(
        &*f,
        &get(&format!(
            "Authorization: Basic {}\r\n",
            b.encode("alice:wrong")
        )),
    );
    let r = r.expect_err("refused");
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .get_str("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic")));
    // Keys are not accepted when only basic is enabled.
    let (r, _) = run(&*f, &get(&format!("x-api-key: {KEY_A}\r\n")));
    assert_eq!(r.expect_err("refused").status, 401);
    // Failures are throttled per user.
    for _ in 0..12 {
        let _ = run(
            &*f,
            &get(&format!(
                "Authorization: Basic {}\r\n",
                b.encode("alice:nope")
            )),
        );
    }
    let (r, _) = run(
        &*f,
        &get(&format!(
            "Authorization: Basic {}\r\n",
            b.encode("alice:other")
        )),
    );
    assert_eq!(
        json_of(&r.expect_err("throttled"))["error"]["type"],
        "too_many_failures"
    );
}

#[test]
fn jwt_hs256_with_claims_to_headers_and_cache() {
    let f = build(&format!(
        "{{ type: auth, jwt: {{ secret: \"{HS_SECRET}\", issuer: iss, claims_to_headers: {{ email: x-user-email }} }} }}"
    ));
    let exp = 4_000_000_000i64;
    let t = hs256(
        HS_SECRET.as_bytes(),
        &json!({"sub": "bob@example.com", "iss": "iss", "exp": exp, "email": "b@x"}),
    );
    let raw = get(&format!(
        "Authorization: Bearer {t}\r\nx-user-email: spoofed\r\n"
    ));
    for _ in 0..2 {
        let (r, c) = run(&*f, &raw);
        let h = r.expect("accepted");
        assert_eq!(c.consumer.as_deref(), Some("bob"));
        assert_eq!(c.consumer_key.as_deref(), Some("jwt"));
        assert_eq!(h.headers.get_str("x-user-email"), Some("b@x"));
        assert!(h.headers.get("authorization").is_none());
    }
    // Expired, wrong issuer, wrong secret, unknown subject.
    let cases = [
        (
            json!({"sub": "bob", "iss": "iss", "exp": 1000}),
            401,
            "the token has expired",
        ),
        (
            json!({"sub": "bob", "iss": "evil", "exp": exp}),
            401,
            "the token's issuer is not accepted",
        ),
        (
            json!({"sub": "mallory", "iss": "iss", "exp": exp}),
            403,
            "the token's subject is not a consumer of this gateway",
        ),
    ];
    for (claims, status, msg) in cases {
        let (r, _) = run(
            &*f,
            &get(&format!(
                "Authorization: Bearer {}\r\n",
                hs256(HS_SECRET.as_bytes(), &claims)
            )),
        );
        let r = r.expect_err("refused");
        assert_eq!(r.status, status);
        assert_eq!(json_of(&r)["error"]["message"], msg);
    }
    let forged = hs256(
        b"another-secret-another-secret-xx",
        &json!({"sub": "bob", "iss": "iss", "exp": exp}),
    );
    let (r, _) = run(&*f, &get(&format!("Authorization: Bearer {forged}\r\n")));
    assert_eq!(r.expect_err("refused").status, 401);
}

#[test]
fn jwt_es256_from_a_jwks_file_and_keys_side_by_side() {
    let dir = std::env::temp_dir().join(format!("weir-auth-t-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    let k = EcKey::new("kid-1");
    std::fs::write(&path, json!({"keys": [k.jwk]}).to_string()).unwrap();
    let f = build(&format!(
        "{{ type: auth, key: {{}}, jwt: {{ jwks_file: \"{}\", audiences: [weir] }} }}",
        path.display()
    ));
    let t = k.sign(&json!({"sub": "alice", "aud": "weir", "exp": 4_000_000_000i64}));
    let (r, c) = run(&*f, &get(&format!("Authorization: Bearer {t}\r\n")));
    assert!(r.is_ok());
    assert_eq!(c.consumer.as_deref(), Some("alice"));
    assert_eq!(c.consumer_key.as_deref(), Some("kid-1"));
    // An opaque bearer token is an API key on the same filter.
    let (r, c) = run(&*f, &get(&format!("Authorization: Bearer {KEY_B}\r\n")));
    assert!(r.is_ok());
    assert_eq!(c.consumer.as_deref(), Some("bob"));
    let bad = k.sign(&json!({"sub": "alice", "aud": "other", "exp": 4_000_000_000i64}));
    let (r, _) = run(&*f, &get(&format!("Authorization: Bearer {bad}\r\n")));
    assert_eq!(r.expect_err("refused").status, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

fn signed(
    method: &str,
    target: &str,
    date: &str,
    key: &str,
    secret: &str,
    body: Option<&str>,
) -> String {
    let mut covered = "(request-target) date".to_string();
    let mut lines = format!(
        "(request-target): {} {target}\ndate: {date}",
        method.to_lowercase()
    );
    let mut extra = String::new();
    if let Some(b) = body {
        let d = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest_bytes(b));
        covered.push_str(" digest");
        lines.push_str(&format!("\ndigest: SHA-256={d}"));
        extra = format!("Digest: SHA-256={d}\r\nContent-Length: {}\r\n", b.len());
    }
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        lines.as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\nDate: {date}\r\n{extra}Authorization: Signature keyId=\"{key}\",algorithm=\"hmac-sha256\",headers=\"{covered}\",signature=\"{sig}\"\r\n\r\n"
    )
}

trait DigestBytes {
    fn digest_bytes(b: &str) -> Vec<u8>;
}
impl DigestBytes for sha2::Sha256 {
    fn digest_bytes(b: &str) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(b.as_bytes()).to_vec()
    }
}

fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    // civil_from_days
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

#[test]
fn hmac_signatures_skew_and_replay() {
    let f = build("{ type: auth, hmac: { clock_skew: 60s } }");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let raw = signed(
        "GET",
        "/x?n=1",
        &http_date(now),
        "alice-hmac",
        HMAC_SECRET,
        None,
    );
    let (r, c) = run(&*f, &raw);
    assert!(r.expect("accepted").headers.get("authorization").is_none());
    assert_eq!(c.consumer_key.as_deref(), Some("alice-hmac"));
    // The same request again: a replay.
    let (r, _) = run(&*f, &raw);
    assert_eq!(
        json_of(&r.expect_err("replay"))["error"]["message"],
        "the request was replayed"
    );
    // Outside the skew window.
    let (r, _) = run(
        &*f,
        &signed(
            "GET",
            "/x?n=2",
            &http_date(now - 600),
            "alice-hmac",
            HMAC_SECRET,
            None,
        ),
    );
    assert_eq!(r.expect_err("stale").status, 401);
    // Wrong secret, unknown key.
    let (r, _) = run(
        &*f,
        &signed(
            "GET",
            "/x?n=3",
            &http_date(now),
            "alice-hmac",
            "another-secret-xxxxx",
            None,
        ),
    );
    assert_eq!(
        json_of(&r.expect_err("bad"))["error"]["message"],
        "the signature does not match"
    );
    let (r, _) = run(
        &*f,
        &signed(
            "GET",
            "/x?n=4",
            &http_date(now),
            "nobody",
            HMAC_SECRET,
            None,
        ),
    );
    assert_eq!(r.expect_err("unknown").status, 401);
    // A tampered target.
    let raw = signed(
        "GET",
        "/x?n=5",
        &http_date(now),
        "alice-hmac",
        HMAC_SECRET,
        None,
    )
    .replace("GET /x?n=5", "GET /x?n=6");
    assert_eq!(run(&*f, &raw).0.expect_err("tampered").status, 401);
}

#[test]
fn hmac_body_digest() {
    let f = build("{ type: auth, hmac: { require_digest: true } }");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (sent, ok) in [("{\"a\":1}", true), ("{\"a\":2}", false)] {
        let raw = signed(
            "POST",
            &format!("/y?{ok}"),
            &http_date(now),
            "alice-hmac",
            HMAC_SECRET,
            Some("{\"a\":1}"),
        );
        let mut c = ctx("127.0.0.1:1");
        let mut h = head(&raw);
        let mut filter = f.create();
        assert!(matches!(
            filter.on_request_headers(&mut c, &mut h).unwrap(),
            Action::Continue
        ));
        filter
            .on_request_body(&mut c, sent.as_bytes(), false)
            .unwrap();
        let end = filter.on_request_body(&mut c, &[], true);
        assert_eq!(end.is_ok(), ok, "{sent}");
    }
    // A body without a signed digest is refused at once.
    let raw = signed(
        "POST",
        "/z",
        &http_date(now),
        "alice-hmac",
        HMAC_SECRET,
        None,
    )
    .replace("\r\n\r\n", "\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(run(&*f, &raw).0.expect_err("no digest").status, 401);
}

#[test]
fn disabled_consumers_and_reused_store() {
    let extra = format!(
        "  - name: carol\n    disabled: true\n    keys: [{{ id: c1, sha256: \"{}\" }}]\n",
        key_digest_hex("wk-carol-0123456789abcdef0123456789abcdef")
    );
    let f = build_with("{ type: auth }", &extra);
    let (r, _) = run(
        &*f,
        &get("x-api-key: wk-carol-0123456789abcdef0123456789abcdef\r\n"),
    );
    assert_eq!(r.expect_err("disabled").status, 401);
    let cfg = config("{ type: auth }", "");
    let a = SharedAuth::new(&cfg, None).unwrap();
    let b = SharedAuth::new(&cfg, Some(&a)).unwrap();
    assert!(Arc::ptr_eq(a.store(), b.store()));
}

/// The replay cache is the process's: a replay that lands on another core (thread) is refused.
#[test]
fn hmac_replay_is_caught_on_another_core() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let raw = signed(
        "GET",
        "/other-core",
        &http_date(now),
        "alice-hmac",
        HMAC_SECRET,
        None,
    );
    let on_a_core = |raw: String| {
        std::thread::spawn(move || {
            let f = build("{ type: auth, hmac: { clock_skew: 60s } }");
            run(&*f, &raw).0.map(|_| ()).map_err(|e| e.status)
        })
        .join()
        .unwrap()
    };
    assert_eq!(on_a_core(raw.clone()), Ok(()), "first use passes");
    assert_eq!(
        on_a_core(raw),
        Err(401),
        "the same signature on another core is a replay"
    );
}
