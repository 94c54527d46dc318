//! Test harness: the real `weir-control` binary in a temp dir, a raw HTTP client over its socket,
//! and a fake data plane that speaks the plane link.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_protocol::{read_frame, write_frame, DaemonMessage, PlaneMessage};

pub const BASE: &str = "\
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: api
        match:
          path: { prefix: /api }
        cluster: backend
      - name: fallback
        direct_response:
          status: 404
clusters:
  - name: backend
    endpoints: [\"127.0.0.1:9000\"]
";

/// `BASE` with the fallback answering `status` instead of 404.
pub fn variant(status: u16) -> String {
    BASE.replace("status: 404", &format!("status: {status}"))
}

/// A running `weir-control` with its own temp dir.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

impl Daemon {
    /// Writes `config` (if any) and starts the daemon on it with `args`.
    pub fn start(config: Option<&str>, args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            socket: dir.path().join("run/control.sock"),
            state: dir.path().join("state"),
            config: dir.path().join("weir.yaml"),
            args: args.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
        };
        if let Some(c) = config {
            std::fs::write(&d.config, c).expect("write config");
        }
        d.spawn(config.is_some());
        d
    }

    pub fn command(&self, with_config: bool) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir-control"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.args)
            .env("RUST_LOG", "weir_control=debug");
        if with_config {
            cmd.arg("--config").arg(&self.config);
        }
        cmd
    }

    pub fn spawn(&mut self, with_config: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log");
        let child = self
            .command(with_config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn weir-control");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                if let Ok((200, _)) = try_request(&self.socket, "GET", "/v1/status", None, b"") {
                    return;
                }
            }
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("weir-control exited with {st}:\n{}", self.log());
                }
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(st.success());
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = self.json("GET", path, None, "");
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn json(&self, method: &str, path: &str, ct: Option<&str>, body: &str) -> (u16, Value) {
        let (status, body) = request(&self.socket, method, path, ct, body.as_bytes());
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, v)
    }

    pub fn generation(&self) -> u64 {
        self.get("/v1/status")["generation"]
            .as_u64()
            .expect("generation")
    }

    /// Polls until `f` holds, for up to 10 s.
    pub fn until(&self, what: &str, mut f: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    try_request(socket, method, path, ct, body).expect("request")
}

/// One request on a fresh connection (`Connection: close`).
pub fn try_request(
    socket: &Path,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = ct {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// Parses one whole response; checks Content-Length.
pub fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(raw).expect("response parses") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("partial response: {}", String::from_utf8_lossy(raw)),
    };
    let len: usize = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .expect("utf8")
                .parse()
                .expect("len")
        })
        .expect("content-length");
    assert_eq!(raw.len() - n, len, "body length");
    (resp.code.expect("code"), raw[n..].to_vec())
}

/// A fake data plane on the plane link.
pub struct FakePlane {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl FakePlane {
    /// Attaches, sending Hello in the same write as the upgrade request (the daemon must keep
    /// bytes it read past the request head).
    pub fn attach(socket: &Path, plane_id: &str, generation: u64) -> FakePlane {
        let mut s = UnixStream::connect(socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut out = format!(
            "POST {} HTTP/1.1\r\nHost: weir-control\r\nUpgrade: {}\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
            weir_protocol::ATTACH_PATH,
            weir_protocol::UPGRADE
        )
        .into_bytes();
        write_frame(
            &mut out,
            &PlaneMessage::Hello {
                plane_id: plane_id.into(),
                pid: 4242,
                version: "test".into(),
                generation,
            },
        )
        .expect("hello");
        s.write_all(&out).expect("write");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
        }
        FakePlane { reader, writer: s }
    }

    /// The next frame that is not a ping.
    pub fn next_snapshot(&mut self) -> (u64, weir_config::Config) {
        loop {
            match read_frame::<_, DaemonMessage>(&mut self.reader).expect("frame") {
                DaemonMessage::Ping => self.send(&PlaneMessage::Pong),
                DaemonMessage::Snapshot { generation, config } => return (generation, *config),
            }
        }
    }

    pub fn send(&mut self, m: &PlaneMessage) {
        write_frame(&mut self.writer, m).expect("send");
    }

    /// Answers every snapshot in a thread: NACK when `nack(generation)` gives a reason, else ACK.
    pub fn answer_in_background(
        mut self,
        nack: impl Fn(u64) -> Option<String> + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || loop {
            let frame = match read_frame::<_, DaemonMessage>(&mut self.reader) {
                Ok(f) => f,
                Err(_) => return,
            };
            let answer = match frame {
                DaemonMessage::Ping => PlaneMessage::Pong,
                DaemonMessage::Snapshot { generation, .. } => match nack(generation) {
                    Some(reason) => PlaneMessage::Nack { generation, reason },
                    None => PlaneMessage::Ack { generation },
                },
            };
            if write_frame(&mut self.writer, &answer).is_err() {
                return;
            }
        })
    }
}
