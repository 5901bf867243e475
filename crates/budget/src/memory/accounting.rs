//! The allocator's live-byte accounting: per-thread allowances settled into one global counter.
//!
//! Every function here runs inside the global allocator, so none allocates, locks, panics or
//! touches thread-local storage that initialises lazily or registers a destructor. The
//! thread-local is a `const`-initialised struct of `Cell`s: it has no initialiser to run and no
//! destructor (its type does not need dropping), so std compiles it to a plain `#[thread_local]`
//! slot that stays readable while a thread's other TLS destructors run.
//!
//! # How counting works
//!
//! Each thread has two allowances, both [`BATCH`] bytes after every settlement: what it may
//! still allocate, and what it may still free, before it must settle with the global atomic
//! [`LIVE`]. The fast path of an allocation is one subtraction from the first allowance and a
//! branch on its borrow; of a free, the same on the second (`sub` + `jb` on x86-64: about four
//! instructions per allocation-and-free pair, measured with callgrind). The thread's
//! unsettled count is `free - alloc`; the slow path (an allowance ran out, a request larger
//! than what is left, the thread's first call) adds it and the request to [`LIVE`], checks the
//! hard limit, and refills both allowances. So the shared cache line is written once per 64 KiB
//! allocated or freed per thread, instead of on every call (one shared atomic costs 7-26x once
//! two threads allocate).
//!
//! # Precision
//!
//! A thread holds at most `BATCH` (64 KiB) unsettled in either direction, so [`live_bytes`] is
//! within `threads x 64 KiB` of the exact sum of live requested sizes. The hard limit is
//! checked on every settlement (and so on every request larger than what is left of the
//! allowance, in particular every request over 64 KiB), against the global count plus that
//! thread's unsettled count plus the request; the process can therefore exceed the hard limit
//! by at most `threads x 64 KiB`. Sizes are the requested `Layout::size()`, not the inner
//! allocator's rounded-up block sizes.
//!
//! The fast path does not look at the inner allocator's result: a request that fits in the
//! allowance and that the inner allocator fails (the system is out of memory, not the budget)
//! stays counted (at most 64 KiB each) and is not recorded in the black box; Rust then aborts,
//! or hands `try_reserve` its `Err`. Requests that reach the slow path are checked: a failure
//! there leaves the count unchanged and is recorded.
//!
//! # Threads that exit
//!
//! A thread's unsettled count would be lost when it exits, and with many short-lived threads
//! the count would drift. So the first time a thread reaches the slow path it arms a pthread key
//! whose destructor settles it at thread exit. Until the key is armed, the thread has no
//! allowance and settles on every call (correct, only slower). The destructor leaves the thread
//! unarmed again, so allocations made by later TLS destructors re-arm it and glibc runs it once
//! more (up to `PTHREAD_DESTRUCTOR_ITERATIONS` rounds).
//!
//! # Refusals
//!
//! A request refused by the budget, or failed by the inner allocator on the slow path, marks the
//! thread in `crashguard_blackbox::refusal` and empties its allowances, so that its next
//! allocator call, whatever it is, takes the slow path and clears the mark: only an abort that
//! follows the refusal directly, on that thread, is the memory budget's.

use std::cell::Cell;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicUsize, Ordering};

use crate::sys::memory as sys;

/// Bytes a thread may allocate, and free, before it settles with the global count.
pub const BATCH: usize = 64 * 1024;

/// A limit of [`Limits`] meaning "no limit".
pub(crate) const NO_LIMIT: usize = usize::MAX;

/// The limits in force, as the slow path reads them: one immutable value, published whole by
/// [`install_limits`] (and put back by its guard's drop) with one release store, read with one
/// acquire load. Published values are leaked, never freed: an allocation on another thread may
/// be reading one at any moment (24 bytes per `install_limits`).
struct Limits {
    /// The hard limit in bytes, or [`NO_LIMIT`].
    hard: usize,
    /// The soft limit in bytes, or [`NO_LIMIT`].
    soft: usize,
    /// Called once per crossing of `soft`.
    on_soft: Option<SoftCallback>,
}

/// No limits: the value in force until the first [`install_limits`].
static NO_LIMITS: Limits = Limits {
    hard: NO_LIMIT,
    soft: NO_LIMIT,
    on_soft: None,
};

/// The limits in force: `NO_LIMITS` or a value leaked by [`install_limits`].
static LIMITS: AtomicPtr<Limits> = AtomicPtr::new((&raw const NO_LIMITS).cast_mut());

// What the allocator itself changes while it counts stays outside that value, on purpose: the
// count (`LIVE`), the soft threshold's hysteresis (`SOFT_ARMED`), whether a `BudgetAllocator`
// ever ran (`INSTALLED`, an observation, not a setting) and the exit key. They are not settings
// that anyone installs.

/// Sum of all settled counts: the process's live heap bytes minus what threads hold unsettled.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Whether the soft callback may fire on the next crossing.
static SOFT_ARMED: AtomicBool = AtomicBool::new(true);
/// Set by the first slow-path call of any `BudgetAllocator`.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The limits in force.
///
/// Async-signal-safe.
fn current() -> &'static Limits {
    // SAFETY: LIMITS only ever holds the address of NO_LIMITS or of a value leaked by
    // `install_limits`, never freed, so it is valid for 'static.
    unsafe { &*LIMITS.load(Ordering::Acquire) }
}

const KEY_NONE: usize = usize::MAX;
const KEY_BUSY: usize = usize::MAX - 1;
const KEY_FAILED: usize = usize::MAX - 2;
/// The pthread key whose destructor settles a thread's count, or one of the `KEY_*` states.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(KEY_NONE);

/// A thread's allowances. Both are 0 while the thread is unarmed or just refused, so every call
/// takes the slow path.
struct Allowance {
    /// Bytes the thread may still allocate before it settles.
    alloc: Cell<usize>,
    /// Bytes the thread may still free before it settles.
    free: Cell<usize>,
    /// Whether the thread's exit hook is armed (the allowances may hold an unsettled count).
    armed: Cell<bool>,
}

thread_local! {
    static ALLOWANCE: Allowance = const {
        Allowance {
            alloc: Cell::new(0),
            free: Cell::new(0),
            armed: Cell::new(false),
        }
    };
}

/// The fast path of an allocation of `size` bytes: takes them from the thread's allowance.
/// `false` means the caller must take [`charge_slow`] (the allowance is left decremented,
/// wrapped; the slow path restores it).
///
/// Async-signal-safe.
#[inline(always)]
pub(crate) fn take(size: usize) -> bool {
    ALLOWANCE
        .try_with(|a| {
            let left = a.alloc.get();
            let (rest, borrow) = left.overflowing_sub(size);
            a.alloc.set(rest);
            !borrow
        })
        .unwrap_or(false)
}

/// The fast path of a free of `size` bytes. `false` means the caller must take
/// [`release_slow`].
///
/// Async-signal-safe.
#[inline(always)]
pub(crate) fn give(size: usize) -> bool {
    ALLOWANCE
        .try_with(|a| {
            let left = a.free.get();
            let (rest, borrow) = left.overflowing_sub(size);
            a.free.set(rest);
            !borrow
        })
        .unwrap_or(false)
}

/// Returns `size` bytes taken by [`take`] for a request the inner allocator then failed (a
/// growing `realloc`), and records the failure.
///
/// Async-signal-safe.
#[cold]
#[inline(never)]
pub(crate) fn untake(size: usize, request: usize, align: usize) {
    let _ = ALLOWANCE.try_with(|a| a.alloc.set(a.alloc.get().wrapping_add(size)));
    record_failure(request, align, 0, false);
}

/// The thread's unsettled count (`free - alloc` allowance), after undoing the decrement that
/// sent `alloc_undo` / `free_undo` bytes to the slow path.
///
/// Async-signal-safe.
fn unsettled(a: &Allowance, alloc_undo: usize, free_undo: usize) -> i128 {
    if !a.armed.get() {
        return 0;
    }
    let alloc = a.alloc.get().wrapping_add(alloc_undo);
    let free = a.free.get().wrapping_add(free_undo);
    // Both are at most BATCH while armed.
    free as i128 - alloc as i128
}

/// Refills the allowances of a thread that settled (none while unarmed).
///
/// Async-signal-safe.
fn refill(a: &Allowance) {
    let n = if a.armed.get() { BATCH } else { 0 };
    a.alloc.set(n);
    a.free.set(n);
}

/// The slow path of an allocation of `size` bytes (after [`take`] said no): settles, checks
/// the hard limit, runs `op` (the inner allocator call). A null from `op` leaves the count
/// unchanged and is recorded in the black box. `request` and `align` are what the caller asked
/// for (`size` is 0 for a shrinking `realloc`).
///
/// Async-signal-safe (if `op` is), except for arming the exit hook (see [`arm_exit_hook`]).
#[cold]
#[inline(never)]
pub(crate) fn charge_slow(
    size: usize,
    request: usize,
    align: usize,
    op: impl FnOnce() -> *mut u8,
) -> *mut u8 {
    let mut op = Some(op);
    let r = ALLOWANCE.try_with(|a| {
        crashguard_blackbox::refusal::clear_refused();
        let pending = unsettled(a, size, 0);
        if !a.armed.get() && arm_exit_hook() {
            a.armed.set(true);
        }
        let total = pending + size as i128;
        if size > 0 && over_hard_limit(total) {
            settle(pending);
            // No allowance until the next call, which clears the mark.
            a.alloc.set(0);
            a.free.set(0);
            crashguard_blackbox::refusal::mark_refused();
            record_failure(request, align, 0, true);
            return std::ptr::null_mut();
        }
        let p = op.take().map_or(std::ptr::null_mut(), |f| f());
        if p.is_null() {
            // The inner allocator (the kernel, under RLIMIT_AS or a strict overcommit policy)
            // refused: the abort that follows is the same out-of-memory end.
            settle(pending);
            a.alloc.set(0);
            a.free.set(0);
            crashguard_blackbox::refusal::mark_refused();
            record_failure(request, align, 0, false);
            return p;
        }
        settle(total);
        refill(a);
        p
    });
    match r {
        Ok(p) => p,
        // Const-initialised TLS without a destructor is never unavailable; this arm keeps the
        // path panic-free all the same by counting straight into the global.
        Err(_) => charge_global(size as isize, request, align, &mut op),
    }
}

/// The slow path of a free of `size` bytes (after [`give`] said no).
///
/// Async-signal-safe, except for arming the exit hook (see [`arm_exit_hook`]).
#[cold]
#[inline(never)]
pub(crate) fn release_slow(size: usize) {
    let r = ALLOWANCE.try_with(|a| {
        crashguard_blackbox::refusal::clear_refused();
        let pending = unsettled(a, 0, size);
        if !a.armed.get() && arm_exit_hook() {
            a.armed.set(true);
        }
        settle(pending - size as i128);
        refill(a);
    });
    if r.is_err() {
        let d = isize::try_from(size).unwrap_or(isize::MAX);
        let now = LIVE.fetch_sub(d, Ordering::Relaxed).wrapping_sub(d);
        after_flush(now);
    }
}

/// Adds a thread's settled count to the global one.
///
/// Async-signal-safe.
fn settle(delta: i128) {
    if delta == 0 {
        return;
    }
    let d = isize::try_from(delta).unwrap_or(if delta > 0 { isize::MAX } else { isize::MIN });
    let now = LIVE.fetch_add(d, Ordering::Relaxed).wrapping_add(d);
    after_flush(now);
}

/// [`charge_slow`] without the thread-local, straight into the global count.
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
    let hard = current().hard;
    hard != NO_LIMIT && LIVE.load(Ordering::Relaxed) as i128 + pending > hard as i128
}

/// Bookkeeping after the global count changed: the installed flag and the soft threshold.
///
/// Async-signal-safe (if the registered soft callback is).
fn after_flush(live: isize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    let limits = current();
    let soft = limits.soft;
    if soft == NO_LIMIT {
        return;
    }
    let live = live.max(0).cast_unsigned();
    if live >= soft {
        if SOFT_ARMED.swap(false, Ordering::AcqRel)
            && let Some(callback) = limits.on_soft
        {
            (callback.0)();
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

/// The pthread key destructor: settles the exiting thread's count.
///
/// Async-signal-safe.
unsafe extern "C" fn flush_at_thread_exit(_: *mut c_void) {
    let _ = ALLOWANCE.try_with(|a| {
        let pending = unsettled(a, 0, 0);
        a.armed.set(false);
        refill(a);
        settle(pending);
    });
}

/// Records a failed request in the black box: one the hard limit refused (`by_budget`) or a
/// null from the inner allocator. `pending` is the calling thread's unsettled count, part of
/// the live bytes reported (0 once it was settled).
///
/// Async-signal-safe.
#[cold]
#[inline(never)]
fn record_failure(request: usize, align: usize, pending: isize, by_budget: bool) {
    let live = clamp_u64(LIVE.load(Ordering::Relaxed) as i128 + pending as i128);
    let budget = if by_budget {
        current().hard as u64
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
    let pending = ALLOWANCE.try_with(|a| unsettled(a, 0, 0)).unwrap_or(0);
    clamp_u64(LIVE.load(Ordering::Relaxed) as i128 + pending)
}

/// The allocator's limits, installed together with [`install_limits`].
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct AllocatorLimits {
    /// Requests that would take live bytes above this get null (and Rust's
    /// `handle_alloc_error` then aborts). `None`: no hard limit.
    pub hard: Option<u64>,
    /// [`AllocatorLimits::on_soft`] runs once when live bytes cross this, and may run again
    /// after they fell 10% below it. `None`: no soft limit.
    pub soft: Option<u64>,
    /// Called when the soft limit is crossed.
    pub on_soft: Option<SoftCallback>,
}

impl AllocatorLimits {
    /// No limits.
    pub const NONE: AllocatorLimits = AllocatorLimits {
        hard: None,
        soft: None,
        on_soft: None,
    };

    /// Sets [`AllocatorLimits::hard`].
    pub fn hard(mut self, bytes: u64) -> Self {
        self.hard = Some(bytes);
        self
    }

    /// Sets [`AllocatorLimits::soft`].
    pub fn soft(mut self, bytes: u64) -> Self {
        self.soft = Some(bytes);
        self
    }

    /// Sets [`AllocatorLimits::on_soft`].
    pub fn on_soft(mut self, callback: SoftCallback) -> Self {
        self.on_soft = Some(callback);
        self
    }
}

/// The function [`AllocatorLimits::on_soft`] calls, made with the unsafe [`SoftCallback::new`]
/// because of where it runs.
#[derive(Clone, Copy)]
pub struct SoftCallback(fn());

impl SoftCallback {
    /// Wraps `f`.
    ///
    /// # Safety
    ///
    /// `f` runs *inside the allocator*, on whichever thread's allocation crossed the threshold,
    /// so it must not allocate, lock or panic: set an atomic flag, write to a pipe or an
    /// eventfd, and let another thread do the work.
    pub const unsafe fn new(f: fn()) -> SoftCallback {
        SoftCallback(f)
    }
}

impl fmt::Debug for SoftCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftCallback")
    }
}

/// Puts `limits` in force for every `BudgetAllocator` of the process, as one value, until the
/// returned guard is dropped; the guard then puts back the limits that were in force before
/// (guards dropped in reverse order restore each other's). Re-arms the soft callback.
pub fn install_limits(limits: AllocatorLimits) -> InstalledLimits {
    let value: &'static Limits = Box::leak(Box::new(Limits {
        hard: limit_value(limits.hard),
        soft: limit_value(limits.soft),
        on_soft: limits.on_soft,
    }));
    let previous = LIMITS.swap((value as *const Limits).cast_mut(), Ordering::AcqRel);
    SOFT_ARMED.store(true, Ordering::Release);
    InstalledLimits { previous }
}

/// The limits in force now.
///
/// Async-signal-safe.
pub fn limits() -> AllocatorLimits {
    let l = current();
    let value = |v: usize| (v != NO_LIMIT).then_some(v as u64);
    AllocatorLimits {
        hard: value(l.hard),
        soft: value(l.soft),
        on_soft: l.on_soft,
    }
}

/// The limits of one [`install_limits`]; dropping it puts back the ones in force before.
#[must_use = "dropping it removes the limits again"]
pub struct InstalledLimits {
    previous: *mut Limits,
}

// SAFETY: `previous` points to `NO_LIMITS` or to a leaked, immutable `Limits`, which any
// thread may read.
unsafe impl Send for InstalledLimits {}
// SAFETY: as for Send; the guard has no interior mutability.
unsafe impl Sync for InstalledLimits {}

impl fmt::Debug for InstalledLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstalledLimits").finish_non_exhaustive()
    }
}

impl Drop for InstalledLimits {
    fn drop(&mut self) {
        LIMITS.store(self.previous, Ordering::Release);
        SOFT_ARMED.store(true, Ordering::Release);
    }
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
