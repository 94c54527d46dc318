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

/// io_uring set up with cooperative task running: without it every completion raises an
/// inter-processor interrupt to run task work, which measured ≈40% more CPU per small request on a
/// VM than epoll. `COOP_TASKRUN | TASKRUN_FLAG` needs Linux 5.19; older kernels fall back to
/// the default setup.
fn uring_rt(
    coop: bool,
) -> io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let mut urb = io_uring::IoUring::builder();
    if coop {
        urb.setup_coop_taskrun().setup_taskrun_flag();
    }
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .uring_builder(urb)
        .with_entries(ENTRIES)
        .enable_timer()
        .build()
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
        let rt = uring_rt(true).or_else(|e| {
            tracing::debug!(error = %e, "io_uring with COOP_TASKRUN refused; using default setup");
            uring_rt(false)
        });
        match rt {
            Ok(mut rt) => return Ok(rt.block_on(make(Chosen::Uring))),
            Err(e) if driver == Driver::Uring => return Err(e),
            Err(e) => tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll"),
        }
    }
    let mut rt = epoll_rt()?;
    Ok(rt.block_on(make(Chosen::Epoll)))
}
