//! The WASI preview1 calls that modules built for `wasm32-wasip1` import (the Rust and C standard
//! libraries' start-up, printing, clocks and randomness). A plugin has no files, no environment
//! and no arguments: stdout and stderr go to the log, the rest answers `ENOSYS`/`EBADF`.

use wasmtime::{Caller, Linker};

use crate::memory::{read, write_at, write_u32};
use crate::state::HostState;

const MODULE: &str = "wasi_snapshot_preview1";
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EINVAL: i32 = 28;
/// Returned by every preview1 call not listed here.
pub const ENOSYS: i32 = 52;

/// The names defined here (others get an `ENOSYS` stub).
pub const DEFINED: [&str; 10] = [
    "fd_write",
    "clock_time_get",
    "random_get",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "proc_exit",
    "sched_yield",
    "fd_prestat_get",
];

/// Adds the preview1 calls to `linker`.
pub fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut c: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, written: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let Some(vec) = read(&mut c, iovs, n.saturating_mul(8)) else {
                return EINVAL;
            };
            let mut text = Vec::new();
            for iov in vec.chunks_exact(8) {
                let p = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let l = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                match read(&mut c, p, l) {
                    Some(b) => text.extend_from_slice(&b),
                    None => return EINVAL,
                }
            }
            let line = String::from_utf8_lossy(&text);
            let line = line.trim_end();
            let plugin = c.data().plugin.name.as_str();
            if fd == 2 {
                tracing::warn!(target: "weir_wasm", plugin, "{line}");
            } else {
                tracing::info!(target: "weir_wasm", plugin, "{line}");
            }
            if write_u32(&mut c, written, text.len() as u32) {
                ESUCCESS
            } else {
                EINVAL
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: Caller<'_, HostState>, id: i32, _precision: i64, out: i32| -> i32 {
            let ns = match id {
                // realtime
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0),
                // monotonic (and the CPU-time clocks, approximated by it)
                1..=3 => monotonic_ns(),
                _ => return EINVAL,
            };
            if write_at(&mut c, out, &ns.to_le_bytes()) {
                ESUCCESS
            } else {
                EINVAL
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: i32, len: i32| -> i32 {
            if !(0..=1 << 20).contains(&len) {
                return EINVAL;
            }
            let mut bytes = vec![0u8; len as usize];
            fastrand::fill(&mut bytes);
            if write_at(&mut c, buf, &bytes) {
                ESUCCESS
            } else {
                EINVAL
            }
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            MODULE,
            name,
            |mut c: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
                if write_u32(&mut c, count, 0) && write_u32(&mut c, size, 0) {
                    ESUCCESS
                } else {
                    EINVAL
                }
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(MODULE, name, |_: i32, _: i32| -> i32 { ESUCCESS })?;
    }
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the plugin called proc_exit({code})"
            )))
        },
    )?;
    linker.func_wrap(MODULE, "sched_yield", || -> i32 { ESUCCESS })?;
    // No preopened directories: start-up code stops asking at the first EBADF.
    linker.func_wrap(MODULE, "fd_prestat_get", |_: i32, _: i32| -> i32 { EBADF })?;
    Ok(())
}

fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}
