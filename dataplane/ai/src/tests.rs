//! Unit tests of the adapters (what each provider is sent) and the shapers (what the client
//! gets back).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use crate::call::{build, CallInput};
use crate::shape::{OpenAiPassStream, Shaper};
use crate::{ClientApi, ClientRequest, SharedProvider};

fn provider(yaml: &str) -> std::sync::Arc<SharedProvider> {
    let cfg: weir_config::Provider = serde_yaml_ng::from_str(yaml).expect("provider yaml");
    SharedProvider::new(&cfg).expect("provider")
}

fn client(api: ClientApi, body: &str) -> ClientRequest {
    ClientRequest::parse(api, Bytes::copy_from_slice(body.as_bytes())).expect("client request")
}

/// 2015-08-30T12:36:00Z, the AWS test-suite date.
fn aws_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn call(p: &SharedProvider, c: &ClientRequest, model: &str) -> crate::UpstreamCall {
    let input = CallInput {
        client: c,
        provider: p,
        model,
        key: p.keys.keys().first(),
        bearer: Some("ya29.token"),
        now: aws_time(),
    };
    match build(&input) {
        Ok(call) => call,
        Err(e) => panic!("build: {e}"),
    }
}

fn header<'a>(call: &'a crate::UpstreamCall, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn body_json(call: &crate::UpstreamCall) -> Value {
    serde_json::from_slice(&call.body).expect("json body")
}

const CHAT: &str =
    r#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"seed":7,"n":1}"#;
const CHAT_STREAM: &str =
    r#"{"model":"alias","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn openai_compatible_passes_the_body_with_the_model_renamed() {
    let p = provider(
        "{name: o, type: openai_compatible, base_url: 'http://h:1/api/v1', keys: [{value: sk-1}]}",
    );
    let c = call(&p, &client(ClientApi::Chat, CHAT), "gpt-4o");
    assert_eq!(c.path, "/api/v1/chat/completions");
    assert_eq!(header(&c, "authorization"), Some("Bearer sk-1"));
    let b = body_json(&c);
    assert_eq!(
        (b["model"].as_str(), b["seed"].as_u64()),
        (Some("gpt-4o"), Some(7))
    );
    assert!(b.get("stream_options").is_none());
    // Streams always ask for usage upstream.
    let c = call(&p, &client(ClientApi::Chat, CHAT_STREAM), "gpt-4o");
    assert_eq!(body_json(&c)["stream_options"]["include_usage"], true);
}

#[test]
fn azure_uses_deployments_and_api_key() {
    let p = provider(
        "{name: a, type: azure, base_url: 'http://h:1', keys: [{value: az-1}], \
         azure: {api_version: '2024-10-21', deployments: {gpt-4o: prod-4o}}}",
    );
    let c = call(&p, &client(ClientApi::Chat, CHAT), "gpt-4o");
    assert_eq!(
        c.path,
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(header(&c, "api-key"), Some("az-1"));
    assert_eq!(header(&c, "authorization"), None);
    let c = call(
        &p,
        &client(ClientApi::Responses, r#"{"model":"m","input":"hi"}"#),
        "gpt-4o",
    );
    assert_eq!(c.path, "/openai/responses?api-version=2024-10-21");
    assert_eq!(body_json(&c)["model"], "prod-4o");
}

#[test]
fn anthropic_gets_messages_from_openai_clients() {
    let p = provider("{name: a, type: anthropic, base_url: 'http://h:1', keys: [{value: ak-1}]}");
    let c = call(&p, &client(ClientApi::Chat, CHAT_STREAM), "claude-x");
    assert_eq!(c.path, "/v1/messages");
    assert_eq!(header(&c, "x-api-key"), Some("ak-1"));
    assert_eq!(header(&c, "anthropic-version"), Some("2023-06-01"));
    let b = body_json(&c);
    assert_eq!(
        (b["model"].as_str(), b["stream"].as_bool()),
        (Some("claude-x"), Some(true))
    );
    assert!(
        b["max_tokens"].as_u64().is_some(),
        "Anthropic requires max_tokens"
    );
    // An OpenAI field Anthropic cannot express is refused, naming it.
    let c = client(
        ClientApi::Chat,
        r#"{"model":"m","messages":[],"logit_bias":{"1":2}}"#,
    );
    let input = CallInput {
        client: &c,
        provider: &p,
        model: "claude-x",
        key: p.keys.keys().first(),
        bearer: None,
        now: aws_time(),
    };
    let err = build(&input).err().expect("untranslatable");
    assert!(err.to_string().contains("logit_bias"), "{err}");
    assert_eq!(err.to_proxy().status, 400);
    // Anthropic clients to Anthropic: the body passes with the model renamed.
    let c = call(
        &p,
        &client(
            ClientApi::Messages,
            r#"{"model":"a","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[]}"#,
        ),
        "claude-x",
    );
    assert_eq!(body_json(&c)["thinking"]["budget_tokens"], 1024);
    assert_eq!(body_json(&c)["model"], "claude-x");
}

#[test]
fn gemini_and_vertex_paths_and_auth() {
    let p = provider("{name: g, type: gemini, base_url: 'http://h:1', keys: [{value: gk}]}");
    let c = call(
        &p,
        &client(ClientApi::Chat, CHAT_STREAM),
        "gemini-2.0-flash",
    );
    assert_eq!(
        c.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(header(&c, "x-goog-api-key"), Some("gk"));
    assert_eq!(body_json(&c)["contents"][0]["parts"][0]["text"], "hi");
    let c = call(
        &p,
        &client(ClientApi::Embeddings, r#"{"model":"e","input":["a","b"]}"#),
        "text-embedding-004",
    );
    assert_eq!(
        c.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(body_json(&c)["requests"].as_array().map(Vec::len), Some(2));
}

#[test]
fn bedrock_is_signed() {
    let p = provider(
        "{name: b, type: bedrock, base_url: 'http://h:1', bedrock: {region: us-east-1}, \
         keys: [{access_key_id: AKIDEXAMPLE, value: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'}]}",
    );
    let c = call(
        &p,
        &client(ClientApi::Chat, CHAT_STREAM),
        "anthropic.claude-3-haiku-20240307-v1:0",
    );
    assert_eq!(
        c.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert!(c.binary_stream);
    let auth = header(&c, "authorization").expect("signed");
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request"
        ),
        "{auth}"
    );
    assert_eq!(header(&c, "x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(body_json(&c)["messages"][0]["content"][0]["text"], "hi");
}

#[test]
fn cohere_gets_v2_chat() {
    let p = provider("{name: c, type: cohere, base_url: 'http://h:1', keys: [{value: ck}]}");
    let c = call(&p, &client(ClientApi::Chat, CHAT), "command-r");
    assert_eq!(c.path, "/v2/chat");
    assert_eq!(body_json(&c)["model"], "command-r");
    assert_eq!(header(&c, "authorization"), Some("Bearer ck"));
}

#[test]
fn unsupported_apis_are_named() {
    let p = provider("{name: a, type: anthropic, base_url: 'http://h:1', keys: [{value: k}]}");
    let c = client(ClientApi::Embeddings, r#"{"model":"e","input":"x"}"#);
    let input = CallInput {
        client: &c,
        provider: &p,
        model: "e",
        key: None,
        bearer: None,
        now: aws_time(),
    };
    let err = build(&input).err().expect("unsupported");
    assert_eq!(
        err.to_string(),
        "provider `a` (anthropic) has no embeddings API"
    );
}

#[test]
fn pass_stream_hides_the_usage_chunk_it_asked_for() {
    let upstream = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
        "data: [DONE]\n\n"
    );
    for wants in [false, true] {
        let mut s = OpenAiPassStream::new(wants);
        let mut out = Vec::new();
        // Split anywhere: the scanner keeps partial events.
        for piece in upstream.as_bytes().chunks(7) {
            s.feed(piece, &mut out).expect("feed");
        }
        assert!(s.finish(&mut out).expect("finish"));
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.contains("\"usage\""), wants, "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let u = s.usage().expect("usage read either way");
        assert_eq!((u.input, u.output), (3, 1));
    }
}

#[test]
fn bedrock_frames_become_openai_chunks() {
    use weir_sse::eventstream::{encode, Header, HeaderValue};
    let p = provider(
        "{name: b, type: bedrock, base_url: 'http://h:1', bedrock: {region: us-east-1}, \
         keys: [{access_key_id: AKID, value: s}]}",
    );
    let c = call(
        &p,
        &client(ClientApi::Chat, CHAT_STREAM),
        "amazon.nova-lite-v1:0",
    );
    let mut shaper = c.shaper;
    let events = [
        ("messageStart", r#"{"role":"assistant"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#,
        ),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"lo"}}"#,
        ),
        ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        ("messageStop", r#"{"stopReason":"end_turn"}"#),
        (
            "metadata",
            r#"{"usage":{"inputTokens":5,"outputTokens":2,"totalTokens":7},"metrics":{"latencyMs":1}}"#,
        ),
    ];
    let mut wire = Vec::new();
    for (name, payload) in events {
        let headers = [
            Header::new(":event-type", HeaderValue::String(name)),
            Header::new(":content-type", HeaderValue::String("application/json")),
            Header::new(":message-type", HeaderValue::String("event")),
        ];
        encode(&headers, payload.as_bytes(), &mut wire).expect("frame");
    }
    let mut out = Vec::new();
    for piece in wire.chunks(13) {
        shaper.feed(piece, &mut out).expect("feed");
    }
    assert!(shaper.finish(&mut out).expect("finish"));
    let text = String::from_utf8(out).expect("utf8");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Hello");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let u = shaper.usage().expect("usage");
    assert_eq!((u.input, u.output), (5, 2));
}
