//! What crashguard's fork safety costs each `fork` (docs/performance.md, "Fork"): the box
//! mapping is `MADV_DONTFORK` and a fork handler in the child maps private memory in its place
//! and closes the slot descriptor. `fork-cost plain` (no crashguard), `fork-cost threads` (no
//! crashguard, four parked threads: a guarded process's shape) and `fork-cost guarded`
//! (crashguard installed) each fork `FORKS` children that `_exit` at once, in `ROUNDS`
//! interleaved rounds of separate processes (order rotating), and report the median wall time
//! of one fork → `_exit` → `waitpid`.
//!
//! The deterministic measure, when `valgrind` is installed: the guarded mode runs under
//! callgrind (which follows forked children) with collection switched on only inside the
//! child's fork handler; each child's count is that handler's instructions. (Counting whole
//! processes would also count crashguard's background threads, whose work grows with the run's
//! length, not with the number of forks.)
//!
//! `cargo bench -p crashguard-tests --bench fork`; `ROUNDS` and `FORKS` override the defaults.

use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_fork-cost");
const MODES: [&str; 3] = ["plain", "threads", "guarded"];

fn report_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crashguard-fork-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn median_ns(mode: &str, forks: usize, dir: &Path) -> f64 {
    let out = Command::new(EXE)
        .args([mode, &forks.to_string()])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("start {EXE}: {e}"));
    assert!(
        out.status.success(),
        "fork-cost {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("median_ns "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("fork-cost {mode}: no median"))
}

/// The instructions of the child's fork handler (median over the children of one guarded
/// run), or `None` without valgrind.
fn handler_instructions(dir: &Path) -> Option<u64> {
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--toggle-collect=*disarm_in_fork_child*",
        ])
        .arg(EXE)
        .args(["guarded", "9"])
        .arg(dir)
        .output()
        .ok()?;
    out.status.success().then_some(())?;
    let mut counts: Vec<u64> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split("Collected :").nth(1))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .collect();
    counts.sort_unstable();
    counts.get(counts.len() / 2).copied()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: keep that to a smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = var("ROUNDS", if quick { 1 } else { 15 });
    let forks = var("FORKS", if quick { 20 } else { 2000 });
    let dir = report_dir();

    let handler = if quick {
        None
    } else {
        handler_instructions(&dir)
    };
    let mut times = vec![Vec::new(); MODES.len()];
    let mut ratios = Vec::new();
    println!(
        "\n## fork → _exit → waitpid: {forks} forks per process, {rounds} interleaved rounds\n"
    );
    println!(
        "| round | plain ns | threads ns | guarded ns | guarded / plain | guarded / threads |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut shaped = Vec::new();
    for round in 0..rounds {
        let mut this = [0.0; 3];
        for k in 0..MODES.len() {
            let i = (k + round) % MODES.len();
            this[i] = median_ns(MODES[i], forks, &dir);
        }
        println!(
            "| {round} | {:.0} | {:.0} | {:.0} | {:.3}x | {:.3}x |",
            this[0],
            this[1],
            this[2],
            this[2] / this[0],
            this[2] / this[1]
        );
        for (t, v) in times.iter_mut().zip(this) {
            t.push(v);
        }
        ratios.push(this[2] / this[0]);
        shaped.push(this[2] / this[1]);
    }
    println!(
        "\nMedians: plain {:.0} ns, threads {:.0} ns, guarded {:.0} ns per fork; guarded / plain \
         {:.3}x, guarded / threads {:.3}x; the fork handler: {} instructions (callgrind).",
        median(&mut times[0]),
        median(&mut times[1]),
        median(&mut times[2]),
        median(&mut ratios),
        median(&mut shaped),
        handler.map_or("-".to_owned(), |n| n.to_string()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
