//! Starts the real `weir-mock-llm` binary on port 0, on each driver, and talks to it with a raw
//! `std::net::TcpStream` client: the framing itself is under test, so no HTTP client library.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mock, killed on drop.
struct Mock {
    child: Child,
    port: u16,
}

impl Mock {
    /// `None` when the driver cannot run here (io_uring forbidden by the kernel or a sandbox).
    fn start(driver: &str) -> Option<Mock> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir-mock-llm"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--driver",
                driver,
            ])
            .args(["--id", "test-mock"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let _ = child.wait();
            assert!(err.contains("runtime"), "mock failed to start: {err}");
            eprintln!("skipping the {driver} driver: {err}");
            return None;
        }
        let port = line
            .trim()
            .strip_prefix("listening 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Some(Mock { child, port })
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    /// One request on a fresh connection.
    fn get(&self, path: &str) -> Response {
        let mut c = self.connect();
        c.send(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes());
        c.response()
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::from_slice(&self.get("/stats").body).unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "bad line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return (status, headers);
            }
            let (n, v) = line.split_once(": ").unwrap();
            headers.push((n.to_owned(), v.to_owned()));
        }
    }

    /// Reads one response: content-length, chunked, or up to close.
    fn response(&mut self) -> Response {
        let (status, headers) = self.head();
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = r.header("content-length") {
            r.body.resize(n.parse().unwrap(), 0);
            self.reader.read_exact(&mut r.body).unwrap();
        } else if r.header("transfer-encoding") == Some("chunked") {
            while let Some(chunk) = self.chunk() {
                r.body.extend_from_slice(&chunk);
            }
        } else if status != 204 {
            self.reader.read_to_end(&mut r.body).unwrap();
        }
        r
    }

    /// One chunk of a chunked body; `None` after the last chunk.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = usize::from_str_radix(&self.line(), 16).unwrap();
        if size == 0 {
            assert_eq!(self.line(), "");
            return None;
        }
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).unwrap();
        assert_eq!(self.line(), "");
        Some(data)
    }

    /// Whether the server closed the connection (read returns 0).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

fn all_endpoints(driver: &str) {
    let Some(mock) = Mock::start(driver) else {
        return;
    };

    // GET /, and the id header.
    let r = mock.get("/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("x-mock-id"), Some("test-mock"));
    assert_eq!(r.header("connection"), None);

    // Keep-alive and pipelining: three requests in one write, answers in order.
    let mut c = mock.connect();
    c.send(b"GET / HTTP/1.1\r\n\r\nGET /bytes/5 HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\ncontent-length: 3\r\n\r\nxyz");
    assert_eq!(c.response().body, b"ok");
    assert_eq!(c.response().body, b"abcde");
    let r = c.response();
    assert_eq!(r.body, b"xyz");
    assert_eq!(r.header("x-request-transfer"), Some("length"));
    // ... and the same connection still serves.
    c.send(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());

    // Chunked request body, sent in pieces.
    let mut c = mock.connect();
    c.send(b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b"lo\r\n6;x=y\r\n world\r\n0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("x-received-bytes"), Some("11"));
    assert_eq!(r.header("x-request-transfer"), Some("chunked"));

    // Chunked echo and chunked bodies.
    c.send(b"POST /echo-chunked HTTP/1.1\r\ncontent-length: 4\r\n\r\nabcd");
    let r = c.response();
    assert_eq!(
        (r.header("transfer-encoding"), r.body.as_slice()),
        (Some("chunked"), &b"abcd"[..])
    );
    let r = mock.get("/chunked/100000?chunk=999");
    assert_eq!(r.body.len(), 100_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(k, &b)| b == b'a' + (k % 26) as u8));
    let r = mock.get("/bytes/1000000");
    assert_eq!(r.body.len(), 1_000_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(k, &b)| b == b'a' + (k % 26) as u8));

    // /inspect: method, target, headers as received.
    let mut c = mock.connect();
    c.send(b"DELETE /inspect/x?q=1 HTTP/1.1\r\nX-One: 1\r\nhost: h\r\ncontent-length: 2\r\n\r\nhi");
    let v: serde_json::Value = serde_json::from_slice(&c.response().body).unwrap();
    assert_eq!(v["method"], "DELETE");
    assert_eq!(v["path"], "/inspect/x?q=1");
    assert_eq!(v["headers"][0], serde_json::json!(["X-One", "1"]));
    assert_eq!(v["body_len"], 2);
    assert_eq!(v["http_version"], "1.1");

    // HTTP/1.0 closes; status, 404, bad requests.
    let mut c = mock.connect();
    c.send(b"GET /status/418 HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (418, Some("close")));
    assert!(c.closed());
    assert_eq!(mock.get("/no/such/path").status, 404);
    let mut c = mock.connect();
    c.send(b"POST /echo HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_eq!(c.response().status, 400);

    // Flaky and health switches.
    let codes: Vec<u16> = (0..3)
        .map(|_| mock.get("/flaky/k1?fail=2&status=502").status)
        .collect();
    assert_eq!(codes, [502, 502, 200]);
    assert_eq!(mock.get("/healthz").status, 200);
    let mut c = mock.connect();
    c.send(b"POST /control/health/503 HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(mock.get("/healthz").status, 503);

    // Delay and hang-body.
    let t0 = Instant::now();
    assert_eq!(mock.get("/delay/150").body, b"ok");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let mut c = mock.connect();
    c.send(b"GET /hang-body HTTP/1.1\r\n\r\n");
    let (status, headers) = c.head();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "10".into())));
    let mut five = [0u8; 5];
    c.reader.read_exact(&mut five).unwrap();
    assert_eq!(&five, b"hello");

    // SSE to the end.
    let r = mock.get("/sse?events=3&interval_ms=5&size=64");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].len() + 2, 64);
    assert_eq!(events[3], "data: [DONE]");

    // SSE aborted by the client: noticed from the read side, during the sleep.
    let mut c = mock.connect();
    c.send(b"GET /sse?events=100&interval_ms=1000 HTTP/1.1\r\n\r\n");
    c.head();
    assert!(c.chunk().unwrap().starts_with(b"data: {\"i\":0"));
    let open_before = mock.stats()["connections_open"].as_u64().unwrap();
    drop(c);
    let took = wait_for("sse_aborted", Duration::from_millis(900), || {
        mock.stats()["sse_aborted"] == 1
    });
    eprintln!("{driver}: abort noticed after {took:?}");
    let st = mock.stats();
    assert_eq!(
        (st["sse_started"].as_u64(), st["sse_completed"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(st["connections_open"].as_u64().unwrap() < open_before);

    // OpenAI chat completions.
    let body = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}]}"#;
    let mut c = mock.connect();
    c.send(format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let r = c.response();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["object"].as_str(), v["model"].as_str()),
        (Some("chat.completion"), Some("gpt-test"))
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let body = r#"{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let r = c.response();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let finals: Vec<serde_json::Value> = text
        .split_terminator("\n\n")
        .filter_map(|e| serde_json::from_str(e.strip_prefix("data: ")?).ok())
        .filter(|v: &serde_json::Value| v["choices"][0]["finish_reason"] == "stop")
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0]["usage"]["completion_tokens"], 11);

    let st = mock.stats();
    assert!(st["requests"].as_u64().unwrap() > 20);
    assert!(st["connections_accepted"].as_u64().unwrap() > 10);
}

#[test]
fn epoll_driver() {
    all_endpoints("epoll");
}

#[test]
fn io_uring_driver() {
    all_endpoints("uring");
}
