//! `tcp` listeners: each connection is proxied whole to a cluster, no HTTP. With `sni` routes,
//! the ClientHello is read (not answered) and its server name picks the cluster: TLS passes
//! through untouched, and the client sees the upstream's own certificate.
//!
//! The upstream connection is new for each client connection (a pooled one would mix clients),
//! picked by the cluster's balancer among healthy endpoints, with up to three endpoints tried
//! when a connect fails; on a cluster with `proxy_protocol` it starts with a PROXY header
//! carrying the client's address (written by the connect, before TLS on a TLS cluster). Then
//! both directions are copied until both ended or the idle timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use weir_metrics::{bump, ListenerStats};
use weir_upstream::{ClientConn, Cluster, HashOn};

use crate::worker::Worker;

/// A `tcp` listener's clusters on one core.
pub struct TcpState {
    default: Option<Rc<Cluster>>,
    exact: HashMap<String, Rc<Cluster>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Rc<Cluster>>,
    /// Whether the ClientHello is read to route.
    by_sni: bool,
    idle: Duration,
    hello_timeout: Duration,
}

impl TcpState {
    /// Compiles `t` against this core's clusters; `Err(name)` for a cluster that is missing.
    pub fn new(
        t: &weir_config::TcpProxy,
        clusters: &HashMap<String, Rc<Cluster>>,
    ) -> Result<TcpState, String> {
        let get = |name: &str| clusters.get(name).cloned().ok_or_else(|| name.to_owned());
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for r in &t.sni {
            let c = get(&r.cluster)?;
            for n in &r.names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()).or_insert(c.clone()),
                    None => exact.entry(n).or_insert(c.clone()),
                };
            }
        }
        Ok(TcpState {
            default: t.cluster.as_deref().map(get).transpose()?,
            exact,
            wildcard,
            by_sni: !t.sni.is_empty(),
            idle: t.idle_timeout.get(),
            hello_timeout: t.hello_timeout.get(),
        })
    }

    fn by_name(&self, sni: Option<&str>) -> Option<&Rc<Cluster>> {
        let found = sni.and_then(|n| {
            self.exact.get(n).or_else(|| {
                let (_, parent) = n.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        found.or(self.default.as_ref())
    }
}

/// How one proxied connection went, for its log line.
struct Outcome<'a> {
    sni: Option<String>,
    cluster: Option<&'a str>,
    endpoint: Option<SocketAddr>,
    copied: weir_l4::copy::Copied,
    error: Option<String>,
}

/// Serves one connection of a `tcp` listener. `early`: bytes already read (after a PROXY
/// header); `conn`: the client's address (the PROXY header's, if any) and the address it
/// connected to.
pub async fn serve(
    worker: &Worker,
    listener: &str,
    tcp: &TcpState,
    stats: Option<&ListenerStats>,
    mut stream: TcpStream,
    conn: ClientConn,
    mut early: Vec<u8>,
) {
    let client = conn.src;
    let start = Instant::now();
    let mut out = Outcome {
        sni: None,
        cluster: None,
        endpoint: None,
        copied: Default::default(),
        error: None,
    };
    let cluster = if tcp.by_sni {
        match read_hello(&mut stream, &mut early, tcp.hello_timeout).await {
            Ok(sni) => {
                out.sni = sni;
                tcp.by_name(out.sni.as_deref())
            }
            // Not TLS at all: the default cluster, if there is one, takes it as it is.
            Err(Hello::NotTls) => tcp.default.as_ref(),
            Err(Hello::Failed(e)) => {
                out.error = Some(e);
                None
            }
        }
    } else {
        tcp.default.as_ref()
    };
    match cluster {
        Some(c) => {
            out.cluster = Some(&*c.name);
            proxy(c, stream, conn, early, tcp.idle, &mut out).await;
        }
        None => {
            out.error
                .get_or_insert_with(|| "no cluster for this server name".into());
        }
    }
    if out.error.is_some() {
        if let Some(s) = stats {
            bump(&s.tcp_failed, 1);
        }
    }
    if let Some(s) = stats {
        bump(&s.tcp_connections, 1);
    }
    let access_log = worker.state().access_log;
    if access_log {
        let line = out_view(&out, start);
        worker.log_line(|buf| crate::log::write_tcp_line(buf, listener, client, &line));
    }
}

fn out_view<'a>(o: &'a Outcome<'a>, start: Instant) -> crate::log::TcpLine<'a> {
    crate::log::TcpLine {
        sni: o.sni.as_deref(),
        cluster: o.cluster,
        endpoint: o.endpoint,
        bytes_up: o.copied.up,
        bytes_down: o.copied.down,
        idle_timeout: o.copied.idle,
        duration: start.elapsed(),
        error: o.error.as_deref(),
    }
}

enum Hello {
    NotTls,
    Failed(String),
}

/// Reads until `early` holds a whole ClientHello (within `limit`); its server name.
async fn read_hello(
    stream: &mut TcpStream,
    early: &mut Vec<u8>,
    limit: Duration,
) -> Result<Option<String>, Hello> {
    let deadline = Instant::now() + limit;
    loop {
        match weir_l4::sni::parse(early) {
            Ok(Some(sni)) => return Ok(sni),
            Ok(None) => {}
            Err(weir_l4::sni::Error::NotTls) => return Err(Hello::NotTls),
            Err(e) => return Err(Hello::Failed(e.to_string())),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = Vec::with_capacity(4096);
        let (r, buf) = match monoio::time::timeout(left, stream.read(buf)).await {
            Ok(r) => r,
            Err(_) => return Err(Hello::Failed("no ClientHello in time".into())),
        };
        match r {
            Ok(0) => return Err(Hello::Failed("closed before its ClientHello".into())),
            Ok(_) => early.extend_from_slice(&buf),
            Err(e) => return Err(Hello::Failed(e.to_string())),
        }
    }
}

/// Connects to `cluster` (up to three endpoints; the connect sends the PROXY header), sends
/// `early`, and copies.
async fn proxy(
    cluster: &Rc<Cluster>,
    stream: TcpStream,
    client: ClientConn,
    early: Vec<u8>,
    idle: Duration,
    out: &mut Outcome<'_>,
) {
    let key = match cluster.hash_on() {
        Some(HashOn::SourceIp) => Some(client.src.ip().to_string().into_bytes()),
        _ => None,
    };
    let mut tried = Vec::new();
    let conn = loop {
        let (idx, ep) = match cluster.pick(key.as_deref(), &tried) {
            Ok(p) => p,
            Err(e) => {
                out.error = Some(e.to_string());
                return;
            }
        };
        tried.push(idx);
        match cluster.connect_new(&ep, Some(client)).await {
            Ok(c) => break c,
            Err(e) => {
                cluster.outcome(&ep, true);
                if tried.len() >= 3 || tried.len() >= cluster.endpoint_count() {
                    out.error = Some(e.to_string());
                    return;
                }
            }
        }
    };
    let ep = conn.endpoint.clone();
    out.endpoint = Some(conn.peer);
    cluster.begin(&ep);
    let mut up = cluster.detach(conn);
    if !early.is_empty() {
        let (r, _) = up.write_all(early).await;
        if let Err(e) = r {
            out.error = Some(format!("writing to the upstream: {e}"));
            cluster.end(&ep, true);
            return;
        }
    }
    let (mut cr, mut cw) = stream.into_split();
    let (mut ur, mut uw) = up.into_split();
    out.copied = weir_l4::copy::bidirectional(&mut cr, &mut cw, &mut ur, &mut uw, idle).await;
    cluster.end(&ep, false);
}
