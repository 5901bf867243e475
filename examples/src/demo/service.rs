//! The service the demo runs: a dispatcher hands "jobs" to two worker threads. Job 6 hits a
//! real bug — a write through a pointer into a cache that was never allocated — and the
//! process dies of SIGSEGV, as native services do.

use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::describe;

/// The application name the service installs crashguard with.
pub const APP: &str = "demo-service";

/// The job that trips the bug.
const POISONED_JOB: u32 = 6;

/// One unit of work.
struct Job {
    id: u32,
    what: &'static str,
}

const WORK: [&str; 8] = [
    "resize avatar",
    "send welcome mail",
    "index document",
    "charge card",
    "render invoice",
    "update hit counter",
    "compress log",
    "refresh token",
];

/// A hit counter per key, meant to be allocated at start-up. The bug: nobody calls
/// `allocate`, so `base` stays null and the slot pointer for key `k` is `k * 24` bytes past
/// address zero.
#[repr(C)]
struct Slot {
    key: u64,
    seen: u64,
    hits: u64,
}

struct HitCache {
    base: *mut Slot,
}

// SAFETY: the demo's cache is only ever used from one job at a time; the raw pointer is what
// makes it a realistic bug, not shared mutation.
unsafe impl Send for HitCache {}
// SAFETY: as above.
unsafe impl Sync for HitCache {}

/// Counts a hit for `key`: the crashing function of the demo.
#[inline(never)]
fn record_hit(cache: &HitCache, key: u64) {
    // The slot address is computed, not dereferenced, so the debug build's null check does
    // not catch it: exactly like C, the bad pointer is only noticed by the MMU.
    let slot = black_box(cache.base.wrapping_add(key as usize));
    // SAFETY: not safe at all, and that is the point of the demo: `base` is null, so this
    // writes to an unmapped page near address zero and the process receives SIGSEGV.
    unsafe { (*slot).hits += 1 };
}

#[inline(never)]
fn handle_job(worker: &str, job: &Job, cache: &HitCache) -> u64 {
    crashguard::breadcrumb(&format!("{worker}: job {} ({}) started", job.id, job.what));
    // A little real work, so the job takes a moment.
    let mut checksum = 0u64;
    for (i, b) in job.what.bytes().cycle().take(100_000).enumerate() {
        checksum = checksum.rotate_left(5) ^ u64::from(b) ^ i as u64;
    }
    if job.id == POISONED_JOB {
        record_hit(cache, 7);
    }
    crashguard::breadcrumb(&format!("{worker}: job {} done", job.id));
    black_box(checksum)
}

/// Runs the service. With `crash`, the poisoned job is dispatched; without it, the service
/// reports on its previous run, does some clean work and exits 0 — or exits 1 when it found no
/// fatal-signal report from the previous run, so the demo can tell its story failed.
pub fn run(report_dir: &Path, crash: bool) -> ExitCode {
    let guard = match crashguard::Config::new(APP)
        .report_dir(report_dir)
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot install crashguard: {}", describe::error_chain(&e));
            return ExitCode::from(66);
        }
    };
    println!("started (pid {}), crashguard installed", std::process::id());
    let found_crash = match guard.previous_run() {
        None => {
            println!("no previous run in this report directory");
            false
        }
        Some(report) => {
            describe::print_report(report, guard.previous().stored_at());
            report.outcome == crashguard::Outcome::FatalSignal
        }
    };
    if let Some(e) = guard.previous().read_error() {
        println!("previous run's black box was unreadable: {e}");
    }
    if !crash && !found_crash {
        println!("expected to find the previous run's crash, found none");
        return ExitCode::FAILURE;
    }

    let jobs: Vec<Job> = if crash {
        (1..=8)
            .map(|id| Job {
                id,
                what: WORK[id as usize - 1],
            })
            .collect()
    } else {
        // After the restart the poisoned job is skipped: the operator read the report.
        (1..=3)
            .map(|id| Job {
                id,
                what: WORK[id as usize - 1],
            })
            .collect()
    };
    println!("dispatching {} jobs to 2 workers", jobs.len());
    let cache = Arc::new(HitCache {
        base: std::ptr::null_mut(),
    });
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for n in 1..=2 {
        let name = format!("worker-{n}");
        let rx = Arc::clone(&rx);
        let cache = Arc::clone(&cache);
        let spawned = crashguard::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                loop {
                    // The lock is released before the job runs.
                    let next = rx.lock().map(|r| r.recv());
                    let Ok(Ok(job)) = next else { break };
                    handle_job(&name, &job, &cache);
                    println!("{name} finished job {} ({})", job.id, job.what);
                }
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                eprintln!("cannot start {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for job in jobs {
        crashguard::breadcrumb(&format!("dispatcher: queued job {} ({})", job.id, job.what));
        if tx.send(job).is_err() {
            break;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
    println!("all jobs done, exiting cleanly");
    drop(guard);
    ExitCode::SUCCESS
}
