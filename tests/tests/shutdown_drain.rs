//! End-to-end: the application owns the drain. When it listens for the shutdown, the process
//! ends when the application ends it (or at the deadline), never merely because the hooks
//! finished; holds keep the exit back for work in flight.

mod shutdown_support;

use shutdown_support::{CHILD, hooks, previous_report, report_dir, spawn, termination_log};

#[test]
fn a_listening_application_ends_the_process_after_its_drain_not_after_the_hooks() {
    let dir = report_dir("drain");
    let d = dir.to_str().expect("utf-8");
    let mut c = spawn(CHILD, &[d, "drain"]);
    c.expect_line("READY");
    c.signal(libc::SIGTERM);
    // The hook finishes while main is still draining (main waits for the line below); the
    // process must survive that.
    c.expect_line("HOOK quick");
    c.send_line("FINISH");
    let ended = c.wait();
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert_eq!(
        ended.lines_starting("DRAINING SIGTERM").len(),
        1,
        "{ended:#?}"
    );
    assert_eq!(
        ended.lines_starting("DRAINED"),
        ["DRAINED"],
        "the drain was cut: {ended:#?}"
    );

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["shutdown"]["reason"], "signal");
    assert_eq!(
        report["shutdown"]["signal"]["sender_pid"],
        u64::from(std::process::id())
    );
    assert_eq!(hooks(&report), [("quick".to_owned(), "ok".to_owned())]);
}

#[test]
fn a_drain_that_never_ends_is_cut_at_the_deadline_with_82_and_says_so() {
    let dir = report_dir("drain-overdue");
    let d = dir.to_str().expect("utf-8");
    let mut c = spawn(CHILD, &[d, "drain-overdue"]);
    c.expect_line("READY");
    c.signal(libc::SIGTERM);
    c.expect_line("HOOK quick");
    let ended = c.wait();
    assert_eq!(ended.code(), Some(82), "{ended:#?}");

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "shutdown_timeout", "{report:#}");
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("the application had not ended its drain"),
        "{detail}"
    );
    assert_eq!(hooks(&report), [("quick".to_owned(), "ok".to_owned())]);
    assert!(
        termination_log(&dir).contains("shutdown_timeout (exit 82)"),
        "{}",
        termination_log(&dir)
    );
}

#[test]
fn a_hold_keeps_the_exit_back_until_the_work_in_flight_is_done() {
    let dir = report_dir("hold");
    let d = dir.to_str().expect("utf-8");
    let mut c = spawn(CHILD, &[d, "hold"]);
    c.expect_line("READY");
    c.signal(libc::SIGTERM);
    c.expect_line("HOOK quick");
    c.send_line("RELEASE");
    let ended = c.wait();
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert_eq!(
        ended.lines_starting("RELEASED"),
        ["RELEASED"],
        "the exit did not wait for the hold: {ended:#?}"
    );
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(hooks(&report), [("quick".to_owned(), "ok".to_owned())]);
}
