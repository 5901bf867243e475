//! The fatal handler itself (crashguard-signals without the facade), with real crashes: faults
//! inside the handler, signals sent while it records, ignored signals, a library that installs
//! its handler after crashguard, the watchdog, the exit policy, the termination log, a second
//! crashing thread, stack use on a small alternate stack, and what the kernel sees after the
//! handler (the fault that ends the process is the original one).
//!
//! Each case runs `crashguard-signals-child DIR SCENARIO` (which arms a black box and installs
//! the handlers directly), asserts its wait status, then runs `... DIR none` — the whole of
//! crashguard, which reads, decodes and symbolizes the previous run — and asserts the typed
//! `Report` it printed.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crashguard::{Outcome, Report};
use crashguard_tests::{Child, Expected, TempDir, child_command, crash_and_restart, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-signals-child");

/// What the record of a SIGSEGV in `function` on the signals child's main thread (named after
/// the executable, cut to 15 bytes by the kernel) must say. The child arms its black box
/// itself, for the app `sigtest`, and leaves one breadcrumb before it crashes.
fn segv(code_name: &'static str, function: &'static str) -> Expected<'static> {
    Expected {
        app: "sigtest",
        signal: libc::SIGSEGV,
        name: "SIGSEGV",
        code_name,
        stack_overflow: false,
        function,
        thread: "crashguard-sign",
        breadcrumbs: &["child armed"],
        last_breadcrumb: "child armed",
        stack_copy: true,
    }
}

fn symbols(r: &Report) -> Vec<String> {
    crashguard_tests::top_symbols(r, 16)
}

#[test]
fn null_write_is_recorded_with_registers_and_stack() {
    let crash = crash_and_restart(CHILD, "segv", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

/// A black box without a stack copy still gets the whole backtrace: the unwinder reads the live
/// stack within the thread's known bounds (before, no copy meant frame 0 only).
#[test]
fn without_a_stack_copy_the_backtrace_is_still_whole() {
    let crash = crash_and_restart(CHILD, "no-stack-copy", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let r = crash.assert_fatal(Expected {
        stack_copy: false,
        ..segv("SEGV_MAPERR", "crash_null_write")
    });
    assert!(r.backtrace.len() >= 3, "{:?}", symbols(r));
    assert!(crashguard_tests::has_frame(r, "run"), "{:?}", symbols(r));
    assert!(crashguard_tests::has_frame(r, "main"), "{:?}", symbols(r));
}

/// Issue 8, row 1: a call through a garbage function pointer. The program counter is unmapped:
/// frame 0 is that address, the unwinder neither faults nor gives up (the caller that made the
/// bad call is the next frame, and its callers follow), and the process dies of the fault.
#[test]
fn a_wild_jump_is_recorded_and_dies_of_its_fault() {
    let crash = crash_and_restart(CHILD, "wild-jump", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let r = crash.assert_fatal(segv("SEGV_MAPERR", "crash_wild_jump"));
    let s = r.signal.as_ref().expect("signal");
    assert_eq!(s.fault_address.as_deref(), Some("0xdead0000"));
    assert_eq!(
        r.backtrace[0].ip, "0xdead0000",
        "frame 0 is the wild target"
    );
    assert!(
        !crash.crashed.stderr.contains("inside the crash handler"),
        "the unwinder faulted\n{}",
        crash.crashed
    );
    // The caller of the bad call (`crash_wild_jump`, asserted above) and its callers follow.
    let names = symbols(r);
    assert!(
        names.iter().any(|n| n.contains("signals_child::run")),
        "the unwind stopped early: {names:?}"
    );
}

#[test]
fn a_sent_segv_is_recorded_as_sent() {
    let crash = crash_and_restart(CHILD, "sent-segv", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let r = crash.assert_fatal(segv("SI_TKILL", "run"));
    let s = r.signal.as_ref().expect("signal");
    assert_eq!(s.sender_pid, Some(crash.pid));
    assert_eq!(s.fault_address, None);
    assert!(!r.stack_overflow, "a sent signal is no overflow");
}

/// Issue 8 item 2: a fault inside the handler while it records keeps the original crash; the
/// process still dies of the original signal.
#[test]
fn a_fault_inside_the_handler_keeps_the_original_crash() {
    let crash = crash_and_restart(CHILD, "fault-in-handler", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        crash.crashed.stderr.contains(
            "fault inside the crash handler (SIGSEGV); the record keeps the original crash"
        ),
        "{}",
        crash.crashed
    );
    let r = crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
    let detail = r.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("fatal signal SIGSEGV (SEGV_MAPERR) at 0x0")
            && detail.contains("recording cut short by SIGSEGV inside the crash handler"),
        "{detail}"
    );
    assert!(
        r.context.is_some(),
        "what was gathered before the fault stays"
    );
}

#[test]
fn a_hanging_handler_is_ended_by_the_watchdog_with_84() {
    let crash = crash_and_restart(CHILD, "handler-hang", &[]);
    crash.crashed.assert_exit_code(84);
    assert!(crash.crashed.stderr.contains("did not finish in time"));
    let r = &crash.report;
    assert_eq!(r.outcome, Outcome::HandlerFailure, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(84));
}

#[test]
fn the_watchdog_ends_a_hanging_handler_on_a_thread_that_blocked_its_signal() {
    let crash = crash_and_restart(CHILD, "handler-hang-trap-blocked", &[]);
    crash.crashed.assert_exit_code(84);
    let r = &crash.report;
    assert_eq!(r.outcome, Outcome::HandlerFailure, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(84));
}

#[test]
fn a_forked_childs_hanging_handler_is_ended_by_a_watchdog_of_its_own() {
    let dir = TempDir::new("forked-child-handler-hang");
    let finished = run_child(CHILD, dir.path(), "forked-child-handler-hang", &[]);
    finished.assert_exit_code(0);
    assert_eq!(finished.line("FORKED_CHILD_EXIT"), Some("84"), "{finished}");
    assert!(
        finished.stderr.contains("did not finish in time"),
        "{finished}"
    );
}

#[test]
fn the_watchdogs_takeover_stops_a_handler_that_keeps_writing() {
    // The enricher never stops storing into the end section. Had the takeover been made by
    // another thread while the recording thread ran on, its next store would land after the
    // takeover's checksum and the next run would find a torn section.
    let crash = crash_and_restart(CHILD, "handler-keeps-writing", &[]);
    crash.crashed.assert_exit_code(84);
    assert!(crash.crashed.stderr.contains("did not finish in time"));
    let r = &crash.report;
    let ctx = || format!("{}\n{}", r.to_json_pretty(), crash.crashed);
    assert_eq!(r.outcome, Outcome::HandlerFailure, "{}", ctx());
    assert_eq!(r.exit_code, Some(84), "{}", ctx());
    assert!(
        r.detail.as_deref().unwrap_or("").contains("watchdog"),
        "{}",
        ctx()
    );
    // What the recording thread gathered before it got stuck stays: its thread and signal.
    assert_eq!(
        r.thread.as_ref().map(|t| t.name.as_str()),
        Some("stuck-writer"),
        "{}",
        ctx()
    );
    assert_eq!(r.signal.as_ref().map(|s| s.name.as_str()), Some("SIGSEGV"));
}

#[test]
fn a_hanging_chained_handler_keeps_the_record_with_84() {
    let crash = crash_and_restart(CHILD, "chained-hang", &[]);
    crash.crashed.assert_exit_code(84);
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

#[test]
fn a_plain_previous_handler_is_chained() {
    let crash = crash_and_restart(CHILD, "chain-plain", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    assert!(crash.crashed.stderr.contains("previous plain handler ran"));
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

/// Issue 8, row 5 and item 4: `kill -SEGV` / `kill -ABRT` from outside, aimed at the thread
/// that is recording (and at the process), are sent signals, not faults inside the handler: the
/// crash being recorded ends the process and is what the record says.
#[test]
fn signals_sent_while_the_handler_records_change_nothing() {
    let dir = TempDir::new("while-recording");
    let mut child = Child::start(child_command(
        CHILD,
        dir.path(),
        "signals-while-recording",
        &[],
    ));
    let tid: i32 = child.expect_line("RECORDING").parse().expect("a thread id");
    for signo in [libc::SIGSEGV, libc::SIGABRT] {
        // SAFETY: tgkill with plain integers; the child is alive (it waits for our line).
        let rc = unsafe { libc::syscall(libc::SYS_tgkill, child.pid(), tid, signo) };
        assert_eq!(rc, 0, "tgkill");
    }
    child.signal(libc::SIGABRT);
    let sent = child.try_send_line("go");
    let crashed = child.wait();
    assert!(
        sent.is_ok(),
        "the child ended before the go-ahead: {sent:?}\n{crashed}"
    );
    crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        !crashed.stderr.contains("inside the crash handler"),
        "{crashed}"
    );
    let restarted = run_child(CHILD, dir.path(), "none", &[]);
    let r = restarted.previous().expect("a report");
    assert_eq!(r.outcome, Outcome::FatalSignal, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(139));
    let s = r.signal.as_ref().expect("signal");
    assert_eq!(
        (s.name.as_str(), s.code_name.as_str()),
        ("SIGSEGV", "SEGV_MAPERR")
    );
}

/// Issue 8, row 9: a signal the process had set to `SIG_IGN` stays ignored when it is sent.
#[test]
fn an_ignored_signal_stays_ignored_when_sent() {
    let crash = crash_and_restart(CHILD, "ignored-trap-sent", &[]);
    assert!(
        crash.crashed.line("ALIVE").is_some(),
        "the sent SIGTRAP killed the process\n{}",
        crash.crashed
    );
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    crash.assert_fatal(Expected {
        breadcrumbs: &["child armed", "survived the ignored SIGTRAP"],
        last_breadcrumb: "survived the ignored SIGTRAP",
        ..segv("SEGV_MAPERR", "crash_null_write")
    });
}

/// Issue 8, row 8: a handler another library installed after crashguard stays installed when
/// crashguard's handlers are dropped, and still works (chaining through crashguard's, which then
/// passes the signal on as the old disposition would).
#[test]
fn dropping_the_handlers_keeps_a_later_librarys_handler() {
    let crash = crash_and_restart(CHILD, "later-library-kept", &[]);
    assert!(
        crash.crashed.line("KEPT").is_some(),
        "the later library's handler was replaced\n{}",
        crash.crashed
    );
    assert!(
        crash.crashed.stderr.contains("later library handler ran"),
        "{}",
        crash.crashed
    );
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        !crash.crashed.stderr.contains("crashguard: fatal signal"),
        "uninstalled handlers record nothing\n{}",
        crash.crashed
    );
}

#[test]
fn a_recent_allocation_failure_makes_an_abort_the_memory_budget() {
    let crash = crash_and_restart(CHILD, "memory-budget", &[]);
    crash.crashed.assert_exit_code(80);
    assert_eq!(crash.report.outcome, Outcome::MemoryBudget);
    assert!(crash.crashed.stderr.contains("memory budget exhausted"));
}

#[test]
fn the_exit_policy_exits_with_128_plus_the_signal() {
    let crash = crash_and_restart(CHILD, "exit-policy", &[]);
    crash.crashed.assert_exit_code(139);
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

#[test]
fn the_summary_goes_to_the_termination_log() {
    let crash = crash_and_restart(CHILD, "termination-log", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let log = std::fs::read_to_string(crash.dir.join("termination-log")).expect("log");
    assert!(
        log.starts_with("crashguard: fatal signal SIGSEGV") && log.lines().count() == 1,
        "{log:?}"
    );
    assert!(
        !crash.crashed.stderr.contains("crashguard:"),
        "{}",
        crash.crashed
    );
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

#[test]
fn a_second_crashing_thread_leaves_the_first_crash_on_record() {
    let crash = crash_and_restart(CHILD, "second-crash", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    // The main thread crashed first; the thread "second" crashed while it recorded.
    crash.assert_fatal(segv("SEGV_MAPERR", "crash_null_write"));
}

/// Issue 8, row 7: a raw `pthread_create` thread that never calls `prepare_current` overflows
/// its stack; the interposer gave it an alternate stack, so the overflow is recorded.
#[test]
fn an_overflow_on_a_raw_pthread_is_recorded() {
    let crash = crash_and_restart(CHILD, "overflow-raw-pthread", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    // The raw thread has its creator's name.
    crash.assert_fatal(Expected {
        stack_overflow: true,
        ..segv("SEGV_ACCERR", "recurse")
    });
}

/// The handler still fits on a small alternate stack (std's size) that a thread installed
/// itself, with room to spare: measured by a previous handler it chains to.
#[test]
fn the_handler_fits_on_a_std_sized_alternate_stack() {
    let dir = TempDir::new("stack-usage");
    let done = run_child(CHILD, dir.path(), "stack-usage-small-altstack", &[]);
    done.assert_exit_code(0);
    let num = |k: &str| -> usize {
        done.line(k)
            .unwrap_or_else(|| panic!("no {k}\n{done}"))
            .parse()
            .expect("a number")
    };
    let (used, size) = (num("ALTSTACK_USED"), num("ALTSTACK_SIZE"));
    println!("handler on a {size}-byte alternate stack: {used} bytes used");
    assert!(size < 64 * 1024, "not the small stack: {size}");
    assert!(
        used + 2048 <= size,
        "{used} of {size} bytes: less than 2 KiB to spare"
    );
}

/// What the kernel delivered to a traced child, in order: `(signo, si_code, si_addr)`.
fn signals_delivered(scenario: &str) -> (Vec<(i32, i32, usize)>, i32) {
    let dir = TempDir::new(&format!("traced-{scenario}"));
    let mut command = Command::new(CHILD);
    command
        .arg(dir.path())
        .arg(scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: PTRACE_TRACEME in the forked child before exec is async-signal-safe (one
    // system call) and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped below with waitpid, which ptrace needs (std's wait would not report the stops).
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().expect("spawn a traced child");
    let pid = child.id() as libc::pid_t;
    // The deadline: a child that never ends is killed (SIGKILL ends a traced, stopped child
    // too) and the test then fails on its status.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let deadline = std::thread::spawn(move || {
        if stopped
            .recv_timeout(crashguard_tests::CHILD_TIMEOUT)
            .is_err()
        {
            // SAFETY: kill with plain integers; the child is not reaped before `stop` is sent.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let result = trace(pid);
    let _ = stop.send(());
    let _ = deadline.join();
    result
}

/// Follows the traced child `pid` until it ends; see [`signals_delivered`].
fn trace(pid: libc::pid_t) -> (Vec<(i32, i32, usize)>, i32) {
    let mut delivered = Vec::new();
    let mut exec_stop_seen = false;
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return (delivered, status);
        }
        assert!(libc::WIFSTOPPED(status), "status {status:#x}");
        let mut sig = libc::WSTOPSIG(status);
        if sig == libc::SIGTRAP && !exec_stop_seen {
            // The stop after exec.
            exec_stop_seen = true;
            sig = 0;
        } else {
            // SAFETY: a zeroed siginfo is a valid out-parameter for PTRACE_GETSIGINFO.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: the tracee is in a signal-delivery stop; `info` is writable.
            let rc = unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &mut info) };
            assert_eq!(rc, 0, "PTRACE_GETSIGINFO");
            // SAFETY: si_addr is meaningful for the fault signals recorded here.
            let addr = unsafe { info.si_addr() } as usize;
            delivered.push((info.si_signo, info.si_code, addr));
        }
        // SAFETY: resumes the stopped tracee, delivering the signal it stopped for.
        let rc = unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig as libc::c_long) };
        assert_eq!(rc, 0, "PTRACE_CONT");
    }
}

/// Issue 8, row 10 and item 9: after recording a fault, the handler returns into the faulting
/// instruction with the default action restored, so the signal that ends the process (and
/// that a core dump describes) is the original fault — `SEGV_MAPERR` at address 0 — not a
/// `tgkill` from the handler. Observed with ptrace: every signal the kernel delivered.
#[test]
fn the_process_dies_of_the_original_fault_not_a_resent_signal() {
    let (delivered, status) = signals_delivered("segv");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "status {status:#x}, delivered {delivered:?}"
    );
    let segvs: Vec<_> = delivered
        .iter()
        .filter(|(s, _, _)| *s == libc::SIGSEGV)
        .collect();
    assert_eq!(
        segvs.len(),
        2,
        "the fault, then the same fault again: {delivered:?}"
    );
    // SEGV_MAPERR is 1.
    for (_, code, addr) in segvs {
        assert_eq!((*code, *addr), (1, 0), "{delivered:?}");
    }
}

/// The other half of item 9: a signal that was sent is sent again (it would not repeat).
#[test]
fn a_sent_signal_is_sent_again() {
    let (delivered, status) = signals_delivered("sent-segv");
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "status {status:#x}, delivered {delivered:?}"
    );
    let last = delivered.last().copied().expect("signals");
    assert_eq!(
        (last.0, last.1),
        (libc::SIGSEGV, libc::SI_TKILL),
        "{delivered:?}"
    );
}
