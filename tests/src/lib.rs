//! `weir-tests`: the integration test harness of Weir.
//!
//! The tests in `tests/tests/*.rs` start the real binaries — the data plane `weir` and the mock
//! upstream `weir-mock-llm` — on port 0, and talk to them over plain TCP with a small HTTP/1.1
//! client written for the purpose (the framing itself is under test, so no HTTP client library).
//! Nothing here listens on a fixed port, every socket operation has a timeout, and every wait is
//! bounded, so the suite can run on a busy two-core machine beside other builds.
//!
//! The pieces:
//!
//! - [`MockUpstream`]: spawns `weir-mock-llm --listen 127.0.0.1:0`, reads the port it printed,
//!   kills it on drop. [`MockUpstream::stats`] reads its `/stats` counters and
//!   [`MockUpstream::set_health`] flips what its `/healthz` answers.
//! - [`Gateway`]: a builder ([`Gateway::new`]) that writes a YAML config (listener and admin on
//!   `127.0.0.1:0`, access log on), starts `weir --config FILE --workers N --driver D`, reads the
//!   addresses it printed, waits for `GET /healthz/ready` to answer 200, and kills the process on
//!   drop. It keeps stdout (the access log) and stderr in files ([`Gateway::access_log_lines`],
//!   [`Gateway::stderr`]), sends signals ([`Gateway::sighup`], [`Gateway::stop_graceful`]) and
//!   rewrites the config file for reload tests ([`Gateway::write_config`]).
//! - [`ControlDaemon`]: `weir-control` on a config file in a temp dir (state dir and admin socket
//!   beside it); [`ControlDaemon::api`] speaks HTTP/1.1 + JSON over the Unix socket like
//!   `curl --unix-socket`, [`ControlDaemon::weirctl`] runs the CLI against it, and
//!   [`ControlDaemon::restart`] / [`ControlDaemon::kill9`] test durability. A data plane attached
//!   to it is a [`Gateway`] built with [`GatewayBuilder::control`] (`weir --control SOCKET
//!   --plane-state DIR`).
//! - [`Client`] and [`Response`]: a raw HTTP/1.1 client over `std::net::TcpStream`: send any
//!   bytes, read one response (head with `httparse`, then the body by `content-length`, chunked, or
//!   until close), tell whether the server closed the connection, and read an SSE stream event by
//!   event with arrival times ([`SseStream`]).
//! - [`both_drivers!`]: expands one test body into two tests, `NAME::epoll` and `NAME::uring`; the
//!   io_uring one is skipped with a printed note where the kernel or a sandbox forbids io_uring.
//! - [`TestPki`]: a test CA, a server certificate it signed (for `localhost`, `127.0.0.1` and
//!   `upstream.test`) and an unrelated CA, as PEM files; [`MockBuilder::tls`] makes the mock serve
//!   HTTPS with them.
//! - [`TlsClient`]: a blocking rustls client for the listener TLS tests (a test CA or no
//!   verification, RSA-only or TLS 1.2-only offers, a client certificate, resumption, the
//!   certificate the server sent); [`TestPki::server`] and [`TestPki::client`] issue more leaves.
//! - [`PpUpstream`]: an HTTP/1.1 upstream in threads that requires a PROXY protocol header (v1
//!   or v2) on every connection, records what each declared ([`Accepted`]) and answers with the
//!   connection's number and declared client, so tests see which client each upstream
//!   connection spoke for. [`Client::connect_from`] binds a client to another loopback address.
//! - [`RedisServer`]: a real `redis-server` on a Unix socket in a temp dir, for the cluster-mode
//!   quota tests ([`RedisServer::kill`] and [`RedisServer::restart`] for outages,
//!   [`RedisServer::calls`] to count the commands it ran).
//! - Small helpers: [`closed_port`], [`wait_until`], [`metric`], [`raise_nofile_limit`],
//!   [`pattern`], [`random_bytes`], [`run_bounded`]; for processes the test did not spawn (the
//!   successor of a binary upgrade): [`child_pids`], [`proc_cmdline`], [`pid_running`],
//!   [`ProcessGuard`].
//!
//! The binaries are looked up in the target directory beside the test executable
//! (`target/debug/deps/x` → `target/debug/weir`), or in `$WEIR_BIN` / `$WEIR_MOCK_BIN` /
//! `$WEIR_CONTROL_BIN` / `$WEIRCTL_BIN`. Build them
//! first: `cargo build --workspace --bins`.
#![deny(missing_docs)]

mod client;
mod control;
mod gateway;
mod mock;
mod pki;
mod pp_upstream;
mod redis;
mod tls_client;
mod util;

pub use client::{Client, Head, Response, SseEvent, SseStream, IO_TIMEOUT};
pub use control::{run_bounded, ControlDaemon};
pub use gateway::{Gateway, GatewayBuilder, StartError};
pub use mock::{MockBuilder, MockUpstream};
pub use pki::{KeyKind, TestPki, SERVER_NAMES};
pub use pp_upstream::{Accepted, PpUpstream};
pub use redis::RedisServer;
pub use tls_client::{pem_certs, tls_client_config, TlsClient, TlsClientOptions, TlsResponse};
pub use util::{
    bin_path, child_pids, closed_port, metric, pattern, pid_running, proc_cmdline,
    raise_nofile_limit, random_bytes, wait_until, Driver, ProcessGuard, TempDir,
};

/// Expands one test body into two `#[test]`s, one per monoio driver of the gateway:
///
/// ```ignore
/// both_drivers! {
///     /// What the test checks.
///     fn keep_alive(d) {
///         let gw = Gateway::new().driver(d).route("{ name: r, direct_response: { status: 200 } }").start();
///         // ...
///     }
/// }
/// ```
///
/// makes a module `keep_alive` with the tests `keep_alive::epoll` and `keep_alive::uring` (a
/// `macro_rules!` macro cannot paste `_epoll` onto a name; the module path serves the same purpose:
/// `cargo test keep_alive` runs both, `cargo test ::uring` runs every io_uring test). Attributes
/// written before `fn` (`#[ignore = "..."]`, doc comments) go on both tests. The io_uring test
/// returns early, printing why, when [`Driver::Uring`] is not available here.
#[macro_export]
macro_rules! both_drivers {
    ($(#[$meta:meta])* fn $name:ident($d:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($d: $crate::Driver) $body

            #[test]
            $(#[$meta])*
            fn epoll() {
                body($crate::Driver::Epoll)
            }

            #[test]
            $(#[$meta])*
            fn uring() {
                if $crate::Driver::Uring.skip_if_unavailable(concat!(module_path!(), "::uring")) {
                    return;
                }
                body($crate::Driver::Uring)
            }
        }
    };
}
