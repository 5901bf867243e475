//! Crash benchmarks, each iteration a real crashing child process (this binary, re-executed):
//!
//! - `fault_to_record`: from the instant before the faulting store (CLOCK_MONOTONIC, written by
//!   the child) to `end.ended_mono_ns`, the instant the crashguard handler committed the record
//!   (32+ frames captured); side by side, for `crash-handler`, the instant its callback has
//!   captured the same frames (its equivalent of a complete record; it writes no file).
//! - `crash_to_reaped`: from that same instant to the parent's `wait` returning, for a bare
//!   process, the crashguard handler, and the `crash-handler` crate capturing the same frames.
//! - `crashguard_synced` (paired rounds only): crashguard with its black box written back
//!   (`fdatasync`) just before the fault, as the kernel's writeback leaves it in a process that
//!   has run for a while: the handler's first store into each page of the box faults.
//! - `crashguard_thread` (paired rounds only): crashguard with the crash on a thread started
//!   after install, whose outer frames the unwinder's warm-up (the installing thread's stack)
//!   did not see.
//!
//! Run with `cargo bench -p crashguard-signals --bench crash -- --warm-up-time 1
//! --measurement-time 3`. `CRASHGUARD_BENCH_PAIRED_ONLY=1` skips criterion's sequential groups
//! and runs only the interleaved rounds (`CRASHGUARD_BENCH_ROUNDS`, default 100), which is
//! what `docs/performance/signals.md` quotes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::Criterion;

const MODE_ENV: &str = "CRASHGUARD_BENCH_CHILD";
const DIR_ENV: &str = "CRASHGUARD_BENCH_DIR";
/// Stack depth below `main` at the fault, so that the handlers have 32+ frames to unwind.
const DEPTH: u32 = 40;

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline(never)]
fn fault_now() {
    let t0 = mono_ns().to_ne_bytes();
    // SAFETY: write(2) of a local buffer, then a deliberate null write.
    unsafe {
        libc::write(1, t0.as_ptr().cast(), t0.len());
        core::ptr::write_volatile(core::ptr::null_mut::<u64>(), 1);
    }
}

#[inline(never)]
fn deep(n: u32) -> u32 {
    if std::hint::black_box(n) == 0 {
        fault_now();
        0
    } else {
        // Not a tail call: the addition keeps every frame on the stack.
        deep(n - 1) + std::hint::black_box(1)
    }
}

static mut CH_FRAMES: [usize; 64] = [0; 64];

fn child(mode: &str) {
    match mode {
        "bare" => {}
        "bare_threaded" => {
            // One idle helper thread, as the crashguard watchdog is: its exit is part of the
            // process's exit.
            let (mut reader, writer) = std::io::pipe().expect("pipe");
            std::thread::spawn(move || {
                let mut b = [0u8; 1];
                let _ = std::io::Read::read(&mut reader, &mut b);
            });
            std::mem::forget(writer);
        }
        "crashguard_nobox" => {
            let config = crashguard_signals::FatalConfig::new().summary_to_stderr(false);
            std::mem::forget(crashguard_signals::FatalHandlers::install(config).expect("install"));
        }
        "crashguard" | "crashguard_synced" | "crashguard_thread" => {
            let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("dir"));
            let opts = crashguard_blackbox::Options {
                app: "bench".into(),
                ring_capacity: 64,
                stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
            };
            let bb = crashguard_blackbox::open(&dir, &opts)
                .expect("open")
                .blackbox
                .arm()
                .expect("arm");
            bb.breadcrumb("bench child");
            let config = crashguard_signals::FatalConfig::new().summary_to_stderr(false);
            std::mem::forget(crashguard_signals::FatalHandlers::install(config).expect("install"));
            if mode == "crashguard_synced" {
                // What the kernel's writeback does to a long-running process's black box every
                // half minute: the dirty pages are written and write-protected again, so the
                // handler's first store into each one faults into the file system.
                std::fs::File::open(dir.join("blackbox").join("bench.0.box"))
                    .and_then(|f| f.sync_data())
                    .expect("sync the black box");
            }
        }
        "crash_handler" => {
            // SAFETY: the closure only stores integers into a static buffer owned by the
            // crashing thread (the process has one).
            let handler = crash_handler::CrashHandler::attach(unsafe {
                crash_handler::make_crash_event(|_cc: &crash_handler::CrashContext| {
                    let mut n = 0;
                    backtrace::trace_unsynchronized(|f| {
                        // SAFETY: single crashing thread; plain integer stores.
                        let frames = &mut *core::ptr::addr_of_mut!(CH_FRAMES);
                        if let Some(slot) = frames.get_mut(n) {
                            *slot = f.ip() as usize;
                            n += 1;
                            true
                        } else {
                            false
                        }
                    });
                    // The instant the callback has its frames, for the parent.
                    let done = mono_ns().to_ne_bytes();
                    // SAFETY: write(2) of a local buffer.
                    libc::write(1, done.as_ptr().cast(), done.len());
                    crash_handler::CrashEventResult::Handled(true)
                })
            })
            .expect("attach");
            std::mem::forget(handler);
        }
        other => panic!("unknown mode {other}"),
    }
    if mode == "crashguard_thread" {
        // A crash on a thread started after install: its outer frames (std's and libc's
        // thread start) are not in the unwinder's warmed cache, unlike the main thread's.
        let _ = std::thread::spawn(|| deep(DEPTH)).join();
    } else {
        deep(DEPTH);
    }
    std::process::exit(3);
}

/// One crash: returns the fault instant, the instant the parent reaped the child, and the
/// second instant the child wrote, if any (`crash_handler`: its callback had the frames).
fn crash_once(mode: &str, dir: &Path) -> (u64, u64, Option<u64>) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env(MODE_ENV, mode)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let status = child.wait().expect("wait");
    let reaped = mono_ns();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGSEGV),
        "{mode}: {status:?}"
    );
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read");
    let t0 = u64::from_ne_bytes(out.get(..8).and_then(|b| b.try_into().ok()).expect("t0"));
    let t1 = out
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes);
    (t0, reaped, t1)
}

/// `end.ended_mono_ns` and `end.frame_count` of the black box the crashguard child left.
fn recorded_end(dir: &Path) -> (u64, u32) {
    let bytes = std::fs::read(dir.join("blackbox").join("bench.0.box")).expect("black box");
    let record_size = size_of::<crashguard_blackbox::layout::Record>();
    assert!(bytes.len() >= record_size);
    // SAFETY: the record is plain integers (any bit pattern is valid) and the buffer holds at
    // least one; read_unaligned copes with the Vec's alignment.
    let record: crashguard_blackbox::layout::Record =
        unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    assert_eq!(record.state, crashguard_blackbox::layout::STATE_ENDED);
    (record.end.ended_mono_ns, record.end.frame_count)
}

fn benches(c: &mut Criterion, dir: &Path) {
    let mut g = c.benchmark_group("fault_to_record");
    g.sample_size(20);
    g.bench_function("crashguard", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (t0, _, _) = crash_once("crashguard", dir);
                let (ended, frames) = recorded_end(dir);
                assert!(frames >= 32, "only {frames} frames");
                total += Duration::from_nanos(ended.saturating_sub(t0));
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("crash_to_reaped");
    g.sample_size(20);
    for mode in ["bare", "bare_threaded", "crashguard", "crash_handler"] {
        g.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (t0, reaped, _) = crash_once(mode, dir);
                    total += Duration::from_nanos(reaped.saturating_sub(t0));
                }
                total
            })
        });
    }
    g.finish();
}

/// The machine is shared, so load drifts between criterion's groups. This runs the variants
/// interleaved, round after round, and prints medians of the same rounds, which is what the
/// ratios in `docs/performance/signals.md` come from.
fn paired(dir: &Path, rounds: usize) {
    const MODES: [&str; 7] = [
        "bare",
        "bare_threaded",
        "crashguard",
        "crash_handler",
        "crashguard_nobox",
        "crashguard_synced",
        "crashguard_thread",
    ];
    /// The modes whose fault → record is measured (a crashguard child with a black box).
    const RECORDED: [&str; 3] = ["crashguard", "crashguard_synced", "crashguard_thread"];
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(rounds); MODES.len()];
    let mut records: Vec<Vec<u64>> = vec![Vec::with_capacity(rounds); RECORDED.len()];
    let mut callback = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        for (i, mode) in MODES.iter().enumerate() {
            let (t0, reaped, t1) = crash_once(mode, dir);
            samples[i].push(reaped.saturating_sub(t0));
            if let Some(r) = RECORDED.iter().position(|m| m == mode) {
                let (ended, frames) = recorded_end(dir);
                assert!(frames >= 32, "only {frames} frames");
                records[r].push(ended.saturating_sub(t0));
            }
            if let (true, Some(t1)) = (*mode == "crash_handler", t1) {
                callback.push(t1.saturating_sub(t0));
            }
        }
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let p90 = |v: &Vec<u64>| v[v.len() * 9 / 10];
    println!("\npaired, {rounds} interleaved rounds (median / p90, microseconds):");
    let mut medians = Vec::new();
    for (i, mode) in MODES.iter().enumerate() {
        let m = median(&mut samples[i]);
        medians.push(m);
        println!(
            "  crash_to_reaped/{mode:<14} {:>8.1} / {:>8.1}",
            m as f64 / 1e3,
            p90(&samples[i]) as f64 / 1e3
        );
    }
    let mut r = 0;
    for (mode, v) in RECORDED.iter().zip(records.iter_mut()) {
        let m = median(v);
        if *mode == "crashguard" {
            r = m;
        }
        println!(
            "  fault_to_record/{mode:<17} {:>8.1} / {:>8.1}",
            m as f64 / 1e3,
            p90(v) as f64 / 1e3
        );
    }
    if !callback.is_empty() {
        let c = median(&mut callback);
        println!(
            "  fault_to_frames/crash_handler  {:>8.1} / {:>8.1}",
            c as f64 / 1e3,
            p90(&callback) as f64 / 1e3
        );
        println!(
            "  ratio fault_to_record crashguard / crash_handler's callback: {:.2}",
            r as f64 / c as f64
        );
    }
    for (i, mode) in MODES.iter().enumerate().skip(1) {
        println!(
            "  ratio {mode} / bare: {:.2}",
            medians[i] as f64 / medians[0] as f64
        );
    }
    println!(
        "  ratio crashguard / bare_threaded: {:.2}",
        medians[2] as f64 / medians[1] as f64
    );
    println!(
        "  ratio crashguard / crash_handler: {:.2}",
        medians[2] as f64 / medians[3] as f64
    );
}

fn main() {
    if let Ok(mode) = std::env::var(MODE_ENV) {
        child(&mode);
        return;
    }
    let dir = std::env::temp_dir().join(format!("cg-bench-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    if std::env::var_os("CRASHGUARD_BENCH_PAIRED_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        benches(&mut c, &dir);
        c.final_summary();
    }
    let rounds = std::env::var("CRASHGUARD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    paired(&dir, rounds);
    let _ = std::fs::remove_dir_all(&dir);
}
