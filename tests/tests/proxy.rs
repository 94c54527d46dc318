//! Proxying end to end: bodies both ways, framing, keep-alive and pipelining, forwarding and
//! hop-by-hop headers, routing, rewrites, local answers, and the built-in filters.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::Write;
use std::thread;

use weir_tests::*;

/// A gateway with one catch-all route `all` to cluster `mock`.
fn proxy_to(d: Driver, m: &MockUpstream) -> Gateway {
    Gateway::new()
        .driver(d)
        .cluster("mock", &[m.endpoint()])
        .route("{ name: all, cluster: mock }")
        .start()
}

/// POSTs `body` to `path` with a content-length, writing from another thread so a large body and
/// its echo can cross.
fn post(gw: &Gateway, path: &str, body: &[u8]) -> Response {
    let mut c = gw.connect();
    let mut w = c.stream().try_clone().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test.local\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let body = body.to_vec();
    let writer = thread::spawn(move || {
        w.write_all(head.as_bytes())?;
        w.write_all(&body)
    });
    let r = c.read_response();
    writer.join().unwrap().unwrap();
    r
}

both_drivers! {
    /// GET bodies of 0 B, 1 KiB and 10 MiB arrive whole and byte-exact.
    fn get_bodies(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        for len in [0usize, 1024, 10 << 20] {
            let r = c.get(&format!("/bytes/{len}"));
            assert_eq!(r.status(), 200);
            assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
            assert_eq!(r.body.len(), len);
            assert!(r.body == pattern(len), "body of /bytes/{len} differs");
        }
    }
}

both_drivers! {
    /// POST bodies of 0 B, 1 KiB and 10 MiB reach the upstream byte-exact (echoed back).
    fn post_bodies(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        for (i, len) in [0usize, 1024, 10 << 20].into_iter().enumerate() {
            let body = random_bytes(len, 7 + i as u64);
            let r = post(&gw, "/echo", &body);
            assert_eq!(r.status(), 200, "{}", r.text());
            assert_eq!(r.header("x-received-bytes"), Some(len.to_string().as_str()));
            assert_eq!(r.body.len(), len);
            assert!(r.body == body, "echo of {len} bytes differs");
        }
    }
}

both_drivers! {
    /// A chunked request body goes upstream chunked and complete (extensions ignored).
    fn chunked_request_body(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let pieces: [&[u8]; 4] = [b"a", &[b'b'; 100], &[b'c'; 5000], b"the end"];
        let mut raw = b"POST /echo HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut want = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            if i == 1 {
                raw.extend_from_slice(format!("{:x};ext=1\r\n", p.len()).as_bytes());
            } else {
                raw.extend_from_slice(format!("{:X}\r\n", p.len()).as_bytes());
            }
            raw.extend_from_slice(p);
            raw.extend_from_slice(b"\r\n");
            want.extend_from_slice(p);
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let mut c = gw.connect();
        // In two writes, split inside a chunk, so the proxy sees a body arrive in pieces.
        let split = raw.len() - 3000;
        c.send(&raw[..split]);
        thread::sleep(std::time::Duration::from_millis(50));
        c.send(&raw[split..]);
        let r = c.read_response();
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.header("x-request-transfer"), Some("chunked"));
        assert!(r.body == want, "echoed body differs");
        // The connection is still good.
        assert_eq!(c.get("/bytes/3").body, b"abc");
    }
}

both_drivers! {
    /// A chunked response arrives chunked and complete, and so does the mock's chunked echo.
    fn chunked_response_body(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        let r = c.get("/chunked/100000?chunk=1000");
        assert_eq!(r.status(), 200);
        assert!(r.head.is_chunked(), "{:?}", r.head);
        assert!(r.header("content-length").is_none());
        assert!(r.body == pattern(100_000), "chunked body differs");
        assert!(r.chunks.as_ref().is_some_and(|c| !c.is_empty()));
        // 3 MiB, larger than any buffer on the way.
        let r = c.get("/chunked/3145728?chunk=65536");
        assert!(r.head.is_chunked());
        assert!(r.body == pattern(3 << 20), "3 MiB chunked body differs");
        let r = post(&gw, "/echo-chunked", b"round trip");
        assert!(r.head.is_chunked());
        assert_eq!(r.body, b"round trip");
    }
}

both_drivers! {
    /// HEAD gets the head (with the length a GET would have) and no body, and the connection
    /// stays usable.
    fn head_request(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        c.send(b"HEAD /bytes/100 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let r = c.read_head_response();
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("content-length"), Some("100"));
        assert!(r.body.is_empty());
        // No stray body bytes: the next response parses.
        let r = c.get("/bytes/26");
        assert_eq!(r.body, pattern(26));
        assert!(c.buffered().is_empty());
    }
}

both_drivers! {
    /// Many requests on one client connection, served over pooled upstream connections.
    fn keep_alive_reuse(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let before = m.stat("connections_accepted");
        let mut c = gw.connect();
        for i in 0..100 {
            let r = c.get(&format!("/bytes/{}", i % 7));
            assert_eq!(r.status(), 200);
            assert_eq!(r.body, pattern(i % 7));
            assert!(!r.head.connection_close());
        }
        let opened = m.stat("connections_accepted") - before - 1; // our /stats call is one
        assert!(opened <= 3, "100 sequential requests opened {opened} upstream connections");
    }
}

both_drivers! {
    /// Three requests written at once get three responses, in order.
    fn pipelining(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        c.send(
            b"GET /bytes/5 HTTP/1.1\r\nHost: test.local\r\n\r\n\
              POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 6\r\n\r\nsecond\
              GET /inspect/third HTTP/1.1\r\nHost: test.local\r\n\r\n",
        );
        let r1 = c.read_response();
        let r2 = c.read_response();
        let r3 = c.read_response();
        assert_eq!((r1.status(), r1.body.as_slice()), (200, &b"abcde"[..]));
        assert_eq!((r2.status(), r2.body.as_slice()), (200, &b"second"[..]));
        assert_eq!(r3.json()["path"], "/inspect/third");
    }
}

both_drivers! {
    /// X-Forwarded-For / -Proto and Via are added (appended to), X-Request-Id is generated when
    /// absent and kept when present, and the response carries the same id.
    fn forwarding_headers(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let r = gw.get("/inspect");
        assert_eq!(r.inspected("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(r.inspected("x-forwarded-proto"), ["http"]);
        assert_eq!(r.inspected("via"), ["1.1 weir"]);
        let id = r.inspected("x-request-id");
        assert_eq!(id.len(), 1, "{}", r.text());
        assert!(id[0].len() >= 16 && id[0].bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        assert_eq!(r.header("x-request-id"), Some(id[0].as_str()));
        // Two requests get two ids.
        assert_ne!(gw.get("/inspect").inspected("x-request-id"), id);

        let r = gw.request(
            b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nX-Request-Id: abc-123\r\n\
              X-Forwarded-For: 10.1.2.3\r\nVia: 1.0 edge\r\n\r\n",
        );
        assert_eq!(r.inspected("x-request-id"), ["abc-123"]);
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        assert_eq!(r.inspected("x-forwarded-for"), ["10.1.2.3, 127.0.0.1"]);
        assert_eq!(r.inspected("via"), ["1.0 edge, 1.1 weir"]);
        assert_eq!(r.inspected("host"), ["test.local"]);
    }
}

both_drivers! {
    /// Hop-by-hop fields never reach the upstream: Connection (and the fields it names),
    /// Keep-Alive, TE, Proxy-Connection, and Upgrade without `Connection: upgrade`.
    fn hop_by_hop_stripped(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        let r = c.request(
            b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nConnection: keep-alive, X-Foo\r\n\
              X-Foo: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
              Proxy-Connection: keep-alive\r\nX-End: kept\r\n\r\n",
        );
        assert_eq!(r.status(), 200);
        for h in ["x-foo", "keep-alive", "te", "upgrade", "proxy-connection"] {
            assert!(r.inspected(h).is_empty(), "{h} reached the upstream: {}", r.text());
        }
        for v in r.inspected("connection") {
            assert!(!v.to_ascii_lowercase().contains("x-foo"), "connection: {v}");
        }
        assert_eq!(r.inspected("x-end"), ["kept"]);

        // Connection: close is for this hop only: the upstream does not see it, the client
        // connection closes after the response.
        let r = c.request(b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status(), 200);
        for v in r.inspected("connection") {
            assert!(!v.to_ascii_lowercase().contains("close"), "connection: {v}");
        }
        assert!(r.head.connection_close());
        assert!(c.closed_within(std::time::Duration::from_secs(5)));
    }
}

// === routing ===

const MATCH_ROUTES: &[&str] = &[
    "{ name: host-exact, match: { host: [api.example.com] }, direct_response: { status: 200, body: host-exact } }",
    "{ name: host-wild, match: { host: ['*.example.org'] }, direct_response: { status: 200, body: host-wild } }",
    "{ name: path-exact, match: { path: { exact: /exact } }, direct_response: { status: 200, body: path-exact } }",
    "{ name: path-prefix, match: { path: { prefix: /pre } }, direct_response: { status: 200, body: path-prefix } }",
    "{ name: path-regex, match: { path: { regex: '/items/[0-9]+' } }, direct_response: { status: 200, body: path-regex } }",
    "{ name: method, match: { path: { prefix: /m }, methods: [DELETE, PUT] }, direct_response: { status: 200, body: method } }",
    "{ name: method-other, match: { path: { prefix: /m } }, direct_response: { status: 200, body: method-other } }",
    "{ name: header, match: { path: { prefix: /h }, headers: [{ name: x-env, exact: prod }] }, direct_response: { status: 200, body: header } }",
    "{ name: header-regex, match: { path: { prefix: /h }, headers: [{ name: x-ver, regex: 'v[0-9]+' }] }, direct_response: { status: 200, body: header-regex } }",
    "{ name: query, match: { path: { prefix: /q }, query: [{ name: debug, exact: '1' }] }, direct_response: { status: 200, body: query } }",
];

fn routed(gw: &Gateway, method: &str, host: &str, target: &str, extra: &str) -> (u16, String) {
    let r =
        gw.request(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
    (r.status(), r.text())
}

both_drivers! {
    /// Host (exact, case-insensitive, port ignored; wildcard), path (exact, prefix at a segment
    /// boundary, whole-path regex), method, header and query conditions, first match wins, and
    /// a JSON 404 when nothing matches.
    fn route_matching(d) {
        let mut b = Gateway::new().driver(d);
        for r in MATCH_ROUTES {
            b = b.route(r);
        }
        let gw = b.start();
        let ok = |m: &str, h: &str, t: &str, x: &str, want: &str| {
            assert_eq!(routed(&gw, m, h, t, x), (200, want.to_owned()), "{m} {h}{t} {x:?}");
        };
        let none = |m: &str, h: &str, t: &str, x: &str| {
            let (s, body) = routed(&gw, m, h, t, x);
            assert_eq!(s, 404, "{m} {h}{t} {x:?} should match no route, got {body}");
        };
        ok("GET", "api.example.com", "/anything", "", "host-exact");
        ok("GET", "API.Example.COM:8080", "/x", "", "host-exact");
        ok("GET", "a.example.org", "/x", "", "host-wild");
        ok("GET", "a.b.example.org", "/x", "", "host-wild");
        none("GET", "example.org", "/x", "");
        ok("GET", "test.local", "/exact", "", "path-exact");
        none("GET", "test.local", "/exact/more", "");
        ok("GET", "test.local", "/pre", "", "path-prefix");
        ok("GET", "test.local", "/pre/x/y", "", "path-prefix");
        ok("GET", "test.local", "/pre?x=1", "", "path-prefix");
        none("GET", "test.local", "/prefix", "");
        ok("GET", "test.local", "/items/42", "", "path-regex");
        none("GET", "test.local", "/items/42/x", "");
        none("GET", "test.local", "/items/abc", "");
        ok("DELETE", "test.local", "/m", "", "method");
        ok("PUT", "test.local", "/m", "Content-Length: 0\r\n", "method");
        ok("GET", "test.local", "/m", "", "method-other");
        ok("GET", "test.local", "/h", "X-Env: prod\r\n", "header");
        ok("GET", "test.local", "/h", "x-ver: v12\r\n", "header-regex");
        none("GET", "test.local", "/h", "X-Env: dev\r\nx-ver: 12\r\n");
        ok("GET", "test.local", "/q?debug=1", "", "query");
        ok("GET", "test.local", "/q?a=b&debug=1", "", "query");
        none("GET", "test.local", "/q?debug=0", "");
        none("GET", "test.local", "/q", "");

        // The 404 is JSON with the request id, and keeps the connection.
        let mut c = gw.connect();
        let r = c.get("/nowhere");
        assert_eq!(r.status(), 404);
        assert!(r.header("content-type").unwrap_or("").starts_with("application/json"));
        let j = r.json();
        assert_eq!(j["error"]["type"], "no_route", "{j}");
        assert_eq!(Some(j["error"]["request_id"].as_str().unwrap()), r.header("x-request-id"));
        assert_eq!(c.get("/exact").text(), "path-exact");
    }
}

both_drivers! {
    /// Path prefix, path regex and host rewrites, checked on what the upstream received; the
    /// query is kept.
    fn rewrites(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: rw-prefix, match: { path: { prefix: /api/v1 } }, rewrite: { path_prefix: /inspect/v2 }, cluster: mock }")
            .route("{ name: rw-host, match: { path: { prefix: /hostrw } }, rewrite: { path_prefix: /inspect, host: backend.internal }, cluster: mock }")
            .route(r#"
                name: rw-regex
                match: { path: { regex: "/re/([a-z]+)/([0-9]+)" } }
                rewrite: { path_regex: { pattern: "^/re/([a-z]+)/([0-9]+)$", substitution: "/inspect/$2/$1" } }
                cluster: mock
            "#)
            .start();
        let r = gw.get("/api/v1/users?x=1");
        assert_eq!(r.json()["path"], "/inspect/v2/users?x=1", "{}", r.text());
        assert_eq!(r.inspected("host"), ["test.local"]);
        let r = gw.get("/hostrw/a");
        assert_eq!(r.json()["path"], "/inspect/a");
        assert_eq!(r.inspected("host"), ["backend.internal"]);
        let r = gw.get("/re/abc/12?k=v");
        assert_eq!(r.json()["path"], "/inspect/12/abc?k=v");
    }
}

both_drivers! {
    /// `direct_response` answers with its status, body, type and headers; `redirect` answers with
    /// the right status and an absolute Location.
    fn direct_response_and_redirect(d) {
        let gw = Gateway::new()
            .driver(d)
            .route("{ name: direct, match: { path: { exact: /direct } }, direct_response: { status: 201, body: made here, content_type: text/x-test, headers: { x-direct: 'yes' } } }")
            .route("{ name: moved, match: { path: { exact: /old } }, redirect: { status: 301, path: /new } }")
            .route("{ name: secure, match: { path: { exact: /login } }, redirect: { scheme: https, host: secure.example.com, strip_query: true } }")
            .start();
        let mut c = gw.connect();
        let r = c.get("/direct");
        assert_eq!(r.status(), 201);
        assert_eq!(r.text(), "made here");
        assert_eq!(r.header("content-type"), Some("text/x-test"));
        assert_eq!(r.header("x-direct"), Some("yes"));
        let r = c.get("/old?q=1");
        assert_eq!(r.status(), 301);
        assert_eq!(r.header("location"), Some("http://test.local/new?q=1"));
        let r = c.get("/login?next=/x");
        assert_eq!(r.status(), 302);
        assert_eq!(r.header("location"), Some("https://secure.example.com/login"));
    }
}

both_drivers! {
    /// A client's `Connection: close` is honoured on answers the gateway makes itself too: the
    /// response says `connection: close` and the connection is closed after it (HTTP/1.0 without
    /// keep-alive likewise).
    fn local_answers_honour_connection_close(d) {
        let gw = Gateway::new()
            .driver(d)
            .route("{ name: direct, direct_response: { status: 200, body: here } }")
            .start();
        let mut c = gw.connect();
        let r = c.request(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed_within(std::time::Duration::from_secs(2)), "connection left open");
        let mut c = gw.connect();
        let r = c.request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.text(), "here");
        assert!(c.closed_within(std::time::Duration::from_secs(2)), "HTTP/1.0 connection left open");
    }
}

// === filters ===

both_drivers! {
    /// The `headers` filter sets, adds and removes on the request and on the response.
    fn headers_filter_both_ways(d) {
        let m = MockUpstream::id("m1").start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route(r#"
                name: hdr
                cluster: mock
                filters:
                  - type: headers
                    request: { set: { x-set: new }, add: { x-add: added }, remove: [x-remove] }
                    response: { set: { x-resp-set: "1" }, add: { x-resp-add: "2" }, remove: [x-mock-id] }
            "#)
            .start();
        let r = gw.request(
            b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nX-Set: old\r\nX-Add: original\r\n\
              X-Remove: gone\r\nX-Keep: kept\r\n\r\n",
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.inspected("x-set"), ["new"]);
        assert_eq!(r.inspected("x-add"), ["original", "added"]);
        assert!(r.inspected("x-remove").is_empty());
        assert_eq!(r.inspected("x-keep"), ["kept"]);
        assert_eq!(r.header("x-resp-set"), Some("1"));
        assert_eq!(r.header("x-resp-add"), Some("2"));
        assert_eq!(r.header("x-mock-id"), None);
    }
}

both_drivers! {
    /// CORS: an allowed preflight is answered 204 by the gateway (never reaching the upstream),
    /// a refused one 403; actual requests get the allow-origin and expose headers.
    fn cors(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route(r#"
                name: cors
                cluster: mock
                filters:
                  - type: cors
                    allow_origins: ["https://app.example.com"]
                    allow_methods: [GET, POST, PUT]
                    allow_headers: [content-type, x-token]
                    expose_headers: [x-request-id]
                    max_age: 600
            "#)
            .start();
        let before = m.stat("requests");
        let r = gw.request(
            b"OPTIONS /inspect HTTP/1.1\r\nHost: test.local\r\nOrigin: https://app.example.com\r\n\
              Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
        );
        assert_eq!(r.status(), 204, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
        assert!(r.header("access-control-allow-methods").unwrap_or("").contains("PUT"));
        assert!(r.header("access-control-allow-headers").unwrap_or("").contains("x-token"));
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert!(r.header_all("vary").iter().any(|v| v.to_ascii_lowercase().contains("origin")));
        let r = gw.request(
            b"OPTIONS /inspect HTTP/1.1\r\nHost: test.local\r\nOrigin: https://evil.example\r\n\
              Access-Control-Request-Method: GET\r\n\r\n",
        );
        assert_eq!(r.status(), 403);
        assert_eq!(r.header("access-control-allow-origin"), None);
        assert_eq!(m.stat("requests"), before + 1, "a preflight reached the upstream");

        let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nOrigin: https://app.example.com\r\n\r\n");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(r.header("access-control-expose-headers"), Some("x-request-id"));
        assert_eq!(r.inspected("origin"), ["https://app.example.com"]);
        let r = gw.request(b"GET /inspect HTTP/1.1\r\nHost: test.local\r\nOrigin: https://evil.example\r\n\r\n");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
}

both_drivers! {
    /// `ip_acl`: a denied client (or one outside the allow list) gets 403 and the upstream is not
    /// asked; an allowed one passes.
    fn ip_acl(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: deny, match: { path: { prefix: /deny } }, cluster: mock, filters: [{ type: ip_acl, deny: [127.0.0.1] }] }")
            .route("{ name: other, match: { path: { prefix: /other } }, cluster: mock, filters: [{ type: ip_acl, allow: [10.0.0.0/8] }] }")
            .route("{ name: local, match: { path: { prefix: /local } }, cluster: mock, filters: [{ type: ip_acl, allow: [127.0.0.0/8], deny: [10.6.0.0/16] }] }")
            .start();
        let before = m.stat("requests");
        for path in ["/deny", "/other"] {
            let r = gw.get(path);
            assert_eq!(r.status(), 403, "{path}: {}", r.text());
            assert_eq!(r.json()["error"]["type"], "ip_denied");
        }
        assert_eq!(m.stat("requests"), before + 1, "a denied request reached the upstream");
        assert_eq!(gw.get("/local").status(), 404); // the mock's own 404: it got through
    }
}

both_drivers! {
    /// `size_limit`: a body at the limit passes; over it (content-length or chunked) is 413.
    fn size_limit_filter(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .cluster("mock", &[m.endpoint()])
            .route("{ name: small, cluster: mock, filters: [{ type: size_limit, max_request_bytes: 1KiB }] }")
            .start();
        let r = post(&gw, "/echo", &[b'x'; 1024]);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body.len(), 1024);
        // Over the limit by content-length: refused on the head, before any body is sent.
        let mut c = gw.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5000\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status(), 413, "{}", r.text());
        // Over the limit in chunks.
        let mut c = gw.connect();
        let mut raw = b"POST /echo HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..4 {
            raw.extend_from_slice(b"200\r\n");
            raw.extend_from_slice(&[b'y'; 0x200]);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let _ = c.try_send(&raw);
        let r = c.read_response();
        assert_eq!(r.status(), 413, "{}", r.text());
    }
}

both_drivers! {
    /// Upstream statuses and bodies pass through unchanged (errors are not replaced), bodiless
    /// statuses stay bodiless, and the connection stays usable after each.
    fn statuses_pass_through(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        for code in [200u16, 201, 404, 418, 500, 503] {
            let r = c.get(&format!("/status/{code}"));
            assert_eq!(r.status(), code);
            assert_eq!(r.json()["status"], code, "body of {code} replaced: {}", r.text());
        }
        for code in [204u16, 304] {
            let r = c.get(&format!("/status/{code}"));
            assert_eq!(r.status(), code);
            assert!(r.body.is_empty());
            assert!(r.header("transfer-encoding").is_none(), "{code} with transfer-encoding: {:?}", r.head);
        }
        assert_eq!(c.get("/bytes/3").body, b"abc", "framing lost after the bodiless responses");
    }
}

both_drivers! {
    /// HEAD of a resource whose GET is chunked: no body, and no false `content-length: 0` (the
    /// length of the GET is unknown; RFC 9110 §9.3.2 allows omitting it, not misstating it).
    fn head_of_chunked_resource(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        c.send(b"HEAD /chunked/100 HTTP/1.1\r\nHost: test.local\r\n\r\n");
        let r = c.read_head_response();
        assert_eq!(r.status(), 200);
        assert!(r.body.is_empty());
        assert_ne!(r.header("content-length"), Some("0"), "HEAD of a 100-byte chunked body claims length 0: {:?}", r.head);
        assert_eq!(c.get("/bytes/2").body, b"ab");
        assert!(c.buffered().is_empty());
    }
}

both_drivers! {
    /// HTTP/1.0 clients: closed after the response unless they ask for keep-alive; an
    /// absolute-form target is reduced to origin form with its authority as Host.
    fn http10_and_absolute_form(d) {
        let m = MockUpstream::start();
        let gw = proxy_to(d, &m);
        let mut c = gw.connect();
        let r = c.request(b"GET /bytes/4 HTTP/1.0\r\n\r\n");
        assert_eq!(r.body, b"abcd");
        assert!(c.closed_within(std::time::Duration::from_secs(5)), "HTTP/1.0 connection kept open");
        let mut c = gw.connect();
        let r = c.request(b"GET /bytes/4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.body, b"abcd");
        assert_eq!(c.request(b"GET /bytes/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").body, b"ab");
        let r = gw.request(b"GET http://absolute.example:8080/inspect/abs?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n");
        assert_eq!(r.json()["path"], "/inspect/abs?x=1");
        assert_eq!(r.inspected("host"), ["absolute.example:8080"]);
    }
}
