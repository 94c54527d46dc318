//! `proxy_get_log_level` answers the level the `weir_wasm` tracing target is enabled at.
//!
//! This is its own test binary on purpose: tracing caches each callsite's interest in a
//! process-wide registry, and a callsite first reached by another test's thread while this test's
//! subscriber is being installed keeps an interest of "never" (a race inside tracing-core that
//! made the test flaky among the unit tests). Alone in its process, nothing races it.

use base64::Engine as _;
use bytes::BytesMut;
use weir_filter::{Action, FilterFactory, RequestCtx};
use weir_http::HeadLimits;
use weir_wasm::{Plugin, PluginCore, WasmFactory};

const ABI: &str = include_str!("../testdata/abi.wat");

/// A subscriber that enables the `weir_wasm` target up to a level, and nothing else.
struct MaxLevel(tracing::Level);

impl tracing::Subscriber for MaxLevel {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == "weir_wasm" && *m.level() <= self.0
    }
    // Asked per call, never cached, since the level changes between requests.
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn factory() -> WasmFactory {
    let bytes = wat::parse_str(ABI).expect("valid wat");
    let yaml = format!(
        "name: abi-log\nmodule: {}\nmax_memory: 4MiB\ncallback_deadline: 20ms\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let cfg: weir_config::Plugin = serde_yaml_ng::from_str(&yaml).expect("plugin config");
    let plugin = Plugin::build(&cfg, None, None).expect("builds");
    WasmFactory::new(PluginCore::new(plugin, 0, None).expect("starts"))
}

/// The `x-log-st` (status) and `x-log` (level) fields the plugin adds to a request.
fn reported_level(f: &WasmFactory) -> (String, String) {
    let mut buf = BytesMut::from(&b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n"[..]);
    let mut head = weir_http::parse_request(&mut buf, &HeadLimits::default())
        .expect("valid")
        .expect("complete");
    let mut ctx = RequestCtx::new(
        "r1".into(),
        "10.0.0.1:4000".parse().expect("addr"),
        "main".into(),
        0,
    );
    let mut filt = f.create();
    assert!(matches!(
        filt.on_request_headers(&mut ctx, &mut head),
        Ok(Action::Continue)
    ));
    filt.on_log(&ctx);
    let get = |name: &str| {
        head.headers
            .get_str(name)
            .unwrap_or_else(|| panic!("the plugin reported no `{name}`"))
            .to_owned()
    };
    (get("x-log-st"), get("x-log"))
}

#[test]
fn log_level_follows_the_weir_wasm_filter() {
    // abi.wat registers a shared queue at start, which needs a core's runtime, as in the gateway.
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(async {
            let f = factory();
            for (level, expected) in [
                (tracing::Level::TRACE, "0"),
                (tracing::Level::DEBUG, "1"),
                (tracing::Level::INFO, "2"),
                (tracing::Level::WARN, "3"),
                (tracing::Level::ERROR, "4"),
            ] {
                let (status, got) =
                    tracing::subscriber::with_default(MaxLevel(level), || reported_level(&f));
                assert_eq!(status, "0", "{level}: status Ok");
                assert_eq!(got, expected, "{level}");
            }
        })
}
