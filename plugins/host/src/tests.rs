//! The host against `testdata/probe.wat`: header edits, local responses, configuration, shared
//! data, and each kind of failure confined to its request; and against `testdata/abi.wat`: the
//! answers of the other host calls (log level, header map size, properties, contexts, stream
//! control) and `proxy_on_queue_ready`.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::BytesMut;
use weir_filter::{Action, FilterFactory, RequestCtx};
use weir_http::{HeadLimits, RequestHead};

use crate::{Plugin, PluginCore, WasmFactory};

const PROBE: &str = include_str!("../testdata/probe.wat");
const ABI: &str = include_str!("../testdata/abi.wat");

fn config(name: &str, wat: &str) -> weir_config::Plugin {
    let bytes = wat::parse_str(wat).expect("valid wat");
    let yaml = format!(
        "name: {name}\nmodule: {}\nconfig: {{greeting: hi}}\nmax_memory: 4MiB\ncallback_deadline: 20ms\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    serde_yaml_ng::from_str(&yaml).expect("plugin config")
}

fn factory(cfg: &weir_config::Plugin) -> WasmFactory {
    let dir = std::env::temp_dir().join(format!("weir-wasm-test-{}", std::process::id()));
    let plugin = Plugin::build(cfg, Some(&dir), None).expect("builds");
    WasmFactory::new(PluginCore::new(plugin, 0, None).expect("starts"))
}

fn request(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw.as_bytes());
    weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete")
}

fn ctx() -> RequestCtx {
    let addr: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
    RequestCtx::new("r1".into(), addr, "main".into(), 0)
}

fn run(
    f: &WasmFactory,
    mode: Option<&str>,
) -> (Result<Action, weir_filter::ProxyError>, RequestHead) {
    let raw = match mode {
        Some(m) => format!("GET /a HTTP/1.1\r\nhost: x\r\nx-mode: {m}\r\n\r\n"),
        None => "GET /a HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
    };
    let mut head = request(&raw);
    let mut c = ctx();
    let mut filt = f.create();
    let r = filt.on_request_headers(&mut c, &mut head);
    filt.on_log(&c);
    (r, head)
}

#[test]
fn marks_requests_and_responses_with_its_config() {
    let f = factory(&config("probe", PROBE));
    let (r, head) = run(&f, None);
    assert!(matches!(r, Ok(Action::Continue)));
    assert_eq!(head.headers.get_str("x-wasm"), Some("on"));
    assert_eq!(&head.target[..], b"/a");

    let mut c = ctx();
    let mut filt = f.create();
    let mut head = request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(matches!(
        filt.on_request_headers(&mut c, &mut head),
        Ok(Action::Continue)
    ));
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
    let mut resp = weir_http::parse_response(&mut buf, 1 << 16, false)
        .expect("valid")
        .expect("complete");
    assert!(matches!(
        filt.on_response_headers(&mut c, &mut resp),
        Ok(Action::Continue)
    ));
    assert_eq!(
        resp.headers.get_str("x-wasm-resp"),
        Some(r#"{"greeting":"hi"}"#)
    );
    filt.on_log(&c);
}

#[test]
fn local_response_stops_the_request() {
    let f = factory(&config("probe", PROBE));
    let (r, _) = run(&f, Some("deny"));
    match r {
        Ok(Action::Respond(resp)) => {
            assert_eq!(resp.status, 403);
            assert_eq!(&resp.body[..], b"denied");
        }
        other => panic!("expected a local response, got {other:?}"),
    }
}

#[test]
fn each_failure_fails_its_request_only_and_is_counted() {
    let f = factory(&config("probe-fail", PROBE));
    for (mode, kind) in [
        ("trap", "trap"),
        ("loop", "deadline"),
        ("grow", "memory"),
        ("abi", "abi"),
    ] {
        let before =
            crate::metrics::failures("probe-fail", kind).load(std::sync::atomic::Ordering::Relaxed);
        let (r, _) = run(&f, Some(mode));
        let e = r.expect_err(mode);
        assert_eq!((e.status, e.kind), (503, "plugin_failed"), "{mode}");
        let after =
            crate::metrics::failures("probe-fail", kind).load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(after, before + 1, "{mode} counted as {kind}");
        // The next request gets a fresh instance and is served.
        let (r, head) = run(&f, None);
        assert!(matches!(r, Ok(Action::Continue)), "after {mode}");
        assert_eq!(head.headers.get_str("x-wasm"), Some("on"));
    }
}

#[test]
fn fail_open_lets_the_request_through() {
    let mut cfg = config("probe-open", PROBE);
    cfg.on_error = weir_config::OnError::Open;
    let f = factory(&cfg);
    let (r, _) = run(&f, Some("trap"));
    assert!(matches!(r, Ok(Action::Continue)));
}

#[test]
fn shared_data_is_counted_with_cas() {
    let f = factory(&config("probe-shared", PROBE));
    let g = factory(&config("probe-shared-2", PROBE));
    let mut seen = Vec::new();
    for fac in [&f, &g, &f] {
        let (r, head) = run(fac, Some("shared"));
        assert!(matches!(r, Ok(Action::Continue)));
        seen.push(head.headers.get_str("x-count").expect("count").to_owned());
    }
    // Shared data is process-wide: two plugins' instances see one counter.
    let n: Vec<u32> = seen.iter().map(|s| s.parse().expect("digit")).collect();
    assert_eq!(n[1], (n[0] + 1) % 10);
    assert_eq!(n[2], (n[1] + 1) % 10);
}

#[test]
fn modules_that_are_not_proxy_wasm_are_refused() {
    let cfg = config("plain", "(module (memory (export \"memory\") 1))");
    let e = Plugin::build(&cfg, None, None).expect_err("no abi export");
    assert!(e.to_string().contains("proxy_abi_version_0_2_1"), "{e}");
    let mut cfg = config("bad", PROBE);
    cfg.module = Some(base64::engine::general_purpose::STANDARD.encode(b"\0asm garbage"));
    let e = Plugin::build(&cfg, None, None).expect_err("not wasm");
    assert!(e.to_string().contains("does not compile"), "{e}");
    let mut cfg = config("hash", PROBE);
    cfg.sha256 = Some("0".repeat(64));
    assert!(matches!(
        Plugin::build(&cfg, None, None),
        Err(crate::Error::Hash { .. })
    ));
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("weir-wasm-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = config("cached", PROBE);
    let a = Plugin::build(&cfg, Some(&dir), None).expect("compiles");
    let files: Vec<_> = std::fs::read_dir(&dir).expect("cache dir").collect();
    assert_eq!(files.len(), 1);
    let name = files[0].as_ref().expect("entry").file_name();
    assert!(name.to_string_lossy().starts_with(&a.sha256));
    // From the cache this time; and the same plugin is reused when nothing changed.
    let b = Plugin::build(&cfg, Some(&dir), None).expect("loads");
    assert_eq!(a.sha256, b.sha256);
    let c = Plugin::build(&cfg, Some(&dir), Some(&b)).expect("reuses");
    assert!(std::sync::Arc::ptr_eq(&b, &c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn requests_in_flight_on_a_failed_instance_are_not_failed_by_it() {
    let f = factory(&config("probe-keep", PROBE));
    let mut c = ctx();
    let mut slow = f.create();
    let mut head = request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(matches!(
        slow.on_request_headers(&mut c, &mut head),
        Ok(Action::Continue)
    ));
    // Another request on the same core makes the instance trap; the core replaces it.
    let (r, _) = run(&f, Some("trap"));
    assert!(r.is_err());
    // The first request's context died with that instance: its remaining callbacks are skipped
    // (it was not the one that failed), and it goes on with its head as it was.
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-up: 1\r\ncontent-length: 0\r\n\r\n"[..]);
    let mut resp = weir_http::parse_response(&mut buf, 1 << 16, false)
        .expect("valid")
        .expect("complete");
    assert!(matches!(
        slow.on_response_headers(&mut c, &mut resp),
        Ok(Action::Continue)
    ));
    assert!(resp.headers.get_str("x-wasm-resp").is_none());
    assert_eq!(
        resp.headers.get_str("x-up"),
        Some("1"),
        "the head lost its fields"
    );
    slow.on_log(&c);
    // And new requests are served by the new instance.
    let (r, head) = run(&f, None);
    assert!(matches!(r, Ok(Action::Continue)));
    assert_eq!(head.headers.get_str("x-wasm"), Some("on"));
}

// === abi.wat ===

/// Runs one request through `f`'s request and response headers; both heads as the plugin left
/// them.
fn exchange(f: &WasmFactory, raw: &str) -> (RequestHead, weir_http::ResponseHead) {
    let mut head = request(raw);
    let mut c = ctx();
    c.route = Some("api".into());
    let mut filt = f.create();
    assert!(matches!(
        filt.on_request_headers(&mut c, &mut head),
        Ok(Action::Continue)
    ));
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-up: 1\r\ncontent-length: 0\r\n\r\n"[..]);
    let mut resp = weir_http::parse_response(&mut buf, 1 << 16, false)
        .expect("valid")
        .expect("complete");
    assert!(matches!(
        filt.on_response_headers(&mut c, &mut resp),
        Ok(Action::Continue)
    ));
    filt.on_log(&c);
    (head, resp)
}

/// The field `name` the plugin reported.
fn field<'a>(h: &'a weir_http::Headers, name: &str) -> &'a str {
    h.get_str(name)
        .unwrap_or_else(|| panic!("the plugin reported no `{name}`"))
}

/// Runs `f` on a core's runtime, as the gateway does (abi.wat registers a shared queue at start,
/// and the core then runs the task that delivers `proxy_on_queue_ready`).
fn on_core<R>(f: impl FnOnce() -> R) -> R {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async { f() })
}

/// Status codes as the plugin reports them (decimal).
const OK: &str = "0";
const NOT_FOUND: &str = "1";
const BAD_ARGUMENT: &str = "2";

#[test]
fn header_map_size_is_the_serialized_size_of_the_map() {
    on_core(|| {
        let f = factory(&config("abi-size", ABI));
        let raw = "GET /a?b=1 HTTP/1.1\r\nhost: x\r\nx-one: 1\r\nX-Two: zwei\r\n\r\n";
        // What the plugin sees of that request: pseudo-headers first, then the fields, lower case.
        let original = request(raw);
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":authority".to_vec(), original.host.to_vec()),
            (b":method".to_vec(), original.method.to_vec()),
            (b":path".to_vec(), original.target.to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
        ];
        for h in original.headers.iter() {
            pairs.push((h.name.to_ascii_lowercase(), h.value.to_vec()));
        }
        let expected = crate::abi::encode_map(pairs.iter().map(|(k, v)| (&k[..], &v[..]))).len();

        let (head, resp) = exchange(&f, raw);
        assert_eq!(field(&head.headers, "x-size-st"), OK);
        assert_eq!(field(&head.headers, "x-size"), expected.to_string());
        assert_eq!(field(&head.headers, "x-pairs-len"), expected.to_string());
        // The spec: an unknown map id is a bad argument.
        assert_eq!(field(&head.headers, "x-size-bad"), BAD_ARGUMENT);
        // The response's map (":status" and its fields) the same way.
        assert_eq!(field(&resp.headers, "x-size-st"), OK);
        assert_eq!(
            field(&resp.headers, "x-size"),
            field(&resp.headers, "x-pairs-len")
        );
        assert_ne!(field(&resp.headers, "x-size"), "0");
    })
}

#[test]
fn properties_a_plugin_sets_are_read_back_and_built_ins_are_refused() {
    on_core(|| {
        let f = factory(&config("abi-props", ABI));
        let (head, resp) = exchange(&f, "GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(field(&head.headers, "x-setprop"), OK);
        assert_eq!(field(&head.headers, "x-getprop"), OK);
        assert_eq!(field(&head.headers, "x-prop"), "v1");
        // Kept for the rest of the request: the response callback reads it.
        assert_eq!(field(&resp.headers, "x-prop-resp"), "v1");
        // The gateway's own properties are read-only, with or without a value in this request.
        assert_eq!(field(&head.headers, "x-set-builtin"), BAD_ARGUMENT);
        assert_eq!(field(&head.headers, "x-set-unset"), BAD_ARGUMENT);
        // A new request starts without it (this one does not set it: it only tries a queue
        // that does not exist).
        let (head, resp) = exchange(&f, "GET /a HTTP/1.1\r\nhost: x\r\nx-vm: none\r\n\r\n");
        assert_eq!(field(&head.headers, "x-enq"), NOT_FOUND);
        assert!(resp.headers.get_str("x-prop-resp").is_none());
    })
}

#[test]
fn the_effective_context_must_be_a_live_one() {
    on_core(|| {
        let f = factory(&config("abi-contexts", ABI));
        let (head, _) = exchange(&f, "GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(field(&head.headers, "x-eff-self"), OK);
        assert_eq!(field(&head.headers, "x-eff-root"), OK);
        assert_eq!(field(&head.headers, "x-eff-bad"), BAD_ARGUMENT);
    })
}

#[test]
fn stream_control_and_done_answer_as_the_readme_says() {
    on_core(|| {
        let f = factory(&config("abi-stream", ABI));
        let (head, resp) = exchange(&f, "GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
        // proxy_done: accepted.
        assert_eq!(field(&head.headers, "x-done"), OK);
        // proxy_close_stream: accepted for the HTTP streams, and the request is not reset (it went
        // on to the response above); an unknown stream type is a bad argument.
        assert_eq!(field(&head.headers, "x-close"), OK);
        assert_eq!(field(&head.headers, "x-close-bad"), BAD_ARGUMENT);
        assert_eq!(resp.status, 200);
        // The 0.2.0 calls answer as proxy_continue_stream does.
        assert_eq!(field(&head.headers, "x-cont-req"), OK);
        assert_eq!(field(&head.headers, "x-cont-resp"), OK);
        assert_eq!(field(&head.headers, "x-cont-bad"), BAD_ARGUMENT);
    })
}

/// Answers every callout with `200` and `ok`, and keeps what it was asked.
#[derive(Default)]
struct Canned(std::cell::RefCell<Vec<crate::Callout>>);

impl crate::Callouts for std::rc::Rc<Canned> {
    fn send(
        &self,
        call: crate::Callout,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<crate::CallAnswer, String>>>>
    {
        self.0.borrow_mut().push(call);
        Box::pin(async {
            Ok(crate::CallAnswer {
                headers: vec![(
                    bytes::Bytes::from_static(b":status"),
                    bytes::Bytes::from_static(b"200"),
                )],
                body: bytes::Bytes::from_static(b"ok"),
            })
        })
    }
}

#[test]
fn continue_request_resumes_a_request_paused_on_a_callout() {
    on_core(|| {
        let canned = std::rc::Rc::new(Canned::default());
        let plugin = Plugin::build(&config("abi-callout", ABI), None, None).expect("builds");
        let core =
            PluginCore::new(plugin, 0, Some(std::rc::Rc::new(canned.clone()))).expect("starts");
        let f = WasmFactory::new(core);
        let mut c = ctx();
        let mut filt = f.create();
        let mut head = request("GET /a HTTP/1.1\r\nhost: x\r\nx-call: 1\r\n\r\n");
        let Ok(Action::Wait(w)) = filt.on_request_headers(&mut c, &mut head) else {
            panic!("the request should wait for the callout");
        };
        assert_eq!(field(&head.headers, "x-call-status"), OK);
        // The callout answers at once; drive it to completion.
        let waker = std::task::Waker::noop();
        let mut w = w.0;
        assert!(w
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready());
        {
            let sent = canned.0.borrow();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].cluster, "c");
            assert!(sent[0]
                .headers
                .iter()
                .any(|(k, v)| k == b":path" && v == b"/x"));
        }
        // Resumed: proxy_on_http_call_response saw the answer and continued the request.
        assert!(matches!(
            filt.on_resume(&mut c, &mut head),
            Ok(Action::Continue)
        ));
        assert_eq!(field(&head.headers, "x-answer"), "1");
        assert_eq!(field(&head.headers, "x-resumed"), OK);
        filt.on_log(&c);
    })
}

/// Waits (on the runtime's timer) until the shared data `key` is not empty; its value.
async fn shared_value(key: &[u8]) -> Vec<u8> {
    for _ in 0..400 {
        if let Some((v, _)) = crate::shared::get(key) {
            if !v.is_empty() {
                return v;
            }
        }
        monoio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("`{}` never set", String::from_utf8_lossy(key));
}

async fn queue_ready_round() {
    assert_eq!(
        crate::shared::set(b"abi-got", b"", 0),
        crate::abi::Status::Ok
    );
    // The owner's root context registers `abi-q` in proxy_on_vm_start.
    let owner = factory(&config("abi-queue-owner", ABI));
    let other = factory(&config("abi-queue-other", ABI));
    let id = crate::shared::resolve("abi-queue-owner", b"abi-q").expect("registered at start");
    // Another plugin's HTTP context resolves it and enqueues.
    let (head, _) = exchange(
        &other,
        "GET /a HTTP/1.1\r\nhost: x\r\nx-vm: abi-queue-owner\r\n\r\n",
    );
    assert_eq!(field(&head.headers, "x-enq"), OK);
    // The registering root context hears of it and dequeues the item.
    assert_eq!(shared_value(b"abi-got").await, b"hello");
    let (ids, _) = crate::shared::get(b"abi-ready").expect("called");
    assert_eq!(String::from_utf8_lossy(&ids), format!("1/{id}"));
    assert_eq!(crate::shared::dequeue(id), Err(crate::abi::Status::Empty));

    // From another thread (another core): the owner's core is woken.
    assert_eq!(
        crate::shared::set(b"abi-got", b"", 0),
        crate::abi::Status::Ok
    );
    std::thread::spawn(move || crate::shared::enqueue(id, b"from another core"))
        .join()
        .expect("thread");
    assert_eq!(shared_value(b"abi-got").await, b"from another core");
    assert_eq!(crate::shared::dequeue(id), Err(crate::abi::Status::Empty));
    drop((owner, other));
}

#[test]
fn queue_ready_reaches_the_root_context_that_registered_the_queue() {
    // On both drivers; the second round also shows a queue whose owner went away (the first
    // round's core) passing to the next core that registers it.
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("legacy runtime")
        .block_on(queue_ready_round());
    if let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
    {
        rt.block_on(queue_ready_round());
    }
}

// === trailers.wat ===

const TRAILERS: &str = include_str!("../testdata/trailers.wat");

/// Trailer fields parsed as the gateway parses a chunked body's trailer section.
fn trailers(section: &str) -> weir_http::Headers {
    weir_http::parse_trailers(bytes::Bytes::from(section.to_owned())).expect("valid section")
}

/// The fields in order, as (name, value) text.
fn pairs(h: &weir_http::Headers) -> Vec<(String, String)> {
    h.fields()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

#[test]
fn trailer_needs_come_from_the_exports() {
    let f = factory(&config("trailers-needs", TRAILERS));
    let n = f.needs();
    assert!(n.request_trailers && n.response_trailers, "{n:?}");
    assert!(!n.request_body && !n.response_body);
    // A plugin without trailer callbacks asks for nothing: its routes keep the plain path.
    let p = factory(&config("trailers-needs-probe", PROBE));
    assert!(p.needs().is_none(), "{:?}", p.needs());
}

#[test]
fn request_trailers_are_read_and_edited_in_their_callback() {
    let f = factory(&config("trailers-req", TRAILERS));
    let mut c = ctx();
    let mut filt = f.create();
    let mut head = request("POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
    assert!(matches!(
        filt.on_request_headers(&mut c, &mut head),
        Ok(Action::Continue)
    ));
    // Outside their callback: no such map to read a value from or to write, an empty one to list.
    assert_eq!(field(&head.headers, "x-rt-get"), NOT_FOUND);
    assert_eq!(field(&head.headers, "x-rt-add"), NOT_FOUND);
    assert_eq!(field(&head.headers, "x-rt-set"), NOT_FOUND);
    assert_eq!(field(&head.headers, "x-rt-size-st"), OK);
    assert_eq!(field(&head.headers, "x-rt-size"), "4");

    let section = "x-in: hello\r\nX-Replace: old\r\nx-drop: 1\r\n\r\n";
    let mut t = trailers(section);
    // What the plugin saw: the fields, lower case, in the ABI's encoding.
    let seen = crate::abi::encode_map(
        [
            (&b"x-in"[..], &b"hello"[..]),
            (&b"x-replace"[..], &b"old"[..]),
            (&b"x-drop"[..], &b"1"[..]),
        ]
        .into_iter(),
    )
    .len();
    assert!(matches!(
        filt.on_request_trailers(&mut c, &mut t),
        Ok(Action::Continue)
    ));
    assert_eq!(field(&t, "x-size"), seen.to_string());
    assert_eq!(field(&t, "x-pairs-len"), seen.to_string());
    assert_eq!(field(&t, "x-count"), "3");
    assert_eq!(field(&t, "x-in-seen"), "hello");
    assert_eq!(field(&t, "x-replace"), "new");
    assert!(t.get_str("x-drop").is_none());
    // Accepted from the plugin (the gateway drops it when writing the section).
    assert_eq!(field(&t, "host"), "evil");
    // Managed: an edit has no effect.
    assert!(t.get_str("content-length").is_none());
    // Map 3 is not this callback's.
    assert_eq!(field(&t, "x-other"), NOT_FOUND);
    filt.on_log(&c);
}

#[test]
fn response_trailers_are_read_edited_and_replaced() {
    let f = factory(&config("trailers-resp", TRAILERS));
    let mut c = ctx();
    let mut filt = f.create();
    let mut t = trailers("grpc-status: 0\r\ngrpc-message: fine\r\n\r\n");
    filt.on_response_trailers(&mut c, &mut t)
        .expect("continues");
    assert_eq!(
        pairs(&t),
        [
            ("grpc-status", "0"),
            ("grpc-message", "edited"),
            ("x-seen-status", "0"),
            ("x-wasm-trailer", "on"),
            ("x-count", "2"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    filt.on_log(&c);

    // proxy_set_header_map_pairs replaces the whole map.
    let mut filt = f.create();
    let mut t = trailers("grpc-status: 0\r\nx-set: 1\r\n\r\n");
    filt.on_response_trailers(&mut c, &mut t)
        .expect("continues");
    assert_eq!(
        pairs(&t),
        [("only", "yes"), ("x-set-st", OK)].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    filt.on_log(&c);
}

#[test]
fn a_request_trailer_callback_may_answer_and_fails_as_the_others_do() {
    let f = factory(&config("trailers-fail", TRAILERS));
    let mut c = ctx();
    let mut filt = f.create();
    let mut t = trailers("x-deny: 1\r\n\r\n");
    match filt.on_request_trailers(&mut c, &mut t) {
        Ok(Action::Respond(r)) => {
            assert_eq!(r.status, 403);
            assert_eq!(&r.body[..], b"denied");
        }
        other => panic!("expected a local response, got {other:?}"),
    }
    filt.on_log(&c);

    // A trap fails the request closed (503), its trailers left as they were, and is counted.
    let before = crate::metrics::failures("trailers-fail", "trap")
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut filt = f.create();
    let mut t = trailers("x-trap: 1\r\n\r\n");
    let e = filt
        .on_request_trailers(&mut c, &mut t)
        .expect_err("closed");
    assert_eq!((e.status, e.kind), (503, "plugin_failed"));
    assert_eq!(pairs(&t), [("x-trap".to_owned(), "1".to_owned())]);
    let mut t = trailers("x-trap: 1\r\n\r\n");
    let mut filt = f.create();
    let e = filt
        .on_response_trailers(&mut c, &mut t)
        .expect_err("closed");
    assert_eq!(e.status, 503);
    let after = crate::metrics::failures("trailers-fail", "trap")
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after, before + 2);

    // Fail open: the trailers go on untouched.
    let mut cfg = config("trailers-open", TRAILERS);
    cfg.on_error = weir_config::OnError::Open;
    let f = factory(&cfg);
    let mut filt = f.create();
    let mut t = trailers("x-trap: 1\r\n\r\n");
    filt.on_response_trailers(&mut c, &mut t).expect("open");
    assert_eq!(pairs(&t), [("x-trap".to_owned(), "1".to_owned())]);
}
