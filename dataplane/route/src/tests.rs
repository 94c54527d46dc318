use bytes::BytesMut;
use weir_config::{PathMatch, Redirect, RegexRewrite, Rewrite, RouteMatch, ValueMatch};
use weir_http::{parse_request, HeadLimits, RequestHead};

use crate::{redirect_location, Error, Rewriter, RouteMatcher, RouteTable};

// === helpers ===

/// A request head parsed by the real codec: `req("GET", "example.com", "/x", &[("a", "1")])`.
fn req(method: &str, host: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_request(&mut buf, &HeadLimits::default())
        .expect("valid request")
        .expect("complete request")
}

fn get(host: &str, target: &str) -> RequestHead {
    req("GET", host, target, &[])
}

fn hosts(h: &[&str]) -> RouteMatch {
    RouteMatch {
        host: h.iter().map(|s| s.to_string()).collect(),
        ..RouteMatch::default()
    }
}

fn path(p: PathMatch) -> RouteMatch {
    RouteMatch {
        path: Some(p),
        ..RouteMatch::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    path(PathMatch::Prefix(p.into()))
}

fn exact(name: &str, v: &str) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        exact: Some(v.into()),
        regex: None,
        present: None,
    }
}

fn regex(name: &str, re: &str) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        exact: None,
        regex: Some(re.into()),
        present: None,
    }
}

fn present(name: &str, p: bool) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        exact: None,
        regex: None,
        present: Some(p),
    }
}

fn m(rm: &RouteMatch) -> RouteMatcher {
    RouteMatcher::new(rm).expect("route compiles")
}

fn target(r: &RequestHead) -> &str {
    std::str::from_utf8(&r.target).expect("utf-8 target")
}

// === hosts ===

#[test]
fn empty_match_takes_everything() {
    let r = m(&RouteMatch::default());
    assert!(r.is_catch_all());
    assert!(r.matches(&get("a.com", "/")));
    assert!(r.matches(&req("DELETE", "b.org:81", "/x/y?z=1", &[("x", "y")])));
}

#[test]
fn exact_host_ignores_case_and_port() {
    let r = m(&hosts(&["API.example.com"]));
    assert!(r.matches(&get("api.example.com", "/")));
    assert!(r.matches(&get("Api.Example.COM", "/")));
    assert!(r.matches(&get("api.example.com:8443", "/")));
    assert!(
        r.matches(&get("api.example.com.", "/")),
        "trailing dot of an FQDN"
    );
    assert!(!r.matches(&get("example.com", "/")));
    assert!(!r.matches(&get("xapi.example.com", "/")));
    assert!(!r.matches(&get("api.example.com.evil", "/")));
}

#[test]
fn configured_host_port_is_ignored_too() {
    let r = m(&hosts(&["api.example.com:8080"]));
    assert!(r.matches(&get("api.example.com", "/")));
    assert!(r.matches(&get("api.example.com:9", "/")));
}

#[test]
fn ipv6_hosts() {
    let r = m(&hosts(&["[::1]"]));
    assert!(r.matches(&get("[::1]:8080", "/")));
    assert!(r.matches(&get("[::1]", "/")));
    assert!(!r.matches(&get("[::2]", "/")));
}

#[test]
fn wildcard_host_takes_subdomains_at_any_depth_only() {
    let r = m(&hosts(&["*.Example.com"]));
    assert!(r.matches(&get("a.example.com", "/")));
    assert!(r.matches(&get("a.b.c.EXAMPLE.com:80", "/")));
    assert!(!r.matches(&get("example.com", "/")));
    assert!(!r.matches(&get("badexample.com", "/")));
    assert!(!r.matches(&get("a.example.org", "/")));
}

#[test]
fn any_of_several_hosts() {
    let r = m(&hosts(&["a.com", "*.b.com"]));
    assert!(r.matches(&get("a.com", "/")));
    assert!(r.matches(&get("x.b.com", "/")));
    assert!(!r.matches(&get("b.com", "/")));
}

#[test]
fn very_long_host_takes_the_heap_path() {
    let long = format!("{}.example.com", "A".repeat(300));
    let r = m(&hosts(&[&long.to_ascii_lowercase()]));
    assert!(r.matches(&get(&long, "/")));
    let w = m(&hosts(&["*.example.com"]));
    assert!(w.matches(&get(&long, "/")));
}

#[test]
fn bad_hosts_are_refused() {
    for h in ["", "*", "*.", "a.*.com", "a/b", "a b", "*.:80"] {
        assert!(
            matches!(RouteMatcher::new(&hosts(&[h])), Err(Error::Invalid { .. })),
            "{h:?}"
        );
    }
}

// === paths ===

#[test]
fn prefix_at_segment_boundary() {
    let r = m(&prefix("/api"));
    assert!(r.matches(&get("h", "/api")));
    assert!(r.matches(&get("h", "/api/")));
    assert!(r.matches(&get("h", "/api/x/y")));
    assert!(r.matches(&get("h", "/api?q=1")));
    assert!(!r.matches(&get("h", "/apix")));
    assert!(!r.matches(&get("h", "/ap")));
    assert!(!r.matches(&get("h", "/")));
    assert!(!r.matches(&get("h", "/API")), "paths are case-sensitive");
}

#[test]
fn prefix_ending_in_slash() {
    let r = m(&prefix("/api/"));
    assert!(r.matches(&get("h", "/api/")));
    assert!(r.matches(&get("h", "/api/x")));
    assert!(!r.matches(&get("h", "/api")));
    assert!(!r.matches(&get("h", "/apix")));
}

#[test]
fn root_prefix_takes_every_path() {
    let r = m(&prefix("/"));
    for t in ["/", "/x", "/x/y?z", "/?q"] {
        assert!(r.matches(&get("h", t)), "{t}");
    }
}

#[test]
fn exact_path_ignores_query() {
    let r = m(&path(PathMatch::Exact("/v1/chat".into())));
    assert!(r.matches(&get("h", "/v1/chat")));
    assert!(r.matches(&get("h", "/v1/chat?stream=true")));
    assert!(!r.matches(&get("h", "/v1/chat/")));
    assert!(!r.matches(&get("h", "/v1/cha")));
}

#[test]
fn regex_path_must_match_whole_path() {
    let r = m(&path(PathMatch::Regex("/users/[0-9]+".into())));
    assert!(r.matches(&get("h", "/users/42")));
    assert!(
        r.matches(&get("h", "/users/42?x=y")),
        "query is not part of the path"
    );
    assert!(!r.matches(&get("h", "/users/42/posts")));
    assert!(!r.matches(&get("h", "/v1/users/42")));
    // An alternation stays inside the anchors.
    let alt = m(&path(PathMatch::Regex("/a|/b".into())));
    assert!(alt.matches(&get("h", "/a")));
    assert!(!alt.matches(&get("h", "/ab")));
    assert!(!alt.matches(&get("h", "/xb")));
}

#[test]
fn absolute_form_target_matches_on_its_path_and_authority() {
    let mut buf = BytesMut::from(
        &b"GET http://Api.Example.com:81/api/x?y HTTP/1.1\r\nHost: other\r\n\r\n"[..],
    );
    let r = parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete");
    let mut rm = prefix("/api");
    rm.host = vec!["api.example.com".into()];
    assert!(m(&rm).matches(&r));
}

#[test]
fn bad_paths_are_refused() {
    assert!(RouteMatcher::new(&prefix("api")).is_err());
    assert!(RouteMatcher::new(&path(PathMatch::Exact("".into()))).is_err());
    let e = RouteMatcher::new(&path(PathMatch::Regex("(".into()))).expect_err("bad regex");
    assert!(
        matches!(&e, Error::Regex { field, .. } if field == "match.path.regex"),
        "{e}"
    );
}

// === methods ===

#[test]
fn methods_exact_uppercase() {
    let rm = RouteMatch {
        methods: vec!["GET".into(), "POST".into()],
        ..RouteMatch::default()
    };
    let r = m(&rm);
    assert!(r.matches(&req("GET", "h", "/", &[])));
    assert!(r.matches(&req("POST", "h", "/", &[("content-length", "0")])));
    assert!(!r.matches(&req("PUT", "h", "/", &[])));
    assert!(
        !r.matches(&req("get", "h", "/", &[])),
        "methods are case-sensitive"
    );
    assert!(!r.matches(&req("GETX", "h", "/", &[])));
    let lower = RouteMatch {
        methods: vec!["get".into()],
        ..RouteMatch::default()
    };
    assert!(RouteMatcher::new(&lower).is_err());
}

// === headers ===

fn with_headers(h: Vec<ValueMatch>) -> RouteMatcher {
    m(&RouteMatch {
        headers: h,
        ..RouteMatch::default()
    })
}

#[test]
fn header_exact_with_case_insensitive_name() {
    let r = with_headers(vec![exact("X-Tenant", "acme")]);
    assert!(r.matches(&req("GET", "h", "/", &[("x-tenant", "acme")])));
    assert!(r.matches(&req("GET", "h", "/", &[("X-TENANT", "acme")])));
    assert!(
        !r.matches(&req("GET", "h", "/", &[("x-tenant", "Acme")])),
        "values are exact"
    );
    assert!(!r.matches(&req("GET", "h", "/", &[("x-tenant", "acme2")])));
    assert!(!r.matches(&get("h", "/")));
    // Any of repeated fields may satisfy it.
    assert!(r.matches(&req(
        "GET",
        "h",
        "/",
        &[("x-tenant", "other"), ("x-tenant", "acme")]
    )));
}

#[test]
fn header_regex_matches_whole_value() {
    let r = with_headers(vec![regex("authorization", "Bearer sk-[a-z0-9]+")]);
    assert!(r.matches(&req(
        "GET",
        "h",
        "/",
        &[("Authorization", "Bearer sk-abc123")]
    )));
    assert!(!r.matches(&req(
        "GET",
        "h",
        "/",
        &[("Authorization", "xBearer sk-abc")]
    )));
    assert!(!r.matches(&req(
        "GET",
        "h",
        "/",
        &[("Authorization", "Bearer sk-abc!")]
    )));
    assert!(!r.matches(&get("h", "/")));
}

#[test]
fn header_present_and_absent() {
    let yes = with_headers(vec![present("X-Debug", true)]);
    let no = with_headers(vec![present("x-debug", false)]);
    let with = req("GET", "h", "/", &[("x-debug", "")]);
    let without = get("h", "/");
    assert!(yes.matches(&with));
    assert!(!yes.matches(&without));
    assert!(!no.matches(&with));
    assert!(no.matches(&without));
}

#[test]
fn all_header_conditions_must_hold() {
    let r = with_headers(vec![
        regex("a", "[0-9]+"),
        exact("b", "x"),
        present("c", false),
    ]);
    assert!(r.matches(&req("GET", "h", "/", &[("a", "12"), ("b", "x")])));
    assert!(!r.matches(&req("GET", "h", "/", &[("a", "12")])));
    assert!(!r.matches(&req("GET", "h", "/", &[("a", "1x"), ("b", "x")])));
    assert!(!r.matches(&req(
        "GET",
        "h",
        "/",
        &[("a", "12"), ("b", "x"), ("c", "1")]
    )));
}

#[test]
fn value_conditions_need_exactly_one_kind() {
    let none = ValueMatch {
        name: "a".into(),
        exact: None,
        regex: None,
        present: None,
    };
    let two = ValueMatch {
        name: "a".into(),
        exact: Some("1".into()),
        regex: None,
        present: Some(true),
    };
    for v in [none, two] {
        assert!(RouteMatcher::new(&RouteMatch {
            headers: vec![v.clone()],
            ..RouteMatch::default()
        })
        .is_err());
        assert!(RouteMatcher::new(&RouteMatch {
            query: vec![v],
            ..RouteMatch::default()
        })
        .is_err());
    }
    let e = RouteMatcher::new(&RouteMatch {
        headers: vec![exact("a", "1"), regex("b", "[")],
        ..RouteMatch::default()
    })
    .expect_err("bad regex");
    assert!(
        matches!(&e, Error::Regex { field, .. } if field == "match.headers[1].regex"),
        "{e}"
    );
}

// === query ===

fn with_query(q: Vec<ValueMatch>) -> RouteMatcher {
    m(&RouteMatch {
        query: q,
        ..RouteMatch::default()
    })
}

#[test]
fn query_exact_is_percent_decoded() {
    let r = with_query(vec![exact("q", "hello world/ü")]);
    assert!(r.matches(&get("h", "/?q=hello+world%2F%C3%BC")));
    assert!(r.matches(&get("h", "/?q=hello%20world/%c3%bc")));
    assert!(r.matches(&get("h", "/?a=1&q=hello+world%2f%C3%BC&b")));
    assert!(!r.matches(&get("h", "/?q=hello+world")));
    assert!(
        !r.matches(&get("h", "/?Q=hello+world%2F%C3%BC")),
        "names are case-sensitive"
    );
    assert!(!r.matches(&get("h", "/")));
}

#[test]
fn query_names_are_decoded_too_and_bad_escapes_kept() {
    let r = with_query(vec![exact("a b", "100%")]);
    assert!(r.matches(&get("h", "/?a+b=100%")));
    assert!(r.matches(&get("h", "/?a%20b=100%25")));
    let z = with_query(vec![exact("z", "%zz")]);
    assert!(z.matches(&get("h", "/?z=%zz")));
}

#[test]
fn query_regex_and_repeats() {
    let r = with_query(vec![regex("model", "gpt-4.*")]);
    assert!(r.matches(&get("h", "/?model=gpt-4o")));
    assert!(
        r.matches(&get("h", "/?model=x&model=gpt-4o-mini")),
        "any occurrence"
    );
    assert!(!r.matches(&get("h", "/?model=my-gpt-4o")), "whole value");
    assert!(!r.matches(&get("h", "/?other=gpt-4o")));
}

#[test]
fn query_present_absent_and_empty_values() {
    let yes = with_query(vec![present("stream", true)]);
    let no = with_query(vec![present("stream", false)]);
    for t in ["/?stream", "/?stream=", "/?a=1&stream=true", "/?&&stream"] {
        assert!(yes.matches(&get("h", t)), "{t}");
        assert!(!no.matches(&get("h", t)), "{t}");
    }
    for t in ["/", "/?", "/?streams=1", "/?a=stream"] {
        assert!(!yes.matches(&get("h", t)), "{t}");
        assert!(no.matches(&get("h", t)), "{t}");
    }
    let empty = with_query(vec![exact("flag", "")]);
    assert!(empty.matches(&get("h", "/?flag")));
    assert!(empty.matches(&get("h", "/?flag=")));
}

#[test]
fn every_kind_of_condition_together() {
    let rm = RouteMatch {
        host: vec!["*.example.com".into()],
        path: Some(PathMatch::Regex("/v[0-9]+/chat".into())),
        methods: vec!["POST".into()],
        headers: vec![exact("x-tenant", "acme")],
        query: vec![present("debug", false)],
    };
    let r = m(&rm);
    let ok = req(
        "POST",
        "api.example.com",
        "/v1/chat",
        &[("content-length", "0"), ("x-tenant", "acme")],
    );
    assert!(r.matches(&ok));
    for bad in [
        req(
            "GET",
            "api.example.com",
            "/v1/chat",
            &[("x-tenant", "acme")],
        ),
        req("POST", "example.com", "/v1/chat", &[("x-tenant", "acme")]),
        req(
            "POST",
            "api.example.com",
            "/v1/chats",
            &[("x-tenant", "acme")],
        ),
        req(
            "POST",
            "api.example.com",
            "/v1/chat",
            &[("x-tenant", "other")],
        ),
        req(
            "POST",
            "api.example.com",
            "/v1/chat?debug=1",
            &[("x-tenant", "acme")],
        ),
    ] {
        assert!(!r.matches(&bad), "{:?} {:?}", bad.method, bad.target);
    }
}

// === table ===

#[test]
fn first_match_wins_in_order() {
    let a = prefix("/api");
    let b = prefix("/api/v1");
    let c = RouteMatch::default();
    let t = RouteTable::new(&[&a, &b, &c]).expect("table");
    assert_eq!(t.len(), 3);
    assert_eq!(
        t.find(&get("h", "/api/v1/x")),
        Some(0),
        "earlier wins over more specific"
    );
    assert_eq!(t.find(&get("h", "/other")), Some(2));
    let t = RouteTable::new(&[&b, &a]).expect("table");
    assert_eq!(t.find(&get("h", "/api/v1/x")), Some(0));
    assert_eq!(t.find(&get("h", "/api/v2")), Some(1));
    assert_eq!(t.find(&get("h", "/x")), None);
}

#[test]
fn empty_table_misses() {
    let t = RouteTable::new(&[]).expect("table");
    assert!(t.is_empty());
    assert_eq!(t.find(&get("h", "/")), None);
}

#[test]
fn table_keeps_order_across_host_kinds() {
    let wild = hosts(&["*.example.com"]);
    let mut exact_api = prefix("/api");
    exact_api.host = vec!["api.example.com".into()];
    let exact_other = hosts(&["Other.com"]);
    let any_post = RouteMatch {
        methods: vec!["POST".into()],
        ..RouteMatch::default()
    };
    let fallback = RouteMatch::default();
    let t =
        RouteTable::new(&[&any_post, &exact_api, &wild, &exact_other, &fallback]).expect("table");
    assert_eq!(
        t.find(&req("POST", "other.com", "/", &[("content-length", "0")])),
        Some(0)
    );
    assert_eq!(t.find(&get("API.example.com:443", "/api/x")), Some(1));
    assert_eq!(
        t.find(&get("api.example.com", "/web")),
        Some(2),
        "wildcard after exact"
    );
    assert_eq!(t.find(&get("www.example.com", "/api")), Some(2));
    assert_eq!(t.find(&get("OTHER.com", "/")), Some(3));
    assert_eq!(t.find(&get("example.com", "/")), Some(4));
    assert_eq!(t.find(&get("nowhere", "/")), Some(4));
}

#[test]
fn table_without_host_conditions() {
    let a = RouteMatch {
        headers: vec![present("x-a", true)],
        ..RouteMatch::default()
    };
    let b = prefix("/b");
    let t = RouteTable::new(&[&a, &b]).expect("table");
    assert_eq!(t.find(&req("GET", "h", "/b", &[("x-a", "1")])), Some(0));
    assert_eq!(t.find(&get("H", "/b")), Some(1));
    assert_eq!(t.find(&get("h", "/c")), None);
}

/// The host index must agree with trying every route in order, whatever the mix.
#[test]
fn table_agrees_with_linear_scan() {
    let host_sets: [&[&str]; 7] = [
        &[],
        &["a.com"],
        &["*.a.com"],
        &["b.a.com", "c.com"],
        &["*.b.a.com"],
        &["C.com:80", "*.c.com"],
        &["d.com"],
    ];
    let paths = [
        None,
        Some(PathMatch::Prefix("/x".into())),
        Some(PathMatch::Exact("/y".into())),
        Some(PathMatch::Regex("/z/[0-9]+".into())),
        Some(PathMatch::Prefix("/x/a".into())),
        Some(PathMatch::Exact("/".into())),
        Some(PathMatch::Regex("(?i)/Z/.*".into())),
        Some(PathMatch::Regex("/x.*".into())),
    ];
    let mut matches = Vec::new();
    for (i, hs) in host_sets.iter().enumerate() {
        for (j, p) in paths.iter().enumerate() {
            if (i + j) % 3 == 0 {
                continue; // leave holes so some lookups miss
            }
            matches.push(RouteMatch {
                host: hs.iter().map(|s| s.to_string()).collect(),
                path: p.clone(),
                ..RouteMatch::default()
            });
        }
    }
    let refs: Vec<&RouteMatch> = matches.iter().collect();
    let table = RouteTable::new(&refs).expect("table");
    let linear: Vec<RouteMatcher> = matches.iter().map(m).collect();
    let req_hosts = [
        "a.com",
        "A.COM:1",
        "x.a.com",
        "b.a.com",
        "q.b.a.com",
        "c.com",
        "x.c.com",
        "d.com",
        "e.com",
        "",
    ];
    let targets = [
        "/", "/x", "/x/1", "/xy", "/y", "/y?q", "/z/12", "/z/a", "/x/a/b", "/x/ab", "/Z/1", "*",
    ];
    let mut hits = 0;
    for h in req_hosts {
        for t in targets {
            let method = if t == "*" { "OPTIONS" } else { "GET" };
            let r = if h.is_empty() {
                let mut buf = BytesMut::from(format!("{method} {t} HTTP/1.0\r\n\r\n").as_bytes());
                parse_request(&mut buf, &HeadLimits::default())
                    .expect("valid")
                    .expect("complete")
            } else {
                req(method, h, t, &[])
            };
            let want = linear.iter().position(|l| l.matches(&r));
            assert_eq!(table.find(&r), want, "host {h:?} target {t:?}");
            hits += usize::from(want.is_some());
        }
    }
    assert!(hits > 60, "the test should exercise hits too ({hits})");
}

#[test]
fn table_errors_name_the_route() {
    let ok = RouteMatch::default();
    let bad = path(PathMatch::Regex("(".into()));
    let e = RouteTable::new(&[&ok, &bad]).expect_err("bad regex");
    assert!(
        e.to_string().starts_with("routes[1].match.path.regex"),
        "{e}"
    );
    let bad = hosts(&["a.*"]);
    let e = RouteTable::new(&[&bad]).expect_err("bad host");
    assert!(e.to_string().starts_with("routes[0].match.host[0]"), "{e}");
}

// === rewrite ===

fn prefix_rewrite(route_prefix: &str, to: &str) -> Rewriter {
    let rw = Rewrite {
        path_prefix: Some(to.into()),
        path_regex: None,
        host: None,
    };
    Rewriter::new(&rw, &prefix(route_prefix)).expect("rewriter")
}

fn rewritten(rw: &Rewriter, t: &str) -> String {
    let mut r = get("h", t);
    rw.apply(&mut r);
    target(&r).to_string()
}

#[test]
fn prefix_rewrite_to_root_avoids_double_slash() {
    let rw = prefix_rewrite("/api", "/");
    assert_eq!(rewritten(&rw, "/api/x"), "/x");
    assert_eq!(rewritten(&rw, "/api"), "/");
    assert_eq!(rewritten(&rw, "/api?q=1"), "/?q=1");
    assert_eq!(rewritten(&rw, "/api/x/y?q=1&r"), "/x/y?q=1&r");
}

#[test]
fn prefix_rewrite_keeps_rest_and_query() {
    let rw = prefix_rewrite("/api", "/v1");
    assert_eq!(
        rewritten(&rw, "/api/chat?stream=true"),
        "/v1/chat?stream=true"
    );
    assert_eq!(rewritten(&rw, "/api"), "/v1");
    assert_eq!(rewritten(&rw, "/api/"), "/v1/");
    let rw = prefix_rewrite("/api", "/v1/");
    assert_eq!(rewritten(&rw, "/api/chat"), "/v1/chat");
    assert_eq!(rewritten(&rw, "/api"), "/v1/");
}

#[test]
fn prefix_rewrite_with_trailing_slash_prefix() {
    let rw = prefix_rewrite("/api/", "/v1");
    assert_eq!(rewritten(&rw, "/api/chat"), "/v1/chat");
    assert_eq!(rewritten(&rw, "/api/"), "/v1/");
    let rw = prefix_rewrite("/api/", "/");
    assert_eq!(rewritten(&rw, "/api/chat?x"), "/chat?x");
}

#[test]
fn prefix_rewrite_from_root() {
    let rw = prefix_rewrite("/", "/backend");
    assert_eq!(rewritten(&rw, "/x/y"), "/backend/x/y");
    assert_eq!(rewritten(&rw, "/?q"), "/backend/?q");
}

#[test]
fn prefix_rewrite_leaves_other_paths_alone() {
    let rw = prefix_rewrite("/api", "/v1");
    assert_eq!(rewritten(&rw, "/apix"), "/apix");
    assert_eq!(rewritten(&rw, "/other?q"), "/other?q");
}

#[test]
fn prefix_rewrite_needs_a_prefix_route() {
    let rw = Rewrite {
        path_prefix: Some("/v1".into()),
        path_regex: None,
        host: None,
    };
    assert!(Rewriter::new(&rw, &RouteMatch::default()).is_err());
    assert!(Rewriter::new(&rw, &path(PathMatch::Exact("/a".into()))).is_err());
    let relative = Rewrite {
        path_prefix: Some("v1".into()),
        ..rw.clone()
    };
    assert!(Rewriter::new(&relative, &prefix("/a")).is_err());
    let both = Rewrite {
        path_regex: Some(RegexRewrite {
            pattern: "a".into(),
            substitution: "b".into(),
        }),
        ..rw
    };
    assert!(Rewriter::new(&both, &prefix("/a")).is_err());
}

fn regex_rewrite(pattern: &str, sub: &str) -> Rewriter {
    let rw = Rewrite {
        path_prefix: None,
        path_regex: Some(RegexRewrite {
            pattern: pattern.into(),
            substitution: sub.into(),
        }),
        host: None,
    };
    Rewriter::new(&rw, &RouteMatch::default()).expect("rewriter")
}

#[test]
fn regex_rewrite_substitutes_on_path_and_keeps_query() {
    let rw = regex_rewrite("^/users/([0-9]+)/(?P<rest>.*)$", "/u/${rest}/$1");
    assert_eq!(rewritten(&rw, "/users/42/posts?x=1"), "/u/posts/42?x=1");
    assert_eq!(
        rewritten(&rw, "/other?x=1"),
        "/other?x=1",
        "no match: unchanged"
    );
    // Every match is replaced; the query is never searched.
    let rw = regex_rewrite("a", "b");
    assert_eq!(rewritten(&rw, "/aa/a?a=a"), "/bb/b?a=a");
    // A result without a leading slash gets one.
    let rw = regex_rewrite("^/v1", "");
    assert_eq!(rewritten(&rw, "/v1"), "/");
    assert_eq!(rewritten(&rw, "/v1x"), "/x");
}

#[test]
fn regex_rewrite_errors() {
    let rw = Rewrite {
        path_prefix: None,
        path_regex: Some(RegexRewrite {
            pattern: "(".into(),
            substitution: "".into(),
        }),
        host: None,
    };
    let e = Rewriter::new(&rw, &RouteMatch::default()).expect_err("bad regex");
    assert!(matches!(&e, Error::Regex { field, .. } if field == "rewrite.path_regex.pattern"));
}

#[test]
fn host_rewrite_sets_host_and_header() {
    let rw = Rewrite {
        path_prefix: None,
        path_regex: None,
        host: Some("upstream.internal:8080".into()),
    };
    let rw = Rewriter::new(&rw, &RouteMatch::default()).expect("rewriter");
    let mut r = req("GET", "public.example.com", "/a?b", &[("x", "y")]);
    rw.apply(&mut r);
    assert_eq!(&r.host[..], b"upstream.internal:8080");
    assert_eq!(r.headers.get_all("host").count(), 1);
    assert_eq!(
        r.headers.get("Host").map(|v| &v[..]),
        Some(&b"upstream.internal:8080"[..])
    );
    assert_eq!(target(&r), "/a?b", "path untouched");
    assert_eq!(r.headers.get("x").map(|v| &v[..]), Some(&b"y"[..]));
    for bad in ["", "a b", "a/b"] {
        let rw = Rewrite {
            path_prefix: None,
            path_regex: None,
            host: Some(bad.into()),
        };
        assert!(
            Rewriter::new(&rw, &RouteMatch::default()).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn rewrite_of_path_and_host_together() {
    let rw = Rewrite {
        path_prefix: Some("/".into()),
        path_regex: None,
        host: Some("api.openai.com".into()),
    };
    let rw = Rewriter::new(&rw, &prefix("/openai")).expect("rewriter");
    let mut r = get("gw.local", "/openai/v1/chat/completions?x");
    rw.apply(&mut r);
    assert_eq!(target(&r), "/v1/chat/completions?x");
    assert_eq!(&r.host[..], b"api.openai.com");
    assert_eq!(r.path(), b"/v1/chat/completions");
    assert_eq!(r.query(), Some(&b"x"[..]));
}

#[test]
fn empty_rewrite_changes_nothing() {
    let rw = Rewrite {
        path_prefix: None,
        path_regex: None,
        host: None,
    };
    let rw = Rewriter::new(&rw, &RouteMatch::default()).expect("rewriter");
    let mut r = get("h:1", "/a?b");
    rw.apply(&mut r);
    assert_eq!(target(&r), "/a?b");
    assert_eq!(&r.host[..], b"h:1");
}

// === redirect ===

fn redirect() -> Redirect {
    Redirect {
        status: 301,
        scheme: None,
        host: None,
        path: None,
        strip_query: false,
    }
}

#[test]
fn redirect_keeps_what_it_does_not_give() {
    let r = get("Example.com:8080", "/a/b?c=d");
    assert_eq!(
        redirect_location(&redirect(), &r, "http"),
        "http://Example.com:8080/a/b?c=d"
    );
}

#[test]
fn redirect_to_https_drops_the_default_http_port_only() {
    let https = Redirect {
        scheme: Some("https".into()),
        ..redirect()
    };
    assert_eq!(
        redirect_location(&https, &get("a.com", "/x?y"), "http"),
        "https://a.com/x?y"
    );
    assert_eq!(
        redirect_location(&https, &get("a.com:80", "/x"), "http"),
        "https://a.com/x"
    );
    assert_eq!(
        redirect_location(&https, &get("a.com:8080", "/x"), "http"),
        "https://a.com:8080/x"
    );
    assert_eq!(
        redirect_location(&https, &get("[::1]:80", "/"), "http"),
        "https://[::1]/"
    );
    let http = Redirect {
        scheme: Some("http".into()),
        ..redirect()
    };
    assert_eq!(
        redirect_location(&http, &get("a.com:443", "/"), "https"),
        "http://a.com/"
    );
    // Same scheme: the port stays as the client sent it.
    assert_eq!(
        redirect_location(&http, &get("a.com:80", "/"), "http"),
        "http://a.com:80/"
    );
}

#[test]
fn redirect_host_path_and_strip_query() {
    let rd = Redirect {
        status: 308,
        scheme: Some("https".into()),
        host: Some("new.example.com:8443".into()),
        path: Some("/v2/home".into()),
        strip_query: false,
    };
    let r = get("old.example.com", "/v1/home?lang=en");
    assert_eq!(
        redirect_location(&rd, &r, "http"),
        "https://new.example.com:8443/v2/home?lang=en"
    );
    let strip = Redirect {
        strip_query: true,
        ..rd.clone()
    };
    assert_eq!(
        redirect_location(&strip, &r, "http"),
        "https://new.example.com:8443/v2/home"
    );
    let host_only = Redirect {
        host: Some("b.com".into()),
        ..redirect()
    };
    assert_eq!(
        redirect_location(&host_only, &get("a.com:81", "/p?q"), "https"),
        "https://b.com/p?q"
    );
    let with_query = Redirect {
        path: Some("/new?src=old".into()),
        ..redirect()
    };
    assert_eq!(
        redirect_location(&with_query, &get("a.com", "/old?x=1"), "http"),
        "http://a.com/new?src=old&x=1"
    );
    assert_eq!(
        redirect_location(&redirect(), &get("a.com", "/p?"), "http"),
        "http://a.com/p"
    );
}

#[test]
fn redirect_without_host_is_path_only_and_safe() {
    let mut buf = BytesMut::from(&b"GET //evil.com/x?q HTTP/1.0\r\n\r\n"[..]);
    let r = parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete");
    assert!(r.host.is_empty());
    assert_eq!(
        redirect_location(&redirect(), &r, "http"),
        "/%2Fevil.com/x?q"
    );
    let mut buf = BytesMut::from(&b"GET /a HTTP/1.0\r\n\r\n"[..]);
    let r = parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete");
    assert_eq!(redirect_location(&redirect(), &r, "http"), "/a");
}

#[test]
fn redirect_percent_encodes_what_a_uri_cannot_hold() {
    let rd = Redirect {
        path: Some("/a b\"<ü>".into()),
        ..redirect()
    };
    let loc = redirect_location(&rd, &get("a.com", "/"), "http");
    assert_eq!(loc, "http://a.com/a%20b%22%3C%C3%BC%3E");
    assert!(loc.bytes().all(|b| b.is_ascii_graphic()));
}

#[test]
fn regex_literal_prefix_is_a_safe_prefilter() {
    use crate::matcher::literal_prefix;
    assert_eq!(&*literal_prefix("/users/[0-9]+"), b"/users/");
    assert_eq!(&*literal_prefix("/a|/b"), b"/");
    assert_eq!(&*literal_prefix("/v1/(chat|completions)"), b"/v1/c");
    assert_eq!(&*literal_prefix(".*"), b"");
    assert_eq!(&*literal_prefix("(?i)/api"), b"/");
    assert_eq!(&*literal_prefix("/x?"), b"/");
    assert_eq!(&*literal_prefix("(?-u:\\xFF)/a"), b"\xFF/a");
    // The prefilter never turns away what the regex takes.
    for (pattern, path) in [
        ("(?i)/API/[a-z]+", "/api/x"),
        ("/x?y", "/y"),
        ("/a|/b", "/b"),
        ("(/v1)?/chat", "/chat"),
        ("/v[12]/.*", "/v2/"),
    ] {
        let r = m(&self::path(PathMatch::Regex(pattern.into())));
        assert!(r.matches(&get("h", path)), "{pattern} on {path}");
    }
}
