//! The control daemon under test: `weir-control` on a config file in a temp dir, with its state
//! directory and admin socket there too; a raw HTTP/1.1 client over that Unix socket (what
//! `curl --unix-socket` does); and `weirctl` run against it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin_path, TempDir};

/// How long `weir-control` may take to answer on its socket (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Read timeout of an admin API call: above the longest `?wait=` the tests use.
const API_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a `weirctl` run may take before it is killed and the test fails.
const WEIRCTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `weir-control`, killed (SIGKILL) on drop.
///
/// Its temp dir holds `weir.yaml` (the config it was started with, and watches), `state/` (the
/// generations), `control.sock` (the admin API) and `daemon.log` (its stderr, appended across
/// restarts). Start a data plane on it with
/// [`GatewayBuilder::control`](crate::GatewayBuilder::control).
#[derive(Debug)]
pub struct ControlDaemon {
    child: Option<Child>,
    config: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl ControlDaemon {
    /// Writes `yaml` as the config file and starts
    /// `weir-control --config weir.yaml --socket control.sock --state-dir state`, then waits until
    /// `GET /v1/status` answers 200 on the socket; panics (with its log) if it does not.
    pub fn start(yaml: &str) -> ControlDaemon {
        let dir = TempDir::new("control");
        let mut d = ControlDaemon {
            child: None,
            config: dir.path().join("weir.yaml"),
            state: dir.path().join("state"),
            socket: dir.path().join("control.sock"),
            log: dir.path().join("daemon.log"),
            dir,
        };
        d.write_config(yaml);
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "weir-control is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log.display()));
        let child = Command::new(bin_path("weir-control"))
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--log-level", "info"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning weir-control: {e}"));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = self.try_api_raw("GET", "/v1/status", &[], b"") {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("weir-control exited with {st}:\n{}", self.log());
            }
            if start.elapsed() > START_TIMEOUT {
                self.kill9();
                panic!(
                    "weir-control did not answer on {} within {START_TIMEOUT:?}:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same config file, state directory and socket; stops it
    /// first (SIGTERM, then SIGKILL after 10 s) if it is still running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// SIGTERM and waits (at most 10 s, then SIGKILL) for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // `Child::kill` sends SIGKILL only; the daemon should get the chance to clean up.
        signal(child.id(), libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap: the daemon gets no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is running (started and not stopped or killed by the test).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The process id (0 when not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The admin API's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The config file the daemon was started with (and watches).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The state directory (`generations/` inside).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The daemon's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config file atomically (a rename). A running daemon notices the change
    /// within its watch interval (500 ms) and makes a new generation of a valid file.
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &self.config)
            .unwrap_or_else(|e| panic!("renaming to {}: {e}", self.config.display()));
    }

    /// Everything the daemon wrote on stderr, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    // === the admin API ===

    /// One admin API call on a fresh connection, like `curl --unix-socket`: `body` is sent as is
    /// (YAML or JSON: the daemon tells them apart). Returns the status and the body as JSON (a
    /// body that is not JSON comes back as a JSON string). Panics on an I/O error.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, raw) = self.api_raw(method, path, &[], body.unwrap_or("").as_bytes());
        let v = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        (status, v)
    }

    /// `GET path`, asserting a 200, as JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, v) = self.api("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// One request with extra header fields (e.g. `("Content-Type", "application/yaml")`);
    /// status and raw body. Panics on an I/O error.
    pub fn api_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        self.try_api_raw(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.socket.display()))
    }

    /// [`ControlDaemon::api_raw`], returning the I/O error (e.g. while the daemon is down).
    pub fn try_api_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        unix_request(&self.socket, method, path, headers, body)
    }

    /// The current generation (`GET /v1/status`).
    pub fn generation(&self) -> u64 {
        self.get_json("/v1/status")["generation"]
            .as_u64()
            .unwrap_or_else(|| panic!("/v1/status has no generation"))
    }

    /// The data planes the daemon knows (`GET /v1/planes`).
    pub fn planes(&self) -> Vec<Value> {
        self.get_json("/v1/planes")
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("/v1/planes is not an array"))
    }

    /// The entry of plane `plane_id` in `GET /v1/planes`, if listed.
    pub fn plane(&self, plane_id: &str) -> Option<Value> {
        self.planes()
            .into_iter()
            .find(|p| p["plane_id"] == plane_id)
    }

    /// Waits (at most `limit`) until plane `plane_id` is listed, connected, and runs generation
    /// `generation`; returns its entry. Panics with the planes and the log on time-out.
    pub fn wait_plane(&self, plane_id: &str, generation: u64, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            if let Ok((200, raw)) = self.try_api_raw("GET", "/v1/planes", &[], b"") {
                let planes: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                let found = planes.as_array().and_then(|ps| {
                    ps.iter()
                        .find(|p| {
                            p["plane_id"] == plane_id
                                && p["connected"] == true
                                && p["generation"] == generation
                        })
                        .cloned()
                });
                if let Some(p) = found {
                    return p;
                }
                if start.elapsed() > limit {
                    panic!(
                        "plane {plane_id} not connected on generation {generation} after \
                         {limit:?}: {planes:#}\n--- daemon log ---\n{}",
                        self.log()
                    );
                }
            } else if start.elapsed() > limit {
                panic!("the daemon does not answer:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // === weirctl ===

    /// Runs `weirctl --socket SOCKET ARGS...` to completion (at most 60 s) and returns its exit
    /// status, stdout and stderr.
    pub fn weirctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket".to_owned(), self.socket.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run_bounded(
            Command::new(bin_path("weirctl")).args(&all),
            WEIRCTL_TIMEOUT,
        )
    }
}

impl Drop for ControlDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; the pid is our own unreaped child.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Runs `cmd` (stdin closed) with stdout and stderr captured in files (no pipe to deadlock on);
/// after `limit` it is killed and this panics with what it printed.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let dir = TempDir::new("run");
    let out = dir.path().join("stdout");
    let err = dir.path().join("stderr");
    let create = |p: &Path| {
        std::fs::File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()))
    };
    let mut child = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(create(&out))
        .stderr(create(&err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&read(&out)),
                String::from_utf8_lossy(&read(&err))
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// One HTTP/1.1 request over a Unix socket (`Connection: close`), and the response's status and
/// body (by `Content-Length`, or until close).
fn unix_request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(API_TIMEOUT))?;
    s.set_write_timeout(Some(API_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut fields);
    let n = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response: {:?}", String::from_utf8_lossy(&raw)),
            ))
        }
    };
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let rest = &raw[n..];
    let body = match len {
        Some(l) if l <= rest.len() => rest[..l].to_vec(),
        Some(l) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body of {} bytes, content-length {l}", rest.len()),
            ))
        }
        None => rest.to_vec(),
    };
    Ok((resp.code.unwrap_or(0), body))
}
