//! A one-request-per-connection HTTP/1.1 client over the daemon's Unix socket.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Why a command failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The socket could not be reached: exit 2.
    #[error("cannot connect to {}: {reason}", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// Why, in words (`permission denied`, `no such file ...`).
        reason: String,
    },
    /// The daemon answered with an error: exit 1.
    #[error("{message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The error message.
        message: String,
        /// The whole error body.
        body: Value,
    },
    /// Anything else (a file to read, a broken answer, a NACK): exit 1.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Connect { .. } => 2,
            Failure::Server { .. } | Failure::Other(_) => 1,
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::Other(format!(
                "the daemon's answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            ))
        })
    }
}

/// The admin API client.
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the daemon on `socket`; answers are awaited for at most `timeout`.
    pub fn new(socket: &Path, timeout: Duration) -> Self {
        Client {
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    /// One request. A non-2xx answer is a [`Failure::Server`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let reply = self.raw(method, path, content_type, body)?;
        if (200..300).contains(&reply.status) {
            return Ok(reply);
        }
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "the daemon answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body).trim()
                )
            });
        Err(Failure::Server {
            status: reply.status,
            message,
            body,
        })
    }

    /// One request, any status.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let mut s = UnixStream::connect(&self.socket).map_err(|e| Failure::Connect {
            socket: self.socket.clone(),
            reason: describe(&e),
        })?;
        let lost = |e: io::Error| Failure::Other(format!("lost the connection to the daemon: {e}"));
        s.set_read_timeout(Some(self.timeout)).map_err(lost)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: weir-control\r\nUser-Agent: weirctl/{}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if let Some(ct) = content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        s.write_all(&out).map_err(lost)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(lost)?;
        parse(&raw)
    }
}

fn parse(raw: &[u8]) -> Result<Reply, Failure> {
    let bad = |why: &str| Failure::Other(format!("malformed answer from the daemon: {why}"));
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(bad("it ended early")),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let status = resp.code.ok_or_else(|| bad("no status"))?;
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
    let body = &raw[head..];
    let body = match len {
        Some(n) if body.len() < n => return Err(bad("the body ended early")),
        Some(n) => &body[..n],
        None => body,
    };
    Ok(Reply {
        status,
        body: body.to_vec(),
    })
}

/// `permission denied`, not `Permission denied (os error 13)`.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such socket (is weir-control running?)".into(),
        io::ErrorKind::ConnectionRefused => "connection refused (is weir-control running?)".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let r = parse(b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 2\r\n\r\n{}").expect("ok");
        assert_eq!((r.status, r.body.as_slice()), (422, &b"{}"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_err());
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
