//! A worker: one core's slot for the current state, its drain signal, its counters and its
//! access-log buffer. Everything here is touched by that core only.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use weir_metrics::{CoreStats, Registry};

use crate::io::{BODY_READ, HEAD_BUF};

use crate::state::CoreState;

/// Flush the access-log buffer when it grows past this.
const LOG_FLUSH_BYTES: usize = 32 << 10;

/// One core.
pub struct Worker {
    /// Core index.
    pub index: usize,
    state: RefCell<Rc<CoreState>>,
    prepared: RefCell<Option<Rc<CoreState>>>,
    /// Connection counters of this core.
    pub stats: Arc<CoreStats>,
    /// Where per-core stats come from.
    pub registry: Arc<Registry>,
    /// This core's series of LLM requests (kept across generations).
    pub ai_stats: weir_metrics::ai::AiRecorder,
    drain: Signal,
    /// Requests in flight on this core.
    pub in_flight: Cell<usize>,
    /// Connections open on this core.
    pub connections: Cell<usize>,
    /// When the last request on this core ended (its access-log time): a connection's keep-alive
    /// timeout counts from there, without reading the clock again.
    pub last_end: Cell<Instant>,
    log: RefCell<Vec<u8>>,
    /// Read buffers for upstream responses, reused request after request: a fresh one costs two
    /// allocations (the buffer, and its shared header once the head is split off).
    bufs: RefCell<Vec<BytesMut>>,
    /// HTTP/2 upstream connections of this core (`protocol: h2` clusters).
    pub h2_pool: crate::h2_upstream::H2Pool,
    /// The number of the last connection accepted on this core.
    conn_ids: Cell<u64>,
}

/// Most spare read buffers a core keeps.
const SPARE_BUFS: usize = 256;

impl Worker {
    /// A worker serving `state`.
    pub fn new(index: usize, state: CoreState, registry: Arc<Registry>) -> Self {
        Worker {
            index,
            state: RefCell::new(Rc::new(state)),
            prepared: RefCell::new(None),
            stats: registry.core(index),
            ai_stats: registry.ai_recorder(index),
            registry,
            drain: Signal::default(),
            in_flight: Cell::new(0),
            connections: Cell::new(0),
            last_end: Cell::new(Instant::now()),
            log: RefCell::new(Vec::with_capacity(LOG_FLUSH_BYTES)),
            bufs: RefCell::new(Vec::new()),
            h2_pool: Default::default(),
            conn_ids: Cell::new(0),
        }
    }

    /// A number for a connection accepted now, unique on this core: the key of the upstream
    /// connections kept for it by `proxy_protocol` clusters.
    pub fn next_conn_id(&self) -> u64 {
        let id = self.conn_ids.get() + 1;
        self.conn_ids.set(id);
        id
    }

    /// A downstream connection closed: `proxy_protocol` clusters close the idle connections
    /// they kept for it (nothing to do in a config without such clusters).
    pub fn client_closed(&self, id: u64) {
        let state = self.state.borrow();
        for c in &state.proxy_clusters {
            c.close_client(id);
        }
    }

    /// The current state; a request takes it once at its start and keeps it to its end.
    #[inline]
    pub fn state(&self) -> Rc<CoreState> {
        self.state.borrow().clone()
    }

    /// Holds a prepared state until commit or abort.
    pub fn prepare(&self, next: CoreState) {
        *self.prepared.borrow_mut() = Some(Rc::new(next));
    }

    /// Makes the prepared state current; returns whether there was one. Clusters that left the
    /// config close their idle connections; in-flight requests keep their own `Rc`.
    pub fn commit(&self) -> bool {
        let Some(next) = self.prepared.borrow_mut().take() else {
            return false;
        };
        let old = std::mem::replace(&mut *self.state.borrow_mut(), next);
        let cur = self.state.borrow();
        for (name, c) in &old.clusters {
            if !cur.clusters.get(name).is_some_and(|n| Rc::ptr_eq(n, c)) {
                c.close_idle();
            }
        }
        true
    }

    /// Drops a prepared state.
    pub fn abort(&self) {
        self.prepared.borrow_mut().take();
    }

    /// Marks this core alive for the watchdog.
    pub fn heartbeat(&self) {
        weir_metrics::bump(&self.stats.heartbeat, 1);
    }

    /// Starts draining: idle keep-alive connections close, busy ones close after their response.
    pub fn start_drain(&self) {
        self.drain.fire();
    }

    /// Whether draining started.
    pub fn draining(&self) -> bool {
        self.drain.fired()
    }

    /// A future that completes when draining starts.
    pub fn drained(&self) -> SignalWait {
        self.drain.wait()
    }

    /// A read buffer for an upstream response (a spare one if there is one).
    pub fn take_buf(&self) -> BytesMut {
        self.bufs.borrow_mut().pop().unwrap_or_default()
    }

    /// Gives back a read buffer once its response is done. Kept only when nothing else still
    /// holds part of it and it is of an ordinary size.
    pub fn put_buf(&self, mut buf: BytesMut) {
        buf.clear();
        if buf.capacity() > BODY_READ || !buf.try_reclaim(HEAD_BUF) {
            return;
        }
        let mut bufs = self.bufs.borrow_mut();
        if bufs.len() < SPARE_BUFS {
            bufs.push(buf);
        }
    }

    /// Appends one access-log line (already JSON, with its newline).
    pub fn log_line(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut buf = self.log.borrow_mut();
        f(&mut buf);
        if buf.len() >= LOG_FLUSH_BYTES {
            flush(&mut buf);
        }
    }

    /// Writes out buffered access-log lines (called by a timer and at exit).
    pub fn flush_log(&self) {
        let mut buf = self.log.borrow_mut();
        if !buf.is_empty() {
            flush(&mut buf);
        }
    }
}

fn flush(buf: &mut Vec<u8>) {
    // Whole lines in one write, so lines of different cores never interleave mid-line.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(buf);
    let _ = out.flush();
    buf.clear();
}

/// A one-shot signal of one core (drain, a listener's stop). Waiters live in a slab so a wait that
/// ends another way (the usual case: the next request arrived) removes its waker in O(1) and
/// nothing accumulates.
#[derive(Clone, Default)]
pub struct Signal(Rc<SignalInner>);

#[derive(Default)]
struct SignalInner {
    fired: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Signal {
    /// Fires the signal: every waiter wakes, later waits complete at once.
    pub fn fire(&self) {
        self.0.fired.set(true);
        for w in self.0.slots.borrow_mut().iter_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }

    /// Whether it fired.
    pub fn fired(&self) -> bool {
        self.0.fired.get()
    }

    /// A future that completes when the signal fires.
    pub fn wait(&self) -> SignalWait {
        SignalWait {
            signal: self.0.clone(),
            slot: None,
        }
    }
}

/// Completes when its [`Signal`] fires.
pub struct SignalWait {
    signal: Rc<SignalInner>,
    slot: Option<usize>,
}

impl Future for SignalWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        match self.slot {
            Some(i) => {
                let mut slots = self.signal.slots.borrow_mut();
                if !slots[i].as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slots[i] = Some(cx.waker().clone());
                }
            }
            None => {
                let i = {
                    let mut slots = self.signal.slots.borrow_mut();
                    match self.signal.free.borrow_mut().pop() {
                        Some(i) => {
                            slots[i] = Some(cx.waker().clone());
                            i
                        }
                        None => {
                            slots.push(Some(cx.waker().clone()));
                            slots.len() - 1
                        }
                    }
                };
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for SignalWait {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            self.signal.slots.borrow_mut()[i] = None;
            self.signal.free.borrow_mut().push(i);
        }
    }
}
