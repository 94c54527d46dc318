//! A downstream connection: read a request head, hand it to the request path, repeat while the
//! connection is kept alive (pipelined requests are served in order from the same buffer).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use weir_filter::{ProxyError, RequestCtx, TlsInfo};
use weir_http::RequestHead;
use weir_metrics::bump;
use weir_upstream::ClientConn;

use crate::forward;
use crate::io::{after, ClientIn, ClientOut, ClientReader, Timer, HEAD_BUF};
use crate::state::{CoreState, ListenerState};
use crate::worker::{SignalWait, Worker};

/// The client side of a connection.
pub struct Downstream {
    /// Read side and buffer.
    pub reader: ClientReader,
    /// Write side.
    pub writer: crate::io::ClientOut,
    /// Client address.
    pub peer: SocketAddr,
    /// The client connection as a `proxy_protocol` cluster's PROXY header describes it (shared by
    /// the streams of an HTTP/2 connection): its upstream connections are kept for it alone.
    pub client: ClientConn,
    /// The client IP as text, formatted once per connection (X-Forwarded-For).
    pub peer_ip: Box<str>,
    /// Scratch buffer for heads written to this client.
    pub out: Vec<u8>,
    /// Scratch buffer for heads written upstream.
    pub up_out: Vec<u8>,
    /// The connection's one timer: every wait on this connection sets its deadline ([`within`]).
    pub timer: Timer,
    /// The TLS session (None: cleartext).
    pub tls: Option<Rc<TlsInfo>>,
    /// The core's drain signal, watched while the connection waits for its next request.
    drain: SignalWait,
    /// The next head may be the HTTP/2 preface (a cleartext connection's first bytes).
    pub preface_allowed: bool,
    /// An HTTP/2 stream through its bridge (the request context and access log say so).
    pub http2: bool,
}

impl Downstream {
    /// A client (a connection, or an h2 stream's bridge) on these halves; its address is
    /// `client.src`.
    pub fn new(
        reader: ClientReader,
        writer: ClientOut,
        client: ClientConn,
        tls: Option<Rc<TlsInfo>>,
        drain: SignalWait,
    ) -> Self {
        let peer = client.src;
        Downstream {
            reader,
            writer,
            peer,
            client,
            peer_ip: peer.ip().to_canonical().to_string().into_boxed_str(),
            out: Vec::with_capacity(512),
            up_out: Vec::with_capacity(512),
            timer: Timer::default(),
            tls,
            drain,
            preface_allowed: false,
            http2: false,
        }
    }

    /// Writes all of `data`.
    pub async fn write_bytes(&mut self, data: Bytes) -> std::io::Result<()> {
        let (r, _) = self.writer.write_all(data).await;
        r.map(|_| ())
    }

    /// Writes what `self.out` holds, then `more`: one future for both (the request path awaits
    /// every write at one point). `last`: nothing follows on this connection (a TLS client's
    /// `close_notify` goes with the last of these writes).
    pub async fn write_out_then(&mut self, more: BytesMut, last: bool) -> std::io::Result<()> {
        if !self.out.is_empty() {
            if last && more.is_empty() {
                self.writer.last_write_next();
            }
            self.write_out().await?;
        }
        if !more.is_empty() {
            if last {
                self.writer.last_write_next();
            }
            self.write_bytes(more.freeze()).await?;
        }
        Ok(())
    }

    /// Writes `self.out` as the connection's last write (see [`ClientOut::last_write_next`]).
    pub async fn write_out_last(&mut self) -> std::io::Result<()> {
        self.writer.last_write_next();
        self.write_out().await
    }

    /// Writes `self.out` and keeps its allocation for the next head.
    pub async fn write_out(&mut self) -> std::io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let (r, mut out) = crate::io::write_whole(&mut self.writer, out).await;
        out.clear();
        self.out = out;
        r
    }
}

/// How long an idle keep-alive connection may still bring a request once draining started.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// What came of waiting for a request head. The head itself is parsed into the slot the
/// connection gives (`read_head`) and used there by the request path: a 368-byte head moved
/// through enums and into the request's future was copied five times per request.
enum HeadRead<'h> {
    Head(&'h mut RequestHead),
    Closed,
    Preface,
    Refused(ProxyError),
}

/// Starts serving an accepted connection on this core. The connection is counted at once, before
/// its task first runs, so a drain that starts right after an accept waits for it.
pub fn spawn(worker: &Rc<Worker>, listener: Rc<str>, stream: TcpStream, peer: SocketAddr) {
    bump(&worker.stats.accepted, 1);
    worker.stats.connections_add(1);
    worker.connections.set(worker.connections.get() + 1);
    monoio::spawn(serve(worker.clone(), listener, stream, peer));
}

/// Serves one accepted connection until it closes (counted by [`spawn`]).
async fn serve(worker: Rc<Worker>, listener: Rc<str>, stream: TcpStream, peer: SocketAddr) {
    // No `set_nodelay` here: the listening socket has `TCP_NODELAY` (weir-runtime's `adopt`),
    // and Linux hands it on to every connection accepted from it.
    let id = worker.next_conn_id();
    // What comes before HTTP (a PROXY header, TLS, or a `tcp` listener's proxying) is settled
    // once per connection: a cleartext HTTP listener goes straight to its split.
    let (before, local) = {
        let state = worker.state();
        let lst = find_listener(&state, &listener);
        let local = local_addr(lst, &stream, peer);
        let before = lst
            .is_some_and(|l| l.tls.is_some() || l.proxy_in.is_some() || l.tcp.is_some())
            .then(|| state.clone());
        (before, local)
    };
    let client = ClientConn::new(id, peer, local);
    let (rd, wr, tls, client, early, alpn_h2) = match before {
        None => {
            let (rd, wr) = weir_tls::split_plain(stream);
            (rd, wr, None, client, Vec::new(), false)
        }
        // Boxed: these futures are large, and the connection's own stays small.
        Some(state) => match Box::pin(prelude(&worker, &state, &listener, stream, client)).await {
            Some(ready) => ready,
            None => {
                worker.stats.connections_add(-1);
                worker.connections.set(worker.connections.get() - 1);
                return;
            }
        },
    };
    if alpn_h2 {
        // Boxed: the HTTP/2 connection's future is not the HTTP/1.1 one's size.
        Box::pin(crate::http2::serve(
            &worker, &listener, rd, wr, early, client, tls,
        ))
        .await;
    } else {
        let cleartext = tls.is_none();
        let mut d = Downstream::new(
            ClientReader::with_bytes(ClientIn::Conn(rd), &early),
            ClientOut::Conn(wr),
            client,
            tls,
            worker.drained(),
        );
        // Prior knowledge: a cleartext client may open with the HTTP/2 preface.
        d.preface_allowed = cleartext;
        match serve_http1(&worker, &listener, &mut d).await {
            Served::Closed => {
                let _ = d.writer.shutdown().await;
            }
            Served::Preface => {
                let Downstream {
                    reader,
                    writer,
                    tls,
                    client,
                    ..
                } = d;
                if let (Some((ClientIn::Conn(rd), buf)), ClientOut::Conn(wr)) =
                    (reader.into_parts(), writer)
                {
                    let early = buf.to_vec();
                    Box::pin(crate::http2::serve(
                        &worker, &listener, rd, wr, early, client, tls,
                    ))
                    .await;
                }
            }
        }
    }
    worker.client_closed(id);
    worker.stats.connections_add(-1);
    worker.connections.set(worker.connections.get() - 1);
}

/// The address a connection reached, for the PROXY header of `proxy_protocol` clusters: the
/// listener's bound address, or, when it is bound to a wildcard address, the socket's own (a
/// `getsockname`, made only for a listener whose routes reach such a cluster; any other keeps
/// the wildcard, which only a reload that adds `proxy_protocol` would ever send).
fn local_addr(lst: Option<&ListenerState>, stream: &TcpStream, peer: SocketAddr) -> SocketAddr {
    let bound = lst.and_then(|l| l.bound);
    if let Some(b) = bound.filter(|b| !b.ip().is_unspecified()) {
        return b;
    }
    if lst.is_some_and(|l| l.proxy_out) {
        if let Ok(a) = stream.local_addr() {
            return a;
        }
    }
    bound.unwrap_or_else(|| {
        let any: IpAddr = if peer.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        SocketAddr::new(any, 0)
    })
}

/// How an HTTP/1.1 connection ended.
pub(crate) enum Served {
    /// Closed (by either side, or at the end of its keep-alive).
    Closed,
    /// Its first bytes are the HTTP/2 connection preface: it is an h2 connection.
    Preface,
}

/// Serves HTTP/1.1 requests from `d` until the connection ends: a client connection, or an
/// HTTP/2 stream through its bridge (one request, then the bridge closes the pipe).
pub(crate) async fn serve_http1(
    worker: &Rc<Worker>,
    listener: &Rc<str>,
    d: &mut Downstream,
) -> Served {
    let peer = d.peer;
    // When the connection went idle: its keep-alive timeout counts from here.
    let mut idle_since = Instant::now();
    loop {
        let state = worker.state();
        let Some(lst) = find_listener(&state, listener) else {
            break;
        };
        let mut slot = None;
        match read_head(worker, &state, lst, d, idle_since, &mut slot).await {
            HeadRead::Closed => break,
            HeadRead::Preface => return Served::Preface,
            HeadRead::Refused(e) => {
                bump(&worker.stats.protocol_errors, 1);
                tracing::debug!(client = %peer, error = %e, "request refused");
                let mut ctx = RequestCtx::new_at(
                    monoio::time::turn_now(),
                    forward::new_request_id(),
                    peer,
                    lst.name.clone(),
                    worker.index,
                );
                ctx.error = Some(e.clone());
                let resp = e.to_response(&ctx.request_id, ctx.error_format);
                forward::send_local(
                    forward::Scope {
                        worker,
                        state: &state,
                        lst,
                        route: None,
                    },
                    d,
                    &mut ctx,
                    &mut [],
                    resp,
                    false,
                    false,
                )
                .await;
                break;
            }
            HeadRead::Head(head) => {
                d.preface_allowed = false;
                // The head may have waited through a reload: the request takes the state current
                // now, and keeps it to its end.
                let state = worker.state();
                let Some(lst) = find_listener(&state, listener) else {
                    break;
                };
                worker.in_flight.set(worker.in_flight.get() + 1);
                // Awaited in place, not boxed: a box per request cost an allocation of the
                // request path's 2.9 KB future (mimalloc's slow path, with a page emptied and
                // taken back every few dozen requests) and a copy of it, about 900 instructions
                // per request; the connection's future carries it instead (3.4 KB in all).
                let keep = forward::handle(worker, &state, lst, d, head).await;
                worker.in_flight.set(worker.in_flight.get() - 1);
                // Not `|| draining`: a response that went out without `connection: close` (the drain
                // began after its head) promised the client this connection; the next read gives
                // it the drain grace instead, and answers its next request with `close`.
                if !keep {
                    break;
                }
                // Its request ended last on this core (`finish` noted when): no clock reading.
                idle_since = worker.last_end.get();
            }
        }
    }
    Served::Closed
}

/// A connection ready for HTTP: its halves, its TLS session, the client's addresses, and bytes
/// already read from it.
type Ready = (
    weir_tls::ClientRead,
    weir_tls::ClientWrite,
    Option<Rc<TlsInfo>>,
    ClientConn,
    Vec<u8>,
    bool,
);

/// What a listener does before HTTP: checks the source of a PROXY protocol listener and reads
/// its header (the client's addresses replace the peer's and the listener's), serves a `tcp`
/// listener's connection whole, runs a TLS handshake. `None` when the connection is done
/// (refused, failed, or served at layer 4); refusals and failed handshakes are logged at debug
/// (scanners make many) and counted.
async fn prelude(
    worker: &Worker,
    state: &CoreState,
    listener: &str,
    mut stream: TcpStream,
    mut client: ClientConn,
) -> Option<Ready> {
    let lst = find_listener(state, listener)?;
    let stats = lst.conn_stats.as_deref();
    let mut early = Vec::new();
    let peer = client.src;
    if let Some(pp) = &lst.proxy_in {
        let ip = peer.ip().to_canonical();
        if !pp.trusted.iter().any(|n| n.contains(&ip)) {
            if let Some(s) = stats {
                bump(&s.proxy_refused, 1);
            }
            tracing::debug!(listener, client = %peer, "PROXY protocol listener: connection from an untrusted source closed");
            return None;
        }
        match read_proxy_header(&mut stream, pp.timeout).await {
            Ok((h, rest)) => {
                if let Some((src, dst)) = h.addresses {
                    client = ClientConn::new(client.id, src, dst);
                }
                early = rest;
            }
            Err(e) => {
                if let Some(s) = stats {
                    bump(&s.proxy_refused, 1);
                }
                tracing::debug!(listener, client = %peer, error = %e, "PROXY protocol header refused");
                return None;
            }
        }
    }
    if let Some(tcp) = &lst.tcp {
        crate::l4::serve(worker, listener, tcp, stats, stream, client, early).await;
        return None;
    }
    let Some(tls) = lst.tls.as_ref() else {
        let (rd, wr) = weir_tls::split_plain(stream);
        return Some((rd, wr, None, client, early, false));
    };
    match tls.acceptor.accept(stream, &early).await {
        Ok((stream, info)) => {
            if let Some(s) = stats {
                bump(&s.tls_handshakes, 1);
                if info.resumed {
                    bump(&s.tls_resumed, 1);
                }
            }
            let h2 = lst.http2.is_some() && info.alpn.as_deref() == Some(b"h2");
            let (rd, wr) = weir_tls::split_tls(stream);
            Some((
                rd,
                wr,
                Some(Rc::new(tls_info(info))),
                client,
                Vec::new(),
                h2,
            ))
        }
        Err(e) => {
            if let Some(s) = stats {
                s.handshake_failed(e.reason);
            }
            tracing::debug!(listener, client = %client.src, reason = e.reason, error = %e.message, "TLS handshake failed");
            None
        }
    }
}

/// Reads a PROXY protocol header within `limit`; returns it and the bytes read after it.
async fn read_proxy_header(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<(weir_l4::proxy_protocol::Header, Vec<u8>), String> {
    use monoio::io::AsyncReadRent;
    let deadline = Instant::now() + limit;
    let mut got: Vec<u8> = Vec::with_capacity(256);
    loop {
        match weir_l4::proxy_protocol::parse(&got) {
            Ok(Some((h, used))) => return Ok((h, got.split_off(used))),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = Vec::with_capacity(512);
        let (r, buf) = match monoio::time::timeout(left, stream.read(buf)).await {
            Ok(r) => r,
            Err(_) => return Err("no PROXY protocol header in time".into()),
        };
        match r {
            Ok(0) => return Err("closed before its PROXY protocol header".into()),
            Ok(_) => got.extend_from_slice(&buf),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What filters and the access log see of a session. Certificate text goes into headers and
/// logs, so control characters become `?`.
fn tls_info(s: weir_tls::SessionInfo) -> TlsInfo {
    fn clean(s: &str) -> Box<str> {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into_boxed_str()
    }
    TlsInfo {
        sni: s.sni.as_deref().map(clean),
        version: s.version,
        resumed: s.resumed,
        client_cert: s.peer.map(|p| weir_filter::ClientCert {
            subject: clean(&p.subject),
            common_name: p.common_name.as_deref().map(clean),
            sans: p.sans.iter().map(|n| clean(n)).collect(),
            fingerprint_sha256: p.fingerprint_sha256.into_boxed_str(),
        }),
    }
}

fn find_listener<'a>(state: &'a CoreState, name: &str) -> Option<&'a ListenerState> {
    state.listeners.iter().find(|l| &*l.name == name)
}

/// What ended a wait for bytes of a request head.
enum Wait {
    Read(std::io::Result<usize>),
    Deadline,
}

async fn read_head<'h>(
    worker: &Worker,
    state: &CoreState,
    lst: &ListenerState,
    d: &mut Downstream,
    idle_since: Instant,
    slot: &'h mut Option<RequestHead>,
) -> HeadRead<'h> {
    let mut started: Option<Instant> = None;
    loop {
        if !d.reader.is_watching() && !d.reader.buf().is_empty() {
            if d.preface_allowed && lst.http2.is_some() && weir_h2::is_preface(d.reader.buf()) {
                if d.reader.buf().len() >= weir_h2::PREFACE.len() {
                    return HeadRead::Preface;
                }
                // A prefix of the preface so far: read on.
            } else {
                match weir_http::parse_request(d.reader.buf(), &state.limits) {
                    Ok(Some(h)) => return HeadRead::Head(slot.insert(h)),
                    Ok(None) => {}
                    Err(e) => return HeadRead::Refused(ProxyError::from_codec(&e)),
                }
            }
            started.get_or_insert_with(Instant::now);
        }
        let idle = started.is_none();
        let mut deadline = match started {
            None => after(idle_since, lst.idle_timeout),
            Some(t) => after(t, lst.header_timeout),
        };
        let Downstream {
            reader,
            timer,
            drain,
            ..
        } = d;
        // The read stays pinned here while the drain signal is watched, so when draining starts it
        // is not dropped (which could lose bytes under io_uring) but given a grace period: a
        // request that arrives then is still read and answered, with `connection: close`; a
        // connection that stays idle through it is closed.
        let mut draining = idle && worker.draining();
        if draining {
            deadline = deadline.min(after(Instant::now(), DRAIN_GRACE));
        }
        timer.aim(deadline);
        let mut fill = std::pin::pin!(reader.fill(HEAD_BUF));
        let got = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = fill.as_mut().poll(cx) {
                return Poll::Ready(Wait::Read(r));
            }
            if idle && !draining && Pin::new(&mut *drain).poll(cx).is_ready() {
                draining = true;
                timer.aim(deadline.min(after(Instant::now(), DRAIN_GRACE)));
            }
            timer.poll_expired(cx).map(|()| Wait::Deadline)
        })
        .await;
        match got {
            Wait::Read(Ok(0)) | Wait::Read(Err(_)) => return HeadRead::Closed,
            Wait::Read(Ok(_)) => {}
            Wait::Deadline if idle => return HeadRead::Closed,
            Wait::Deadline => return timeout_408(),
        }
    }
}

fn timeout_408() -> HeadRead<'static> {
    HeadRead::Refused(ProxyError::new(
        408,
        "request_header_timeout",
        weir_filter::Side::Downstream,
        "the request head did not arrive in time",
    ))
}

/// Waits out the drain timeout for this core's connections; used at shutdown.
pub async fn wait_idle(worker: &Worker, limit: Duration) -> bool {
    let start = Instant::now();
    while worker.connections.get() > 0 && start.elapsed() < limit {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.connections.get() == 0
}
