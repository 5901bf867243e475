//! The async-signal-safe writer: every method here is a handful of memory stores into the
//! mapping made at install, ordered so that a reader after a crash sees either the old or the new
//! value of a section, never a mix it would trust.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::assafe;
use crate::crc;
use crate::layout::{
    AllocFailure, Breadcrumb, Context, EXIT_CODE_UNKNOWN, End, Heartbeat, PanicRecord, Record,
    STATE_ENDED, ShutdownRecord,
};
use crate::outcome::Outcome;

/// The black box armed in this process, if any. Set once by [`BlackBox::arm`] and never freed:
/// a signal handler on another thread may be reading it at any moment.
static ACTIVE: AtomicPtr<BlackBox> = AtomicPtr::new(std::ptr::null_mut());

/// The black box of a guard that was dropped, still locked so that the exit watcher
/// (`exit_watch`) can amend its end with the status the process really exits with. Released
/// by the next [`crate::open_slot`] of this process.
static RETIRED: AtomicPtr<BlackBox> = AtomicPtr::new(std::ptr::null_mut());

/// How long a party that wants to end the process waits for another thread's claimed but
/// uncommitted end (a crash handler recording), in nanoseconds.
///
/// It stays a static of its own, outside the armed [`BlackBox`], because it is not a setting of
/// the box: it is the crash handler's time budget (the fatal handlers' watchdog timeout plus a
/// margin), set by `crashguard-signals`, whose installed state this crate cannot see (the
/// dependency points the other way). The box and the handlers are separate installations with
/// their own lifetimes: the handlers work without a box, and a box armed after they were
/// installed (or a retired box the exit watcher still amends) must wait just as long. Kept in
/// the box, the limit would hold only for a box armed before the install, and an exit on
/// another box would give up after the default while a crash handler is still within its
/// watchdog. Like the interposer's one static in `crashguard-signals`, it is a fact about the
/// process, read by every waiter whichever box it waits on.
static END_WAIT_NS: AtomicU64 = AtomicU64::new(5_000_000_000);

/// The box armed last (still after it was disarmed or retired: its mapping and descriptor stay
/// for the life of the process), for the fork handler: a child must neither write into the
/// parent's record nor hold the parent's slot lock. The handler takes the mapping, its length
/// and the descriptor from the box itself instead of from copies kept beside it.
static ARMED_LAST: AtomicPtr<BlackBox> = AtomicPtr::new(std::ptr::null_mut());

/// Runs in a child process right after `fork`: disarms the box, replaces the parent's mapping
/// with private memory and closes the child's copy of the slot's descriptor.
///
/// Async-signal-safe.
extern "C" fn disarm_in_fork_child() {
    ACTIVE.store(std::ptr::null_mut(), Ordering::Release);
    RETIRED.store(std::ptr::null_mut(), Ordering::Release);
    // The child's only thread is a new kernel thread with the forking thread's cache.
    assafe::forget_cached_tid();
    let last = ARMED_LAST.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: ARMED_LAST only ever holds null or a pointer from `Box::leak` in `arm`, never
    // freed.
    if let Some(bb) = unsafe { last.as_ref() } {
        crate::sys::detach_in_child(
            bb.base.cast(),
            crate::layout::file_size(bb.ring_capacity, bb.stack_capacity),
            bb._lock.as_raw_fd(),
        );
    }
}

/// The retired black box (see [`RETIRED`]), if any.
///
/// Async-signal-safe.
pub(crate) fn retired() -> Option<&'static BlackBox> {
    let p = RETIRED.load(Ordering::Acquire);
    // SAFETY: RETIRED only ever holds null or a pointer from `Box::leak` that was published in
    // ACTIVE before; such boxes are never freed.
    unsafe { p.as_ref() }
}

/// Releases the slot lock of the retired black box, if any: a new installation in this process
/// supersedes it, and may want the same slot.
pub(crate) fn release_retired() {
    let p = RETIRED.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: as in `retired`.
    if let Some(bb) = unsafe { p.as_ref() } {
        crate::sys::unlock(&bb._lock);
    }
}

/// Sets how long a thread that is about to end the process waits for a crash handler on
/// another thread to commit its record ([`BlackBox::wait_for_end`]); 5 s unless set. The
/// fatal handlers set it to their watchdog's timeout plus a margin.
///
/// Async-signal-safe.
pub fn set_end_wait_limit(limit: std::time::Duration) {
    END_WAIT_NS.store(
        u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// The black box armed in this process, if any.
///
/// Async-signal-safe.
pub fn active() -> Option<&'static BlackBox> {
    let p = ACTIVE.load(Ordering::Acquire);
    // SAFETY: ACTIVE only ever holds null or a pointer obtained from `Box::leak`, which is never
    // freed, so a non-null value is valid for 'static.
    unsafe { p.as_ref() }
}

/// A mapped, armed black-box file. Created by [`crate::open`]; lives for the rest of the process
/// once armed.
#[derive(Debug)]
pub struct BlackBox {
    base: *mut Record,
    pub(crate) ring: *mut Breadcrumb,
    pub(crate) ring_capacity: u32,
    /// The stack-copy area after the ring, `stack_capacity` bytes.
    stack: *mut u8,
    stack_capacity: u32,
    /// Tells this box from every other one made in the process (per-thread breadcrumb cursors
    /// remember which box their numbers belong to).
    pub(crate) generation: u64,
    /// The breadcrumb ring's counters (see `crumbs`), on cache lines of their own.
    pub(crate) shards: Box<crate::crumbs::Shards>,
    path: PathBuf,
    slot: u32,
    /// Holds the `flock` that reserves this slot for the life of the process; closing it (at
    /// exit, or by the kernel on a crash) releases the slot.
    _lock: OwnedFd,
}

/// Hands out [`BlackBox::generation`] values; 0 is never one.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

// SAFETY: the mapping is shared memory written only through the atomic protocols below
// (sequence locks, the end claim, per-entry breadcrumb sequence words); the raw pointers are
// valid for the life of the process.
unsafe impl Send for BlackBox {}
// SAFETY: as above; all `&self` methods coordinate through atomics in the mapping.
unsafe impl Sync for BlackBox {}

impl BlackBox {
    /// Wraps a mapping prepared by [`crate::open`].
    ///
    /// # Safety
    ///
    /// `base` must point to a writable shared mapping of at least
    /// `layout::file_size(ring_capacity, stack_capacity)` bytes that stays mapped for the life
    /// of the process.
    pub(crate) unsafe fn from_mapping(
        base: *mut u8,
        ring_capacity: u32,
        stack_capacity: u32,
        path: PathBuf,
        slot: u32,
        lock: OwnedFd,
    ) -> Self {
        // SAFETY: the caller guarantees the mapping is large enough for the record plus ring.
        let ring = unsafe { base.add(size_of::<Record>()) }.cast::<Breadcrumb>();
        // SAFETY: as above, plus the stack area after the ring.
        let stack = unsafe { base.add(crate::layout::stack_offset(ring_capacity)) };
        Self {
            base: base.cast(),
            ring,
            ring_capacity,
            stack,
            stack_capacity,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            shards: Box::new(crate::crumbs::Shards::new()),
            path,
            slot,
            _lock: lock,
        }
    }

    /// Makes this black box the process's active one and returns the `'static` reference that
    /// signal handlers and the allocator use. Fails (returning the box) if one is armed already.
    ///
    /// A child made by `fork` (without `exec`) is another process: its crash must not be
    /// recorded as this one's end, its writes must not reach this one's record, and it must not
    /// keep this one's slot locked after this one dies (the restart would miss the crash). So
    /// the mapping is marked `MADV_DONTFORK` (the child inherits no reference to the locked
    /// file description through it), and a fork handler disarms the box in every child, puts
    /// private memory where the mapping was and closes the child's copy of the descriptor.
    pub fn arm(self) -> Result<&'static BlackBox, BlackBox> {
        crate::sys::on_fork_child(disarm_in_fork_child);
        crate::exit_watch::watch();
        let leaked: &'static mut BlackBox = Box::leak(Box::new(self));
        let p: *mut BlackBox = leaked;
        match ACTIVE.compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let len = crate::layout::file_size(leaked.ring_capacity, leaked.stack_capacity);
                crate::sys::dont_fork(leaked.base.cast(), len);
                ARMED_LAST.store(p, Ordering::Release);
                Ok(leaked)
            }
            // SAFETY: `p` came from Box::leak just above and was never published.
            Err(_) => Err(*unsafe { Box::from_raw(p) }),
        }
    }

    /// Withdraws this black box from [`active`], so that a later `install()` may arm a new
    /// one. The mapping itself stays: a handler may still hold the reference.
    ///
    /// The box is retired, not released: its slot stays locked until the process ends, so
    /// that an `exit` with another status than the recorded one (a `main` that returns an
    /// error after dropping the guard) can still be recorded, and no other process reads the
    /// slot before that. The next `open` in this process releases the lock (the mapping keeps
    /// the locked file description alive, so without that a later `install()` in the same
    /// process would need a new slot each time and run out of them).
    pub fn disarm(&'static self) {
        let me = self as *const BlackBox as *mut BlackBox;
        let was_active = ACTIVE
            .compare_exchange(
                me,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if was_active {
            let previous = RETIRED.swap(me, Ordering::AcqRel);
            // SAFETY: as in `retired`.
            if let Some(old) = unsafe { previous.as_ref() } {
                crate::sys::unlock(&old._lock);
            }
        }
    }

    /// Records that the process is exiting with `status` (or [`EXIT_CODE_UNKNOWN`]): an
    /// `exit` end if nobody recorded one; the real status over a clean end recorded with
    /// another; after waiting for a claimed end another thread is still writing. Called by
    /// the exit watcher.
    ///
    /// Async-signal-safe.
    pub(crate) fn record_exit(&self, status: u32) {
        if let Some(mut w) = self.claim_end() {
            let end = w.end();
            end.detail_len = assafe::copy_bytes(
                &mut end.detail,
                b"the process called exit (std::process::exit, libc::exit or a return from main) without a crashguard shutdown: no shutdown hooks ran",
            );
            w.commit(Outcome::Exit, status);
            return;
        }
        self.wait_for_end();
        if status == EXIT_CODE_UNKNOWN || self.state() != STATE_ENDED {
            return;
        }
        let (outcome, code) = self.verdict();
        let clean_or_exit = matches!(
            Outcome::from_code(outcome),
            Some(Outcome::CleanExit | Outcome::Exit)
        );
        if clean_or_exit && code != status {
            self.overwrite_end(Some(Outcome::Exit), status);
        }
    }

    /// Waits, boundedly, while another thread holds an uncommitted claim on the `end` section:
    /// a crash handler that is recording. It ends the process itself when done, so a caller
    /// that is about to exit normally must not exit under it with a half-written record.
    /// Returns at once when the end is committed, unclaimed, or claimed by the calling thread.
    ///
    /// Async-signal-safe.
    pub fn wait_for_end(&self) {
        let me = assafe::gettid().max(1);
        let limit = END_WAIT_NS.load(Ordering::Relaxed);
        let start = assafe::now_monotonic_ns();
        loop {
            let claimant = self.claimant();
            if claimant == 0 || claimant == me {
                return;
            }
            // Uncommitted: someone is writing. Committed by a crash handler: it is about to end
            // the process (chaining, re-raising), and the status it ends with is the record's.
            if self.state() == STATE_ENDED && !self.ended_by_crash() {
                return;
            }
            if assafe::now_monotonic_ns().saturating_sub(start) >= limit {
                return;
            }
            crate::sys::exit::sleep_ns(1_000_000);
        }
    }

    /// Whether the committed `end` section was written by a fatal-signal handler (or its
    /// watchdog): a fatal signal, a handler failure, or the memory budget's abort.
    ///
    /// Async-signal-safe.
    fn ended_by_crash(&self) -> bool {
        // SAFETY: integer reads of the live mapping.
        let (outcome, signal) = unsafe { ((*self.base).end.outcome, (*self.base).end.signal) };
        match Outcome::from_code(outcome) {
            Some(Outcome::FatalSignal | Outcome::HandlerFailure) => true,
            Some(Outcome::MemoryBudget) => signal != 0,
            _ => false,
        }
    }

    /// The `end` section for the fatal-signal handler: a crash always wins over a clean end.
    ///
    /// Claims it when it is free. When another party committed an end that was not a crash (a
    /// clean exit recorded by a shutdown or a dropped guard, an `exit`, a shutdown outcome) and
    /// the process then crashed anyway (an `atexit` handler, a destructor after `Guard::exit`),
    /// the end is reopened for the crash: the claim is taken, the state word goes back to
    /// "running" (so that a death half-way is read as "killed without warning", never as the
    /// old clean end), and the section is cleared. When a normal thread holds the claim but has
    /// not committed (it is writing its end right now), this waits up to 100 ms for its commit
    /// first; its commit after the takeover is refused ([`EndWriter::commit`] checks the claim).
    /// `None` only when a crash record already stands.
    ///
    /// Async-signal-safe.
    pub fn claim_end_for_crash(&self) -> Option<EndWriter<'_>> {
        if let Some(w) = self.claim_end() {
            return Some(w);
        }
        let me = assafe::gettid().max(1);
        let start = assafe::now_monotonic_ns();
        while self.state() != STATE_ENDED
            && self.claimant() != me
            && assafe::now_monotonic_ns().saturating_sub(start) < 100_000_000
        {
            crate::sys::exit::sleep_ns(1_000_000);
        }
        if self.state() == STATE_ENDED && self.ended_by_crash() {
            return None;
        }
        // SAFETY: field projection of the live mapping.
        let claim = self.atomic_u32(unsafe { &raw mut (*self.base).claim });
        // The claimant may be this very thread: a shutdown that ran here recorded its clean
        // end, and then an `atexit` handler on this thread faulted.
        let current = claim.load(Ordering::Acquire);
        if claim
            .compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let (outcome, code) = self.verdict();
        let was_ended = self.state() == STATE_ENDED;
        self.amended().store(0, Ordering::Release);
        // SAFETY: field projection of the live mapping.
        let state = self.atomic_u32(unsafe { &raw mut (*self.base).state });
        state.store(crate::layout::STATE_RUNNING, Ordering::Release);
        let mut w = EndWriter { bb: self };
        let end = w.end();
        // SAFETY: `End` is integers and byte arrays; all zero is a valid value.
        unsafe { std::ptr::write_bytes(std::ptr::from_mut(end), 0, 1) };
        if was_ended {
            let mut line = assafe::LineBuf::<96>::new();
            line.push(b"crash after the end was recorded as ");
            match Outcome::from_code(outcome) {
                Some(o) => line.push(o.as_str().as_bytes()),
                None => line.dec(u64::from(outcome)),
            };
            line.push(b" (status ").dec(u64::from(code)).push(b")");
            // Safe to read back: the line is ASCII.
            if let Ok(text) = std::str::from_utf8(line.as_bytes()) {
                self.breadcrumb(text);
            }
        }
        Some(w)
    }

    /// Path of the black-box file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the record as it is now: [`crate::decode`] turns it into a report of the run
    /// so far without ending it (a panic that the process survives gets its own report this
    /// way). Bytes are read one by one with volatile loads, because other threads may be
    /// writing; a section caught half-written fails its sequence or checksum check in the
    /// decoder and is left out, never misread.
    pub fn snapshot(&self) -> Vec<u8> {
        let len = crate::layout::file_size(self.ring_capacity, self.stack_capacity);
        let base = self.base.cast::<u8>().cast_const();
        (0..len)
            // SAFETY: `base` points to a mapping of `file_size(ring_capacity, stack_capacity)`
            // bytes that stays mapped for the life of the process (the contract of
            // `from_mapping`), and `i < len`.
            .map(|i| unsafe { base.add(i).read_volatile() })
            .collect()
    }

    /// Which slot of the report directory this process holds.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Number of breadcrumbs the ring holds.
    pub fn ring_capacity(&self) -> u32 {
        self.ring_capacity
    }

    /// Async-signal-safe.
    fn atomic_u32(&self, field: *mut u32) -> &AtomicU32 {
        // SAFETY: `field` points into the live, suitably aligned mapping (all u32 fields of the
        // repr(C) record are 4-aligned and the mapping is page-aligned); every concurrent access
        // to such a field goes through an atomic.
        unsafe { AtomicU32::from_ptr(field) }
    }

    /// Runs `f` on a copy of a sequence-locked section and writes back every byte but the
    /// leading sequence word: that word only ever changes atomically, and no `&mut` to it
    /// exists while other threads may read it. `seq` must be the section's first field (the
    /// layout asserts it).
    ///
    /// Async-signal-safe.
    fn seq_write<T: Copy>(&self, seq: *mut u32, body: *mut T, f: impl FnOnce(&mut T)) -> bool {
        let seq = self.atomic_u32(seq);
        let cur = seq.load(Ordering::Relaxed);
        if cur & 1 == 1
            || seq
                .compare_exchange(
                    cur,
                    cur.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        // Order the odd value before the body's stores, as a reader checks it first.
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: the odd sequence value makes us the only writer of `body`, which lives in the
        // mapping for the life of the process; other threads only read it. Every field is an
        // integer or a byte array, so the copy is a valid `T`.
        let mut copy = unsafe { std::ptr::read_volatile(body) };
        f(&mut copy);
        let skip = size_of::<u32>();
        // SAFETY: both regions are `size_of::<T>()` bytes long and do not overlap (one is on the
        // stack, one in the mapping); the leading sequence word is left to the atomics.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&raw const copy).cast::<u8>().add(skip),
                body.cast::<u8>().add(skip),
                size_of::<T>() - skip,
            );
        }
        seq.store(cur.wrapping_add(2), Ordering::Release);
        true
    }

    /// The thread-name table in the mapping (see `thread_names`).
    pub(crate) fn thread_names(&self) -> *mut crate::layout::ThreadName {
        // SAFETY: a field projection of the live mapping.
        unsafe { (&raw mut (*self.base).thread_names).cast() }
    }

    /// Updates the heartbeat under its sequence lock. Fields `f` does not touch keep their last
    /// values. Returns `false`, writing nothing, if another writer is inside.
    ///
    /// Async-signal-safe (if `f` is).
    pub fn write_heartbeat(&self, f: impl FnOnce(&mut Heartbeat)) -> bool {
        let b = self.base;
        // SAFETY: field projections of the live mapping.
        let (seq, body) = unsafe { (&raw mut (*b).heartbeat.seq, &raw mut (*b).heartbeat) };
        self.seq_write(seq, body, f)
    }

    /// Updates the panic section under its sequence lock.
    ///
    /// Async-signal-safe (if `f` is).
    pub fn write_panic(&self, f: impl FnOnce(&mut PanicRecord)) -> bool {
        let b = self.base;
        // SAFETY: field projections of the live mapping.
        let (seq, body) = unsafe { (&raw mut (*b).panic.seq, &raw mut (*b).panic) };
        self.seq_write(seq, body, f)
    }

    /// Updates the shutdown section under its sequence lock.
    ///
    /// Async-signal-safe (if `f` is).
    pub fn write_shutdown(&self, f: impl FnOnce(&mut ShutdownRecord)) -> bool {
        let b = self.base;
        // SAFETY: field projections of the live mapping.
        let (seq, body) = unsafe { (&raw mut (*b).shutdown.seq, &raw mut (*b).shutdown) };
        self.seq_write(seq, body, f)
    }

    /// Records an allocation the budget refused or the inner allocator failed.
    ///
    /// Async-signal-safe.
    pub fn record_alloc_failure(
        &self,
        request: u64,
        align: u64,
        live: u64,
        budget: u64,
        by_budget: bool,
    ) {
        let b = self.base;
        // SAFETY: field projections of the live mapping.
        let (seq, body) = unsafe { (&raw mut (*b).alloc.seq, &raw mut (*b).alloc) };
        let tid = assafe::gettid();
        let now = assafe::now_realtime_ns();
        self.seq_write(seq, body, |a: &mut AllocFailure| {
            // The failure that matters is the first: std's out-of-memory hook may allocate (to
            // print a backtrace) and be refused again right after. A record from this thread
            // younger than a second stands.
            if a.valid != 0 && a.tid == tid && now.saturating_sub(a.at_ns) < 1_000_000_000 {
                return;
            }
            a.valid = 1;
            a.at_ns = now;
            a.request_bytes = request;
            a.align = align;
            a.live_bytes = live;
            a.budget_bytes = budget;
            a.tid = tid;
            a.by_budget = u32::from(by_budget);
        });
    }

    /// A copy of the last recorded allocation failure, if any (used by the SIGABRT path to tell
    /// an out-of-memory abort from other aborts).
    ///
    /// Async-signal-safe.
    pub fn alloc_failure(&self) -> Option<AllocFailure> {
        let b = self.base;
        // SAFETY: field projections of the live mapping.
        let seq = self.atomic_u32(unsafe { &raw mut (*b).alloc.seq });
        let before = seq.load(Ordering::Acquire);
        // SAFETY: a plain copy of integer fields; a torn copy is detected by the sequence check.
        let copy = unsafe { std::ptr::read_volatile(&raw const (*b).alloc) };
        std::sync::atomic::fence(Ordering::Acquire);
        (before & 1 == 0 && seq.load(Ordering::Relaxed) == before && copy.valid != 0)
            .then_some(copy)
    }

    /// Claims the right to write the `end` section. The first caller wins; later callers get
    /// `None` and must not write it. The claim records the caller's thread id.
    ///
    /// Async-signal-safe.
    pub fn claim_end(&self) -> Option<EndWriter<'_>> {
        let tid = assafe::gettid().max(1);
        // SAFETY: field projection of the live mapping.
        let claim = self.atomic_u32(unsafe { &raw mut (*self.base).claim });
        claim
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| EndWriter { bb: self })
    }

    /// The `end` section again for the thread that already holds the claim, whether or not it
    /// committed: the crash handler uses it to record its own failure (a fault inside the
    /// handler) over a half-written section.
    ///
    /// Async-signal-safe.
    pub fn reclaim_end(&self) -> Option<EndWriter<'_>> {
        let me = assafe::gettid().max(1);
        (self.claimant() == me).then_some(EndWriter { bb: self })
    }

    /// Takes the `end` section from whoever holds it, unless it was already committed. Only for
    /// a watchdog that has decided the claimant is stuck: the claimant may still be writing.
    ///
    /// Async-signal-safe.
    pub fn take_over_end(&self) -> Option<EndWriter<'_>> {
        if self.state() == STATE_ENDED {
            return None;
        }
        // SAFETY: field projection of the live mapping.
        let claim = self.atomic_u32(unsafe { &raw mut (*self.base).claim });
        claim.store(assafe::gettid().max(1), Ordering::Release);
        Some(EndWriter { bb: self })
    }

    /// Corrects the exit status of a committed `end` section, for the claimant only. The fatal
    /// handler uses it when the handler it chained to ended the process by another signal
    /// (std's stack-overflow handler aborts: the status is 134, not 139). The correction is
    /// one atomic store of the record's `amended` word; the checksummed section is untouched.
    ///
    /// Async-signal-safe.
    pub fn amend_exit_code(&self, exit_code: u32) -> bool {
        if self.claimant() != assafe::gettid().max(1) {
            return false;
        }
        self.overwrite_exit_code(exit_code)
    }

    /// Corrects the exit status of a committed `end` section whoever holds the claim: for the
    /// watchdog, which ends a process whose handler committed its record and then hung (in a
    /// chained handler, or writing to a blocked stderr) with the handler-failure code.
    ///
    /// Async-signal-safe.
    pub fn amend_exit_code_as_watchdog(&self, exit_code: u32) -> bool {
        self.overwrite_exit_code(exit_code)
    }

    /// Async-signal-safe.
    fn overwrite_exit_code(&self, exit_code: u32) -> bool {
        self.overwrite_end(None, exit_code)
    }

    /// Rewrites the outcome (when given) and the exit code of a committed `end` section.
    ///
    /// Async-signal-safe.
    fn overwrite_end(&self, outcome: Option<Outcome>, exit_code: u32) -> bool {
        if self.state() != STATE_ENDED {
            return false;
        }
        let (current, _) = self.verdict();
        let word = crate::layout::amend_word(outcome.map_or(current, Outcome::code), exit_code);
        // One atomic store: the committed, checksummed section is never rewritten, so there is
        // no moment at which a reader (or a death) sees it half amended.
        self.amended().store(word, Ordering::Release);
        true
    }

    /// The `amended` word of the record.
    ///
    /// Async-signal-safe.
    fn amended(&self) -> &AtomicU64 {
        // SAFETY: `amended` is an 8-aligned u64 of the live mapping (asserted in the layout);
        // every access to it is atomic.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.base).amended) }
    }

    /// The outcome code and exit status of the committed end, amendment included.
    ///
    /// Async-signal-safe.
    fn verdict(&self) -> (u32, u32) {
        if let Some(v) = crate::layout::amended(self.amended().load(Ordering::Acquire)) {
            return v;
        }
        // SAFETY: integer reads of the live mapping.
        unsafe { ((*self.base).end.outcome, (*self.base).end.exit_code) }
    }

    /// Thread id of the party that claimed the `end` section, or 0.
    ///
    /// Async-signal-safe.
    pub fn claimant(&self) -> u32 {
        // SAFETY: field projection of the live mapping.
        self.atomic_u32(unsafe { &raw mut (*self.base).claim })
            .load(Ordering::Acquire)
    }

    /// The current value of the state word.
    ///
    /// Async-signal-safe.
    pub fn state(&self) -> u32 {
        // SAFETY: field projection of the live mapping.
        self.atomic_u32(unsafe { &raw mut (*self.base).state })
            .load(Ordering::Acquire)
    }

    /// Monotonic time recorded at install, to compute durations.
    ///
    /// Async-signal-safe.
    pub fn started_mono_ns(&self) -> u64 {
        // SAFETY: written once at install, before the box was armed.
        unsafe { (*self.base).session.started_mono_ns }
    }
}

impl Drop for BlackBox {
    /// Only a box that was never armed is ever dropped (armed ones are leaked for the handlers),
    /// so unmapping here cannot pull memory from under a handler. The mapping holds a reference
    /// to the locked file description, so unmapping is also what releases the slot.
    fn drop(&mut self) {
        let len = crate::layout::file_size(self.ring_capacity, self.stack_capacity);
        // SAFETY: `base` is the start of a mapping of exactly `len` bytes made by `open`, and no
        // reference into it outlives `self` because the box was never published.
        unsafe { crate::sys::unmap(self.base.cast(), len) };
    }
}

/// The exclusive right to write the `end` section, from [`BlackBox::claim_end`].
#[derive(Debug)]
pub struct EndWriter<'a> {
    bb: &'a BlackBox,
}

impl EndWriter<'_> {
    /// The section to fill.
    ///
    /// Async-signal-safe.
    pub fn end(&mut self) -> &mut End {
        // SAFETY: the claim makes this writer the only one; the section lives in the mapping.
        unsafe { &mut (*self.bb.base).end }
    }

    /// The context section (registers and stack-copy description) that goes with this end; the
    /// fatal handler fills it, then calls [`EndWriter::seal_context`].
    ///
    /// Async-signal-safe.
    pub fn context(&mut self) -> &mut Context {
        // SAFETY: the claim makes this writer the only one; the section lives in the mapping.
        unsafe { &mut (*self.bb.base).context }
    }

    /// The stack-copy area (`Header::stack_capacity` bytes, possibly none).
    ///
    /// Async-signal-safe.
    pub fn stack_area(&mut self) -> &mut [u8] {
        // SAFETY: the area lies in the mapping after the ring (see `from_mapping`), and the claim
        // makes this writer its only user.
        unsafe { std::slice::from_raw_parts_mut(self.bb.stack, self.bb.stack_capacity as usize) }
    }

    /// Sums the copied stack bytes and checksums the context section; call after filling
    /// [`EndWriter::context`] and [`EndWriter::stack_area`] and before [`EndWriter::commit`].
    ///
    /// Async-signal-safe.
    pub fn seal_context(&mut self) {
        let len = (self.context().stack_len as usize).min(self.bb.stack_capacity as usize);
        let sum = crate::layout::stack_sum(self.stack_area().get(..len).unwrap_or(&[]));
        let ctx = self.context();
        ctx.stack_len = len as u32;
        ctx.stack_sum = sum;
        ctx.checksum = 0;
        let ptr: *const Context = ctx;
        // SAFETY: `Context` lives in the zero-filled mapping and has no padding; the slice
        // covers exactly the section.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size_of::<Context>()) };
        let crc = crc::crc32(bytes);
        self.context().checksum = crc;
    }

    /// Stamps the outcome, exit code and time, checksums the section, and stores the state word
    /// last, so a reader that sees `ENDED` sees a complete section.
    ///
    /// Async-signal-safe.
    pub fn commit(mut self, outcome: Outcome, exit_code: u32) {
        let end = self.end();
        end.outcome = outcome.code();
        end.exit_code = exit_code;
        end.ended_at_ns = assafe::now_realtime_ns();
        end.ended_mono_ns = assafe::now_monotonic_ns();
        if end.tid == 0 {
            end.tid = assafe::gettid();
            assafe::current_thread_name(&mut end.thread_name);
        }
        end.checksum = 0;
        let sum = end_checksum(end);
        self.end().checksum = sum;
        // A crash handler (or the watchdog) may have taken the claim over while this writer
        // filled the section: then its record is the one that stands.
        if self.bb.claimant() != assafe::gettid().max(1) {
            return;
        }
        // A correction belongs to the end it corrected, not to this one.
        self.bb.amended().store(0, Ordering::Release);
        let b = self.bb.base;
        // SAFETY: field projection of the live mapping.
        let state = self.bb.atomic_u32(unsafe { &raw mut (*b).state });
        state.store(STATE_ENDED, Ordering::Release);
    }
}

/// CRC-32 of an `end` section whose checksum field is zero.
///
/// Async-signal-safe.
fn end_checksum(end: &End) -> u32 {
    let ptr: *const End = end;
    // SAFETY: `End` lives in the file mapping, whose bytes (there is no padding) are all
    // initialised: the file was zero-filled when it was sized.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size_of::<End>()) };
    crc::crc32(bytes)
}
