//! The gateway under test: a YAML config written to a temp dir, `weir --config` started on it,
//! killed on drop.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, Response};
use crate::control::ControlDaemon;
use crate::util::{bin_path, Driver, TempDir};

/// How long `weir` may take to say it is ready (a debug build on a busy two-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The builder of a [`Gateway`]: `Gateway::new().driver(d).cluster("mock", &[addr]).route(yaml).start()`.
///
/// The config it writes:
///
/// ```yaml
/// admin: { address: "127.0.0.1:0" }
/// access_log: { enabled: true }     # .access_log(false) turns it off
/// # .top_yaml(...) lines go here (limits, shutdown, ...)
/// listeners:
///   - name: main
///     address: "127.0.0.1:0"
///     # .listener_yaml(...) lines go here (timeouts, ...)
///     routes:
///       - # each .route(...), in order
/// clusters:
///   - # each .cluster(...) / .cluster_yaml(...)
/// ```
///
/// `--workers` and `--driver` go on the command line. [`GatewayBuilder::raw_yaml`] replaces the
/// whole file by the given text (the addresses are still read from what `weir` prints).
///
/// **Control mode.** [`GatewayBuilder::control`] starts `weir --control SOCKET --plane-state DIR`
/// instead: the config comes from a [`ControlDaemon`], and the builder's YAML is not used by the
/// plane (write it to the daemon: `ControlDaemon::start(&builder.yaml())`; its port-0 addresses
/// are what `weir` prints once it binds them). Readiness is the same: the `weir: ready` line,
/// then `/healthz/ready` on the admin address printed.
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    driver: Driver,
    workers: usize,
    access_log: bool,
    top: Vec<String>,
    listener: Vec<String>,
    routes: Vec<String>,
    clusters: Vec<String>,
    raw: Option<String>,
    extra_listeners: Vec<String>,
    args: Vec<String>,
    control: Option<(PathBuf, PathBuf)>,
    plane_state: Option<PathBuf>,
    plane_id: Option<String>,
    upgrade_socket: Option<PathBuf>,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
}

/// Removes the common indentation of `text` and drops blank leading/trailing lines, so tests can
/// write indented raw strings.
fn dedent(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            if l.len() >= indent {
                l[indent..].trim_end().to_owned()
            } else {
                String::new()
            }
        })
        .collect();
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// `text` as one YAML sequence item at `indent` spaces.
fn push_item(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    for (i, line) in dedent(text).iter().enumerate() {
        let lead = if i == 0 { "- " } else { "  " };
        let _ = writeln!(out, "{pad}{lead}{line}");
    }
}

/// `text` as mapping lines at `indent` spaces.
fn push_block(out: &mut String, indent: usize, text: &str) {
    let pad = " ".repeat(indent);
    for line in dedent(text) {
        let _ = writeln!(out, "{pad}{line}");
    }
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        GatewayBuilder {
            driver: Driver::Epoll,
            workers: 1,
            access_log: true,
            top: Vec::new(),
            listener: Vec::new(),
            routes: Vec::new(),
            clusters: Vec::new(),
            raw: None,
            extra_listeners: Vec::new(),
            args: Vec::new(),
            control: None,
            plane_state: None,
            plane_id: None,
            upgrade_socket: None,
            env: Vec::new(),
            wrapper: Vec::new(),
        }
    }
}

impl GatewayBuilder {
    /// The I/O driver (default epoll).
    pub fn driver(mut self, d: Driver) -> Self {
        self.driver = d;
        self
    }

    /// Worker threads (default 1: load-balancing tests stay deterministic per core).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The access log on stdout (default on).
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// A cluster of plain endpoints with default settings: `{ name, endpoints: [...] }`.
    pub fn cluster<S: AsRef<str>>(mut self, name: &str, endpoints: &[S]) -> Self {
        let eps: Vec<String> = endpoints
            .iter()
            .map(|e| format!("\"{}\"", e.as_ref()))
            .collect();
        self.clusters.push(format!(
            "{{ name: {name}, endpoints: [{}] }}",
            eps.join(", ")
        ));
        self
    }

    /// A cluster given as YAML (one mapping, block or flow style).
    pub fn cluster_yaml(mut self, yaml: &str) -> Self {
        self.clusters.push(yaml.to_owned());
        self
    }

    /// A route of the listener `main`, as YAML (one mapping, block or flow style); routes are
    /// tried in the order they were added.
    pub fn route(mut self, yaml: &str) -> Self {
        self.routes.push(yaml.to_owned());
        self
    }

    /// Extra top-level YAML (e.g. `limits: { max_header_count: 20 }`).
    pub fn top_yaml(mut self, yaml: &str) -> Self {
        self.top.push(yaml.to_owned());
        self
    }

    /// Extra keys of the listener `main` (e.g. `timeouts: { idle: 2s }`).
    pub fn listener_yaml(mut self, yaml: &str) -> Self {
        self.listener.push(yaml.to_owned());
        self
    }

    /// Another listener after `main`, as YAML (one mapping with `name`, `address`, `routes`).
    pub fn extra_listener(mut self, yaml: &str) -> Self {
        self.extra_listeners.push(yaml.to_owned());
        self
    }

    /// Control mode: `weir --control SOCKET` on `daemon`'s admin socket instead of `--config`
    /// (see the type's docs). [`Gateway::config_path`] is then the daemon's config file.
    pub fn control(mut self, daemon: &ControlDaemon) -> Self {
        self.control = Some((
            daemon.socket().to_path_buf(),
            daemon.config_path().to_path_buf(),
        ));
        self
    }

    /// `--plane-state DIR` (control mode): where the plane keeps its last good snapshot. Default:
    /// `plane/` in the gateway's own temp dir; give a directory the test owns to start a second
    /// plane from the first one's snapshot.
    pub fn plane_state(mut self, dir: &Path) -> Self {
        self.plane_state = Some(dir.to_path_buf());
        self
    }

    /// `--plane-id ID` (control mode): the plane's name in `weirctl planes`.
    pub fn plane_id(mut self, id: &str) -> Self {
        self.plane_id = Some(id.to_owned());
        self
    }

    /// `--upgrade-socket PATH`: where the process hands its listening sockets to a successor
    /// (binary upgrade on `SIGUSR2`, [`Gateway::sigusr2`]).
    pub fn upgrade_socket(mut self, path: &Path) -> Self {
        self.upgrade_socket = Some(path.to_path_buf());
        self
    }

    /// Uses `yaml` as the whole config file, ignoring routes, clusters and the other YAML parts.
    pub fn raw_yaml(mut self, yaml: &str) -> Self {
        self.raw = Some(yaml.to_owned());
        self
    }

    /// An environment variable for `weir` (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs `weir` through a command that execs it (`prlimit --as=N`, say).
    pub fn wrapper(mut self, argv: &[&str]) -> Self {
        self.wrapper = argv.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Adds a command-line argument for `weir`.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    /// The config file this builder writes.
    pub fn yaml(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut y = String::new();
        y.push_str("admin: { address: \"127.0.0.1:0\" }\n");
        let _ = writeln!(y, "access_log: {{ enabled: {} }}", self.access_log);
        for t in &self.top {
            push_block(&mut y, 0, t);
        }
        y.push_str("listeners:\n  - name: main\n    address: \"127.0.0.1:0\"\n");
        for l in &self.listener {
            push_block(&mut y, 4, l);
        }
        if self.routes.is_empty() {
            y.push_str("    routes: []\n");
        } else {
            y.push_str("    routes:\n");
            for r in &self.routes {
                push_item(&mut y, 6, r);
            }
        }
        for l in &self.extra_listeners {
            push_item(&mut y, 2, l);
        }
        if self.clusters.is_empty() {
            y.push_str("clusters: []\n");
        } else {
            y.push_str("clusters:\n");
            for c in &self.clusters {
                push_item(&mut y, 2, c);
            }
        }
        y
    }

    /// Starts the gateway and waits until it is ready; panics (with its stderr) if it is not.
    pub fn start(self) -> Gateway {
        match self.try_start() {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the gateway; `Err` with its exit status and stderr when it exits or never gets
    /// ready.
    pub fn try_start(self) -> Result<Gateway, StartError> {
        let dir = TempDir::new("gw");
        let (config, yaml, mode_args): (PathBuf, String, Vec<std::ffi::OsString>) =
            match &self.control {
                None => {
                    let config = dir.path().join("weir.yaml");
                    let yaml = self.yaml();
                    write_atomic(&config, &yaml);
                    (config.clone(), yaml, vec!["--config".into(), config.into()])
                }
                Some((socket, daemon_config)) => {
                    let state = self
                        .plane_state
                        .clone()
                        .unwrap_or_else(|| dir.path().join("plane"));
                    let mut a: Vec<std::ffi::OsString> = vec![
                        "--control".into(),
                        socket.into(),
                        "--plane-state".into(),
                        state.into(),
                    ];
                    if let Some(id) = &self.plane_id {
                        a.extend(["--plane-id".into(), id.into()]);
                    }
                    let yaml = format!(
                        "# control mode; the daemon's config file now:\n{}",
                        std::fs::read_to_string(daemon_config).unwrap_or_default()
                    );
                    (daemon_config.clone(), yaml, a)
                }
            };
        let mut mode_args = mode_args;
        if let Some(p) = &self.upgrade_socket {
            mode_args.extend(["--upgrade-socket".into(), p.into()]);
        }
        let stdout = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");
        let open = |p: &Path| {
            std::fs::File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()))
        };
        // A wrapper execs `weir` (`prlimit ...`), so the pid stays the gateway's.
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(bin_path("weir"));
                c
            }
            None => Command::new(bin_path("weir")),
        };
        let child = cmd
            .args(&mode_args)
            .args([
                "--workers",
                &self.workers.to_string(),
                "--driver",
                self.driver.as_arg(),
            ])
            .args(["--log-level", "info"])
            .args(&self.args)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning weir: {e}"));
        let mut gw = Gateway {
            child: Some(child),
            driver: self.driver,
            listeners: Vec::new(),
            admin: None,
            config,
            stdout,
            stderr,
            _dir: dir,
        };
        gw.wait_ready(&yaml)?;
        Ok(gw)
    }
}

/// Writes `text` to `path` by a rename, so a reload never reads a half-written file.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
}

/// Why a gateway did not start.
#[derive(Debug)]
pub struct StartError {
    /// Its exit status, if it exited.
    pub status: Option<ExitStatus>,
    /// What it wrote on stderr.
    pub stderr: String,
    /// The config it was given.
    pub config: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "weir did not start (exit {:?})\n--- stderr ---\n{}\n--- config ---\n{}",
            self.status, self.stderr, self.config
        )
    }
}

/// A running `weir`, killed (SIGKILL) on drop unless it was stopped.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    driver: Driver,
    listeners: Vec<(String, SocketAddr)>,
    admin: Option<SocketAddr>,
    config: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

impl Gateway {
    /// A builder with the defaults: epoll, one worker, access log on, no routes.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    fn wait_ready(&mut self, yaml: &str) -> Result<(), StartError> {
        let start = Instant::now();
        let fail = |gw: &mut Gateway, status: Option<ExitStatus>| StartError {
            status,
            stderr: gw.stderr(),
            config: yaml.to_owned(),
        };
        loop {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(st) = status {
                self.child = None;
                return Err(fail(self, Some(st)));
            }
            let err = self.stderr();
            if let Some(ready) = err.lines().find(|l| l.starts_with("weir: ready")) {
                // `--driver uring` must not quietly run on epoll: the io_uring half of the suite
                // would test nothing new.
                let want = match self.driver {
                    Driver::Epoll => "epoll",
                    Driver::Uring => "io_uring",
                };
                if !ready.trim_end().ends_with(want) {
                    return Err(StartError {
                        status: None,
                        stderr: format!("asked for driver {want}, got: {ready}\n{err}"),
                        config: yaml.to_owned(),
                    });
                }
                for line in err.lines() {
                    if let Some(rest) = line.strip_prefix("weir: listener ") {
                        if let Some((name, addr)) = rest.split_once(" on ") {
                            if let Ok(a) = addr.trim().parse() {
                                self.listeners.push((name.to_owned(), a));
                            }
                        }
                    } else if let Some(a) = line.strip_prefix("weir: admin on ") {
                        self.admin = a.trim().parse().ok();
                    }
                }
                break;
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(fail(self, None));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(admin) = self.admin {
            loop {
                let ok = Client::try_connect(admin).ok().and_then(|mut c| {
                    c.try_send(b"GET /healthz/ready HTTP/1.1\r\nHost: admin\r\n\r\n")
                        .ok()?;
                    c.try_read_response().ok()
                });
                if ok.is_some_and(|r| r.status() == 200) {
                    break;
                }
                if start.elapsed() > START_TIMEOUT {
                    return Err(fail(self, None));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The driver it runs on.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map(|l| l.1)
            .unwrap_or_else(|| panic!("the gateway printed no listener address"))
    }

    /// The address of listener `name`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.0 == name)
            .map(|l| l.1)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", self.listeners))
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .unwrap_or_else(|| panic!("the gateway printed no admin address"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// A new client connection to the first listener.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }

    /// `GET path` on a new connection.
    pub fn get(&self, path: &str) -> Response {
        self.connect().get(path)
    }

    /// Sends `raw` on a new connection and reads the response.
    pub fn request(&self, raw: &[u8]) -> Response {
        self.connect().request(raw)
    }

    /// `GET path` on the admin listener.
    pub fn admin_get(&self, path: &str) -> Response {
        Client::connect(self.admin_addr()).get(path)
    }

    /// The text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        let r = self.admin_get("/metrics");
        assert_eq!(r.status(), 200, "/metrics: {}", r.text());
        r.text()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The access log lines written so far (stdout), parsed as JSON; panics on a line that is
    /// not JSON. The gateway flushes its log buffers every 100 ms: use
    /// [`Gateway::wait_access_log`] to wait for lines.
    pub fn access_log_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            // A line being written may be incomplete: only whole lines count.
            .filter(|l| l.ends_with('}'))
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits (at most `limit`) until at least `n` access log lines pass `keep`, and returns those.
    pub fn wait_access_log(
        &self,
        n: usize,
        limit: Duration,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        crate::util::wait_until(
            &format!("{n} access log lines"),
            limit,
            Duration::from_millis(50),
            || {
                let lines: Vec<_> = self
                    .access_log_lines()
                    .into_iter()
                    .filter(|l| keep(l))
                    .collect();
                (lines.len() >= n).then_some(lines)
            },
        )
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the config file (atomically); send [`Gateway::sighup`] to apply it. In control
    /// mode this is the daemon's config file, which the daemon watches by itself.
    pub fn write_config(&self, yaml: &str) {
        write_atomic(&self.config, yaml);
    }

    /// The config file's text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap_or_default()
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid();
        assert!(pid != 0, "the gateway is not running");
        // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped (we hold
        // its `Child`), so it cannot have been recycled for another process.
        let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({pid}, {sig}) failed");
    }

    /// Sends SIGHUP (reload the config file; in control mode: re-attach to the daemon).
    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends SIGUSR2: with `--upgrade-socket`, start a successor (`--takeover`) that takes the
    /// listening sockets over; this process then drains and exits. The successor is this
    /// process's child, not the test's: find it with [`child_pids`](crate::child_pids) and guard
    /// it with a [`ProcessGuard`](crate::ProcessGuard).
    pub fn sigusr2(&self) {
        self.signal(libc::SIGUSR2);
    }

    /// Sends SIGTERM (drain and exit) without waiting.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits at most `limit` for the exit; panics (and kills) if it does not come.
    pub fn stop_graceful(&mut self, limit: Duration) -> ExitStatus {
        self.sigterm();
        match self.wait_exit(limit) {
            Some(st) => st,
            None => {
                let err = self.stderr();
                self.kill();
                panic!("weir did not exit within {limit:?} of SIGTERM; stderr:\n{err}");
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
