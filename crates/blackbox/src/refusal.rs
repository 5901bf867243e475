//! Which thread is about to abort because the memory budget refused its allocation.
//!
//! When `BudgetAllocator` refuses a request (or its inner allocator fails one it passed on) it
//! marks the requesting thread here before it returns null; Rust's `handle_alloc_error` then prints "memory allocation of N bytes failed"
//! and calls `abort()` on that same thread, without allocating in between, so the SIGABRT
//! handler runs on the marked thread and can tell this abort from every other: a `try_reserve`
//! that got its `Err` and went on (the thread's next allocator call clears the mark), an abort
//! on another thread, an abort long after. Only a marked thread's own, self-sent SIGABRT is
//! recorded as the memory budget (exit 80); every other abort stays SIGABRT (134).
//!
//! The residue: a thread that handles a refused `try_reserve` and then calls `abort()` itself
//! without touching the allocator in between is still counted as the budget's.

use std::cell::Cell;

thread_local! {
    /// `const`-initialised, no destructor: a plain `#[thread_local]` slot, readable from the
    /// allocator and from a signal handler.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread: the budget just refused its allocation.
///
/// Async-signal-safe.
pub fn mark_refused() {
    let _ = REFUSED.try_with(|r| r.set(true));
}

/// Clears the calling thread's mark: it went on allocating, so no abort for that refusal is
/// coming.
///
/// Async-signal-safe.
pub fn clear_refused() {
    let _ = REFUSED.try_with(|r| r.set(false));
}

/// Whether the calling thread's last allocator call was a refusal by the budget.
///
/// Async-signal-safe.
pub fn refused_on_this_thread() -> bool {
    REFUSED.try_with(Cell::get).unwrap_or(false)
}
