//! Streaming: SSE events pass one by one as they are produced, a client that hangs up cancels the
//! upstream stream, and an upgraded connection tunnels bytes both ways.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use weir_tests::*;

fn proxy_to(d: Driver, m: &MockUpstream) -> Gateway {
    Gateway::new()
        .driver(d)
        .cluster("mock", &[m.endpoint()])
        .route("{ name: all, cluster: mock }")
        .start()
}

/// One `/sse?events=5&interval_ms=200` stream: checks its content (panics), then returns the
/// timing verdict: `Err` says which gap was too short.
fn one_paced_stream(gw: &Gateway) -> Result<(), String> {
    let mut c = gw.connect();
    let sent = Instant::now();
    c.send(b"GET /sse?events=5&interval_ms=200 HTTP/1.1\r\nHost: test.local\r\nAccept: text/event-stream\r\n\r\n");
    let mut s = c.into_sse();
    assert!(s
        .head
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/event-stream"));
    assert!(s.head.is_chunked(), "{:?}", s.head);
    let events = s.rest();
    let data: Vec<String> = events.iter().map(|e| e.data()).collect();
    assert_eq!(data.len(), 6, "{data:?}");
    for (i, d) in data[..5].iter().enumerate() {
        assert!(d.starts_with(&format!("{{\"i\":{i},")), "event {i}: {d}");
    }
    assert_eq!(data[5], "[DONE]");
    // The connection is reusable after the stream.
    let mut c = s.into_client();
    assert_eq!(c.get("/bytes/3").body, b"abc");

    let first = events[0].at.duration_since(sent);
    let last = events[5].at.duration_since(sent);
    if last < Duration::from_millis(800) {
        return Err(format!("the whole stream took only {last:?}"));
    }
    // The last event is produced ~1 s after the first; the first must not wait for it.
    if first + Duration::from_millis(500) >= last {
        return Err(format!(
            "first event at {first:?}, last at {last:?}: buffered"
        ));
    }
    for (i, w) in events.windows(2).enumerate() {
        let gap = w[1].at.duration_since(w[0].at);
        if gap < Duration::from_millis(80) {
            return Err(format!(
                "events {i} and {} only {gap:?} apart: buffered?",
                i + 1
            ));
        }
    }
    Ok(())
}

both_drivers! {
    /// Events 200 ms apart arrive one by one, not buffered: consecutive events are at least 80 ms
    /// apart, and the first arrives well before the last is even produced. A test thread that is
    /// descheduled on a busy machine can read two events at once, so the timing (not the content)
    /// may be retried on up to three streams; a proxy that buffers fails all of them.
    fn sse_events_arrive_one_by_one(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut failures = Vec::new();
        for _ in 0..3 {
            match one_paced_stream(&gw) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("note: stream timing off, retrying: {e}");
                    failures.push(e);
                }
            }
        }
        panic!("events were not delivered one by one in three streams: {failures:?}");
    }
}

both_drivers! {
    /// A client that drops the connection mid-stream makes the gateway close the upstream
    /// stream: the mock counts it in `sse_aborted` within a couple of seconds (its stream would
    /// otherwise run for 10 s more).
    fn client_disconnect_cancels_upstream(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let before = m.stats();
        let mut c = gw.connect();
        c.send(b"GET /sse?events=50&interval_ms=200 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let mut s = c.into_sse();
        let e0 = s.next_event().unwrap();
        let e1 = s.next_event().unwrap();
        assert!(e0.data().starts_with("{\"i\":0") && e1.data().starts_with("{\"i\":1"));
        drop(s);
        let dropped = Instant::now();
        let aborted0 = before["sse_aborted"].as_u64().unwrap();
        wait_until("the mock to see the stream aborted", Duration::from_secs(3), Duration::from_millis(50), || {
            (m.stat("sse_aborted") > aborted0).then_some(())
        });
        assert!(dropped.elapsed() < Duration::from_secs(3));
        assert_eq!(m.stat("sse_completed"), before["sse_completed"].as_u64().unwrap());
        // The access log says the client went away.
        let log = gw.wait_access_log(1, Duration::from_secs(5), |l| l["target"].as_str().is_some_and(|t| t.starts_with("/sse")));
        assert_eq!(log[0]["status"], 499, "{}", log[0]);
    }
}

/// A tiny upstream that answers one upgrade request with `101 Switching Protocols` and then
/// echoes every byte back, upper-cased (so an echo by anyone else would show). Returns its
/// address and a handle yielding the request head it received.
fn upgrade_upstream() -> (SocketAddr, thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).unwrap_or(0) == 0 {
                return String::from_utf8_lossy(&head).into_owned();
            }
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).is_err() {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, h)
}

both_drivers! {
    /// `Connection: upgrade` + `Upgrade: websocket` passes through; after `101` the connection is
    /// a tunnel: bytes flow both ways, several times, until the client closes.
    fn upgrade_tunnel(d) {
        let (up, upstream) = upgrade_upstream();
        let gw = Gateway::new()
            .driver(d)
            .cluster("ws", &[up.to_string()])
            .route("{ name: ws, cluster: ws }")
            .start();
        let mut c = gw.connect();
        c.send(b"GET /chat HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        let head = c.read_head();
        assert_eq!(head.status, 101, "{head:?}");
        assert_eq!(head.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
        assert!(head.header_all("connection").iter().any(|v| v.to_ascii_lowercase().contains("upgrade")));
        for msg in [&b"hello"[..], b"second message", &[b'x'; 10_000]] {
            c.send(msg);
            let back = c.read_exact_bytes(msg.len());
            assert_eq!(back, msg.to_ascii_uppercase());
        }
        c.shutdown_write();
        drop(c);
        let seen = upstream.join().unwrap().to_ascii_lowercase();
        assert!(seen.contains("upgrade: websocket"), "{seen}");
        assert!(seen.contains("connection: upgrade"), "{seen}");
        assert!(seen.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="), "{seen}");
    }
}
