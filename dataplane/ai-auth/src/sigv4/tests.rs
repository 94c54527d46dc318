//! Against AWS's published SigV4 test suite (credentials `AKIDEXAMPLE`, region `us-east-1`,
//! service `service`, 2015-08-30T12:36:00Z) and a Bedrock request signed by botocore 1.43.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_DATE: &str = "20150830T123600Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn creds() -> Credentials {
    Credentials::new("AKIDEXAMPLE", SECRET)
}

/// One suite vector: the request's headers as the suite lists them, and the expected
/// `Authorization`.
fn vector(
    method: &str,
    query: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> (CanonicalRequest, String, String) {
    let mut headers = extra_headers.to_vec();
    headers.push(("Host", "example.amazonaws.com"));
    headers.push(("X-Amz-Date", SUITE_DATE));
    let payload = sha256_hex(body);
    let req = Request {
        method,
        path: "/",
        query,
        headers: &headers,
        payload_sha256: &payload,
    };
    let canonical = canonical_request(&req, "service");
    let sts = string_to_sign(
        SUITE_DATE,
        "20150830/us-east-1/service/aws4_request",
        &canonical.text,
    );
    let auth = authorization(&req, &creds(), "us-east-1", "service", SUITE_DATE);
    (canonical, sts, auth)
}

fn suite_auth(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[test]
fn get_vanilla() {
    let (canonical, sts, auth) = vector("GET", "", &[], b"");
    assert_eq!(
        canonical.text,
        format!(
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\n{EMPTY_SHA256}"
        )
    );
    assert_eq!(
        sts,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(
        auth,
        suite_auth(
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    );
}

#[test]
fn post_vanilla() {
    let (_, _, auth) = vector("POST", "", &[], b"");
    assert_eq!(
        auth,
        suite_auth(
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        )
    );
}

#[test]
fn get_vanilla_query_order_key_case() {
    let (canonical, _, auth) = vector("GET", "Param2=value2&Param1=value1", &[], b"");
    assert_eq!(
        canonical.text.lines().nth(2),
        Some("Param1=value1&Param2=value2")
    );
    assert_eq!(
        auth,
        suite_auth(
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        )
    );
}

#[test]
fn post_x_www_form_urlencoded() {
    let (canonical, _, auth) = vector(
        "POST",
        "",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
    );
    assert!(canonical
        .text
        .ends_with("\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"));
    assert_eq!(
        auth,
        suite_auth(
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        )
    );
}

#[test]
fn bedrock_converse_as_botocore_signs_it() {
    // botocore 1.43.11, SigV4Auth(creds, "bedrock", "us-east-1") at 2025-01-15T10:30:00Z, with
    // the same x-amz-content-sha256 header set before signing.
    let body = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#;
    let creds = creds().with_session_token("FwoGZXIvYXdzEXAMPLESESSIONTOKEN==");
    let headers = sign(
        "POST",
        "bedrock-runtime.us-east-1.amazonaws.com",
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        "",
        &[("Content-Type", "application/json")],
        body,
        &creds,
        "us-east-1",
        "bedrock",
        UNIX_EPOCH + Duration::from_secs(1_736_937_000),
    );
    let sha = "7421da8d1a0949a481724fee62d5886aacde03836bf58248adb73e8b61ac0d54";
    assert_eq!(
        headers,
        vec![
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250115/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-security-token, \
                 Signature=8940ab02bd8b7532760be770b412eb317e08234b1f8cf58e2abb96c0367cd1ad"
                    .to_owned()
            ),
            ("x-amz-date", "20250115T103000Z".to_owned()),
            ("x-amz-content-sha256", sha.to_owned()),
            (
                "x-amz-security-token",
                "FwoGZXIvYXdzEXAMPLESESSIONTOKEN==".to_owned()
            ),
        ]
    );

    // The model id's `:`, sent as %3A, is %253A in the canonical request.
    let hdrs = [
        ("content-type", "application/json"),
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
    ];
    let req = Request {
        method: "POST",
        path: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        query: "",
        headers: &hdrs,
        payload_sha256: sha,
    };
    assert_eq!(
        canonical_request(&req, "bedrock").text.lines().nth(1),
        Some("/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse")
    );
    assert_eq!(
        canonical_request(&req, "s3").text.lines().nth(1),
        Some("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
    );
}

#[test]
fn headers_the_signer_owns_are_not_taken_from_the_caller() {
    let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let plain = sign(
        "GET",
        "example.amazonaws.com",
        "/",
        "",
        &[],
        b"",
        &creds(),
        "us-east-1",
        "service",
        at,
    );
    let noisy = sign(
        "GET",
        "example.amazonaws.com",
        "/",
        "",
        &[
            ("Host", "evil.example"),
            ("X-Amz-Date", "19990101T000000Z"),
            ("Authorization", "x"),
        ],
        b"",
        &creds(),
        "us-east-1",
        "service",
        at,
    );
    assert_eq!(plain, noisy);
    assert_eq!(plain.len(), 3, "no session token, no x-amz-security-token");
}

#[test]
fn canonical_forms() {
    assert_eq!(
        canonical_query("b=2&a=x%20y&a=1&flag&c=%7e+"),
        "a=1&a=x%20y&b=2&c=~%2B&flag="
    );
    assert_eq!(canonical_query(""), "");
    assert_eq!(collapse_spaces("  a   b\t c  "), "a b c");
    let hdrs = [
        ("X-B", "1"),
        ("x-a", " two  words "),
        ("X-B", "2"),
        ("host", "h"),
    ];
    let req = Request {
        method: "GET",
        path: "",
        query: "",
        headers: &hdrs,
        payload_sha256: EMPTY_SHA256,
    };
    let c = canonical_request(&req, "service");
    assert_eq!(c.signed_headers, "host;x-a;x-b");
    assert!(c
        .text
        .starts_with("GET\n/\n\nhost:h\nx-a:two words\nx-b:1,2\n\nhost;x-a;x-b\n"));
}

#[test]
fn dates() {
    assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(1_440_938_160)),
        "20150830T123600Z"
    );
    assert_eq!(
        amz_date(UNIX_EPOCH + Duration::from_secs(951_868_799)),
        "20000229T235959Z"
    );
    assert_eq!(
        amz_date(UNIX_EPOCH - Duration::from_secs(5)),
        "19700101T000000Z"
    );
}

#[test]
fn debug_hides_secrets() {
    let c = creds().with_session_token("TOKEN-SECRET");
    let s = format!("{c:?}");
    assert!(s.contains("AKIDEXAMPLE"));
    assert!(!s.contains(SECRET) && !s.contains("TOKEN-SECRET"), "{s}");
}
