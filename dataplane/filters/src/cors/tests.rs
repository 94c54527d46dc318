use super::*;
use crate::testing::{continued, ctx, refused, request, response, values};

fn cors(origins: &[&str]) -> Cors {
    Cors {
        allow_origins: origins.iter().map(|s| s.to_string()).collect(),
        allow_methods: ["GET", "HEAD", "POST"].map(String::from).to_vec(),
        allow_headers: vec![],
        expose_headers: vec![],
        max_age: None,
        allow_credentials: false,
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn preflight(origin: &str, method: &str, headers: Option<&str>) -> RequestHead {
    let extra = headers
        .map(|h| format!("Access-Control-Request-Headers: {h}\r\n"))
        .unwrap_or_default();
    request(&format!(
        "OPTIONS /v1/chat HTTP/1.1\r\nHost: api\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: {method}\r\n{extra}\r\n"
    ))
}

fn answer(f: &CorsFactory, req: &mut RequestHead) -> LocalResponse {
    match f.create().on_request_headers(&mut ctx("127.0.0.1:1"), req) {
        Ok(Action::Respond(r)) => r,
        other => panic!("expected a local answer, got {other:?}"),
    }
}

fn allowed(f: &CorsFactory, origin: &str) -> bool {
    f.policy.allows_origin(origin.as_bytes())
}

#[test]
fn preflight_is_answered_with_the_full_policy() {
    let mut c = cors(&["https://app.example.com"]);
    c.allow_methods = strings(&["get", "PUT"]);
    c.allow_headers = strings(&["Authorization", "content-type"]);
    c.expose_headers = strings(&["x-request-id"]);
    c.max_age = Some(600);
    c.allow_credentials = true;
    let f = CorsFactory::new(&c).expect("builds");
    let mut req = preflight("https://app.example.com", "PUT", Some("authorization"));
    let r = answer(&f, &mut req);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let h = &r.headers;
    assert_eq!(
        values(h, "access-control-allow-origin"),
        ["https://app.example.com"]
    );
    assert_eq!(values(h, "access-control-allow-methods"), ["GET, PUT"]);
    assert_eq!(
        values(h, "access-control-allow-headers"),
        ["authorization, content-type"]
    );
    assert_eq!(values(h, "access-control-max-age"), ["600"]);
    assert_eq!(values(h, "access-control-allow-credentials"), ["true"]);
    assert_eq!(values(h, "vary"), ["origin"]);
    // Expose-headers is for actual responses, not preflights.
    assert!(!h.contains("access-control-expose-headers"));
}

#[test]
fn preflight_for_any_origin_answers_star() {
    let f = CorsFactory::new(&cors(&["*"])).expect("builds");
    let r = answer(&f, &mut preflight("https://whoever.test", "POST", None));
    assert_eq!(values(&r.headers, "access-control-allow-origin"), ["*"]);
    assert!(!r.headers.contains("access-control-allow-credentials"));
    assert!(!r.headers.contains("access-control-max-age"));
    assert!(!r.headers.contains("access-control-allow-headers"));
}

#[test]
fn preflight_wildcards_echo_what_was_asked() {
    let mut c = cors(&["https://app.example.com"]);
    c.allow_methods = strings(&["*"]);
    c.allow_headers = strings(&["*"]);
    let f = CorsFactory::new(&c).expect("builds");
    let r = answer(
        &f,
        &mut preflight("https://app.example.com", "PATCH", Some("x-a, x-b")),
    );
    assert_eq!(
        values(&r.headers, "access-control-allow-methods"),
        ["PATCH"]
    );
    assert_eq!(
        values(&r.headers, "access-control-allow-headers"),
        ["x-a, x-b"]
    );
    // Nothing asked, nothing echoed.
    let r = answer(&f, &mut preflight("https://app.example.com", "PATCH", None));
    assert!(!r.headers.contains("access-control-allow-headers"));
}

#[test]
fn preflight_from_a_foreign_origin_or_for_another_method_is_403() {
    let f = CorsFactory::new(&cors(&["https://app.example.com"])).expect("builds");
    let mut c = ctx("127.0.0.1:1");
    for (origin, method) in [
        ("https://evil.test", "GET"),
        ("http://app.example.com", "GET"),
        ("https://app.example.com", "DELETE"),
    ] {
        let mut req = preflight(origin, method, None);
        let e = refused(f.create().on_request_headers(&mut c, &mut req));
        assert_eq!(
            (e.status, e.kind, e.side),
            (403, "cors_forbidden", Side::Downstream)
        );
    }
    // Method names compare case-insensitively.
    let mut req = preflight("https://app.example.com", "post", None);
    assert!(matches!(
        f.create().on_request_headers(&mut c, &mut req),
        Ok(Action::Respond(_))
    ));
}

#[test]
fn options_without_request_method_is_proxied() {
    let f = CorsFactory::new(&cors(&["https://app.example.com"])).expect("builds");
    let mut filter = f.create();
    let mut c = ctx("127.0.0.1:1");
    let mut req =
        request("OPTIONS * HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\r\n");
    assert!(continued(&filter.on_request_headers(&mut c, &mut req)));
    let mut resp = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(continued(&filter.on_response_headers(&mut c, &mut resp)));
    assert_eq!(
        values(&resp.headers, "access-control-allow-origin"),
        ["https://app.example.com"]
    );
}

#[test]
fn allowed_actual_request_gets_cors_fields_on_its_response() {
    let mut c = cors(&["https://app.example.com"]);
    c.expose_headers = strings(&["X-Request-Id", "x-ratelimit-remaining"]);
    c.allow_credentials = true;
    let f = CorsFactory::new(&c).expect("builds");
    let mut filter = f.create();
    let mut cx = ctx("127.0.0.1:1");
    let mut req = request(
        "POST /v1/chat HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\
         Content-Length: 2\r\n\r\n",
    );
    assert!(continued(&filter.on_request_headers(&mut cx, &mut req)));
    // The request itself goes upstream unchanged.
    assert_eq!(values(&req.headers, "origin"), ["https://app.example.com"]);
    let mut resp = response(
        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nVary: Accept-Encoding\r\n\
         Content-Length: 0\r\n\r\n",
    );
    assert!(continued(&filter.on_response_headers(&mut cx, &mut resp)));
    let h = &resp.headers;
    assert_eq!(
        values(h, "access-control-allow-origin"),
        ["https://app.example.com"]
    );
    assert_eq!(values(h, "access-control-allow-credentials"), ["true"]);
    assert_eq!(
        values(h, "access-control-expose-headers"),
        ["x-request-id, x-ratelimit-remaining"]
    );
    assert_eq!(values(h, "vary"), ["Accept-Encoding", "origin"]);
}

#[test]
fn vary_is_not_repeated() {
    let f = CorsFactory::new(&cors(&["*"])).expect("builds");
    let mut filter = f.create();
    let mut cx = ctx("127.0.0.1:1");
    let mut req = request("GET / HTTP/1.1\r\nHost: api\r\nOrigin: https://x.test\r\n\r\n");
    assert!(continued(&filter.on_request_headers(&mut cx, &mut req)));
    let mut resp = response("HTTP/1.1 200 OK\r\nVary: Accept, Origin\r\nContent-Length: 0\r\n\r\n");
    assert!(continued(&filter.on_response_headers(&mut cx, &mut resp)));
    assert_eq!(values(&resp.headers, "vary"), ["Accept, Origin"]);
    assert_eq!(values(&resp.headers, "access-control-allow-origin"), ["*"]);
}

#[test]
fn foreign_or_missing_origin_leaves_the_response_alone() {
    let f = CorsFactory::new(&cors(&["https://app.example.com"])).expect("builds");
    let mut cx = ctx("127.0.0.1:1");
    for raw in [
        "GET / HTTP/1.1\r\nHost: api\r\nOrigin: https://evil.test\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api\r\n\r\n",
    ] {
        let mut filter = f.create();
        let mut req = request(raw);
        assert!(continued(&filter.on_request_headers(&mut cx, &mut req)));
        let mut resp = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(continued(&filter.on_response_headers(&mut cx, &mut resp)));
        assert!(resp.headers.is_empty(), "{raw:?}: {:?}", resp.headers);
        let mut local = LocalResponse::empty(502);
        filter.on_local_response(&cx, &mut local);
        assert!(local.headers.is_empty());
    }
}

#[test]
fn local_error_responses_are_readable_by_the_browser() {
    let f = CorsFactory::new(&cors(&["*.example.com"])).expect("builds");
    let mut filter = f.create();
    let mut cx = ctx("127.0.0.1:1");
    let mut req = request("GET / HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\r\n");
    assert!(continued(&filter.on_request_headers(&mut cx, &mut req)));
    let mut local = ProxyError::new(429, "rate_limited", Side::Downstream, "slow down")
        .to_response("r", weir_filter::ErrorFormat::Gateway);
    filter.on_local_response(&cx, &mut local);
    assert_eq!(
        values(&local.headers, "access-control-allow-origin"),
        ["https://app.example.com"]
    );
    assert_eq!(values(&local.headers, "vary"), ["origin"]);
    assert_eq!(values(&local.headers, "content-type"), ["application/json"]);
}

#[test]
fn subdomain_patterns_match_by_host() {
    let f = CorsFactory::new(&cors(&["*.example.com"])).expect("builds");
    for ok in [
        "https://a.example.com",
        "http://a.b.example.com:8080",
        "HTTPS://A.Example.COM",
    ] {
        assert!(allowed(&f, ok), "{ok}");
    }
    for no in [
        "https://example.com",
        "https://evilexample.com",
        "https://a.example.com.evil.test",
        "https://a.example.com/path",
        "https://a.example.com:80x",
        "a.example.com",
        "https://[::1]:443",
        "null",
    ] {
        assert!(!allowed(&f, no), "{no}");
    }
    let f = CorsFactory::new(&cors(&["https://*.example.com"])).expect("builds");
    assert!(allowed(&f, "https://a.example.com:8443"));
    assert!(!allowed(&f, "http://a.example.com"));
}

#[test]
fn exact_patterns_ignore_case_and_a_trailing_slash() {
    let f = CorsFactory::new(&cors(&[
        "HTTPS://App.Example.com/",
        "http://localhost:3000",
        "http://[::1]:8080",
        "null",
    ]))
    .expect("builds");
    for ok in [
        "https://app.example.com",
        "http://localhost:3000",
        "http://[::1]:8080",
        "null",
    ] {
        assert!(allowed(&f, ok), "{ok}");
    }
    for no in [
        "https://app.example.com:443",
        "http://localhost",
        "http://localhost:30001",
        "https://other.example.com",
    ] {
        assert!(!allowed(&f, no), "{no}");
    }
}

#[test]
fn bad_policies_are_refused() {
    assert_eq!(CorsFactory::new(&cors(&[])).err(), Some(Error::NoOrigins));
    let mut c = cors(&["*", "https://a.test"]);
    c.allow_credentials = true;
    assert_eq!(
        CorsFactory::new(&c).err(),
        Some(Error::CredentialsWithAnyOrigin)
    );
    for bad in [
        "app.example.com",
        "https://",
        "https://app.example.com/path",
        "*example.com",
        "*.",
        "https://a.*.com",
        "https://*.example.com:8443",
        "1http://a.test",
        "https://a.test:x",
        "https://[zz]",
        "",
    ] {
        assert_eq!(
            CorsFactory::new(&cors(&[bad])).err(),
            Some(Error::Origin(bad.to_string())),
            "{bad}"
        );
    }
    let mut c = cors(&["*"]);
    c.allow_methods = strings(&["GET POST"]);
    assert_eq!(
        CorsFactory::new(&c).err(),
        Some(Error::Method("GET POST".into()))
    );
    let mut c = cors(&["*"]);
    c.expose_headers = strings(&["x-ok", "not ok"]);
    assert!(matches!(
        CorsFactory::new(&c),
        Err(Error::HeaderName { filter: "cors", .. })
    ));
}
