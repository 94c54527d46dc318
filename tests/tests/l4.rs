//! Below HTTP, with the real `weir` binary: a `tcp` listener proxying raw bytes to a cluster;
//! TLS passed through by SNI to the right upstream with the handshake untouched (the client
//! sees the upstream's own certificate); the PROXY protocol honoured from a trusted source (the
//! declared address is the one in `x-forwarded-for` and the access log), refused from others
//! and when malformed, and sent on by a `tcp` listener's cluster so the client's address
//! survives two hops; sent by the clusters of HTTP routes, on upstream connections kept per
//! client connection (v1, v2, before TLS, health checks, retries, the balancer's client).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use weir_tests::*;

fn inspected_xff(r: &Response) -> Vec<String> {
    r.inspected("x-forwarded-for")
}

both_drivers! {
    /// A `tcp` listener carries whatever the client sends to the cluster and back: an HTTP
    /// exchange (keep-alive, a 300 KB echo) passes byte for byte, and the connection is logged.
    fn tcp_round_trip(d) {
        let mock = MockUpstream::id("raw").start();
        let gw = Gateway::new()
            .driver(d)
            .listener_yaml("tcp: { cluster: up, idle_timeout: 30s }")
            .cluster("up", &[mock.endpoint()])
            .start();
        let mut c = gw.connect();
        for _ in 0..3 {
            let r = c.get("/");
            assert_eq!(r.status(), 200);
            assert_eq!(r.header("x-mock-id"), Some("raw"));
            // No gateway in between at layer 7: no forwarding fields added.
            assert_eq!(r.header("via"), None);
        }
        let body = "z".repeat(300_000);
        let r = c.request(
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().len(), body.len());
        let r = c.get("/inspect");
        assert!(inspected_xff(&r).is_empty(), "{}", r.text());
        drop(c);
        let lines = gw.wait_access_log(1, Duration::from_secs(10), |l| l["kind"] == "tcp");
        let l = &lines[0];
        assert_eq!(l["cluster"], "up", "{l}");
        assert!(l["bytes_up"].as_u64().unwrap() > 300_000, "{l}");
        assert!(l["bytes_down"].as_u64().unwrap() > 300_000, "{l}");
        assert_eq!(l["error"], serde_json::Value::Null, "{l}");
        // A cluster with nothing listening: the connection is closed and counted as failed.
        let gw2 = Gateway::new()
            .driver(d)
            .listener_yaml("tcp: { cluster: dead }")
            .cluster("dead", &[closed_port().to_string()])
            .start();
        let mut s = TcpStream::connect(gw2.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"hello");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty());
        wait_until("the failure counted", Duration::from_secs(10), Duration::from_millis(50), || {
            let m = gw2.metrics();
            (metric(&m, "weir_tcp_connections_total", &[("listener", "main"), ("outcome", "failed")]) == Some(1.0)).then_some(())
        });
    }
}

both_drivers! {
    /// TLS pass-through: the ClientHello's server name picks the upstream (exact, then a
    /// wildcard), the TLS session is the upstream's own (its certificate, verified by the
    /// client against the test CA), and a name no route has is closed when there is no default.
    fn tls_passthrough_by_sni(d) {
        let pki = TestPki::new();
        let (a_cert, a_key) = pki.server("a", &["a.test"], KeyKind::Ecdsa);
        let (b_cert, b_key) = pki.server("b", &["*.b.test"], KeyKind::Rsa);
        let a = MockUpstream::id("a").tls_files(&a_cert, &a_key).start();
        let b = MockUpstream::id("b").tls_files(&b_cert, &b_key).start();
        let gw = Gateway::new()
            .driver(d)
            .listener_yaml(
                "tcp: { sni: [ { names: [a.test], cluster: a }, { names: [\"*.b.test\"], cluster: b } ] }",
            )
            .cluster("a", &[a.endpoint()])
            .cluster("b", &[b.endpoint()])
            .start();
        let cfg = tls_client_config(&TlsClientOptions { ca: Some(&pki.ca()), ..Default::default() });
        for (sni, id, cert) in [("a.test", "a", &a_cert), ("x.b.test", "b", &b_cert), ("A.TEST", "a", &a_cert)] {
            let mut c = TlsClient::connect(gw.addr(), sni, &cfg).unwrap_or_else(|e| panic!("{sni}: {e}"));
            assert_eq!(c.server_cert(), pem_certs(cert)[0].as_ref(), "{sni}");
            let r = c.get("/", &[]).unwrap();
            assert_eq!((r.status, r.header("x-mock-id")), (200, Some(id)), "{sni}");
        }
        let any = tls_client_config(&TlsClientOptions::default());
        let res = TlsClient::connect(gw.addr(), "c.test", &any).and_then(|mut c| c.get("/", &[]));
        assert!(res.is_err(), "no route for c.test: {res:?}");
        let lines = gw.wait_access_log(4, Duration::from_secs(10), |l| l["kind"] == "tcp");
        let snis: Vec<&str> = lines.iter().filter_map(|l| l["sni"].as_str()).collect();
        assert!(snis.contains(&"x.b.test") && snis.contains(&"c.test"), "{lines:?}");
        let c_line = lines.iter().find(|l| l["sni"] == "c.test").unwrap();
        assert!(c_line["error"].is_string(), "{c_line}");
        // Garbage instead of a ClientHello, with no default cluster: closed.
        let mut s = TcpStream::connect(gw.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty());
    }
}

/// A raw request with a PROXY header first.
fn with_header(header: &[u8], path: &str) -> Vec<u8> {
    let mut v = header.to_vec();
    v.extend_from_slice(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes());
    v
}

fn v2_header(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

both_drivers! {
    /// PROXY protocol on an HTTP listener that trusts 127.0.0.1: v1 and v2 headers are honoured
    /// (the declared client is in `x-forwarded-for` and the access log), a malformed one and a
    /// missing one close the connection and are counted; a listener that trusts only 10/8
    /// closes loopback connections.
    fn proxy_protocol_in(d) {
        let mock = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .listener_yaml("proxy_protocol: { trusted: [\"127.0.0.1/32\", \"::1\"], timeout: 2s }")
            .cluster("up", &[mock.endpoint()])
            .route("{ name: r, cluster: up }")
            .start();
        let mut c = gw.connect();
        let r = c.request(&with_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n", "/inspect"));
        assert_eq!(r.status(), 200);
        assert_eq!(inspected_xff(&r), ["203.0.113.7"]);
        // Later requests on the connection keep the declared address.
        let r = c.get("/inspect");
        assert_eq!(inspected_xff(&r), ["203.0.113.7"]);
        let mut c = gw.connect();
        let r = c.request(&with_header(&v2_header([198, 51, 100, 4], 4444, [10, 0, 0, 1], 80), "/inspect"));
        assert_eq!(inspected_xff(&r), ["198.51.100.4"]);
        let lines = gw.wait_access_log(3, Duration::from_secs(10), |_| true);
        assert_eq!(lines[0]["client"], "203.0.113.7:5555", "{}", lines[0]);
        assert_eq!(lines[2]["client"], "198.51.100.4:4444", "{}", lines[2]);

        for bad in [&b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"[..], b"PROXY TCP4 1.2.3.4 nope 1 2\r\n\r\n"] {
            let mut s = TcpStream::connect(gw.addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(bad).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        }
        wait_until("refusals counted", Duration::from_secs(10), Duration::from_millis(50), || {
            let m = gw.metrics();
            (metric(&m, "weir_proxy_protocol_refused_total", &[("listener", "main")]) == Some(2.0)).then_some(())
        });

        let strict = Gateway::new()
            .driver(d)
            .listener_yaml("proxy_protocol: { trusted: [\"10.0.0.0/8\"] }")
            .route("{ name: r, direct_response: { status: 200 } }")
            .start();
        let mut s = TcpStream::connect(strict.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&with_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n", "/"));
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        let m = strict.metrics();
        assert_eq!(metric(&m, "weir_proxy_protocol_refused_total", &[("listener", "main")]), Some(1.0));
    }
}

both_drivers! {
    /// Two hops: a `tcp` listener that takes PROXY v2 from the test (a balancer) sends PROXY v1
    /// to its cluster, an HTTP listener of a second gateway that trusts it: the first client's
    /// address reaches the upstream in `x-forwarded-for`.
    fn proxy_protocol_survives_two_hops(d) {
        let mock = MockUpstream::start();
        let inner = Gateway::new()
            .driver(d)
            .listener_yaml("proxy_protocol: { trusted: [\"127.0.0.0/8\"] }")
            .cluster("up", &[mock.endpoint()])
            .route("{ name: r, cluster: up }")
            .start();
        let edge = Gateway::new()
            .driver(d)
            .listener_yaml("proxy_protocol: { trusted: [\"127.0.0.1\"] }\ntcp: { cluster: inner }")
            .cluster_yaml(&format!(
                "{{ name: inner, endpoints: [\"{}\"], proxy_protocol: v1 }}",
                inner.addr()
            ))
            .start();
        let mut c = Client::connect(edge.addr());
        let r = c.request(&with_header(&v2_header([192, 0, 2, 33], 40000, [10, 1, 1, 1], 443), "/inspect"));
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(inspected_xff(&r), ["192.0.2.33"]);
        let lines = inner.wait_access_log(1, Duration::from_secs(10), |_| true);
        assert_eq!(lines[0]["client"], "192.0.2.33:40000", "{}", lines[0]);
    }
}

/// The JSON answer of a [`PpUpstream`].
fn pp_answer(r: &Response) -> serde_json::Value {
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

both_drivers! {
    /// `proxy_protocol` on the clusters of HTTP routes (v1 and v2, each in front of an upstream
    /// that requires the header): each client connection gets an upstream connection of its own
    /// whose header declares that client (its source address and port, and the listener's
    /// address); its keep-alive requests reuse that one; a second client, from 127.0.0.2, never
    /// shares it, even interleaved; a client that closes takes its upstream connection with it.
    /// Health checks send a header that declares no client and pass. A retried request
    /// reconnects with the same client's header. A listener that accepted a PROXY header from a
    /// trusted balancer sends the declared client on (the whole chain).
    fn proxy_protocol_to_http_clusters(d) {
        let up1 = PpUpstream::start();
        let up2 = PpUpstream::start();
        let hc = "health_check: { path: /healthz, interval: 200ms }";
        let gw = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!("{{ name: pp1, endpoints: [\"{}\"], proxy_protocol: v1, {hc} }}", up1.endpoint()))
            .cluster_yaml(&format!("{{ name: pp2, endpoints: [\"{}\"], proxy_protocol: v2, {hc} }}", up2.endpoint()))
            .route("{ name: v1, match: { path: { prefix: /v1 } }, cluster: pp1 }")
            .route("{ name: v2, match: { path: { prefix: /v2 } }, cluster: pp2, retry: { attempts: 1, on: [reset] } }")
            .extra_listener(
                "{ name: edge, address: \"127.0.0.2:0\", proxy_protocol: { trusted: [\"127.0.0.0/8\"] }, routes: [ { name: e, cluster: pp2 } ] }",
            )
            .start();
        // Health checks: the gateway's own connections, a header without a client.
        for (up, version) in [(&up1, 1), (&up2, 2)] {
            wait_until("a health check", Duration::from_secs(10), Duration::from_millis(50), || {
                up.accepted().iter().any(|a| a.version == version && a.addresses.is_none()).then_some(())
            });
        }
        let gw_addr = gw.addr().to_string();
        let (lo1, lo2) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        for (prefix, up, version) in [("/v1", &up1, 1), ("/v2", &up2, 2)] {
            let mut a = Client::connect_from(gw.addr(), lo1);
            let mut b = Client::connect_from(gw.addr(), lo2);
            let a_src = a.stream().local_addr().unwrap().to_string();
            let b_src = b.stream().local_addr().unwrap().to_string();
            let (mut a_conn, mut b_conn) = (None, None);
            for i in 0..3 {
                for (c, src, conn) in [(&mut a, &a_src, &mut a_conn), (&mut b, &b_src, &mut b_conn)] {
                    let v = pp_answer(&c.get(&format!("{prefix}/{i}")));
                    assert_eq!((v["src"].as_str(), v["dst"].as_str()), (Some(src.as_str()), Some(gw_addr.as_str())), "{v}");
                    assert_eq!(v["version"], version, "{v}");
                    // Keep-alive requests of one client: one upstream connection.
                    let n = v["conn"].as_u64().unwrap();
                    assert_eq!(*conn.get_or_insert(n), n, "{prefix}: {v}");
                }
            }
            let (a_n, b_n) = (a_conn.unwrap() as usize, b_conn.unwrap() as usize);
            assert_ne!(a_n, b_n, "two clients share no upstream connection");
            assert_eq!(up.client_conns().len(), 2, "{:?}", up.accepted());
            // a closes: its upstream connection closes too; b's stays and serves b.
            drop(a);
            wait_until("a's upstream connection closed", Duration::from_secs(10), Duration::from_millis(20), || {
                up.accepted()[a_n - 1].closed.then_some(())
            });
            let v = pp_answer(&b.get(&format!("{prefix}/again")));
            assert_eq!(v["conn"].as_u64(), Some(b_n as u64), "{v}");
            assert!(!up.accepted()[b_n - 1].closed);
            assert_eq!(up.client_conns().len(), 2, "{:?}", up.accepted());
        }

        // A retry: the upstream drops the reused connection without an answer (the free retry
        // on a new connection), then that one (the route's retry on `reset`): every connection
        // the request made declares the same client.
        let mut c = Client::connect_from(gw.addr(), lo2);
        let c_src = c.stream().local_addr().unwrap().to_string();
        let first = pp_answer(&c.get("/v2/first"));
        assert_eq!(first["src"].as_str(), Some(c_src.as_str()));
        let before = up2.client_conns().len();
        let r = c.get("/v2/drop");
        assert_eq!(r.status(), 502, "{}", r.text());
        let made = up2.client_conns().split_off(before);
        assert_eq!(made.len(), 2, "{made:?}");
        for a in &made {
            assert_eq!(a.addresses.map(|x| x.0.to_string()), Some(c_src.clone()), "{made:?}");
        }

        // The chain: a balancer's PROXY header into the `edge` listener; its client goes on.
        let mut e = Client::connect(gw.listener("edge"));
        let r = e.request(&with_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n", "/edge"));
        let v = pp_answer(&r);
        assert_eq!((v["src"].as_str(), v["dst"].as_str()), (Some("203.0.113.7:5555"), Some("10.0.0.1:80")), "{v}");
        let again = pp_answer(&e.get("/edge/2"));
        assert_eq!((again["conn"].clone(), again["src"].clone()), (v["conn"].clone(), v["src"].clone()));
    }
}

both_drivers! {
    /// A TLS cluster with `proxy_protocol`: the header goes first on the TCP connection, then
    /// the handshake. The upstream is a second gateway whose TLS listener accepts the PROXY
    /// protocol (as HAProxy's `accept-proxy ssl`): it reads the header, then TLS, and logs the
    /// client the first gateway saw; the client's keep-alive requests take one handshake.
    fn proxy_protocol_before_tls(d) {
        let pki = TestPki::new();
        let mock = MockUpstream::start();
        let inner = Gateway::new()
            .driver(d)
            .listener_yaml(&format!(
                "proxy_protocol: {{ trusted: [\"127.0.0.1\"] }}\ntls: {{ certificates: [ {{ cert: \"{}\", key: \"{}\" }} ] }}",
                pki.server_cert().display(),
                pki.server_key().display()
            ))
            .cluster("up", &[mock.endpoint()])
            .route("{ name: r, cluster: up }")
            .start();
        let edge = Gateway::new()
            .driver(d)
            .cluster_yaml(&format!(
                "{{ name: inner, endpoints: [\"{}\"], proxy_protocol: v1, tls: {{ ca_file: \"{}\" }} }}",
                inner.addr(),
                pki.ca().display()
            ))
            .route("{ name: r, cluster: inner }")
            .start();
        let mut c = Client::connect_from(edge.addr(), "127.0.0.2".parse().unwrap());
        let src = c.stream().local_addr().unwrap().to_string();
        for _ in 0..3 {
            let r = c.get("/inspect");
            assert_eq!(r.status(), 200, "{}", r.text());
        }
        let lines = inner.wait_access_log(3, Duration::from_secs(10), |_| true);
        for l in &lines {
            assert_eq!(l["client"].as_str(), Some(src.as_str()), "{l}");
        }
        let m = inner.metrics();
        assert_eq!(metric(&m, "weir_tls_handshakes_total", &[("listener", "main")]), Some(1.0), "{m}");
    }
}

/// Config checks: `tcp` listeners have no routes and no `tls`, trusted ranges parse, a cluster
/// that sends the PROXY header may serve HTTP routes but not as `protocol: h2`.
#[test]
fn l4_config_is_checked() {
    for (listener, cluster, want) in [
        (
            "tcp: { cluster: up }\ntls: { certificates: [] }",
            "{ name: up, endpoints: [\"127.0.0.1:1\"] }",
            "tls",
        ),
        (
            "proxy_protocol: { trusted: [\"10.0.0.300/8\"] }",
            "{ name: up, endpoints: [\"127.0.0.1:1\"] }",
            "trusted",
        ),
        (
            "tcp: { cluster: nope }",
            "{ name: up, endpoints: [\"127.0.0.1:1\"] }",
            "nope",
        ),
    ] {
        let err = Gateway::new()
            .listener_yaml(listener)
            .cluster_yaml(cluster)
            .try_start()
            .expect_err(listener);
        assert!(err.stderr.contains(want), "{listener}: {}", err.stderr);
    }
    let gw = Gateway::new()
        .cluster_yaml("{ name: up, endpoints: [\"127.0.0.1:1\"], proxy_protocol: v2 }")
        .route("{ name: r, cluster: up }")
        .try_start();
    assert!(
        gw.is_ok(),
        "proxy_protocol on an HTTP cluster: {:?}",
        gw.err().map(|e| e.stderr)
    );
    let err = Gateway::new()
        .cluster_yaml(
            "{ name: up, protocol: h2, endpoints: [\"127.0.0.1:1\"], proxy_protocol: v2 }",
        )
        .route("{ name: r, cluster: up }")
        .try_start()
        .expect_err("proxy_protocol on an h2 cluster");
    assert!(
        err.stderr.contains("clusters[0].proxy_protocol"),
        "{}",
        err.stderr
    );
    assert!(err.stderr.contains("protocol: h2"), "{}", err.stderr);
}
