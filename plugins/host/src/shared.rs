//! Process-wide shared data (with CAS) and shared queues, seen by every instance of every plugin
//! on every core. Locked only when a plugin calls them, never on the plain proxy path.
//!
//! A queue belongs to the core that registered it first (as in Envoy): an enqueue from anywhere
//! marks the queue in that core's [`Ready`] and wakes it, and the core calls
//! `proxy_on_queue_ready` on its root context.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use crate::abi::Status;

#[derive(Default)]
struct Store {
    data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    queues: Vec<Queue>,
    by_name: HashMap<(String, Vec<u8>), u32>,
}

struct Queue {
    items: VecDeque<Vec<u8>>,
    /// The core whose root context hears of new items (gone when that core dropped the plugin).
    owner: Weak<Ready>,
}

/// The queues of one plugin on one core that have new items, and the waker of the task that
/// delivers `proxy_on_queue_ready` for them (woken from any thread).
#[derive(Debug, Default)]
pub struct Ready {
    inner: Mutex<ReadyInner>,
    /// The plugin registered a queue: the core should run the delivering task (read after each
    /// callback, so an atomic rather than the lock).
    registered: AtomicBool,
}

#[derive(Debug, Default)]
struct ReadyInner {
    pending: Vec<u32>,
    waker: Option<Waker>,
    /// The core let go of the plugin: the task ends.
    closed: bool,
}

impl Ready {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks queue `id` as having new items and wakes the delivering task.
    pub fn notify(&self, id: u32) {
        let waker = {
            let mut r = self.lock();
            if !r.pending.contains(&id) {
                r.pending.push(id);
            }
            r.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the plugin registered a queue on this core.
    pub fn registered(&self) -> bool {
        self.registered.load(Relaxed)
    }

    /// Ends the delivering task (the core dropped the plugin).
    pub fn close(&self) {
        let waker = {
            let mut r = self.lock();
            r.closed = true;
            r.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The queues with new items, once there are some; `None` once closed.
    pub fn next(self: &Arc<Self>) -> impl Future<Output = Option<Vec<u32>>> {
        NextReady(self.clone())
    }
}

struct NextReady(Arc<Ready>);

impl Future for NextReady {
    type Output = Option<Vec<u32>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut r = self.0.lock();
        if r.closed {
            return Poll::Ready(None);
        }
        if !r.pending.is_empty() {
            return Poll::Ready(Some(std::mem::take(&mut r.pending)));
        }
        r.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Most items a queue holds; an enqueue past it drops the oldest.
const QUEUE_CAP: usize = 10_000;

fn store() -> std::sync::MutexGuard<'static, Store> {
    static S: OnceLock<Mutex<Store>> = OnceLock::new();
    S.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The value of `key` and its CAS.
pub fn get(key: &[u8]) -> Option<(Vec<u8>, u32)> {
    store().data.get(key).cloned()
}

/// Sets `key`; a non-zero `cas` must match the current one.
pub fn set(key: &[u8], value: &[u8], cas: u32) -> Status {
    let mut s = store();
    let e = s.data.entry(key.to_vec()).or_insert((Vec::new(), 0));
    if cas != 0 && e.1 != cas {
        return Status::CasMismatch;
    }
    e.0 = value.to_vec();
    // CAS values start at 1 and skip 0 on wrap (0 means "no check").
    e.1 = e.1.wrapping_add(1).max(1);
    Status::Ok
}

/// Registers (or finds) the queue `name` of the VM `vm`; `owner` hears of new items unless a live
/// owner registered it before.
pub fn register(vm: &str, name: &[u8], owner: &Arc<Ready>) -> u32 {
    owner.registered.store(true, Relaxed);
    let mut s = store();
    if let Some(id) = s.by_name.get(&(vm.to_owned(), name.to_vec())).copied() {
        if let Some(q) = s.queues.get_mut(id as usize - 1) {
            if q.owner.strong_count() == 0 {
                q.owner = Arc::downgrade(owner);
            }
        }
        return id;
    }
    s.queues.push(Queue {
        items: VecDeque::new(),
        owner: Arc::downgrade(owner),
    });
    let id = s.queues.len() as u32;
    s.by_name.insert((vm.to_owned(), name.to_vec()), id);
    id
}

/// The id of an existing queue.
pub fn resolve(vm: &str, name: &[u8]) -> Option<u32> {
    store()
        .by_name
        .get(&(vm.to_owned(), name.to_vec()))
        .copied()
}

/// Appends to a queue and tells its owner.
pub fn enqueue(id: u32, value: &[u8]) -> Status {
    let owner = {
        let mut s = store();
        let Some(q) = id.checked_sub(1).and_then(|i| s.queues.get_mut(i as usize)) else {
            return Status::NotFound;
        };
        if q.items.len() >= QUEUE_CAP {
            q.items.pop_front();
        }
        q.items.push_back(value.to_vec());
        q.owner.upgrade()
    };
    // Outside the store's lock: the owner's lock and its waker are its own business.
    if let Some(o) = owner {
        o.notify(id);
    }
    Status::Ok
}

/// Takes the oldest item of a queue.
pub fn dequeue(id: u32) -> Result<Vec<u8>, Status> {
    let mut s = store();
    let Some(q) = id.checked_sub(1).and_then(|i| s.queues.get_mut(i as usize)) else {
        return Err(Status::NotFound);
    };
    q.items.pop_front().ok_or(Status::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_guards_writes() {
        let k = b"shared-test-cas";
        assert!(get(k).is_none());
        assert_eq!(set(k, b"1", 0), Status::Ok);
        let (v, cas) = get(k).expect("set");
        assert_eq!(v, b"1");
        assert_eq!(set(k, b"2", cas + 7), Status::CasMismatch);
        assert_eq!(set(k, b"2", cas), Status::Ok);
        assert_eq!(set(k, b"3", cas), Status::CasMismatch);
        assert_eq!(get(k).expect("set").0, b"2");
    }

    #[test]
    fn queues_are_fifo_and_named_per_vm() {
        let owner = Arc::new(Ready::default());
        let a = register("vm", b"q-test", &owner);
        assert_eq!(register("vm", b"q-test", &Arc::new(Ready::default())), a);
        assert_eq!(resolve("vm", b"q-test"), Some(a));
        assert_eq!(resolve("other", b"q-test"), None);
        assert_eq!(dequeue(a), Err(Status::Empty));
        assert_eq!(enqueue(a, b"x"), Status::Ok);
        assert_eq!(enqueue(a, b"y"), Status::Ok);
        assert_eq!(dequeue(a), Ok(b"x".to_vec()));
        assert_eq!(dequeue(a), Ok(b"y".to_vec()));
        assert_eq!(enqueue(999_999, b"z"), Status::NotFound);
        // The first registrant heard of the items, once per queue until it takes them.
        assert!(owner.registered());
        assert_eq!(std::mem::take(&mut owner.lock().pending), vec![a]);
        drop(owner);
        // Its owner gone, the next registrant becomes the owner.
        let next = Arc::new(Ready::default());
        assert_eq!(register("vm", b"q-test", &next), a);
        assert_eq!(enqueue(a, b"w"), Status::Ok);
        assert_eq!(next.lock().pending, vec![a]);
    }
}
