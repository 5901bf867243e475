//! The thread census inside the fatal handler, in a process with many threads: each iteration is
//! a real child process (this binary, re-executed) that starts `N` parked threads, arms a black
//! box, installs the fatal handlers with an enricher that runs the census the facade uses, and
//! writes through a null pointer. The enricher times the census (`CLOCK_MONOTONIC` around the
//! call, inside the handler) and writes the time and the thread total it counted to its stdout;
//! the parent checks the exit status, that the total covers the `N` threads, and that the
//! record in the black box holds the same total.
//!
//! Variants, interleaved round after round:
//!
//! - `bounded`: `census_raw_into`, what the facade's enricher calls (names of the first 256
//!   tasks, the total from the kernel's count);
//! - `full_walk`: `census_raw_from("/proc/self/task")`, which lists every task (what the crash
//!   census did before it was bounded).
//!
//! `cargo bench -p crashguard-signals --bench census`; `CRASHGUARD_BENCH_THREADS`
//! (comma-separated, default `100,1000,10000`) and `CRASHGUARD_BENCH_ROUNDS` (default 5)
//! override the defaults. Results: `docs/performance/signals.md`.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crashguard_blackbox::layout::End;
use crashguard_signals::{EndEnricher, FatalConfig, FatalHandlers};

const MODE_ENV: &str = "CRASHGUARD_BENCH_CHILD";
const THREADS_ENV: &str = "CRASHGUARD_BENCH_CHILD_THREADS";
const DIR_ENV: &str = "CRASHGUARD_BENCH_DIR";
const MODES: [&str; 2] = ["bounded", "full_walk"];

/// Async-signal-safe.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The census, timed inside the handler.
struct TimedCensus {
    full_walk: bool,
}

// SAFETY: the census functions are the async-signal-safe ones written for the handler; the rest
// is clock_gettime and write(2) of a stack buffer.
unsafe impl EndEnricher for TimedCensus {
    fn enrich(&self, end: &mut End) {
        let start = mono_ns();
        if self.full_walk {
            crashguard_budget::thread::census_raw_from(
                c"/proc/self/task",
                &mut end.census,
                &mut end.census_count,
                &mut end.census_total,
            );
        } else {
            crashguard_budget::thread::census_raw_into(
                &mut end.census,
                &mut end.census_count,
                &mut end.census_total,
            );
        }
        let took = mono_ns().saturating_sub(start);
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&took.to_ne_bytes());
        out[8..].copy_from_slice(&end.census_total.to_ne_bytes());
        // SAFETY: write(2) of a stack buffer.
        unsafe { libc::write(1, out.as_ptr().cast(), out.len()) };
    }
}

static BOUNDED: TimedCensus = TimedCensus { full_walk: false };
static FULL_WALK: TimedCensus = TimedCensus { full_walk: true };

fn child(mode: &str, threads: usize, dir: &Path) {
    // Parked threads: each blocks reading a pipe nobody writes to.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    for i in 0..threads {
        let started = started_tx.clone();
        std::thread::Builder::new()
            .name(format!("parked-{}", i % 7))
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = started.send(());
                let mut b = [0u8; 1];
                // SAFETY: read(2) into a one-byte buffer; blocks for the life of the process.
                unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
            })
            .expect("spawn");
    }
    for _ in 0..threads {
        started_rx.recv().expect("thread started");
    }
    std::mem::forget((reader, writer));
    let opts = crashguard_blackbox::Options {
        app: "census".into(),
        ring_capacity: 64,
        stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
    };
    // Armed for the rest of the (short) life of the child.
    let _armed = crashguard_blackbox::open(dir, &opts)
        .expect("open")
        .blackbox
        .arm()
        .expect("arm");
    let enricher: &'static TimedCensus = if mode == "full_walk" {
        &FULL_WALK
    } else {
        &BOUNDED
    };
    let config = FatalConfig::new()
        .summary_to_stderr(false)
        // A full walk of 10,000 tasks on a loaded machine must not meet the watchdog.
        .watchdog_timeout(Duration::from_secs(60))
        .enricher(enricher);
    std::mem::forget(FatalHandlers::install(config).expect("install"));
    // SAFETY: deliberately faults.
    unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1) };
}

/// One crash: the census time and total the enricher reported.
fn crash_once(mode: &str, threads: usize, dir: &Path) -> (u64, u32) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env(MODE_ENV, mode)
        .env(THREADS_ENV, threads.to_string())
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{mode}: {status:?}");
    assert_eq!(out.len(), 12, "{mode}: the enricher's report");
    let took = u64::from_ne_bytes(out[..8].try_into().expect("8 bytes"));
    let total = u32::from_ne_bytes(out[8..].try_into().expect("4 bytes"));
    assert!(
        total as usize > threads,
        "{mode}: counted {total} of {threads}+1 threads"
    );
    assert_eq!(recorded_total(dir), total, "{mode}: the record's total");
    (took, total)
}

/// `end.census_total` of the black box the child left.
fn recorded_total(dir: &Path) -> u32 {
    let bytes = std::fs::read(dir.join("blackbox").join("census.0.box")).expect("black box");
    assert!(bytes.len() >= size_of::<crashguard_blackbox::layout::Record>());
    // SAFETY: the record is plain integers (any bit pattern is valid) and the buffer holds at
    // least one; read_unaligned copes with the Vec's alignment.
    let record: crashguard_blackbox::layout::Record =
        unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    assert_eq!(record.state, crashguard_blackbox::layout::STATE_ENDED);
    record.end.census_total
}

fn main() {
    if let (Ok(mode), Ok(threads), Some(dir)) = (
        std::env::var(MODE_ENV),
        std::env::var(THREADS_ENV),
        std::env::var_os(DIR_ENV),
    ) {
        child(
            &mode,
            threads.parse().expect("threads"),
            &PathBuf::from(dir),
        );
        return;
    }
    let counts: Vec<usize> = std::env::var("CRASHGUARD_BENCH_THREADS")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rounds: usize = std::env::var("CRASHGUARD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("cg-bench-census-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    println!("census inside the fatal handler, {rounds} interleaved rounds (microseconds)");
    for &threads in &counts {
        let mut samples = vec![Vec::with_capacity(rounds); MODES.len()];
        for _ in 0..rounds {
            for (i, mode) in MODES.iter().enumerate() {
                samples[i].push(crash_once(mode, threads, &dir).0);
            }
        }
        let mut medians = Vec::new();
        for (i, mode) in MODES.iter().enumerate() {
            let runs: Vec<String> = samples[i]
                .iter()
                .map(|ns| format!("{:.0}", *ns as f64 / 1e3))
                .collect();
            samples[i].sort_unstable();
            let median = samples[i][samples[i].len() / 2];
            medians.push(median);
            println!(
                "  {threads:>6} threads  {mode:<10} median {:>9.1}   runs [{}]",
                median as f64 / 1e3,
                runs.join(", ")
            );
        }
        println!(
            "  {threads:>6} threads  bounded / full_walk: {:.3}",
            medians[0] as f64 / medians[1] as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
