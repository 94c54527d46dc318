use std::sync::Arc;
use std::time::Instant;

use weir_metrics::Registry;

use super::*;

fn cluster(yaml_lb: &str, endpoints: &[(&str, u32)]) -> Cluster {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(a, w)| format!("{{ address: \"{a}\", weight: {w} }}"))
        .collect();
    let text = format!(
        "listeners: [{{ name: l, address: \"127.0.0.1:1\" }}]\nclusters:\n  - name: c\n    endpoints: [{}]\n    lb: {yaml_lb}\n    outlier: {{ consecutive_failures: 2, max_ejection_percent: 50 }}\n",
        eps.join(", ")
    );
    let cfg = weir_config::parse(&text, "t").expect("config");
    let shared = Arc::new(SharedCluster::new(&cfg.clusters[0]).expect("resolves"));
    Cluster::new(shared, 0, &Registry::default())
}

fn counts(c: &Cluster, n: usize, key: Option<&[u8]>) -> Vec<usize> {
    let mut v = vec![0; c.endpoints.len()];
    for _ in 0..n {
        v[c.pick(key, &[]).expect("pick").0] += 1;
    }
    v
}

#[test]
fn round_robin_is_even() {
    let c = cluster(
        "{ policy: round_robin }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)],
    );
    assert_eq!(counts(&c, 300, None), vec![100, 100, 100]);
}

#[test]
fn weighted_round_robin_follows_weights_smoothly() {
    let c = cluster(
        "{ policy: round_robin }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 3)],
    );
    assert_eq!(counts(&c, 400, None), vec![100, 300]);
    // Smooth: never three picks of the heavy one in a row when weights are 1:3... at most 3.
    let picks: Vec<usize> = (0..8).map(|_| c.pick(None, &[]).expect("pick").0).collect();
    assert!(picks.windows(4).all(|w| w.contains(&0)), "{picks:?}");
}

#[test]
fn least_request_prefers_idle_endpoint() {
    let c = cluster(
        "{ policy: least_request }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
    );
    for _ in 0..50 {
        c.begin(&c.endpoints[0]);
    }
    assert_eq!(counts(&c, 100, None), vec![0, 100]);
}

#[test]
fn consistent_hash_is_sticky_and_moves_little() {
    let c = cluster(
        "{ policy: consistent_hash, hash_on: \"header:x-user\" }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)],
    );
    let first: Vec<usize> = (0..200)
        .map(|u| {
            c.pick(Some(format!("user{u}").as_bytes()), &[])
                .expect("pick")
                .0
        })
        .collect();
    let again: Vec<usize> = (0..200)
        .map(|u| {
            c.pick(Some(format!("user{u}").as_bytes()), &[])
                .expect("pick")
                .0
        })
        .collect();
    assert_eq!(first, again);
    let spread = counts_of(&first, 3);
    assert!(spread.iter().all(|n| *n > 30), "{spread:?}");
    // Take endpoint 1 down: only its keys move.
    c.endpoints[1]
        .shared
        .healthy
        .store(false, std::sync::atomic::Ordering::Relaxed);
    for (u, was) in first.iter().enumerate() {
        let now = c
            .pick(Some(format!("user{u}").as_bytes()), &[])
            .expect("pick")
            .0;
        if *was != 1 {
            assert_eq!(now, *was);
        } else {
            assert_ne!(now, 1);
        }
    }
}

fn counts_of(v: &[usize], n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for i in v {
        c[*i] += 1;
    }
    c
}

#[test]
fn unhealthy_and_ejected_endpoints_are_skipped() {
    let c = cluster(
        "{ policy: round_robin }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
    );
    c.endpoints[0]
        .shared
        .healthy
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counts(&c, 10, None), vec![0, 10]);
    c.endpoints[0]
        .shared
        .healthy
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Two consecutive failures eject endpoint 1 (max 50% of the cluster).
    c.outcome(&c.endpoints[1], true);
    c.outcome(&c.endpoints[1], true);
    assert_eq!(counts(&c, 10, None), vec![10, 0]);
    // The second endpoint cannot be ejected as well: 50% cap.
    c.outcome(&c.endpoints[0], true);
    c.outcome(&c.endpoints[0], true);
    assert_eq!(counts(&c, 10, None), vec![10, 0]);
    c.endpoints[0]
        .shared
        .healthy
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        c.pick(None, &[]),
        Err(Error::NoHealthyEndpoint(_))
    ));
}

#[test]
fn retry_avoids_tried_endpoint() {
    let c = cluster(
        "{ policy: round_robin }",
        &[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)],
    );
    for _ in 0..10 {
        assert_eq!(c.pick(None, &[0]).expect("pick").0, 1);
    }
    assert!(c.pick(None, &[0, 1]).expect("falls back").0 < 2);
}

#[test]
fn pool_reuses_and_expires_connections() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let c = cluster(
        "{ policy: round_robin }",
        &[(&format!("127.0.0.1:{port}"), 1)],
    );
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ep = c.endpoints[0].clone();
        let a = c.acquire(&ep).await.expect("connect");
        assert!(!a.reused);
        c.release(a, true);
        let b = c.acquire(&ep).await.expect("pooled");
        assert!(b.reused);
        c.release(b, false);
        let d = c.acquire(&ep).await.expect("new");
        assert!(!d.reused);
        c.release(d, true);
        c.close_idle();
        assert_eq!(ep.stats.idle.load(std::sync::atomic::Ordering::Relaxed), 0);
    });
}

#[test]
fn connect_refused_is_an_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = cluster(
        "{ policy: round_robin }",
        &[(&format!("127.0.0.1:{port}"), 1)],
    );
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ep = c.endpoints[0].clone();
        assert!(matches!(c.acquire(&ep).await, Err(Error::Connect(..))));
    });
}

/// A cluster `c` with `proxy_protocol: VERSION` and one endpoint on `port`.
fn pp_cluster(port: u16, version: &str) -> Cluster {
    let text = format!(
        "listeners: [{{ name: l, address: \"127.0.0.1:1\" }}]\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:{port}\"]\n    proxy_protocol: {version}\n"
    );
    let cfg = weir_config::parse(&text, "t").expect("config");
    let shared = Arc::new(SharedCluster::new(&cfg.clusters[0]).expect("resolves"));
    Cluster::new(shared, 0, &Registry::default())
}

/// Accepts the next connection and reads its PROXY header (the connect wrote it before it
/// returned, so it is all there).
fn accept_header(
    l: &std::net::TcpListener,
) -> (std::net::TcpStream, weir_l4::proxy_protocol::Header) {
    use std::io::Read;
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    loop {
        if let Some((h, n)) = weir_l4::proxy_protocol::parse(&got).expect("a PROXY header") {
            assert_eq!(n, got.len(), "nothing after the header yet");
            return (s, h);
        }
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed before a whole header");
        got.extend_from_slice(&buf[..n]);
    }
}

fn idle_of(ep: &Endpoint) -> i64 {
    ep.stats.idle.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn proxy_protocol_connections_are_kept_per_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    for (version, want) in [("v1", 1u8), ("v2", 2)] {
        let c = pp_cluster(port, version);
        assert!(c.sends_proxy_header());
        let a = ClientConn::new(
            1,
            "[::ffff:192.0.2.1]:5000".parse().expect("addr"),
            "[::ffff:10.0.0.1]:80".parse().expect("addr"),
        );
        let b = ClientConn::new(
            2,
            "198.51.100.9:6000".parse().expect("addr"),
            "10.0.0.1:80".parse().expect("addr"),
        );
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let ep = c.endpoints[0].clone();
            let now = Instant::now();
            let ca = c.acquire_for(now, &ep, a).await.expect("connect for a");
            assert!(!ca.reused);
            assert_eq!(ca.client, Some(1));
            let (_sa, h) = accept_header(&listener);
            assert_eq!(h.version, want);
            // IPv4-mapped addresses are written as IPv4.
            let v4 = (
                "192.0.2.1:5000".parse().expect("addr"),
                "10.0.0.1:80".parse().expect("addr"),
            );
            assert_eq!(h.addresses, Some(v4));
            c.release(ca, true);
            assert_eq!(idle_of(&ep), 1);
            // Another client never gets a's connection: a new one, with its own header.
            assert!(c.pooled_for(Instant::now(), &ep, &b).is_none());
            assert!(
                c.pooled(Instant::now(), &ep).is_none(),
                "not in the shared pool"
            );
            let cb = c
                .acquire_for(Instant::now(), &ep, b)
                .await
                .expect("connect for b");
            assert!(!cb.reused);
            let (_sb, h) = accept_header(&listener);
            assert_eq!(h.addresses, Some((b.src, b.dst)));
            c.release(cb, true);
            // a's next request reuses a's connection.
            let again = c
                .acquire_for(Instant::now(), &ep, a)
                .await
                .expect("a again");
            assert!(again.reused);
            assert_eq!(again.client, Some(1));
            c.release(again, true);
            assert_eq!(idle_of(&ep), 2);
            // a closes: its connections go, b's stay.
            c.close_client(1);
            assert_eq!(idle_of(&ep), 1);
            assert!(c.pooled_for(Instant::now(), &ep, &a).is_none());
            let kept = c.pooled_for(Instant::now(), &ep, &b).expect("b's kept");
            c.release(kept, true);
            // The gateway's own connection (a callout): a header that declares no client, pooled
            // apart from the clients'.
            let own = c.acquire_at(Instant::now(), &ep).await.expect("own");
            assert_eq!(own.client, None);
            let (_so, h) = accept_header(&listener);
            assert_eq!((h.version, h.addresses), (want, None));
            c.release(own, true);
            let own = c.pooled(Instant::now(), &ep).expect("own pooled");
            assert_eq!(own.client, None);
            c.release(own, true);
            assert_eq!(idle_of(&ep), 2);
            // The idle timeout applies to a client's connections too.
            let later = Instant::now() + std::time::Duration::from_secs(120);
            assert!(c.pooled_for(later, &ep, &b).is_none());
            assert_eq!(idle_of(&ep), 1);
            c.close_idle();
            assert_eq!(idle_of(&ep), 0);
        });
    }
}

#[test]
fn other_clusters_ignore_the_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let c = cluster(
        "{ policy: round_robin }",
        &[(&format!("127.0.0.1:{port}"), 1)],
    );
    assert!(!c.sends_proxy_header());
    let a = ClientConn::new(
        1,
        "192.0.2.1:1".parse().expect("addr"),
        "10.0.0.1:80".parse().expect("addr"),
    );
    let b = ClientConn::new(
        2,
        "192.0.2.2:1".parse().expect("addr"),
        "10.0.0.1:80".parse().expect("addr"),
    );
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ep = c.endpoints[0].clone();
        let ca = c
            .acquire_for(Instant::now(), &ep, a)
            .await
            .expect("connect");
        assert_eq!(ca.client, None);
        c.release(ca, true);
        // One shared pool: b gets the connection a used.
        let cb = c.pooled_for(Instant::now(), &ep, &b).expect("shared");
        assert!(cb.reused);
        c.release(cb, false);
    });
}
