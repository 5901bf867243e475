//! What recording the crashing thread's context (registers and a 32 KiB stack copy) adds to
//! fault → complete record. Target: ≤ 5 µs.
//!
//! Each sample is a real crashing child (this binary, re-executed) with a black box and
//! crashguard's fatal handlers, faulting 40 frames below `main`, exactly as the signals crate's
//! `crash` benchmark does. The two variants differ only in the black box's stack capacity, the
//! knob `Config::crash_stack_bytes` sets: 32 KiB (the default) and 0 (registers still recorded,
//! no stack bytes). Fault → record is from the instant before the faulting store (the child
//! writes `CLOCK_MONOTONIC` to a pipe) to `end.ended_mono_ns`, the instant the handler committed
//! the record. The variants alternate every round (the order flips each round); every round's
//! figures and the minor page faults of each child (from `wait4`) are printed, then the medians
//! and their difference.
//!
//! The stack capacity also decides whether the handler unwinds (the unwinder reads the copied
//! stack, so without a copy it records only the program counter): the difference between the
//! two is therefore an upper bound that includes unwinding 40-odd frames. A second part times
//! the recording alone, in process: the same work as the handler's `context::record` through the
//! same public writer API — registers into the context section, 32 KiB from a live stack into
//! the box's stack area, `seal_context` (the stack sum and the section's CRC) — on a freshly
//! armed box each round, against the same with a 0-byte stack area.
//!
//! `CONTEXT_BENCH_ROUNDS` (default 200) sets the rounds. With `CONTEXT_BENCH_CHILD=stack32k`
//! (or `stack0`) and `CONTEXT_BENCH_DIR=DIR` the binary is one crashing child, for
//! `valgrind --tool=callgrind` instruction counts of the handler.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MODE_ENV: &str = "CONTEXT_BENCH_CHILD";
const DIR_ENV: &str = "CONTEXT_BENCH_DIR";
/// Stack depth below `main` at the fault: the stack copy then has 32 KiB of real frames to copy.
const DEPTH: u32 = 40;

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
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

/// Puts 64 KiB of the caller's stack below `main` first, so that a full 32 KiB lies above the
/// faulting stack pointer and every sample copies the whole capacity.
#[inline(never)]
fn below_64k() {
    let pad = [0u8; 64 * 1024];
    std::hint::black_box(&pad);
    deep(DEPTH);
}

fn stack_capacity(mode: &str) -> u32 {
    match mode {
        "stack32k" => crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        "stack0" => 0,
        other => panic!("unknown mode {other}"),
    }
}

fn child(mode: &str) -> ! {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("dir"));
    let opts = crashguard_blackbox::Options {
        app: "ctx".into(),
        ring_capacity: 64,
        stack_capacity: stack_capacity(mode),
    };
    let bb = crashguard_blackbox::open(&dir, &opts)
        .expect("open")
        .blackbox
        .arm()
        .expect("arm");
    bb.breadcrumb("context bench child");
    let config = crashguard_signals::FatalConfig::new().summary_to_stderr(false);
    std::mem::forget(crashguard_signals::FatalHandlers::install(config).expect("install"));
    below_64k();
    std::process::exit(3)
}

/// One crash: the fault instant and the child's minor page faults.
fn crash_once(mode: &str, dir: &Path) -> (u64, i64) {
    // Reaped by wait4 below, which also gives the child's page faults.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env(MODE_ENV, mode)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child with valid out-pointers; std's Child is not waited for again.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "{mode}: status {status:#x}"
    );
    let t0 = u64::from_ne_bytes(out.get(..8).and_then(|b| b.try_into().ok()).expect("t0"));
    (t0, usage.ru_minflt)
}

/// `end.ended_mono_ns` and the recorded stack length of the box the child left.
fn recorded(dir: &Path) -> (u64, u32) {
    let bytes = std::fs::read(dir.join("blackbox").join("ctx.0.box")).expect("black box");
    let record_size = size_of::<crashguard_blackbox::layout::Record>();
    assert!(bytes.len() >= record_size);
    // SAFETY: the record is plain integers (any bit pattern is valid) and the buffer holds at
    // least one; read_unaligned copes with the Vec's alignment.
    let record: crashguard_blackbox::layout::Record =
        unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    assert_eq!(record.state, crashguard_blackbox::layout::STATE_ENDED);
    (record.end.ended_mono_ns, record.context.stack_len)
}

/// Records a context the way the handler does (registers, the stack above a live stack pointer,
/// the seal) into a fresh box of `capacity` stack bytes; returns the nanoseconds the recording
/// took, the claim and the box's opening excluded.
#[inline(never)]
fn record_in_process(dir: &Path, capacity: u32) -> u64 {
    let opts = crashguard_blackbox::Options {
        app: "replica".into(),
        ring_capacity: 64,
        stack_capacity: capacity,
    };
    let bb = crashguard_blackbox::open(dir, &opts)
        .expect("open")
        .blackbox;
    let mut writer = bb.claim_end().expect("a fresh box's end is free");
    // A live stack: 40 KiB of this thread's stack, the first 32 of which are copied.
    let live = [0x5au8; 40 * 1024];
    let live = std::hint::black_box(&live);
    let sp = live.as_ptr() as usize;
    let regs = std::hint::black_box([0x1234_5678_u64; crashguard_blackbox::layout::MAX_REGISTERS]);
    let t = mono_ns();
    {
        let ctx = writer.context();
        ctx.arch = 1;
        ctx.register_count = 27;
        ctx.registers = regs;
        ctx.tid = 1;
        ctx.stack_start = sp as u64;
        ctx.stack_low = sp as u64;
        ctx.stack_high = (sp + live.len()) as u64;
    }
    let area = writer.stack_area();
    let len = area.len().min(live.len());
    area[..len].copy_from_slice(&live[..len]);
    writer.context().stack_len = u32::try_from(len).expect("len");
    writer.seal_context();
    mono_ns() - t
}

fn in_process(dir: &Path, rounds: usize) {
    // One directory per capacity: a slot file keeps its size from one round to the next, as a
    // service's slot does from one run to the next (a resized file would fault fresh pages in).
    let dirs = [dir.join("replica-32k"), dir.join("replica-0")];
    for d in &dirs {
        std::fs::create_dir_all(d).expect("dir");
    }
    let mut ns: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let caps = [crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY, 0];
    for round in 0..rounds {
        for k in 0..2 {
            let i = (k + round) % 2;
            ns[i].push(record_in_process(&dirs[i], caps[i]));
        }
    }
    println!("in-process recording alone, {rounds} interleaved rounds (every round):");
    for (i, name) in ["32 KiB", "0 B"].iter().enumerate() {
        let all: Vec<String> = ns[i]
            .iter()
            .map(|n| format!("{:.2}", *n as f64 / 1e3))
            .collect();
        println!("  {name}: {} µs", all.join(" "));
    }
    for (i, name) in ["32 KiB", "0 B"].iter().enumerate() {
        let mut v = ns[i].clone();
        v.sort_unstable();
        println!(
            "  {name:6} median {:.2} µs, p90 {:.2} µs",
            v[v.len() / 2] as f64 / 1e3,
            v[v.len() * 9 / 10] as f64 / 1e3
        );
    }
}

fn main() {
    if let Ok(mode) = std::env::var(MODE_ENV) {
        child(&mode);
    }
    let rounds: usize = std::env::var("CONTEXT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("cg-bench-context-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let modes = ["stack32k", "stack0"];
    let mut micros: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut faults: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let mut line = format!("round {:3}:", round + 1);
        for k in 0..2 {
            let i = (k + round) % 2;
            let (t0, minflt) = crash_once(modes[i], &dir);
            let (ended, stack_len) = recorded(&dir);
            let expected = if i == 0 { 32 * 1024 } else { 0 };
            assert_eq!(stack_len, expected, "{}: stack bytes recorded", modes[i]);
            let us = ended.saturating_sub(t0) as f64 / 1e3;
            micros[i].push(us);
            faults[i].push(minflt);
            line.push_str(&format!(
                "  {} {us:.1} µs ({minflt} minor faults);",
                modes[i]
            ));
        }
        println!("{line}");
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let p90 = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() * 9 / 10]
    };
    let mf = |v: &[i64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!("fault -> record over {rounds} interleaved rounds (median / p90):");
    for i in 0..2 {
        println!(
            "  {:9} {:7.1} / {:7.1} µs, {} minor faults (median)",
            modes[i],
            median(&micros[i]),
            p90(&micros[i]),
            mf(&faults[i])
        );
    }
    // The paired difference of each round, then its median: load drifts, rounds are paired.
    let diffs: Vec<f64> = micros[0]
        .iter()
        .zip(&micros[1])
        .map(|(a, b)| a - b)
        .collect();
    println!(
        "  32 KiB stack copy adds: {:.1} µs (median of per-round differences), ratio of medians {:.2}",
        median(&diffs),
        median(&micros[0]) / median(&micros[1])
    );
    in_process(&dir, rounds.min(100));
    let _ = std::fs::remove_dir_all(&dir);
}
