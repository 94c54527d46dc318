//! The `quota` filter on one core: per-core leases, reservations, settlement, the 429.
//!
//! Each core keeps, per limit and key, a [`Lease`]: units it took from the limit's pool and may
//! spend without asking anyone. A request *reserves* from it (1 request; prompt estimate +
//! `max_tokens` tokens; their price) and, when it ends, *settles*: the difference between the
//! reservation and the real use goes back into the lease (or is owed by it, when the answer used
//! more). A lease too short for a reservation is topped up from the pool; a pool that cannot
//! give it refuses the request. Leases live in `Rc`s and `Cell`s: a request touches no lock and
//! no shared atomic unless its lease runs out.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;
use weir_config::quota::PromptEstimate;
use weir_filter::{Action, Filter, FilterFactory, LocalResponse, ProxyError, RequestCtx, Side};
use weir_http::{RequestHead, ResponseHead};

use crate::pool::{LimitShared, Refusal, Unit, NANO};
use crate::prices::{ModelPrice, Prices};
use crate::window::{bounds, go_duration, now_ms};

// === leases ===

/// A core's lease of one key of one limit, in one window.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    start: Cell<u64>,
    end: Cell<u64>,
    epoch: Cell<u64>,
    /// Units this core may still reserve; negative when settled use went over the reservations
    /// (a debt paid from the pool before the next reservation).
    left: Cell<i64>,
    /// Settled use not yet reported to the pool.
    spent: Cell<u64>,
    /// Requests admitted and not yet reported.
    requests: Cell<u64>,
    /// What the pool had left at this core's last visit.
    pool_left: Cell<u64>,
    /// The window's limit with top-ups, as of the last visit.
    cap: Cell<u64>,
}

/// A core's leases of one limit, by key.
#[derive(Debug)]
pub(crate) struct LeaseMap {
    map: RefCell<HashMap<Box<str>, Rc<Lease>>>,
    sweep_at: Cell<usize>,
}

impl LeaseMap {
    fn get(&self, key: &str, now_s: u64) -> Rc<Lease> {
        let mut map = self.map.borrow_mut();
        if let Some(l) = map.get(key) {
            return l.clone();
        }
        if map.len() >= self.sweep_at.get() {
            // Keys seen in past windows and not held by a request in flight.
            map.retain(|_, l| Rc::strong_count(l) > 1 || l.end.get() > now_s);
            self.sweep_at.set((map.len() * 2).max(1024));
        }
        let l = Rc::new(Lease::default());
        map.insert(key.into(), l.clone());
        l
    }
}

thread_local! {
    /// Each core's lease maps by (limit id, core), so that the filters of several routes, and of
    /// the next config generation while the limit is unchanged, spend the same leases.
    static LEASES: RefCell<HashMap<(u64, usize), Weak<LeaseMap>>> = RefCell::new(HashMap::new());
}

fn lease_map(limit: u64, core: usize) -> Rc<LeaseMap> {
    LEASES.with(|reg| {
        let mut reg = reg.borrow_mut();
        if let Some(m) = reg.get(&(limit, core)).and_then(Weak::upgrade) {
            return m;
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let m = Rc::new(LeaseMap {
            map: RefCell::new(HashMap::new()),
            sweep_at: Cell::new(1024),
        });
        reg.insert((limit, core), Rc::downgrade(&m));
        m
    })
}

// === the factory ===

/// What a limit's key is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Consumer,
    Key,
    Route,
    Model,
    Ip,
    /// Index into the filter's captured header values.
    Header(usize),
}

#[derive(Debug)]
struct CoreLimit {
    shared: Arc<LimitShared>,
    parts: Box<[Part]>,
    /// Display names of the parts (`header:x-team` for headers).
    part_names: Box<[Box<str>]>,
    leases: Rc<LeaseMap>,
}

/// One `quota` filter on one core.
#[derive(Debug)]
pub(crate) struct Core {
    limits: Box<[CoreLimit]>,
    /// The route serves the LLM APIs: limits are checked once the body is read.
    ai_route: bool,
    /// Lowercased names of the headers keys are made of.
    header_names: Box<[Box<str>]>,
    prices: Option<Prices>,
    aliases: BTreeMap<String, String>,
    estimate: PromptEstimate,
    default_max_tokens: u64,
    headers: bool,
    key_buf: RefCell<String>,
    /// The wall clock at a moment of the monotonic one, re-read once a second: a request's time
    /// is then its start (`RequestCtx::timings`) moved onto the wall clock, without a clock read.
    clock: Cell<(Instant, u64)>,
}

impl Core {
    /// The wall-clock time (ms since the epoch) at which `ctx`'s request started.
    fn now_ms(&self, ctx: &RequestCtx) -> u64 {
        let (at, ms) = self.clock.get();
        let start = ctx.timings.start;
        match start.checked_duration_since(at) {
            Some(d) if d < CLOCK_REFRESH => ms + d.as_millis() as u64,
            Some(_) => {
                let now = (Instant::now(), now_ms());
                self.clock.set(now);
                now.1
                    .saturating_sub(now.0.saturating_duration_since(start).as_millis() as u64)
            }
            None => ms.saturating_sub(at.duration_since(start).as_millis() as u64),
        }
    }
}

/// How long the wall clock is extrapolated from the monotonic one before it is read again.
const CLOCK_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Makes the per-request filters of one `quota` filter on one core.
#[derive(Debug)]
pub struct QuotaFactory {
    core: Rc<Core>,
}

impl QuotaFactory {
    pub(crate) fn new(
        filter: &weir_config::QuotaFilter,
        shared: &crate::SharedQuota,
        core: usize,
        route: &weir_config::Route,
    ) -> Result<QuotaFactory, crate::Error> {
        let mut header_names: Vec<Box<str>> = Vec::new();
        let mut limits = Vec::with_capacity(filter.limits.len());
        for l in &filter.limits {
            let s = shared.limit(&l.name).ok_or_else(|| {
                crate::Error(format!("limit `{}` is not in the shared state", l.name))
            })?;
            s.cores
                .fetch_max(core + 1, std::sync::atomic::Ordering::Relaxed);
            let mut parts = Vec::with_capacity(l.key.len());
            for p in &l.key {
                parts.push(match p.as_str() {
                    "consumer" => Part::Consumer,
                    "key" => Part::Key,
                    "route" => Part::Route,
                    "model" => Part::Model,
                    "ip" => Part::Ip,
                    other => {
                        let h = other
                            .strip_prefix("header:")
                            .ok_or_else(|| crate::Error(format!("unknown key part `{other}`")))?
                            .to_ascii_lowercase();
                        let i = match header_names.iter().position(|n| **n == *h) {
                            Some(i) => i,
                            None => {
                                header_names.push(h.into());
                                header_names.len() - 1
                            }
                        };
                        Part::Header(i)
                    }
                });
            }
            limits.push(CoreLimit {
                leases: lease_map(s.id, core),
                part_names: l
                    .key
                    .iter()
                    .map(|p| Box::from(p.to_ascii_lowercase().as_str()))
                    .collect(),
                parts: parts.into(),
                shared: s,
            });
        }
        let budgets = limits.iter().any(|l| l.shared.unit == Unit::Money);
        Ok(QuotaFactory {
            core: Rc::new(Core {
                limits: limits.into(),
                ai_route: route.ai.is_some(),
                header_names: header_names.into(),
                prices: budgets.then(|| Prices::new(&filter.prices)),
                aliases: route
                    .ai
                    .as_ref()
                    .map(|a| a.aliases.clone())
                    .unwrap_or_default(),
                estimate: filter.prompt_estimate,
                default_max_tokens: filter.default_max_tokens,
                headers: filter.headers,
                key_buf: RefCell::new(String::with_capacity(64)),
                clock: Cell::new((Instant::now(), now_ms())),
            }),
        })
    }
}

impl FilterFactory for QuotaFactory {
    fn name(&self) -> &'static str {
        "quota"
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(QuotaReq {
            core: self.core.clone(),
            header_values: SmallVec::new(),
            holds: SmallVec::new(),
            checked_at: 0,
        })
    }
}

// === the filter of one request ===

/// A reservation held by a request until it ends.
#[derive(Debug)]
struct Hold {
    limit: usize,
    lease: Rc<Lease>,
    start: u64,
    epoch: u64,
    units: u64,
    price: Option<ModelPrice>,
}

/// The `quota` filter of one request.
#[derive(Debug)]
pub struct QuotaReq {
    core: Rc<Core>,
    header_values: SmallVec<[Option<Bytes>; 1]>,
    holds: SmallVec<[Hold; 2]>,
    /// When the limits were checked (ms), for the reset times sent back.
    checked_at: u64,
}

/// A request's size, estimated once for all its limits.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    input: u64,
    output: u64,
    price: Option<ModelPrice>,
}

/// The output tokens a request asks for at most: `max_completion_tokens`, else `max_tokens`
/// (OpenAI chat, Anthropic), else `max_output_tokens` (Responses API).
///
/// A search for the field name followed by a number, not a JSON parse: it costs tens of
/// nanoseconds instead of a pass over the whole body. A name inside a string value cannot match
/// (its quotes are escaped there); one nested in an object (a tool's schema) is skipped unless it
/// has a number, which no schema has. What is read only sizes the reservation: the real use is
/// settled anyway.
fn max_tokens(body: &[u8]) -> Option<u64> {
    static FINDERS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::LazyLock::new(|| {
            [
                &b"\"max_completion_tokens\""[..],
                b"\"max_tokens\"",
                b"\"max_output_tokens\"",
            ]
            .map(memchr::memmem::Finder::new)
        });
    FINDERS.iter().find_map(|f| {
        let n = f.needle().len();
        f.find_iter(body)
            .find_map(|at| number_after(&body[at + n..]))
    })
}

/// The unsigned integer after `:` (and whitespace) at the start of `rest`.
fn number_after(rest: &[u8]) -> Option<u64> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = rest.iter().position(|b| !ws(b))?;
    if rest[i] != b':' {
        return None;
    }
    i += 1 + rest[i + 1..].iter().position(|b| !ws(b))?;
    let digits = rest[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    std::str::from_utf8(&rest[i..i + digits]).ok()?.parse().ok()
}

impl QuotaReq {
    fn estimate(&self, ctx: &RequestCtx) -> Estimate {
        let core = &self.core;
        let Some(ai) = ctx.ai.as_deref() else {
            return Estimate {
                input: 0,
                output: 0,
                price: None,
            };
        };
        let body: &[u8] = ai.request.as_deref().unwrap_or(&[]);
        let (input, output) = match ai.api {
            // Free calls: nothing to reserve.
            "count_tokens" | "models" => (0, 0),
            api => {
                let input = match core.estimate {
                    PromptEstimate::Bytes => (body.len() as u64).div_ceil(4),
                    PromptEstimate::Tokenizer => weir_ai::estimate::prompt_tokens(body),
                };
                let output = if api == "embeddings" {
                    0
                } else {
                    max_tokens(body).unwrap_or(core.default_max_tokens)
                };
                (input, output)
            }
        };
        let price = core.prices.as_ref().and_then(|p| {
            let model = ai.requested_model.as_deref()?;
            let model = core.aliases.get(model).map_or(model, String::as_str);
            p.get(model)
        });
        Estimate {
            input,
            output,
            price,
        }
    }

    /// Builds `l`'s key for this request into `buf`: `part=value,...`, values escaped.
    fn key(&self, l: &CoreLimit, ctx: &RequestCtx, buf: &mut String) {
        buf.clear();
        for (i, p) in l.parts.iter().enumerate() {
            if i > 0 {
                buf.push(',');
            }
            buf.push_str(&l.part_names[i]);
            buf.push('=');
            match p {
                Part::Consumer => escape(ctx.consumer.as_deref().unwrap_or(""), buf),
                Part::Key => escape(ctx.consumer_key.as_deref().unwrap_or(""), buf),
                Part::Route => escape(ctx.route.as_deref().unwrap_or(""), buf),
                Part::Model => escape(
                    ctx.ai
                        .as_deref()
                        .and_then(|a| a.requested_model.as_deref())
                        .unwrap_or(""),
                    buf,
                ),
                Part::Ip => {
                    let _ = write!(buf, "{}", ctx.client_addr.ip().to_canonical());
                }
                Part::Header(h) => {
                    if let Some(Some(v)) = self.header_values.get(*h) {
                        escape(&String::from_utf8_lossy(v), buf);
                    }
                }
            }
        }
    }

    /// Checks every limit that applies now; the first that cannot take the request answers.
    fn check(&mut self, ctx: &mut RequestCtx, with_body: bool) -> Action {
        let core = self.core.clone();
        let now = core.now_ms(ctx);
        self.checked_at = now;
        let mut est: Option<Estimate> = None;
        let mut buf = core.key_buf.borrow_mut();
        for (i, l) in core.limits.iter().enumerate() {
            let unit = l.shared.unit;
            let mut price = None;
            let units = match unit {
                Unit::Requests => 1,
                _ if !with_body => continue,
                _ => {
                    let e = *est.get_or_insert_with(|| self.estimate(ctx));
                    match unit {
                        Unit::Tokens => e.input + e.output,
                        Unit::InputTokens => e.input,
                        Unit::OutputTokens => e.output,
                        _ => {
                            if e.input + e.output == 0 {
                                0
                            } else {
                                let Some(p) = e.price else {
                                    self.release();
                                    return self.refuse_unpriced(ctx, l);
                                };
                                price = Some(p);
                                p.cost(e.input, 0, e.output).max(1)
                            }
                        }
                    }
                }
            };
            if units == 0 {
                continue;
            }
            self.key(l, ctx, &mut buf);
            let lease = l.leases.get(&buf, now / 1000);
            match reserve(&l.shared, &lease, &buf, units, now) {
                Ok((start, epoch)) => self.holds.push(Hold {
                    limit: i,
                    lease,
                    start,
                    epoch,
                    units,
                    price,
                }),
                Err(refusal) => {
                    self.release();
                    let resp = refuse(ctx, l, &buf, &lease, units, refusal, now);
                    return Action::Respond(resp);
                }
            }
        }
        Action::Continue
    }

    /// Gives back what this request reserved (a later limit refused it).
    fn release(&mut self) {
        for h in self.holds.drain(..) {
            let l = &h.lease;
            if l.start.get() == h.start && l.epoch.get() == h.epoch {
                l.left.set(l.left.get() + h.units as i64);
                l.requests.set(l.requests.get().saturating_sub(1));
            }
        }
    }

    /// `x-ratelimit-*` of the tightest limit of each kind, as this core last saw its pool.
    fn rate_headers(&self, headers: &mut weir_http::Headers) {
        if !self.core.headers || self.holds.is_empty() {
            return;
        }
        let mut best: [Option<(u64, u64, u64)>; 2] = [None, None];
        for h in &self.holds {
            let slot = match self.core.limits[h.limit].shared.unit {
                Unit::Requests => 0,
                Unit::Money => continue,
                _ => 1,
            };
            let l = &h.lease;
            let remaining = l.pool_left.get() + l.left.get().max(0) as u64;
            let reset = (l.end.get() * 1000).saturating_sub(self.checked_at);
            if best[slot].is_none_or(|(_, r, _)| remaining < r) {
                best[slot] = Some((l.cap.get(), remaining, reset));
            }
        }
        for (slot, unit) in [(0, Unit::Requests), (1, Unit::Tokens)] {
            if let Some((cap, remaining, reset)) = best[slot] {
                rate_headers(headers, unit, cap, remaining, reset);
            }
        }
    }

    fn refuse_unpriced(&self, ctx: &mut RequestCtx, l: &CoreLimit) -> Action {
        let model = ctx
            .ai
            .as_deref()
            .and_then(|a| a.requested_model.as_deref())
            .unwrap_or("")
            .to_owned();
        let e = ProxyError::new(
            403,
            "model_not_priced",
            Side::Downstream,
            format!(
                "budget `{}` cannot price model `{model}`: add it to the quota filter's `prices`",
                l.shared.name
            ),
        );
        let resp = e.to_response(&ctx.request_id, ctx.error_format);
        ctx.error = Some(e);
        Action::Respond(resp)
    }
}

/// Escapes the characters that separate a key's parts.
fn escape(v: &str, buf: &mut String) {
    for c in v.chars() {
        match c {
            ',' => buf.push_str("%2C"),
            '=' => buf.push_str("%3D"),
            '%' => buf.push_str("%25"),
            c => buf.push(c),
        }
    }
}

/// Reserves `units` from `lease`, topping it up from the pool when it is short. Returns the
/// window start and epoch the reservation belongs to.
fn reserve(
    shared: &Arc<LimitShared>,
    lease: &Lease,
    key: &str,
    units: u64,
    now: u64,
) -> Result<(u64, u64), Refusal> {
    let now_s = now / 1000;
    if now_s >= lease.end.get() || now_s < lease.start.get() {
        // A new window: the old lease is void (its units belonged to the old window).
        let (s, e) = bounds(shared.window, now_s);
        lease.start.set(s);
        lease.end.set(e);
        lease.epoch.set(u64::MAX);
        lease.left.set(0);
        lease.spent.set(0);
        lease.requests.set(0);
        lease.pool_left.set(shared.amount);
        lease.cap.set(shared.amount);
    }
    let left = lease.left.get();
    let want = units as i64;
    if left < want {
        let need = (want - left) as u64;
        let report = (lease.spent.take(), lease.requests.take());
        let g = shared.take(
            key,
            (lease.start.get(), lease.end.get()),
            need,
            units,
            lease.epoch.get(),
            report,
            now,
        )?;
        if g.void {
            lease.left.set(0);
        }
        lease.left.set(lease.left.get() + g.units as i64);
        lease.epoch.set(g.epoch);
        lease.pool_left.set(g.pool_left);
        lease.cap.set(g.cap);
    }
    lease.left.set(lease.left.get() - want);
    lease.requests.set(lease.requests.get() + 1);
    Ok((lease.start.get(), lease.epoch.get()))
}

/// What a settled request used, in `unit`.
fn used(unit: Unit, ctx: &RequestCtx, price: Option<ModelPrice>, prices: Option<&Prices>) -> u64 {
    let Some(u) = ctx.ai.as_deref().and_then(|a| a.usage) else {
        return u64::from(unit == Unit::Requests);
    };
    match unit {
        Unit::Requests => 1,
        Unit::Tokens => u.input + u.output,
        Unit::InputTokens => u.input,
        Unit::OutputTokens => u.output,
        Unit::Money => {
            // The model that answered, if it is priced; else the one reserved for.
            let answered = ctx
                .ai
                .as_deref()
                .and_then(|a| a.model.as_deref())
                .and_then(|m| prices.and_then(|p| p.get(m)));
            answered
                .or(price)
                .map_or(0, |p| p.cost(u.input, u.cached_input, u.output))
        }
    }
}

/// A window's remaining units and time as `x-ratelimit-*` fields, for requests or tokens.
fn rate_headers(
    headers: &mut weir_http::Headers,
    unit: Unit,
    limit: u64,
    remaining: u64,
    reset_ms: u64,
) {
    let (l, r, t): (&'static [u8], &'static [u8], &'static [u8]) = match unit {
        Unit::Requests => (
            b"x-ratelimit-limit-requests",
            b"x-ratelimit-remaining-requests",
            b"x-ratelimit-reset-requests",
        ),
        Unit::Tokens | Unit::InputTokens | Unit::OutputTokens => (
            b"x-ratelimit-limit-tokens",
            b"x-ratelimit-remaining-tokens",
            b"x-ratelimit-reset-tokens",
        ),
        Unit::Money => return,
    };
    // One buffer for the three values: one allocation, three shared slices of it.
    let mut v = Vec::with_capacity(48);
    let mut b = itoa::Buffer::new();
    v.extend_from_slice(b.format(limit).as_bytes());
    let a = v.len();
    v.extend_from_slice(b.format(remaining.min(limit)).as_bytes());
    let c = v.len();
    go_duration(reset_ms, &mut v);
    let all = Bytes::from(v);
    headers.append(Bytes::from_static(l), all.slice(..a));
    headers.append(Bytes::from_static(r), all.slice(a..c));
    headers.append(Bytes::from_static(t), all.slice(c..));
}

/// Units as text: money with six decimals, counts as they are.
fn amount_text(unit: Unit, n: u64) -> String {
    if unit == Unit::Money {
        format!("{:.6}", n as f64 / NANO)
    } else {
        n.to_string()
    }
}

/// The answer to a refused request, in the client's protocol, with `Retry-After` and the
/// limit's `x-ratelimit-*` fields.
fn refuse(
    ctx: &mut RequestCtx,
    l: &CoreLimit,
    key: &str,
    lease: &Lease,
    units: u64,
    refusal: Refusal,
    now: u64,
) -> LocalResponse {
    let s = &l.shared;
    let unit = s.unit;
    let window = s.def.per;
    let reset_ms = (lease.end.get() * 1000).saturating_sub(now);
    let cap = lease.cap.get().max(s.amount);
    let keyed = if key.is_empty() {
        String::new()
    } else {
        format!(" for {key}")
    };
    let (e, retry_after) = match refusal {
        Refusal::Exhausted { left } => {
            let kind = if unit == Unit::Money {
                "insufficient_quota"
            } else {
                "rate_limit_exceeded"
            };
            let mut wait = Vec::new();
            go_duration(reset_ms, &mut wait);
            let msg = format!(
                "quota `{}` ({} per {window}){keyed}: limit {}, remaining {}, this request needs {}; \
                 please try again in {}",
                s.name,
                unit.as_str(),
                amount_text(unit, cap),
                amount_text(unit, left),
                amount_text(unit, units),
                String::from_utf8_lossy(&wait),
            );
            (
                ProxyError::new(429, kind, Side::Downstream, msg),
                Some(reset_ms.div_ceil(1000).max(1)),
            )
        }
        Refusal::TooLarge => (
            ProxyError::new(
                429,
                "request_too_large",
                Side::Downstream,
                format!(
                    "quota `{}` ({} per {window}){keyed}: this request needs {}, more than the \
                     whole limit of {}",
                    s.name,
                    unit.as_str(),
                    amount_text(unit, units),
                    amount_text(unit, cap),
                ),
            ),
            None,
        ),
        Refusal::Unavailable => (
            ProxyError::new(
                503,
                "quota_unavailable",
                Side::Internal,
                format!(
                    "quota `{}` is kept in Redis, which cannot be reached (the limit fails closed)",
                    s.name
                ),
            ),
            Some(1),
        ),
    };
    let mut resp = e.to_response(&ctx.request_id, ctx.error_format);
    if let Some(secs) = retry_after {
        let mut b = itoa::Buffer::new();
        resp.headers.append(
            Bytes::from_static(b"retry-after"),
            Bytes::copy_from_slice(b.format(secs).as_bytes()),
        );
    }
    if !matches!(refusal, Refusal::Unavailable) {
        let remaining = match refusal {
            Refusal::Exhausted { left } => left,
            _ => 0,
        };
        rate_headers(&mut resp.headers, unit, cap, remaining, reset_ms);
    }
    ctx.error = Some(e);
    resp
}

impl Filter for QuotaReq {
    fn on_request_headers(
        &mut self,
        ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        for name in self.core.header_names.iter() {
            self.header_values.push(req.headers.get(name).cloned());
        }
        if self.core.ai_route {
            // The model, the prompt and the client's error format are known once the body is.
            return Ok(Action::Continue);
        }
        Ok(self.check(ctx, false))
    }

    fn on_request_body(
        &mut self,
        ctx: &mut RequestCtx,
        _chunk: &[u8],
        end: bool,
    ) -> Result<Action, ProxyError> {
        if end && self.core.ai_route && ctx.ai.is_some() && self.checked_at == 0 {
            return Ok(self.check(ctx, true));
        }
        Ok(Action::Continue)
    }

    fn on_response_headers(
        &mut self,
        _ctx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<Action, ProxyError> {
        self.rate_headers(&mut resp.headers);
        Ok(Action::Continue)
    }

    fn on_local_response(&mut self, ctx: &RequestCtx, resp: &mut LocalResponse) {
        // A local answer (a `direct_response` route) this request was admitted for; a refusal
        // carries its own fields already.
        if resp.status < 400 && ctx.error.is_none() {
            self.rate_headers(&mut resp.headers);
        }
    }

    fn on_log(&mut self, ctx: &RequestCtx) {
        let core = &self.core;
        for h in &self.holds {
            let unit = core.limits[h.limit].shared.unit;
            let used = used(unit, ctx, h.price, core.prices.as_ref());
            let l = &h.lease;
            // Charged to the window it was reserved in; a window that turned (or was reset)
            // since has nothing more to settle.
            if l.start.get() == h.start && l.epoch.get() == h.epoch {
                l.left.set(l.left.get() + h.units as i64 - used as i64);
                l.spent.set(l.spent.get() + used);
            }
        }
    }
}

#[cfg(test)]
mod tests;
