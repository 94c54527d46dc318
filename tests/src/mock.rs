//! The mock upstream: `weir-mock-llm` started on port 0, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::client::{Client, Response};
use crate::pki::TestPki;
use crate::util::{bin_path, TempDir};

/// How long the mock may take to print its address (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of a mock before it starts.
#[derive(Debug, Clone, Default)]
pub struct MockBuilder {
    id: Option<String>,
    workers: Option<usize>,
    tls: Option<(PathBuf, PathBuf)>,
}

impl MockBuilder {
    /// `--id NAME`: every response carries `x-mock-id: NAME`.
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    /// `--workers N` (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// `--tls-cert`/`--tls-key` with the server certificate of `pki`: the mock serves HTTPS
    /// only. [`MockUpstream::get`] and the helpers built on it speak plain HTTP, so a TLS mock is
    /// talked to through a gateway.
    pub fn tls(mut self, pki: &TestPki) -> Self {
        self.tls = Some((pki.server_cert(), pki.server_key()));
        self
    }

    /// `--tls-cert`/`--tls-key` with these files (another certificate of a [`TestPki`]).
    pub fn tls_files(mut self, cert: &std::path::Path, key: &std::path::Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Starts the mock and waits for its `listening ADDR` line; panics if it does not come.
    pub fn start(self) -> MockUpstream {
        let dir = TempDir::new("mock");
        let err_path = dir.path().join("stderr");
        let err_file = std::fs::File::create(&err_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", err_path.display()));
        let mut cmd = Command::new(bin_path("weir-mock-llm"));
        // The mock is the test peer, not the thing under test: epoll is enough and always there.
        cmd.args(["--listen", "127.0.0.1:0", "--driver", "epoll"]);
        cmd.args(["--workers", &self.workers.unwrap_or(1).to_string()]);
        if let Some(id) = &self.id {
            cmd.args(["--id", id]);
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning weir-mock-llm: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout pipe"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep the pipe open (and drained) as long as the mock lives.
            let mut sink = String::new();
            while r.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let addr: Option<SocketAddr> = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let status = child.wait();
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!("weir-mock-llm did not start (first line {line:?}, exit {status:?}): {err}");
        };
        MockUpstream {
            child,
            addr,
            id: self.id,
            _dir: dir,
        }
    }
}

/// A running `weir-mock-llm`, killed on drop.
#[derive(Debug)]
pub struct MockUpstream {
    child: Child,
    addr: SocketAddr,
    id: Option<String>,
    _dir: TempDir,
}

impl MockUpstream {
    /// Starts a mock without an id.
    pub fn start() -> MockUpstream {
        MockBuilder::default().start()
    }

    /// Starts a mock serving HTTPS with the server certificate of `pki` (see [`MockBuilder::tls`]).
    pub fn start_tls(pki: &TestPki) -> MockUpstream {
        MockBuilder::default().tls(pki).start()
    }

    /// A builder for a mock answering with `x-mock-id: NAME`: `MockUpstream::id("a").start()`.
    pub fn id(id: &str) -> MockBuilder {
        MockBuilder::default().id(id)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its address as a cluster endpoint: `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Its `--id`, if any.
    pub fn mock_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// `GET path` straight to the mock (not through the gateway).
    pub fn get(&self, path: &str) -> Response {
        Client::connect(self.addr).get(path)
    }

    /// `GET /stats`: `requests`, `connections_accepted`, `connections_open`, `sse_started`,
    /// `sse_completed`, `sse_aborted`.
    pub fn stats(&self) -> serde_json::Value {
        let r = self.get("/stats");
        assert_eq!(r.status(), 200, "mock /stats: {}", r.text());
        r.json()
    }

    /// One counter of [`MockUpstream::stats`].
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("mock /stats has no counter {name}"))
    }

    /// Makes the mock's `/healthz` answer `code` from now on (`POST /control/health/CODE`).
    pub fn set_health(&self, code: u16) {
        let mut c = Client::connect(self.addr);
        let r = c.request(
            format!(
                "POST /control/health/{code} HTTP/1.1\r\nHost: mock\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status(), 200, "setting the mock's health: {}", r.text());
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
