#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::llm::testing::{ctx, json as body, pauses, records};
use crate::llm::Family;

fn gen_ctx(query: &'static str) -> Ctx<'static> {
    let mut c = ctx(Family::Gemini);
    c.query = query;
    c
}

fn tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "OBJECT",
            "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
        {"name": "get_time", "parametersJsonSchema": {"type": "object"}}]}])
}

#[test]
fn reads_requests() {
    let req = json!({
        "system_instruction": {"parts": [{"text": "be short"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Rome"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                             "response": {"temp": 21}}}]}],
        "tools": tools(), "generationConfig": {"maxOutputTokens": 5}});
    let chat = chat_request(&req);
    assert_eq!(chat.tool_result.as_deref(), Some(r#"{"temp":21}"#));
    assert_eq!(chat.last_user_text, "weather in Rome");
    assert_eq!(chat.tools.len(), 2);
    assert_eq!(chat.tools[0].name, "get_weather");
    assert_eq!(chat.max_tokens, Some(5));
    // 4+2, 4+3, 4+(get_weather Rome)2, 4+(get_weather)1
    assert_eq!(chat.input_tokens, 6 + 7 + 6 + 5);
}

#[test]
fn generate_json() {
    let req = json!({"contents": [{"parts": [{"text": "hello"}]}]});
    let v = body(&generate(&req, &gen_ctx(""), false)).clone();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(
        cand["content"]["parts"][0]["text"],
        "Hello from the mock of gemini: you said: hello"
    );
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 5, "candidatesTokenCount": 9,
                                          "totalTokenCount": 14})
    );
    assert_eq!(v["modelVersion"], "m-1");

    let req = json!({"contents": [{"role": "user", "parts": [{"text": "in parallel"}]}], "tools": tools()});
    let v = body(&generate(&req, &gen_ctx(""), false)).clone();
    let parts = &v["candidates"][0]["content"]["parts"];
    assert_eq!(
        parts[0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "sample"}}})
    );
    assert_eq!(
        parts[1],
        json!({"functionCall": {"name": "get_time", "args": {}}})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    let req = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": 1}});
    let mut c = gen_ctx("");
    c.usage = false;
    let v = body(&generate(&req, &c, false)).clone();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert!(v.get("usageMetadata").is_none());
}

#[test]
fn stream_sse() {
    let req = json!({"contents": [{"parts": [{"text": "hello"}]}]});
    let reply = generate(&req, &gen_ctx("alt=sse"), true);
    let Reply::Stream { ctype, .. } = &reply else {
        panic!()
    };
    assert_eq!(*ctype, "text/event-stream");
    let docs: Vec<Value> = records(&reply)
        .iter()
        .map(|r| {
            let t = std::str::from_utf8(r).unwrap();
            let d = t
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\r\n\r\n")
                .unwrap();
            serde_json::from_str(d).unwrap()
        })
        .collect();
    assert_eq!(docs.len(), 9);
    let text: String = docs
        .iter()
        .map(|d| {
            d["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the mock of gemini: you said: hello");
    for d in &docs[..8] {
        assert!(d["candidates"][0].get("finishReason").is_none());
        assert!(d.get("usageMetadata").is_none());
    }
    assert_eq!(docs[8]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(docs[8]["usageMetadata"]["candidatesTokenCount"], 9);
    assert_eq!(pauses(&reply).iter().filter(|&&p| p).count(), 8);
}

#[test]
fn stream_json_array() {
    let req = json!({"contents": [{"parts": [{"text": "hello"}]}], "tools": tools()});
    let reply = generate(&req, &gen_ctx(""), true);
    let whole: Vec<u8> = records(&reply).concat();
    let v: Value = serde_json::from_slice(&whole).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        v[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    let req = json!({"contents": [{"parts": [{"text": "hello"}]}]});
    let reply = generate(&req, &gen_ctx(""), true);
    let v: Value = serde_json::from_slice(&records(&reply).concat()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 9);
    // An error ending the array keeps it valid JSON.
    let mut cut: Vec<u8> = records(&reply)[..2].concat();
    cut.extend(stream_error("", 503, "busy", false));
    let v: Value = serde_json::from_slice(&cut).unwrap();
    assert_eq!(v[2]["error"]["status"], "UNAVAILABLE");
    let v: Value = serde_json::from_slice(&stream_error("", 500, "x", true)).unwrap();
    assert_eq!(v[0]["error"]["code"], 500);
    assert!(stream_error("alt=sse", 429, "x", true).starts_with(b"data: {"));
}

#[test]
fn count_embed_models_errors() {
    let req = json!({"contents": [{"parts": [{"text": "a b c"}]}]});
    assert_eq!(body(&count_tokens(&req))["totalTokens"], 7);
    let wrapped = json!({"generateContentRequest": req});
    assert_eq!(body(&count_tokens(&wrapped))["totalTokens"], 7);
    let v = body(&embed(
        &json!({"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 3}),
    ))
    .clone();
    let values: Vec<f32> = serde_json::from_value(v["embedding"]["values"].clone()).unwrap();
    assert_eq!(values, reply::embedding("hi", 3));
    let v = body(&batch_embed(&json!({"requests": [
        {"model": "models/e", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/e", "content": {"parts": [{"text": "b"}]}, "output_dimensionality": 2}]}))).clone();
    assert_eq!(v["embeddings"][0]["values"].as_array().unwrap().len(), 8);
    assert_eq!(v["embeddings"][1]["values"].as_array().unwrap().len(), 2);
    let v = body(&embed(&json!({"content": {"parts": [{"text": "hi"}]},
                                "embedContentConfig": {"outputDimensionality": 5}})))
    .clone();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 5);
    assert!(models()["models"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("models/"));
    assert_eq!(
        error_body(429, "q"),
        json!({"error": {"code": 429, "message": "q",
                                                       "status": "RESOURCE_EXHAUSTED"}})
    );
    assert_eq!(error_body(403, "q")["error"]["status"], "PERMISSION_DENIED");
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn jwt(alg: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        b64(
            r#"{"iss":"sa@p.iam.gserviceaccount.com","aud":"https://oauth2.googleapis.com/token"}"#
        ),
        b64("signature-bytes")
    )
}

#[test]
fn oauth_tokens() {
    let form = form_json(
        format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            jwt("RS256")
        )
        .as_bytes(),
    );
    assert_eq!(form["grant_type"], JWT_BEARER);
    let v = body(&token(&form)).clone();
    let t = v["access_token"].as_str().unwrap();
    assert!(t.starts_with("ya29.mock-"));
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["token_type"], "Bearer");
    assert!(issued(t));
    assert!(!issued("ya29.other"));

    let bad = |form: Value| match token(&form) {
        Reply::Status { status, body, .. } => (status, body["error"].as_str().unwrap().to_owned()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bad(json!({"grant_type": "client_credentials"})),
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(
        bad(json!({"grant_type": JWT_BEARER, "assertion": jwt("HS256")})),
        (400, "invalid_grant".into())
    );
    assert_eq!(check_jwt("a.b"), Err("expected three dot-separated parts"));
    assert_eq!(
        check_jwt(&format!("{}.!!.x", b64(r#"{"alg":"RS256"}"#))),
        Err("the payload is not base64url JSON")
    );
    assert_eq!(
        form_json(b"a=1+2&b=%41&c"),
        json!({"a": "1 2", "b": "A", "c": ""})
    );
}
