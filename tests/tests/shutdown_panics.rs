//! End-to-end: panics and deliberate exits against real child processes — a panic on the main
//! thread and on a worker (exit 70), `PanicPolicy::Unwind`, `Guard::exit`, `Guard::shutdown`
//! returning a `std::process::ExitCode`, and `Guard::exit` called from inside a hook.

mod shutdown_support;

use crashguard_tests::{Finished, TempDir};
use shutdown_support::{CHILD, hooks, previous_report, report_dir, spawn, termination_log};

fn run(test: &str, scenario: &str) -> (TempDir, Finished) {
    let dir = report_dir(test);
    let ended = spawn(CHILD, &[dir.to_str().expect("utf-8"), scenario]).wait();
    (dir, ended)
}

#[test]
fn a_panic_on_the_main_thread_runs_the_hooks_and_exits_70() {
    let (dir, ended) = run("panic-main", "panic-main");
    assert_eq!(ended.code(), Some(70), "{ended:#?}");
    assert_eq!(ended.lines_starting("HOOK "), ["HOOK cleanup"]);
    // The previous panic hook (std's) still printed its message.
    assert!(ended.stderr.contains("boom on main"), "{}", ended.stderr);

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "panic", "{report:#}");
    assert_eq!(report["exit_code"], 70);
    assert_eq!(report["panic"]["message"], "boom on main");
    let location = report["panic"]["location"].as_str().unwrap_or_default();
    assert!(location.contains("shutdown_child.rs:"), "{location}");
    assert_eq!(report["panic"]["thread"]["name"], "main");
    assert_eq!(report["shutdown"]["reason"], "panic");
    assert_eq!(
        report["shutdown"]["grace_ms"], 2000,
        "the panic grace period"
    );
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("boom on main")
    );
    let log = termination_log(&dir);
    assert!(log.starts_with("crashguard: panic (exit 70): "), "{log}");
    assert!(log.contains("boom on main"), "{log}");
    assert!(log.len() <= 4096 && log.lines().count() == 1);
}

#[test]
fn a_panic_on_a_worker_thread_tells_the_app_runs_the_hooks_and_exits_70() {
    let (dir, ended) = run("panic-worker", "panic-worker");
    assert_eq!(ended.code(), Some(70), "{ended:#?}");
    let observed = ended.lines_starting("OBSERVED ");
    assert_eq!(observed.len(), 1, "{ended:#?}");
    assert!(
        observed[0].starts_with("OBSERVED panic: boom on worker at "),
        "{observed:?}"
    );
    assert_eq!(ended.lines_starting("HOOK "), ["HOOK cleanup"]);

    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "panic", "{report:#}");
    assert_eq!(report["panic"]["message"], "boom on worker");
    assert_eq!(report["panic"]["thread"]["name"], "worker");
    // The run ended because of the worker's panic: the report names the worker, not the
    // coordinator thread that recorded the end.
    assert_eq!(report["thread"]["name"], "worker", "{report:#}");
    assert_eq!(hooks(&report), [("cleanup".to_owned(), "ok".to_owned())]);
}

#[test]
fn under_the_unwind_policy_a_worker_panic_is_recorded_and_the_process_goes_on() {
    let (dir, ended) = run("unwind", "unwind");
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert_eq!(ended.lines_starting("JOINED"), ["JOINED panicked=true"]);
    assert_eq!(ended.lines_starting("REQUESTED"), ["REQUESTED false"]);
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(report["panic"]["message"], "boom on worker");
    assert!(report["shutdown"].is_null(), "no shutdown under Unwind");
}

#[test]
fn guard_exit_runs_the_hooks_in_order_then_exits() {
    let (dir, ended) = run("exit", "exit");
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert_eq!(ended.lines_starting("HOOK "), ["HOOK one", "HOOK two"]);
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(report["shutdown"]["reason"], "app");
    assert_eq!(
        hooks(&report),
        [
            ("one".to_owned(), "ok".to_owned()),
            ("two".to_owned(), "ok".to_owned())
        ]
    );
}

#[test]
fn guard_shutdown_returns_a_std_exit_code_so_main_destructors_run() {
    let (dir, ended) = run("shutdown-code", "shutdown-code");
    assert_eq!(ended.code(), Some(80), "{ended:#?}");
    assert_eq!(
        ended.stdout[1..],
        ["HOOK one", "RETURNING", "DROPPED local"],
        "{ended:#?}"
    );
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "memory_budget", "{report:#}");
    assert_eq!(report["exit_code"], 80);
}

#[test]
fn guard_exit_inside_a_hook_ends_that_hook_and_the_rest_still_run() {
    let (dir, ended) = run("exit-in-hook", "exit-in-hook");
    assert_eq!(ended.code(), Some(81), "{ended:#?}");
    assert_eq!(
        ended.lines_starting("HOOK "),
        ["HOOK exiting", "HOOK after"]
    );
    assert!(!ended.stderr.contains("panicked"), "{}", ended.stderr);
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "thread_budget", "{report:#}");
    assert!(report["panic"].is_null(), "leaving a hook is not a panic");
    assert_eq!(
        hooks(&report),
        [
            ("exiting".to_owned(), "ok".to_owned()),
            ("after".to_owned(), "ok".to_owned())
        ]
    );
}

#[test]
fn a_hook_that_panics_is_recorded_and_the_rest_still_run() {
    let (dir, ended) = run("hook-panics", "hook-panics");
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert_eq!(ended.lines_starting("HOOK "), ["HOOK good"]);
    assert!(ended.stderr.contains("hook failed"), "{}", ended.stderr);
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(
        hooks(&report),
        [
            ("bad".to_owned(), "panicked".to_owned()),
            ("good".to_owned(), "ok".to_owned())
        ]
    );
    assert_eq!(report["panic"]["message"], "hook failed");
    assert_eq!(report["panic"]["thread"]["name"], "cg-hook-bad");
}

#[test]
fn a_panic_that_ends_in_abort_leaves_a_sigabrt_report_with_the_panic() {
    let (dir, ended) = run("abort-after-panic", "abort-after-panic");
    assert_eq!(ended.signal(), Some(libc::SIGABRT), "{ended:#?}");
    let report = previous_report(&dir);
    assert_eq!(report["outcome"], "fatal_signal", "{report:#}");
    assert_eq!(report["signal"]["name"], "SIGABRT");
    assert_eq!(report["panic"]["message"], "boom before abort");
}
