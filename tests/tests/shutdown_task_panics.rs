//! End-to-end: panics in tokio tasks under the two policies made for async runtimes.
//! `Unwind` keeps tokio's isolation and still gives the panic a report of its own at once
//! (what `crashguard list` reads), counts it, and surfaces it in the next shutdown's report;
//! `ExitAfterUnwind` ends the process with 70 without parking the runtime's worker. Either
//! way the report names the panicking thread and its stack starts at the panic site.

mod shutdown_support;

use crashguard::Report;
use shutdown_support::{CHILD, previous_report, report_dir, spawn};

/// The reports stored in `dir`, as `crashguard list` finds them.
fn stored(dir: &std::path::Path) -> Vec<Report> {
    crashguard_blackbox::list_reports(dir)
        .expect("list the reports")
        .iter()
        .map(|r| crashguard_blackbox::read_report(&r.path).expect("read a report"))
        .collect()
}

fn first_symbol(report: &serde_json::Value) -> String {
    report["backtrace"][0]["symbol"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn under_unwind_a_task_panic_is_isolated_reported_at_once_counted_and_surfaced() {
    let dir = report_dir("task-panic-unwind");
    let d = dir.to_str().expect("utf-8");
    let mut c = spawn(CHILD, &[d, "task-panic-unwind"]);
    // The task failed alone: its JoinHandle says so, the runtime runs the next task, and the
    // guard counted the panic.
    assert_eq!(
        c.expect_line("JOINED"),
        "panicked=true next=Some(7) count=1"
    );
    c.expect_line("READY");
    // While the process runs, the panic already has its own report.
    let now = stored(&dir);
    assert_eq!(now.len(), 1, "{now:#?}");
    let isolated = &now[0];
    assert_eq!(isolated.outcome, crashguard::Outcome::Panic);
    assert_eq!(isolated.exit_code, None, "the process did not exit");
    let headline = isolated.to_string();
    assert!(
        headline.contains("panicked on thread 'rt-worker'"),
        "{headline}"
    );
    assert!(headline.contains("'boom in a task'"), "{headline}");
    let first = isolated
        .backtrace
        .first()
        .and_then(|f| f.symbol.clone())
        .unwrap_or_default();
    assert!(first.ends_with("::task_that_panics"), "{first}");

    c.signal(libc::SIGTERM);
    let ended = c.wait();
    assert_eq!(ended.code(), Some(0), "{ended:#?}");

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(report["panic"]["message"], "boom in a task");
    assert_eq!(report["panic"]["thread"]["name"], "rt-worker");
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("1 panic during the run"), "{detail}");
    assert!(first_symbol(&report).ends_with("::task_that_panics"));
}

#[test]
fn under_exit_after_unwind_a_task_panic_ends_the_process_without_stalling_the_drain() {
    let dir = report_dir("task-panic-exit");
    let d = dir.to_str().expect("utf-8");
    let mut c = spawn(CHILD, &[d, "task-panic-exit"]);
    // The worker was not parked: the task's JoinHandle resolved and the runtime ran the next
    // task, so main's drain can run at once.
    assert_eq!(
        c.expect_line("JOINED"),
        "panicked=true next=Some(7) count=1"
    );
    assert!(
        c.expect_line("DRAINING")
            .starts_with("panic: boom in a task at ")
    );
    let ended = c.wait();
    assert_eq!(ended.code(), Some(70), "{ended:#?}");
    assert_eq!(ended.lines_starting("HOOK "), ["HOOK cleanup"]);

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "panic", "{report:#}");
    assert_eq!(report["exit_code"], 70);
    // The headline's thread is the one that panicked, not crashguard's coordinator.
    assert_eq!(report["thread"]["name"], "rt-worker", "{report:#}");
    assert_eq!(report["shutdown"]["reason"], "panic");
    assert!(
        first_symbol(&report).ends_with("::task_that_panics"),
        "{report:#}"
    );
    // Ended by main's drain, well before the 2 s panic grace period.
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("grace period"), "{detail}");
}
