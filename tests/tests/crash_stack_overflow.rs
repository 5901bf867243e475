//! Real stack overflows on the main thread, a std thread, a crashguard thread and raw
//! `pthread_create` threads.
//!
//! The exit statuses are the documented ones (crashguard-signals, "Limitations"): crashguard
//! records the overflow, then chains to the handler that was there before. On threads std knows
//! (main and std-spawned, including crashguard's, which are std threads underneath) that is
//! std's handler, which prints "has overflowed its stack" and aborts, so the parent sees
//! SIGABRT while the report says SIGSEGV with `stack_overflow: true`. On a raw pthread std's
//! handler does not recognise the guard page and restores the default action, so the parent
//! sees SIGSEGV.

use crashguard_tests::{Expected, crash_and_restart};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

fn overflow(code_name: &'static str, thread: &'static str) -> Expected<'static> {
    Expected {
        stack_overflow: true,
        ..Expected::child(
            libc::SIGSEGV,
            "SIGSEGV",
            code_name,
            "crash_stack_overflow",
            thread,
        )
    }
}

/// A deep overflow fills the recorded frames with the recursing function.
fn assert_recursion_recorded(report: &crashguard::Report) {
    let recursive = report
        .backtrace
        .iter()
        .filter(|f| f.symbol.as_deref() == Some("crashguard_child::crash_stack_overflow"))
        .count();
    assert!(
        recursive >= 32,
        "expected at least 32 frames of the recursion, got {recursive} of {}",
        report.backtrace.len()
    );
}

#[test]
fn overflow_on_the_main_thread() {
    let crash = crash_and_restart(CHILD, "overflow-main", &[]);
    crash.crashed.assert_killed_by(libc::SIGABRT);
    assert!(
        crash.crashed.stderr.contains("thread 'main'")
            && crash.crashed.stderr.contains("has overflowed its stack"),
        "std's handler was chained\n{}",
        crash.crashed
    );
    // Below the main stack is unmapped address space, not a guard page.
    crash.assert_fatal(overflow("SEGV_MAPERR", "crashguard-chil"));
    assert_recursion_recorded(&crash.report);
    let tid = crash.report.thread.as_ref().map(|t| t.tid);
    assert_eq!(tid, Some(crash.pid), "the main thread's tid is the pid");
}

#[test]
fn overflow_on_a_std_thread() {
    let crash = crash_and_restart(CHILD, "overflow-std-thread", &[]);
    crash.crashed.assert_killed_by(libc::SIGABRT);
    assert!(
        crash.crashed.stderr.contains("thread 'std-overflow'")
            && crash.crashed.stderr.contains("has overflowed its stack"),
        "std's handler was chained\n{}",
        crash.crashed
    );
    // A thread's guard page is mapped PROT_NONE: an access error.
    crash.assert_fatal(overflow("SEGV_ACCERR", "std-overflow"));
    assert_recursion_recorded(&crash.report);
    let tid = crash.report.thread.as_ref().map(|t| t.tid);
    assert_ne!(tid, Some(crash.pid), "not the main thread");
}

#[test]
fn overflow_on_a_crashguard_thread() {
    let crash = crash_and_restart(CHILD, "overflow-guarded-thread", &[]);
    crash.crashed.assert_killed_by(libc::SIGABRT);
    crash.assert_fatal(overflow("SEGV_ACCERR", "cg-overflow"));
    assert_recursion_recorded(&crash.report);
}

#[test]
fn overflow_on_a_raw_pthread_that_called_prepare_current() {
    let crash = crash_and_restart(CHILD, "overflow-pthread", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        !crash.crashed.stderr.contains("has overflowed its stack"),
        "std does not know this thread\n{}",
        crash.crashed
    );
    crash.assert_fatal(overflow("SEGV_ACCERR", "raw-pthread"));
    assert_recursion_recorded(&crash.report);
}

/// A thread created by C code with a raw `pthread_create` that never calls `prepare_current`:
/// crashguard's `pthread_create` interposer gave it an alternate stack (and registered its stack
/// bounds) before its start routine ran, so the overflow is recorded like any other.
#[test]
fn overflow_on_an_unprepared_raw_pthread_is_recorded() {
    let crash = crash_and_restart(CHILD, "overflow-pthread-unprepared", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        crash
            .crashed
            .stderr
            .contains("crashguard: fatal signal SIGSEGV"),
        "the handler ran\n{}",
        crash.crashed
    );
    crash.assert_fatal(overflow("SEGV_ACCERR", "raw-pthread"));
    assert_recursion_recorded(&crash.report);
}
