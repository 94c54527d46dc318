//! The admin thread: its own small runtime (epoll; nothing here is hot) that serves the admin
//! listener (`/healthz/live`, `/healthz/ready`, `/metrics`, `/v1/ai/stats`) and runs the active
//! health checks, so neither takes time from a worker.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use weir_http::{BodyKind, Headers};
use weir_metrics::Registry;
use weir_upstream::SharedCluster;

/// What the admin thread is told.
pub enum AdminCommand {
    /// The clusters of the new generation: start checks for new ones, stop those of removed ones.
    Clusters(Vec<Arc<SharedCluster>>),
    /// The LLM providers of the new generation: probe their disabled keys.
    Providers(Vec<Arc<weir_ai::SharedProvider>>),
    /// Stop.
    Stop,
}

/// Shared flags the admin endpoints report.
pub struct Health {
    /// Every worker serves the first generation.
    pub ready: AtomicBool,
    /// Shutdown started.
    pub draining: AtomicBool,
}

pub fn run(
    listener: Option<std::net::TcpListener>,
    registry: Arc<Registry>,
    health: Arc<Health>,
    rx: flume::Receiver<AdminCommand>,
) {
    let res = crate::driver::block_on(weir_config::Driver::Epoll, move |_| async move {
        // The providers of the current generation, for the key-pool gauges of `/metrics`.
        let providers: Providers = Rc::default();
        if let Some(l) = listener {
            match TcpListener::from_std(l) {
                Ok(l) => {
                    monoio::spawn(serve_admin(l, registry, health, providers.clone()));
                }
                Err(e) => tracing::error!(error = %e, "admin listener"),
            }
        }
        let mut checks: Vec<(Arc<SharedCluster>, Rc<Cell<bool>>)> = Vec::new();
        let mut probes: Vec<(Arc<weir_ai::SharedProvider>, Rc<Cell<bool>>)> = Vec::new();
        while let Ok(cmd) = rx.recv_async().await {
            match cmd {
                AdminCommand::Clusters(list) => {
                    checks.retain(|(c, stop)| {
                        let keep = list.iter().any(|n| Arc::ptr_eq(n, c));
                        if !keep {
                            stop.set(true);
                        }
                        keep
                    });
                    for c in list {
                        if c.config.health_check.is_some()
                            && !checks.iter().any(|(o, _)| Arc::ptr_eq(o, &c))
                        {
                            let stop = Rc::new(Cell::new(false));
                            monoio::spawn(weir_upstream::run_health_checks(
                                c.clone(),
                                stop.clone(),
                            ));
                            checks.push((c, stop));
                        }
                    }
                }
                AdminCommand::Providers(list) => {
                    *providers.borrow_mut() = list.clone();
                    probes.retain(|(p, stop)| {
                        let keep = list.iter().any(|n| Arc::ptr_eq(n, p));
                        if !keep {
                            stop.set(true);
                        }
                        keep
                    });
                    for p in list {
                        if !p.keys.is_empty() && !probes.iter().any(|(o, _)| Arc::ptr_eq(o, &p)) {
                            let stop = Rc::new(Cell::new(false));
                            monoio::spawn(run_key_probes(p.clone(), stop.clone()));
                            probes.push((p, stop));
                        }
                    }
                }
                AdminCommand::Stop => break,
            }
        }
        for (_, stop) in checks {
            stop.set(true);
        }
        for (_, stop) in probes {
            stop.set(true);
        }
    });
    if let Err(e) = res {
        tracing::error!(error = %e, "admin runtime failed");
    }
}

type Providers = Rc<RefCell<Vec<Arc<weir_ai::SharedProvider>>>>;

async fn serve_admin(
    l: TcpListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
    providers: Providers,
) {
    loop {
        match l.accept().await {
            Ok((s, peer)) => {
                monoio::spawn(admin_conn(
                    s,
                    peer,
                    registry.clone(),
                    health.clone(),
                    providers.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn admin_conn(
    mut s: TcpStream,
    _peer: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
    providers: Providers,
) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let head = loop {
            match weir_http::parse_request(&mut buf, &weir_http::HeadLimits::default()) {
                Ok(Some(h)) => break Some(h),
                Ok(None) => {}
                Err(_) => break None,
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let len = buf.len();
            let cap = buf.capacity();
            let (r, slice) = s.read(buf.slice_mut(len..cap)).await;
            buf = slice.into_inner();
            if !matches!(r, Ok(n) if n > 0) {
                return;
            }
        };
        let Some(head) = head else {
            let _ = respond(
                &mut s,
                400,
                "text/plain",
                Bytes::from_static(b"bad request\n"),
                true,
            )
            .await;
            return;
        };
        let get = matches!(&head.method[..], b"GET" | b"HEAD");
        if let Some((status, body)) = weir_quota::admin::serve(&head.method, &head.target) {
            let body = if head.is_head() {
                Bytes::new()
            } else {
                Bytes::from(body)
            };
            if respond(&mut s, status, "application/json", body, !head.keep_alive)
                .await
                .is_err()
                || !head.keep_alive
            {
                return;
            }
            continue;
        }
        let (status, ctype, body) = match (get, head.path()) {
            (true, b"/healthz/live") => (200, "text/plain", Bytes::from_static(b"live\n")),
            (true, b"/healthz/ready") => {
                if health.ready.load(Relaxed) && !health.draining.load(Relaxed) {
                    (200, "text/plain", Bytes::from_static(b"ready\n"))
                } else if health.draining.load(Relaxed) {
                    (503, "text/plain", Bytes::from_static(b"draining\n"))
                } else {
                    (503, "text/plain", Bytes::from_static(b"starting\n"))
                }
            }
            (true, b"/metrics") => {
                let mut text = registry.render();
                key_pools(&mut text, &providers.borrow());
                weir_quota::admin::metrics(&mut text);
                weir_wasm::metrics::render(&mut text);
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    Bytes::from(text),
                )
            }
            (true, b"/v1/ai/stats") => (
                200,
                "application/json",
                Bytes::from(registry.ai().stats_json()),
            ),
            (false, _) => (
                405,
                "text/plain",
                Bytes::from_static(b"method not allowed\n"),
            ),
            _ => (
                404,
                "text/plain",
                Bytes::from_static(
                    b"not found: try /healthz/live, /healthz/ready, /metrics, /v1/ai/stats\n",
                ),
            ),
        };
        let body = if head.is_head() { Bytes::new() } else { body };
        if respond(&mut s, status, ctype, body, !head.keep_alive)
            .await
            .is_err()
            || !head.keep_alive
        {
            return;
        }
    }
}

async fn respond(
    s: &mut TcpStream,
    status: u16,
    ctype: &'static str,
    body: Bytes,
    close: bool,
) -> std::io::Result<()> {
    let mut h = Headers::with_capacity(1);
    weir_http::push_header(&mut h, "content-type", ctype);
    let mut out = Vec::with_capacity(128 + body.len());
    weir_http::write_response_head(
        &mut out,
        status,
        b"",
        &h,
        BodyKind::Length(body.len() as u64),
        close,
    );
    out.extend_from_slice(&body);
    let (r, _) = s.write_all(out).await;
    r.map(|_| ())
}

/// `weir_gen_ai_provider_key_state`: one-hot per provider key (by its id, never its secret).
fn key_pools(out: &mut String, providers: &[Arc<weir_ai::SharedProvider>]) {
    use weir_ai::keys::KeyHealth;
    out.push_str(
        "# HELP weir_gen_ai_provider_key_state Health of each provider key: 1 for its state (active, cooling after a 429, disabled after a 401/403).\n\
         # TYPE weir_gen_ai_provider_key_state gauge\n",
    );
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut providers: Vec<_> = providers.iter().filter(|p| !p.keys.is_empty()).collect();
    providers.sort_by(|a, b| a.name().cmp(b.name()));
    for p in providers {
        let keys = p.keys.keys();
        for (i, k) in keys.iter().enumerate() {
            // Ids are meant to be unique; a repeated one gets its index so series stay distinct.
            let id = if keys[..i].iter().any(|o| o.id == k.id) {
                format!("{}#{i}", k.id)
            } else {
                k.id.clone()
            };
            let health = p.keys.health(i);
            for (state, h) in [
                ("active", KeyHealth::Active),
                ("cooling", KeyHealth::Cooling),
                ("disabled", KeyHealth::Disabled),
            ] {
                let _ = writeln!(
                    out,
                    "weir_gen_ai_provider_key_state{{provider=\"{}\",key=\"{}\",state=\"{state}\"}} {}",
                    esc(p.name()),
                    esc(&id),
                    u8::from(health == h)
                );
            }
        }
    }
}

/// Re-admits a provider's disabled keys: each disabled key whose probe is due gets one cheap
/// authenticated GET; a 2xx puts it back in the pool, anything else waits another interval.
async fn run_key_probes(p: Arc<weir_ai::SharedProvider>, stop: Rc<Cell<bool>>) {
    // An https provider is probed over TLS with its own options, built once per generation.
    let tls = match p.cluster_config().and_then(|c| c.tls) {
        None => None,
        Some(t) => match weir_upstream::connector(&t) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(provider = %p.name(), error = %e, "key probes: TLS config");
                return;
            }
        },
    };
    while !stop.get() {
        for k in p.keys.due_for_probe() {
            let Some(req) = p.probe_request(k) else {
                continue;
            };
            let probe = probe_key(&req, tls.as_ref());
            let ok = monoio::time::timeout(std::time::Duration::from_secs(5), probe)
                .await
                .unwrap_or(false);
            if ok {
                p.keys.succeeded(k);
            } else {
                p.keys.probe_failed(k);
            }
        }
        monoio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn probe_key(
    req: &weir_ai::provider::ProbeRequest,
    tls: Option<&weir_upstream::Connector>,
) -> bool {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let Some(addr) = std::net::ToSocketAddrs::to_socket_addrs(&req.authority)
        .ok()
        .and_then(|mut a| a.next())
    else {
        return false;
    };
    let Ok(mut s) = weir_upstream::open(addr, &req.authority, tls).await else {
        return false;
    };
    let (r, _) = s.write_all(req.head.clone().into_bytes()).await;
    if r.is_err() {
        return false;
    }
    let buf = Vec::with_capacity(256);
    let (r, buf) = s.read(buf).await;
    // `HTTP/1.1 2xx`: the status is the 10th byte on.
    matches!(r, Ok(n) if n >= 12) && buf.get(9) == Some(&b'2')
}
