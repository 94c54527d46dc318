//! With the test-only RSA key under `testdata/` (see its README): the JWT is checked field by
//! field and its signature verified with ring.

use std::time::{Duration, UNIX_EPOCH};

use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};

use super::*;

const PKCS8: &str = include_str!("../../testdata/test-only-rsa2048-pkcs8.pem");
const PKCS1: &str = include_str!("../../testdata/test-only-rsa2048-pkcs1.pem");

fn key_file(pem: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "weir-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "weir@weir-test.iam.gserviceaccount.com",
        "client_id": "1",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn jwt_assertion_is_signed_rs256() {
    let sa = ServiceAccount::from_json(&key_file(PKCS8)).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_736_937_000);
    let jwt = sa.jwt_assertion(CLOUD_PLATFORM_SCOPE, now).unwrap();

    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        decode_part(parts[0]),
        json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"})
    );
    assert_eq!(
        decode_part(parts[1]),
        json!({
            "iss": "weir@weir-test.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1_736_937_000u64,
            "exp": 1_736_940_600u64,
        })
    );

    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    assert_eq!(signature.len(), 256);
    let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, sa.public_key_der());
    public.verify(signed.as_bytes(), &signature).unwrap();
    // Anything else signed does not verify.
    let mut tampered = signed.to_owned();
    tampered.push('x');
    assert!(public.verify(tampered.as_bytes(), &signature).is_err());

    // PKCS#1 PEM of the same key: the same key, so the same (deterministic) signature.
    let sa1 = ServiceAccount::from_json(&key_file(PKCS1)).unwrap();
    assert_eq!(sa1.public_key_der(), sa.public_key_der());
    assert_eq!(sa1.jwt_assertion(CLOUD_PLATFORM_SCOPE, now).unwrap(), jwt);
}

#[test]
fn key_files_that_are_refused() {
    let err = |json: &str| ServiceAccount::from_json(json).unwrap_err();
    assert!(matches!(err("{"), Error::Json { line: 1, .. }));
    assert_eq!(
        err(r#"{"type":"authorized_user","client_id":"x"}"#),
        Error::ServiceAccount("`type` is not `service_account`")
    );
    assert_eq!(
        err(r#"{"type":"service_account","client_email":"a","private_key_id":"k"}"#),
        Error::ServiceAccount("no `private_key`")
    );
    let mut file: Value = serde_json::from_str(&key_file(PKCS8)).unwrap();
    file["private_key"] = json!("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n");
    assert_eq!(
        err(&file.to_string()),
        Error::PrivateKey("PEM body is not base64")
    );
    file["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    assert!(matches!(err(&file.to_string()), Error::KeyRejected(_)));
    file["private_key"] =
        json!("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
    assert_eq!(
        err(&file.to_string()),
        Error::PrivateKey("no PEM `PRIVATE KEY` block")
    );

    // token_uri defaults.
    file = serde_json::from_str(&key_file(PKCS8)).unwrap();
    file.as_object_mut().unwrap().remove("token_uri");
    let sa = ServiceAccount::from_json(&file.to_string()).unwrap();
    assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
}

#[test]
fn debug_and_errors_show_no_key() {
    let sa = ServiceAccount::from_json(&key_file(PKCS8)).unwrap();
    let s = format!("{sa:?}");
    assert!(s.contains("weir@weir-test.iam.gserviceaccount.com"));
    assert!(s.contains("<redacted>"));
    let body = PKCS8.lines().nth(1).unwrap();
    assert!(!s.contains(body), "{s}");

    // A key file whose private_key is of the wrong type: the error names a position only.
    let e = ServiceAccount::from_json(r#"{"private_key": 12345678}"#).unwrap_err();
    assert!(!e.to_string().contains("12345678"), "{e}");
}

#[test]
fn token_endpoint_round() {
    assert_eq!(
        token_request_body("eyJh.eyJp.c2ln-_"),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJh.eyJp.c2ln-_"
    );
    assert_eq!(
        token_request_body("a+b/c="),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a%2Bb%2Fc%3D"
    );
    assert_eq!(
        parse_token_response(
            br#"{"access_token":"ya29.c.b0Aaek","expires_in":3599,"token_type":"Bearer"}"#
        )
        .unwrap(),
        ("ya29.c.b0Aaek".to_owned(), 3599)
    );
    assert_eq!(
        parse_token_response(
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
        )
        .unwrap_err(),
        Error::TokenRefused {
            error: "invalid_grant".into(),
            description: "Invalid JWT Signature.".into()
        }
    );
    assert_eq!(
        parse_token_response(br#"{"token_type":"Bearer"}"#).unwrap_err(),
        Error::TokenResponse("no `access_token`")
    );
    assert!(parse_token_response(b"<html>").is_err());
}
