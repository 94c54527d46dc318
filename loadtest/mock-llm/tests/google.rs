//! Gemini, Vertex AI and the OAuth token endpoint against the real binary.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use base64::Engine as _;
use common::{concat, Mock};
use serde_json::{json, Value};

const KEY: (&str, &str) = ("x-goog-api-key", "AIza-test");
const FLASH: &str = "/v1beta/models/gemini-2.0-flash";

fn contents(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

#[test]
fn gemini_generate_and_stream() {
    let mock = Mock::epoll(&[]);
    let v = mock
        .post_json(
            &format!("{FLASH}:generateContent"),
            &[KEY],
            &contents("Explain AI"),
        )
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from the mock of gemini: you said: Explain AI"
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 6, "candidatesTokenCount": 10, "totalTokenCount": 16})
    );
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");

    // The key may come as a query parameter instead.
    let r = mock.post_json(
        &format!("{FLASH}:streamGenerateContent?alt=sse&key=AIza-q"),
        &[],
        &contents("Explain AI"),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.text().contains("\r\n\r\n"));
    let events = r.sse();
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|(e, _)| e.is_none()));
    let text = concat(
        events
            .iter()
            .map(|(_, v)| v["candidates"][0]["content"]["parts"][0]["text"].clone()),
    );
    assert_eq!(text, "Hello from the mock of gemini: you said: Explain AI");
    let last = &events[9].1;
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 10);
    assert!(events[..9]
        .iter()
        .all(|(_, v)| v.get("usageMetadata").is_none()));

    // Without alt=sse: a JSON array, streamed.
    let r = mock.post_json(
        &format!("{FLASH}:streamGenerateContent"),
        &[KEY],
        &contents("x"),
    );
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.json().as_array().unwrap().len(), 9);

    let log = mock.requests();
    assert_eq!(log[1]["key"], "AIza-q");
    assert_eq!(log[1]["stream"], true);
    assert_eq!(log[1]["model"], "gemini-2.0-flash");
}

#[test]
fn gemini_tools_tokens_embeddings_errors() {
    let mock = Mock::epoll(&[]);
    let mut body = contents("weather and time in parallel");
    body["tools"] = json!([{"functionDeclarations": [
        {"name": "weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
        {"name": "time", "parameters": {"type": "OBJECT", "properties": {"utc": {"type": "BOOLEAN"}}, "required": ["utc"]}}]}]);
    let events = mock
        .post_json(
            &format!("{FLASH}:streamGenerateContent?alt=sse"),
            &[KEY],
            &body,
        )
        .sse();
    assert_eq!(events.len(), 1);
    let parts = &events[0].1["candidates"][0]["content"]["parts"];
    assert_eq!(
        parts[0]["functionCall"],
        json!({"name": "weather", "args": {"city": "sample"}})
    );
    assert_eq!(
        parts[1]["functionCall"],
        json!({"name": "time", "args": {"utc": true}})
    );

    let r = mock.post_json(
        &format!("{FLASH}:countTokens"),
        &[KEY],
        &contents("one two three"),
    );
    assert_eq!(r.json()["totalTokens"], 7);
    let r = mock.post_json(
        "/v1beta/models/text-embedding-004:embedContent",
        &[KEY],
        &json!({"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 32}),
    );
    assert_eq!(
        r.json()["embedding"]["values"].as_array().unwrap().len(),
        32
    );
    let r = mock.post_json(
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        &[KEY],
        &json!({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]}),
    );
    assert_eq!(r.json()["embeddings"].as_array().unwrap().len(), 2);
    assert!(mock.request("GET", "/v1beta/models", &[KEY], b"").json()["models"].is_array());

    let r = mock.post_json(&format!("{FLASH}:generateContent"), &[], &contents("x"));
    assert_eq!(r.status, 403);
    let e = &r.json()["error"];
    assert_eq!(
        (e["code"].clone(), e["status"].clone()),
        (json!(403), json!("PERMISSION_DENIED"))
    );
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn assertion(alg: &str) -> String {
    let claims = r#"{"iss":"sa@proj.iam.gserviceaccount.com","scope":"https://www.googleapis.com/auth/cloud-platform","aud":"https://oauth2.googleapis.com/token","exp":1700003600,"iat":1700000000}"#;
    format!(
        "{}.{}.{}",
        b64(&format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#)),
        b64(claims),
        b64("not-really-signed")
    )
}

fn token_form(jwt: &str) -> String {
    format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}")
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[test]
fn vertex_with_oauth_tokens() {
    let mock = Mock::epoll(&[]);
    let path = "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";
    let r = mock.post_json(path, &[], &contents("hi"));
    assert_eq!(
        (r.status, r.json()["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    let r = mock.post_json(
        path,
        &[("authorization", "Bearer ya29.made-up")],
        &contents("hi"),
    );
    assert_eq!(r.status, 401);

    let r = mock.post("/token", &[FORM], &token_form(&assertion("RS256")));
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    let token = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token, "ya29.mock-1");
    let bearer = format!("Bearer {token}");

    let v = mock
        .post_json(path, &[("authorization", &bearer)], &contents("hi"))
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from the mock of vertex: you said: hi"
    );
    let stream = path.replace(":generateContent", ":streamGenerateContent?alt=sse");
    let events = mock
        .post_json(&stream, &[("authorization", &bearer)], &contents("hi"))
        .sse();
    assert_eq!(
        events.last().unwrap().1["usageMetadata"]["candidatesTokenCount"],
        9
    );

    let r = mock.post("/token", &[FORM], &token_form(&assertion("HS256")));
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    let r = mock.post("/token", &[FORM], "grant_type=client_credentials");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    let r = mock.post("/token", &[FORM], &token_form("only.two"));
    assert_eq!(r.status, 400);
    assert_eq!(
        mock.post("/token", &[FORM], &token_form(&assertion("RS256")))
            .json()["access_token"],
        "ya29.mock-2"
    );

    // The log shows every token request, the issued ones with status 200.
    let log = mock.requests();
    let tokens: Vec<&Value> = log.iter().filter(|e| e["path"] == "/token").collect();
    assert_eq!(tokens.len(), 5);
    assert_eq!(tokens.iter().filter(|e| e["status"] == 200).count(), 2);
    assert_eq!(
        tokens[0]["body"]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let vertex: Vec<&Value> = log
        .iter()
        .filter(|e| e["path"].as_str().unwrap().contains("publishers"))
        .collect();
    assert_eq!(vertex[2]["key"], "ya29.mock-1");
    assert_eq!(vertex[2]["provider"], "vertex");
}
