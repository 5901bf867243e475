//! `BudgetAllocator<System>` against `System`, `cap::Cap` and `stats_alloc::StatsAlloc`, each as
//! the real `#[global_allocator]` of its own process (`alloc-pairs-*`, see
//! `crashguard_tests::alloc_pairs`), in one run.
//!
//! Two measures:
//!
//! - **instructions** (deterministic, when `valgrind` is installed): every allocator process runs
//!   under callgrind twice, with `N` and `2N` units; the difference divided by `N` is the
//!   instruction count of one unit, and the difference to `System` is what the allocator adds;
//! - **time**: `ROUNDS` interleaved rounds (default 15), each running every allocator process once
//!   in rotating order; the child's CPU time (user + system, from `wait4`) per unit, and the
//!   median over rounds of the per-round ratio to `System`.
//!
//! `cargo bench -p crashguard-tests --bench alloc_processes`; `ROUNDS`, `UNITS` and
//! `WORKLOADS` (comma-separated: `16,256,mixed`) override the defaults.

use std::process::Command;

const ALLOCATORS: [(&str, &str); 4] = [
    ("System", env!("CARGO_BIN_EXE_alloc-pairs-system")),
    (
        "BudgetAllocator<System>",
        env!("CARGO_BIN_EXE_alloc-pairs-budget"),
    ),
    ("cap::Cap<System>", env!("CARGO_BIN_EXE_alloc-pairs-cap")),
    (
        "stats_alloc::StatsAlloc<System>",
        env!("CARGO_BIN_EXE_alloc-pairs-stats"),
    ),
];

/// CPU time (user + system) of one run of `exe`, in nanoseconds.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also returns the child's resource usage"
)]
fn cpu_ns(exe: &str, workload: &str, units: u64) -> f64 {
    let child = Command::new(exe)
        .arg(workload)
        .arg(units.to_string())
        .spawn()
        .unwrap_or_else(|e| panic!("start {exe}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and writes into the two out-parameters.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{exe} failed: {status}"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Instructions callgrind counts for one run, or `None` without valgrind.
fn instructions(exe: &str, workload: &str, units: u64) -> Option<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .arg(workload)
        .arg(units.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: keep that to a smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = env("ROUNDS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 15 });
    let units: u64 = env("UNITS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1000 } else { 2_000_000 });
    let workloads = env("WORKLOADS").unwrap_or_else(|| "16,256,mixed".into());

    for workload in workloads.split(',') {
        println!(
            "\n## workload {workload}: {units} units per process, {rounds} interleaved rounds\n"
        );
        let counted: Vec<Option<f64>> = ALLOCATORS
            .iter()
            .map(|(_, exe)| {
                if quick {
                    return None;
                }
                let n = 200_000;
                let a = instructions(exe, workload, n)?;
                let b = instructions(exe, workload, 2 * n)?;
                Some(b.saturating_sub(a) as f64 / n as f64)
            })
            .collect();
        let mut times = vec![Vec::new(); ALLOCATORS.len()];
        let mut ratios = vec![Vec::new(); ALLOCATORS.len()];
        for round in 0..rounds {
            let mut this = vec![0.0; ALLOCATORS.len()];
            for k in 0..ALLOCATORS.len() {
                let i = (k + round) % ALLOCATORS.len();
                this[i] = cpu_ns(ALLOCATORS[i].1, workload, units) / units as f64;
            }
            for i in 0..ALLOCATORS.len() {
                times[i].push(this[i]);
                ratios[i].push(this[i] / this[0]);
            }
        }
        println!(
            "| allocator | instructions per unit | extra vs System | CPU ns per unit (median) | ratio to System (median of rounds) | ratio range |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (i, (name, _)) in ALLOCATORS.iter().enumerate() {
            let ins = counted[i].map_or("-".to_owned(), |c| format!("{c:.1}"));
            let extra = match (counted[i], counted[0]) {
                (Some(c), Some(s)) => format!("{:+.1}", c - s),
                _ => "-".to_owned(),
            };
            let lo = ratios[i].iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios[i].iter().copied().fold(0.0, f64::max);
            println!(
                "| `{name}` | {ins} | {extra} | {:.1} | {:.3}x | {lo:.2}-{hi:.2} |",
                median(&mut times[i]),
                median(&mut ratios[i]),
            );
        }
    }
}
