//! The admin listener (health and metrics) and the access log.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::process::{Command, Stdio};
use std::time::Duration;

use weir_tests::*;

both_drivers! {
    /// `/healthz/live` and `/healthz/ready` answer 200; other paths 404, other methods 405.
    fn health_endpoints(d) {
        let gw = Gateway::new().driver(d).route("{ name: r, direct_response: { status: 200 } }").start();
        let r = gw.admin_get("/healthz/live");
        assert_eq!(r.status(), 200);
        let r = gw.admin_get("/healthz/ready");
        assert_eq!(r.status(), 200);
        assert_eq!(gw.admin_get("/nope").status(), 404);
        let mut c = Client::connect(gw.admin_addr());
        let r = c.request(b"POST /healthz/live HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.status(), 405);
        // Keep-alive on the admin listener.
        assert_eq!(c.get("/healthz/live").status(), 200);
    }
}

/// Checks `text` with `promtool check metrics` when promtool is installed; prints a note when not.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) => {
            eprintln!("note: promtool is not on PATH: skipping `promtool check metrics`");
            return;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 1: the text does not parse; exit 3: lint findings (names, help, units). Both fail.
    assert!(
        out.status.success(),
        "promtool check metrics: {:?}\n{report}",
        out.status.code()
    );
}

both_drivers! {
    /// `/metrics` after traffic: request counts by route and status class, upstream pool gauges,
    /// connection gauges; valid exposition text (checked by promtool when installed).
    fn metrics_after_traffic(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: api, match: { path: { prefix: /bytes } }, cluster: mock }")
            .route("{ name: local, match: { path: { exact: /local } }, direct_response: { status: 202 } }")
            .start();
        let mut c = gw.connect();
        for _ in 0..5 {
            assert_eq!(c.get("/bytes/10").status(), 200);
        }
        assert_eq!(c.get("/local").status(), 202);
        assert_eq!(c.get("/missing").status(), 404);
        // A request is counted when it is finished, just after its last byte is written: the
        // scrape may race the last response, so wait (bounded) for the counts to settle.
        let settled = |text: &str| {
            metric(text, "weir_http_requests_total", &[("route", ""), ("status_class", "4xx")]) == Some(1.0)
                && metric(text, "weir_upstream_pool_idle_connections", &[("cluster", "mock")]) == Some(1.0)
        };
        let mut text = gw.metrics();
        let start = std::time::Instant::now();
        while !settled(&text) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            text = gw.metrics();
        }
        let count = |route: &str, class: &str| metric(&text, "weir_http_requests_total", &[("route", route), ("status_class", class)]);
        assert_eq!(count("api", "2xx"), Some(5.0), "{text}");
        assert_eq!(metric(&text, "weir_http_requests_total", &[("route", "api"), ("cluster", "mock"), ("status_class", "2xx")]), Some(5.0));
        assert_eq!(count("local", "2xx"), Some(1.0));
        assert_eq!(count("", "4xx"), Some(1.0), "the unrouted 404 is not counted:\n{text}");
        assert!(text.contains("# TYPE weir_upstream_pool_idle_connections gauge"), "{text}");
        let idle = metric(&text, "weir_upstream_pool_idle_connections", &[("cluster", "mock")]);
        assert_eq!(idle, Some(1.0), "one pooled upstream connection after sequential requests");
        assert_eq!(metric(&text, "weir_upstream_requests_total", &[("cluster", "mock"), ("endpoint", &m.endpoint())]), Some(5.0));
        assert!(metric(&text, "weir_downstream_connections", &[]).unwrap_or(0.0) >= 1.0);
        assert_eq!(metric(&text, "weir_workers", &[]), Some(2.0));
        let hist = metric(&text, "weir_http_request_duration_seconds_count", &[("route", "api")]);
        assert_eq!(hist, Some(5.0));
        promtool_check(&text);
    }
}

both_drivers! {
    /// One JSON access-log line per request, with the request id the client saw, route, cluster,
    /// status, duration and upstream time (null for answers made by the gateway).
    fn access_log_lines(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: api, match: { path: { prefix: /bytes } }, cluster: mock }")
            .route("{ name: local, match: { path: { exact: /local } }, direct_response: { status: 202 } }")
            .start();
        let mut c = gw.connect();
        let ids: Vec<String> = ["/bytes/10", "/local", "/missing"]
            .iter()
            .map(|p| c.get(p).header("x-request-id").unwrap().to_owned())
            .collect();
        let log = gw.wait_access_log(3, Duration::from_secs(5), |_| true);
        // Give a stray fourth line the chance to show up.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(gw.access_log_lines().len(), 3, "one line per request");
        let line = |id: &str| log.iter().find(|l| l["request_id"] == id).unwrap_or_else(|| panic!("no line for {id}: {log:?}")).clone();
        let a = line(&ids[0]);
        assert_eq!((a["route"].as_str(), a["cluster"].as_str(), a["status"].as_u64()), (Some("api"), Some("mock"), Some(200)), "{a}");
        assert_eq!(a["method"], "GET");
        assert_eq!(a["target"], "/bytes/10");
        assert_eq!(a["endpoint"], m.endpoint());
        assert_eq!(a["response_bytes"], 10);
        assert!(a["duration_ms"].as_f64().is_some_and(|v| v >= 0.0), "{a}");
        assert!(a["upstream_ms"].as_f64().is_some_and(|v| v >= 0.0), "{a}");
        assert!(a["duration_ms"].as_f64() >= a["upstream_ms"].as_f64(), "{a}");
        let b = line(&ids[1]);
        assert_eq!((b["route"].as_str(), b["status"].as_u64()), (Some("local"), Some(202)), "{b}");
        assert!(b["cluster"].is_null() && b["upstream_ms"].is_null(), "{b}");
        let n = line(&ids[2]);
        assert_eq!(n["status"], 404);
        assert!(n["route"].is_null(), "{n}");
        assert_eq!(n["error"], "no_route");
    }
}

both_drivers! {
    /// `access_log: { enabled: false }`: nothing on stdout.
    fn access_log_disabled(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .access_log(false)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: api, cluster: mock }")
            .start();
        let mut c = gw.connect();
        for _ in 0..5 {
            assert_eq!(c.get("/bytes/1").status(), 200);
        }
        // The log is flushed every 100 ms: wait well past that.
        std::thread::sleep(Duration::from_millis(600));
        assert!(gw.access_log_lines().is_empty(), "{:?}", gw.access_log_lines());
    }
}
