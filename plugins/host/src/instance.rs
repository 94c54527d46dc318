//! One instance of a plugin on one core: its `Store`, the guest's exported callbacks, and the
//! guard around every call (epoch deadline, failure classification). A failed instance is marked
//! broken and never called again; its core makes a new one for the next request.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use wasmtime::{
    ExternType, Instance as WasmInstance, InstancePre, Linker, Store, Trap, TypedFunc, Val,
};

use crate::abi::Status;
use crate::error::{Error, Result};
use crate::metrics::{self, kind};
use crate::plugin::Plugin;
use crate::shared::Ready;
use crate::state::HostState;
use crate::{host, wasi};

/// A callback that failed: what kind (the `kind` label) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `trap`, `deadline`, `memory`, `abi` or `restart`.
    pub kind: &'static str,
    /// The message for the log.
    pub message: String,
}

/// `proxy_on_http_call_response(context, token, headers, body, trailers)`.
type CallResponseFn = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The guest's callbacks; optional ones may be missing (then they are not called).
struct Exports {
    context_create: TypedFunc<(i32, i32), ()>,
    vm_start: Option<TypedFunc<(i32, i32), i32>>,
    configure: Option<TypedFunc<(i32, i32), i32>>,
    tick: Option<TypedFunc<i32, ()>>,
    request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    done: Option<TypedFunc<i32, i32>>,
    log: Option<TypedFunc<i32, ()>>,
    delete: Option<TypedFunc<i32, ()>>,
    http_call_response: Option<CallResponseFn>,
    queue_ready: Option<TypedFunc<(i32, i32), ()>>,
}

/// What a core keeps to make instances of one plugin: the pre-linked module.
pub struct Template {
    pre: InstancePre<HostState>,
    plugin: Arc<Plugin>,
    worker: usize,
    /// The core's queue notices, shared by its successive instances.
    ready: Arc<Ready>,
}

impl Template {
    /// Links `plugin`'s imports for the instances of core `worker`.
    pub fn new(plugin: Arc<Plugin>, worker: usize) -> Result<Template> {
        let start = |m: String| Error::Start(plugin.name.clone(), m);
        let engine = crate::engine::engine()?;
        let mut linker: Linker<HostState> = Linker::new(engine);
        host::add(&mut linker).map_err(|e| start(format!("{e:#}")))?;
        wasi::add(&mut linker).map_err(|e| start(format!("{e:#}")))?;
        // Imports this host does not define: `proxy_*` ones answer Unimplemented, WASI ones
        // ENOSYS, anything else traps when called (and fails that request, not the worker).
        for imp in plugin.module.imports() {
            let ExternType::Func(ft) = imp.ty() else {
                return Err(start(format!(
                    "imports `{}.{}`, which is not a function",
                    imp.module(),
                    imp.name()
                )));
            };
            let known = match imp.module() {
                "env" => host::DEFINED.contains(&imp.name()),
                "wasi_snapshot_preview1" => wasi::DEFINED.contains(&imp.name()),
                _ => false,
            };
            if known {
                continue;
            }
            let answer = match imp.module() {
                "env" if imp.name().starts_with("proxy_") => Some(Status::Unimplemented.code()),
                "wasi_snapshot_preview1" => Some(wasi::ENOSYS),
                _ => None,
            };
            let returns_i32 = ft.results().len() == 1
                && matches!(ft.results().next(), Some(wasmtime::ValType::I32));
            let what = format!("{}.{}", imp.module(), imp.name());
            linker
                .func_new(
                    imp.module(),
                    imp.name(),
                    ft.clone(),
                    move |_, _, out| match (answer, returns_i32) {
                        (Some(code), true) => {
                            out[0] = Val::I32(code);
                            Ok(())
                        }
                        _ => Err(wasmtime::Error::msg(format!(
                            "the plugin called `{what}`, which this host does not provide"
                        ))),
                    },
                )
                .map_err(|e| start(format!("{e:#}")))?;
        }
        let pre = linker
            .instantiate_pre(&plugin.module)
            .map_err(|e| start(format!("{e:#}")))?;
        Ok(Template {
            pre,
            plugin,
            worker,
            ready: Arc::default(),
        })
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Where the queues registered by this core's instances report new items.
    pub fn ready(&self) -> &Arc<Ready> {
        &self.ready
    }

    /// A new, started instance: `_initialize`/`_start`, the root context, `proxy_on_vm_start`
    /// and `proxy_on_configure` (a `false` from either is an error).
    pub fn instantiate(&self) -> Result<Instance> {
        let name = self.plugin.name.clone();
        let start = |m: String| Error::Start(name.clone(), m);
        let engine = crate::engine::engine()?;
        let mut store = Store::new(
            engine,
            HostState::new(self.plugin.clone(), self.worker, self.ready.clone()),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.plugin.deadline_ticks);
        let inst = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| start(format!("instantiation: {e:#}")))?;
        let exports = bind(&inst, &mut store).map_err(|e| start(format!("{e:#}")))?;
        let memory = inst.get_memory(&mut store, "memory");
        let alloc = inst
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| inst.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|e| start(format!("allocator: {e:#}")))?;
        store.data_mut().memory = memory;
        store.data_mut().alloc = Some(Rc::new(alloc));
        let mut me = Instance {
            store,
            exports: Rc::new(exports),
            root: 1,
            next_id: 2,
            broken: None,
        };
        let fail = |f: Failure| start(format!("{}: {}", f.kind, f.message));
        for init in ["_initialize", "_start"] {
            if let Ok(f) = inst.get_typed_func::<(), ()>(&mut me.store, init) {
                me.guard(|s| f.call(s, ())).map_err(fail)?;
                break;
            }
        }
        let root = me.root;
        me.store.data_mut().contexts.insert(root);
        me.store.data_mut().effective = root;
        let e = Rc::clone(&me.exports);
        me.guard(|s| e.context_create.call(s, (root as i32, 0)))
            .map_err(fail)?;
        let vm_len = self.plugin.vm_config.len() as i32;
        if let Some(f) = &e.vm_start {
            if me
                .guard(|s| f.call(s, (root as i32, vm_len)))
                .map_err(fail)?
                == 0
            {
                return Err(start("proxy_on_vm_start returned false".into()));
            }
        }
        let cfg_len = self.plugin.config.len() as i32;
        if let Some(f) = &e.configure {
            if me
                .guard(|s| f.call(s, (root as i32, cfg_len)))
                .map_err(fail)?
                == 0
            {
                return Err(start(
                    "proxy_on_configure returned false (the plugin refused its config)".into(),
                ));
            }
        }
        Ok(me)
    }
}

fn bind(inst: &WasmInstance, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
    // A callback that is exported with the wrong signature is an error (not a missing callback).
    fn opt<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        inst: &WasmInstance,
        store: &mut Store<HostState>,
        name: &str,
    ) -> wasmtime::Result<Option<TypedFunc<P, R>>> {
        match inst.get_func(&mut *store, name) {
            None => Ok(None),
            Some(f) => f
                .typed::<P, R>(&*store)
                .map(Some)
                .map_err(|e| e.context(format!("export `{name}`"))),
        }
    }
    let context_create = opt(inst, store, "proxy_on_context_create")?
        .ok_or_else(|| wasmtime::Error::msg("no export `proxy_on_context_create`"))?;
    Ok(Exports {
        context_create,
        vm_start: opt(inst, store, "proxy_on_vm_start")?,
        configure: opt(inst, store, "proxy_on_configure")?,
        tick: opt(inst, store, "proxy_on_tick")?,
        request_headers: opt(inst, store, "proxy_on_request_headers")?,
        request_body: opt(inst, store, "proxy_on_request_body")?,
        response_headers: opt(inst, store, "proxy_on_response_headers")?,
        response_body: opt(inst, store, "proxy_on_response_body")?,
        request_trailers: opt(inst, store, "proxy_on_request_trailers")?,
        response_trailers: opt(inst, store, "proxy_on_response_trailers")?,
        done: opt(inst, store, "proxy_on_done")?,
        log: opt(inst, store, "proxy_on_log")?,
        delete: opt(inst, store, "proxy_on_delete")?,
        http_call_response: opt(inst, store, "proxy_on_http_call_response")?,
        queue_ready: opt(inst, store, "proxy_on_queue_ready")?,
    })
}

/// A running instance.
pub struct Instance {
    /// The store (its data is the host state).
    pub store: Store<HostState>,
    // Shared so a call borrows its function while the instance is borrowed mutably (cloning a
    // `TypedFunc` clones its registered type: an atomic count and a registry visit per call).
    exports: Rc<Exports>,
    root: u32,
    next_id: u32,
    broken: Option<Failure>,
}

/// The HTTP callbacks, by phase.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
}

impl Instance {
    /// Why it failed, if it did (a broken instance is not called again).
    pub fn broken(&self) -> Option<&Failure> {
        self.broken.as_ref()
    }

    /// Runs `f` under the callback deadline and turns what went wrong into a [`Failure`] (and the
    /// instance broken). An ABI misuse the host noticed fails the call even if the guest went on.
    fn guard<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        if let Some(b) = &self.broken {
            return Err(b.clone());
        }
        self.store
            .set_epoch_deadline(self.store.data().plugin.deadline_ticks);
        self.store.data_mut().misuse = None;
        let res = f(&mut self.store);
        let st = self.store.data_mut();
        let failure = match res {
            Ok(r) => match st.misuse.take() {
                None => return Ok(r),
                Some(m) => Failure {
                    kind: kind::ABI,
                    message: m,
                },
            },
            Err(e) => {
                let k = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    kind::DEADLINE
                } else if std::mem::take(&mut st.limiter.hit) {
                    kind::MEMORY
                } else if st.misuse.is_some() {
                    kind::ABI
                } else {
                    kind::TRAP
                };
                Failure {
                    kind: k,
                    message: format!("{e:#}"),
                }
            }
        };
        let name = &st.plugin.name;
        metrics::failures(name, failure.kind).fetch_add(1, Relaxed);
        tracing::warn!(
            target: "weir_wasm",
            plugin = %name,
            kind = failure.kind,
            error = %failure.message,
            "plugin failed; its instance on this core is replaced"
        );
        self.broken = Some(failure.clone());
        Err(failure)
    }

    /// A new HTTP context; its id.
    pub fn create_context(&mut self) -> Result<u32, Failure> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(2);
        let root = self.root as i32;
        let e = Rc::clone(&self.exports);
        self.store.data_mut().contexts.insert(id);
        self.guard(|s| e.context_create.call(s, (id as i32, root)))?;
        Ok(id)
    }

    /// Calls an HTTP callback; its `proxy_action_t`.
    pub fn http(&mut self, phase: Phase, id: u32, n: usize, end: bool) -> Result<i32, Failure> {
        let e = Rc::clone(&self.exports);
        let f = match phase {
            Phase::RequestHeaders => &e.request_headers,
            Phase::RequestBody => &e.request_body,
            Phase::ResponseHeaders => &e.response_headers,
            Phase::ResponseBody => &e.response_body,
        };
        let Some(f) = f else {
            return Ok(crate::abi::action::CONTINUE);
        };
        self.store.data_mut().effective = id;
        self.guard(|s| f.call(s, (id as i32, n as i32, i32::from(end))))
    }

    /// `proxy_on_request_trailers` (`request`) or `proxy_on_response_trailers`, with the number
    /// of fields; its `proxy_action_t`.
    pub fn trailers(&mut self, request: bool, id: u32, n: usize) -> Result<i32, Failure> {
        let e = Rc::clone(&self.exports);
        let f = if request {
            &e.request_trailers
        } else {
            &e.response_trailers
        };
        let Some(f) = f else {
            return Ok(crate::abi::action::CONTINUE);
        };
        self.store.data_mut().effective = id;
        self.guard(|s| f.call(s, (id as i32, n as i32)))
    }

    /// `proxy_on_http_call_response`.
    pub fn http_call_response(
        &mut self,
        id: u32,
        token: u32,
        headers: usize,
        body: usize,
    ) -> Result<(), Failure> {
        let e = Rc::clone(&self.exports);
        let Some(f) = &e.http_call_response else {
            return Ok(());
        };
        self.store.data_mut().effective = id;
        self.guard(|s| f.call(s, (id as i32, token as i32, headers as i32, body as i32, 0)))
    }

    /// The end of a context: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(&mut self, id: u32) -> Result<(), Failure> {
        self.store.data_mut().effective = id;
        let e = Rc::clone(&self.exports);
        if let Some(f) = &e.done {
            self.guard(|s| f.call(s, id as i32))?;
        }
        if let Some(f) = &e.log {
            self.guard(|s| f.call(s, id as i32))?;
        }
        let res = match &e.delete {
            Some(f) => self.guard(|s| f.call(s, id as i32)),
            None => Ok(()),
        };
        self.store.data_mut().contexts.remove(&id);
        res
    }

    /// `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), Failure> {
        let e = Rc::clone(&self.exports);
        let Some(f) = &e.tick else {
            return Ok(());
        };
        let root = self.root as i32;
        self.store.data_mut().effective = self.root;
        self.guard(|s| f.call(s, root))
    }

    /// `proxy_on_queue_ready` on the root context.
    pub fn queue_ready(&mut self, queue: u32) -> Result<(), Failure> {
        let e = Rc::clone(&self.exports);
        let Some(f) = &e.queue_ready else {
            return Ok(());
        };
        let root = self.root as i32;
        self.store.data_mut().effective = self.root;
        self.guard(|s| f.call(s, (root, queue as i32)))
    }

    /// The root context's id.
    pub fn root(&self) -> u32 {
        self.root
    }
}
