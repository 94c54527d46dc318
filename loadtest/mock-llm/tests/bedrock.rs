//! AWS Bedrock Runtime against the real binary: SigV4-shaped auth, Converse, ConverseStream's
//! binary event stream (CRCs checked by the tests' own decoder) and Titan embeddings.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::{Frame, Mock, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SIGNATURE: &str = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";

fn sha256_hex(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request with SigV4-shaped headers for `body` (the signature itself is not checked).
fn signed(mock: &Mock, path: &str, body: &Value) -> Response {
    let body = body.to_string();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDMOCK/20250101/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature={SIGNATURE}"
    );
    let sha = sha256_hex(body.as_bytes());
    mock.post(
        path,
        &[
            ("authorization", &auth),
            ("x-amz-date", "20250101T120000Z"),
            ("x-amz-content-sha256", &sha),
            ("content-type", "application/json"),
        ],
        &body,
    )
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 512}})
}

#[test]
fn converse_json() {
    let mock = Mock::epoll(&[]);
    let r = signed(
        &mock,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse",
        &user("Hi Bedrock"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Hello from the mock of bedrock: you said: Hi Bedrock"
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 6, "outputTokens": 10, "totalTokens": 16})
    );
    let log = mock.requests();
    assert_eq!(log[0]["provider"], "bedrock");
    assert_eq!(log[0]["key"], "AKIDMOCK");
    assert_eq!(log[0]["model"], "anthropic.claude-3-5-sonnet-20240620-v1:0");
}

fn kinds(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.header(":event-type").unwrap().to_owned())
        .collect()
}

#[test]
fn converse_stream_event_frames() {
    let mock = Mock::epoll(&[]);
    let r = signed(
        &mock,
        "/model/amazon.nova-pro-v1%3A0/converse-stream",
        &user("Hi"),
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let frames = r.frames();
    for f in &frames {
        assert_eq!(f.header(":message-type"), Some("event"));
        assert_eq!(f.header(":content-type"), Some("application/json"));
    }
    let k = kinds(&frames);
    assert_eq!(k[0], "messageStart");
    assert_eq!(
        k[k.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let text: String = frames[1..k.len() - 3]
        .iter()
        .map(|f| f.json()["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello from the mock of bedrock: you said: Hi");
    let meta = frames.last().unwrap().json();
    assert_eq!(meta["usage"]["outputTokens"], 9);
    assert!(meta["metrics"]["latencyMs"].is_u64());
    assert_eq!(mock.requests()[0]["model"], "amazon.nova-pro-v1:0");

    let mut body = user("add");
    body["toolConfig"] = json!({"tools": [{"toolSpec": {"name": "adder", "inputSchema": {"json": {
        "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}}]});
    let frames = signed(&mock, "/model/m/converse-stream", &body).frames();
    let k = kinds(&frames);
    assert_eq!(k[1], "contentBlockStart");
    assert_eq!(frames[1].json()["start"]["toolUse"]["name"], "adder");
    let input: String = frames
        .iter()
        .filter(|f| f.header(":event-type") == Some("contentBlockDelta"))
        .map(|f| {
            f.json()["delta"]["toolUse"]["input"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"a": 1, "b": 1})
    );
    let stop = frames
        .iter()
        .find(|f| f.header(":event-type") == Some("messageStop"))
        .unwrap();
    assert_eq!(stop.json()["stopReason"], "tool_use");
}

#[test]
fn titan_embeddings_and_auth_errors() {
    let mock = Mock::epoll(&[]);
    let r = signed(
        &mock,
        "/model/amazon.titan-embed-text-v2:0/invoke",
        &json!({"inputText": "one two", "dimensions": 256}),
    );
    let v = r.json();
    assert_eq!(v["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(v["inputTextTokenCount"], 2);

    let r = mock.post_json("/model/m/converse", &[], &user("x"));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("UnrecognizedClientException")
    );
    assert!(r.json()["message"].is_string());
    // A body that is not the one the hash was computed over.
    let auth = format!("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIGNATURE}");
    let r = mock.post(
        "/model/m/converse",
        &[
            ("authorization", &auth),
            ("x-amz-date", "20250101T120000Z"),
            ("x-amz-content-sha256", &sha256_hex(b"{}")),
        ],
        "{\"messages\":[]}",
    );
    assert_eq!(
        (r.status, r.header("x-amzn-errortype")),
        (403, Some("AccessDeniedException"))
    );
}

#[test]
fn stream_exception_frame() {
    let mock = Mock::epoll(&[]);
    mock.script(&json!([{"match": {"path_contains": "converse-stream"}, "error_after_events": 2, "status": 429}]));
    let frames = signed(&mock, "/model/m/converse-stream", &user("hello")).frames();
    assert_eq!(frames.len(), 3);
    let last = &frames[2];
    assert_eq!(last.header(":message-type"), Some("exception"));
    assert_eq!(last.header(":exception-type"), Some("throttlingException"));
    assert!(last.json()["message"].is_string());
    // Before a stream, a scripted status is a JSON error with x-amzn-ErrorType.
    mock.script(&json!({"match": {"key": "AKIDMOCK"}, "status": 503, "times": 1}));
    let r = signed(&mock, "/model/m/converse", &user("hello"));
    assert_eq!(
        (r.status, r.header("x-amzn-errortype")),
        (503, Some("ServiceUnavailableException"))
    );
}
