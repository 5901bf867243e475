//! What `install()` costs at start-up, installed and dropped again, in a fresh process each
//! time, because that is when it runs: once, first thing in `main()`, with nothing warmed up.
//!
//! - `first_start`: the report directory does not exist yet.
//! - `restart_after_clean_exit`: the directory and the slot exist and hold the record of a run
//!   that ended cleanly (the common restart). Nothing to store.
//! - `restart_after_crash`: the slot holds a crash (SIGSEGV with the raw frames of this
//!   binary's `main`, down into libc's start-up code), which `install()` decodes, symbolizes
//!   and stores as a JSON report (fsynced).
//! - `restart_after_crash_unsymbolized`: the same with `symbolize_previous_run(false)`.
//!
//! Each iteration runs this binary again as a child (`CRASHGUARD_BENCH_INSTALL_CHILD`) on a
//! report directory prepared beforehand; the child times its one `install()` + drop with
//! `Instant` and prints it, so process start-up is not counted. Timing installs in a loop in
//! one process would be wrong twice over: everything is warm after the first, and the black
//! box of a dropped guard stays mapped and locked for the life of the process (handlers may
//! still hold it), so every further install leaks a mapping and a descriptor and takes a new
//! slot, and `/proc/self/maps`, which install reads, grows with each.
//!
//! Run: `cargo bench -p crashguard --bench install -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;

use crashguard_blackbox::Outcome;
use crashguard_blackbox::assafe;
use crashguard_blackbox::layout::MAX_FRAMES;

const APP: &str = "bench";

/// A fresh report directory per iteration, and the removal of the previous one.
struct Dirs {
    base: PathBuf,
    next: AtomicU64,
}

impl Dirs {
    fn new(label: &str) -> Dirs {
        let base = std::env::temp_dir().join(format!(
            "crashguard-bench-install-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create the bench directory");
        Dirs {
            base,
            next: AtomicU64::new(0),
        }
    }

    /// A new, not yet existing report directory; removes the one before it.
    fn fresh(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(prev) = n.checked_sub(1) {
            let _ = std::fs::remove_dir_all(self.base.join(prev.to_string()));
        }
        self.base.join(n.to_string())
    }

    /// A new report directory whose slot 0 holds `image`, as a previous process left it.
    fn with_slot(&self, image: &[u8]) -> PathBuf {
        let dir = self.fresh();
        let boxes = dir.join("blackbox");
        std::fs::create_dir_all(&boxes).expect("create the slot directory");
        std::fs::write(boxes.join(format!("{APP}.0.box")), image).expect("write the slot");
        dir
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn install(dir: &Path, symbolize: bool) -> crashguard::Guard {
    crashguard::Config::new(APP)
        .report_dir(dir)
        .symbolize_previous_run(symbolize)
        .install()
        .expect("install")
}

fn black_box_image(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("blackbox").join(format!("{APP}.0.box"))).expect("read the black box")
}

/// The black box of a run that ended cleanly.
fn clean_exit_image(dirs: &Dirs) -> Vec<u8> {
    let dir = dirs.fresh();
    drop(install(&dir, true));
    black_box_image(&dir)
}

/// Records a SIGSEGV into the armed black box the way the fatal handler does: the end section
/// with the signal, the thread and the raw frames of this very stack.
#[inline(never)]
fn record_fake_crash() {
    let bb = crashguard_blackbox::active().expect("an armed black box");
    let mut w = bb.claim_end().expect("claim the end section");
    let end = w.end();
    end.signal = libc::SIGSEGV as u32;
    // SEGV_MAPERR; libc does not export the si_code constants.
    end.si_code = 1;
    end.fault_address = 0xb8;
    end.tid = assafe::gettid();
    assafe::copy_bytes(&mut end.thread_name, b"main");
    let mut n = 0;
    backtrace::trace(|frame| {
        if let Some(slot) = end.frames.get_mut(n) {
            *slot = frame.ip() as u64;
            n += 1;
        }
        n < MAX_FRAMES
    });
    end.frame_count = n as u32;
    w.commit(Outcome::FatalSignal, 128 + libc::SIGSEGV as u32);
}

/// The black box of a run that died of SIGSEGV.
fn crash_image(dirs: &Dirs) -> Vec<u8> {
    let dir = dirs.fresh();
    let guard = install(&dir, true);
    record_fake_crash();
    drop(guard);
    black_box_image(&dir)
}

/// The environment variable that makes this binary a measuring child: `CASE:DIR`.
const CHILD_ENV: &str = "CRASHGUARD_BENCH_INSTALL_CHILD";

/// The measuring child: one cold `install()` + drop in this fresh process, printed in
/// nanoseconds.
fn child(spec: &str) -> ! {
    let (case, dir) = spec.split_once(':').expect("CASE:DIR");
    let symbolize = case != "restart_after_crash_unsymbolized";
    let t = Instant::now();
    let guard = install(Path::new(dir), symbolize);
    drop(black_box(guard));
    let elapsed = t.elapsed();
    println!("{}", elapsed.as_nanos());
    std::process::exit(0)
}

/// Times `iters` cold installs, each in a new process whose report directory `prepare` made.
fn cold(case: &str, iters: u64, prepare: &dyn Fn() -> PathBuf) -> Duration {
    let exe = std::env::current_exe().expect("the bench binary");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = prepare();
        let out = std::process::Command::new(&exe)
            .env(CHILD_ENV, format!("{case}:{}", dir.display()))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run the measuring child");
        assert!(
            out.status.success(),
            "the measuring child failed: {}",
            out.status
        );
        let ns: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the child prints nanoseconds");
        total += Duration::from_nanos(ns);
    }
    total
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
    }
    let dirs = Dirs::new("setup");
    let crash = crash_image(&dirs);
    let clean = clean_exit_image(&dirs);
    // The setup must really be what it claims: a decoded, symbolized, stored crash.
    let dir = dirs.with_slot(&crash);
    let guard = install(&dir, true);
    let report = guard.previous_run().expect("the crash is read back");
    assert_eq!(report.outcome, crashguard::Outcome::FatalSignal);
    assert!(
        report.backtrace.iter().any(|f| f
            .symbol
            .as_deref()
            .is_some_and(|s| s.contains("record_fake_crash"))),
        "the recorded frames are symbolized"
    );
    assert!(
        guard.previous().stored_at().is_some(),
        "the report is stored"
    );
    drop(guard);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    let run = Dirs::new("run");
    let mut g = c.benchmark_group("install_drop_cold");
    g.bench_function("first_start", |b| {
        b.iter_custom(|iters| cold("first_start", iters, &|| run.fresh()))
    });
    g.bench_function("restart_after_clean_exit", |b| {
        b.iter_custom(|iters| cold("restart_after_clean_exit", iters, &|| run.with_slot(&clean)))
    });
    g.bench_function("restart_after_crash", |b| {
        b.iter_custom(|iters| cold("restart_after_crash", iters, &|| run.with_slot(&crash)))
    });
    g.bench_function("restart_after_crash_unsymbolized", |b| {
        b.iter_custom(|iters| {
            cold("restart_after_crash_unsymbolized", iters, &|| {
                run.with_slot(&crash)
            })
        })
    });
    g.finish();
    c.final_summary();
}
