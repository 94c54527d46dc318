//! The one `Engine` of the process, the epoch ticker that bounds each callback's CPU time, and the
//! on-disk cache of compiled modules.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use crate::error::{Error, Result};

/// How often the epoch moves on: the granularity of a callback's deadline. Each tick wakes the
/// ticker thread, which on a busy core preempts a worker (two context switches): at 2 ms that
/// was about 500 preemptions a second on every core running a plugin; at 10 ms a deadline (100 ms
/// by default) is still kept within a tenth.
pub const TICK: Duration = Duration::from_millis(10);

/// Most instances alive at once in the process (every plugin on every core, over the generations
/// still finishing requests, and the ones being recreated). Each reserves address space only.
const MAX_INSTANCES: u32 = 512;

/// Largest linear memory any plugin may be given (`max_memory` is checked against it).
pub const MAX_MEMORY: u64 = 4 << 30;

static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();

/// The process's engine, made on first use together with its epoch ticker thread.
pub fn engine() -> Result<&'static Engine> {
    ENGINE
        .get_or_init(|| {
            let mut cfg = Config::new();
            cfg.epoch_interruption(true);
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(MAX_INSTANCES)
                .total_memories(MAX_INSTANCES)
                .total_tables(MAX_INSTANCES)
                .max_memory_size(MAX_MEMORY as usize)
                .table_elements(100_000);
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            let engine = match Engine::new(&cfg) {
                Ok(e) => e,
                Err(e) => {
                    // The pool reserves address space for every instance up front, which a
                    // limit on virtual memory (`ulimit -v`, strict overcommit, valgrind) can
                    // refuse. Instances are then mapped one by one when made: slower to
                    // (re)create, the same per request, and each still capped by `max_memory`.
                    tracing::warn!(target: "weir_wasm", error = %format!("{e:#}"),
                        "the Wasm instance pool could not be reserved; instances are allocated on demand");
                    cfg.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    Engine::new(&cfg).map_err(|e| e.to_string())?
                }
            };
            let weak = engine.weak();
            std::thread::Builder::new()
                .name("weir-wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| Error::Engine(e.clone()))
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Where compiled modules are kept: `$WEIR_WASM_CACHE`, else `$XDG_CACHE_HOME/weir/wasm`, else
/// `/tmp/weir-wasm-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEIR_WASM_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if !x.is_empty() => PathBuf::from(x).join("weir").join("wasm"),
        _ => PathBuf::from("/tmp/weir-wasm-cache"),
    }
}

/// Compiles `bytes`, or loads the compiled form from `cache` (keyed by their SHA-256 and the
/// engine's compatibility hash). A cache that cannot be read or written only costs a compile.
pub fn load(bytes: &[u8], sha: &str, cache: Option<&Path>) -> Result<Module> {
    let engine = engine()?;
    let path = cache.map(|d| {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        let compat = std::hash::Hasher::finish(&h);
        d.join(format!("{sha}-{compat:016x}.cwasm"))
    });
    if let Some(p) = &path {
        if let Ok(data) = std::fs::read(p) {
            if let Some(m) = deserialize(engine, &data) {
                return Ok(m);
            }
        }
    }
    let module = Module::new(engine, bytes).map_err(|e| Error::Compile(format!("{e:#}")))?;
    if let (Some(p), Ok(data)) = (&path, module.serialize()) {
        // Written whole under a temporary name, then renamed: a reader never sees half a file.
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &data).is_ok() {
            let _ = std::fs::rename(&tmp, p);
        }
    }
    Ok(module)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, data: &[u8]) -> Option<Module> {
    // SAFETY: `Module::deserialize` runs the machine code in `data` without verifying it. The file
    // was written by `load` above from `Module::serialize`, under a name made of the SHA-256 of
    // the source module and the engine's compatibility hash, in a directory the operator gives
    // the gateway (the same trust as the gateway's own binary); wasmtime still checks its header
    // (version, target, settings) and refuses a mismatched file, which we then recompile.
    unsafe { Module::deserialize(engine, data) }.ok()
}
