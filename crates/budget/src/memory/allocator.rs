//! `BudgetAllocator`: a `GlobalAlloc` wrapper that counts live heap bytes and enforces a hard
//! limit, with the accounting in [`super::accounting`].

use std::alloc::{GlobalAlloc, Layout};

use super::accounting::{charge_slow, give, release_slow, take, untake};

/// Wraps any [`GlobalAlloc`] (`System`, jemalloc, mimalloc) and counts the bytes it has live.
///
/// ```no_run
/// use std::alloc::System;
/// use crashguard_budget::memory::BudgetAllocator;
///
/// #[global_allocator]
/// static ALLOC: BudgetAllocator<System> = BudgetAllocator::new(System);
/// ```
///
/// The counters and limits are process-wide (a process has one global allocator): the limits
/// are one value put in force with [`install_limits`](super::install_limits), the count is read
/// with [`live_bytes`](super::live_bytes); see the `accounting` module documentation
/// for the precision bound (`threads x 64 KiB`).
///
/// When a request would take live bytes over the hard limit, or the inner allocator returns
/// null, the allocator records the request, its alignment, the live bytes and the budget in the
/// black box's `alloc` section *before* returning null. Rust then calls `handle_alloc_error`,
/// which prints "memory allocation of N bytes failed" and aborts; crashguard's SIGABRT handler
/// finds the fresh `alloc` record and ends the process with exit code 80 and a `memory_budget`
/// report instead of a bare 134. Code that uses fallible APIs (`Vec::try_reserve`) gets its
/// `Err` and continues; the record stays, stamped with its time.
#[derive(Debug, Default)]
pub struct BudgetAllocator<A> {
    inner: A,
}

impl<A> BudgetAllocator<A> {
    /// Wraps `inner`. A `const fn` so that it can initialise a `#[global_allocator]` static.
    pub const fn new(inner: A) -> Self {
        BudgetAllocator { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: GlobalAlloc> BudgetAllocator<A> {
    /// The slow path of `dealloc`, out of line with the inner call in it, so that the fast path
    /// stays a subtraction, a branch and a tail call (nothing to save across a call).
    ///
    /// Async-signal-safe (if the inner allocator's `dealloc` is).
    ///
    /// # Safety
    ///
    /// As for `GlobalAlloc::dealloc`.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_slow(&self, ptr: *mut u8, layout: Layout) {
        release_slow(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { self.inner.dealloc(ptr, layout) };
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged,
// so the inner allocator's guarantees carry over; the accounting around the calls never
// allocates, never unwinds and only returns null where the inner allocator would be allowed to.
unsafe impl<A: GlobalAlloc> GlobalAlloc for BudgetAllocator<A> {
    /// Async-signal-safe (if the inner allocator's `alloc` is).
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if take(layout.size()) {
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
            return unsafe { self.inner.alloc(layout) };
        }
        charge_slow(layout.size(), layout.size(), layout.align(), || {
            // SAFETY: as above.
            unsafe { self.inner.alloc(layout) }
        })
    }

    /// Async-signal-safe (if the inner allocator's `alloc_zeroed` is).
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if take(layout.size()) {
            // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract for `layout`.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        charge_slow(layout.size(), layout.size(), layout.align(), || {
            // SAFETY: as above.
            unsafe { self.inner.alloc_zeroed(layout) }
        })
    }

    /// Async-signal-safe (if the inner allocator's `dealloc` is).
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if give(layout.size()) {
            // SAFETY: the caller guarantees `ptr` was allocated by this allocator with
            // `layout`; this allocator hands out exactly the inner allocator's blocks.
            return unsafe { self.inner.dealloc(ptr, layout) };
        }
        // SAFETY: as above.
        unsafe { self.dealloc_slow(ptr, layout) }
    }

    /// Async-signal-safe (if the inner allocator's `realloc` is).
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let op = || {
            // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract for `ptr`, `layout`
            // and `new_size`, and the block is the inner allocator's own.
            unsafe { self.inner.realloc(ptr, layout, new_size) }
        };
        let old = layout.size();
        if new_size >= old {
            let grow = new_size - old;
            if !take(grow) {
                return charge_slow(grow, new_size, layout.align(), op);
            }
            let p = op();
            if p.is_null() {
                // The block stays as it was: give the growth back and record the failure.
                untake(grow, new_size, layout.align());
            }
            p
        } else {
            // Shrinking is never refused by the budget; the count changes only once the block
            // really shrank.
            let p = op();
            if !p.is_null() && !give(old - new_size) {
                release_slow(old - new_size);
            }
            p
        }
    }
}
