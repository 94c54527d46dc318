//! A plugin as a filter: the per-core [`PluginCore`] (the instance, recreated after a failure,
//! and the tick timer) and the per-request [`WasmFilter`] that maps the filter phases onto the
//! Proxy-Wasm HTTP callbacks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use weir_filter::{
    Action, Filter, FilterFactory, Flow, LocalResponse, Needs, ProxyError, RequestCtx, Side,
    Waiting,
};
use weir_http::{BodyKind, Headers, RequestHead, ResponseHead};

use crate::abi::{action, buffer, map};
use crate::context::{
    BodyBuf, CallAnswer, Callout, Paused, Props, ReqParts, RespParts, TrailerMap,
};
use crate::error::Result;
use crate::instance::{Failure, Instance, Phase, Template};
use crate::metrics::{self, kind};
use crate::plugin::Plugin;

/// Sends a plugin's HTTP callouts through the gateway's upstream clusters (the proxy implements
/// it per core).
pub trait Callouts {
    /// Sends `call`; the answer, or why there is none.
    fn send(&self, call: Callout) -> Pin<Box<dyn Future<Output = Result<CallAnswer, String>>>>;
}

type Shared = Rc<RefCell<Instance>>;

/// One plugin on one core: its live instance, replaced after a failure.
pub struct PluginCore {
    template: Template,
    current: RefCell<Shared>,
    callouts: Option<Rc<dyn Callouts>>,
    /// The task delivering `proxy_on_queue_ready` runs (started once a queue is registered).
    listening: Cell<bool>,
    /// The properties of every request of a plugin that cannot read them (it does not import
    /// `proxy_get_property`): never filled, shared instead of made per request.
    blank: Rc<Props>,
}

impl Drop for PluginCore {
    fn drop(&mut self) {
        // Ends the queue task; the queues this core owned go to their next registrant.
        self.template.ready().close();
    }
}

impl PluginCore {
    /// Links and starts the plugin's instance for core `worker` (an error refuses the
    /// generation), and its tick timer when the plugin asked for one.
    pub fn new(
        plugin: Arc<Plugin>,
        worker: usize,
        callouts: Option<Rc<dyn Callouts>>,
    ) -> Result<Rc<PluginCore>> {
        let template = Template::new(plugin, worker)?;
        let first = template.instantiate()?;
        let core = Rc::new(PluginCore {
            template,
            current: RefCell::new(Rc::new(RefCell::new(first))),
            callouts,
            listening: Cell::new(false),
            blank: Rc::default(),
        });
        core.start_timer();
        core.listen_to_queues();
        Ok(core)
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        self.template.plugin()
    }

    /// The live instance, made anew when the last one failed.
    fn instance(&self) -> Result<Shared, Failure> {
        let cur = self.current.borrow().clone();
        if cur.borrow().broken().is_none() {
            return Ok(cur);
        }
        match self.template.instantiate() {
            Ok(i) => {
                let fresh = Rc::new(RefCell::new(i));
                *self.current.borrow_mut() = fresh.clone();
                Ok(fresh)
            }
            Err(e) => {
                let name = &self.plugin().name;
                metrics::failures(name, kind::RESTART).fetch_add(1, Relaxed);
                tracing::error!(target: "weir_wasm", plugin = %name, error = %e, "plugin instance could not be recreated");
                Err(Failure {
                    kind: kind::RESTART,
                    message: e.to_string(),
                })
            }
        }
    }

    /// Runs `proxy_on_tick` every period the root context asked for, while this core keeps the
    /// plugin (a new generation that drops it ends the timer).
    fn start_timer(self: &Rc<Self>) {
        let ms = self.current.borrow().borrow().store.data().tick_ms;
        if ms == 0 {
            return;
        }
        let weak: Weak<PluginCore> = Rc::downgrade(self);
        monoio::spawn(async move {
            let mut period = Duration::from_millis(u64::from(ms));
            loop {
                monoio::time::sleep(period).await;
                let Some(core) = weak.upgrade() else { return };
                let Ok(inst) = core.instance() else { continue };
                let mut i = inst.borrow_mut();
                let _ = i.tick();
                let callouts = std::mem::take(&mut i.store.data_mut().ex.callouts);
                i.store.data_mut().ex.clear();
                let ms = i.store.data().tick_ms;
                drop(i);
                core.listen_to_queues();
                // Callouts made from the root context answer to it, off any request.
                for c in callouts {
                    core.spawn_root_callout(c);
                }
                if ms == 0 {
                    return;
                }
                period = Duration::from_millis(u64::from(ms));
            }
        });
    }

    /// Once the plugin has registered a shared queue on this core, runs the task that calls
    /// `proxy_on_queue_ready` on the root context for each queue an enqueue (from any core)
    /// marked, until the core drops the plugin.
    fn listen_to_queues(self: &Rc<Self>) {
        let ready = self.template.ready().clone();
        if self.listening.get() || !ready.registered() {
            return;
        }
        self.listening.set(true);
        let weak: Weak<PluginCore> = Rc::downgrade(self);
        monoio::spawn(async move {
            while let Some(ids) = ready.next().await {
                let Some(core) = weak.upgrade() else { return };
                let Ok(inst) = core.instance() else { continue };
                for id in ids {
                    let mut i = inst.borrow_mut();
                    if i.queue_ready(id).is_err() {
                        // Counted and logged by the guard; the next notice gets a new instance.
                        break;
                    }
                    let callouts = std::mem::take(&mut i.store.data_mut().ex.callouts);
                    i.store.data_mut().ex.clear();
                    drop(i);
                    for c in callouts {
                        core.spawn_root_callout(c);
                    }
                }
            }
        });
    }

    fn spawn_root_callout(self: &Rc<Self>, c: Callout) {
        let Some(client) = self.callouts.clone() else {
            return;
        };
        let weak = Rc::downgrade(self);
        monoio::spawn(async move {
            let token = c.token;
            let answer = client.send(c).await.ok();
            let Some(core) = weak.upgrade() else { return };
            let Ok(inst) = core.instance() else { return };
            let mut i = inst.borrow_mut();
            let root = i.root();
            let (nh, nb) = answer
                .as_ref()
                .map_or((0, 0), |a| (a.headers.len(), a.body.len()));
            i.store.data_mut().ex.answer = answer;
            let _ = i.http_call_response(root, token, nh, nb);
            i.store.data_mut().ex.clear();
        });
    }
}

/// Makes the [`WasmFilter`] of each request for one plugin on one core.
pub struct WasmFactory {
    core: Rc<PluginCore>,
}

impl WasmFactory {
    /// A factory over a core's plugin.
    pub fn new(core: Rc<PluginCore>) -> Self {
        WasmFactory { core }
    }
}

impl FilterFactory for WasmFactory {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(WasmFilter {
            core: self.core.clone(),
            inst: None,
            id: 0,
            props: Vec::new(),
            waiting: None,
            paused: None,
            known: if self.core.plugin().reads_properties {
                Rc::default()
            } else {
                Rc::clone(&self.core.blank)
            },
            done: false,
        })
    }

    fn needs(&self) -> Needs {
        let p = self.core.plugin();
        Needs {
            request_body: p.buffer_request,
            response_body: p.buffer_response,
            request_trailers: p.request_trailers,
            response_trailers: p.response_trailers,
            request_body_hold: p.request_body_hold,
            response_body_hold: p.response_body_hold,
        }
    }
}

/// Where a callout's answer lands for `on_resume`.
type Slot = Rc<RefCell<Option<(u32, Option<CallAnswer>)>>>;

/// A plugin's HTTP context for one request.
pub struct WasmFilter {
    core: Rc<PluginCore>,
    /// The instance the context lives on (a request finishes on it even if the core replaced it).
    inst: Option<Shared>,
    id: u32,
    /// Properties the plugin set, kept between callbacks.
    props: Vec<(Vec<u8>, Vec<u8>)>,
    waiting: Option<Slot>,
    /// The plugin paused the request (no callout) and has not continued it yet.
    paused: Option<Rc<Paused>>,
    /// The request's values behind properties, kept between callbacks and brought up to date
    /// before each (a shared string or value is cloned only when it changed), then shared with
    /// the callback's exchange (which lets go of it when the callback returns).
    known: Rc<Props>,
    /// The plugin failed or the context ended: no more callbacks.
    done: bool,
}

/// What a callback came to.
enum Outcome {
    Continue,
    /// `Pause` without a callout: held until the plugin continues it.
    Pause,
    Respond(LocalResponse),
    Wait(Callout),
}

impl WasmFilter {
    fn plugin(&self) -> &Arc<Plugin> {
        self.core.plugin()
    }

    /// The answer to a failure: go on (open) or a 503 (closed).
    fn failed(&mut self, f: &Failure) -> Result<Action, ProxyError> {
        self.done = true;
        if self.plugin().fail_open {
            return Ok(Action::Continue);
        }
        Err(ProxyError::new(
            503,
            "plugin_failed",
            Side::Plugin,
            format!("plugin `{}` failed ({})", self.plugin().name, f.kind),
        ))
    }

    /// Hands the request's properties to a callback's exchange: the values behind them brought
    /// up to date (only for a plugin that can read them), and those the plugin set.
    fn share_props(&mut self, ex: &mut crate::context::Exchange, ctx: &RequestCtx) {
        if self.core.plugin().reads_properties {
            Rc::make_mut(&mut self.known).refresh(ctx);
        }
        ex.props = Some(Rc::clone(&self.known));
        ex.set_props = std::mem::take(&mut self.props);
    }

    /// Runs one HTTP callback with `fill` moving the request's parts in and `drain` moving them
    /// back, whatever happened.
    fn callback<F, D>(
        &mut self,
        ctx: &RequestCtx,
        fill: F,
        call: impl FnOnce(&mut Instance, u32) -> Result<i32, Failure>,
        drain: D,
    ) -> Result<Outcome, Failure>
    where
        F: FnOnce(&mut crate::context::Exchange),
        D: FnOnce(&mut crate::context::Exchange),
    {
        // Without a callback, `fill` and `drain` still run, on an exchange of their own: what
        // `fill` moved in (the request's head fields) comes back to the request.
        let give_back = |fill: F, drain: D| {
            let mut ex = crate::context::Exchange::default();
            fill(&mut ex);
            drain(&mut ex);
        };
        let inst = match &self.inst {
            Some(i) => i.clone(),
            None => {
                let made = self.core.instance().and_then(|i| {
                    let id = i.borrow_mut().create_context()?;
                    Ok((i, id))
                });
                match made {
                    Ok((i, id)) => {
                        self.id = id;
                        self.inst = Some(i.clone());
                        i
                    }
                    Err(f) => {
                        give_back(fill, drain);
                        return Err(f);
                    }
                }
            }
        };
        let mut i = inst.borrow_mut();
        if i.broken().is_some() {
            // Another request made this instance fail; this request's context died with it. It
            // did not fail itself, so it goes on without the plugin's remaining callbacks.
            self.done = true;
            drop(i);
            give_back(fill, drain);
            return Ok(Outcome::Continue);
        }
        {
            let ex = &mut i.store.data_mut().ex;
            self.share_props(ex, ctx);
            fill(ex);
        }
        let res = call(&mut i, self.id);
        let registered = !self.core.listening.get() && i.store.data().ready.registered();
        let ex = &mut i.store.data_mut().ex;
        drain(ex);
        self.props = std::mem::take(&mut ex.set_props);
        let local = ex.local.take();
        let mut callouts = std::mem::take(&mut ex.callouts);
        let resumed = ex.resumed;
        ex.clear();
        drop(i);
        if registered {
            // A queue registered from an HTTP context also reports to the root context.
            self.core.listen_to_queues();
        }
        let act = res?;
        if let Some(r) = local {
            return Ok(Outcome::Respond(r));
        }
        // Only the first callout of a callback holds the request; Envoy-style plugins make one.
        if act == action::PAUSE && !callouts.is_empty() {
            return Ok(Outcome::Wait(callouts.remove(0)));
        }
        // Paused and not continued in the same callback: held until the plugin continues it.
        if act == action::PAUSE && !resumed {
            return Ok(Outcome::Pause);
        }
        Ok(Outcome::Continue)
    }

    fn decide(&mut self, out: Result<Outcome, Failure>) -> Result<Action, ProxyError> {
        match out {
            Ok(Outcome::Continue) => Ok(Action::Continue),
            Ok(Outcome::Respond(r)) => Ok(Action::Respond(r)),
            Ok(Outcome::Wait(c)) => Ok(self.wait(c)),
            Ok(Outcome::Pause) => Ok(self.pause()),
            Err(f) => self.failed(&f),
        }
    }

    /// As [`WasmFilter::decide`], for a phase that cannot wait (the head is out, or the body must
    /// flow): a `Wait` goes on at once, and a pause is forgotten.
    fn decide_now(&mut self, out: Result<Outcome, Failure>) -> Result<Action, ProxyError> {
        match self.decide(out)? {
            Action::Wait(_) => {
                self.unpause();
                Ok(Action::Continue)
            }
            other => Ok(other),
        }
    }

    /// As [`WasmFilter::decide`], for a body piece the plugin may hold back: `Pause` (the ABI's
    /// `StopIterationAndBuffer`) holds it, a callout cannot be waited on (it goes on, as
    /// `decide_now`), a failure open passes.
    fn flow(&mut self, out: Result<Outcome, Failure>) -> Result<Flow, ProxyError> {
        Ok(match out {
            Ok(Outcome::Pause) => Flow::Hold,
            Ok(Outcome::Continue) | Ok(Outcome::Wait(_)) => Flow::Pass,
            Ok(Outcome::Respond(r)) => Flow::Respond(r),
            Err(f) => match self.failed(&f)? {
                Action::Respond(r) => Flow::Respond(r),
                Action::Continue | Action::Wait(_) => Flow::Pass,
            },
        })
    }

    /// A body callback on what the plugin holds with the new piece after it (`held`, writable:
    /// `proxy_set_buffer_bytes` rewrites it in place). `req` / `resp`: the body's head while it
    /// still waits, whose header map the callback may then read and edit (as in Envoy, where a
    /// plugin that paused its headers edits them from its body callbacks).
    fn held_callback(
        &mut self,
        ctx: &mut RequestCtx,
        kind: i32,
        (held, end): (&mut BytesMut, bool),
        mut req: Option<&mut RequestHead>,
        mut resp: Option<&mut ResponseHead>,
    ) -> Result<Outcome, Failure> {
        let data = std::mem::take(held);
        let n = data.len();
        let phase = if kind == buffer::HTTP_REQUEST_BODY {
            Phase::RequestBody
        } else {
            Phase::ResponseBody
        };
        let req_parts = req.as_deref_mut().map(Self::take_head);
        let resp_parts = resp.as_deref_mut().map(Self::take_response_head);
        let (mut back, mut req_back, mut resp_back) = (None, None, None);
        let out = self.callback(
            ctx,
            |ex| {
                ex.body = Some(body(kind, data, true));
                ex.req = req_parts;
                ex.resp = resp_parts;
            },
            |i, id| i.http(phase, id, n, end),
            |ex| {
                back = ex.body.take();
                req_back = ex.req.take();
                resp_back = ex.resp.take();
            },
        );
        if let Some(b) = back {
            *held = b.data;
        }
        if let Some(r) = req {
            Self::put_head(r, req_back);
        }
        if let Some(r) = resp {
            Self::put_response_head(r, resp_back);
        }
        out
    }

    /// Holds the request until the plugin continues it, or for the plugin's `pause_limit` (then
    /// [`Filter::on_resume`] answers 504). Only the request phases wait (`Wait` is `Continue`
    /// elsewhere, and the pause is then dropped with the request's end).
    fn pause(&mut self) -> Action {
        let p: Rc<Paused> = Rc::default();
        if let Some(inst) = &self.inst {
            inst.borrow_mut()
                .store
                .data_mut()
                .paused
                .insert(self.id, p.clone());
        }
        self.paused = Some(p.clone());
        let limit = self.plugin().pause_limit;
        Action::Wait(Waiting(Box::pin(async move {
            let _ = monoio::time::timeout(limit, p.resumed()).await;
        })))
    }

    /// Forgets a pause (continued, expired, or the request ended).
    fn unpause(&mut self) -> Option<Rc<Paused>> {
        let p = self.paused.take()?;
        if let Some(Ok(mut i)) = self.inst.as_ref().map(|i| i.try_borrow_mut()) {
            i.store.data_mut().paused.remove(&self.id);
        }
        Some(p)
    }

    fn wait(&mut self, c: Callout) -> Action {
        let slot: Slot = Rc::default();
        self.waiting = Some(slot.clone());
        let client = self.core.callouts.clone();
        Action::Wait(Waiting(Box::pin(async move {
            let token = c.token;
            let answer = match client {
                Some(cl) => cl.send(c).await.map_err(|e| {
                    tracing::debug!(target: "weir_wasm", error = %e, "plugin callout failed");
                }),
                None => Err(()),
            };
            *slot.borrow_mut() = Some((token, answer.ok()));
        })))
    }

    /// Runs a trailer callback with `trailers` as map `map` (1 or 3), moved in and back.
    fn trailer_callback(
        &mut self,
        ctx: &RequestCtx,
        map: i32,
        trailers: &mut Headers,
    ) -> Result<Outcome, Failure> {
        let fields = std::mem::take(trailers);
        let n = fields.len();
        let mut back = None;
        let out = self.callback(
            ctx,
            |ex| ex.trailers = Some(TrailerMap { map, fields }),
            |i, id| i.trailers(map == map::HTTP_REQUEST_TRAILERS, id, n),
            |ex| back = ex.trailers.take(),
        );
        if let Some(t) = back {
            *trailers = t.fields;
        }
        out
    }

    fn take_head(req: &mut RequestHead) -> ReqParts {
        ReqParts {
            method: std::mem::take(&mut req.method),
            target: std::mem::take(&mut req.target),
            host: std::mem::take(&mut req.host),
            headers: std::mem::take(&mut req.headers),
            changed: false,
        }
    }

    fn put_head(req: &mut RequestHead, p: Option<ReqParts>) {
        if let Some(p) = p {
            req.method = p.method;
            req.target = p.target;
            req.host = p.host;
            req.headers = p.headers;
        }
    }

    fn take_response_head(resp: &mut ResponseHead) -> RespParts {
        RespParts {
            status: resp.status,
            headers: std::mem::take(&mut resp.headers),
            changed: false,
        }
    }

    fn put_response_head(resp: &mut ResponseHead, p: Option<RespParts>) {
        if let Some(p) = p {
            resp.headers = p.headers;
            resp.status = p.status;
        }
    }
}

impl Filter for WasmFilter {
    fn on_request_headers(
        &mut self,
        ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        if self.done {
            return Ok(Action::Continue);
        }
        let parts = Self::take_head(req);
        let n = parts.headers.len() + 4;
        let end = req.body == BodyKind::Empty;
        let mut back = None;
        let out = self.callback(
            ctx,
            |ex| ex.req = Some(parts),
            |i, id| i.http(Phase::RequestHeaders, id, n, end),
            |ex| back = ex.req.take(),
        );
        Self::put_head(req, back);
        if !end && self.plugin().request_body_hold && matches!(out, Ok(Outcome::Pause)) {
            // `StopIteration` with a body to come (as Envoy): the body callbacks go on, and the
            // head goes upstream with the first bytes they pass (see `on_request_body_held`).
            return Ok(Action::Continue);
        }
        self.decide(out)
    }

    fn on_request_body(
        &mut self,
        ctx: &mut RequestCtx,
        chunk: &[u8],
        end: bool,
    ) -> Result<Action, ProxyError> {
        // A buffered body is shown whole in `on_request_body_whole` instead; a plugin without
        // the callback is not called.
        if self.done || self.plugin().buffer_request || !self.plugin().request_body {
            return Ok(Action::Continue);
        }
        let data = BytesMut::from(chunk);
        let n = data.len();
        let out = self.callback(
            ctx,
            |ex| ex.body = Some(body(buffer::HTTP_REQUEST_BODY, data, false)),
            |i, id| i.http(Phase::RequestBody, id, n, end),
            |_| {},
        );
        // A streamed chunk cannot wait: it is already on its way.
        self.decide_now(out)
    }

    fn on_request_body_held(
        &mut self,
        ctx: &mut RequestCtx,
        held: &mut BytesMut,
        end: bool,
        head: Option<&mut RequestHead>,
    ) -> Result<Flow, ProxyError> {
        if self.done {
            return Ok(Flow::Pass);
        }
        let out = self.held_callback(ctx, buffer::HTTP_REQUEST_BODY, (held, end), head, None);
        self.flow(out)
    }

    fn on_request_body_whole(
        &mut self,
        ctx: &mut RequestCtx,
        whole: &mut BytesMut,
    ) -> Result<Action, ProxyError> {
        if self.done || !self.plugin().buffer_request {
            return Ok(Action::Continue);
        }
        let data = std::mem::take(whole);
        let n = data.len();
        let mut back = None;
        let out = self.callback(
            ctx,
            |ex| ex.body = Some(body(buffer::HTTP_REQUEST_BODY, data, true)),
            |i, id| i.http(Phase::RequestBody, id, n, true),
            |ex| back = ex.body.take(),
        );
        if let Some(b) = back {
            *whole = b.data;
        }
        self.decide(out)
    }

    fn on_resume(
        &mut self,
        ctx: &mut RequestCtx,
        req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        if let Some(p) = self.unpause() {
            if p.is_resumed() {
                return Ok(Action::Continue);
            }
            let limit = self.plugin().pause_limit;
            tracing::warn!(
                target: "weir_wasm",
                plugin = %self.plugin().name,
                ?limit,
                "the plugin paused a request and did not continue it in time"
            );
            return Err(ProxyError::new(
                504,
                "plugin_pause_timeout",
                Side::Plugin,
                format!(
                    "plugin `{}` paused the request and did not continue it within {limit:?}",
                    self.plugin().name
                ),
            ));
        }
        let Some((token, answer)) = self.waiting.take().and_then(|s| s.borrow_mut().take()) else {
            return Ok(Action::Continue);
        };
        if self.done {
            return Ok(Action::Continue);
        }
        let (nh, nb) = answer
            .as_ref()
            .map_or((0, 0), |a| (a.headers.len(), a.body.len()));
        let parts = Self::take_head(req);
        let mut back = None;
        let out = self.callback(
            ctx,
            |ex| {
                ex.req = Some(parts);
                ex.answer = answer;
            },
            |i, id| {
                i.http_call_response(id, token, nh, nb)
                    .map(|_| action::CONTINUE)
            },
            |ex| back = ex.req.take(),
        );
        Self::put_head(req, back);
        // A plugin that neither answered nor continued in its callout handler is taken to
        // continue: nothing else could resume the request.
        self.decide(out)
    }

    fn on_response_headers(
        &mut self,
        ctx: &mut RequestCtx,
        resp: &mut ResponseHead,
    ) -> Result<Action, ProxyError> {
        if self.done {
            return Ok(Action::Continue);
        }
        let parts = Self::take_response_head(resp);
        let n = parts.headers.len() + 1;
        let end = resp.body == BodyKind::Empty;
        let mut back = None;
        let out = self.callback(
            ctx,
            |ex| ex.resp = Some(parts),
            |i, id| i.http(Phase::ResponseHeaders, id, n, end),
            |ex| back = ex.resp.take(),
        );
        Self::put_response_head(resp, back);
        self.decide_now(out)
    }

    fn on_response_body(
        &mut self,
        ctx: &mut RequestCtx,
        chunk: &[u8],
        end: bool,
    ) -> Result<(), ProxyError> {
        if self.done || self.plugin().buffer_response || !self.plugin().response_body {
            return Ok(());
        }
        let data = BytesMut::from(chunk);
        let n = data.len();
        let out = self.callback(
            ctx,
            |ex| ex.body = Some(body(buffer::HTTP_RESPONSE_BODY, data, false)),
            |i, id| i.http(Phase::ResponseBody, id, n, end),
            |_| {},
        );
        // The head is out: a local response cannot replace it any more; a failure closed ends
        // the stream.
        self.decide_now(out).map(|_| ())
    }

    fn on_response_body_held(
        &mut self,
        ctx: &mut RequestCtx,
        held: &mut BytesMut,
        end: bool,
        head: Option<&mut ResponseHead>,
    ) -> Result<Flow, ProxyError> {
        if self.done {
            return Ok(Flow::Pass);
        }
        let out = self.held_callback(ctx, buffer::HTTP_RESPONSE_BODY, (held, end), None, head);
        self.flow(out)
    }

    fn on_response_body_whole(
        &mut self,
        ctx: &mut RequestCtx,
        resp: &mut ResponseHead,
        whole: &mut BytesMut,
    ) -> Result<Action, ProxyError> {
        if self.done || !self.plugin().buffer_response {
            return Ok(Action::Continue);
        }
        let data = std::mem::take(whole);
        let n = data.len();
        let parts = Self::take_response_head(resp);
        let mut back = None;
        let mut head = None;
        let out = self.callback(
            ctx,
            |ex| {
                ex.body = Some(body(buffer::HTTP_RESPONSE_BODY, data, true));
                ex.resp = Some(parts);
            },
            |i, id| i.http(Phase::ResponseBody, id, n, true),
            |ex| {
                back = ex.body.take();
                head = ex.resp.take();
            },
        );
        if let Some(b) = back {
            *whole = b.data;
        }
        Self::put_response_head(resp, head);
        self.decide_now(out)
    }

    fn on_request_trailers(
        &mut self,
        ctx: &mut RequestCtx,
        trailers: &mut Headers,
    ) -> Result<Action, ProxyError> {
        if self.done || !self.plugin().request_trailers {
            return Ok(Action::Continue);
        }
        let out = self.trailer_callback(ctx, map::HTTP_REQUEST_TRAILERS, trailers);
        // The body is on its way: its end cannot wait.
        self.decide_now(out)
    }

    fn on_response_trailers(
        &mut self,
        ctx: &mut RequestCtx,
        trailers: &mut Headers,
    ) -> Result<(), ProxyError> {
        if self.done || !self.plugin().response_trailers {
            return Ok(());
        }
        let out = self.trailer_callback(ctx, map::HTTP_RESPONSE_TRAILERS, trailers);
        // As a body chunk: the head is out, a local response cannot replace it; a failure
        // closed aborts the response.
        self.decide_now(out).map(|_| ())
    }

    fn on_log(&mut self, ctx: &RequestCtx) {
        let Some(inst) = self.inst.take() else {
            return;
        };
        if self.done && inst.borrow().broken().is_some() {
            return;
        }
        let mut i = inst.borrow_mut();
        // Only a paused request has an entry (a hash and a probe per request saved otherwise).
        if self.paused.take().is_some() {
            i.store.data_mut().paused.remove(&self.id);
        }
        self.share_props(&mut i.store.data_mut().ex, ctx);
        let _ = i.finish(self.id);
        i.store.data_mut().ex.clear();
    }
}

impl Drop for WasmFilter {
    fn drop(&mut self) {
        // A request that never reached `on_log` (a panic elsewhere, a dropped future) still
        // frees its context in the plugin.
        if let Some(inst) = self.inst.take() {
            if let Ok(mut i) = inst.try_borrow_mut() {
                if self.paused.take().is_some() {
                    i.store.data_mut().paused.remove(&self.id);
                }
                if i.broken().is_none() {
                    let _ = i.finish(self.id);
                    i.store.data_mut().ex.clear();
                }
            }
        }
    }
}

fn body(kind: i32, data: BytesMut, writable: bool) -> BodyBuf {
    BodyBuf {
        kind,
        data,
        writable,
        changed: false,
    }
}
