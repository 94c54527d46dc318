//! A downstream connection: read a request head, hand it to the request path, repeat while the
//! connection is kept alive (pipelined requests are served in order from the same buffer).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use weir_filter::{ProxyError, RequestCtx};
use weir_http::RequestHead;
use weir_metrics::bump;

use crate::forward;
use crate::io::{ClientReader, HEAD_BUF};
use crate::state::{CoreState, ListenerState};
use crate::worker::Worker;

/// The client side of a connection.
pub struct Downstream {
    /// Read side and buffer.
    pub reader: ClientReader,
    /// Write side.
    pub writer: OwnedWriteHalf<TcpStream>,
    /// Client address.
    pub peer: SocketAddr,
    /// The client IP as text, formatted once per connection (X-Forwarded-For).
    pub peer_ip: Box<str>,
    /// Scratch buffer for heads written to this client.
    pub out: Vec<u8>,
    /// Scratch buffer for heads written upstream.
    pub up_out: Vec<u8>,
}

impl Downstream {
    /// Writes all of `data`.
    pub async fn write_bytes(&mut self, data: Bytes) -> std::io::Result<()> {
        let (r, _) = self.writer.write_all(data).await;
        r.map(|_| ())
    }

    /// Writes `self.out` and keeps its allocation for the next head.
    pub async fn write_out(&mut self) -> std::io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let (r, mut out) = self.writer.write_all(out).await;
        out.clear();
        self.out = out;
        r.map(|_| ())
    }
}

/// How long an idle keep-alive connection may still bring a request once draining started.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

enum HeadRead {
    Head(RequestHead),
    Closed,
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
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut d = Downstream {
        reader: ClientReader::new(rd),
        writer: wr,
        peer,
        peer_ip: peer.ip().to_canonical().to_string().into_boxed_str(),
        out: Vec::with_capacity(512),
        up_out: Vec::with_capacity(512),
    };
    loop {
        let state = worker.state();
        let Some(lst) = find_listener(&state, &listener) else {
            break;
        };
        match read_head(&worker, &state, lst, &mut d).await {
            HeadRead::Closed => break,
            HeadRead::Refused(e) => {
                bump(&worker.stats.protocol_errors, 1);
                tracing::debug!(client = %peer, error = %e, "request refused");
                let mut ctx = RequestCtx::new(
                    forward::new_request_id(),
                    peer,
                    lst.name.clone(),
                    worker.index,
                );
                ctx.error = Some(e.clone());
                let resp = e.to_response(&ctx.request_id, ctx.error_format);
                forward::send_local(
                    forward::Scope {
                        worker: &worker,
                        state: &state,
                        lst,
                        route: None,
                    },
                    &mut d,
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
                // The head may have waited through a reload: the request takes the state current
                // now, and keeps it to its end.
                let state = worker.state();
                let Some(lst) = find_listener(&state, &listener) else {
                    break;
                };
                worker.in_flight.set(worker.in_flight.get() + 1);
                // Boxed: the request path's future is large, and an idle keep-alive connection
                // should only carry the small one that waits for its next head.
                let keep = Box::pin(forward::handle(&worker, &state, lst, &mut d, head)).await;
                worker.in_flight.set(worker.in_flight.get() - 1);
                // Not `|| draining`: a response that went out without `connection: close` (the drain
                // began after its head) promised the client this connection; the next read gives
                // it the drain grace instead, and answers its next request with `close`.
                if !keep {
                    break;
                }
            }
        }
    }
    let _ = d.writer.shutdown().await;
    worker.stats.connections_add(-1);
    worker.connections.set(worker.connections.get() - 1);
}

fn find_listener<'a>(state: &'a CoreState, name: &str) -> Option<&'a ListenerState> {
    state.listeners.iter().find(|l| &*l.name == name)
}

async fn read_head(
    worker: &Worker,
    state: &CoreState,
    lst: &ListenerState,
    d: &mut Downstream,
) -> HeadRead {
    let mut started: Option<Instant> = None;
    loop {
        if !d.reader.is_watching() && !d.reader.buf().is_empty() {
            match weir_http::parse_request(d.reader.buf(), &state.limits) {
                Ok(Some(h)) => return HeadRead::Head(h),
                Ok(None) => {}
                Err(e) => return HeadRead::Refused(ProxyError::from_codec(&e)),
            }
            started.get_or_insert_with(Instant::now);
        }
        let idle = started.is_none();
        let wait = match started {
            None => lst.idle_timeout,
            Some(t) => match lst.header_timeout.checked_sub(t.elapsed()) {
                Some(left) if !left.is_zero() => left,
                _ => return timeout_408(),
            },
        };
        let got = if idle {
            // The read stays pinned here while the drain signal is watched, so when draining
            // starts it is not dropped (which could lose bytes under io_uring) but given a grace
            // period: a request that arrives then is still read and answered, with
            // `connection: close`; a connection that stays idle through it is closed.
            let fill = d.reader.fill(HEAD_BUF);
            let mut fill = std::pin::pin!(fill);
            if worker.draining() {
                monoio::time::timeout(wait.min(DRAIN_GRACE), &mut fill).await
            } else {
                monoio::select! {
                    r = monoio::time::timeout(wait, &mut fill) => r,
                    _ = worker.drained() => monoio::time::timeout(DRAIN_GRACE, &mut fill).await,
                }
            }
        } else {
            monoio::time::timeout(wait, d.reader.fill(HEAD_BUF)).await
        };
        match got {
            Ok(Ok(0)) | Ok(Err(_)) => return HeadRead::Closed,
            Ok(Ok(_)) => {}
            Err(_) if idle => return HeadRead::Closed,
            Err(_) => return timeout_408(),
        }
    }
}

fn timeout_408() -> HeadRead {
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
