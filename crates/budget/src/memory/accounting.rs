//! The allocator's live-byte accounting: per-thread batches flushed into one global counter.
//!
//! Every function here runs inside the global allocator, so none allocates, locks, panics or
//! touches thread-local storage that initialises lazily or registers a destructor. The one
//! thread-local is a `const`-initialised `Cell<isize>`: it has no initialiser to run and no
//! destructor (its type does not need dropping), so std compiles it to a plain `#[thread_local]`
//! slot that stays readable while a thread's other TLS destructors run.
//!
//! # How counting works
//!
//! A thread adds each request to its own pending delta. Only when the delta leaves the window
//! `-BATCH..=BATCH` is it added to the global atomic [`LIVE`] (all but half a batch, see
//! `settle`), so the shared cache line is written about once per 32 KiB of net allocation per
//! thread, and not at all while a thread's usage swings within a batch, instead of on every call
//! (one shared atomic written on every call costs several times `System` once two threads
//! allocate; `docs/performance/memory.md` has the figures).
//!
//! # Precision
//!
//! Each thread holds at most `BATCH` (64 KiB) unflushed, in either direction, so
//! [`live_bytes`] is within `threads x 64 KiB` of the exact sum of live requested sizes. The
//! hard limit is checked whenever a thread's pending delta would leave the window (and so on
//! every request larger than 128 KiB), against the global count plus that thread's pending
//! delta plus the request; the process can therefore exceed the hard limit by at most
//! `threads x 64 KiB`. Sizes are the requested `Layout::size()`, not the inner allocator's
//! rounded-up block sizes.
//!
//! # Threads that exit
//!
//! A thread's pending delta would be lost when it exits, and with many short-lived threads the
//! count would drift. So the first time a thread reaches the slow path it arms a pthread key
//! whose destructor flushes the delta at thread exit. Until the key is armed, the thread's
//! delta is flushed on every call (correct, only slower). The destructor leaves the thread
//! unarmed again, so allocations made by later TLS destructors re-arm it and glibc runs it once
//! more (up to `PTHREAD_DESTRUCTOR_ITERATIONS` rounds).

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use crate::sys::memory as sys;

/// Bytes a thread may hold unflushed in either direction.
pub const BATCH: usize = 64 * 1024;
const HALF_BATCH: isize = (BATCH / 2) as isize;

/// The pending value of a thread whose exit hook is not armed. It is far outside the window,
/// so the first call of every thread takes the slow path and arms it.
const UNARMED: isize = isize::MIN / 2;

/// `HARD`/`SOFT` value meaning "no limit".
pub(crate) const NO_LIMIT: usize = usize::MAX;

/// Sum of all flushed deltas: the process's live heap bytes minus what threads hold pending.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The hard limit in bytes, or [`NO_LIMIT`].
static HARD: AtomicUsize = AtomicUsize::new(NO_LIMIT);
/// The soft limit in bytes, or [`NO_LIMIT`].
static SOFT: AtomicUsize = AtomicUsize::new(NO_LIMIT);
/// The soft callback as a `fn()` address, or 0.
static SOFT_CALLBACK: AtomicUsize = AtomicUsize::new(0);
/// Whether the soft callback may fire on the next crossing.
static SOFT_ARMED: AtomicBool = AtomicBool::new(true);
/// Set by the first slow-path call of any `BudgetAllocator`.
static INSTALLED: AtomicBool = AtomicBool::new(false);

const KEY_NONE: usize = usize::MAX;
const KEY_BUSY: usize = usize::MAX - 1;
const KEY_FAILED: usize = usize::MAX - 2;
/// The pthread key whose destructor flushes a thread's delta, or one of the `KEY_*` states.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(KEY_NONE);

thread_local! {
    static PENDING: Cell<isize> = const { Cell::new(UNARMED) };
}

/// Whether a pending value may stay thread-local: one unsigned comparison covers both ends.
///
/// Async-signal-safe.
#[inline(always)]
fn in_window(v: isize) -> bool {
    v.cast_unsigned().wrapping_add(BATCH) <= 2 * BATCH
}

/// Charges `delta` (> 0 for growth, may be 0) to the calling thread, running `op` (the inner
/// allocator call) unless the hard limit refuses. A null from `op` leaves the count unchanged
/// and is recorded in the black box. `request` and `align` are what the caller asked for.
///
/// Async-signal-safe (if `op` is).
#[inline(always)]
pub(crate) fn charge(
    delta: isize,
    request: usize,
    align: usize,
    op: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    let mut op = Some(op);
    let r = PENDING.try_with(|c| {
        let old = c.get();
        let new = old.wrapping_add(delta);
        if in_window(new) {
            let p = op.take().map_or(std::ptr::null_mut(), |f| f());
            if p.is_null() {
                record_failure(request, align, old, false);
            } else {
                c.set(new);
            }
            p
        } else {
            charge_slow(c, old, delta, request, align, &mut op)
        }
    });
    match r {
        Ok(p) => p,
        // Const-initialised TLS without a destructor is never unavailable; this arm keeps the
        // path panic-free all the same by counting straight into the global.
        Err(_) => charge_global(delta, request, align, &mut op),
    }
}

/// Credits `delta` (>= 0) freed bytes to the calling thread.
///
/// Async-signal-safe.
#[inline(always)]
pub(crate) fn release(delta: isize) {
    let r = PENDING.try_with(|c| {
        let new = c.get().wrapping_sub(delta);
        if in_window(new) {
            c.set(new);
        } else {
            release_slow(c, delta);
        }
    });
    if r.is_err() {
        let now = LIVE.fetch_sub(delta, Ordering::Relaxed).wrapping_sub(delta);
        after_flush(now);
    }
}

/// The slow path of [`charge`]: arms the exit hook, checks the hard limit, flushes.
///
/// Async-signal-safe (if `op` is).
#[cold]
#[inline(never)]
fn charge_slow(
    c: &Cell<isize>,
    old: isize,
    delta: isize,
    request: usize,
    align: usize,
    op: &mut Option<impl FnOnce() -> *mut u8>,
) -> *mut u8 {
    let armed = old != UNARMED || arm_exit_hook();
    let base = if old == UNARMED { 0 } else { old };
    // i128 cannot overflow here: both terms are isize.
    let pending = base as i128 + delta as i128;
    if delta > 0 && over_hard_limit(pending) {
        c.set(if armed { base } else { UNARMED });
        record_failure(request, align, base, true);
        return std::ptr::null_mut();
    }
    let p = op.take().map_or(std::ptr::null_mut(), |f| f());
    if p.is_null() {
        c.set(if armed { base } else { UNARMED });
        record_failure(request, align, base, false);
        return p;
    }
    settle(c, armed, pending);
    p
}

/// The slow path of [`release`].
///
/// Async-signal-safe.
#[cold]
#[inline(never)]
fn release_slow(c: &Cell<isize>, delta: isize) {
    let old = c.get();
    let armed = old != UNARMED || arm_exit_hook();
    let base = if old == UNARMED { 0 } else { old };
    settle(c, armed, base as i128 - delta as i128);
}

/// Stores a thread's new pending value, flushing it to the global count when it is out of
/// the window or when the thread has no exit hook (so nothing is lost if it exits).
///
/// A flush keeps half a batch pending on the side it left the window from. A thread whose
/// usage swings up and down by more than a batch (a request handler that builds and drops
/// 100 KiB every time) would otherwise write the shared counter on every swing, which is the
/// contention this module exists to avoid; with the half batch kept it flushes once and then
/// swings inside the window. The bound on pending bytes stays `BATCH`.
///
/// Async-signal-safe.
fn settle(c: &Cell<isize>, armed: bool, pending: i128) {
    let pending =
        isize::try_from(pending).unwrap_or(if pending > 0 { isize::MAX } else { isize::MIN });
    if armed && in_window(pending) {
        c.set(pending);
        return;
    }
    let keep = match (armed, pending > 0) {
        (false, _) => 0,
        (true, true) => HALF_BATCH,
        (true, false) => -HALF_BATCH,
    };
    let flush = pending.wrapping_sub(keep);
    let now = LIVE.fetch_add(flush, Ordering::Relaxed).wrapping_add(flush);
    c.set(if armed { keep } else { UNARMED });
    after_flush(now.wrapping_add(keep));
}

/// [`charge`] without the thread-local, straight into the global count.
///
/// Async-signal-safe (if `op` is).
#[cold]
#[inline(never)]
fn charge_global(
    delta: isize,
    request: usize,
    align: usize,
    op: &mut Option<impl FnOnce() -> *mut u8>,
) -> *mut u8 {
    if delta > 0 && over_hard_limit(delta as i128) {
        record_failure(request, align, 0, true);
        return std::ptr::null_mut();
    }
    let p = op.take().map_or(std::ptr::null_mut(), |f| f());
    if p.is_null() {
        record_failure(request, align, 0, false);
    } else {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed).wrapping_add(delta);
        after_flush(now);
    }
    p
}

/// Whether adding `pending` to the global count would exceed the hard limit.
///
/// Async-signal-safe.
fn over_hard_limit(pending: i128) -> bool {
    let hard = HARD.load(Ordering::Relaxed);
    hard != NO_LIMIT && LIVE.load(Ordering::Relaxed) as i128 + pending > hard as i128
}

/// Bookkeeping after the global count changed: the installed flag and the soft threshold.
///
/// Async-signal-safe (if the registered soft callback is).
fn after_flush(live: isize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    let soft = SOFT.load(Ordering::Relaxed);
    if soft == NO_LIMIT {
        return;
    }
    let live = live.max(0).cast_unsigned();
    if live >= soft {
        if SOFT_ARMED.swap(false, Ordering::AcqRel) {
            let cb = SOFT_CALLBACK.load(Ordering::Acquire);
            if cb != 0 {
                // SAFETY: SOFT_CALLBACK only ever holds 0 or an address stored from a `fn()` by
                // `set_soft_callback`; function pointers and usize have the same size here.
                let f = unsafe { std::mem::transmute::<usize, fn()>(cb) };
                f();
            }
        }
    } else if live < soft - soft / 10 && !SOFT_ARMED.load(Ordering::Relaxed) {
        // Hysteresis: re-arm only after falling 10% below the threshold, so a count that
        // hovers around it does not fire the callback on every flush.
        SOFT_ARMED.store(true, Ordering::Release);
    }
}

/// Arms the calling thread's exit hook, creating the key on first use. Returns whether the
/// thread's pending delta may now be kept locally.
///
/// `pthread_key_create` and `pthread_setspecific` are not on POSIX's async-signal-safe list;
/// they are the one exception on the allocator path, taken once per thread, because they
/// never call back into Rust's allocator (see the `sys` module for what glibc and musl do).
/// The allocator is never called from a signal handler in crashguard, and the handler path
/// never reaches this function.
fn arm_exit_hook() -> bool {
    let mut key = EXIT_KEY.load(Ordering::Acquire);
    if key == KEY_NONE {
        if EXIT_KEY
            .compare_exchange(KEY_NONE, KEY_BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        key = sys::thread_exit_key_create(flush_at_thread_exit).unwrap_or(KEY_FAILED);
        EXIT_KEY.store(key, Ordering::Release);
    }
    if key == KEY_BUSY || key == KEY_FAILED {
        return false;
    }
    sys::thread_exit_key_arm(key)
}

/// The pthread key destructor: flushes the exiting thread's pending delta.
///
/// Async-signal-safe.
unsafe extern "C" fn flush_at_thread_exit(_: *mut c_void) {
    let _ = PENDING.try_with(|c| {
        let v = c.get();
        c.set(UNARMED);
        if v != UNARMED && v != 0 {
            let now = LIVE.fetch_add(v, Ordering::Relaxed).wrapping_add(v);
            after_flush(now);
        }
    });
}

/// Records a failed request in the black box: one the hard limit refused (`by_budget`) or a
/// null from the inner allocator. `pending` is the calling thread's unflushed count, part of
/// the live bytes reported.
///
/// Async-signal-safe.
#[cold]
#[inline(never)]
fn record_failure(request: usize, align: usize, pending: isize, by_budget: bool) {
    let pending = if pending == UNARMED { 0 } else { pending };
    let live = clamp_u64(LIVE.load(Ordering::Relaxed) as i128 + pending as i128);
    let budget = if by_budget {
        HARD.load(Ordering::Relaxed) as u64
    } else {
        u64::MAX
    };
    record(request, align, live, budget, by_budget);
}

/// Records a failed request in the armed black box, if any.
///
/// Async-signal-safe.
fn record(request: usize, align: usize, live: u64, budget: u64, by_budget: bool) {
    if let Some(bb) = crashguard_blackbox::active() {
        bb.record_alloc_failure(request as u64, align as u64, live, budget, by_budget);
    }
}

/// Async-signal-safe.
fn clamp_u64(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// Live heap bytes counted by `BudgetAllocator`: the global count plus the calling thread's
/// pending delta. Within `threads x 64 KiB` of exact; 0 when no `BudgetAllocator` ran.
///
/// Async-signal-safe.
pub fn live_bytes() -> u64 {
    let pending = PENDING.try_with(Cell::get).unwrap_or(0);
    let pending = if pending == UNARMED { 0 } else { pending };
    clamp_u64(LIVE.load(Ordering::Relaxed) as i128 + pending as i128)
}

/// Sets the hard limit: requests that would take live bytes above it get null (and Rust's
/// `handle_alloc_error` then aborts). `None` removes the limit.
///
/// Async-signal-safe.
pub fn set_hard_limit(bytes: Option<u64>) {
    HARD.store(limit_value(bytes), Ordering::Relaxed);
}

/// The hard limit in force, if any.
///
/// Async-signal-safe.
pub fn hard_limit() -> Option<u64> {
    let v = HARD.load(Ordering::Relaxed);
    (v != NO_LIMIT).then_some(v as u64)
}

/// Sets the soft limit: the soft callback runs once when live bytes cross it, and may run
/// again after they fell 10% below it. `None` removes it.
///
/// Async-signal-safe.
pub fn set_soft_limit(bytes: Option<u64>) {
    SOFT.store(limit_value(bytes), Ordering::Relaxed);
    SOFT_ARMED.store(true, Ordering::Release);
}

/// The soft limit in force, if any.
///
/// Async-signal-safe.
pub fn soft_limit() -> Option<u64> {
    let v = SOFT.load(Ordering::Relaxed);
    (v != NO_LIMIT).then_some(v as u64)
}

/// Registers the function called when the soft limit is crossed, or removes it.
///
/// Async-signal-safe.
///
/// # Safety
///
/// The callback runs *inside the allocator*, on whichever thread's allocation crossed the
/// threshold, so it must not allocate, lock or panic: set an atomic flag, write to a pipe or an
/// eventfd, and let another thread do the work.
pub unsafe fn set_soft_callback(callback: Option<fn()>) {
    SOFT_CALLBACK.store(callback.map_or(0, |f| f as usize), Ordering::Release);
}

/// Async-signal-safe.
fn limit_value(bytes: Option<u64>) -> usize {
    // A limit above the address space is no limit; NO_LIMIT itself is reserved.
    bytes.map_or(NO_LIMIT, |b| {
        usize::try_from(b).unwrap_or(NO_LIMIT - 1).min(NO_LIMIT - 1)
    })
}

/// Whether a `BudgetAllocator` is counting this process's allocations.
///
/// The flag is set by the allocator's slow path; to make sure that path ran, this makes one
/// allocation of twice the batch size through the global allocator first. The flag is
/// process-wide, so a program that calls a non-global `BudgetAllocator`'s methods directly
/// (as the benchmarks do) also reads `true`.
pub fn is_installed() -> bool {
    if !INSTALLED.load(Ordering::Relaxed) {
        let probe: Vec<u8> = Vec::with_capacity(2 * BATCH + 1);
        std::hint::black_box(&probe);
    }
    INSTALLED.load(Ordering::Relaxed)
}
