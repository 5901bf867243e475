//! Real crashes: every case re-runs this test binary as a child process that arms a black box,
//! installs the fatal handlers and crashes (null write, abort, stack overflows on the main
//! thread, a std thread and raw pthreads, SIGFPE, SIGILL, SIGTRAP, SIGBUS, a sent SIGSEGV, a
//! fault and a hang inside the handler, ...). The parent asserts the exact wait status and
//! decodes the black box the child left behind.
//!
//! This test has its own `main` (`harness = false`) so that the child's main thread is a plain
//! main thread, with the main thread's stack, for the main-thread overflow case.

#[path = "crash/child.rs"]
mod child;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crashguard_blackbox::{Outcome, Report};

const SCENARIO_ENV: &str = "CRASHGUARD_SIGNALS_SCENARIO";
const DIR_ENV: &str = "CRASHGUARD_SIGNALS_DIR";
/// A child still running after this long is killed and the case fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    if let Ok(name) = std::env::var(SCENARIO_ENV) {
        child::run(&name);
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut passed = 0;
    let mut failed = Vec::new();
    for (name, check) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let result = std::panic::catch_unwind(|| {
            let run = Run::start(name);
            let outcome = check(&run);
            (run, outcome)
        });
        match result {
            Ok((run, Ok(()))) => {
                println!("test {name} ... ok");
                run.cleanup();
                passed += 1;
            }
            Ok((run, Err(why))) => {
                println!(
                    "test {name} ... FAILED: {why}\n--- status: {:?}\n--- stdout:\n{}--- stderr:\n{}",
                    run.status, run.stdout, run.stderr
                );
                failed.push(*name);
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked)");
                failed.push(*name);
            }
        }
    }
    println!("\n{passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}

/// One finished child.
struct Run {
    dir: PathBuf,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    vars: HashMap<String, usize>,
}

impl Run {
    fn start(name: &str) -> Run {
        let dir = std::env::temp_dir().join(format!("cg-signals-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .env(SCENARIO_ENV, name)
            .env(DIR_ENV, &dir)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > CHILD_TIMEOUT {
                let _ = child.kill();
                break child.wait().expect("wait after kill");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let vars = stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter_map(|(k, v)| {
                Some((
                    k.to_owned(),
                    usize::from_str_radix(v.strip_prefix("0x")?, 16).ok()?,
                ))
            })
            .collect();
        Run {
            dir,
            status,
            stdout,
            stderr,
            vars,
        }
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn var(&self, key: &str) -> Result<usize, String> {
        self.vars
            .get(key)
            .copied()
            .ok_or_else(|| format!("child did not print {key}"))
    }

    fn report(&self) -> Result<Report, String> {
        let path = self.dir.join("blackbox").join("sigtest.0.box");
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        crashguard_blackbox::decode(&bytes).map_err(|e| format!("decode: {e}"))
    }

    /// The symbol names of the recorded frames, resolved in this (the parent) process: child and
    /// parent run the same executable, so a child address maps to ours by the difference of the
    /// two `main` addresses.
    fn symbols(&self, report: &Report) -> Result<Vec<String>, String> {
        let shift = (main as fn() as usize).wrapping_sub(self.var("main_fn")?);
        let mut names = Vec::new();
        for (i, frame) in report.backtrace.iter().enumerate() {
            let ip = parse_hex(&frame.ip)?.wrapping_add(shift);
            // Return addresses point after the call; look the call itself up.
            let ip = if i == 0 { ip } else { ip - 1 };
            backtrace::resolve(ip as *mut std::ffi::c_void, |s| {
                if let Some(n) = s.name() {
                    names.push(n.to_string());
                }
            });
        }
        Ok(names)
    }
}

fn parse_hex(s: &str) -> Result<usize, String> {
    usize::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

fn killed_by(run: &Run, signo: i32) -> Result<(), String> {
    ensure(run.status.signal() == Some(signo), || {
        format!("expected death by signal {signo}, got {:?}", run.status)
    })
}

fn exited_with(run: &Run, code: i32) -> Result<(), String> {
    ensure(run.status.code() == Some(code), || {
        format!("expected exit code {code}, got {:?}", run.status)
    })
}

/// The common checks of a recorded fatal signal.
/// The record of a handler that failed: outcome `handler_failure`, exit code 84, and a detail
/// saying how.
fn handler_failure_record(run: &Run, detail: &str) -> Result<(), String> {
    let r = run.report()?;
    ensure(r.outcome == Outcome::HandlerFailure, || {
        format!("outcome {:?}", r.outcome)
    })?;
    ensure(r.exit_code == Some(84), || {
        format!("exit_code {:?}", r.exit_code)
    })?;
    ensure(
        r.detail.as_deref().is_some_and(|d| d.contains(detail)),
        || format!("detail {:?}", r.detail),
    )
}

fn fatal_record(run: &Run, signal: &str, code: &str, exit_code: u32) -> Result<Report, String> {
    let r = run.report()?;
    ensure(r.outcome == Outcome::FatalSignal, || {
        format!("outcome {:?}", r.outcome)
    })?;
    ensure(r.exit_code == Some(exit_code), || {
        format!("exit_code {:?}", r.exit_code)
    })?;
    let s = r.signal.as_ref().ok_or("no signal section")?;
    ensure(s.name == signal, || format!("signal {}", s.name))?;
    ensure(s.code_name == code, || {
        format!("code {} ({})", s.code_name, s.code)
    })?;
    ensure(
        r.breadcrumbs.iter().any(|b| b.message == "child armed"),
        || "breadcrumb missing".into(),
    )?;
    ensure(r.backtrace.len() >= 2, || {
        format!("only {} frames", r.backtrace.len())
    })?;
    let t = r.thread.as_ref().ok_or("no thread")?;
    ensure(t.tid != 0, || "tid 0".into())?;
    Ok(r)
}

/// Checks that the first frame is the faulting instruction inside `crash_fn` and that the
/// symbolized frames name both the crashing function and its caller.
fn crash_site(run: &Run, r: &Report, callee: &str, caller: &str) -> Result<(), String> {
    let f = run.var("crash_fn")?;
    let first: Vec<usize> = r
        .backtrace
        .iter()
        .take(3)
        .map(|fr| parse_hex(&fr.ip))
        .collect::<Result<_, _>>()?;
    // Frame 0 is the faulting instruction; in an unoptimised build it may sit in an
    // un-inlined helper (`write_volatile`) called from the crashing function.
    ensure(first.iter().any(|&ip| ip >= f && ip < f + 256), || {
        format!("no early frame in crash_fn at {f:#x}: {first:x?}")
    })?;
    let names = run.symbols(r)?;
    ensure(names.iter().take(3).any(|n| n.contains(callee)), || {
        format!("{callee} not among the first frames of {names:?}")
    })?;
    ensure(names.iter().any(|n| n.contains(caller)), || {
        format!("{caller} not in {names:?}")
    })
}

type Check = fn(&Run) -> Result<(), String>;

const CASES: &[(&str, Check)] = &[
    ("segv_main", |run| {
        killed_by(run, libc::SIGSEGV)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 139)?;
        let s = r.signal.as_ref().ok_or("signal")?;
        ensure(s.fault_address.as_deref() == Some("0x0"), || {
            format!("fault address {:?}", s.fault_address)
        })?;
        ensure(s.sender_pid.is_none(), || "sender on a fault".into())?;
        ensure(!r.stack_overflow, || "flagged as overflow".into())?;
        ensure(
            r.thread
                .as_ref()
                .is_some_and(|t| t.name.starts_with("crash") && t.tid as usize == run.vars["pid"]),
            || format!("thread {:?}", r.thread),
        )?;
        ensure(
            run.stderr
                .contains("crashguard: fatal signal SIGSEGV (SEGV_MAPERR) at 0x0 in thread 'crash"),
            || "summary line".into(),
        )?;
        ensure(r.backtrace.len() >= 4, || {
            format!("{} frames", r.backtrace.len())
        })?;
        crash_site(run, &r, "null_write", "scenario_null_write")
    }),
    ("segv_exit_policy", |run| {
        exited_with(run, 139)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 139)?;
        crash_site(run, &r, "null_write", "scenario_null_write")
    }),
    ("abort", |run| {
        killed_by(run, libc::SIGABRT)?;
        let r = fatal_record(run, "SIGABRT", "SI_TKILL", 134)?;
        let s = r.signal.as_ref().ok_or("signal")?;
        ensure(s.sender_pid == Some(run.var("pid")? as u32), || {
            format!("sender {:?}", s.sender_pid)
        })?;
        ensure(s.fault_address.is_none(), || {
            "fault address on a sent signal".into()
        })?;
        let names = run.symbols(&r)?;
        ensure(names.iter().any(|n| n.contains("child::run")), || {
            format!("child::run not in {names:?}")
        })
    }),
    ("overflow_main", |run| {
        // std's handler, chained, prints its message and aborts.
        killed_by(run, libc::SIGABRT)?;
        ensure(run.stderr.contains("has overflowed its stack"), || {
            "std's message missing".into()
        })?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 134)?;
        ensure(r.stack_overflow, || "not flagged as stack overflow".into())?;
        ensure(r.backtrace.len() >= 32, || {
            format!("only {} frames of a deep stack", r.backtrace.len())
        })?;
        let names = run.symbols(&r)?;
        ensure(names.iter().any(|n| n.contains("recurse")), || {
            format!("recurse not in {names:?}")
        })
    }),
    ("overflow_std_thread", |run| {
        killed_by(run, libc::SIGABRT)?;
        ensure(run.stderr.contains("thread 'so-thread'"), || {
            "std's message missing".into()
        })?;
        // The fault was SIGSEGV, but std's handler (chained) ended the process with SIGABRT,
        // and the record's status says so.
        let r = fatal_record(run, "SIGSEGV", "SEGV_ACCERR", 134)?;
        ensure(r.stack_overflow, || "not flagged as stack overflow".into())?;
        ensure(
            r.thread.as_ref().is_some_and(|t| t.name == "so-thread"),
            || format!("thread {:?}", r.thread),
        )
    }),
    ("overflow_pthread_prepared", |run| {
        // std's handler knows nothing of this thread: it restores the default and the fault
        // repeats.
        killed_by(run, libc::SIGSEGV)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_ACCERR", 139)?;
        ensure(r.stack_overflow, || "not flagged as stack overflow".into())?;
        let names = run.symbols(&r)?;
        ensure(names.iter().any(|n| n.contains("recurse")), || {
            format!("recurse not in {names:?}")
        })
    }),
    ("overflow_pthread_unprepared", |run| {
        // The pthread_create interposer gave the thread an alternate stack before it started.
        killed_by(run, libc::SIGSEGV)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_ACCERR", 139)?;
        ensure(r.stack_overflow, || "not flagged as stack overflow".into())
    }),
    ("fpe", |run| {
        killed_by(run, libc::SIGFPE)?;
        fatal_record(run, "SIGFPE", "FPE_INTDIV", 136).map(drop)
    }),
    ("ill", |run| {
        killed_by(run, libc::SIGILL)?;
        fatal_record(run, "SIGILL", "ILL_ILLOPN", 132).map(drop)
    }),
    ("trap", |run| {
        killed_by(run, libc::SIGTRAP)?;
        fatal_record(run, "SIGTRAP", "SI_KERNEL", 133).map(drop)
    }),
    ("bus", |run| {
        killed_by(run, libc::SIGBUS)?;
        let r = fatal_record(run, "SIGBUS", "BUS_ADRERR", 135)?;
        ensure(
            r.signal
                .as_ref()
                .and_then(|s| s.fault_address.as_deref())
                .is_some_and(|a| a != "0x0"),
            || "fault address".into(),
        )
    }),
    ("sent_segv", |run| {
        killed_by(run, libc::SIGSEGV)?;
        let r = fatal_record(run, "SIGSEGV", "SI_TKILL", 139)?;
        let s = r.signal.as_ref().ok_or("signal")?;
        ensure(s.sender_pid == Some(run.var("pid")? as u32), || {
            format!("sender {:?}", s.sender_pid)
        })?;
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        ensure(s.sender_uid == Some(uid), || {
            format!("uid {:?}", s.sender_uid)
        })?;
        ensure(!r.stack_overflow, || "a sent signal is no overflow".into())
    }),
    ("handler_fault", |run| {
        exited_with(run, 84)?;
        ensure(run.stderr.contains("inside the crash handler"), || {
            "message".into()
        })?;
        handler_failure_record(run, "fault inside the crash handler")
    }),
    ("chained_hang", |run| {
        // Recorded and committed, then stuck in the chained handler: the watchdog ends the
        // process with 84 and the record says so, keeping what the handler recorded.
        exited_with(run, 84)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 84)?;
        ensure(r.outcome == Outcome::FatalSignal, || {
            format!("outcome {:?}", r.outcome)
        })
    }),
    ("handler_hang", |run| {
        exited_with(run, 84)?;
        ensure(run.stderr.contains("did not finish in time"), || {
            "watchdog message".into()
        })?;
        handler_failure_record(run, "did not finish in time")
    }),
    ("memory_budget", |run| {
        exited_with(run, 80)?;
        let r = run.report()?;
        ensure(r.outcome == Outcome::MemoryBudget, || {
            format!("outcome {:?}", r.outcome)
        })?;
        ensure(r.exit_code == Some(80), || {
            format!("exit_code {:?}", r.exit_code)
        })?;
        ensure(run.stderr.contains("memory budget exhausted"), || {
            "summary".into()
        })
    }),
    ("panic_then_abort", |run| {
        killed_by(run, libc::SIGABRT)?;
        let r = fatal_record(run, "SIGABRT", "SI_TKILL", 134)?;
        ensure(
            r.panic.as_ref().is_some_and(|p| p.message == "boom"),
            || format!("panic {:?}", r.panic),
        )
    }),
    ("termination_log", |run| {
        killed_by(run, libc::SIGSEGV)?;
        let log =
            std::fs::read_to_string(run.dir.join("termination-log")).map_err(|e| e.to_string())?;
        ensure(
            log.starts_with("crashguard: fatal signal SIGSEGV")
                && log.ends_with('\n')
                && log.lines().count() == 1,
            || format!("log {log:?}"),
        )?;
        ensure(!run.stderr.contains("crashguard:"), || {
            "summary went to stderr".into()
        })?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 139)?;
        ensure(
            r.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("fatal signal SIGSEGV")),
            || format!("detail {:?}", r.detail),
        )
    }),
    ("chain_plain_handler", |run| {
        killed_by(run, libc::SIGSEGV)?;
        ensure(run.stderr.contains("previous plain handler ran"), || {
            "previous handler not called".into()
        })?;
        fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 139).map(drop)
    }),
    ("second_crash", |run| {
        killed_by(run, libc::SIGSEGV)?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_MAPERR", 139)?;
        ensure(
            r.thread
                .as_ref()
                .is_some_and(|t| t.name.starts_with("crash")),
            || format!("thread {:?}", r.thread),
        )
    }),
    ("stack_usage_std_thread", |run| {
        exited_with(run, 0)?;
        let used = run.var("altstack_used")?;
        let size = run.var("altstack_size")?;
        println!("    handler on a std-sized alternate stack: {used} of {size} bytes used");
        ensure(size < 64 * 1024, || {
            "not the small alternate stack the thread installed".into()
        })?;
        ensure(used + 2048 <= size, || {
            format!("{used} of {size} bytes: less than 2 KiB to spare")
        })?;
        let r = fatal_record(run, "SIGSEGV", "SEGV_ACCERR", 139)?;
        ensure(r.stack_overflow, || "not flagged as stack overflow".into())
    }),
];
