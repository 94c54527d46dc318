//! Helpers shared by the harness and the tests: finding the binaries, the driver switch, temporary
//! directories, bounded waiting, metrics parsing, descriptor limits and test data.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// === binaries ===

/// The path of a workspace binary (`weir`, `weir-mock-llm`, `weir-control`, `weirctl`): `$WEIR_BIN`
/// / `$WEIR_MOCK_BIN` / `$WEIR_CONTROL_BIN` / `$WEIRCTL_BIN` when set, else the target directory of the running test executable. Panics with the command to run
/// when the binary is missing.
pub fn bin_path(name: &str) -> PathBuf {
    let var = match name {
        "weir" => "WEIR_BIN",
        "weir-mock-llm" => "WEIR_MOCK_BIN",
        "weir-control" => "WEIR_CONTROL_BIN",
        "weirctl" => "WEIRCTL_BIN",
        _ => "",
    };
    if let Some(p) = std::env::var_os(var).filter(|_| !var.is_empty()) {
        return PathBuf::from(p);
    }
    // target/debug/deps/proxy-0123abcd → target/debug/NAME
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "the `{name}` binary was not found at {}: build the binaries first with \
             `cargo build --workspace --bins` (same profile as the tests), or point ${var} at it",
            path.display()
        );
    }
    path
}

// === drivers ===

/// The monoio driver the gateway runs on (`weir --driver ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The epoll ("legacy") driver: always available.
    Epoll,
    /// The io_uring driver: needs a kernel and a sandbox that allow io_uring.
    Uring,
}

impl Driver {
    /// The `--driver` argument.
    pub fn as_arg(self) -> &'static str {
        match self {
            Driver::Epoll => "epoll",
            Driver::Uring => "uring",
        }
    }

    /// Whether the gateway can run on this driver here. For io_uring this is probed once per test
    /// binary: `/proc/sys/kernel/io_uring_disabled` first, then a real `weir --driver uring` start.
    /// `WEIR_TESTS_URING=0` forces it off.
    pub fn available(self) -> bool {
        match self {
            Driver::Epoll => true,
            Driver::Uring => *URING.get_or_init(probe_uring),
        }
    }

    /// For the io_uring half of [`both_drivers!`](crate::both_drivers): prints a note and returns
    /// `true` when the driver is not available.
    pub fn skip_if_unavailable(self, test: &str) -> bool {
        if self.available() {
            return false;
        }
        eprintln!("note: skipping {test}: io_uring is not available on this machine");
        true
    }
}

static URING: OnceLock<bool> = OnceLock::new();

fn probe_uring() -> bool {
    if std::env::var("WEIR_TESTS_URING").is_ok_and(|v| v == "0") {
        eprintln!("note: io_uring tests turned off by WEIR_TESTS_URING=0");
        return false;
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            eprintln!("note: io_uring is disabled by /proc/sys/kernel/io_uring_disabled = 2");
            return false;
        }
    }
    let started = crate::Gateway::new()
        .driver(Driver::Uring)
        .access_log(false)
        .route("{ name: probe, direct_response: { status: 200, body: probe } }")
        .try_start();
    match started {
        Ok(_) => true,
        Err(e) => {
            let text = e.stderr.to_ascii_lowercase();
            if text.contains("uring") || text.contains("runtime") || text.contains("not permitted")
            {
                eprintln!(
                    "note: weir cannot start on io_uring here: {}",
                    e.stderr.trim()
                );
                false
            } else {
                // Some other failure: let the io_uring tests run and show it.
                true
            }
        }
    }
}

// === temporary directories ===

/// A fresh directory under the system temp dir, removed on drop (kept when `WEIR_TESTS_KEEP` is
/// set, for debugging).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `weir-tests-PID-N-NANOS` in the temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "weir-tests-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("WEIR_TESTS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// === waiting ===

/// Calls `check` every `every` until it returns `Some`, for at most `limit`; panics naming `what`
/// when time runs out. Every wait in the suite is bounded this way.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

// === sockets ===

/// A loopback address nothing listens on: a port that was bound and closed again (a connect to it
/// is refused at once).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"));
    drop(l);
    addr
}

/// Raises the soft `RLIMIT_NOFILE` of this process (and so of the processes it starts afterwards)
/// to `want`, or to the hard limit if that is lower. Returns the soft limit now in force.
#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux x86_64, not on every target
pub fn raise_nofile_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let target = want.min(lim.rlim_max as u64);
    if (lim.rlim_cur as u64) < target {
        let new = libc::rlimit {
            rlim_cur: target as libc::rlim_t,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit struct through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return target;
        }
    }
    lim.rlim_cur as u64
}

// === processes that are not our children ===

/// The pids of the live processes whose parent is `pid` (from `/proc/*/stat`).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| proc_stat(*p).is_some_and(|(state, ppid)| ppid == pid && state != 'Z'))
        .collect()
}

/// State letter and parent pid of `pid`, from `/proc/PID/stat` (the command name in parentheses
/// may itself contain spaces and parentheses: the fields are read after the last `)`).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The command line of `pid` (`/proc/PID/cmdline`), arguments joined with spaces; `None` when
/// the process is gone.
pub fn proc_cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// A process the test did not spawn itself (e.g. the successor a `weir` starts on `SIGUSR2`),
/// SIGKILLed on drop — but only while its command line still contains `marker` (a path unique to
/// the test), so a recycled pid is never hit.
#[derive(Debug)]
pub struct ProcessGuard {
    pid: u32,
    marker: String,
}

impl ProcessGuard {
    /// Guards `pid`, identified by `marker` in its command line.
    pub fn new(pid: u32, marker: &str) -> ProcessGuard {
        ProcessGuard {
            pid,
            marker: marker.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs (and is still the process we mean).
    pub fn running(&self) -> bool {
        pid_running(self.pid) && proc_cmdline(self.pid).is_some_and(|c| c.contains(&self.marker))
    }

    /// Sends `sig` if it still runs; returns whether it was sent.
    #[allow(unsafe_code)]
    pub fn signal(&self, sig: libc::c_int) -> bool {
        if !self.running() {
            return false;
        }
        // SAFETY: kill(2) takes plain integers; the pid was checked just above to still be the
        // process we mean (its command line carries the test's unique marker).
        unsafe { libc::kill(self.pid as libc::pid_t, sig) == 0 }
    }

    /// SIGKILL, then waits (at most 5 s) until it is gone or a zombie (another process reaps it).
    pub fn kill(&self) {
        if self.signal(libc::SIGKILL) {
            let start = Instant::now();
            while pid_running(self.pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

// === metrics ===

/// The value of the first sample of metric `name` whose labels include every `(key, value)` of
/// `labels`, in Prometheus text exposition `text`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
                let end = r.find('}')?;
                (&r[..end], r[end + 1..].trim())
            } else if rest.starts_with(' ') {
                ("", rest.trim())
            } else {
                return None; // a longer metric name with this prefix
            };
            let all = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if !all {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
}

// === data ===

/// The body of the mock's `/bytes/N` and `/chunked/N`: byte `k` is `b'a' + k % 26`.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|k| b'a' + (k % 26) as u8).collect()
}

/// `len` pseudo-random bytes from `seed` (xorshift; reproducible, all byte values).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
