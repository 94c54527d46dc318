//! Bounded scale smoke tests: many connections at once through one gateway. (The 10k / 5k
//! figures of the design are measured by the load harness in `loadtest/`, not here.)

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use weir_tests::*;

both_drivers! {
    /// 1,000 keep-alive connections open at once: each does a GET, all stay open for a second
    /// (the gateway counts them), then each does a second GET on the same connection.
    fn thousand_idle_keepalive_connections(d) {
        let limit = raise_nofile_limit(16_384);
        assert!(limit >= 4096, "RLIMIT_NOFILE is {limit}: too low for 1,000 connections through a proxy");
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let mut clients: Vec<Client> = (0..1000).map(|_| gw.connect()).collect();
        for c in clients.iter_mut() {
            c.send(b"GET /bytes/8 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c.read_response();
            assert_eq!((r.status(), r.body.as_slice()), (200, &b"abcdefgh"[..]), "connection {i}");
        }
        std::thread::sleep(Duration::from_secs(1));
        let open = metric(&gw.metrics(), "weir_downstream_connections", &[]).unwrap_or(0.0);
        assert!(open >= 1000.0, "the gateway counts {open} open connections");
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c.get("/bytes/2");
            assert_eq!(r.status(), 200, "connection {i} after the idle second");
        }
    }
}

both_drivers! {
    /// 200 SSE streams at once through one gateway all complete, every event in order.
    fn two_hundred_concurrent_sse_streams(d) {
        raise_nofile_limit(16_384);
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let completed = m.stat("sse_completed");
        let mut clients: Vec<Client> = (0..200).map(|_| gw.connect()).collect();
        for c in clients.iter_mut() {
            c.send(b"GET /sse?events=5&interval_ms=100 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        }
        for (i, c) in clients.into_iter().enumerate() {
            let events: Vec<String> = c.into_sse().rest().iter().map(SseEvent::data).collect();
            assert_eq!(events.len(), 6, "stream {i}: {events:?}");
            for (k, e) in events[..5].iter().enumerate() {
                assert!(e.starts_with(&format!("{{\"i\":{k},")), "stream {i} event {k}: {e}");
            }
            assert_eq!(events[5], "[DONE]", "stream {i}");
        }
        wait_until("the mock to count 200 completed streams", Duration::from_secs(5), Duration::from_millis(50), || {
            (m.stat("sse_completed") >= completed + 200).then_some(())
        });
    }
}
