//! A fixed-size, lock-free table of thread stack bounds, keyed by kernel thread id.
//!
//! Stack bounds can only be discovered outside a signal handler (`pthread_getattr_np` reads
//! `/proc/self/maps` for the main thread and allocates), so threads record theirs when they are
//! prepared, and the handler only looks them up. A full table just means the handler falls back
//! to the stack-pointer heuristic in [`is_stack_overflow`].

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crashguard_blackbox::assafe;

use crate::sys;

/// Threads whose bounds are remembered at once.
const SLOTS: usize = 512;

/// How far below a thread's lowest stack address (and how far from the interrupted stack
/// pointer) a fault still counts as running off the stack. Large frames probe the stack page by
/// page, so the fault lands within a page of the stack pointer; 64 KiB leaves room for
/// architectures that probe coarser and for the main thread's guard gap.
pub(crate) const OVERFLOW_WINDOW: usize = 64 * 1024;

struct Slot {
    tid: AtomicU32,
    low: AtomicUsize,
    high: AtomicUsize,
    guard: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    tid: AtomicU32::new(0),
    low: AtomicUsize::new(0),
    high: AtomicUsize::new(0),
    guard: AtomicUsize::new(0),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];

/// Records the calling thread's stack bounds. Returns false when the bounds are unknown or the
/// table is full.
pub(crate) fn register_current() -> bool {
    let Some((low, high, guard)) = sys::current_stack_bounds() else {
        return false;
    };
    register(assafe::gettid(), low, high, guard)
}

fn register(tid: u32, low: usize, high: usize, guard: usize) -> bool {
    let slot = TABLE
        .iter()
        .find(|s| s.tid.load(Ordering::Acquire) == tid)
        .or_else(|| {
            TABLE.iter().find(|s| {
                s.tid
                    .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        });
    let Some(slot) = slot else {
        return false;
    };
    slot.low.store(low, Ordering::Relaxed);
    slot.high.store(high, Ordering::Relaxed);
    slot.guard.store(guard, Ordering::Release);
    true
}

/// Forgets thread `tid` (called when it exits, so a reused tid is not misjudged).
pub(crate) fn unregister(tid: u32) {
    if let Some(slot) = TABLE.iter().find(|s| s.tid.load(Ordering::Acquire) == tid) {
        slot.low.store(0, Ordering::Relaxed);
        slot.high.store(0, Ordering::Relaxed);
        slot.guard.store(0, Ordering::Relaxed);
        slot.tid.store(0, Ordering::Release);
    }
}

/// The recorded `(low, high, guard)` of thread `tid`.
///
/// Async-signal-safe.
pub(crate) fn lookup(tid: u32) -> Option<(usize, usize, usize)> {
    let slot = TABLE
        .iter()
        .find(|s| s.tid.load(Ordering::Acquire) == tid)?;
    let guard = slot.guard.load(Ordering::Acquire);
    let low = slot.low.load(Ordering::Relaxed);
    let high = slot.high.load(Ordering::Relaxed);
    (low != 0 && high > low).then_some((low, high, guard))
}

/// Whether a fault at `addr` on thread `tid`, whose interrupted stack pointer was `sp`, is a
/// stack overflow: the address lies in the guard region just below the thread's recorded stack,
/// or (for threads whose bounds are unknown) within [`OVERFLOW_WINDOW`] of the stack pointer,
/// where nothing but a guard page can be unmapped.
///
/// Async-signal-safe.
pub(crate) fn is_stack_overflow(signo: i32, addr: usize, sp: usize, tid: u32) -> bool {
    if (signo != libc::SIGSEGV && signo != libc::SIGBUS) || addr == 0 {
        return false;
    }
    if let Some((low, _high, guard)) = lookup(tid) {
        let below = guard.max(OVERFLOW_WINDOW);
        let page = 4096;
        if addr >= low.saturating_sub(below) && addr < low.saturating_add(page) {
            return true;
        }
    }
    sp != 0 && addr.abs_diff(sp) <= OVERFLOW_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_looks_up_and_forgets() {
        let tid = u32::MAX - 7;
        assert!(register(tid, 0x10_0000, 0x20_0000, 4096));
        assert_eq!(lookup(tid), Some((0x10_0000, 0x20_0000, 4096)));
        assert!(is_stack_overflow(libc::SIGSEGV, 0x10_0000 - 8, 0, tid));
        assert!(!is_stack_overflow(libc::SIGSEGV, 0x18_0000, 0, tid));
        assert!(!is_stack_overflow(libc::SIGILL, 0x10_0000 - 8, 0, tid));
        unregister(tid);
        assert_eq!(lookup(tid), None);
        assert!(!is_stack_overflow(libc::SIGSEGV, 0x10_0000 - 8, 0, tid));
    }

    #[test]
    fn stack_pointer_heuristic() {
        let tid = u32::MAX - 8;
        assert!(is_stack_overflow(
            libc::SIGSEGV,
            0x7000_0000,
            0x7000_0010,
            tid
        ));
        assert!(!is_stack_overflow(libc::SIGSEGV, 0, 0x10, tid));
        assert!(!is_stack_overflow(libc::SIGSEGV, 0x1000, 0x7000_0000, tid));
    }

    #[test]
    fn current_thread_bounds_contain_a_local() {
        if !sys::KNOWS_STACK_BOUNDS {
            return;
        }
        assert!(register_current());
        let local = 5u8;
        let addr = &local as *const u8 as usize;
        let (low, high, _) = lookup(assafe::gettid()).expect("registered");
        assert!(
            low < addr && addr < high,
            "{low:#x} < {addr:#x} < {high:#x}"
        );
        unregister(assafe::gettid());
    }
}
