//! What the integration tests share: the real `weir-mock-llm` binary started on port 0 (killed
//! on drop) and a raw `std::net::TcpStream` HTTP/1.1 client, with readers for SSE streams and
//! AWS event-stream frames (an implementation of their own, CRC32 included, so the tests check
//! the mock rather than repeat it).

#![allow(clippy::unwrap_used, dead_code)] // tests may unwrap; not every test file uses every helper

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running mock, killed on drop.
pub struct Mock {
    child: Child,
    pub port: u16,
}

impl Mock {
    /// Starts the mock on `driver` with extra arguments. `None` when the driver cannot run here
    /// (io_uring forbidden by the kernel or a sandbox).
    pub fn start(driver: &str, extra: &[&str]) -> Option<Mock> {
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
            .args(extra)
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

    /// A mock on the epoll driver (always available), with extra arguments.
    pub fn epoll(extra: &[&str]) -> Mock {
        Mock::start("epoll", extra).unwrap()
    }

    pub fn connect(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    /// One request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut c = self.connect();
        c.send_request(method, path, headers, body);
        c.response()
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.request("POST", path, headers, body.as_bytes())
    }

    pub fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        self.post(path, headers, &body.to_string())
    }

    /// Appends script rules; panics unless the mock takes them.
    pub fn script(&self, rules: &Value) {
        let r = self.post("/mock/script", &[], &rules.to_string());
        assert_eq!(r.status, 200, "script refused: {}", r.text());
    }

    /// The request log.
    pub fn requests(&self) -> Vec<Value> {
        let r = self.get("/mock/requests");
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).unwrap()
    }

    pub fn stats(&self) -> Value {
        serde_json::from_slice(&self.get("/stats").body).unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub stream: TcpStream,
    pub reader: BufReader<TcpStream>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The SSE events of the body: (event name, data), data parsed as JSON (`[DONE]` kept as a
    /// JSON string). Accepts LF and CRLF line ends, as an SSE parser must.
    pub fn sse(&self) -> Vec<(Option<String>, Value)> {
        parse_sse(&self.text())
    }

    /// The AWS event-stream messages of the body, CRCs checked.
    pub fn frames(&self) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut rest = self.body.as_slice();
        while !rest.is_empty() {
            let (frame, n) = decode_frame(rest).unwrap();
            out.push(frame);
            rest = &rest[n..];
        }
        out
    }
}

/// Splits an SSE body into events.
pub fn parse_sse(text: &str) -> Vec<(Option<String>, Value)> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            let value = if data == "[DONE]" {
                Value::String(data)
            } else {
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}"))
            };
            (name, value)
        })
        .collect()
}

impl Client {
    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    pub fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: mock\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "bad line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub fn head(&mut self) -> (u16, Vec<(String, String)>) {
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
    pub fn response(&mut self) -> Response {
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

    /// One chunk of a chunked body; `None` after the last chunk. Panics if the connection ends.
    pub fn chunk(&mut self) -> Option<Vec<u8>> {
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

    /// The chunks of a chunked body, and whether it ended with the last chunk (`false`: the
    /// connection closed in the middle).
    pub fn chunks_until_end(&mut self) -> (Vec<Vec<u8>>, bool) {
        let mut chunks = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return (chunks, false),
                Ok(_) => {}
            }
            let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
            if size == 0 {
                assert_eq!(self.line(), "");
                return (chunks, true);
            }
            let mut data = vec![0; size];
            self.reader.read_exact(&mut data).unwrap();
            assert_eq!(self.line(), "");
            chunks.push(data);
        }
    }

    /// Whether the server closed the connection (read returns 0 or an error).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

// === AWS event stream ===

/// A decoded event-stream message.
#[derive(Debug)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// CRC32 (IEEE), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Decodes one message, checking the prelude and message CRCs.
pub fn decode_frame(buf: &[u8]) -> Result<(Frame, usize), String> {
    let u32_at = |i: usize| u32::from_be_bytes(buf[i..i + 4].try_into().unwrap());
    if buf.len() < 16 {
        return Err(format!("short frame: {} bytes", buf.len()));
    }
    let total = u32_at(0) as usize;
    let headers_len = u32_at(4) as usize;
    if u32_at(8) != crc32(&buf[..8]) {
        return Err("bad prelude CRC".into());
    }
    if buf.len() < total {
        return Err("truncated frame".into());
    }
    if u32_at(total - 4) != crc32(&buf[..total - 4]) {
        return Err("bad message CRC".into());
    }
    let mut headers = Vec::new();
    let mut i = 12;
    while i < 12 + headers_len {
        let n = buf[i] as usize;
        let name = String::from_utf8(buf[i + 1..i + 1 + n].to_vec()).unwrap();
        i += 1 + n;
        assert_eq!(buf[i], 7, "header {name} is not a string");
        let len = u16::from_be_bytes([buf[i + 1], buf[i + 2]]) as usize;
        let value = String::from_utf8(buf[i + 3..i + 3 + len].to_vec()).unwrap();
        i += 3 + len;
        headers.push((name, value));
    }
    Ok((
        Frame {
            headers,
            payload: buf[12 + headers_len..total - 4].to_vec(),
        },
        total,
    ))
}

/// The strings among `values`, concatenated (non-strings count as empty).
pub fn concat(values: impl IntoIterator<Item = Value>) -> String {
    values
        .into_iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}
