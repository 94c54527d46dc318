//! The LLM provider endpoints of the mock: OpenAI and OpenAI-compatible, Azure OpenAI,
//! Anthropic, Google Gemini and Vertex AI, AWS Bedrock Runtime and Cohere v2, each an independent
//! implementation of the provider's public wire format (it shares no code with the gateway's
//! translators, which is what makes it a useful test peer).
//!
//! [`handle`] takes one request: [`route`] names the provider family and operation from the
//! method and path, the credential is checked the provider's way, the first matching rule of
//! [`crate::script`] may change the answer (a status, a hang, a reset, timings), the provider
//! module builds the body from the [`reply::Plan`], and the request goes to [`crate::reqlog`].
//! The result is an [`Answer`] that `routes` writes: a whole body, or records streamed one by
//! one with the token interval between token events.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod eventstream;
pub mod google;
pub mod openai;
pub mod reply;

use crate::http::{self, Head};
use crate::reqlog;
use crate::routes::Record;
use crate::script::{self, Effect};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Timings from the command line, used when no rule or header says otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults {
    /// Delay before the first byte of a response (`--ttft-ms`).
    pub ttft: Duration,
    /// Delay between streamed tokens (`--token-interval-ms`).
    pub token_interval: Duration,
}

/// A provider family: decides the credential, the error format and the wire shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
}

impl Family {
    /// The name used in the reply text and the request log.
    pub fn name(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::Azure => "azure",
            Family::Anthropic => "anthropic",
            Family::Gemini => "gemini",
            Family::Vertex => "vertex",
            Family::Bedrock => "bedrock",
            Family::Cohere => "cohere",
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Chat,
    Completions,
    Embeddings,
    BatchEmbed,
    Responses,
    Models,
    CountTokens,
    /// Google's OAuth token endpoint (Vertex credentials).
    Token,
    /// Bedrock `InvokeModel` (Titan embeddings).
    Invoke,
}

/// A recognised provider endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: Family,
    pub op: Op,
    /// The model named by the path (Azure deployment, Gemini, Vertex and Bedrock models).
    pub model: Option<String>,
    /// Streaming asked for by the path (`:streamGenerateContent`, `converse-stream`).
    pub stream: bool,
}

impl Route {
    fn new(family: Family, op: Op) -> Route {
        Route {
            family,
            op,
            model: None,
            stream: false,
        }
    }

    fn model(mut self, model: &str) -> Route {
        self.model = Some(model.to_owned());
        self
    }
}

/// Names the provider endpoint of a request, or `None` when the path is not one.
pub fn route(method: &str, path: &str) -> Option<Route> {
    use Family::*;
    let post = method == "POST";
    if post && path == "/token" {
        return Some(Route::new(Vertex, Op::Token));
    }
    if method == "GET" && path == "/openai/models" {
        return Some(Route::new(Azure, Op::Models));
    }
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (deployment, op) = rest.split_once('/')?;
        let op = match op {
            "chat/completions" => Op::Chat,
            "completions" => Op::Completions,
            "embeddings" => Op::Embeddings,
            _ => return None,
        };
        return (post && !deployment.is_empty())
            .then(|| Route::new(Azure, op).model(&percent_decode(deployment)));
    }
    match (method, path) {
        ("POST", "/v1/messages") => return Some(Route::new(Anthropic, Op::Chat)),
        ("POST", "/v1/messages/count_tokens") => {
            return Some(Route::new(Anthropic, Op::CountTokens))
        }
        ("GET", "/v1beta/models") => return Some(Route::new(Gemini, Op::Models)),
        ("POST", "/v2/chat") => return Some(Route::new(Cohere, Op::Chat)),
        ("POST", "/v2/embed") => return Some(Route::new(Cohere, Op::Embeddings)),
        _ => {}
    }
    if let Some(rest) = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))
        .filter(|r| r.contains(':'))
    {
        return google_action(Gemini, rest, post);
    }
    if path.starts_with("/v1/projects/") || path.starts_with("/v1beta1/projects/") {
        let (_, rest) = path.split_once("/publishers/google/models/")?;
        return google_action(Vertex, rest, post);
    }
    if let Some(rest) = path.strip_prefix("/model/") {
        let (model, action) = rest.rsplit_once('/')?;
        let (op, stream) = match action {
            "converse" => (Op::Chat, false),
            "converse-stream" => (Op::Chat, true),
            "invoke" => (Op::Invoke, false),
            _ => return None,
        };
        let mut r = Route::new(Bedrock, op).model(&percent_decode(model));
        r.stream = stream;
        return (post && !model.is_empty()).then_some(r);
    }
    let op = if post {
        if path.ends_with("/chat/completions") {
            Op::Chat
        } else if path.ends_with("/completions") {
            Op::Completions
        } else if path.ends_with("/embeddings") {
            Op::Embeddings
        } else if path.ends_with("/responses") {
            Op::Responses
        } else {
            return None;
        }
    } else if method == "GET" && path.ends_with("/models") {
        Op::Models
    } else {
        return None;
    };
    Some(Route::new(OpenAi, op))
}

/// `MODEL:action` of a Gemini or Vertex path.
fn google_action(family: Family, rest: &str, post: bool) -> Option<Route> {
    let (model, action) = rest.split_once(':')?;
    let (op, stream) = match action {
        "generateContent" => (Op::Chat, false),
        "streamGenerateContent" => (Op::Chat, true),
        "countTokens" => (Op::CountTokens, false),
        "embedContent" if family == Family::Gemini => (Op::Embeddings, false),
        "batchEmbedContents" if family == Family::Gemini => (Op::BatchEmbed, false),
        _ => return None,
    };
    let mut r = Route::new(family, op).model(&percent_decode(model));
    r.stream = stream;
    (post && !model.is_empty()).then_some(r)
}

// === answers ===

/// The response to one provider request, for `routes` to write.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status (0 for a hang, which sends nothing).
    pub status: u16,
    pub ctype: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Delay before the first byte.
    pub ttft: Duration,
    /// Delay before each token record but the first.
    pub interval: Duration,
    /// Close the connection after this many records, without ending the body.
    pub reset_after: Option<u64>,
}

#[derive(Debug)]
pub enum Body {
    /// A complete body with content-length.
    Whole(Vec<u8>),
    /// Records sent one by one (chunked for HTTP/1.1).
    Events(Vec<Record>),
    /// Read the request, never answer.
    Hang,
    /// Close the connection without answering (a reset before the response).
    Close,
}

/// What a provider module builds.
#[derive(Debug)]
pub enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// 200 with these records.
    Stream {
        ctype: &'static str,
        records: Records,
    },
    /// Any status with this JSON body (errors).
    Status {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
}

/// The records of a stream; token records after the first wait the token interval.
#[derive(Debug, Default)]
pub struct Records {
    pub list: Vec<Record>,
    tokens: usize,
}

impl Records {
    /// A framing record (starts, stops, usage): sent without waiting.
    pub fn push(&mut self, bytes: Vec<u8>) {
        self.list.push(Record {
            bytes,
            pause: false,
        });
    }

    /// A token record (a text, thinking or argument delta).
    pub fn token(&mut self, bytes: Vec<u8>) {
        let pause = self.tokens > 0;
        self.tokens += 1;
        self.list.push(Record { bytes, pause });
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// An SSE record with only a `data:` line.
pub fn sse_data(data: &Value) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

/// An SSE record with an `event:` line and a `data:` line.
pub fn sse_event(event: &str, data: &Value) -> Vec<u8> {
    format!("event: {event}\ndata: {data}\n\n").into_bytes()
}

/// What a provider module needs to know besides the request body.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub family: Family,
    /// The model of the request (from the path or the body), or a default.
    pub model: &'a str,
    /// Whether the answer carries usage (`false` when a rule says `"usage": false`).
    pub usage: bool,
    /// A number unique to this request, for ids.
    pub id: u64,
    /// Unix seconds.
    pub created: u64,
    /// The query string of the request.
    pub query: &'a str,
}

/// A number unique to the request, shared by all workers.
fn next_id() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Relaxed)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An error in the provider family's own format.
pub fn error(family: Family, status: u16, message: &str) -> Reply {
    let (body, headers) = match family {
        Family::OpenAi => (openai::error_body(status, message), Vec::new()),
        Family::Azure => (openai::azure_error_body(status, message), Vec::new()),
        Family::Anthropic => (anthropic::error_body(status, message), Vec::new()),
        Family::Gemini | Family::Vertex => (google::error_body(status, message), Vec::new()),
        Family::Bedrock => bedrock::error_body(status, message),
        Family::Cohere => (cohere::error_body(message), Vec::new()),
    };
    Reply::Status {
        status,
        body,
        headers,
    }
}

/// Answers a provider request; `None` when the path is not a provider endpoint.
pub fn handle(defaults: &Defaults, head: &Head<'_, '_>, body: &[u8]) -> Option<Answer> {
    let mut route = route(head.method, head.path())?;
    // `GET /v1/models` is both OpenAI's and Anthropic's model list (the gateway's key probes use
    // it): the credential header tells them apart.
    if route.family == Family::OpenAi
        && route.op == Op::Models
        && head.header("x-api-key").is_some()
    {
        route.family = Family::Anthropic;
    }
    let parsed: Option<Value> = match route.op {
        Op::Models => None,
        Op::Token => Some(google::form_json(body)),
        _ => serde_json::from_slice(body).ok(),
    };
    let model = route.model.clone().or_else(|| {
        parsed
            .as_ref()
            .and_then(|v| v.get("model"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let stream = route.stream
        || parsed
            .as_ref()
            .and_then(|v| v.get("stream"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let key = credential(route.family, head);
    let req = Request {
        route: &route,
        head,
        body,
        parsed: parsed.as_ref(),
        key: key.as_deref(),
        model: model.as_deref(),
    };
    let answer = answer(defaults, &req);

    let logged_body = match &parsed {
        Some(v) => v.clone(),
        None if body.is_empty() => Value::Null,
        None => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    let headers: Vec<Value> = head
        .headers
        .iter()
        .map(|h| json!([h.name, String::from_utf8_lossy(h.value)]))
        .collect();
    reqlog::record(json!({
        "provider": route.family.name(),
        "method": head.method,
        "path": head.target,
        "model": model,
        "key": key,
        "stream": stream,
        "status": (answer.status != 0).then_some(answer.status),
        "body": logged_body,
        "headers": headers,
    }));
    Some(answer)
}

/// One provider request, parsed.
struct Request<'r, 'h, 'b> {
    route: &'r Route,
    head: &'r Head<'h, 'b>,
    body: &'r [u8],
    parsed: Option<&'r Value>,
    key: Option<&'r str>,
    model: Option<&'r str>,
}

fn answer(defaults: &Defaults, req: &Request<'_, '_, '_>) -> Answer {
    if let Err(reply) = check_auth(req) {
        return render(reply, defaults.ttft, Duration::ZERO, None);
    }
    let effect = script::take(req.key, req.model, req.head.target).unwrap_or_default();
    apply(defaults, req, &effect)
}

/// The answer to an authenticated request under a rule's effect (the default one when no rule
/// matched).
fn apply(defaults: &Defaults, req: &Request<'_, '_, '_>, effect: &Effect) -> Answer {
    let family = req.route.family;
    let query = req.head.query();
    let (ttft, interval) = timing(defaults, req.head, effect);
    if effect.hang {
        return Answer {
            status: 0,
            ctype: "",
            headers: Vec::new(),
            body: Body::Hang,
            ttft,
            interval,
            reset_after: None,
        };
    }
    let scripted = |status: u16| {
        let message = format!("mock: scripted status {status}");
        let mut reply = if req.route.op == Op::Token {
            google::oauth_error(status, "internal_failure", &message)
        } else {
            error(family, status, &message)
        };
        if let (Some(secs), Reply::Status { headers, .. }) = (effect.retry_after, &mut reply) {
            headers.push(("retry-after", secs.to_string()));
        }
        reply
    };
    // With `error_after_events` the status names the in-stream error; whole answers get it as
    // their HTTP status.
    if let Some(status) = effect
        .status
        .filter(|_| effect.error_after_events.is_none())
    {
        return render(scripted(status), ttft, interval, None);
    }

    let model = req.model.unwrap_or(match family {
        Family::Anthropic => "claude-mock",
        Family::Gemini | Family::Vertex => "gemini-mock",
        Family::Bedrock => "bedrock-mock",
        Family::Cohere => "command-mock",
        Family::OpenAi | Family::Azure => "gpt-mock",
    });
    let ctx = Ctx {
        family,
        model,
        usage: effect.usage,
        id: next_id(),
        created: now(),
        query,
    };
    let mut reply = match (req.route.op, req.parsed) {
        (Op::Models, _) => dispatch(req.route, &Value::Null, &ctx),
        (_, Some(v)) if v.is_object() => dispatch(req.route, v, &ctx),
        _ => error(family, 400, "mock: the request body is not a JSON object"),
    };
    match (&mut reply, effect.error_after_events, effect.status) {
        (Reply::Stream { records, .. }, Some(n), status) => {
            let keep = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(records.len().saturating_sub(1));
            records.list.truncate(keep);
            let status = status.unwrap_or(500);
            let message = format!("mock: scripted stream error {status}");
            records.push(stream_error(req.route, query, status, &message, keep));
        }
        (Reply::Json(_), Some(_), Some(status)) => reply = scripted(status),
        _ => {}
    }
    render(reply, ttft, interval, effect.reset_after_events)
}

fn dispatch(route: &Route, req: &Value, ctx: &Ctx<'_>) -> Reply {
    use Family::*;
    match (route.family, route.op) {
        (OpenAi | Azure, Op::Chat) => openai::chat(req, ctx),
        (OpenAi | Azure, Op::Completions) => openai::completions(req, ctx),
        (OpenAi | Azure, Op::Embeddings) => openai::embeddings(req, ctx),
        (OpenAi, Op::Responses) => openai::responses(req, ctx),
        (OpenAi | Azure, Op::Models) => Reply::Json(openai::models()),
        (Anthropic, Op::Models) => Reply::Json(anthropic::models()),
        (Anthropic, Op::Chat) => anthropic::messages(req, ctx),
        (Anthropic, Op::CountTokens) => anthropic::count_tokens(req),
        (Gemini | Vertex, Op::Chat) => google::generate(req, ctx, route.stream),
        (Gemini | Vertex, Op::CountTokens) => google::count_tokens(req),
        (Gemini, Op::Embeddings) => google::embed(req),
        (Gemini, Op::BatchEmbed) => google::batch_embed(req),
        (Gemini, Op::Models) => Reply::Json(google::models()),
        (Vertex, Op::Token) => google::token(req),
        (Bedrock, Op::Chat) => bedrock::converse(req, ctx, route.stream),
        (Bedrock, Op::Invoke) => bedrock::invoke(req),
        (Cohere, Op::Chat) => cohere::chat(req, ctx),
        (Cohere, Op::Embeddings) => cohere::embed(req, ctx),
        _ => error(route.family, 404, "mock: no such operation"),
    }
}

/// The error record that ends a stream early (`error_after_events`).
fn stream_error(route: &Route, query: &str, status: u16, message: &str, sent: usize) -> Vec<u8> {
    match route.family {
        Family::OpenAi if route.op == Op::Responses => {
            openai::responses_stream_error(status, message, sent)
        }
        Family::OpenAi => sse_data(&openai::error_body(status, message)),
        Family::Azure => sse_data(&openai::azure_error_body(status, message)),
        Family::Anthropic => sse_event("error", &anthropic::error_body(status, message)),
        Family::Gemini | Family::Vertex => google::stream_error(query, status, message, sent == 0),
        Family::Bedrock => bedrock::exception_frame(status, message),
        Family::Cohere => cohere::stream_error(message),
    }
}

fn render(reply: Reply, ttft: Duration, interval: Duration, reset_after: Option<u64>) -> Answer {
    let (status, ctype, headers, body) = match reply {
        Reply::Json(v) => (
            200,
            "application/json",
            Vec::new(),
            Body::Whole(v.to_string().into_bytes()),
        ),
        Reply::Stream { ctype, records } => (200, ctype, Vec::new(), Body::Events(records.list)),
        Reply::Status {
            status,
            body,
            headers,
        } => (
            status,
            "application/json",
            headers,
            Body::Whole(body.to_string().into_bytes()),
        ),
    };
    // A reset of a whole answer happens before any of it is sent.
    let body = match body {
        Body::Whole(_) if reset_after.is_some() => Body::Close,
        other => other,
    };
    Answer {
        status,
        ctype,
        headers,
        body,
        ttft,
        interval,
        reset_after,
    }
}

/// Time to first byte and token interval: the rule's, else the request's `x-mock-latency-ms` and
/// `x-mock-interval-ms` headers, else the command line's.
fn timing(defaults: &Defaults, head: &Head<'_, '_>, effect: &Effect) -> (Duration, Duration) {
    let header = |name| {
        head.header(name)
            .and_then(http::parse_decimal)
            .map(|n| Duration::from_millis(n as u64))
    };
    let ttft = effect
        .ttft_ms
        .map(Duration::from_millis)
        .or_else(|| header("x-mock-latency-ms"))
        .unwrap_or(defaults.ttft);
    let interval = effect
        .token_interval_ms
        .map(Duration::from_millis)
        .or_else(|| header("x-mock-interval-ms"))
        .unwrap_or(defaults.token_interval);
    (ttft, interval)
}

// === credentials ===

/// A header's value as text, when present, UTF-8 and not blank.
pub fn header<'a>(head: &'a Head<'_, '_>, name: &str) -> Option<&'a str> {
    head.header(name)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The token of `Authorization: Bearer TOKEN`.
pub fn bearer<'a>(head: &'a Head<'_, '_>) -> Option<&'a str> {
    let value = header(head, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The credential a request presents, the way its provider expects it.
fn credential(family: Family, head: &Head<'_, '_>) -> Option<String> {
    let found = match family {
        Family::OpenAi | Family::Cohere | Family::Vertex => bearer(head).map(str::to_owned),
        Family::Azure => header(head, "api-key")
            .or_else(|| bearer(head))
            .map(str::to_owned),
        Family::Anthropic => header(head, "x-api-key").map(str::to_owned),
        Family::Gemini => header(head, "x-goog-api-key")
            .map(str::to_owned)
            .or_else(|| http::query_param(head.query(), "key").map(percent_decode)),
        Family::Bedrock => bedrock::access_key(head).map(str::to_owned),
    };
    found.filter(|k| !k.is_empty())
}

/// Refuses a request without the credential its provider requires, in the provider's format.
fn check_auth(req: &Request<'_, '_, '_>) -> Result<(), Reply> {
    let family = req.route.family;
    let head = req.head;
    match family {
        Family::OpenAi => req.key.map(drop).ok_or_else(|| {
            error(
                family,
                401,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        }),
        Family::Azure => {
            if http::query_param(head.query(), "api-version").is_none_or(str::is_empty) {
                return Err(Reply::Status {
                    status: 404,
                    body: json!({"error": {"code": "404", "message": "Resource not found"}}),
                    headers: Vec::new(),
                });
            }
            req.key.map(drop).ok_or_else(|| {
                error(
                    family,
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint. Make \
                     sure to provide a valid key for an active subscription and use a correct \
                     regional API endpoint for your resource.",
                )
            })
        }
        Family::Anthropic => {
            if req.key.is_none() {
                return Err(error(family, 401, "x-api-key header is required"));
            }
            match header(head, "anthropic-version") {
                Some(_) => Ok(()),
                None => Err(error(family, 400, "anthropic-version: header is required")),
            }
        }
        Family::Gemini => req.key.map(drop).ok_or_else(|| {
            error(
                family,
                403,
                "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
            )
        }),
        Family::Vertex if req.route.op == Op::Token => Ok(()),
        Family::Vertex => match req.key {
            Some(token) if google::issued(token) => Ok(()),
            _ => Err(error(
                family,
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            )),
        },
        Family::Bedrock => {
            bedrock::check_auth(head, req.body).map_err(|(status, kind, message)| Reply::Status {
                status,
                body: json!({ "message": message }),
                headers: vec![("x-amzn-errortype", kind.to_owned())],
            })
        }
        Family::Cohere => req
            .key
            .map(drop)
            .ok_or_else(|| error(family, 401, "no api key supplied")),
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `form`); bad escapes stay as they are.
pub fn percent_decode_with(s: &str, form: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = |c: u8| (c as char).to_digit(16);
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if form && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `%XX` escapes of a path segment or query value.
pub fn percent_decode(s: &str) -> String {
    percent_decode_with(s, false)
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
