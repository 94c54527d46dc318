use super::*;

fn rc(s: &str) -> Rc<str> {
    Rc::from(s)
}

/// The value of the sample `name{labels}` (labels written exactly as rendered, in order).
fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

const L: &str = "route=\"llm\",gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",provider=\"oa\",gen_ai_request_model=\"gpt\"";

fn sample<'a>(
    route: &'a Rc<str>,
    provider: &'a Rc<str>,
    model: &'a Rc<str>,
    consumer: Option<&'a Rc<str>>,
) -> AiSample<'a> {
    AiSample {
        route: Some(route),
        operation: "chat",
        provider_name: "openai",
        provider: Some(provider),
        model: Some(model),
        consumer,
        duration: Duration::from_millis(30),
        first_token: None,
        stream: None,
        chunks: None,
        tokens: Some(Tokens {
            input: 10,
            output: 5,
            cached_input: 2,
            reasoning: 1,
            estimated: false,
        }),
        error: None,
        cost_nano: None,
        retries: 0,
        fallback: false,
    }
}

#[test]
fn sums_cores_and_counts_streams() {
    let shared = Arc::new(AiShared::default());
    let (a, b) = (
        AiRecorder::new(0, shared.clone()),
        AiRecorder::new(1, shared.clone()),
    );
    let (route, prov, model, alice) = (rc("llm"), rc("oa"), rc("gpt"), rc("alice"));
    let s = sample(&route, &prov, &model, Some(&alice));
    a.record(&s);
    a.record(&s);
    // A stream on the other core: 3 chunks 10 ms apart, 5 output tokens over 20 ms.
    let mut gaps = ChunkGaps::default();
    let t0 = Instant::now();
    for i in 0..3 {
        gaps.note(t0 + Duration::from_millis(10 * i));
    }
    b.record(&AiSample {
        first_token: Some(Duration::from_millis(3)),
        stream: Some(Duration::from_millis(25)),
        chunks: Some((&gaps, Duration::from_millis(20))),
        error: Some("provider_reset"),
        cost_nano: Some(2_500_000),
        retries: 2,
        fallback: true,
        ..s
    });
    let mut text = String::new();
    shared.render(&mut text);
    let with = |extra: &str| format!("{L},{extra}");
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_requests_total",
            &with("consumer=\"alice\"")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_tokens_total",
            &with("consumer=\"alice\",gen_ai_token_type=\"input\"")
        ),
        Some(30.0)
    );
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_tokens_total",
            &with("consumer=\"alice\",gen_ai_token_type=\"cached_input\"")
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_client_token_usage_sum",
            &with("gen_ai_token_type=\"output\"")
        ),
        Some(15.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_client_token_usage_bucket",
            &with("gen_ai_token_type=\"input\",le=\"16\"")
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "gen_ai_server_time_to_first_token_seconds_count", L),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_server_time_to_first_token_seconds_bucket",
            &with("le=\"0.001\"")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_server_time_to_first_token_seconds_bucket",
            &with("le=\"0.005\"")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_client_operation_time_per_output_chunk_seconds_count",
            L
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_client_operation_time_per_output_chunk_seconds_sum",
            L
        ),
        Some(0.02)
    );
    // 20 ms over 4 tokens after the first.
    assert_eq!(
        value(&text, "gen_ai_server_time_per_output_token_seconds_sum", L),
        Some(0.005)
    );
    assert_eq!(
        value(&text, "gen_ai_client_operation_duration_seconds_count", L),
        Some(3.0)
    );
    assert_eq!(value(&text, "weir_gen_ai_retries_total", L), Some(2.0));
    assert_eq!(value(&text, "weir_gen_ai_fallbacks_total", L), Some(1.0));
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_errors_total",
            &with("consumer=\"alice\",error_type=\"provider_reset\"")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_estimated_cost_total",
            &with("consumer=\"alice\"")
        ),
        Some(0.0025)
    );
    let json = shared.stats_json();
    assert!(
        json.contains("{\"consumer\":\"alice\",\"model\":\"gpt\",\"requests\":3,\"errors\":1,\"input_tokens\":30,\"output_tokens\":15,\"cached_tokens\":6,\"reasoning_tokens\":3,\"cost\":0.0025}"),
        "{json}"
    );
}

#[test]
fn consumers_and_models_past_the_limits_are_other() {
    let shared = Arc::new(AiShared::default());
    shared.set_limits(2, 1);
    let r = AiRecorder::new(0, shared.clone());
    let (route, prov) = (rc("llm"), rc("oa"));
    let (m1, m2) = (rc("gpt"), rc("big"));
    let names: Vec<Rc<str>> = ["a", "b", "c", "d"].iter().map(|n| rc(n)).collect();
    for n in &names {
        r.record(&sample(&route, &prov, &m1, Some(n)));
    }
    // No consumer: its own empty label, never folded.
    r.record(&sample(&route, &prov, &m1, None));
    r.record(&sample(&route, &prov, &m2, Some(&names[0])));
    r.record(&sample(&route, &prov, &m2, Some(&names[3])));
    r.quota_rejected(Some(&route), Some(&names[3]), "tokens");
    r.quota_rejected(Some(&route), Some(&names[0]), "tokens");
    let mut text = String::new();
    shared.render(&mut text);
    let req = |labels: &str| value(&text, "weir_gen_ai_requests_total", labels);
    assert_eq!(req(&format!("{L},consumer=\"a\"")), Some(1.0), "{text}");
    assert_eq!(req(&format!("{L},consumer=\"b\"")), Some(1.0));
    assert_eq!(req(&format!("{L},consumer=\"other\"")), Some(2.0));
    assert_eq!(req(&format!("{L},consumer=\"\"")), Some(1.0));
    let other_model = L.replace("\"gpt\"", "\"other\"");
    assert_eq!(req(&format!("{other_model},consumer=\"a\"")), Some(1.0));
    assert_eq!(req(&format!("{other_model},consumer=\"other\"")), Some(1.0));
    assert!(!text.contains("consumer=\"c\"") && !text.contains("\"big\""));
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_quota_rejections_total",
            "route=\"llm\",consumer=\"other\",limit=\"tokens\""
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "weir_gen_ai_quota_rejections_total",
            "route=\"llm\",consumer=\"a\",limit=\"tokens\""
        ),
        Some(1.0)
    );
}

#[test]
fn names_follow_the_semantic_conventions() {
    assert_eq!(operation_name("messages"), "chat");
    assert_eq!(operation_name("completions"), "text_completion");
    assert_eq!(provider_name("bedrock"), "aws.bedrock");
    assert_eq!(provider_name("openai"), "openai");
}
