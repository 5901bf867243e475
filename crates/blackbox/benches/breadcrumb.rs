//! The cost of one breadcrumb, on one thread and on each of two threads writing at once, side
//! by side with two peers in the same run:
//!
//! - `crashguard`: what `crashguard::breadcrumb` does (the armed box from `active()`, then
//!   `BlackBox::breadcrumb`);
//! - `v1`: the previous writer, reproduced here — a `gettid` system call, the precise wall
//!   clock and one shared counter per call — to show where the time went;
//! - `mutex-ring`: what an application would write itself: a `Mutex` around a ring of
//!   fixed-size entries (not async-signal-safe, shown for scale).
//!
//! Times are the writing threads' CPU time (time spent descheduled on a shared machine does not
//! count; cache misses and contention between the two threads do). The numbers are interleaved: every round runs each
//! writer once (in rotating order) for a fixed number of calls, and the medians over rounds are
//! printed, with the ratios to `crashguard` on one thread. `cargo bench -p crashguard-blackbox
//! --bench breadcrumb`; `ROUNDS=n` and `CALLS=n` override the defaults.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use crashguard_blackbox::{Options, active, open};

const MESSAGE: &str = "handled GET /api/v1/orders/1234 in 3.2 ms (200)";

/// The previous writer: a syscall for the thread id, the precise clock, a shared counter.
struct V1 {
    next: AtomicU64,
    entries: Box<[[u64; 16]]>,
}

impl V1 {
    fn new() -> V1 {
        V1 {
            next: AtomicU64::new(0),
            entries: vec![[0u64; 16]; 256].into_boxed_slice(),
        }
    }

    fn write(&self, msg: &str) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let i = (n % self.entries.len() as u64) as usize;
        let entry = self.entries[i].as_ptr().cast_mut().cast::<u8>();
        // SAFETY: gettid has no arguments; clock_gettime writes one timespec.
        let (tid, ns) = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as u32;
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
            (tid, ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
        };
        // SAFETY: the entry starts 8-aligned (an array of u64); its first word is only
        // accessed atomically.
        let seq = unsafe { AtomicU64::from_ptr(entry.cast()) };
        seq.store(2 * n + 1, Ordering::Relaxed);
        // SAFETY: the entry is 128 bytes; the writes stay inside it. Concurrent writers of
        // the same entry only race on plain bytes of this scratch buffer, as v1 did.
        unsafe {
            entry.add(8).cast::<u64>().write_volatile(ns);
            entry.add(16).cast::<u32>().write_volatile(tid);
            let len = msg.len().min(104);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), entry.add(24), len);
        }
        let _ = seq.compare_exchange(2 * n + 1, 2 * n + 2, Ordering::Release, Ordering::Relaxed);
    }
}

// SAFETY: the entries are only written through raw pointers, racily by design (see `write`).
unsafe impl Sync for V1 {}

/// One entry of the mutex ring: sequence number and text.
type Entry = (u64, [u8; 104]);

/// A mutex around a ring of entries and the next index.
struct MutexRing {
    inner: Mutex<(usize, Vec<Entry>)>,
}

impl MutexRing {
    fn write(&self, msg: &str) {
        let mut text = [0u8; 104];
        let len = msg.len().min(104);
        text[..len].copy_from_slice(&msg.as_bytes()[..len]);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (next, ring) = &mut *g;
        let i = *next % ring.len();
        ring[i] = (*next as u64, text);
        *next += 1;
    }
}

#[derive(Clone, Copy)]
enum Writer {
    Crashguard,
    V1,
    MutexRing,
}

const WRITERS: [(Writer, &str); 3] = [
    (Writer::Crashguard, "crashguard"),
    (Writer::V1, "v1 (before)"),
    (Writer::MutexRing, "mutex-ring"),
];

struct Targets {
    v1: V1,
    mutex: MutexRing,
}

fn run(w: Writer, t: &Targets, calls: u64) {
    match w {
        Writer::Crashguard => {
            for _ in 0..calls {
                if let Some(bb) = active() {
                    bb.breadcrumb(black_box(MESSAGE));
                }
            }
        }
        Writer::V1 => (0..calls).for_each(|_| t.v1.write(black_box(MESSAGE))),
        Writer::MutexRing => (0..calls).for_each(|_| t.mutex.write(black_box(MESSAGE))),
    }
}

/// Nanoseconds per call on each of `threads` threads writing at once.
fn per_call(w: Writer, t: &'static Targets, threads: usize, calls: u64) -> f64 {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                run(w, t, 1000);
                start.wait();
                let t0 = thread_cpu_ns();
                run(w, t, calls);
                (thread_cpu_ns() - t0) as f64 / calls as f64
            })
        })
        .collect();
    let each: Vec<f64> = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .collect();
    each.iter().sum::<f64>() / each.len() as f64
}

/// Calls per chunk of the overlap measure.
const CHUNK: u64 = 256;

/// Progress (calls done) of one writer thread, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Progress(AtomicU64);

/// The overlap measure: medians of per-chunk wall time per call, counting for two threads only
/// the chunks during which the other thread finished one or two chunks of its own — moments when
/// both really ran at once, which a machine shared with other jobs seldom gives a whole run.
/// Returns (ns per call, share of chunks that overlapped).
fn overlapped_per_call(w: Writer, t: &'static Targets, threads: usize, calls: u64) -> (f64, f64) {
    let progress: &'static [Progress; 2] = Box::leak(Box::default());
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|me| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                run(w, t, 1000);
                start.wait();
                let other = &progress[1 - me].0;
                let mut kept = Vec::new();
                let mut chunks = 0u64;
                for done in (0..calls / CHUNK).map(|c| (c + 1) * CHUNK) {
                    let before = other.load(Ordering::Relaxed);
                    let t0 = monotonic_ns();
                    run(w, t, CHUNK);
                    let ns = monotonic_ns() - t0;
                    let after = other.load(Ordering::Relaxed);
                    progress[me].0.store(done, Ordering::Relaxed);
                    chunks += 1;
                    // One or two of the other's chunks ended during this one: both ran. More
                    // means this thread was descheduled while the other ran.
                    if threads == 1 || (CHUNK..=2 * CHUNK).contains(&(after - before)) {
                        kept.push(ns as f64 / CHUNK as f64);
                    }
                }
                (kept, chunks)
            })
        })
        .collect();
    let mut kept = Vec::new();
    let mut chunks = 0;
    for h in handles {
        let (k, c) = h.join().expect("bench thread");
        kept.extend(k);
        chunks += c;
    }
    if kept.is_empty() {
        return (f64::NAN, 0.0);
    }
    let share = kept.len() as f64 / chunks as f64;
    (median(&mut kept), share)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the calling thread: time spent descheduled (the machine is shared) does not
/// count, cache misses and contention do.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The median of the numbers that are not NaN (a round with no overlapped chunk gives NaN);
/// NaN when there are none.
fn median(v: &mut [f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = env("ROUNDS", if quick { 2 } else { 15 }) as usize;
    let calls = env("CALLS", if quick { 10_000 } else { 2_000_000 });
    let dir = std::env::temp_dir().join(format!("cg-bench-crumbs-{}", std::process::id()));
    let opened = open(
        &dir,
        &Options {
            ring_capacity: 256,
            ..Options::new("bench")
        },
    )
    .expect("open a black box");
    let _armed = opened.blackbox.arm().expect("arm");
    let targets: &'static Targets = Box::leak(Box::new(Targets {
        v1: V1::new(),
        mutex: MutexRing {
            inner: Mutex::new((0, vec![(0, [0u8; 104]); 256])),
        },
    }));

    // `ONLY=crashguard` runs one writer, `THREADS=1` or `THREADS=2` one thread count (for a
    // profiler, or callgrind's instruction count per call on one thread and on two).
    let only = std::env::var("ONLY").ok();
    let threads_only = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse::<u32>().ok());
    let mut one = vec![Vec::new(); WRITERS.len()];
    let mut two = vec![Vec::new(); WRITERS.len()];
    let mut lap_one = vec![Vec::new(); WRITERS.len()];
    let mut lap_two = vec![Vec::new(); WRITERS.len()];
    let mut lap_share = vec![Vec::new(); WRITERS.len()];
    for round in 0..rounds {
        for k in 0..WRITERS.len() {
            let i = (k + round) % WRITERS.len();
            if only
                .as_deref()
                .is_some_and(|o| !WRITERS[i].1.starts_with(o))
            {
                one[i].push(f64::NAN);
                two[i].push(f64::NAN);
                continue;
            }
            if threads_only != Some(2) {
                one[i].push(per_call(WRITERS[i].0, targets, 1, calls));
                lap_one[i].push(overlapped_per_call(WRITERS[i].0, targets, 1, calls).0);
            }
            if threads_only != Some(1) {
                two[i].push(per_call(WRITERS[i].0, targets, 2, calls));
                let (ns, share) = overlapped_per_call(WRITERS[i].0, targets, 2, calls);
                lap_two[i].push(ns);
                lap_share[i].push(share);
            }
        }
    }
    let base = median(&mut one[0].clone());
    println!("breadcrumb: {rounds} interleaved rounds of {calls} calls per thread, medians");
    println!(
        "| writer | 1 thread (ns/call) | 2 threads (ns/call, each) | 2 threads / 1 thread | vs crashguard, 1 thread |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, (_, name)) in WRITERS.iter().enumerate() {
        let a = median(&mut one[i]);
        let b = median(&mut two[i]);
        println!(
            "| {name} | {a:.1} | {b:.1} | {:.2}x | {:.2}x |",
            b / a,
            a / base
        );
    }
    println!();
    println!(
        "overlap measure: per-chunk ({CHUNK} calls) wall time, medians; two threads count only chunks the other thread overlapped"
    );
    println!(
        "| writer | 1 thread (ns/call) | 2 threads, overlapped chunks (ns/call) | 2 / 1 | chunks overlapped |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, (_, name)) in WRITERS.iter().enumerate() {
        let a = median(&mut lap_one[i]);
        let b = median(&mut lap_two[i]);
        // The mean share over rounds: how much of the two-thread time the median is drawn from.
        let share = lap_share[i].iter().sum::<f64>() / lap_share[i].len().max(1) as f64;
        if b.is_nan() {
            println!("| {name} | {a:.1} | no overlapped chunk | — | 0 % |");
        } else {
            println!(
                "| {name} | {a:.1} | {b:.1} | {:.2}x | {:.0} % |",
                b / a,
                share * 100.0
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
