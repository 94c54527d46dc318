//! The process: graceful drain on SIGTERM, reload on SIGHUP (good and bad configs), and config
//! errors at start and with `--check`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use weir_tests::*;

both_drivers! {
    /// SIGTERM while an SSE stream is open: readiness turns 503, new connections are refused soon
    /// after, an idle keep-alive connection is closed, but the open stream receives every event
    /// and `[DONE]`; then the process exits 0.
    fn graceful_drain(d) {
        let m = MockUpstream::start();
        let mut gw = Gateway::new()
            .driver(d)
            .workers(2)
            .top_yaml("shutdown: { drain_timeout: 20s }")
            .cluster("mock", &[m.endpoint()])
            .route("{ name: all, cluster: mock }")
            .start();
        let addr = gw.addr();
        let admin = gw.admin_addr();
        let mut idle = gw.connect();
        assert_eq!(idle.get("/bytes/1").status(), 200);

        let mut c = gw.connect();
        c.send(b"GET /sse?events=10&interval_ms=200 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let mut s = c.into_sse();
        let first = s.next_event().unwrap();
        assert!(first.data().starts_with("{\"i\":0"));
        let term = Instant::now();
        gw.sigterm();

        wait_until("readiness to turn 503", Duration::from_secs(5), Duration::from_millis(20), || {
            let mut a = Client::try_connect(admin).ok()?;
            a.try_send(b"GET /healthz/ready HTTP/1.1\r\nHost: a\r\n\r\n").ok()?;
            (a.try_read_response().ok()?.status() == 503).then_some(())
        });
        wait_until("new connections to be refused", Duration::from_secs(5), Duration::from_millis(20), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err().then_some(())
        });
        assert!(idle.closed_within(Duration::from_secs(5)), "an idle keep-alive connection was kept open while draining");
        let refused_after = term.elapsed();

        let rest = s.rest();
        assert_eq!(rest.len(), 10, "{:?}", rest.iter().map(|e| e.data()).collect::<Vec<_>>());
        for (i, e) in rest[..9].iter().enumerate() {
            assert!(e.data().starts_with(&format!("{{\"i\":{},", i + 1)), "{}", e.data());
        }
        assert_eq!(rest[9].data(), "[DONE]");
        // The listener closed while the stream still had most of its events to send.
        assert!(refused_after < rest[9].at.duration_since(term), "new connections were accepted until the stream ended");

        let status = gw.wait_exit(Duration::from_secs(15)).unwrap_or_else(|| panic!("weir did not exit after draining:\n{}", gw.stderr()));
        assert!(status.success(), "exit status {status:?}; stderr:\n{}", gw.stderr());
        assert!(gw.stderr().contains("weir: stopped"));
    }
}

/// The base config of the reload test, as a builder, so the test can derive the next configs.
fn reload_base(d: Driver, m: &MockUpstream) -> GatewayBuilder {
    Gateway::new()
        .driver(d)
        .workers(2)
        .cluster("mock", &[m.endpoint()])
        .route("{ name: sse, match: { path: { prefix: /sse } }, cluster: mock }")
        .route("{ name: one, match: { path: { exact: /one } }, direct_response: { status: 200, body: one } }")
}

both_drivers! {
    /// SIGHUP after the config file gained a route: the route answers (on new and on kept-alive
    /// connections), and a stream started before the reload finishes. A config that does not
    /// validate, or does not parse, is refused on SIGHUP and the previous one keeps serving.
    fn reload_on_sighup(d) {
        let m = MockUpstream::start();
        let base = reload_base(d, &m);
        let gw = base.clone().start();
        let mut kept = gw.connect();
        assert_eq!(kept.get("/one").text(), "one");
        assert_eq!(kept.get("/two").status(), 404);

        let mut c = gw.connect();
        c.send(b"GET /sse?events=5&interval_ms=200 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let mut stream = c.into_sse();
        assert!(stream.next_event().is_some());

        let with_two = base
            .clone()
            .route("{ name: two, match: { path: { exact: /two } }, direct_response: { status: 200, body: two } }");
        gw.write_config(&with_two.yaml());
        gw.sighup();
        wait_until("the new route to answer", Duration::from_secs(10), Duration::from_millis(50), || {
            let r = gw.get("/two");
            (r.status() == 200).then_some(()).filter(|_| r.text() == "two")
        });
        // (That a connection kept alive across the reload sees the new route on its very next
        // request is `reload_reaches_idle_keepalive_connections`.)
        assert_eq!(kept.get("/one").text(), "one");
        let rest = stream.rest();
        assert_eq!(rest.last().map(|e| e.data()).as_deref(), Some("[DONE]"));
        assert_eq!(rest.len(), 5, "the stream lost events across the reload");

        // A config that fails validation (unknown cluster): refused, old one serves.
        let refusals = |gw: &Gateway| gw.stderr().matches("reload refused").count();
        let bad = with_two
            .clone()
            .route("{ name: three, match: { path: { exact: /three } }, cluster: nowhere }");
        gw.write_config(&bad.yaml());
        gw.sighup();
        wait_until("the invalid config to be refused", Duration::from_secs(10), Duration::from_millis(50), || {
            (refusals(&gw) >= 1).then_some(())
        });
        assert!(gw.stderr().contains("nowhere"), "the refusal does not say why:\n{}", gw.stderr());
        assert_eq!(gw.get("/two").text(), "two");
        assert_eq!(gw.get("/one").text(), "one");
        assert_eq!(gw.get("/three").status(), 404);

        // A file that is not even YAML: refused the same way.
        gw.write_config("listeners: [ {{ oops\n");
        gw.sighup();
        wait_until("the broken file to be refused", Duration::from_secs(10), Duration::from_millis(50), || {
            (refusals(&gw) >= 2).then_some(())
        });
        assert_eq!(kept.get("/two").text(), "two");
        assert_eq!(gw.get("/two").text(), "two");
        assert_eq!(admin_ready(&gw), 200);
    }
}

both_drivers! {
    /// "New requests see the new generation at once" holds for a connection that was idle in
    /// keep-alive during the reload too: its very next request is routed by the new config.
    fn reload_reaches_idle_keepalive_connections(d) {
        let m = MockUpstream::start();
        let base = reload_base(d, &m).workers(1);
        let gw = base.clone().start();
        let mut kept = gw.connect();
        assert_eq!(kept.get("/two").status(), 404);
        let with_two = base
            .clone()
            .route("{ name: two, match: { path: { exact: /two } }, direct_response: { status: 200, body: two } }");
        gw.write_config(&with_two.yaml());
        gw.sighup();
        wait_until("the new route to answer", Duration::from_secs(10), Duration::from_millis(50), || {
            (gw.get("/two").status() == 200).then_some(())
        });
        let r = kept.get("/two");
        assert_eq!(
            (r.status(), r.text()),
            (200, "two".to_owned()),
            "the first request on a connection kept alive across the reload was served by the old config"
        );
    }
}

fn admin_ready(gw: &Gateway) -> u16 {
    gw.admin_get("/healthz/ready").status()
}

/// Runs `weir ARGS` to completion (at most 30 s); exit status, stdout, stderr.
fn run_weir(args: &[&str]) -> (ExitStatus, String, String) {
    let dir = TempDir::new("run");
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let mut child = Command::new(bin_path("weir"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weir {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out), read(&err))
}

both_drivers! {
    /// An invalid config at start: exit code 2 and `file:line: field ...: message` on stderr,
    /// for a schema error and for a validation error; a missing file too. `--check` prints
    /// `config OK` for a good file and exits 2 for a bad one.
    fn bad_config_and_check(d) {
        let dir = TempDir::new("cfg");
        let drv = d.as_arg();
        let unknown = dir.path().join("unknown.yaml");
        std::fs::write(&unknown, "listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routez: []\n").unwrap();
        let u = unknown.to_str().unwrap();
        let (st, _, err) = run_weir(&["--config", u, "--driver", drv]);
        assert_eq!(st.code(), Some(2), "stderr: {err}");
        assert!(err.contains(&format!("{u}:4: ")), "no file:line in: {err}");
        assert!(err.contains("routez"), "the field is not named: {err}");

        let missing = dir.path().join("missing.yaml");
        std::fs::write(
            &missing,
            "admin: { address: \"127.0.0.1:0\" }\nlisteners:\n  - name: a\n    address: 127.0.0.1:0\n    routes:\n      - name: r\n        cluster: nope\n",
        )
        .unwrap();
        let mpath = missing.to_str().unwrap();
        let (st, _, err) = run_weir(&["--config", mpath, "--driver", drv]);
        assert_eq!(st.code(), Some(2), "stderr: {err}");
        assert!(err.contains(&format!("{mpath}:7: field `listeners[0].routes[0].cluster`")), "stderr: {err}");
        assert!(err.contains("nope"), "stderr: {err}");

        let absent = dir.path().join("absent.yaml");
        let (st, _, err) = run_weir(&["--config", absent.to_str().unwrap(), "--driver", drv]);
        assert_eq!(st.code(), Some(2), "stderr: {err}");
        assert!(err.contains("absent.yaml"), "stderr: {err}");

        let good = dir.path().join("good.yaml");
        std::fs::write(
            &good,
            Gateway::new().route("{ name: r, direct_response: { status: 200 } }").yaml(),
        )
        .unwrap();
        let (st, out, err) = run_weir(&["--check", "--config", good.to_str().unwrap()]);
        assert!(st.success(), "--check on a good file: {st:?} {err}");
        assert!(out.contains("config OK"), "stdout: {out}");
        let (st, _, err) = run_weir(&["--check", "--config", mpath]);
        assert_eq!(st.code(), Some(2), "--check on a bad file: {err}");
        assert!(err.contains(&format!("{mpath}:7:")), "stderr: {err}");
    }
}

both_drivers! {
    /// A reload that does not touch a cluster keeps that cluster's connection pool: after the
    /// config gains a route, requests through the cluster reuse the pooled upstream connection
    /// (no new connection opened); a reload that changes the cluster starts a fresh pool.
    fn unchanged_cluster_keeps_its_pool(d) {
        let m = MockUpstream::start();
        let base = Gateway::new()
            .driver(d)
            .workers(1)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: up, match: { path: { prefix: /inspect } }, cluster: mock }");
        let gw = base.clone().start();
        let opened = |gw: &Gateway| {
            metric(&gw.metrics(), "weir_upstream_connections_opened_total", &[("cluster", "mock")])
                .unwrap_or(0.0)
        };
        for _ in 0..10 {
            assert_eq!(gw.get("/inspect").status(), 200);
        }
        let before = opened(&gw);
        assert!(before >= 1.0);

        let with_route = base
            .clone()
            .route("{ name: extra, match: { path: { exact: /extra } }, direct_response: { status: 200, body: extra } }");
        gw.write_config(&with_route.yaml());
        wait_until("the new route", Duration::from_secs(10), Duration::from_millis(50), || {
            (gw.get("/extra").text() == "extra").then_some(())
        });
        for _ in 0..10 {
            assert_eq!(gw.get("/inspect").status(), 200);
        }
        assert_eq!(opened(&gw), before, "the pool of an unchanged cluster was rebuilt");

        let reweighted = Gateway::new()
            .driver(d)
            .workers(1)
            .cluster_yaml(&format!(
                "{{ name: mock, endpoints: [\"{}\"], pool: {{ max_idle: 64 }} }}",
                m.endpoint()
            ))
            .route("{ name: up, match: { path: { prefix: /inspect } }, cluster: mock }")
            .route("{ name: extra2, match: { path: { exact: /extra2 } }, direct_response: { status: 200, body: extra2 } }");
        gw.write_config(&reweighted.yaml());
        wait_until("the changed config", Duration::from_secs(10), Duration::from_millis(50), || {
            (gw.get("/extra2").text() == "extra2").then_some(())
        });
        assert_eq!(gw.get("/inspect").status(), 200);
        assert!(opened(&gw) > before, "a changed cluster must start a fresh pool");
    }
}
