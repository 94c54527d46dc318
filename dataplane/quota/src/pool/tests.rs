use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn limit(yaml: &str) -> Limit {
    serde_yaml_ng::from_str(yaml).expect("limit")
}

fn local(yaml: &str, cores: usize) -> Arc<LimitShared> {
    let l = Arc::new(LimitShared::new(&limit(yaml), None, None));
    l.cores.store(cores, Relaxed);
    l
}

const W: (u64, u64) = (60, 120);
const NOW: u64 = 61_000;

#[test]
fn leases_never_grant_past_the_limit() {
    let l = local("{ name: t, tokens: 1000, per: minute }", 2);
    // Default lease: 1000 / (8 × 2 cores) = 62 (and at most left / (2 × cores)).
    let g = l
        .take("k", W, 10, 10, u64::MAX, (0, 0), NOW)
        .expect("granted");
    assert!(g.void, "a core's first visit in a window");
    assert_eq!(g.units, 62);
    assert_eq!((g.cap, g.pool_left), (1000, 938));
    let mut total = g.units;
    loop {
        match l.take("k", W, 10, 10, g.epoch, (0, 0), NOW) {
            Ok(g) => {
                assert!(g.units >= 10);
                total += g.units;
            }
            Err(Refusal::Exhausted { left }) => {
                assert!(left < 10);
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(total <= 1000 && total > 990, "{total}");
    // What no window can hold is refused as such.
    assert_eq!(
        l.take("k", W, 1001, 1001, 0, (0, 0), NOW),
        Err(Refusal::TooLarge)
    );
    // Another key has its own pool; the next window starts afresh.
    assert!(l.take("other", W, 500, 500, u64::MAX, (0, 0), NOW).is_ok());
    let g = l
        .take("k", (120, 180), 10, 10, 0, (0, 0), 121_000)
        .expect("new window");
    assert_eq!(g.pool_left, 1000 - g.units);
}

#[test]
fn leases_shrink_as_the_pool_empties() {
    let l = local("{ name: t, requests: 100, per: minute, lease: 20 }", 4);
    let mut sizes = Vec::new();
    while let Ok(g) = l.take("k", W, 1, 1, 0, (0, 0), NOW) {
        sizes.push(g.units);
    }
    assert_eq!(sizes.iter().sum::<u64>(), 100);
    assert_eq!(
        sizes[0], 12,
        "100 left / (2 × 4 cores) caps the configured 20"
    );
    assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
    assert_eq!(*sizes.last().expect("some"), 1);
}

#[test]
fn spend_is_reported_and_resets_void_old_leases() {
    let l = local("{ name: t, key: [consumer], tokens: 100, per: minute }", 1);
    let g = l
        .take("k", W, 30, 30, u64::MAX, (0, 0), NOW)
        .expect("granted");
    l.take("k", W, 5, 5, g.epoch, (25, 3), NOW)
        .expect("granted");
    let e = &l.entries(61)[0];
    assert_eq!((e.entry.spent, e.entry.requests), (25, 3));
    assert_eq!(l.reset(Some("k"), 61), vec!["k".to_string()]);
    let e = &l.entries(61)[0];
    assert_eq!((e.entry.granted, e.entry.spent, e.entry.epoch), (0, 0, 1));
    // The core's next visit learns its lease (and what it would report) is void.
    let g2 = l
        .take("k", W, 500, 40, g.epoch, (99, 9), NOW)
        .expect("granted");
    assert!(g2.void);
    assert!(g2.units >= 40 && g2.units < 500);
    assert_eq!(l.entries(61)[0].entry.spent, 0);
    // A top-up raises this window's cap.
    let e = l.top_up("k", 50, 61);
    assert_eq!(l.view(&e).0, 150);
    // Resetting every key, including ones not seen.
    assert_eq!(l.reset(None, 61).len(), 1);
}

/// Many threads, each a core with its own lease, reserve and settle at random against one
/// pool: what they admit never exceeds the limit, and only use over the reservation can carry
/// the total over it.
#[test]
fn concurrent_cores_admit_no_more_than_the_limit() {
    let l = local("{ name: t, tokens: 100000, per: minute }", 8);
    let admitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let l = l.clone();
            let admitted = admitted.clone();
            std::thread::spawn(move || {
                let mut left: i64 = 0;
                let mut epoch = u64::MAX;
                let mut rng = fastrand_like(t);
                for _ in 0..10_000 {
                    let r = 10 + rng() % 90;
                    if left < r as i64 {
                        let need = (r as i64 - left) as u64;
                        match l.take("k", W, need, r, epoch, (0, 0), NOW) {
                            Ok(g) => {
                                if g.void {
                                    left = 0;
                                }
                                left += g.units as i64;
                                epoch = g.epoch;
                            }
                            Err(_) => continue,
                        }
                    }
                    left -= r as i64;
                    admitted.fetch_add(r, Relaxed);
                    // Settled at once with less than reserved: the rest comes back.
                    let used = r / 2;
                    left += (r - used) as i64;
                    admitted.fetch_sub(r - used, Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let e = &l.entries(61)[0].entry;
    assert!(e.granted <= 100_000, "{}", e.granted);
    assert!(admitted.load(Relaxed) <= 100_000);
    assert!(l.stats.refused_exhausted.load(Relaxed) > 0);
}

/// A tiny xorshift so the test needs no extra dependency.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn unreachable_redis() -> weir_config::quota::Redis {
    // Port 1 on loopback refuses at once.
    weir_config::quota::Redis {
        url: "redis://127.0.0.1:1/".into(),
        timeout: weir_config::Dur::ms(200),
    }
}

/// A Redis that takes connections and never answers: the link stays up (no command has failed)
/// and the first fetch stays on its way for the whole test.
fn silent_redis() -> (std::net::TcpListener, weir_config::quota::Redis) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}/", listener.local_addr().expect("addr"));
    let cfg = weir_config::quota::Redis {
        url,
        timeout: weir_config::Dur::secs(60),
    };
    (listener, cfg)
}

fn cluster(yaml: &str) -> Arc<LimitShared> {
    cluster_on(&unreachable_redis(), yaml)
}

fn cluster_on(cfg: &weir_config::quota::Redis, yaml: &str) -> Arc<LimitShared> {
    let link = RedisLink::start(cfg).expect("link");
    Arc::new(LimitShared::new(&limit(yaml), Some(cfg), Some(link)))
}

fn wait_down(l: &LimitShared) {
    let link = l.link.as_ref().expect("link");
    for _ in 0..200 {
        if !link.up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the link never noticed Redis is away");
}

#[test]
fn cluster_pools_lend_one_chunk_ahead_then_fail_closed() {
    let l = cluster(
        "{ name: c, requests: 100, per: minute, scope: cluster, cluster_lease: 10, on_redis_error: closed }",
    );
    // Nothing fetched yet: the pool lends ahead of Redis, at most one chunk.
    let now = crate::window::now_ms();
    let w = crate::window::bounds(l.window, now / 1000);
    let g = l.take("k", w, 4, 4, u64::MAX, (0, 0), now).expect("lent");
    // The limit / 8 = 12, at most half of the one chunk it may lend ahead (5).
    assert_eq!(g.units, 5);
    wait_down(&l);
    // Redis is away and the limit fails closed.
    assert_eq!(
        l.take("k", w, 4, 4, g.epoch, (0, 0), now),
        Err(Refusal::Unavailable)
    );
    assert!(l.stats.refused_unavailable.load(Relaxed) >= 1);
    assert!(l.stats.redis_errors.load(Relaxed) >= 1);
    // What was lent stays owed to Redis.
    let e = &l.entries(now / 1000)[0].entry;
    assert_eq!(e.unsynced + e.in_flight, 5);
}

#[test]
fn cluster_pools_fail_open_up_to_the_whole_limit() {
    let l = cluster("{ name: c, requests: 20, per: minute, scope: cluster, lease: 1 }");
    let now = crate::window::now_ms();
    let w = crate::window::bounds(l.window, now / 1000);
    let g = l.take("k", w, 1, 1, u64::MAX, (0, 0), now).expect("lent");
    wait_down(&l);
    let mut n = 1;
    while l.take("k", w, 1, 1, g.epoch, (0, 0), now).is_ok() {
        n += 1;
        assert!(n <= 20);
    }
    assert_eq!(
        n, 20,
        "this process alone holds requests to the whole limit"
    );
    assert!(l.stats.fail_open.load(Relaxed) >= 19);
}

/// What bounds a cluster limit's overshoot: a pool lends at most one chunk ahead of a Redis that
/// answers. Past that chunk, a Redis merely *behind* (up, no error, its fetch not answered yet:
/// a loaded box) gets the limit's fail rule like an unreachable one: a fail-open limit lends on,
/// one fail-open lease at a time, and counts each; a fail-closed one refuses. So units lent past
/// what Redis granted are at most one chunk plus the fail-open leases' units.
#[test]
fn a_pool_behind_redis_lends_one_chunk_ahead_then_follows_its_fail_rule() {
    let (_silent, cfg) = silent_redis();
    let open = cluster_on(
        &cfg,
        "{ name: o, requests: 100, per: minute, scope: cluster, cluster_lease: 4, lease: 1 }",
    );
    let closed = cluster_on(
        &cfg,
        "{ name: c, requests: 100, per: minute, scope: cluster, cluster_lease: 4, lease: 1, on_redis_error: closed }",
    );
    let now = crate::window::now_ms();
    let w = crate::window::bounds(open.window, now / 1000);
    for l in [&open, &closed] {
        for _ in 0..4 {
            assert_eq!(l.take("k", w, 1, 1, 0, (0, 0), now).map(|g| g.units), Ok(1));
        }
        assert_eq!(
            l.stats.fail_open.load(Relaxed),
            0,
            "one chunk ahead is no fail-open"
        );
    }
    for _ in 0..6 {
        assert_eq!(
            open.take("k", w, 1, 1, 0, (0, 0), now).map(|g| g.units),
            Ok(1)
        );
    }
    assert_eq!(
        closed.take("k", w, 1, 1, 0, (0, 0), now),
        Err(Refusal::Unavailable)
    );
    for l in [&open, &closed] {
        assert!(
            l.link.as_ref().is_some_and(|k| k.up()),
            "Redis counts as up"
        );
        assert_eq!(l.stats.redis_errors.load(Relaxed), 0);
    }
    assert_eq!(open.stats.fail_open.load(Relaxed), 6);
    let e = &open.entries(now / 1000)[0].entry;
    assert_eq!(
        (e.unsynced + e.in_flight, e.avail),
        (4 + 6, 0),
        "lent past Redis's grants: one chunk plus the fail-open leases"
    );
}
