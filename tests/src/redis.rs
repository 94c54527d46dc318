//! A real `redis-server` for the cluster-mode quota tests: on a Unix socket in a temp dir (no
//! TCP port at all, so nothing can collide), no persistence, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{wait_until, TempDir};

/// A `redis-server` process (Debian package `redis-server`; `tests/run.sh` installs it).
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    socket: PathBuf,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        let dir = TempDir::new("redis");
        let socket = dir.path().join("redis.sock");
        let mut r = RedisServer {
            child: None,
            socket,
            _dir: dir,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting redis-server: {e} (install it: apt-get install redis-server)")
            });
        self.child = Some(child);
        wait_until(
            "redis-server to answer PING",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || self.try_command(&["PING"]).ok().filter(|r| r == "PONG"),
        );
    }

    /// The URL a quota filter's `redis` takes.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Kills the server (SIGKILL): the socket stays, refusing connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same socket (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        self.spawn();
    }

    /// Sends one command; the reply as text (a bulk string, a status or an integer).
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+' | b':') => Ok(line[1..].to_owned()),
            Some(b'$') => {
                let n: i64 = line[1..].parse().map_err(std::io::Error::other)?;
                if n < 0 {
                    return Ok(String::new());
                }
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            _ => Err(std::io::Error::other(format!("reply {line:?}"))),
        }
    }

    /// How many times Redis ran `command` (from `INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]);
        let want = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(&want))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
