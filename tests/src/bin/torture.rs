//! The torture run: every crash kind, `N` times each, and a table of how the black box held up.
//!
//! `cargo run --release -p crashguard-tests --bin torture -- --rounds N [--kinds a,b] [--timeout S]`
//!
//! Each round of a kind runs `crashguard-child` in a fresh report directory with the kind's
//! scenario (it crashes for real), then runs it again with `none` and reads the report it got
//! from `previous_run()`. Per kind the table gives:
//!
//! - **valid report %**: the restart got a report that decodes, of this pid, and not
//!   `killed_without_warning` (which would mean no handler recorded the crash);
//! - **wrong status**: the report's `exit_code` differs from the status the parent really saw
//!   (`128 + n` for a death by signal n, else the exit code);
//! - **wrong outcome**: not `fatal_signal`, or the signal is not the one the kind raises;
//! - **hangs**: the crashing run did not end within the timeout (it is then killed);
//! - **p50 / p99 crash-to-exit**: from the child's `T0` line (printed on `CLOCK_MONOTONIC` just
//!   before the scenario starts) to the moment `waitpid` returned in this process.
//!
//! Core dumps are switched off for the children (`RLIMIT_CORE` 0). The child binary is built first (`cargo build` of `crashguard-child` in the same profile)
//! when this runs under `cargo run`, and is otherwise taken from next to this executable.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One crash kind: its name in the table, the child's scenario, and the signal its report
/// must name.
struct Kind {
    name: &'static str,
    scenario: &'static str,
    signal: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "SIGSEGV (null write)",
        scenario: "segv",
        signal: "SIGSEGV",
    },
    Kind {
        name: "SIGABRT (abort)",
        scenario: "abort",
        signal: "SIGABRT",
    },
    Kind {
        name: "SIGILL (ud2)",
        scenario: "ill",
        signal: "SIGILL",
    },
    Kind {
        name: "SIGFPE (div by 0)",
        scenario: "fpe",
        signal: "SIGFPE",
    },
    Kind {
        name: "SIGBUS (truncated mapping)",
        scenario: "bus",
        signal: "SIGBUS",
    },
    Kind {
        name: "SIGTRAP (int3)",
        scenario: "trap",
        signal: "SIGTRAP",
    },
    Kind {
        name: "overflow, main thread",
        scenario: "overflow-main",
        signal: "SIGSEGV",
    },
    Kind {
        name: "overflow, std thread",
        scenario: "overflow-std-thread",
        signal: "SIGSEGV",
    },
    Kind {
        name: "overflow, raw pthread",
        scenario: "overflow-pthread-unprepared",
        signal: "SIGSEGV",
    },
    Kind {
        name: "wild jump",
        scenario: "wild-jump",
        signal: "SIGSEGV",
    },
    Kind {
        name: "fault in malloc (free)",
        scenario: "fault-in-malloc",
        signal: "SIGSEGV",
    },
    Kind {
        name: "8 faults + 100 sleepers",
        scenario: "eight-faults-100-sleepers",
        signal: "SIGSEGV",
    },
    Kind {
        name: "fault during shutdown",
        scenario: "fault-during-shutdown",
        signal: "SIGSEGV",
    },
    Kind {
        name: "fork, then fault",
        scenario: "fork-then-segv",
        signal: "SIGSEGV",
    },
];

#[derive(Default)]
struct Tally {
    runs: u32,
    valid: u32,
    wrong_status: u32,
    wrong_outcome: u32,
    hangs: u32,
    latencies_us: Vec<f64>,
    notes: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rounds: u32 = value("--rounds").and_then(|v| v.parse().ok()).unwrap_or(10);
    let timeout = Duration::from_secs(
        value("--timeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let only: Option<Vec<String>> =
        value("--kinds").map(|k| k.split(',').map(str::to_owned).collect());
    // No core files: the kernel writing (or piping) a core would be measured as crash-to-exit
    // time, and a torture run would litter the disk. Children inherit the limit.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let child = match child_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("torture: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let base = std::env::temp_dir().join(format!("crashguard-torture-{}", std::process::id()));
    let kinds: Vec<&Kind> = KINDS
        .iter()
        .filter(|k| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|s| s == k.scenario))
        })
        .collect();
    let mut tallies: Vec<Tally> = kinds.iter().map(|_| Tally::default()).collect();
    let started = Instant::now();
    // Kinds interleaved within each round, so that load on the machine spreads over all.
    for round in 0..rounds {
        for (k, kind) in kinds.iter().enumerate() {
            let dir = base.join(format!("{}-{round}", kind.scenario));
            one_round(&child, &dir, kind, timeout, &mut tallies[k]);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    print_table(&kinds, &tallies, rounds, started.elapsed());
    let bad = tallies
        .iter()
        .any(|t| t.valid < t.runs || t.wrong_status > 0 || t.wrong_outcome > 0 || t.hangs > 0);
    if bad {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The `crashguard-child` binary, built first when running under cargo.
fn child_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = me.parent().ok_or("no parent directory")?.to_owned();
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "-q",
            "-p",
            "crashguard-tests",
            "--bin",
            "crashguard-child",
        ]);
        if release {
            c.arg("--release");
        }
        let status = c.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of crashguard-child failed: {status}"));
        }
    }
    let child = dir.join("crashguard-child");
    if child.exists() {
        Ok(child)
    } else {
        Err(format!("{} not found; build it first", child.display()))
    }
}

fn monotonic_ns() -> u64 {
    crashguard_blackbox::assafe::now_monotonic_ns()
}

fn one_round(child: &Path, dir: &Path, kind: &Kind, timeout: Duration, t: &mut Tally) {
    t.runs += 1;
    let _ = std::fs::create_dir_all(dir);
    let mut proc = match Command::new(child)
        .arg(dir)
        .arg(kind.scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            t.notes.push(format!("spawn: {e}"));
            return;
        }
    };
    let pid = proc.id() as libc::pid_t;
    // The child's stdout, read on a thread: T0 and nothing else matters.
    let stdout = proc.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut t0 = None;
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(v) = line.strip_prefix("T0 ") {
                    t0 = v.trim().parse::<u64>().ok();
                }
            }
        }
        t0
    });
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    let mut hung = false;
    loop {
        // SAFETY: polls our own child; writes only `status`.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            t.notes.push("waitpid failed".into());
            return;
        }
        if Instant::now() >= deadline {
            hung = true;
            // SAFETY: our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: reaps it.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let reaped = monotonic_ns();
    let t0 = reader.join().ok().flatten();
    if hung {
        t.hangs += 1;
        return;
    }
    if let Some(t0) = t0 {
        t.latencies_us
            .push(reaped.saturating_sub(t0) as f64 / 1000.0);
    }
    let seen = if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status) as u32
    } else {
        libc::WEXITSTATUS(status) as u32
    };

    let restart = Command::new(child)
        .arg(dir)
        .arg("none")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(restart) = restart else {
        t.notes.push("restart failed to run".into());
        return;
    };
    let text = String::from_utf8_lossy(&restart.stdout);
    let report: Option<crashguard::Report> = text
        .lines()
        .find_map(|l| l.strip_prefix("PREVIOUS "))
        .and_then(|j| serde_json::from_str(j).ok());
    let Some(r) = report else {
        t.notes
            .push(format!("{}: no report (status {seen})", kind.scenario));
        return;
    };
    if r.pid == pid as u32 && r.outcome != crashguard::Outcome::KilledWithoutWarning {
        t.valid += 1;
    } else {
        t.notes.push(format!(
            "{}: {} for pid {}",
            kind.scenario, r.outcome, r.pid
        ));
    }
    if r.exit_code != Some(seen) {
        t.wrong_status += 1;
        t.notes.push(format!(
            "{}: report says {:?}, process ended with {seen}",
            kind.scenario, r.exit_code
        ));
    }
    let signal = r.signal.as_ref().map(|s| s.name.as_str());
    if r.outcome != crashguard::Outcome::FatalSignal || signal != Some(kind.signal) {
        t.wrong_outcome += 1;
        t.notes.push(format!(
            "{}: {} {:?}, expected fatal_signal {}",
            kind.scenario, r.outcome, signal, kind.signal
        ));
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn print_table(kinds: &[&Kind], tallies: &[Tally], rounds: u32, took: Duration) {
    println!(
        "torture: {rounds} rounds per kind, {:.0} s",
        took.as_secs_f64()
    );
    println!();
    println!(
        "| kind | runs | valid report % | wrong status | wrong outcome | hangs | p50 crash→exit | p99 crash→exit |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, t) in kinds.iter().zip(tallies) {
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {:.0} µs | {:.0} µs |",
            kind.name,
            t.runs,
            100.0 * f64::from(t.valid) / f64::from(t.runs.max(1)),
            t.wrong_status,
            t.wrong_outcome,
            t.hangs,
            percentile(&t.latencies_us, 0.5),
            percentile(&t.latencies_us, 0.99),
        );
    }
    let notes: Vec<&String> = tallies.iter().flat_map(|t| t.notes.iter()).collect();
    if !notes.is_empty() {
        println!();
        println!("first problems:");
        for n in notes.iter().take(20) {
            println!("- {n}");
        }
    }
}
