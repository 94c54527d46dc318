//! The request path of an `ai` route: read the client's JSON body, route its model to a chain of
//! provider targets, call them in turn (keys from the pool, fallback on the configured failures,
//! backoff between rounds, all within a deadline), and stream the answer back through the
//! adapter's shaper in the client's protocol. The decisions are `weir-ai`'s; this module moves
//! the bytes.
//!
//! A stream is committed to a target only when its first translated byte is ready for the
//! client: an answer that fails before that is retried on the next target, one that fails after
//! is ended with an error event in the client's protocol.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use weir_ai::{
    call, mock, AiService, CallInput, ClientApi, ClientRequest, Dialect, Protocol, Shaper,
    SharedProvider, UpstreamCall,
};
use weir_filter::{
    Action, AiInfo, ErrorFormat, Filter, LocalResponse, ProxyError, RequestCtx, Side,
};
use weir_http::{BodyDecoder, BodyKind, Headers, RequestHead, ResponseHead, Version};
use weir_upstream::{Cluster, UpstreamConn};

use crate::conn::Downstream;
use crate::forward::{
    client_gone, finish, refused_body, scan_whole, send_local, whole_body_phase, Scope,
};
use crate::hold::{scan_held, BodyHead, Out, Stages};
use crate::io::{reserve, BODY_READ, HEAD_BUF, STREAM_READ};

/// How much of an answer is kept to estimate its tokens when the provider reports none.
const SAMPLE: usize = 8 << 10;

/// Largest provider error body read (the rest is not needed to say what went wrong).
const MAX_ERROR_BODY: usize = 64 << 10;

/// Serves one request on an `ai` route. Returns whether the client connection stays open.
pub async fn serve(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut Vec<Box<dyn Filter>>,
    head: RequestHead,
    svc: &Rc<AiService>,
) -> bool {
    let Some(api) = ClientApi::detect(head.path()) else {
        let e = ProxyError::new(
            404,
            "unknown_endpoint",
            Side::Downstream,
            "this route serves /v1/chat/completions, /v1/completions, /v1/embeddings, \
             /v1/responses, /v1/models, /v1/messages and /v1/messages/count_tokens",
        );
        ctx.error_format = ErrorFormat::OpenAi;
        return answer_error(scope, d, ctx, filters, e, &head, Body::Unread).await;
    };
    ctx.error_format = match api.protocol() {
        Protocol::OpenAi => ErrorFormat::OpenAi,
        Protocol::Anthropic => ErrorFormat::Anthropic,
    };
    ctx.ai = Some(Box::new(AiInfo {
        api: api.as_str(),
        ..Default::default()
    }));
    if head.method.as_ref() != api.method() {
        let e = ProxyError::new(
            405,
            "method_not_allowed",
            Side::Downstream,
            format!(
                "{} takes {}",
                api.as_str(),
                String::from_utf8_lossy(api.method())
            ),
        );
        return answer_error(scope, d, ctx, filters, e, &head, Body::Unread).await;
    }
    if api == ClientApi::Models {
        let resp = LocalResponse::new(200, "application/json", svc.models_body.clone());
        let keep = head.keep_alive && !drop_unread_body(d, &head);
        return send_local(scope, d, ctx, filters, resp, head.is_head(), keep).await;
    }
    let body = match read_body(scope, d, ctx, filters, &head).await {
        Ok(ReadBody::Body(b)) => b,
        Ok(ReadBody::Respond(resp, whole)) => {
            let keep = whole && head.keep_alive;
            return send_local(scope, d, ctx, filters, *resp, head.is_head(), keep).await;
        }
        Err(e) => {
            if e.status == 499 {
                ctx.status = 499;
                ctx.error = Some(e);
                finish(scope, ctx, filters);
                return false;
            }
            return answer_error(scope, d, ctx, filters, e, &head, Body::Broken).await;
        }
    };
    let client = match ClientRequest::parse(api, body) {
        Ok(c) => c,
        Err(e) => {
            return answer_error(scope, d, ctx, filters, e.to_proxy(), &head, Body::Read).await
        }
    };
    let model = svc.router.resolve_alias(&client.model).to_string();
    if let Some(ai) = ctx.ai.as_mut() {
        ai.requested_model = Some(client.model.as_str().into());
        ai.stream = client.stream;
    }
    // Sticky splits follow the consumer's key once an `auth` filter found it (it removes the
    // credential header), else the credential the client sent, else its address.
    let sticky = ctx
        .consumer_key
        .as_ref()
        .map(|k| k.as_bytes().to_vec())
        .or_else(|| head.headers.get("authorization").map(|v| v.to_vec()))
        .or_else(|| head.headers.get("x-api-key").map(|v| v.to_vec()))
        .unwrap_or_else(|| d.peer_ip.as_bytes().to_vec());
    let Some(chain) = svc.router.plan(&model, &head.headers, Some(&sticky)) else {
        let e = ProxyError::new(
            404,
            "model_not_found",
            Side::Downstream,
            format!("no route for model `{}`", client.model),
        );
        return answer_error(scope, d, ctx, filters, e, &head, Body::Read).await;
    };
    let keep = head.keep_alive;
    let outcome = run_chain(scope, d, ctx, filters, svc, &client, &chain, &head).await;
    match outcome {
        Outcome::Answered { client_keep } => {
            finish(scope, ctx, filters);
            client_keep && keep && !scope.worker.draining()
        }
        Outcome::Failed(e, retry_after) => {
            answer_error_after(scope, d, ctx, filters, e, &head, Body::Read, retry_after).await
        }
        Outcome::ClientGone => {
            ctx.status = 499;
            ctx.error = Some(client_gone());
            finish(scope, ctx, filters);
            false
        }
    }
}

/// Where the request body stands when an error is answered: it decides whether the connection
/// can carry the next request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Not read yet: kept only if it is wholly buffered and can be skipped.
    Unread,
    /// Read whole.
    Read,
    /// Reading it failed: the connection's framing is lost.
    Broken,
}

/// Answers `e` in the client's protocol (the one place errors become responses is
/// [`ProxyError::to_response`]), keeping the connection when its framing allows.
async fn answer_error(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    e: ProxyError,
    head: &RequestHead,
    body: Body,
) -> bool {
    answer_error_after(scope, d, ctx, filters, e, head, body, None).await
}

/// [`answer_error`] with a `Retry-After` (whole seconds, rounded up).
#[allow(clippy::too_many_arguments)]
async fn answer_error_after(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    e: ProxyError,
    head: &RequestHead,
    body: Body,
    retry_after: Option<Duration>,
) -> bool {
    if e.side != Side::Downstream {
        tracing::warn!(request_id = %ctx.request_id, route = ?ctx.route.as_deref(), error = %e, "request failed");
    }
    let keep = head.keep_alive
        && match body {
            Body::Unread => !drop_unread_body(d, head),
            Body::Read => true,
            Body::Broken => false,
        };
    let mut resp = e.to_response(&ctx.request_id, ctx.error_format);
    if let Some(ra) = retry_after {
        let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
        resp.headers.append(
            Bytes::from_static(b"retry-after"),
            Bytes::from(secs.max(1).to_string()),
        );
    }
    ctx.error = Some(e);
    send_local(scope, d, ctx, filters, resp, head.is_head(), keep).await
}

enum Outcome {
    /// An answer went out (possibly ended by an error event mid-stream).
    Answered { client_keep: bool },
    /// Nothing was sent: answer with this error (and `Retry-After`, when a wait is known).
    Failed(ProxyError, Option<Duration>),
    /// The client went away.
    ClientGone,
}

/// How one attempt ended, before anything reached the client.
enum Attempt {
    Done {
        client_keep: bool,
    },
    ClientGone,
    /// No connection, or it reset before an answer.
    Connect(String),
    /// No answer head within the first-byte timeout (or the stream stalled before its first byte).
    Timeout(String),
    /// The provider answered with an error status.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        error: ProxyError,
    },
    /// The call could not be made (untranslatable, unsupported): the next target may do better.
    Refused(ProxyError),
}

/// Tries the chain's targets in order, for as many rounds as attempts and the deadline allow.
#[allow(clippy::too_many_arguments)]
async fn run_chain(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    svc: &AiService,
    client: &ClientRequest,
    chain: &[weir_ai::Hop],
    head: &RequestHead,
) -> Outcome {
    let policy = &svc.fallback;
    let deadline = ctx.timings.start + svc.retry.deadline.get();
    let mut attempts = 0u32;
    let mut tried: Vec<String> = Vec::new();
    let mut last: Option<ProxyError> = None;
    let mut refused: Option<ProxyError> = None;
    let mut round = 0u32;
    // Targets that cannot take this request at all (untranslatable, unsupported).
    let mut skip: Vec<usize> = Vec::new();
    // The soonest a rate-limited or cooling target may be asked again, for `Retry-After`.
    let mut retry_after: Option<Duration> = None;
    'rounds: loop {
        if round > 0 {
            // Another round over the chain: back off exponentially, with jitter.
            let exp = svc
                .retry
                .backoff_base
                .get()
                .saturating_mul(1 << (round - 1).min(16));
            let wait = exp
                .min(svc.retry.backoff_max.get())
                .mul_f64(0.5 + fastrand::f64() / 2.0);
            if Instant::now() + wait >= deadline {
                break;
            }
            monoio::time::sleep(wait).await;
        }
        let mut progressed = false;
        for (h, hop) in chain.iter().enumerate() {
            if skip.contains(&h) {
                continue;
            }
            let p = &svc.providers[hop.provider];
            let cursor = &svc.cursors[hop.provider];
            let mut keys_tried: Vec<usize> = Vec::new();
            // Keys of one target: a refused or rate-limited key gives way to the next key.
            loop {
                if attempts >= svc.retry.max_attempts || Instant::now() >= deadline {
                    break 'rounds;
                }
                let key = if p.keys.is_empty() {
                    None
                } else {
                    // Bedrock and Vertex have no cheap probe call: a disabled key's trial is a
                    // real request once its probe interval has passed.
                    let trials = matches!(p.dialect, Dialect::Bedrock | Dialect::Vertex);
                    match p.keys.pick(cursor, &keys_tried, trials) {
                        Ok(k) => Some(k),
                        Err(down) => {
                            if let Some(ra) = down.retry_after {
                                retry_after = Some(retry_after.map_or(ra, |r: Duration| r.min(ra)));
                            }
                            // A provider's own error (its 429, its 401) says more than "no key
                            // left", which it caused: that one is kept.
                            if keys_tried.is_empty() && round == 0 && last.is_none() {
                                let mut e = ProxyError::new(
                                    503,
                                    "provider_keys_unavailable",
                                    Side::Upstream,
                                    format!("{}: every key is disabled or cooling down", p.name()),
                                );
                                if let Some(ra) = down.retry_after {
                                    e.message = format!(
                                        "{} (next key usable in {}s)",
                                        e.message,
                                        ra.as_secs().max(1)
                                    )
                                    .into();
                                }
                                tried.push(format!("{}/{} (no usable key)", p.name(), hop.model));
                                last = Some(e);
                            }
                            break;
                        }
                    }
                };
                attempts += 1;
                progressed = true;
                if attempts > 1 {
                    ctx.retries += 1;
                }
                if let Some(ai) = ctx.ai.as_mut() {
                    ai.provider = Some(p.name().into());
                    ai.provider_name = weir_metrics::ai::provider_name(p.config.kind.as_str());
                    ai.model = Some(hop.model.as_str().into());
                    ai.tried.push(format!("{}/{}", p.name(), hop.model).into());
                }
                let result = attempt(
                    scope, d, ctx, filters, p, &hop.model, key, client, head, deadline,
                )
                .await;
                let label = format!("{}/{}", p.name(), hop.model);
                match result {
                    Attempt::Done { client_keep } => {
                        if let Some(k) = key {
                            p.keys.succeeded(k);
                        }
                        return Outcome::Answered { client_keep };
                    }
                    Attempt::ClientGone => return Outcome::ClientGone,
                    Attempt::Refused(e) => {
                        // The request cannot be made to this target: not an attempt, and never
                        // worth another round.
                        attempts -= 1;
                        skip.push(h);
                        tried.push(format!("{label} (not possible: {})", e.message));
                        refused.get_or_insert(e);
                        break;
                    }
                    Attempt::Connect(why) => {
                        tried.push(format!("{label} ({why})"));
                        last = Some(ProxyError::new(
                            502,
                            "provider_unreachable",
                            Side::Upstream,
                            why,
                        ));
                        if !policy.connect_error {
                            break 'rounds;
                        }
                        break;
                    }
                    Attempt::Timeout(why) => {
                        tried.push(format!("{label} ({why})"));
                        last = Some(ProxyError::new(
                            504,
                            "provider_timeout",
                            Side::Upstream,
                            why,
                        ));
                        if !policy.timeout {
                            break 'rounds;
                        }
                        break;
                    }
                    Attempt::Status {
                        status,
                        retry_after: ra,
                        error,
                    } => {
                        tried.push(format!("{label} ({status})"));
                        if status == 429 {
                            if let Some(ra) = ra {
                                retry_after = Some(retry_after.map_or(ra, |r: Duration| r.min(ra)));
                            }
                        }
                        let k = key.unwrap_or(usize::MAX);
                        match status {
                            401 | 403 if key.is_some() => {
                                p.keys.disable(k);
                                keys_tried.push(k);
                                last = Some(error);
                                continue;
                            }
                            429 => {
                                if let Some(k) = key {
                                    p.keys.cool_down(k, ra);
                                    keys_tried.push(k);
                                }
                                let fall = policy.on_status(429);
                                last = Some(error);
                                if !fall {
                                    break 'rounds;
                                }
                                if key.is_some() {
                                    continue;
                                }
                                break;
                            }
                            s if policy.on_status(s) => {
                                last = Some(error);
                                break;
                            }
                            _ => {
                                // The provider refused the request itself: another target would too.
                                return Outcome::Failed(error, None);
                            }
                        }
                    }
                }
            }
        }
        if !progressed {
            break;
        }
        round += 1;
    }
    let mut e = last.or(refused).unwrap_or_else(|| {
        ProxyError::new(503, "no_target", Side::Upstream, "no target could be tried")
    });
    if tried.len() > 1 || e.kind == "provider_keys_unavailable" {
        e.message = format!("{}; tried: {}", e.message, tried.join(", ")).into();
    }
    if e.status >= 500 || e.status == 429 {
        e.side = Side::Upstream;
    }
    let retry_after = retry_after.filter(|_| matches!(e.status, 429 | 503));
    Outcome::Failed(e, retry_after)
}

/// One call to one provider with one key.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    p: &SharedProvider,
    model: &str,
    key: Option<usize>,
    client: &ClientRequest,
    head: &RequestHead,
    deadline: Instant,
) -> Attempt {
    let now = SystemTime::now();
    let key_ref = key.map(|k| &p.keys.keys()[k]);
    let bearer = match (&p.vertex, key) {
        (Some(cache), Some(k)) => match vertex_token(cache, k, now, p.config.tls.as_ref()).await {
            Ok(t) => Some(t),
            Err(e) => return Attempt::Connect(format!("token: {e}")),
        },
        _ => None,
    };
    let input = CallInput {
        client,
        provider: p,
        model,
        key: key_ref,
        bearer: bearer.as_deref(),
        now,
    };
    let call = match call::build(&input) {
        Ok(c) => c,
        Err(e) => return Attempt::Refused(e.to_proxy()),
    };
    if p.dialect == Dialect::Mock {
        return mock_attempt(scope, d, ctx, filters, p, client, head, call, now).await;
    }
    let Some(cluster) = scope.state.clusters.get(&p.cluster) else {
        return Attempt::Connect(format!("no connection pool for provider `{}`", p.name()));
    };
    ctx.cluster = Some(p.cluster.as_str().into());
    network_attempt(
        scope, d, ctx, filters, p, cluster, client, head, call, deadline,
    )
    .await
}

/// The in-process mock: its answer goes through the same shaper as a provider's.
#[allow(clippy::too_many_arguments)]
async fn mock_attempt(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    p: &SharedProvider,
    client: &ClientRequest,
    head: &RequestHead,
    call: UpstreamCall,
    now: SystemTime,
) -> Attempt {
    let opts = p.config.mock.clone().unwrap_or_default();
    let answer = mock::answer(&call.path, &call.body, &opts, now);
    let at = monoio::time::turn_now();
    ctx.timings.upstream_sent = Some(at);
    ctx.timings.upstream_first_byte = Some(at);
    if answer.status >= 300 {
        let body = answer.pieces.concat();
        return Attempt::Status {
            status: answer.status,
            retry_after: None,
            error: weir_ai::provider_error(p, answer.status, &body),
        };
    }
    let mut w = ClientWriter::new(call.shaper, head, client, filters, scope);
    for (i, piece) in answer.pieces.iter().enumerate() {
        if i > 0 && !answer.interval.is_zero() {
            monoio::time::sleep(answer.interval).await;
        }
        match w.feed(d, ctx, piece).await {
            Ok(()) => {}
            Err(Fed::ClientGone) => return Attempt::ClientGone,
            Err(Fed::Shape(e)) => return w.abort(d, ctx, e).await,
        }
    }
    w.end(scope, d, ctx).await
}

/// A call over the network.
#[allow(clippy::too_many_arguments)]
async fn network_attempt(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    p: &SharedProvider,
    cluster: &Rc<Cluster>,
    client: &ClientRequest,
    head: &RequestHead,
    call: UpstreamCall,
    deadline: Instant,
) -> Attempt {
    let (_, ep) = match cluster.pick(None, &[]) {
        Ok(x) => x,
        Err(e) => return Attempt::Connect(e.to_string()),
    };
    let mut conn = match cluster.acquire(&ep).await {
        Ok(c) => c,
        Err(e) => {
            cluster.outcome(&ep, true);
            return match e {
                weir_upstream::Error::ConnectTimeout(_) => {
                    Attempt::Timeout("connect timeout".into())
                }
                other => Attempt::Connect(other.to_string()),
            };
        }
    };
    ctx.endpoint = Some(conn.peer);
    cluster.begin(&ep);
    let release = |cluster: &Cluster, conn: UpstreamConn, failed: bool, reusable: bool| {
        cluster.end(&conn.endpoint, failed);
        cluster.release(conn, reusable);
    };
    // Head and body in one write.
    let mut headers = Headers::with_capacity(call.headers.len() + p.config.headers.len() + 3);
    let host = p.base.as_ref().map(|b| b.host_header()).unwrap_or_default();
    headers.append(Bytes::from_static(b"host"), Bytes::from(host));
    for (k, v) in &call.headers {
        headers.append(Bytes::from_static(k.as_bytes()), Bytes::from(v.clone()));
    }
    for (k, v) in &p.config.headers {
        headers.append(Bytes::from(k.to_ascii_lowercase()), Bytes::from(v.clone()));
    }
    headers.append(
        Bytes::from_static(b"x-request-id"),
        Bytes::from(ctx.request_id.clone()),
    );
    let mut out = Vec::with_capacity(512 + call.body.len());
    let kind = if call.method == "GET" && call.body.is_empty() {
        BodyKind::Empty
    } else {
        BodyKind::Length(call.body.len() as u64)
    };
    weir_http::write_request_head(
        &mut out,
        call.method.as_bytes(),
        call.path.as_bytes(),
        &headers,
        kind,
    );
    out.extend_from_slice(&call.body);
    ctx.timings.upstream_sent = Some(monoio::time::turn_now());
    let reused = conn.reused;
    let (r, _) = conn.stream.write_all(out).await;
    if r.is_err() {
        release(cluster, conn, !reused, false);
        return Attempt::Connect("connection reset while sending".into());
    }
    // The response head, within the first-byte timeout.
    let first_byte = p.config.first_byte_timeout.get().min(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    );
    let mut ubuf = BytesMut::with_capacity(HEAD_BUF);
    let read_head = async {
        loop {
            reserve(&mut ubuf, HEAD_BUF);
            let len = ubuf.len();
            let cap = ubuf.capacity();
            let (r, slice) = conn
                .stream
                .read(std::mem::take(&mut ubuf).slice_mut(len..cap))
                .await;
            ubuf = slice.into_inner();
            match r {
                Ok(0) | Err(_) => return Err("connection closed before an answer".to_string()),
                Ok(_) => {}
            }
            match weir_http::parse_response(&mut ubuf, 64 << 10, false) {
                Ok(Some(resp)) if (100..200).contains(&resp.status) => continue,
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => continue,
                Err(e) => return Err(format!("bad answer head: {e}")),
            }
        }
    };
    let resp: ResponseHead = match monoio::time::timeout(first_byte, read_head).await {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => {
            release(cluster, conn, true, false);
            return Attempt::Connect(why);
        }
        Err(_) => {
            release(cluster, conn, true, false);
            return Attempt::Timeout(format!("no answer within {first_byte:?}"));
        }
    };
    ctx.timings.upstream_first_byte = Some(monoio::time::turn_now());
    let idle = p.config.idle_timeout.get();
    let mut dec = BodyDecoder::new(resp.body);
    if resp.status >= 300 {
        // An error answer: read (a bounded part of) it to say what went wrong.
        let mut body = Vec::new();
        let read = read_payload(&mut conn, &mut ubuf, &mut dec, idle, |piece| {
            if body.len() < MAX_ERROR_BODY {
                body.extend_from_slice(&piece[..piece.len().min(MAX_ERROR_BODY - body.len())]);
            }
            Ok(())
        })
        .await;
        let reusable = matches!(read, Ok(true)) && resp.keep_alive;
        release(cluster, conn, resp.status >= 500, reusable);
        return Attempt::Status {
            status: resp.status,
            retry_after: weir_ai::retry_after(resp.headers.get("retry-after").map(|v| &v[..])),
            error: weir_ai::provider_error(p, resp.status, &body),
        };
    }
    let mut w = ClientWriter::new(call.shaper, head, client, filters, scope);
    // Stream the body through the shaper; watch the client once the answer is under way.
    let mut failure: Option<Result<ProxyError, ()>> = None;
    let mut reads = 0u32;
    let mut bulk = false;
    loop {
        if !ubuf.is_empty() || dec.is_done() {
            let mut payload = Vec::new();
            let scan = match dec.scan(&ubuf, |r| payload.extend_from_slice(&ubuf[r])) {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(Ok(ProxyError::new(
                        502,
                        "provider_bad_body",
                        Side::Upstream,
                        e.to_string(),
                    )));
                    break;
                }
            };
            let _ = ubuf.split_to(scan.consumed);
            if !payload.is_empty() {
                match w.feed(d, ctx, &payload).await {
                    Ok(()) => {}
                    Err(Fed::ClientGone) => {
                        failure = Some(Err(()));
                        break;
                    }
                    Err(Fed::Shape(e)) => {
                        failure = Some(Ok(e));
                        break;
                    }
                }
            }
            if scan.done {
                break;
            }
        }
        reads += 1;
        if w.committed() && reads > 1 && !d.reader.is_watching() && d.reader.buf().is_empty() {
            d.reader.watch();
        }
        reserve(&mut ubuf, if bulk { BODY_READ } else { STREAM_READ });
        let len = ubuf.len();
        let cap = ubuf.capacity();
        let read = monoio::time::timeout(
            idle,
            conn.stream
                .read(std::mem::take(&mut ubuf).slice_mut(len..cap)),
        );
        let mut read = std::pin::pin!(read);
        let got = loop {
            if d.reader.is_watching() {
                monoio::select! {
                    r = &mut read => break Some(r),
                    s = d.reader.settle() => {
                        if !matches!(s, Ok(n) if n > 0) {
                            break None;
                        }
                    }
                }
            } else {
                break Some((&mut read).await);
            }
        };
        match got {
            None => {
                failure = Some(Err(()));
                break;
            }
            Some(Err(_)) => {
                ubuf = BytesMut::new();
                failure = Some(Ok(ProxyError::new(
                    504,
                    "provider_idle_timeout",
                    Side::Upstream,
                    format!("{} stopped sending for {idle:?}", p.name()),
                )));
                break;
            }
            Some(Ok((r, slice))) => {
                ubuf = slice.into_inner();
                match r {
                    Ok(0) if dec.kind() == BodyKind::UntilClose => {
                        let _ = dec.scan(&ubuf, |_| {});
                        break;
                    }
                    Ok(0) | Err(_) => {
                        failure = Some(Ok(ProxyError::new(
                            502,
                            "provider_reset",
                            Side::Upstream,
                            format!("{} closed the connection mid-answer", p.name()),
                        )));
                        break;
                    }
                    Ok(n) => bulk = n == cap - len,
                }
            }
        }
    }
    match failure {
        None => {
            let reusable = dec.is_done() && ubuf.is_empty() && resp.keep_alive;
            release(cluster, conn, false, reusable);
            w.end(scope, d, ctx).await
        }
        Some(Err(())) => {
            release(cluster, conn, false, false);
            Attempt::ClientGone
        }
        Some(Ok(e)) => {
            release(cluster, conn, true, false);
            if !w.committed() {
                // Nothing reached the client: the next target may still answer.
                return if e.kind == "provider_idle_timeout" {
                    Attempt::Timeout(e.message.into_owned())
                } else {
                    Attempt::Connect(e.message.into_owned())
                };
            }
            w.abort(d, ctx, e).await
        }
    }
}

/// Reads a response payload to its end, handing each payload piece to `on`. `Ok(true)`: it
/// ended cleanly (the connection may be reused).
async fn read_payload(
    conn: &mut UpstreamConn,
    ubuf: &mut BytesMut,
    dec: &mut BodyDecoder,
    idle: Duration,
    mut on: impl FnMut(&[u8]) -> Result<(), ()>,
) -> Result<bool, ()> {
    loop {
        if !ubuf.is_empty() || dec.is_done() {
            let mut err = false;
            let scan = dec
                .scan(ubuf, |r| {
                    if on(&ubuf[r]).is_err() {
                        err = true;
                    }
                })
                .map_err(|_| ())?;
            let _ = ubuf.split_to(scan.consumed);
            if err {
                return Err(());
            }
            if scan.done {
                return Ok(ubuf.is_empty());
            }
        }
        reserve(ubuf, BODY_READ);
        let len = ubuf.len();
        let cap = ubuf.capacity();
        match monoio::time::timeout(
            idle,
            conn.stream.read(std::mem::take(ubuf).slice_mut(len..cap)),
        )
        .await
        {
            Ok((Ok(n), slice)) => {
                *ubuf = slice.into_inner();
                if n == 0 {
                    return if dec.kind() == BodyKind::UntilClose {
                        Ok(false)
                    } else {
                        Err(())
                    };
                }
            }
            Ok((Err(_), slice)) => {
                *ubuf = slice.into_inner();
                return Err(());
            }
            Err(_) => return Err(()),
        }
    }
}

enum Fed {
    ClientGone,
    Shape(ProxyError),
}

/// Writes the shaped answer to the client: the head with the first bytes, chunked framing for a
/// stream (close-delimited for HTTP/1.0), `Content-Length` for a JSON answer.
struct ClientWriter<'f> {
    shaper: Box<dyn Shaper>,
    /// The route's filters: they see the answer's head and each piece as the client gets it.
    filters: &'f mut [Box<dyn Filter>],
    /// On a route whose filters may hold the answer's pieces back: what they hold.
    held: Option<Stages>,
    protocol: Protocol,
    http10: bool,
    head_request: bool,
    committed: bool,
    out: Vec<u8>,
    sent: u64,
    output_chars: usize,
    /// The client's body, for a prompt-token estimate when the provider reports no usage.
    prompt: Bytes,
    /// The first bytes sent to the client, for an answer-token estimate in the same case.
    sample: Vec<u8>,
}

impl<'f> ClientWriter<'f> {
    fn new(
        shaper: Box<dyn Shaper>,
        head: &RequestHead,
        client: &ClientRequest,
        filters: &'f mut [Box<dyn Filter>],
        scope: Scope<'_>,
    ) -> Self {
        let hold = scope.route.is_some_and(|r| r.needs.response_body_hold);
        ClientWriter {
            shaper,
            held: (hold && !filters.is_empty()).then(|| Stages::new(filters.len())),
            filters,
            protocol: client.api.protocol(),
            http10: head.version == Version::Http10,
            head_request: head.is_head(),
            committed: false,
            out: Vec::with_capacity(1024),
            sent: 0,
            output_chars: 0,
            prompt: client.body.clone(),
            sample: Vec::new(),
        }
    }

    fn committed(&self) -> bool {
        self.committed
    }

    /// The answer's head: the filters' response phase runs on it first (CORS, header edits).
    fn write_head(
        &mut self,
        buf: &mut Vec<u8>,
        ctx: &mut RequestCtx,
        body: BodyKind,
    ) -> Result<(), ProxyError> {
        let mut headers = Headers::with_capacity(4);
        headers.append(
            Bytes::from_static(b"content-type"),
            Bytes::from_static(self.shaper.content_type().as_bytes()),
        );
        if self.shaper.streaming() {
            headers.append(
                Bytes::from_static(b"cache-control"),
                Bytes::from_static(b"no-cache"),
            );
        }
        let mut resp = ResponseHead {
            status: 200,
            reason: Bytes::new(),
            version: Version::Http11,
            headers,
            body,
            keep_alive: true,
            head_len: 0,
        };
        for f in self.filters.iter_mut() {
            match f.on_response_headers(ctx, &mut resp)? {
                // A response head cannot wait (see `Action::Wait`).
                Action::Continue | Action::Wait(_) => {}
                Action::Respond(r) => {
                    return Err(ProxyError::new(
                        r.status,
                        "filter_refused_response",
                        Side::Plugin,
                        String::from_utf8_lossy(&r.body).into_owned(),
                    ))
                }
            }
        }
        ctx.status = resp.status;
        let start = buf.len();
        weir_http::write_response_head(
            buf,
            resp.status,
            &resp.reason,
            &resp.headers,
            body,
            self.http10,
        );
        // Before the head's final CRLF: the request id.
        buf.truncate(buf.len() - 2);
        buf.extend_from_slice(b"x-request-id: ");
        buf.extend_from_slice(ctx.request_id.as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        debug_assert!(buf.len() > start);
        Ok(())
    }

    fn stream_kind(&self) -> BodyKind {
        if self.http10 {
            BodyKind::UntilClose
        } else {
            BodyKind::Chunked
        }
    }

    /// The client's bytes of this piece, shown to the filters' body phase; what goes to the
    /// client (what the filters let out, on a route where they may hold pieces back).
    fn show_filters(
        &mut self,
        ctx: &mut RequestCtx,
        data: Vec<u8>,
        end: bool,
    ) -> Result<Vec<u8>, ProxyError> {
        let Some(held) = self.held.as_mut() else {
            for f in self.filters.iter_mut() {
                f.on_response_body(ctx, &data, end)?;
            }
            return Ok(data);
        };
        // (Vec to BytesMut and back move the allocation: no copies.)
        let piece = BytesMut::from(Bytes::from(data));
        match held.push(BodyHead::Response(None), self.filters, ctx, piece, end)? {
            Out::Bytes(b) => Ok(Vec::from(b)),
            Out::Respond(r) => Err(refused_body(Ok(Action::Respond(*r)))),
        }
    }

    fn frame(&self, buf: &mut Vec<u8>, data: &[u8]) {
        if self.http10 {
            buf.extend_from_slice(data);
        } else if !data.is_empty() {
            buf.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            buf.extend_from_slice(data);
            buf.extend_from_slice(b"\r\n");
        }
    }

    /// Shapes `piece` and writes what it gives (streams only; JSON is held until the end).
    async fn feed(
        &mut self,
        d: &mut Downstream,
        ctx: &mut RequestCtx,
        piece: &[u8],
    ) -> Result<(), Fed> {
        self.out.clear();
        if let Err(e) = self.shaper.feed(piece, &mut self.out) {
            return Err(Fed::Shape(e.to_proxy()));
        }
        if !self.shaper.streaming() || self.out.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(self.out.len() + 256);
        if !self.committed {
            self.write_head(&mut buf, ctx, self.stream_kind())
                .map_err(Fed::Shape)?;
            self.committed = true;
            if let Some(ai) = ctx.ai.as_mut() {
                ai.first_token = Some(Instant::now());
            }
        }
        let out = std::mem::take(&mut self.out);
        self.out = self.show_filters(ctx, out, false).map_err(Fed::Shape)?;
        self.output_chars += self.out.len();
        let out = std::mem::take(&mut self.out);
        self.keep_sample(&out);
        self.out = out;
        self.frame(&mut buf, &self.out);
        self.sent += self.out.len() as u64;
        if let Some(ai) = ctx.ai.as_mut() {
            ai.chunks.note(Instant::now());
        }
        d.write_bytes(Bytes::from(buf))
            .await
            .map_err(|_| Fed::ClientGone)
    }

    /// The answer ended: trailing bytes, the end of the framing, the usage.
    async fn end(mut self, _scope: Scope<'_>, d: &mut Downstream, ctx: &mut RequestCtx) -> Attempt {
        self.out.clear();
        let complete = match self.shaper.finish(&mut self.out) {
            Ok(c) => c,
            Err(e) => return self.abort(d, ctx, e.to_proxy()).await,
        };
        let mut buf = Vec::with_capacity(self.out.len() + 256);
        if self.shaper.streaming() {
            if !self.committed {
                // An empty stream: the head goes now.
                if let Err(e) = self.write_head(&mut buf, ctx, self.stream_kind()) {
                    return self.abort(d, ctx, e).await;
                }
                self.committed = true;
            }
            if !complete {
                stream_error(
                    self.protocol,
                    &mut self.out,
                    "the provider ended the answer early",
                );
            }
            let out = std::mem::take(&mut self.out);
            let (out, shown) = match self.show_filters(ctx, out, true) {
                Ok(out) => (out, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            self.output_chars += out.len();
            self.keep_sample(&out);
            self.frame(&mut buf, &out);
            self.sent += out.len() as u64;
            if let Err(e) = shown {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "a filter failed at the end of the answer");
            }
            if !self.http10 {
                buf.extend_from_slice(b"0\r\n\r\n");
            }
        } else {
            let out = std::mem::take(&mut self.out);
            let shown = self.show_filters(ctx, out, true).map(|out| self.out = out);
            let headed = shown.and_then(|()| {
                self.write_head(&mut buf, ctx, BodyKind::Length(self.out.len() as u64))
            });
            if let Err(e) = headed {
                return self.abort(d, ctx, e).await;
            }
            self.committed = true;
            if let Some(ai) = ctx.ai.as_mut() {
                ai.first_token = Some(Instant::now());
            }
            self.output_chars = self.out.len();
            let out = std::mem::take(&mut self.out);
            self.keep_sample(&out);
            self.out = out;
            if !self.head_request {
                buf.extend_from_slice(&self.out);
                self.sent = self.out.len() as u64;
            }
        }
        ctx.response_bytes = self.sent;
        self.settle_usage(ctx);
        let ok = d.write_bytes(Bytes::from(buf)).await.is_ok();
        if !ok {
            return Attempt::ClientGone;
        }
        Attempt::Done {
            client_keep: !self.http10 && complete,
        }
    }

    /// A failure after the answer began: an error event in the client's protocol ends it.
    async fn abort(mut self, d: &mut Downstream, ctx: &mut RequestCtx, e: ProxyError) -> Attempt {
        tracing::warn!(request_id = %ctx.request_id, error = %e, "answer aborted mid-stream");
        if !self.committed || !self.shaper.streaming() {
            // Nothing went out: a plain error answer is still possible.
            ctx.error = Some(e.clone());
            return Attempt::Status {
                status: e.status,
                retry_after: None,
                error: e,
            };
        }
        let mut ev = Vec::new();
        stream_error(self.protocol, &mut ev, &e.message);
        let mut buf = Vec::new();
        self.frame(&mut buf, &ev);
        if !self.http10 {
            buf.extend_from_slice(b"0\r\n\r\n");
        }
        self.sent += ev.len() as u64;
        ctx.response_bytes = self.sent;
        self.settle_usage(ctx);
        ctx.error = Some(e);
        let _ = d.write_bytes(Bytes::from(buf)).await;
        Attempt::Done { client_keep: false }
    }

    /// Keeps the start of the answer (at most [`SAMPLE`] bytes) for a token estimate.
    fn keep_sample(&mut self, data: &[u8]) {
        let room = SAMPLE.saturating_sub(self.sample.len());
        self.sample.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn settle_usage(&self, ctx: &mut RequestCtx) {
        let usage = self.shaper.usage();
        let chars = self.output_chars as u64;
        if let Some(ai) = ctx.ai.as_mut() {
            ai.usage = Some(weir_ai::token_usage(usage, || {
                // No usage from the provider: both sides counted with the tokenizer.
                (
                    weir_ai::estimate::prompt_tokens(&self.prompt),
                    weir_ai::estimate::answer_tokens(&self.sample, chars),
                )
            }));
        }
    }
}

fn stream_error(protocol: Protocol, out: &mut Vec<u8>, message: &str) {
    weir_ai::shape::stream_error_event(protocol, 502, message, out);
}

/// What reading the body gave.
enum ReadBody {
    /// The whole body.
    Body(Bytes),
    /// A filter answered instead; `true` when the body was read whole (the connection may stay).
    Respond(Box<LocalResponse>, bool),
}

/// Reads the whole request body (bounded by the route's limit), through the filters.
async fn read_body(
    scope: Scope<'_>,
    d: &mut Downstream,
    ctx: &mut RequestCtx,
    filters: &mut [Box<dyn Filter>],
    head: &RequestHead,
) -> Result<ReadBody, ProxyError> {
    let route = scope
        .route
        .ok_or_else(|| ProxyError::new(500, "internal", Side::Internal, "no route"))?;
    let max = route.max_body;
    if let BodyKind::Length(n) = head.body {
        if n > max {
            return Err(ProxyError::new(
                413,
                "body_too_large",
                Side::Downstream,
                format!("request body of {n} bytes is over the limit of {max}"),
            ));
        }
    }
    if head.body == BodyKind::Empty {
        return Err(ProxyError::new(
            400,
            "invalid_request",
            Side::Downstream,
            "a JSON body is required",
        ));
    }
    if head.expect_continue && d.reader.buf().is_empty() {
        d.out.clear();
        d.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        if d.write_out().await.is_err() {
            return Err(ProxyError::new(
                499,
                "client_closed",
                Side::Downstream,
                "client went away",
            ));
        }
    }
    let mut dec = BodyDecoder::new(head.body);
    let mut body = BytesMut::new();
    // Filters that may hold the body's pieces back (a plugin's `StopIterationAndBuffer`): the
    // body is what comes out of them.
    let mut held = (route.needs.request_body_hold && !route.needs.request_body)
        .then(|| Stages::new(filters.len()));
    loop {
        if !d.reader.buf().is_empty() {
            let (scan, verdict) = match held.as_mut() {
                Some(st) => scan_held(&mut dec, d.reader.buf(), &mut body, st, filters, ctx)?,
                None => scan_whole(&mut dec, d.reader.buf(), &mut body, filters, ctx)?,
            };
            let _ = d.reader.buf().split_to(scan.consumed);
            ctx.request_bytes = dec.payload_bytes();
            match verdict {
                Some(Err(e)) => return Err(e),
                Some(Ok(Action::Respond(r))) => {
                    // The rest of the body is not read: the connection closes after the answer.
                    return Ok(ReadBody::Respond(
                        Box::new(r),
                        scan.done && dec.payload_bytes() <= max,
                    ));
                }
                _ => {}
            }
            if dec.payload_bytes() > max {
                return Err(ProxyError::new(
                    413,
                    "body_too_large",
                    Side::Downstream,
                    format!("request body is over the limit of {max} bytes"),
                ));
            }
            if scan.done {
                if route.needs.request_body {
                    // Filters that judge or rewrite the whole body (a plugin with
                    // `buffer.request`), before the model is read from it. The head is already
                    // routed here: a filter that waits resumes on a copy of it.
                    let mut copy = head.clone();
                    if let Some(r) = whole_body_phase(filters, ctx, &mut body, &mut copy).await? {
                        return Ok(ReadBody::Respond(Box::new(r), true));
                    }
                }
                // Which filters may hold pieces: they are told the end first and let out what
                // they hold; the others are told below, once the model is read.
                let holds: Vec<bool> = match held {
                    Some(_) => route
                        .filters
                        .iter()
                        .map(|f| f.needs().request_body_hold)
                        .collect(),
                    None => Vec::new(),
                };
                if let Some(st) = held.as_mut() {
                    match st.end_holding(BodyHead::Request(None), filters, ctx, &holds)? {
                        Out::Bytes(b) => body.extend_from_slice(&b),
                        Out::Respond(r) => return Ok(ReadBody::Respond(r, true)),
                    }
                }
                let body = body.freeze();
                if let Some(ai) = ctx.ai.as_mut() {
                    ai.requested_model = weir_ai::client::probe_model(&body).map(Rc::from);
                    ai.request = Some(body.clone());
                }
                for (i, f) in filters.iter_mut().enumerate() {
                    // (Told already.)
                    if holds.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                    // A filter that decides on the whole body (a quota reserving the prompt's
                    // tokens) answers here, with the body read and the connection kept.
                    if let Action::Respond(r) = f.on_request_body(ctx, &[], true)? {
                        return Ok(ReadBody::Respond(Box::new(r), true));
                    }
                }
                return Ok(ReadBody::Body(body));
            }
        }
        match monoio::time::timeout(route.idle_timeout, d.reader.fill(BODY_READ)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => {
                return Err(ProxyError::new(
                    499,
                    "client_closed",
                    Side::Downstream,
                    "client went away",
                ))
            }
            Err(_) => {
                return Err(ProxyError::new(
                    408,
                    "request_body_timeout",
                    Side::Downstream,
                    "the request body stopped arriving",
                ))
            }
        }
    }
}

/// Skips a body wholly in the buffer so the connection can be kept; `true`: it could not be.
fn drop_unread_body(d: &mut Downstream, head: &RequestHead) -> bool {
    match head.body {
        BodyKind::Empty => false,
        BodyKind::Length(n) if (d.reader.buf().len() as u64) >= n => {
            let _ = d.reader.buf().split_to(n as usize);
            false
        }
        _ => true,
    }
}

/// A Vertex access token for key `k`: cached, or minted now at the token endpoint (one short
/// HTTP/1.1 exchange on its own connection; over TLS for an `https` token URL, with the
/// provider's `tls` options but the token host's own name).
async fn vertex_token(
    cache: &weir_ai::vertex::TokenCache,
    k: usize,
    now: SystemTime,
    tls: Option<&weir_config::UpstreamTls>,
) -> Result<String, String> {
    if let Some(t) = cache.cached(k, now) {
        return Ok(t);
    }
    let req = cache.request(k, now).map_err(|e| e.to_string())?;
    let fetch = async {
        let authority = req.url.authority();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("token endpoint has no address")?;
        let tls = match req.url.scheme.as_str() {
            "https" => {
                let opts = weir_config::UpstreamTls {
                    sni: None,
                    ..tls.cloned().unwrap_or_default()
                };
                Some(weir_upstream::connector(&opts).map_err(|e| format!("token endpoint: {e}"))?)
            }
            _ => None,
        };
        let mut s = weir_upstream::open(addr, &authority, tls.as_ref())
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let path = if req.url.path.is_empty() {
            "/"
        } else {
            req.url.path.as_str()
        };
        let text = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{}",
            req.url.host_header(),
            req.body.len(),
            req.body
        );
        let (r, _) = s.write_all(text.into_bytes()).await;
        r.map_err(|e| format!("token endpoint: {e}"))?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            reserve(&mut buf, 4096);
            let len = buf.len();
            let cap = buf.capacity();
            let (r, slice) = s.read(buf.slice_mut(len..cap)).await;
            buf = slice.into_inner();
            match r {
                Ok(0) => break,
                Ok(_) if buf.len() > 256 << 10 => return Err("token answer too large".to_string()),
                Ok(_) => {}
                Err(e) => return Err(format!("token endpoint: {e}")),
            }
        }
        let head = weir_http::parse_response(&mut buf, 64 << 10, false)
            .map_err(|e| format!("token endpoint: {e}"))?
            .ok_or("token endpoint: incomplete answer")?;
        let mut dec = BodyDecoder::new(head.body);
        let mut body = Vec::new();
        dec.scan(&buf, |r| body.extend_from_slice(&buf[r]))
            .map_err(|e| format!("token endpoint: {e}"))?;
        if head.status != 200 {
            return Err(format!("token endpoint answered {}", head.status));
        }
        cache.store(k, &body, now).map_err(|e| e.to_string())
    };
    match monoio::time::timeout(Duration::from_secs(10), fetch).await {
        Ok(r) => r,
        Err(_) => Err("token endpoint: no answer in 10s".into()),
    }
}
