//! Route lookup: `RouteTable::find` over 10 and 200 routes.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use weir_config::{PathMatch, RouteMatch, ValueMatch};
use weir_http::{parse_request, HeadLimits, RequestHead};
use weir_route::{RouteMatcher, RouteTable};

fn header(name: &str, exact: Option<&str>, present: Option<bool>) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        exact: exact.map(Into::into),
        regex: None,
        present,
    }
}

/// `n` routes mixing exact and wildcard hosts, prefixes, methods, header conditions and regexes.
/// Route 0 takes `svc0.example.com/api/v0/...`; the last route takes any host with
/// `GET /last/...` and `x-tenant: last`, so every route that could take an unknown host is tried
/// before it.
fn routes(n: usize) -> Vec<RouteMatch> {
    let mut v: Vec<RouteMatch> = (0..n - 1)
        .map(|i| match i % 5 {
            0 => RouteMatch {
                host: vec![format!("svc{i}.example.com")],
                path: Some(PathMatch::Prefix(format!("/api/v{i}"))),
                ..RouteMatch::default()
            },
            1 => RouteMatch {
                host: vec![format!("*.tenant{i}.example.com")],
                path: Some(PathMatch::Prefix(format!("/t{i}"))),
                ..RouteMatch::default()
            },
            2 => RouteMatch {
                path: Some(PathMatch::Prefix(format!("/svc{i}"))),
                methods: vec!["GET".into(), "POST".into()],
                ..RouteMatch::default()
            },
            3 => RouteMatch {
                path: Some(PathMatch::Prefix(format!("/h{i}"))),
                headers: vec![
                    header("x-tenant", Some(&format!("t{i}")), None),
                    ValueMatch {
                        name: "authorization".into(),
                        exact: None,
                        regex: Some("Bearer [A-Za-z0-9_-]+".into()),
                        present: None,
                    },
                ],
                ..RouteMatch::default()
            },
            _ => RouteMatch {
                path: Some(PathMatch::Regex(format!("/users/[0-9]+/item{i}"))),
                headers: vec![header("x-debug", None, Some(false))],
                ..RouteMatch::default()
            },
        })
        .collect();
    v.push(RouteMatch {
        path: Some(PathMatch::Prefix("/last".into())),
        methods: vec!["GET".into()],
        headers: vec![header("x-tenant", Some("last"), None)],
        ..RouteMatch::default()
    });
    v
}

fn request(host: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("Accept: */*\r\n\r\n");
    match parse_request(&mut BytesMut::from(raw.as_bytes()), &HeadLimits::default()) {
        Ok(Some(r)) => r,
        other => panic!("bench request does not parse: {other:?}"),
    }
}

fn bench_find(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_find");
    for n in [10usize, 200] {
        let matches = routes(n);
        let refs: Vec<&RouteMatch> = matches.iter().collect();
        let table = match RouteTable::new(&refs) {
            Ok(t) => t,
            Err(e) => panic!("bench routes do not compile: {e}"),
        };
        let first = request("SVC0.example.com", "/api/v0/chat/completions?x=1", &[]);
        let last = request("www.other.com", "/last/x", &[("x-tenant", "last")]);
        let miss = request("www.other.com", "/nowhere/at/all", &[("x-tenant", "t3")]);
        assert_eq!(table.find(&first), Some(0));
        assert_eq!(table.find(&last), Some(n - 1));
        assert_eq!(table.find(&miss), None);
        for (name, req) in [("hit_first", &first), ("hit_last", &last), ("miss", &miss)] {
            g.bench_with_input(BenchmarkId::new(name, n), req, |b, req| {
                b.iter(|| black_box(table.find(black_box(req))))
            });
        }
        // What the host index saves: every route tried in order with `RouteMatcher::matches`.
        let linear: Vec<RouteMatcher> = matches
            .iter()
            .filter_map(|m| RouteMatcher::new(m).ok())
            .collect();
        assert_eq!(linear.iter().position(|m| m.matches(&last)), Some(n - 1));
        g.bench_with_input(
            BenchmarkId::new("linear_scan_hit_last", n),
            &last,
            |b, req| b.iter(|| black_box(linear.iter().position(|m| m.matches(black_box(req))))),
        );
    }
    g.finish();
}

criterion_group!(benches, bench_find);
criterion_main!(benches);
