//! `ai` routes: the bundled quickstart (in-process mock provider), errors in the client's
//! protocol, config errors, and the access log's AI fields. Provider formats, fallback and key
//! pools against `weir-mock-llm` are tested with the official SDKs in `tests/sdk/`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use weir_tests::*;

/// The bundled quickstart with its addresses moved to free ports.
fn quickstart(d: Driver) -> Gateway {
    let yaml = include_str!("../../control/config/quickstart.yaml")
        .replace("127.0.0.1:8080", "\"127.0.0.1:0\"")
        .replace("127.0.0.1:9901", "\"127.0.0.1:0\"")
        .replace("token_interval: 20ms", "token_interval: 1ms");
    Gateway::new().driver(d).raw_yaml(&yaml).start()
}

fn post(gw: &Gateway, path: &str, body: &str) -> Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    gw.request(raw.as_bytes())
}

/// The `event:` names of an SSE body, in order.
fn event_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect()
}

both_drivers! {
    /// The quickstart answers the OpenAI and Anthropic APIs with no key and no other process.
    fn quickstart_answers_both_protocols(d) {
        let gw = quickstart(d);
        let models = gw.get("/v1/models").json();
        let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"mock-gpt") && ids.contains(&"mock-claude"), "{ids:?}");

        let r = post(&gw, "/v1/chat/completions", r#"{"model":"mock-gpt","messages":[{"role":"user","content":"ping"}]}"#);
        assert_eq!(r.status(), 200);
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.ends_with("You said: ping"), "{text}");
        let usage = &v["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );

        // Streaming, without asking for usage: token chunks, no usage chunk, [DONE].
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"ping"}]}"#);
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let body = r.text();
        let datas: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(datas.last(), Some(&"[DONE]"));
        assert!(datas.len() > 10, "one chunk per token");
        assert!(!body.contains("\"usage\":{"), "usage chunk hidden: {body}");
        let joined: String = datas[..datas.len() - 1]
            .iter()
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect();
        assert!(joined.ends_with("You said: ping"), "{joined}");

        // Asking for it: the last chunk before [DONE] has usage and no choices.
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"mock-gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"ping"}]}"#);
        let body = r.text();
        let datas: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        let last: serde_json::Value = serde_json::from_str(datas[datas.len() - 2]).unwrap();
        assert_eq!(last["choices"].as_array().map(Vec::len), Some(0));
        assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);

        // Anthropic, streaming: the exact event sequence.
        let r = post(&gw, "/v1/messages", r#"{"model":"mock-claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"ping"}]}"#);
        assert_eq!(r.status(), 200);
        let body = r.text();
        let names = event_names(&body);
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(names[1], "content_block_start");
        assert!(names[2..names.len() - 3].iter().all(|n| n == "content_block_delta"), "{names:?}");
        assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
        let delta = body.lines().find(|l| l.contains("\"message_delta\"") && l.starts_with("data:")).unwrap();
        let delta: serde_json::Value = serde_json::from_str(delta.trim_start_matches("data: ")).unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);

        // Anthropic, not streaming, and count_tokens.
        let r = post(&gw, "/v1/messages", r#"{"model":"mock-claude","max_tokens":64,"messages":[{"role":"user","content":"ping"}]}"#);
        let v = r.json();
        assert_eq!((v["type"].as_str(), v["role"].as_str()), (Some("message"), Some("assistant")));
        assert_eq!(v["content"][0]["type"], "text");
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let r = post(&gw, "/v1/messages/count_tokens", r#"{"model":"mock-claude","messages":[{"role":"user","content":"ping"}]}"#);
        assert_eq!(r.status(), 200);
        assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);

        // Embeddings from the mock: deterministic vectors.
        let r = post(&gw, "/v1/embeddings", r#"{"model":"mock-embed","input":["a","b"],"dimensions":6}"#);
        let v = r.json();
        assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(6));
    }
}

both_drivers! {
    /// Errors come in the protocol of the endpoint called, with the right status.
    fn errors_in_the_clients_protocol(d) {
        let gw = Gateway::new()
            .driver(d)
            .top_yaml("providers: [{ name: m, type: mock }]")
            .route("{ name: llm, ai: { models: [{ model: \"gpt-*\", targets: [{ provider: m }] }] } }")
            .start();
        // Unknown model: OpenAI shape on OpenAI endpoints...
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"llama","messages":[]}"#);
        assert_eq!(r.status(), 404);
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains("llama"));
        // ...Anthropic shape on Anthropic endpoints.
        let r = post(&gw, "/v1/messages", r#"{"model":"claude","max_tokens":5,"messages":[]}"#);
        assert_eq!(r.status(), 404);
        let v = r.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        // Broken JSON, a missing model, a wrong method, an unknown endpoint.
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"gpt-4o","messages":["#);
        assert_eq!(r.status(), 400);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let r = post(&gw, "/v1/messages", r#"{"messages":[]}"#);
        assert_eq!(r.status(), 400);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("`model` is required"));
        assert_eq!(gw.get("/v1/chat/completions").status(), 405);
        assert_eq!(gw.get("/v1/files").status(), 404);
        // An API the provider type has no counterpart for names both.
        let r = post(&gw, "/v1/responses", r#"{"model":"gpt-4o","input":"hi"}"#);
        assert_eq!(r.status(), 400);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("responses") && msg.contains("mock"), "{msg}");
        // The connection survives all of it.
        let mut c = gw.connect();
        for _ in 0..3 {
            let r = c.request(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n{");
            assert_eq!(r.status(), 400);
        }
    }
}

both_drivers! {
    /// The access log says what was asked, who answered and the tokens; never a secret.
    fn access_log_has_ai_fields(d) {
        let gw = Gateway::new()
            .driver(d)
            .access_log(true)
            .top_yaml("providers: [{ name: m, type: mock, mock: { token_interval: 0s } }]")
            .route("{ name: llm, ai: { aliases: { fast: gpt-mini }, models: [{ model: \"gpt-*\", targets: [{ provider: m }] }] } }")
            .start();
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"hello"}]}"#);
        assert_eq!(r.status(), 200);
        let lines = gw.wait_access_log(1, std::time::Duration::from_secs(5), |l| l["ai"].is_object());
        let ai = &lines[0]["ai"];
        assert_eq!(ai["api"], "chat");
        assert_eq!(ai["requested_model"], "fast");
        assert_eq!(ai["model"], "gpt-mini");
        assert_eq!(ai["provider"], "m");
        assert_eq!(ai["stream"], true);
        assert!(ai["input_tokens"].as_u64().unwrap() > 0);
        assert!(ai["output_tokens"].as_u64().unwrap() > 0);
        assert_eq!(ai["estimated"], false);
        assert!(ai["ttft_ms"].as_f64().is_some());
    }
}

/// Provider config errors stop the start with a message naming the place, never the secret.
#[test]
fn provider_config_errors() {
    let cases = [
        (
            "providers: [{ name: o, type: openai, base_url: \"https://127.0.0.1:1/v1\", keys: [{ value: sk-xyz-secret-123 }], tls: { ca_file: /nonexistent/weir-ca.pem } }]",
            "providers[0].tls.ca_file",
        ),
        (
            "providers: [{ name: o, type: openai, base_url: \"http://127.0.0.1:1/v1\", keys: [{ value: sk-xyz-secret-123 }], tls: {} }]",
            "https base_url",
        ),
        ("providers: [{ name: o, type: openai, base_url: \"http://127.0.0.1:1/v1\" }]", "at least one key"),
        ("providers: [{ name: a, type: azure, base_url: \"http://127.0.0.1:1\", keys: [{ value: k }] }]", "azure"),
        (
            "providers: [{ name: o, type: openai, base_url: \"http://127.0.0.1:1\", keys: [{ env: WEIR_TEST_NO_SUCH_VAR }] }]",
            "WEIR_TEST_NO_SUCH_VAR",
        ),
    ];
    for (top, want) in cases {
        let err = Gateway::new()
            .top_yaml(top)
            .route("{ name: llm, ai: { models: [{ model: \"*\", targets: [{ provider: o }] }] } }")
            .try_start()
            .expect_err(top);
        let text = err.stderr;
        assert!(text.contains(want), "{want}: {text}");
        assert!(!text.contains("sk-xyz-secret-123"), "secret leaked: {text}");
    }
    let err = Gateway::new()
        .top_yaml("providers: [{ name: m, type: mock }]")
        .route("{ name: llm, ai: { models: [{ model: \"*\", targets: [{ provider: nope }] }] } }")
        .try_start()
        .expect_err("unknown provider");
    assert!(
        err.to_string().contains("no provider named `nope`"),
        "{err}"
    );
}

both_drivers! {
    /// The route's filters run on AI answers too: response headers on JSON and streamed answers
    /// and on errors in the client's protocol.
    fn filters_see_ai_answers(d) {
        let gw = Gateway::new()
            .driver(d)
            .top_yaml("providers: [{ name: m, type: mock, mock: { token_interval: 0s } }]")
            .route(
                "{ name: llm, filters: [{ type: headers, response: { set: { x-served-by: weir } } }], \
                 ai: { models: [{ model: \"gpt-*\", targets: [{ provider: m }] }] } }",
            )
            .start();
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"gpt-x","messages":[{"role":"user","content":"a"}]}"#);
        assert_eq!((r.status(), r.header("x-served-by")), (200, Some("weir")));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"a"}]}"#);
        assert_eq!((r.status(), r.header("x-served-by")), (200, Some("weir")));
        assert!(r.text().ends_with("data: [DONE]\n\n"));
        let r = post(&gw, "/v1/chat/completions", r#"{"model":"other","messages":[]}"#);
        assert_eq!((r.status(), r.header("x-served-by")), (404, Some("weir")));
    }
}

both_drivers! {
    /// `GET /v1/models` lists what the consumer may use; its allow-list holds on the call too.
    fn models_listed_per_consumer(d) {
        let gw = Gateway::new()
            .driver(d)
            .top_yaml(
                "providers: [{ name: m, type: mock, models: [gpt-4o, gpt-4o-mini, claude-x] }]\nconsumers: [{ name: team-a, keys: [{ id: k1, sha256: c07feeffa6d691a93486fe65d1d809717ca35e00823cc27a8a62cc766fed8c41 }], allow: { models: [\"gpt-*\"] } }]",
            )
            .route(
                "{ name: llm, filters: [{ type: auth }],                  ai: { models: [{ model: \"*\", targets: [{ provider: m }] }] } }",
            )
            .start();
        let raw = b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer sk-team-a-0123456789\r\n\r\n";
        let r = gw.request(raw);
        assert_eq!(r.status(), 200);
        let ids: Vec<String> = r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["gpt-4o", "gpt-4o-mini"]);
        // No key: 401 in OpenAI's shape.
        assert_eq!(gw.get("/v1/models").status(), 401);
    }
}
