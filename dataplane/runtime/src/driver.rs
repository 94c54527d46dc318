//! Building a monoio runtime on the chosen driver.

use std::future::Future;
use std::io;

use weir_config::Driver;

/// The driver a worker actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// io_uring.
    Uring,
    /// epoll.
    Epoll,
}

impl Chosen {
    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Chosen::Uring => "io_uring",
            Chosen::Epoll => "epoll",
        }
    }
}

const ENTRIES: u32 = 4096;

/// How the io_uring instance runs task work (completing a request in the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskRun {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (Linux 6.1): task work waits until the
    /// worker enters the kernel to collect completions, so it runs in one batch on the worker's
    /// own time and never interrupts it. The worker is the ring's only submitter, as required.
    Deferred,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19): task work runs on the worker's next
    /// transition to the kernel instead of through an inter-processor interrupt.
    Cooperative,
    /// The kernel's default: every completion may interrupt the worker to run its task work,
    /// which measured ≈40% more CPU per small request on a VM than epoll.
    Default,
}

/// Builds the io_uring runtime, trying the task-run modes from the cheapest down to the one every
/// kernel takes. Deferred task work measured 1-2% less CPU per request than cooperative (a TLS
/// handshake per request and a plain keep-alive proxy, `loadtest/ab.py`).
fn uring_rt() -> io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let mut refused = None;
    for mode in [TaskRun::Deferred, TaskRun::Cooperative, TaskRun::Default] {
        let mut urb = io_uring::IoUring::builder();
        match mode {
            TaskRun::Deferred => urb
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag(),
            TaskRun::Cooperative => urb.setup_coop_taskrun().setup_taskrun_flag(),
            TaskRun::Default => &mut urb,
        };
        let rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(urb)
            .with_entries(ENTRIES)
            .enable_timer()
            .build();
        match rt {
            Ok(rt) => {
                tracing::debug!(task_run = ?mode, "io_uring set up");
                return Ok(rt);
            }
            Err(e) => {
                tracing::debug!(task_run = ?mode, error = %e, "io_uring setup refused");
                refused = Some(e);
            }
        }
    }
    Err(refused.expect("at least one mode was tried"))
}

fn epoll_rt() -> io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .with_entries(ENTRIES)
        .enable_timer()
        .build()
}

/// Whether io_uring can be set up here (kernel support, seccomp, memlock).
pub fn uring_available() -> bool {
    io_uring::IoUring::new(8).is_ok()
}

/// Runs `fut` to completion on a runtime of the requested driver; `auto` prefers io_uring.
pub fn block_on<F: Future>(
    driver: Driver,
    make: impl FnOnce(Chosen) -> F,
) -> io::Result<F::Output> {
    let want_uring = match driver {
        Driver::Uring => true,
        Driver::Epoll => false,
        Driver::Auto => uring_available(),
    };
    if want_uring {
        match uring_rt() {
            Ok(mut rt) => return Ok(rt.block_on(make(Chosen::Uring))),
            Err(e) if driver == Driver::Uring => return Err(e),
            Err(e) => tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll"),
        }
    }
    let mut rt = epoll_rt()?;
    Ok(rt.block_on(make(Chosen::Epoll)))
}
