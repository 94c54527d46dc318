//! What a Wasm plugin costs a request on its own (`weir_wasm`): the benchmark's header-rewrite
//! plugin (`plugins/examples/wasm/add_headers.wasm`, the same file and configuration the Envoy side
//! of the comparison runs) as the only filter of a request: context creation,
//! `proxy_on_request_headers` (two header edits: one added, one removed), `proxy_on_response_headers`
//! (one added) and the end of the context (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`),
//! with the head's fields moved in and out of the host for each callback.
//!
//! `native_headers` is the same edit by the built-in `headers` filter, for scale. Needs the
//! examples built (`plugins/examples/build.sh`). On mimalloc (`weir-alloc`), the allocator of `weir`.

use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;
use criterion::{criterion_group, Criterion};
use weir_filter::{FilterFactory, RequestCtx};
use weir_http::{HeadLimits, RequestHead, ResponseHead};

#[global_allocator]
static GLOBAL: weir_alloc::WeirAlloc = weir_alloc::WeirAlloc;

const REQUEST: &[u8] =
    b"GET /v1/items?id=7 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\nx-secret: s3\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n";

fn request() -> RequestHead {
    let mut b = BytesMut::from(REQUEST);
    weir_http::parse_request(&mut b, &HeadLimits::default())
        .ok()
        .flatten()
        .expect("request head")
}

fn response() -> ResponseHead {
    let mut b = BytesMut::from(RESPONSE);
    weir_http::parse_response(&mut b, 1 << 16, false)
        .ok()
        .flatten()
        .expect("response head")
}

fn run(f: &dyn FilterFactory, ctx: &mut RequestCtx) {
    let mut req = request();
    let mut resp = response();
    let mut filt = f.create();
    let _ = black_box(filt.on_request_headers(ctx, &mut req));
    let _ = black_box(filt.on_response_headers(ctx, &mut resp));
    filt.on_log(ctx);
    black_box((req, resp));
}

/// The plugin's factory (checked to make the edit the Envoy side makes), the native `headers`
/// filter doing the same edit, and a request context.
fn setup() -> (Rc<dyn FilterFactory>, Rc<dyn FilterFactory>, RequestCtx) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("plugins/examples/wasm/add_headers.wasm");
    let cfg_json = std::fs::read_to_string(root.join("loadtest/envoy-wasm/add_headers.bench.json"))
        .expect("loadtest/envoy-wasm/add_headers.bench.json");
    assert!(
        wasm.exists(),
        "{} missing: run plugins/examples/build.sh",
        wasm.display()
    );
    let yaml = format!(
        "name: add\nfile: \"{}\"\nconfig: {}\n",
        wasm.display(),
        cfg_json.replace('\n', " ")
    );
    let cfg: weir_config::Plugin = serde_yaml_ng::from_str(&yaml).expect("plugin config");
    let plugin = weir_wasm::Plugin::build(&cfg, None, None).expect("compiles");
    let factory =
        weir_wasm::WasmFactory::new(weir_wasm::PluginCore::new(plugin, 0, None).expect("starts"));
    let mut ctx = RequestCtx::new(
        "r".into(),
        "127.0.0.1:1".parse().expect("addr"),
        "main".into(),
        0,
    );

    // Check it does what the Envoy side does before timing it.
    let (mut req, mut resp) = (request(), response());
    let mut filt = factory.create();
    let _ = filt.on_request_headers(&mut ctx, &mut req);
    let _ = filt.on_response_headers(&mut ctx, &mut resp);
    filt.on_log(&ctx);
    drop(filt);
    assert_eq!(req.headers.get_str("x-plugin"), Some("on"));
    assert!(req.headers.get_str("x-secret").is_none());
    assert_eq!(resp.headers.get_str("x-plugin-resp"), Some("on"));

    let native_cfg: weir_config::FilterConfig = serde_yaml_ng::from_str(
        "{ type: headers, request: { add: { x-plugin: \"on\" }, remove: [x-secret] }, response: { add: { x-plugin-resp: \"on\" } } }",
    )
    .expect("headers config");
    let native = weir_filters::build(&native_cfg).expect("headers filter");
    (Rc::new(factory), native, ctx)
}

fn bench(c: &mut Criterion) {
    let (factory, native, mut ctx) = setup();
    let mut g = c.benchmark_group("wasm_filter");
    g.bench_function("heads_only", |b| {
        b.iter(|| {
            black_box(request());
            black_box(response());
        })
    });
    g.bench_function("add_headers_wasm", |b| {
        b.iter(|| run(factory.as_ref(), &mut ctx))
    });
    g.bench_function("native_headers", |b| {
        b.iter(|| run(native.as_ref(), &mut ctx))
    });
    g.finish();
}

/// `WASM_FILTER_REQUESTS=N [WASM_FILTER_ONLY=add_headers_wasm|native_headers]`: runs N requests
/// through each filter (or the one named) without criterion, for counting instructions under
/// `valgrind --tool=callgrind` (run it with N and with 0; the difference / N is the instructions
/// per request, head parsing included).
fn count_mode(requests: usize) {
    let (factory, native, mut ctx) = setup();
    let only = std::env::var("WASM_FILTER_ONLY").ok();
    for (name, f) in [("add_headers_wasm", &factory), ("native_headers", &native)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for _ in 0..requests {
            run(f.as_ref(), &mut ctx);
        }
        println!("{name}: {requests} requests");
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("WASM_FILTER_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
