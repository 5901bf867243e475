//! An example service that shuts down gracefully.
//!
//! A producer thread feeds jobs into a small queue; worker threads (spawned with
//! `crashguard::thread::Builder`, so a refused spawn is an error, not a panic) take them and do
//! real work: hash a buffer and pretend to write the result. On SIGTERM, SIGINT or SIGHUP
//! crashguard runs three hooks, in order, under the 8 s grace period:
//!
//! 1. `stop intake` — the producer stops and closes the queue;
//! 2. `drain workers` — every worker finishes its job in flight and the queued ones, then exits;
//! 3. `flush results` — the totals are written out.
//!
//! Then the process exits 0 and the next start reports how the previous run ended.
//!
//! ```text
//! cargo run -p crashguard-examples --bin service -- --report-dir /tmp/service-reports
//! # in another terminal: kill -TERM <pid>   (or press Ctrl-C)
//! ```
//!
//! Options: `--workers N` (default 4), `--report-dir DIR` (default `./crash-reports`),
//! `--trace` (print every job start and end), `--print-previous` (print the previous run's
//! report as JSON and exit).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crashguard::{Config, ExitCode};

struct Options {
    workers: usize,
    report_dir: String,
    trace: bool,
    print_previous: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        workers: 4,
        report_dir: "crash-reports".into(),
        trace: false,
        print_previous: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workers" => {
                o.workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("--workers needs a number from 1 to 64")?;
            }
            "--report-dir" => o.report_dir = args.next().ok_or("--report-dir needs a path")?,
            "--trace" => o.trace = true,
            "--print-previous" => o.print_previous = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// One unit of work: hash `rounds` times over a buffer, then a short pause standing in for the
/// write to a database or a broker.
fn process(job: u64) -> u64 {
    let mut buf = [0u8; 4096];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (job as usize ^ i) as u8;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..64 {
        for &b in &buf {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    std::thread::sleep(Duration::from_millis(5));
    h
}

/// What the workers produced; flushed by the last hook.
#[derive(Default)]
struct Totals {
    jobs: AtomicU64,
    checksum: AtomicU64,
}

fn spawn_producer(
    tx: SyncSender<u64>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, crashguard::thread::SpawnError> {
    crashguard::thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::Acquire) {
                match tx.try_send(next) {
                    Ok(()) => next += 1,
                    // The queue is full: the workers are busy; try again shortly.
                    Err(TrySendError::Full(_)) => std::thread::sleep(Duration::from_millis(1)),
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            // Dropping `tx` closes the queue: the workers finish what is queued, then stop.
        })
}

fn spawn_worker(
    id: usize,
    queue: Arc<Mutex<Receiver<u64>>>,
    totals: Arc<Totals>,
    trace: bool,
) -> Result<JoinHandle<u64>, crashguard::thread::SpawnError> {
    crashguard::thread::Builder::new()
        .name(format!("worker-{id}"))
        .spawn(move || {
            let mut done = 0u64;
            loop {
                // Hold the lock only to take a job, never while working on it.
                let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(job) = job else { break };
                if done == 0 {
                    println!("worker-{id}: working");
                }
                if trace {
                    println!("job {job} start");
                }
                let h = process(job);
                totals.jobs.fetch_add(1, Ordering::Relaxed);
                totals.checksum.fetch_xor(h, Ordering::Relaxed);
                if trace {
                    println!("job {job} done");
                }
                done += 1;
            }
            done
        })
}

fn main() -> std::process::ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("service: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    let guard = match Config::new("service")
        .report_dir(&opts.report_dir)
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("service: cannot install crashguard: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    if opts.print_previous {
        let json = guard
            .previous_run()
            .map(|r| serde_json::to_string(r).unwrap_or_default());
        println!("PREVIOUS {}", json.unwrap_or_else(|| "null".into()));
        return guard.shutdown(ExitCode::Ok);
    }
    if let Some(report) = guard.previous_run() {
        println!("previous run: {report}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(opts.workers * 2);
    let queue = Arc::new(Mutex::new(rx));
    let mut workers = Vec::with_capacity(opts.workers);
    for id in 1..=opts.workers {
        match spawn_worker(id, Arc::clone(&queue), Arc::clone(&totals), opts.trace) {
            Ok(h) => workers.push(h),
            Err(e) => {
                eprintln!("service: cannot start worker-{id}: {e}");
                return guard.shutdown(ExitCode::ThreadBudget);
            }
        }
    }
    let producer = match spawn_producer(tx, Arc::clone(&stop)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("service: cannot start the producer: {e}");
            return guard.shutdown(ExitCode::ThreadBudget);
        }
    };

    // Hooks run in registration order, each on its own thread, all within the grace period.
    guard.on_shutdown("stop intake", move || {
        stop.store(true, Ordering::Release);
        let _ = producer.join();
        println!("hook stop intake: no new jobs");
    });
    guard.on_shutdown("drain workers", move || {
        let n = workers.len();
        let jobs: u64 = workers.into_iter().filter_map(|w| w.join().ok()).sum();
        println!("hook drain workers: {n} workers finished {jobs} jobs");
    });
    let flushed = Arc::clone(&totals);
    guard.on_shutdown("flush results", move || {
        println!(
            "hook flush results: {} results, checksum {:#018x}",
            flushed.jobs.load(Ordering::Relaxed),
            flushed.checksum.load(Ordering::Relaxed)
        );
    });

    println!(
        "service: pid {} serving with {} workers; send SIGTERM or press Ctrl-C to stop",
        std::process::id(),
        opts.workers
    );
    crashguard::breadcrumb("serving");
    let request = guard.shutdown_signal().wait();
    println!("service: shutting down ({})", request.reason);
    // The shutdown under way runs the hooks and ends the process with its own code (0 when
    // the hooks finish in time); this only waits for it.
    guard.exit(ExitCode::Ok)
}
