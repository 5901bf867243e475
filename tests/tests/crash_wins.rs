//! A crash always wins over a clean end (issue 8 item 3): a fault after the clean end was
//! committed amends the record to the fatal signal with the real status, and an exit that
//! races a crash handler waits for it instead of leaving with status 0.

use crashguard::Outcome;
use crashguard_tests::{Crash, crash_and_restart};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

/// The run died of SIGSEGV and the next run's report says so: outcome, status 139, signal.
fn assert_segv_on_record(run: &Crash) {
    run.crashed.assert_killed_by(libc::SIGSEGV);
    let r = &run.report;
    let ctx = || format!("{}\n{}", r.to_json_pretty(), run.crashed);
    assert_eq!(r.outcome, Outcome::FatalSignal, "{}", ctx());
    assert_eq!(r.exit_code, Some(139), "{}", ctx());
    assert_eq!(
        r.signal.as_ref().map(|s| s.name.as_str()),
        Some("SIGSEGV"),
        "{}",
        ctx()
    );
}

#[test]
fn a_fault_in_an_atexit_handler_after_guard_exit_is_the_end_on_record() {
    let run = crash_and_restart(CHILD, "segv-in-atexit-after-guard-exit", &[]);
    assert_segv_on_record(&run);
    let r = &run.report;
    let ctx = || format!("{}\n{}", r.to_json_pretty(), run.crashed);
    // The shutdown that ran before is still in the report, and a breadcrumb says what the
    // crash replaced.
    assert!(r.shutdown.is_some(), "{}", ctx());
    assert!(
        r.breadcrumbs
            .iter()
            .any(|b| b.message == "crash after the end was recorded as clean_exit (status 0)"),
        "{}",
        ctx()
    );
    run.assert_stored();
}

#[test]
fn an_exit_while_another_thread_is_in_the_crash_handler_waits_for_it() {
    let run = crash_and_restart(CHILD, "exit-while-handler-runs", &[]);
    // Not 0: the process dies of the fault the handler was handling.
    assert_segv_on_record(&run);
    let r = &run.report;
    let ctx = || format!("{}\n{}", r.to_json_pretty(), run.crashed);
    assert_eq!(
        r.thread.as_ref().map(|t| t.name.as_str()),
        Some("faulting"),
        "{}",
        ctx()
    );
}
