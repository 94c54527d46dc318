//! Weir's global allocator: mimalloc, reached through its plain entry points whenever the
//! requested alignment is one every mimalloc block already has.
//!
//! The `mimalloc` crate's allocator passes every request to `mi_malloc_aligned`, alignment 8
//! included. mimalloc 3 serves an aligned request from its fast path only up to 1 KiB (and a
//! power-of-two size up to 4 KiB); a larger one, an 8-aligned request for a 2.7 KiB future or a
//! 16 KiB body buffer, goes to its over-allocating path: about 220 instructions instead of
//! about 60 for `mi_malloc`, and a block a size class larger than asked. Every mimalloc block is
//! at least word-aligned (sizes are whole words, pages start 16-aligned), so a request aligned
//! to a word or less can take `mi_malloc`, `mi_zalloc` and `mi_realloc`; only a stricter one
//! takes the aligned calls.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: weir_alloc::WeirAlloc = weir_alloc::WeirAlloc;
//!
//! let future_sized = vec![7u8; 2760];
//! assert_eq!(future_sized.iter().map(|&b| usize::from(b)).sum::<usize>(), 7 * 2760);
//! ```

#![cfg_attr(not(test), no_std)]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out: its sizes are whole machine words.
const WORD: usize = core::mem::size_of::<usize>();

/// mimalloc, with word-aligned requests on its plain entry points (see the crate's docs).
pub struct WeirAlloc;

// SAFETY: every entry point forwards to mimalloc, which returns blocks of at least the requested
// size aligned to at least the requested alignment: `mi_malloc`/`mi_zalloc`/`mi_realloc` only
// when that alignment is at most a word (every mimalloc block is word-aligned), the `_aligned`
// calls otherwise. `dealloc` frees with `mi_free`, which takes a block from either family.
unsafe impl GlobalAlloc for WeirAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; mimalloc accepts any size and a power-of-two alignment
        // (which `Layout` guarantees).
        unsafe {
            if layout.align() <= WORD {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract); the
        // block keeps its alignment class as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, checks the alignment, writes every byte, reallocates larger and smaller
    /// (the content must follow), frees: for sizes around mimalloc's class boundaries and each
    /// alignment from 1 to 4 KiB.
    #[test]
    fn blocks_are_aligned_and_keep_their_content() {
        let sizes = [
            1,
            7,
            8,
            9,
            24,
            40,
            56,
            64,
            100,
            1000,
            1024,
            1025,
            2760,
            4096,
            5000,
            16384,
            70000,
            1 << 20,
        ];
        for align in (0..=12).map(|s| 1usize << s) {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; every pointer is checked, used within its size and
                // freed once with the layout it has.
                unsafe {
                    let p = WeirAlloc.alloc(layout);
                    assert!(!p.is_null(), "alloc {size}/{align}");
                    assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                    for i in 0..size {
                        *p.add(i) = i as u8;
                    }
                    let bigger = size * 2 + 13;
                    let q = WeirAlloc.realloc(p, layout, bigger);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size}/{align}");
                    assert!(
                        (0..size).all(|i| *q.add(i) == i as u8),
                        "content {size}/{align}"
                    );
                    let smaller = size / 2 + 1;
                    let big = Layout::from_size_align(bigger, align).expect("layout");
                    let r = WeirAlloc.realloc(q, big, smaller);
                    assert_eq!(r as usize % align, 0, "shrink {size}/{align}");
                    assert!((0..smaller).all(|i| *r.add(i) == i as u8));
                    WeirAlloc.dealloc(r, Layout::from_size_align(smaller, align).expect("layout"));

                    let z = WeirAlloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed {size}/{align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed {size}/{align}");
                    WeirAlloc.dealloc(z, layout);
                }
            }
        }
    }
}
