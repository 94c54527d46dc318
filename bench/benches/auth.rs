//! The `auth` filter per request (`weir_auth`): what authenticating a request adds on the request
//! path, measured as the proxy runs it — one filter made by the route's factory, its
//! `on_request_headers` on a parsed head (the head and the context are made outside the timing).
//!
//! - `key/bearer`: an API key in `Authorization: Bearer` among 3 consumers' keys: SHA-256 of the
//!   key, one hash-map probe, the header removed, the consumer header set.
//! - `key/bearer_100k_keys`: the same with 100,000 keys configured (the probe does not grow).
//! - `key/x_api_key_denied`: a wrong key, answered with a 401 in the OpenAI shape.
//! - `jwt/es256_cached`: an ES256 JWT seen before on this core (the per-core verified-token
//!   cache): a lookup by the token, the expiry checked.
//! - `jwt/es256_verify`: the signature check and claim parsing the cache saves (`jwt::verify`).

use std::hint::black_box;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::BytesMut;
use criterion::{criterion_group, BatchSize, Criterion};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use weir_auth::{key_digest_hex, SharedAuth};
use weir_filter::{FilterFactory, RequestCtx};
use weir_http::{HeadLimits, RequestHead};

const KEY: &str = "wk-bench-3c2b1a0f9e8d7c6b5a493827161504f3e2d1c0b9a8";

fn head(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete")
}

fn ctx() -> RequestCtx {
    let mut c = RequestCtx::new(
        "req".into(),
        "127.0.0.1:5000".parse().expect("addr"),
        "main".into(),
        0,
    );
    c.route = Some("r".into());
    c
}

/// The factory of the one `auth` filter of `filter` with `extra_keys` more keys configured.
fn factory(
    filter: &str,
    extra_keys: usize,
    jwks: Option<&std::path::Path>,
) -> Box<dyn FilterFactory> {
    let mut yaml = format!(
        "consumers:\n  - name: alice\n    keys: [{{ id: a, sha256: \"{}\" }}]\n  - name: bob\n    keys: [{{ id: b, sha256: \"{}\" }}]\n    jwt_subjects: [bob@example.com]\n  - name: many\n    keys:\n",
        key_digest_hex(KEY),
        key_digest_hex("wk-other")
    );
    yaml.push_str(&format!(
        "      - {{ id: m0, sha256: \"{}\" }}\n",
        key_digest_hex("wk-m0")
    ));
    for i in 1..=extra_keys {
        yaml.push_str(&format!(
            "      - {{ id: m{i}, sha256: \"{}\" }}\n",
            key_digest_hex(&format!("wk-m{i}"))
        ));
    }
    let filter = match jwks {
        Some(p) => filter.replace("JWKS", &p.display().to_string()),
        None => filter.to_string(),
    };
    yaml.push_str(&format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: r\n        direct_response: {{ status: 200 }}\n        filters: [{filter}]\n"
    ));
    let cfg = weir_config::parse(&yaml, "bench.yaml").expect("config");
    let shared: Arc<SharedAuth> = SharedAuth::new(&cfg, None).expect("shared");
    let weir_config::FilterConfig::Auth(a) = &cfg.listeners[0].routes[0].filters[0] else {
        panic!("an auth filter")
    };
    Box::new(weir_auth::AuthFactory::new(a, &shared, 0).expect("factory"))
}

fn run(c: &mut Criterion, name: &str, f: &dyn FilterFactory, raw: &str) {
    let h = head(raw);
    c.bench_function(name, |b| {
        b.iter_batched_ref(
            || (ctx(), h.clone()),
            |(cx, hd)| {
                let mut filter = f.create();
                black_box(filter.on_request_headers(cx, hd).is_ok())
            },
            BatchSize::SmallInput,
        )
    });
}

fn es256() -> (signature::EcdsaKeyPair, serde_json::Value) {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key");
    let pt = pair.public_key().as_ref().to_vec();
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&pt[1..33]), "y": URL_SAFE_NO_PAD.encode(&pt[33..65])});
    (pair, jwk)
}

fn token(pair: &signature::EcdsaKeyPair) -> String {
    let head = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "k1"});
    let claims = serde_json::json!({"sub": "bob@example.com", "iss": "https://idp.test",
        "aud": "weir", "exp": 4_000_000_000u64, "email": "bob@example.com"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(head.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn bench(c: &mut Criterion) {
    let f = factory("{ type: auth }", 0, None);
    let bearer = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 2\r\n\r\n"
    );
    run(c, "key/bearer", &*f, &bearer);
    let big = factory("{ type: auth }", 100_000, None);
    run(c, "key/bearer_100k_keys", &*big, &bearer);
    run(
        c,
        "key/x_api_key_denied",
        &*f,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nx-api-key: wk-wrong\r\nContent-Length: 2\r\n\r\n",
    );

    let (pair, jwk) = es256();
    let dir = std::env::temp_dir().join(format!("weir-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::json!({"keys": [jwk]}).to_string()).expect("jwks");
    let jf = factory(
        "{ type: auth, jwt: { jwks_file: \"JWKS\", issuer: \"https://idp.test\", audiences: [weir]} }",
        0,
        Some(&path),
    );
    let t = token(&pair);
    let raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {t}\r\nContent-Length: 2\r\n\r\n"
    );
    run(c, "jwt/es256_cached", &*jf, &raw);
    let (pair2, jwk2) = es256();
    let keys2 = weir_auth::jwt::KeySet::from_jwks(
        serde_json::json!({"keys": [jwk2]}).to_string().as_bytes(),
    )
    .expect("set");
    let rules = weir_auth::jwt::Rules {
        algorithms: Vec::new(),
        issuer: Some("https://idp.test".into()),
        audiences: vec!["weir".into()],
        leeway: 30,
        require_exp: true,
    };
    let t2 = token(&pair2);
    c.bench_function("jwt/es256_verify", |b| {
        b.iter(|| black_box(weir_auth::jwt::verify(&t2, &keys2, &rules, 1_800_000_000).is_ok()))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
