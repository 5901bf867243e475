//! The breadcrumb writer: a lock-free ring shared by every thread, written in about twenty
//! nanoseconds and safe from signal handlers.
//!
//! # Cost
//!
//! A breadcrumb is meant for every request and every log line, so the common path has no
//! system call, no read-modify-write instruction (a locked instruction drains the store buffer,
//! which alone cost half the budget here) and touches nothing another thread writes:
//!
//! - the thread id comes from a per-thread cache ([`assafe::gettid_cached`]);
//! - the time is the kernel's tick-resolution wall clock (a vDSO page read, 1–4 ms
//!   resolution); entries are ordered by time, then by sequence number;
//! - the ring is split into up to [`MAX_SHARDS`] shards as writer threads appear: one thread
//!   has the whole ring, two threads half each, and so on, so two threads writing flat out do
//!   not pass cache lines back and forth. Each shard has its own counter, from which a thread
//!   claims sequence numbers in batches (twice as many each time it used up its last batch, up
//!   to [`MAX_BATCH`]; back to one when they went stale), so the counter is touched once per
//!   sixteen breadcrumbs by a busy thread and a thread that writes now and then leaves no gaps.
//!
//! A thread's breadcrumbs come out in the order it wrote them; different threads' are ordered
//! by the clock, and within one tick by their shards' sequence numbers.
//!
//! # Integrity
//!
//! Every entry carries a hash of its sequence word and body (see
//! [`crate::layout::Breadcrumb`]). A writer that finds its entry busy or holding a newer
//! breadcrumb takes a fresh number; a writer preempted for a whole lap *after* that check may
//! still write over a newer entry, but the result matches neither writer's hash and the reader
//! drops it: a breadcrumb is sometimes lost, never shown with another entry's text.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::assafe;
use crate::layout::{BREADCRUMB_TEXT_LEN, breadcrumb_hash};
use crate::writer::BlackBox;

/// The largest batch of sequence numbers a thread claims at once.
pub(crate) const MAX_BATCH: u64 = 16;

/// The most shards the ring is split into.
pub(crate) const MAX_SHARDS: u32 = 4;

/// What [`BlackBox::write_entry`] returns when it wrote (no sequence word is ever this value).
const WRITTEN: u64 = u64::MAX;

/// How often a breadcrumb looks for a free entry before giving up.
const ATTEMPTS: usize = 4;

/// One shard's counter, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct ShardCounter(AtomicU64);

/// The ring's shared counters, kept away from the fields every breadcrumb reads.
#[derive(Debug)]
pub(crate) struct Shards {
    counters: [ShardCounter; MAX_SHARDS as usize],
    /// Threads that wrote a breadcrumb into this box so far.
    writers: ShardWriters,
}

#[derive(Debug)]
#[repr(align(128))]
struct ShardWriters(AtomicU32);

impl Shards {
    pub(crate) const fn new() -> Shards {
        Shards {
            counters: [const { ShardCounter(AtomicU64::new(0)) }; MAX_SHARDS as usize],
            writers: ShardWriters(AtomicU32::new(0)),
        }
    }
}

/// A thread's place in one box's ring. `const`-initialised, no destructor: a plain
/// `#[thread_local]` slot (see `assafe::gettid_cached`).
struct Cursor {
    /// [`BlackBox::generation`] of the box the rest belongs to, or 0.
    generation: Cell<u64>,
    /// This thread's writer number in that box, and the shard it writes into.
    writer: Cell<u32>,
    shard: Cell<u32>,
    /// The next sequence number to use, and one past the last claimed.
    next: Cell<u64>,
    end: Cell<u64>,
    /// Ring index of `next`, and the shard's bounds.
    index: Cell<u32>,
    start: Cell<u32>,
    stop: Cell<u32>,
    /// Size of the next claim.
    batch: Cell<u64>,
}

thread_local! {
    static CURSOR: Cursor = const {
        Cursor {
            generation: Cell::new(0),
            writer: Cell::new(0),
            shard: Cell::new(0),
            next: Cell::new(0),
            end: Cell::new(0),
            index: Cell::new(0),
            start: Cell::new(0),
            stop: Cell::new(0),
            batch: Cell::new(1),
        }
    };
}

impl BlackBox {
    /// Records one breadcrumb; lock-free, safe from any thread and from signal handlers.
    /// Messages longer than the entry are truncated at a character boundary. A breadcrumb is
    /// dropped (never half-written) if four entries in a row are busy or newer.
    ///
    /// Async-signal-safe.
    pub fn breadcrumb(&self, msg: &str) {
        if self.ring_capacity == 0 {
            return;
        }
        let tid = assafe::gettid_cached();
        let at_ns = assafe::now_realtime_coarse_ns();
        let bytes = msg.as_bytes();
        let text = bytes
            .get(..assafe::utf8_prefix_len(bytes, BREADCRUMB_TEXT_LEN))
            .unwrap_or(&[]);
        let _ = CURSOR.try_with(|c| {
            for _ in 0..ATTEMPTS {
                let (n, index) = self.next_number(c);
                let found = self.write_entry(n, index, tid, at_ns, text);
                if found == WRITTEN {
                    return;
                }
                // Busy or lapped: these numbers are stale, and so is a big batch. An entry
                // numbered above this shard's counter was written under another shard layout
                // (before more writers appeared): move the counter past it.
                c.end.set(c.next.get());
                c.batch.set(1);
                if found & 1 == 0 {
                    self.shard_counter(c)
                        .fetch_max(found / 2, Ordering::Relaxed);
                }
            }
        });
    }

    /// The next sequence number of this thread and its ring index, claiming a batch from the
    /// thread's shard when it has none left.
    ///
    /// Async-signal-safe.
    #[inline]
    fn next_number(&self, c: &Cursor) -> (u64, u32) {
        if c.generation.get() != self.generation || c.next.get() >= c.end.get() {
            self.claim(c);
        }
        let n = c.next.get();
        let index = c.index.get();
        c.next.set(n + 1);
        let following = index + 1;
        c.index.set(if following >= c.stop.get() {
            c.start.get()
        } else {
            following
        });
        (n, index)
    }

    /// Claims a batch of sequence numbers from this thread's shard.
    ///
    /// Async-signal-safe.
    #[cold]
    fn claim(&self, c: &Cursor) {
        let shards = &self.shards;
        if c.generation.get() != self.generation {
            c.generation.set(self.generation);
            c.writer
                .set(shards.writers.0.fetch_add(1, Ordering::Relaxed));
            c.batch.set(1);
        }
        let writers = shards.writers.0.load(Ordering::Relaxed).max(1);
        let count = writers.min(MAX_SHARDS);
        let shard = c.writer.get() % count;
        let cap = u64::from(self.ring_capacity);
        let start = (cap * u64::from(shard) / u64::from(count)) as u32;
        let stop = (cap * u64::from(shard + 1) / u64::from(count)) as u32;
        let size = c.batch.get().clamp(1, MAX_BATCH);
        c.shard.set(shard);
        let first = self.shard_counter(c).fetch_add(size, Ordering::Relaxed);
        c.next.set(first);
        c.end.set(first + size);
        c.batch.set((size * 2).min(MAX_BATCH));
        c.start.set(start);
        c.stop.set(stop);
        let len = u64::from(stop - start).max(1);
        c.index.set(start + (first % len) as u32);
    }

    /// The counter of the thread's current shard.
    ///
    /// Async-signal-safe.
    fn shard_counter(&self, c: &Cursor) -> &AtomicU64 {
        let counters = &self.shards.counters;
        &counters
            .get(c.shard.get() as usize)
            .unwrap_or(&counters[0])
            .0
    }

    /// Writes breadcrumb `n` into entry `index` unless the entry is being written or holds a
    /// newer breadcrumb. Returns [`WRITTEN`], or the sequence word found in the entry.
    ///
    /// Async-signal-safe.
    #[inline]
    fn write_entry(&self, n: u64, index: u32, tid: u32, at_ns: u64, text: &[u8]) -> u64 {
        let index = index.min(self.ring_capacity - 1) as usize;
        // SAFETY: index < ring_capacity, and the ring holds ring_capacity entries.
        let entry = unsafe { self.ring.add(index) };
        // SAFETY: `seq` and `hash` are 8-aligned u64 fields of an entry inside the mapping
        // (entries are 128 bytes from a page-aligned, 8-aligned record); every access to them
        // is atomic, so readers never see half a word.
        let (seq, hash) = unsafe {
            (
                AtomicU64::from_ptr(&raw mut (*entry).seq),
                AtomicU64::from_ptr(&raw mut (*entry).hash),
            )
        };
        let writing = 2 * n + 1;
        let current = seq.load(Ordering::Relaxed);
        // Odd: another writer is inside (or was preempted there); at least ours: these numbers
        // were lapped (or come from a shard layout before more writers appeared). Either way,
        // take a fresh number rather than write over it.
        if current & 1 == 1 || current >= writing {
            return current;
        }
        seq.store(writing, Ordering::Relaxed);
        let len = text.len().min(BREADCRUMB_TEXT_LEN);
        let done = writing + 1;
        let h = breadcrumb_hash(done, at_ns, tid, len as u32, text);
        // The odd sequence word is ordered before the body, the body before the hash and the
        // even word. A writer that raced us on this entry leaves a body that matches neither
        // hash; the reader drops it.
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: plain stores of integers and bytes into the entry inside the mapping;
        // `len` <= BREADCRUMB_TEXT_LEN = text's size. Concurrent writers of the same entry are
        // detected through `hash`, never trusted.
        unsafe {
            (*entry).at_ns = at_ns;
            (*entry).tid = tid;
            (*entry).len = len as u32;
            std::ptr::copy_nonoverlapping(
                text.as_ptr(),
                (&raw mut (*entry).text).cast::<u8>(),
                len,
            );
        }
        hash.store(h, Ordering::Release);
        seq.store(done, Ordering::Release);
        WRITTEN
    }
}
