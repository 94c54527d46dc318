//! Process-wide shared data (with CAS) and shared queues, seen by every instance of every plugin
//! on every core. Locked only when a plugin calls them, never on the plain proxy path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::abi::Status;

#[derive(Default)]
struct Store {
    data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    queues: Vec<Queue>,
    by_name: HashMap<(String, Vec<u8>), u32>,
}

struct Queue {
    items: VecDeque<Vec<u8>>,
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

/// Registers (or finds) the queue `name` of the VM `vm`.
pub fn register(vm: &str, name: &[u8]) -> u32 {
    let mut s = store();
    if let Some(id) = s.by_name.get(&(vm.to_owned(), name.to_vec())) {
        return *id;
    }
    s.queues.push(Queue {
        items: VecDeque::new(),
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

/// Appends to a queue.
pub fn enqueue(id: u32, value: &[u8]) -> Status {
    let mut s = store();
    let Some(q) = id.checked_sub(1).and_then(|i| s.queues.get_mut(i as usize)) else {
        return Status::NotFound;
    };
    if q.items.len() >= QUEUE_CAP {
        q.items.pop_front();
    }
    q.items.push_back(value.to_vec());
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
        let a = register("vm", b"q-test");
        assert_eq!(register("vm", b"q-test"), a);
        assert_eq!(resolve("vm", b"q-test"), Some(a));
        assert_eq!(resolve("other", b"q-test"), None);
        assert_eq!(dequeue(a), Err(Status::Empty));
        assert_eq!(enqueue(a, b"x"), Status::Ok);
        assert_eq!(enqueue(a, b"y"), Status::Ok);
        assert_eq!(dequeue(a), Ok(b"x".to_vec()));
        assert_eq!(dequeue(a), Ok(b"y".to_vec()));
        assert_eq!(enqueue(999_999, b"z"), Status::NotFound);
    }
}
