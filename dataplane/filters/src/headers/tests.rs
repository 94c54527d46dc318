use super::*;
use crate::testing::{continued, ctx, request, response, values};
use std::collections::BTreeMap;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ops(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderOps {
    HeaderOps {
        set: map(set),
        add: map(add),
        remove: remove.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn request_ops_remove_then_set_then_add() {
    let f = HeadersFactory::new(
        &ops(
            &[("X-Env", "prod")],
            &[("x-via", "weir"), ("X-Tag", "b")],
            &["X-Debug", "x-tag"],
        ),
        &HeaderOps::default(),
    )
    .expect("builds");
    let mut filter = f.create();
    let mut req = request(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Debug: 1\r\nx-env: dev\r\nX-ENV: dev2\r\n\
         X-Via: client\r\nx-tag: a\r\n\r\n",
    );
    let r = filter.on_request_headers(&mut ctx("127.0.0.1:1"), &mut req);
    assert!(continued(&r));
    let h = &req.headers;
    assert!(!h.contains("x-debug"));
    assert_eq!(values(h, "x-env"), ["prod"]);
    assert_eq!(values(h, "x-via"), ["client", "weir"]);
    // Removed, then added: only the configured value is left.
    assert_eq!(values(h, "x-tag"), ["b"]);
    // Names are sent lowercase, as configured.
    let names: Vec<&[u8]> = h.iter().map(|f| &f.name[..]).collect();
    assert!(names.contains(&&b"x-tag"[..]));
}

#[test]
fn set_adds_a_missing_field_in_lowercase() {
    let f = HeadersFactory::new(&ops(&[("X-New", " v ")], &[], &[]), &HeaderOps::default())
        .expect("builds");
    let mut req = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let _ = f
        .create()
        .on_request_headers(&mut ctx("127.0.0.1:1"), &mut req);
    let last = req.headers.iter().last().expect("a field");
    assert_eq!(
        (&last.name[..], &last.value[..]),
        (&b"x-new"[..], &b"v"[..])
    );
}

#[test]
fn setting_host_rewrites_the_authority() {
    let f = HeadersFactory::new(
        &ops(&[("Host", "api.internal")], &[], &[]),
        &HeaderOps::default(),
    )
    .expect("builds");
    let mut req = request("GET / HTTP/1.1\r\nHost: public.example.com\r\n\r\n");
    let _ = f
        .create()
        .on_request_headers(&mut ctx("127.0.0.1:1"), &mut req);
    assert_eq!(values(&req.headers, "host"), ["api.internal"]);
    assert_eq!(&req.host[..], b"api.internal");
}

#[test]
fn response_ops_apply_to_upstream_and_local_responses() {
    let f = HeadersFactory::new(
        &HeaderOps::default(),
        &ops(
            &[("x-frame-options", "DENY")],
            &[("set-cookie", "b=2")],
            &["server"],
        ),
    )
    .expect("builds");
    let mut filter = f.create();
    let mut c = ctx("127.0.0.1:1");
    let mut req = request("GET / HTTP/1.1\r\nHost: a\r\nServer: keep-on-requests\r\n\r\n");
    assert!(continued(&filter.on_request_headers(&mut c, &mut req)));
    assert_eq!(values(&req.headers, "server"), ["keep-on-requests"]);

    let mut resp = response(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(continued(&filter.on_response_headers(&mut c, &mut resp)));
    assert!(!resp.headers.contains("server"));
    assert_eq!(values(&resp.headers, "set-cookie"), ["a=1", "b=2"]);
    assert_eq!(values(&resp.headers, "x-frame-options"), ["DENY"]);

    let mut local = LocalResponse::new(503, "application/json", "{}");
    filter.on_local_response(&c, &mut local);
    assert_eq!(values(&local.headers, "x-frame-options"), ["DENY"]);
    assert_eq!(values(&local.headers, "content-type"), ["application/json"]);
}

#[test]
fn refuses_injection_and_framing_fields() {
    let none = HeaderOps::default();
    let e = HeadersFactory::new(&ops(&[("x-a", "1\r\nx-b: 2")], &[], &[]), &none);
    assert!(matches!(e, Err(Error::HeaderValue { .. })), "{e:?}");
    let e = HeadersFactory::new(&ops(&[("bad name", "1")], &[], &[]), &none);
    assert!(matches!(e, Err(Error::HeaderName { .. })), "{e:?}");
    for name in ["Content-Length", "transfer-encoding", "connection"] {
        let e = HeadersFactory::new(&ops(&[], &[(name, "1")], &[]), &none);
        assert!(
            matches!(e, Err(Error::ReservedHeader { .. })),
            "{name}: {e:?}"
        );
        let e = HeadersFactory::new(&none, &ops(&[(name, "1")], &[], &[]));
        assert!(
            matches!(e, Err(Error::ReservedHeader { .. })),
            "{name}: {e:?}"
        );
    }
    let e = HeadersFactory::new(&ops(&[], &[("host", "x")], &[]), &none);
    assert!(matches!(e, Err(Error::ReservedHeader { .. })), "{e:?}");
    let e = HeadersFactory::new(&ops(&[], &[], &["Host"]), &none);
    assert!(matches!(e, Err(Error::ReservedHeader { .. })), "{e:?}");
    // Removing a hop-by-hop field is pointless but harmless.
    assert!(HeadersFactory::new(&ops(&[], &[], &["connection"]), &none).is_ok());
}
