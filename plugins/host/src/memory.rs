//! Moving bytes across the sandbox wall: reads of guest pointers (bounds-checked; a bad one is an
//! ABI misuse) and writes of host data into memory the guest allocates.

use wasmtime::Caller;

use crate::abi::Status;
use crate::state::HostState;

/// Result of a host function: a status for the guest, or a trap.
pub type HostResult = wasmtime::Result<i32>;

/// The guest's bytes at `ptr..ptr+len`; `None` (and a misuse recorded) when out of bounds.
pub fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let Some(mem) = caller.data().memory else {
        caller.data_mut().misuse("no memory");
        return None;
    };
    let (p, n) = (ptr as u32 as usize, len as u32 as usize);
    let data = mem.data(&caller);
    match p.checked_add(n).and_then(|end| data.get(p..end)) {
        Some(s) => Some(s.to_vec()),
        None => {
            caller
                .data_mut()
                .misuse(format!("pointer {p:#x}+{n} outside linear memory"));
            None
        }
    }
}

/// Writes `bytes` at `ptr` (no allocation); false (misuse recorded) when out of bounds.
pub fn write_at(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(mem) = caller.data().memory else {
        return false;
    };
    if mem.write(&mut *caller, ptr as u32 as usize, bytes).is_err() {
        caller.data_mut().misuse(format!(
            "return pointer {:#x} outside linear memory",
            ptr as u32
        ));
        return false;
    }
    true
}

/// Writes a `u32` at `ptr`.
pub fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, v: u32) -> bool {
    write_at(caller, ptr, &v.to_le_bytes())
}

/// Copies `bytes` into memory allocated by the guest and stores its address and size at
/// `ret_ptr` and `ret_size`: how every `get` of the ABI returns data.
pub fn give(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_size: i32,
) -> HostResult {
    let Some(alloc) = caller.data().alloc.clone() else {
        return Ok(Status::InternalFailure.code());
    };
    let at = alloc.call(&mut *caller, bytes.len() as i32)?;
    if at == 0 && !bytes.is_empty() {
        return Ok(Status::InternalFailure.code());
    }
    if !write_at(caller, at, bytes)
        || !write_u32(caller, ret_ptr, at as u32)
        || !write_u32(caller, ret_size, bytes.len() as u32)
    {
        return Ok(Status::InvalidMemoryAccess.code());
    }
    Ok(Status::Ok.code())
}

/// The status for a read that failed.
pub fn bad_read() -> HostResult {
    Ok(Status::InvalidMemoryAccess.code())
}
