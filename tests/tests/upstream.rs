//! The upstream side: failures and timeouts, retries, load balancing, active health checks and
//! passive outlier ejection.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weir_tests::*;

/// Which mock answered (`x-mock-id`).
fn who(r: &Response) -> String {
    r.header("x-mock-id").unwrap_or("none").to_owned()
}

/// `n` GETs of `path` on one connection; counts of the answering mock ids.
fn spread(gw: &Gateway, path: &str, n: usize) -> HashMap<String, usize> {
    let mut c = gw.connect();
    let mut out = HashMap::new();
    for _ in 0..n {
        let r = c.get(path);
        assert_eq!(r.status(), 200, "{}", r.text());
        *out.entry(who(&r)).or_insert(0) += 1;
    }
    out
}

both_drivers! {
    /// An upstream that refuses connections: 502 at once (well within the connect timeout).
    fn upstream_down_is_502_fast(d) {
        let down = closed_port();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!("{{ name: down, endpoints: [\"{down}\"], connect_timeout: 5s }}"))
            .route("{ name: r, cluster: down }")
            .start();
        let mut c = gw.connect();
        let start = Instant::now();
        let r = c.get("/x");
        let took = start.elapsed();
        assert_eq!(r.status(), 502, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "upstream_connect_failed");
        assert!(took < Duration::from_secs(2), "a refused connect took {took:?}");
    }
}

both_drivers! {
    /// An upstream that accepts and never answers: 504 after the route's first-byte timeout.
    fn upstream_hang_is_504_after_first_byte_timeout(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, timeouts: { first_byte: 500ms } }")
            .start();
        let start = Instant::now();
        let r = gw.get("/hang");
        let took = start.elapsed();
        assert_eq!(r.status(), 504, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "upstream_timeout");
        assert!(took >= Duration::from_millis(450), "504 after only {took:?}");
        assert!(took < Duration::from_secs(5), "504 after {took:?}");
    }
}

both_drivers! {
    /// An upstream that sends the head and part of the body, then stalls: the client gets the
    /// head and the bytes, then the connection closes after the route's idle timeout (the
    /// response cannot be completed, and a 504 cannot be sent after a 200 head).
    fn upstream_stall_mid_body_closes_after_idle_timeout(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, timeouts: { first_byte: 5s, idle: 500ms } }")
            .start();
        let mut c = gw.connect();
        let start = Instant::now();
        c.send(b"GET /hang-body HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let head = c.read_head();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length(), Some(10));
        let (rest, closed) = c.read_until_close(Duration::from_secs(10));
        let took = start.elapsed();
        assert!(closed, "the connection stayed open");
        assert_eq!(rest, b"hello");
        assert!(took >= Duration::from_millis(400), "closed after only {took:?}");
        assert!(took < Duration::from_secs(8), "closed after {took:?}");
        let log = gw.wait_access_log(1, Duration::from_secs(5), |_| true);
        assert_eq!(log[0]["error"], "upstream_idle_timeout", "{}", log[0]);
    }
}

both_drivers! {
    /// A GET answered 503 once is retried on the `503` condition and succeeds; the access log
    /// and the retry counter say one retry.
    fn retry_on_status(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, retry: { attempts: 2, on: [503] } }")
            .start();
        let r = gw.get("/flaky/get-once?fail=1");
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "ok");
        let log = gw.wait_access_log(1, Duration::from_secs(5), |_| true);
        assert_eq!(log[0]["retries"], 1, "{}", log[0]);
        assert_eq!(log[0]["status"], 200);
        assert_eq!(metric(&gw.metrics(), "weir_http_retries_total", &[("route", "r")]), Some(1.0));
        // Two failures still fit in two retries.
        let r = gw.get("/flaky/get-twice?fail=2");
        assert_eq!(r.status(), 200);
        // Three do not: the third answer (503) goes to the client.
        let r = gw.get("/flaky/get-thrice?fail=3");
        assert_eq!(r.status(), 503);
        assert_eq!(r.json()["attempt"], 3);
    }
}

both_drivers! {
    /// A POST whose body was sent is not retried on a status: the 503 reaches the client.
    fn post_with_body_not_retried(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: r, cluster: mock, retry: { attempts: 2, on: [503] } }")
            .start();
        let r = gw.request(b"POST /flaky/post-once?fail=1 HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(r.status(), 503, "{}", r.text());
        assert_eq!(r.json()["attempt"], 1);
        let log = gw.wait_access_log(1, Duration::from_secs(5), |_| true);
        assert_eq!(log[0]["retries"], 0, "{}", log[0]);
        // The mock would have answered 200 the second time: it was asked once.
        assert_eq!(gw.get("/flaky/post-once?fail=1").status(), 200);
    }
}

both_drivers! {
    /// Two endpoints, one refusing connections, `retry: { on: [connect_failure] }`: every request
    /// succeeds on the live one.
    fn retry_connect_failure_to_other_endpoint(d) {
        let m = MockUpstream::id("live").start();
        let down = closed_port();
        let gw = Gateway::new()
            .driver(d)
            .cluster("two", &[down.to_string(), m.endpoint()])
            .route("{ name: r, cluster: two, retry: { on: [connect_failure] } }")
            .start();
        let mut c = gw.connect();
        for i in 0..20 {
            let r = c.get("/bytes/1");
            assert_eq!(r.status(), 200, "request {i}: {}", r.text());
            assert_eq!(who(&r), "live");
        }
        let log = gw.wait_access_log(20, Duration::from_secs(5), |_| true);
        let retried = log.iter().filter(|l| l["retries"] == 1).count();
        assert!(retried >= 5, "round robin should have sent about half to the dead endpoint first; {retried} retried");
    }
}

both_drivers! {
    /// Round robin over two endpoints: an even split.
    fn round_robin_even(d) {
        let a = MockUpstream::id("a").start();
        let b = MockUpstream::id("b").start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("ab", &[a.endpoint(), b.endpoint()])
            .route("{ name: r, cluster: ab }")
            .start();
        let got = spread(&gw, "/bytes/1", 100);
        let (na, nb) = (got.get("a").copied().unwrap_or(0), got.get("b").copied().unwrap_or(0));
        assert_eq!(na + nb, 100, "{got:?}");
        assert!((40..=60).contains(&na), "uneven round robin: {got:?}");
    }
}

both_drivers! {
    /// Weights 1:3: about a quarter to the first endpoint.
    fn weighted_one_to_three(d) {
        let a = MockUpstream::id("a").start();
        let b = MockUpstream::id("b").start();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "{{ name: ab, endpoints: [{{ address: \"{}\", weight: 1 }}, {{ address: \"{}\", weight: 3 }}] }}",
                a.endpoint(),
                b.endpoint()
            ))
            .route("{ name: r, cluster: ab }")
            .start();
        let got = spread(&gw, "/bytes/1", 400);
        let na = got.get("a").copied().unwrap_or(0);
        let nb = got.get("b").copied().unwrap_or(0);
        assert_eq!(na + nb, 400, "{got:?}");
        assert!((70..=130).contains(&na), "weights 1:3 gave {got:?}");
    }
}

both_drivers! {
    /// Consistent hashing on a header: each key always reaches the same endpoint, and the keys
    /// spread over more than one.
    fn consistent_hash_sticks(d) {
        let mocks: Vec<MockUpstream> = ["a", "b", "c"].iter().map(|id| MockUpstream::id(id).start()).collect();
        let eps: Vec<String> = mocks.iter().map(MockUpstream::endpoint).collect();
        let list: Vec<String> = eps.iter().map(|e| format!("\"{e}\"")).collect();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "{{ name: ring, endpoints: [{}], lb: {{ policy: consistent_hash, hash_on: \"header:x-user\" }} }}",
                list.join(", ")
            ))
            .route("{ name: r, cluster: ring }")
            .start();
        let mut c = gw.connect();
        let mut owners = HashMap::new();
        for round in 0..5 {
            for user in 0..20 {
                let r = c.request(format!("GET /bytes/1 HTTP/1.1\r\nHost: t\r\nX-User: user-{user}\r\n\r\n").as_bytes());
                let id = who(&r);
                let first = owners.entry(user).or_insert_with(|| id.clone());
                assert_eq!(*first, id, "user-{user} moved from {first} to {id} in round {round}");
            }
        }
        let distinct: std::collections::HashSet<_> = owners.values().collect();
        assert!(distinct.len() >= 2, "20 keys all hashed to one endpoint: {owners:?}");
    }
}

both_drivers! {
    /// Active health checks: an endpoint whose `/healthz` turns 503 is ejected (all traffic goes
    /// to the other, `weir_upstream_healthy` 0), and re-admitted when it turns 200 again.
    fn health_check_ejects_and_readmits(d) {
        let a = MockUpstream::id("a").start();
        let b = MockUpstream::id("b").start();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "name: hc\nendpoints: [\"{}\", \"{}\"]\nhealth_check: {{ path: /healthz, interval: 200ms, unhealthy_threshold: 2, healthy_threshold: 2 }}",
                a.endpoint(),
                b.endpoint()
            ))
            .route("{ name: r, cluster: hc }")
            .start();
        let healthy = |ep: &str| metric(&gw.metrics(), "weir_upstream_healthy", &[("cluster", "hc"), ("endpoint", ep)]);
        let got = spread(&gw, "/bytes/1", 10);
        assert_eq!(got.len(), 2, "both endpoints serve at first: {got:?}");
        assert_eq!(healthy(&a.endpoint()), Some(1.0));

        a.set_health(503);
        wait_until("all traffic on b", Duration::from_secs(10), Duration::from_millis(100), || {
            let got = spread(&gw, "/bytes/1", 20);
            (got.get("b") == Some(&20)).then_some(())
        });
        assert_eq!(healthy(&a.endpoint()), Some(0.0));
        assert_eq!(healthy(&b.endpoint()), Some(1.0));
        // Stays ejected.
        assert_eq!(spread(&gw, "/bytes/1", 20).get("b"), Some(&20));

        a.set_health(200);
        wait_until("traffic back on a", Duration::from_secs(10), Duration::from_millis(100), || {
            let got = spread(&gw, "/bytes/1", 10);
            (got.get("a").copied().unwrap_or(0) >= 3).then_some(())
        });
        assert_eq!(healthy(&a.endpoint()), Some(1.0));
    }
}

both_drivers! {
    /// Passive outlier ejection: endpoint `a` answers 5xx (its `/healthz` is set to 503, `b`'s
    /// stays 200, and there is no active health check); after 3 failures in a row it is ejected
    /// and every request goes to `b`. The ejection is counted in `weir_upstream_ejections_total`.
    fn outlier_ejection(d) {
        let a = MockUpstream::id("a").start();
        let b = MockUpstream::id("b").start();
        a.set_health(503);
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "{{ name: out, endpoints: [\"{}\", \"{}\"], outlier: {{ consecutive_failures: 3, ejection_time: 30s }} }}",
                a.endpoint(),
                b.endpoint()
            ))
            .route("{ name: r, cluster: out }")
            .start();
        let mut c = gw.connect();
        let mut failures = 0;
        let mut run_of_b = 0;
        for _ in 0..60 {
            let r = c.get("/healthz");
            match (r.status(), who(&r).as_str()) {
                (503, "a") => {
                    failures += 1;
                    run_of_b = 0;
                }
                (200, "b") => run_of_b += 1,
                other => panic!("unexpected answer {other:?}"),
            }
            if run_of_b >= 20 {
                break;
            }
        }
        assert!(run_of_b >= 20, "a was never ejected ({failures} failures seen)");
        assert_eq!(failures, 3, "a should be ejected after exactly 3 consecutive failures");
        let ejections = metric(&gw.metrics(), "weir_upstream_ejections_total", &[("cluster", "out"), ("endpoint", &a.endpoint())]);
        assert_eq!(ejections, Some(1.0));
    }
}

both_drivers! {
    /// `pool.max_connections`: past the limit of connections to an endpoint, a request is
    /// answered 503 at once instead of queueing; once the busy connection is free, requests pass.
    fn pool_max_connections_overflow(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!("{{ name: one, endpoints: [\"{}\"], pool: {{ max_connections: 1 }} }}", m.endpoint()))
            .route("{ name: r, cluster: one }")
            .start();
        let mut slow = gw.connect();
        slow.send(b"GET /delay/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let r = gw.get("/bytes/1");
        assert_eq!(r.status(), 503, "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "upstream_overflow");
        assert!(start.elapsed() < Duration::from_secs(1), "the overflow waited for the busy connection");
        assert_eq!(slow.read_response().status(), 200);
        assert_eq!(gw.get("/bytes/1").status(), 200);
    }
}
