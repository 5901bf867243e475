//! The accounting cost of `BudgetAllocator` side by side with plain `System`, `cap::Cap` and
//! `stats_alloc::StatsAlloc`, on one thread and on two threads allocating at once.
//!
//! A binary has only one `#[global_allocator]`, so each allocator here is a `static` whose
//! `GlobalAlloc` methods the workload calls directly. That measures exactly what differs
//! between them (the accounting around the inner `System` call); the benchmark process's own
//! global allocator stays the default one.
//!
//! One unit of work is the mix the issue names: 64 live objects of 16 B, 256 B and 4 KiB,
//! a block grown by `realloc` from 64 B to 8 KiB, and everything freed again.
//!
//! The build machine is shared, and load from other jobs shifts criterion's sequential
//! measurements by more than the differences measured here. So before the criterion groups the
//! bench also runs an interleaved comparison: in each of many short rounds every allocator
//! runs the same number of units back to back (in rotating order), and the median of the
//! per-round ratios to `System` is printed. Load changes slowly compared with a round, so it
//! cancels out of each ratio.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cap::Cap;
use crashguard_budget::memory::BudgetAllocator;
use criterion::{Criterion, criterion_group};
use stats_alloc::StatsAlloc;

static SYSTEM: System = System;
static BUDGET: BudgetAllocator<System> = BudgetAllocator::new(System);
static CAP: Cap<System> = Cap::new(System, usize::MAX);
static STATS: StatsAlloc<System> = StatsAlloc::system();

const SIZES: [usize; 3] = [16, 256, 4096];
const LIVE: usize = 64;

/// One unit of work against `a`.
fn unit<A: GlobalAlloc>(a: &A) {
    let mut live = [(std::ptr::null_mut::<u8>(), 0usize); LIVE];
    for (i, slot) in live.iter_mut().enumerate() {
        let size = SIZES[i % SIZES.len()];
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size; the block is freed below with the same layout.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` points to at least one writable byte.
        unsafe { p.write(i as u8) };
        *slot = (p, size);
    }
    let mut size = 64;
    let mut layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let mut grown = unsafe { a.alloc(layout) };
    while size < 8192 {
        let new_size = size * 2;
        // SAFETY: `grown` came from `a` with `layout`; the new size is non-zero and small.
        grown = unsafe { a.realloc(grown, layout, new_size) };
        assert!(!grown.is_null());
        size = new_size;
        layout = Layout::from_size_align(size, 8).unwrap();
    }
    black_box(grown);
    // SAFETY: allocated above with `layout`.
    unsafe { a.dealloc(grown, layout) };
    for (p, size) in live {
        black_box(p);
        // SAFETY: each block was allocated above with this size and alignment 8.
        unsafe { a.dealloc(p, Layout::from_size_align(size, 8).unwrap()) };
    }
}

/// Runs `iters` units on each of `threads` threads started together; returns the wall time.
fn parallel<A: GlobalAlloc + Sync>(a: &'static A, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    unit(a);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn bench_one<A: GlobalAlloc + Sync>(c: &mut Criterion, name: &str, a: &'static A) {
    c.bench_function(&format!("alloc/1-thread/{name}"), |b| b.iter(|| unit(a)));
    c.bench_function(&format!("alloc/2-threads/{name}"), |b| {
        b.iter_custom(|iters| parallel(a, 2, iters))
    });
}

fn benches(c: &mut Criterion) {
    bench_one(c, "system", &SYSTEM);
    bench_one(c, "budget", &BUDGET);
    bench_one(c, "cap", &CAP);
    bench_one(c, "stats_alloc", &STATS);
}

const NAMES: [&str; 4] = ["system", "budget", "cap", "stats_alloc"];

fn unit_of(which: usize) {
    match which {
        0 => unit(&SYSTEM),
        1 => unit(&BUDGET),
        2 => unit(&CAP),
        _ => unit(&STATS),
    }
}

/// Median per-round ratio of each allocator to `System`, with `threads` threads working.
fn interleaved(threads: usize, rounds: usize, units: usize) -> [f64; 4] {
    let which = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (which, start, done) = (Arc::clone(&which), Arc::clone(&start), Arc::clone(&done));
            std::thread::spawn(move || {
                loop {
                    start.wait();
                    let w = which.load(Ordering::Acquire);
                    if w == usize::MAX {
                        return;
                    }
                    for _ in 0..units {
                        unit_of(w);
                    }
                    done.wait();
                }
            })
        })
        .collect();
    let mut ratios: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        let mut t = [0f64; 4];
        for k in 0..4 {
            let w = (round + k) % 4;
            which.store(w, Ordering::Release);
            start.wait();
            let begin = Instant::now();
            done.wait();
            t[w] = begin.elapsed().as_secs_f64();
        }
        for w in 0..4 {
            ratios[w].push(t[w] / t[0]);
        }
    }
    which.store(usize::MAX, Ordering::Release);
    start.wait();
    for h in workers {
        h.join().unwrap();
    }
    ratios.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    })
}

fn main() {
    for threads in [1, 2] {
        let r = interleaved(threads, 150, 300);
        let line: Vec<String> = NAMES
            .iter()
            .zip(r)
            .map(|(n, v)| format!("{n} {v:.3}x"))
            .collect();
        println!(
            "interleaved median ratio to system, {threads} thread(s): {}",
            line.join(", ")
        );
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group!(alloc, benches);
