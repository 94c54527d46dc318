//! The real `weirctl` binary against a daemon started in-process from the `weir_control` library
//! (the daemon's own tests run its binary; here the daemon is only the counterpart).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_control::{Daemon, Options, Timing};
use weir_protocol::{read_frame, write_frame, DaemonMessage, PlaneMessage};

const BASE: &str = "\
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

struct Env {
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("weir.yaml");
        std::fs::write(&config, BASE).expect("write");
        let mut opts = Options::new(Some(config));
        opts.socket = dir.path().join("run/control.sock");
        opts.state_dir = dir.path().join("state");
        opts.watch_interval = Duration::from_secs(3600);
        opts.timing = Timing::default();
        let daemon = Daemon::start(opts).expect("daemon");
        Env { dir, daemon }
    }

    fn socket(&self) -> PathBuf {
        self.daemon.socket().to_path_buf()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_weirctl"))
            .env("WEIR_CONTROL_SOCKET", self.socket())
            .args(args)
            .output()
            .expect("run weirctl")
    }

    /// Runs weirctl, expects exit code `code`, returns stdout.
    fn ok(&self, code: i32, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "weirctl {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    fn generation(&self) -> u64 {
        self.daemon.shared().current().meta.generation
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.daemon.stop();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn apply_status_history_diff_rollback_get() {
    let env = Env::start();
    let out = env.ok(0, &["status"]);
    assert!(out.contains("generation:  1"), "{out}");
    assert!(out.contains("(ok)"), "{out}");

    let f = env.file("v2.yaml", &BASE.replace("status: 404", "status: 410"));
    let out = env.ok(
        0,
        &[
            "apply",
            "-f",
            f.to_str().expect("path"),
            "-m",
            "gone & back",
        ],
    );
    assert!(out.contains("v2.yaml: generation 2"), "{out}");
    assert!(out.contains("no data plane attached"), "{out}");
    let out = env.ok(0, &["apply", "-f", f.to_str().expect("path")]);
    assert!(out.contains("no change, still generation 2"), "{out}");

    let out = env.ok(0, &["history"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(" GEN"));
    assert!(
        lines[1].starts_with("*2") && lines[1].contains("api") && lines[1].contains("gone & back")
    );
    assert!(lines[2].starts_with(" 1") && lines[2].contains("file"));

    let out = env.ok(0, &["diff"]);
    assert!(
        out.contains("--- generation 1") && out.contains("+++ generation 2"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with('-') && l.contains("status: 404")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with('+') && l.contains("status: 410")),
        "{out}"
    );
    let out = env.ok(0, &["diff", "2", "2"]);
    assert!(
        out.contains("no difference between generations 2 and 2"),
        "{out}"
    );

    let out = env.ok(0, &["rollback", "1"]);
    assert!(
        out.contains("rolled back to generation 1: generation 3"),
        "{out}"
    );
    assert_eq!(env.generation(), 3);
    let err = env.ctl(&["rollback", "99"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(
        stderr(&err).contains("generation 99 is not kept"),
        "{}",
        stderr(&err)
    );

    let out = env.ok(0, &["get"]);
    assert!(out.contains("generation 3"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("main")
            && l.contains("api")
            && l.contains("prefix=/api")
            && l.contains("cluster backend")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("backend") && l.contains("127.0.0.1:9000")),
        "{out}"
    );
    let yaml = env.ok(0, &["get", "--yaml"]);
    assert_eq!(
        weir_config::parse(&yaml, "get").expect("get --yaml parses"),
        weir_config::parse(BASE, "base").expect("base")
    );

    let v: Value = serde_json::from_str(&env.ok(0, &["-o", "json", "status"])).expect("json");
    assert_eq!(v["generation"], 3);
    assert_eq!(v["source"], "rollback");
    let v: Value = serde_json::from_str(&env.ok(0, &["history", "-o", "json"])).expect("json");
    assert_eq!(v.as_array().expect("list").len(), 3);
}

#[test]
fn invalid_configs_print_every_problem_and_exit_1() {
    let env = Env::start();
    let bad = env.file(
        "bad.yaml",
        &BASE
            .replace("cluster: backend", "cluster: nowhere")
            .replace("127.0.0.1:8080", "everywhere"),
    );
    let bad = bad.to_str().expect("path");
    for cmd in ["validate", "apply"] {
        let out = env.ctl(&[cmd, "-f", bad]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = stderr(&out);
        assert!(
            err.contains("weirctl: the config is invalid: 2 problems"),
            "{err}"
        );
        assert!(
            err.contains(
                "bad.yaml:3: field `listeners[0].address`: `everywhere` is not an ip:port address"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "bad.yaml:8: field `listeners[0].routes[0].cluster`: no cluster named `nowhere`"
            ),
            "{err}"
        );
    }
    assert_eq!(env.generation(), 1);

    let good = env.file("good.yaml", BASE);
    let out = env.ok(0, &["validate", "-f", good.to_str().expect("path")]);
    assert!(out.contains("good.yaml: valid"), "{out}");

    // JSON files are sent as JSON; the error body is printed with -o json.
    let bad_json = env.file("bad.json", "{\"listeners\": [{\"name\": 1}]}");
    let out = env.ctl(&[
        "-o",
        "json",
        "apply",
        "-f",
        bad_json.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error body");
    assert_eq!(v["error"]["type"], "invalid_config");

    let out = env.ctl(&["apply", "-f", "/nonexistent/weir.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/weir.yaml"));
}

#[test]
fn an_unreachable_socket_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_weirctl"))
        .args(["--socket", "/nonexistent/control.sock", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "weirctl: cannot connect to /nonexistent/control.sock: no such socket (is weir-control running?)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weirctl"))
        .args(["frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
}

/// Another user is refused by the socket's mode (0600) alone: its directories are opened up
/// for the test, so the socket file is the only barrier. Needs root (to run the client as
/// `nobody` with `setpriv`); elsewhere the mode bits are what the daemon tests assert.
#[test]
fn another_user_is_refused() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    let exe = Path::new(env!("CARGO_BIN_EXE_weirctl"));
    if !root || !setpriv {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let env = Env::start();
    let sock = env.socket();
    for d in [env.dir.path(), sock.parent().expect("parent")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // The binary must be reachable by `nobody`: copy it next to the socket.
    let copy = env.dir.path().join("weirctl");
    std::fs::copy(exe, &copy).expect("copy");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .arg("--socket")
        .arg(&sock)
        .arg("status")
        .output()
        .expect("setpriv");
    if matches!(out.status.code(), Some(126 | 127)) {
        // The temp dir is mounted noexec, or setpriv may not switch users here.
        eprintln!("skipped: cannot run weirctl as nobody: {}", stderr(&out));
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "weirctl: cannot connect to {}: permission denied",
            sock.display()
        )
    );
    // The owner still gets in.
    env.ok(0, &["status"]);
}

/// A fake data plane: attaches, then NACKs every snapshot from generation 2 on.
fn nacking_plane(socket: &Path, id: &str) -> std::thread::JoinHandle<()> {
    let mut s = UnixStream::connect(socket).expect("connect");
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: weir-control\r\nUpgrade: {}\r\nConnection: upgrade\r\n\r\n",
        weir_protocol::ATTACH_PATH,
        weir_protocol::UPGRADE
    )
    .expect("write");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("status");
    assert!(line.starts_with("HTTP/1.1 101"), "{line}");
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).expect("header");
    }
    write_frame(
        &mut s,
        &PlaneMessage::Hello {
            plane_id: id.into(),
            pid: 7,
            version: "0.1.0".into(),
            generation: 0,
        },
    )
    .expect("hello");
    std::thread::spawn(move || {
        while let Ok(frame) = read_frame::<_, DaemonMessage>(&mut reader) {
            let answer = match frame {
                DaemonMessage::Ping => PlaneMessage::Pong,
                DaemonMessage::Snapshot { generation, .. } if generation < 2 => {
                    PlaneMessage::Ack { generation }
                }
                DaemonMessage::Snapshot { generation, .. } => PlaneMessage::Nack {
                    generation,
                    reason: "core 0: cannot bind 127.0.0.1:8080".into(),
                },
            };
            if write_frame(&mut s, &answer).is_err() {
                return;
            }
        }
    })
}

#[test]
fn planes_and_their_nacks() {
    let env = Env::start();
    let _plane = nacking_plane(&env.socket(), "edge-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.ok(0, &["planes"]).contains("ack 1") {
        assert!(Instant::now() < deadline, "no ack of generation 1");
        std::thread::sleep(Duration::from_millis(20));
    }

    let f = env.file("v2.yaml", &BASE.replace("status: 404", "status: 410"));
    let out = env.ctl(&["apply", "-f", f.to_str().expect("path"), "--wait", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("generation 2"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("edge-1") && l.contains("nack") && l.contains("cannot bind")),
        "{text}"
    );
    assert!(
        stderr(&out).contains("generation 2 was refused by 1 plane(s): edge-1"),
        "{}",
        stderr(&out)
    );

    let out = env.ok(0, &["planes"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PLANE"), "{out}");
    let row = lines[1];
    for part in [
        "edge-1",
        "7",
        "0.1.0",
        "connected",
        "nack 2",
        "core 0: cannot bind 127.0.0.1:8080",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    let v: Value = serde_json::from_str(&env.ok(0, &["-o", "json", "planes"])).expect("json");
    assert_eq!(v[0]["generation"], 1);
    assert_eq!(v[0]["last_result"], "nack");
    let out = env.ok(0, &["status"]);
    assert!(out.contains("1 attached, 0 on this generation"), "{out}");
}
