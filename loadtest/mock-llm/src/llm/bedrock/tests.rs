#![allow(clippy::unwrap_used)] // tests may unwrap

use super::*;
use crate::http;
use crate::llm::eventstream::decode;
use crate::llm::testing::{ctx, json as body, records};
use crate::llm::Family;

const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn signed(auth: &str, date: &str, body: &[u8]) -> Vec<u8> {
    let sha = hex(&Sha256::digest(body));
    format!(
        "POST /model/m/converse HTTP/1.1\r\nauthorization: {auth}\r\nx-amz-date: {date}\r\n\
         x-amz-content-sha256: {sha}\r\n\r\n"
    )
    .into_bytes()
}

fn auth(cred: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={SIG}")
}

fn check(raw: &[u8], body: &[u8]) -> Result<(), (u16, &'static str, String)> {
    let mut slots = http::header_slots();
    let head = http::parse_head(raw, &mut slots).unwrap().unwrap();
    check_auth(&head, body)
}

#[test]
fn sigv4_shape() {
    let good = auth("AKIDEXAMPLE/20240102/us-east-1/bedrock/aws4_request");
    assert_eq!(
        check(&signed(&good, "20240102T030405Z", b"{}"), b"{}"),
        Ok(())
    );
    let raw = signed(&good, "20240102T030405Z", b"{}");
    let mut slots = http::header_slots();
    let head = http::parse_head(&raw, &mut slots).unwrap().unwrap();
    assert_eq!(access_key(&head), Some("AKIDEXAMPLE"));

    let kind = |r: Result<(), (u16, &'static str, String)>| r.unwrap_err().1;
    // Body changed after signing.
    assert_eq!(
        kind(check(&signed(&good, "20240102T030405Z", b"{}"), b"{ }")),
        "AccessDeniedException"
    );
    // Another day, a bad date, another service, a short signature, no header at all.
    assert_eq!(
        kind(check(&signed(&good, "20240103T030405Z", b""), b"")),
        "UnrecognizedClientException"
    );
    assert!(check(&signed(&good, "2024-01-02T03:04:05Z", b""), b"").is_err());
    assert!(check(&signed(&good, "20240102T0304é5Z", b""), b"").is_err());
    let s3 = auth("AKID/20240102/us-east-1/s3/aws4_request");
    assert!(check(&signed(&s3, "20240102T030405Z", b""), b"").is_err());
    let short = good.replace(SIG, "abc");
    assert!(check(&signed(&short, "20240102T030405Z", b""), b"").is_err());
    let nohost = good.replace("host;", "");
    assert!(check(&signed(&nohost, "20240102T030405Z", b""), b"").is_err());
    let err = check(b"POST /model/m/converse HTTP/1.1\r\n\r\n", b"").unwrap_err();
    assert_eq!((err.0, err.1), (403, "UnrecognizedClientException"));
}

fn tools() -> Value {
    json!({"tools": [{"toolSpec": {"name": "calc", "inputSchema": {"json": {
        "type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}}}]})
}

#[test]
fn converse_json() {
    let req = json!({"system": [{"text": "sys"}], "messages": [{"role": "user", "content": [{"text": "add these"}]}],
                     "inferenceConfig": {"maxTokens": 100}});
    let chat = chat_request(&req);
    assert_eq!(chat.input_tokens, 5 + 6);
    let v = body(&converse(&req, &ctx(Family::Bedrock), false)).clone();
    assert_eq!(v["output"]["message"]["role"], "assistant");
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Hello from the mock of bedrock: you said: add these"
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 11, "outputTokens": 10, "totalTokens": 21})
    );

    let req = json!({"messages": [{"role": "user", "content": [{"text": "add"}]}], "toolConfig": tools()});
    let v = body(&converse(&req, &ctx(Family::Bedrock), false)).clone();
    assert_eq!(
        v["output"]["message"]["content"][0]["toolUse"],
        json!({"toolUseId": "tooluse_mock_0", "name": "calc", "input": {"x": 1}})
    );
    assert_eq!(v["stopReason"], "tool_use");

    let req = json!({"toolConfig": tools(), "messages": [
        {"role": "user", "content": [{"text": "add"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "calc", "input": {"x": 1}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"json": {"sum": 3}}]}}]}]});
    let v = body(&converse(&req, &ctx(Family::Bedrock), false)).clone();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        r#"tool result: {"sum":3}"#
    );
}

fn frames(reply: &Reply) -> Vec<(String, Value)> {
    records(reply)
        .iter()
        .map(|r| {
            let (m, n) = decode(r).unwrap();
            assert_eq!(n, r.len());
            let h = |name: &str| m.headers.iter().find(|(k, _)| k == name).unwrap().1.clone();
            assert_eq!(h(":message-type"), "event");
            assert_eq!(h(":content-type"), "application/json");
            let payload: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(payload["p"], PAD);
            (h(":event-type"), payload)
        })
        .collect()
}

#[test]
fn converse_stream_frames() {
    let req = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let reply = converse(&req, &ctx(Family::Bedrock), true);
    let Reply::Stream { ctype, .. } = &reply else {
        panic!()
    };
    assert_eq!(*ctype, "application/vnd.amazon.eventstream");
    let f = frames(&reply);
    let kinds: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    let mut want = vec!["messageStart"];
    want.extend(["contentBlockDelta"; 9]);
    want.extend(["contentBlockStop", "messageStop", "metadata"]);
    assert_eq!(kinds, want);
    let text: String = f[1..10]
        .iter()
        .map(|(_, v)| v["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello from the mock of bedrock: you said: hi");
    assert_eq!(f[11].1["stopReason"], "end_turn");
    assert_eq!(f[12].1["usage"]["outputTokens"], 9);
    assert_eq!(f[12].1["metrics"]["latencyMs"], 0);

    let req = json!({"messages": [{"role": "user", "content": [{"text": "add"}]}], "toolConfig": tools()});
    let mut c = ctx(Family::Bedrock);
    c.usage = false;
    let f = frames(&converse(&req, &c, true));
    assert_eq!(f[1].0, "contentBlockStart");
    assert_eq!(
        f[1].1["start"]["toolUse"],
        json!({"toolUseId": "tooluse_mock_0", "name": "calc"})
    );
    let input: String = f
        .iter()
        .filter(|(k, _)| k == "contentBlockDelta")
        .map(|(_, v)| v["delta"]["toolUse"]["input"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"x": 1})
    );
    let (last, meta) = f.last().unwrap();
    assert_eq!(last, "metadata");
    assert!(meta.get("usage").is_none());
    assert_eq!(f[f.len() - 2].1["stopReason"], "tool_use");
}

#[test]
fn invoke_and_errors() {
    let v = body(&invoke(
        &json!({"inputText": "one two three", "dimensions": 4}),
    ))
    .clone();
    assert_eq!(v["inputTextTokenCount"], 3);
    assert_eq!(v["embedding"].as_array().unwrap().len(), 4);
    assert!(matches!(
        invoke(&json!({"prompt": "x"})),
        Reply::Status { status: 400, .. }
    ));
    let (v, h) = error_body(429, "slow");
    assert_eq!(v, json!({"message": "slow"}));
    assert_eq!(h, [("x-amzn-errortype", "ThrottlingException".to_owned())]);
    let (m, _) = decode(&exception_frame(429, "slow")).unwrap();
    assert_eq!(
        m.headers[0],
        (":exception-type".into(), "throttlingException".into())
    );
    assert_eq!(m.headers[2], (":message-type".into(), "exception".into()));
    assert_eq!(
        serde_json::from_slice::<Value>(&m.payload).unwrap(),
        json!({"message": "slow"})
    );
    let kind = |s| {
        decode(&exception_frame(s, "x")).unwrap().0.headers[0]
            .1
            .clone()
    };
    assert_eq!(kind(500), "internalServerException");
    assert_eq!(kind(503), "serviceUnavailableException");
    assert_eq!(kind(400), "validationException");
    assert_eq!(kind(424), "modelStreamErrorException");
}
