//! The `quota` filter end to end: token limits under concurrent clients on two workers stay
//! within the documented overshoot bound, a money budget stops a consumer at the right spend,
//! Retry-After is honest, two `weir` processes sharing one `redis-server` enforce one global
//! limit with Redis seeing a small fraction of the requests, and a Redis killed mid-test is
//! followed by each limit's fail-open or fail-closed rule (and says so in the metrics).
//!
//! Until the `auth` filter sets consumers, the per-caller limits here are keyed by a header.
//! Windows are `87600h` (ten years, aligned to the epoch) where a test must not see a window
//! turn, and a few seconds where it must.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_tests::*;

/// An OpenAI provider `o` on the mock, and an `ai` route whose filters are `filters` (YAML
/// flow sequence items).
fn ai_gateway(d: Driver, workers: usize, mock: &MockUpstream, quota: &str) -> Gateway {
    Gateway::new()
        .driver(d)
        .workers(workers)
        .access_log(false)
        .top_yaml(&format!(
            "providers: [{{ name: o, type: openai, base_url: \"http://{}/v1\", keys: [{{ value: sk-test }}] }}]",
            mock.addr()
        ))
        .route(&format!(
            "{{ name: llm, ai: {{ models: [{{ model: \"*\", targets: [{{ provider: o }}] }}] }}, filters: [{{ type: quota, {quota} }}] }}"
        ))
        .start()
}

fn chat_raw(body: &str, headers: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `(prompt_tokens, completion_tokens)` of an OpenAI answer.
fn usage(r: &Response) -> (u64, u64) {
    let v = r.json();
    (
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
    )
}

/// The reservation the filter makes with `prompt_estimate: bytes`: a quarter of the body's
/// bytes, rounded up, plus the output tokens asked for (or the default).
fn reserved(body: &str, output: u64) -> u64 {
    (body.len() as u64).div_ceil(4) + output
}

fn admin_post(gw: &Gateway, target: &str) -> Response {
    Client::connect(gw.admin_addr()).request(
        format!("POST {target} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
}

/// What `clients` concurrent keep-alive clients got before each was refused: every answer's
/// `(reserved, used)` tokens, and every refusal.
fn drain_tokens(
    gw: &Gateway,
    clients: usize,
    body: &str,
    output_reserved: u64,
) -> (Vec<(u64, u64)>, Vec<Response>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let addr = gw.addr();
            let body = body.to_owned();
            let answers = answers.clone();
            let refusals = refusals.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..1000 {
                    let r = c.request(&chat_raw(&body, ""));
                    match r.status() {
                        200 => {
                            let (p, o) = usage(&r);
                            answers
                                .lock()
                                .unwrap()
                                .push((reserved(&body, output_reserved), p + o));
                        }
                        429 => {
                            refusals.lock().unwrap().push(r);
                            return;
                        }
                        s => panic!("unexpected {s}: {}", r.text()),
                    }
                }
                panic!("never refused");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let a = std::mem::take(&mut *answers.lock().unwrap());
    let r = std::mem::take(&mut *refusals.lock().unwrap());
    (a, r)
}

both_drivers! {
    /// Eight concurrent clients on two workers against a token limit. Reservations never go
    /// past the limit, so when no answer uses more than it reserved (`max_tokens` set, prompt
    /// estimate above the real count) the total stays within the limit exactly; when answers use
    /// more, the total goes over by at most (requests in flight) × (largest excess), the bound
    /// the README states.
    fn token_limit_overshoot_is_bounded(d) {
        let m = MockUpstream::start();
        const LIMIT: u64 = 3000;
        const CLIENTS: usize = 8;

        // 1. Every answer within its reservation: no overshoot at all.
        let gw = ai_gateway(d, 2, &m, &format!(
            "limits: [{{ name: tpm, tokens: {LIMIT}, per: 87600h }}]"
        ));
        // Long words: the mock counts one token a word, the estimate one per four bytes.
        let body = r#"{"model":"gpt-x","max_tokens":6,"messages":[{"role":"user","content":"abcdefghijkl mnopqrstuvwx"}]}"#;
        let (answers, refusals) = drain_tokens(&gw, CLIENTS, body, 6);
        let used: u64 = answers.iter().map(|a| a.1).sum();
        assert!(answers.iter().all(|(r, u)| u <= r), "{answers:?}");
        assert!(used <= LIMIT, "used {used} of {LIMIT}");
        // Leases stranded on the other core cost at most a little of the limit.
        assert!(used >= LIMIT * 3 / 4, "used only {used} of {LIMIT}");
        assert_eq!(refusals.len(), CLIENTS);
        for r in &refusals {
            let v = r.json();
            assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
            assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
            assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("3000"));
        }

        // 2. Answers longer than reserved (no max_tokens, 2 output tokens reserved, the mock
        //    answers a dozen): over by no more than the bound.
        let gw = ai_gateway(d, 2, &m, &format!(
            "limits: [{{ name: tpm2, tokens: {LIMIT}, per: 87600h }}], default_max_tokens: 2"
        ));
        let body = r#"{"model":"gpt-x","messages":[{"role":"user","content":"a b c d e f g h"}]}"#;
        let (answers, _) = drain_tokens(&gw, CLIENTS, body, 2);
        let used: u64 = answers.iter().map(|a| a.1).sum();
        let excess = answers.iter().map(|(r, u)| u.saturating_sub(*r)).max().unwrap();
        assert!(excess > 0, "the case needs answers over their reservation");
        let bound = CLIENTS as u64 * excess;
        assert!(used > LIMIT - bound, "used {used}");
        assert!(used <= LIMIT + bound, "used {used}, limit {LIMIT}, bound {bound}");
        eprintln!("overshoot {} (bound {bound}) with {} answers", used.saturating_sub(LIMIT), answers.len());
    }
}

both_drivers! {
    /// A budget in money: a caller is refused exactly when what is left of the budget no longer
    /// covers the next request's reservation; the admin API shows the spend, a top-up and a
    /// reset let it go on, and another caller was never touched.
    fn budget_stops_at_the_right_spend(d) {
        let m = MockUpstream::start();
        let gw = ai_gateway(d, 2, &m,
            "limits: [{ name: spend, key: [\"header:x-user\"], budget: 0.05, per: 87600h }], \
             prices: { gpt-q: { input: 100, output: 200 } }");
        // Nano-dollars: 100 and 200 dollars per million tokens.
        let cost = |input: u64, output: u64| input * 100_000 + output * 200_000;
        let budget = 50_000_000u64;
        let mut c = gw.connect();
        let mut spent = 0u64;
        let mut answered = 0;
        let body = |i: usize| format!(
            r#"{{"model":"gpt-q","max_tokens":{},"messages":[{{"role":"user","content":"request {i}"}}]}}"#,
            3 + i % 5
        );
        let refused = loop {
            let b = body(answered);
            let max = (3 + answered % 5) as u64;
            let reservation = cost((b.len() as u64).div_ceil(4), max);
            let r = c.request(&chat_raw(&b, "x-user: alice\r\n"));
            if r.status() == 429 {
                assert!(budget - spent < reservation, "refused with {} left for {reservation}", budget - spent);
                break r;
            }
            assert_eq!(r.status(), 200, "{}", r.text());
            assert!(budget - spent >= reservation, "admitted with {} left for {reservation}", budget - spent);
            let (p, o) = usage(&r);
            spent += cost(p, o);
            answered += 1;
            assert!(answered < 100);
        };
        assert!(answered >= 10, "{answered}");
        assert!(spent <= budget);
        let v = refused.json();
        assert_eq!(v["error"]["code"], "insufficient_quota", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("quota `spend` (budget per 315360000s) for header:x-user=alice: limit 0.050000"), "{msg}");

        // The admin API: the spend, to the nano-dollar (reported by the refused request's visit).
        let q = gw.admin_get("/quota?limit=spend").json();
        let keys = q["limits"][0]["keys"].as_array().unwrap();
        let alice = keys.iter().find(|k| k["key"] == "header:x-user=alice").unwrap();
        assert!((alice["spent"].as_f64().unwrap() - spent as f64 / 1e9).abs() < 1e-9, "{alice}");
        assert_eq!(alice["requests"], answered);
        assert_eq!(alice["limit"], 0.05);

        // Another caller has its own budget.
        assert_eq!(c.request(&chat_raw(&body(0), "x-user: bob\r\n")).status(), 200);
        // A top-up lets alice go on; a reset starts her window afresh.
        let t = admin_post(&gw, "/quota/topup?limit=spend&key=header%3Ax-user%3Dalice&amount=0.01");
        assert_eq!(t.status(), 200, "{}", t.text());
        assert_eq!(t.json()["entry"]["limit"], 0.06);
        assert_eq!(c.request(&chat_raw(&body(0), "x-user: alice\r\n")).status(), 200);
        let r = admin_post(&gw, "/quota/reset?limit=spend&key=header%3Ax-user%3Dalice");
        assert_eq!(r.status(), 200, "{}", r.text());
        let q = gw.admin_get("/quota?limit=spend&key=header%3Ax-user%3Dalice").json();
        assert_eq!(q["limits"][0]["keys"][0]["spent"], 0.0);
        for _ in 0..5 {
            assert_eq!(c.request(&chat_raw(&body(0), "x-user: alice\r\n")).status(), 200);
        }
        assert_eq!(admin_post(&gw, "/quota/reset?limit=nope").status(), 404);
    }
}

both_drivers! {
    /// Retry-After says when the window turns: a retry before is refused, a retry after it is
    /// answered. Refusals on `ai` routes come in the client's protocol (Anthropic here), and
    /// answers carry `x-ratelimit-*`.
    fn retry_after_is_honest(d) {
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .top_yaml(&format!(
                "providers: [{{ name: a, type: anthropic, base_url: \"http://{}\", keys: [{{ value: k }}] }}]",
                m.addr()
            ))
            .route("{ name: hello, match: { path: { prefix: /hello } }, direct_response: { status: 200, body: hi }, filters: [{ type: quota, limits: [{ name: rps, key: [ip], requests: 3, per: 4s }] }] }")
            .route("{ name: llm, ai: { models: [{ model: \"*\", targets: [{ provider: a }] }] }, filters: [{ type: quota, limits: [{ name: once, requests: 1, per: 87600h }, { name: tokens, tokens: 100000, per: 87600h }] }] }")
            .start();
        let mut c = gw.connect();
        // Up to the limit: answered, with the remaining count going down.
        let mut refused = None;
        for _ in 0..10 {
            let r = c.get("/hello");
            if r.status() == 429 {
                refused = Some(r);
                break;
            }
            assert_eq!(r.status(), 200);
            assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
        }
        let r = refused.expect("refused within 10 requests");
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=4).contains(&wait), "{wait}");
        assert_eq!(r.json()["error"]["type"], "rate_limit_exceeded");
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
        let reset = r.header("x-ratelimit-reset-requests").unwrap().to_owned();
        assert!(reset.ends_with('s'), "{reset}");
        let asked = Instant::now();
        if wait >= 2 {
            // Well before the time given: still refused.
            assert_eq!(c.get("/hello").status(), 429);
        }
        std::thread::sleep(Duration::from_secs(wait).saturating_sub(asked.elapsed()));
        assert_eq!(c.get("/hello").status(), 200, "answered once Retry-After has passed");

        // Anthropic clients get Anthropic's error shape, and the answer its fields.
        let body = r#"{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        let raw = format!(
            "POST /v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let ok = c.request(raw.as_bytes());
        assert_eq!(ok.status(), 200, "{}", ok.text());
        assert_eq!(ok.header("x-ratelimit-limit-requests"), Some("1"));
        assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(ok.header("x-ratelimit-limit-tokens"), Some("100000"));
        let no = c.request(raw.as_bytes());
        assert_eq!(no.status(), 429);
        let v = no.json();
        assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")), "{v}");
        assert!(no.header("retry-after").unwrap().parse::<u64>().unwrap() > 86_400);
        // The connection is kept after a refusal of a read body.
        assert_eq!(c.get("/hello").status(), 200);
        let metrics = gw.metrics();
        assert!(metric(&metrics, "weir_quota_rejections_total", &[("limit", "once"), ("reason", "exhausted")]).unwrap() >= 1.0);
    }
}

/// Two `weir` processes (two workers each) with the same cluster limits on one `redis-server`.
fn cluster_pair(d: Driver, redis: &RedisServer) -> (Gateway, Gateway) {
    let start = || {
        Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .route(&format!(
                "{{ name: shared, match: {{ path: {{ prefix: /shared }} }}, direct_response: {{ status: 200, body: ok }}, \
                   filters: [{{ type: quota, redis: {{ url: \"{url}\" }}, limits: [{{ name: shared, requests: 40, per: 87600h, scope: cluster, cluster_lease: 4, lease: 1 }}] }}] }}",
                url = redis.url()
            ))
            .route(&format!(
                "{{ name: steady, match: {{ path: {{ prefix: /steady }} }}, direct_response: {{ status: 200, body: ok }}, \
                   filters: [{{ type: quota, redis: {{ url: \"{url}\" }}, limits: [{{ name: steady, requests: 1000000, per: 87600h, scope: cluster }}] }}] }}",
                url = redis.url()
            ))
            .route(&format!(
                "{{ name: warm, match: {{ path: {{ prefix: /warm }} }}, direct_response: {{ status: 200, body: ok }}, \
                   filters: [{{ type: quota, redis: {{ url: \"{url}\" }}, limits: [{{ name: warm, requests: 1000, per: 87600h, scope: cluster }}] }}] }}",
                url = redis.url()
            ))
            .route(&format!(
                "{{ name: per-user, match: {{ path: {{ prefix: /per-user }} }}, direct_response: {{ status: 200, body: ok }}, \
                   filters: [{{ type: quota, redis: {{ url: \"{url}\" }}, limits: [{{ name: per-user, key: [\"header:x-user\"], requests: 5, per: 87600h, scope: cluster, cluster_lease: 1, lease: 1 }}] }}] }}",
                url = redis.url()
            ))
            .start()
    };
    (start(), start())
}

/// Redis commands other than the test's own `INFO`/`PING`.
fn redis_commands(redis: &RedisServer) -> u64 {
    let info = redis.command(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !l.starts_with("info:") && !l.starts_with("ping:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

both_drivers! {
    /// One global limit across two processes: together they answer about the limit, not twice
    /// it, and go over by at most (processes × cluster_lease) plus what they let through failing
    /// open, which the metrics count. At steady load Redis sees at most one command per 50
    /// requests.
    fn two_processes_share_one_limit_through_redis(d) {
        let redis = RedisServer::start();
        let (a, b) = cluster_pair(d, &redis);
        let mut clients = [a.connect(), a.connect(), b.connect(), b.connect()];
        // A link connects and loads its script at its first fetch, which takes long enough for
        // a pool to fall behind and fail open (see the bound below): warm each process's link up
        // through a limit of its own, so that the shared one starts with Redis answering in time.
        for (g, c) in [(&a, 0), (&b, 2)] {
            assert_eq!(clients[c].get("/warm").status(), 200);
            wait_until("a first answer from Redis", Duration::from_secs(10), Duration::from_millis(20), || {
                let q = g.admin_get("/quota?limit=warm").json();
                (q["limits"][0]["keys"][0]["redis_used"].as_u64().unwrap_or(0) > 0).then_some(())
            });
        }
        let mut ok = 0;
        for i in 0..200 {
            let r = clients[i % 4].get("/shared");
            match r.status() {
                200 => ok += 1,
                429 => {}
                s => panic!("{s}: {}", r.text()),
            }
        }
        // The bound. A process lends each request (one unit: `lease: 1`) (i) from units Redis
        // granted it, (ii) ahead of Redis while a fetch is on its way, at most one
        // `cluster_lease` (4) outstanding, which its next fetch charges to Redis, or (iii)
        // failing open (`on_redis_error: open`, the default): while Redis is unreachable *or
        // merely behind* (a chunk lent ahead and the fetch not answered yet, which a loaded box
        // brings about with no Redis error at all), one unit per lease, each counted in
        // `weir_quota_fail_open_total`. Redis grants nothing once its count (grants and charges)
        // reaches the limit, and a process's first answer after that stops its lending ahead;
        // so past the limit go at most the 4 units each process had outstanding ahead, and what
        // it lent failing open: ok ≤ 40 + 2 × 4 + fail-open leases. With no fail-open that is
        // the README's limit + processes × cluster_lease. (A CI run once answered 50 against
        // 48, the bound without the fail-open leases; a quiet run with cold links counted 13 of
        // them and no Redis error.)
        let trouble = [&a, &b].map(|g| {
            let m = g.metrics();
            let count = |name| metric(&m, name, &[("limit", "shared")]).unwrap_or(0.0) as u64;
            (count("weir_quota_redis_errors_total"), count("weir_quota_fail_open_total"))
        });
        let fail_open: u64 = trouble.iter().map(|t| t.1).sum();
        assert!(
            ok <= 40 + 2 * 4 + fail_open,
            "{ok} answered: more than the limit and the bound; (redis errors, fail-open leases) per process: {trouble:?}"
        );
        assert!(ok >= 40 - 2 * 4 - 2, "{ok} answered: leases stranded too much");
        eprintln!("shared limit of 40: {ok} answered; (redis errors, fail-open leases) per process: {trouble:?}");

        let before = redis_commands(&redis);
        for i in 0..1000 {
            assert_eq!(clients[i % 4].get("/steady").status(), 200);
        }
        let used = redis_commands(&redis) - before;
        assert!(used * 50 <= 1000, "{used} Redis commands for 1000 requests");
        eprintln!("steady: {used} Redis commands for 1000 requests");
        let m = a.metrics();
        assert_eq!(metric(&m, "weir_quota_redis_up", &[("limit", "steady")]), Some(1.0));
        assert!(metric(&m, "weir_quota_redis_commands_total", &[("limit", "shared")]).unwrap() >= 1.0);

        // A reset of every key of a limit, asked of a process that never saw those keys, clears
        // them in Redis: the other process lets alice through again once it asks Redis.
        let mut c = a.connect();
        let alice = |c: &mut Client| c.request(b"GET /per-user HTTP/1.1\r\nhost: t\r\nx-user: alice\r\n\r\n").status();
        let passed = (0..10).filter(|_| alice(&mut c) == 200).count();
        assert!((5..=7).contains(&passed), "{passed} of 10 passed a limit of 5");
        assert_eq!(alice(&mut c), 429);
        let r = admin_post(&b, "/quota/reset?limit=per-user");
        assert_eq!(r.status(), 200, "{}", r.text());
        wait_until("alice passes on the other process after the reset", Duration::from_secs(10), Duration::from_millis(100), || {
            (alice(&mut c) == 200).then_some(())
        });
    }
}

both_drivers! {
    /// Redis killed mid-test: a fail-open limit goes on answering (each process holding it to
    /// the whole limit alone) and charges Redis once it is back; a fail-closed one answers 503
    /// once the units it holds are spent. The metrics say so.
    fn redis_outage_follows_the_fail_rule(d) {
        let mut redis = RedisServer::start();
        let url = redis.url();
        let route = |name: &str, mode: &str| format!(
            "{{ name: {name}, match: {{ path: {{ prefix: /{name} }} }}, direct_response: {{ status: 200, body: ok }}, \
               filters: [{{ type: quota, redis: {{ url: \"{url}\", timeout: 200ms }}, limits: [{{ name: {name}, requests: 10000, per: 87600h, scope: cluster, cluster_lease: 3, lease: 1, on_redis_error: {mode} }}] }}] }}"
        );
        let gw = Gateway::new()
            .driver(d)
            .workers(1)
            .access_log(false)
            .route(&route("open", "open"))
            .route(&route("closed", "closed"))
            .start();
        let mut c = gw.connect();
        // A fail-closed limit has no units until its first lease from Redis arrives (the request
        // path never waits for Redis): on a loaded machine the first requests may get 503.
        let warm = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while c.get("/closed").status() != 200 {
            assert!(std::time::Instant::now() < warm, "no lease from Redis within 5 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for _ in 0..5 {
            assert_eq!(c.get("/open").status(), 200);
            // While Redis is up a fail-closed limit serves; it refuses only while it is more than
            // a chunk ahead of Redis (its fetch not answered yet), which a loaded box can make
            // happen with this tiny chunk: such a refusal must end within moments.
            let back = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while c.get("/closed").status() != 200 {
                assert!(std::time::Instant::now() < back, "fail-closed refused with Redis up");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        redis.kill();
        for _ in 0..20 {
            assert_eq!(c.get("/open").status(), 200);
        }
        let statuses: Vec<u16> = (0..20).map(|_| {
            let r = c.get("/closed");
            if r.status() == 503 {
                assert_eq!(r.json()["error"]["type"], "quota_unavailable");
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            r.status()
        }).collect();
        assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
        assert!(statuses.iter().filter(|s| **s == 503).count() >= 15, "{statuses:?}");
        let m = gw.metrics();
        assert_eq!(metric(&m, "weir_quota_redis_up", &[("limit", "closed")]), Some(0.0));
        // The two limits share one link: the first command after the kill failed for one of them.
        let errors = metric(&m, "weir_quota_redis_errors_total", &[("limit", "closed")]).unwrap()
            + metric(&m, "weir_quota_redis_errors_total", &[("limit", "open")]).unwrap();
        assert!(errors >= 1.0, "{m}");
        assert!(metric(&m, "weir_quota_fail_open_total", &[("limit", "open")]).unwrap() >= 1.0);
        assert!(metric(&m, "weir_quota_rejections_total", &[("limit", "closed"), ("reason", "unavailable")]).unwrap() >= 15.0);

        // Back: the closed limit answers again, and what the open one let through is charged.
        redis.restart();
        wait_until("the fail-closed limit to answer again", Duration::from_secs(15), Duration::from_millis(100), || {
            (c.get("/closed").status() == 200).then_some(())
        });
        wait_until("the fail-open use to reach Redis", Duration::from_secs(15), Duration::from_millis(100), || {
            let _ = c.get("/open");
            let q = gw.admin_get("/quota?limit=open").json();
            let used = q["limits"][0]["keys"][0]["redis_used"].as_u64().unwrap_or(0);
            (used >= 20).then_some(())
        });
        assert_eq!(metric(&gw.metrics(), "weir_quota_redis_up", &[("limit", "closed")]), Some(1.0));
    }
}

both_drivers! {
    /// Limits keyed by the consumer the `auth` filter found: one consumer's tokens run out, the
    /// other's do not, and the admin API answers per consumer.
    fn consumers_have_their_own_token_quota(d) {
        use sha2::Digest;
        let hex = |k: &str| -> String {
            sha2::Sha256::digest(k.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        };
        let (alice, bob) = ("wk-quota-alice-0123456789abcdef", "wk-quota-bob-fedcba9876543210");
        let m = MockUpstream::start();
        let gw = Gateway::new()
            .driver(d)
            .workers(2)
            .access_log(false)
            .top_yaml(&format!(
                "providers: [{{ name: o, type: openai, base_url: \"http://{}/v1\", keys: [{{ value: sk-test }}] }}]\n\
                 consumers:\n  - {{ name: alice, keys: [{{ id: a1, sha256: \"{}\" }}] }}\n  - {{ name: bob, keys: [{{ id: b1, sha256: \"{}\" }}] }}",
                m.addr(), hex(alice), hex(bob)
            ))
            .route("{ name: llm, ai: { models: [{ model: \"*\", targets: [{ provider: o }] }] }, \
                    filters: [{ type: auth }, { type: quota, limits: [{ name: per-consumer, key: [consumer], tokens: 400, per: 87600h }] }] }")
            .start();
        let body = r#"{"model":"gpt-x","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}"#;
        let mut c = gw.connect();
        let mut used = 0;
        let mut answered = 0;
        loop {
            let r = c.request(&chat_raw(body, &format!("Authorization: Bearer {alice}\r\n")));
            if r.status() == 429 {
                assert!(r.json()["error"]["message"].as_str().unwrap().contains("for consumer=alice"));
                break;
            }
            assert_eq!(r.status(), 200, "{}", r.text());
            let (p, o) = usage(&r);
            used += p + o;
            answered += 1;
            assert!(answered < 100);
        }
        assert!(used <= 400 && used + reserved(body, 10) > 400, "{used}");
        let r = c.request(&chat_raw(body, &format!("Authorization: Bearer {bob}\r\n")));
        assert_eq!(r.status(), 200, "{}", r.text());
        let q = gw.admin_get("/quota?consumer=alice").json();
        let keys = q["limits"][0]["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{q}");
        assert_eq!(keys[0]["key"], "consumer=alice");
        assert_eq!(keys[0]["spent"], used);
        assert_eq!(keys[0]["requests"], answered);

        // The same through weirctl, and a top-up that lets alice go on.
        let weirctl = |args: &[&str]| {
            let out = run_bounded(
                std::process::Command::new(bin_path("weirctl"))
                    .args(["quota", "--admin", &gw.admin_addr().to_string()])
                    .args(args),
                Duration::from_secs(20),
            );
            assert!(out.status.success(), "weirctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let table = weirctl(&["show", "--consumer", "alice"]);
        assert!(table.contains("per-consumer (400/315360000s)") && table.contains("consumer=alice"), "{table}");
        assert!(!table.contains("consumer=bob"), "{table}");
        let v: serde_json::Value = serde_json::from_str(&weirctl(&["-o", "json", "show", "--limit", "per-consumer"])).unwrap();
        assert_eq!(v["limits"][0]["keys"].as_array().map(Vec::len), Some(2));
        weirctl(&["topup", "per-consumer", "100", "--key", "consumer=alice"]);
        let r = c.request(&chat_raw(body, &format!("Authorization: Bearer {alice}\r\n")));
        assert_eq!(r.status(), 200, "{}", r.text());
        weirctl(&["reset", "per-consumer"]);
        let v: serde_json::Value = serde_json::from_str(&weirctl(&["-o", "json", "show", "--consumer", "alice"])).unwrap();
        assert_eq!(v["limits"][0]["keys"][0]["spent"], 0);
    }
}

#[test]
fn config_errors_name_the_field() {
    let Err(err) = Gateway::new()
        .route("{ name: hello, direct_response: { status: 200 }, filters: [{ type: quota, limits: [{ name: t, tokens: 5, per: minute }] }] }")
        .try_start()
    else {
        panic!("a token limit on a plain route was accepted");
    };
    let text = err.to_string();
    assert!(
        text.contains("filters[0].limits[0]")
            && text.contains("only on routes with an `ai` action"),
        "{text}"
    );
}
