//! The host against `testdata/probe.wat`: header edits, local responses, configuration, shared
//! data, and each kind of failure confined to its request.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::BytesMut;
use weir_filter::{Action, FilterFactory, RequestCtx};
use weir_http::{HeadLimits, RequestHead};

use crate::{Plugin, PluginCore, WasmFactory};

const PROBE: &str = include_str!("../testdata/probe.wat");

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
    // (it was not the one that failed), and it goes on.
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
    let mut resp = weir_http::parse_response(&mut buf, 1 << 16, false)
        .expect("valid")
        .expect("complete");
    assert!(matches!(
        slow.on_response_headers(&mut c, &mut resp),
        Ok(Action::Continue)
    ));
    assert!(resp.headers.get_str("x-wasm-resp").is_none());
    slow.on_log(&c);
    // And new requests are served by the new instance.
    let (r, head) = run(&f, None);
    assert!(matches!(r, Ok(Action::Continue)));
    assert_eq!(head.headers.get_str("x-wasm"), Some("on"));
}
