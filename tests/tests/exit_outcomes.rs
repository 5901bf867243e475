//! Exits made outside crashguard are named: the next run reports an `exit` outcome with the
//! status, never "killed without warning"; and `Guard::exit` takes the application's own codes.

use crashguard::Outcome;
use crashguard_tests::crash_and_restart;

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

/// Runs `scenario`, asserts its exit status, and returns the report of the next run.
fn exit_report(scenario: &str, status: i32) -> crashguard_tests::Crash {
    let run = crash_and_restart(CHILD, scenario, &[]);
    run.crashed.assert_exit_code(status);
    run
}

#[test]
fn std_process_exit_is_reported_as_exit_with_its_status() {
    let run = exit_report("process-exit-3", 3);
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Exit, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(3), "{}", r.to_json_pretty());
    assert_eq!(r.pid, run.pid);
    assert!(r.ended_at.is_some());
    let detail = r.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("without a crashguard shutdown"), "{detail}");
    let line = r.to_string();
    assert!(line.contains("exited with status 3"), "{line}");
    // An exit that bypassed the shutdown is worth a report file.
    run.assert_stored();
}

#[test]
fn libc_exit_is_reported_as_exit_with_its_status() {
    let run = exit_report("libc-exit-4", 4);
    assert_eq!(
        run.report.outcome,
        Outcome::Exit,
        "{}",
        run.report.to_json_pretty()
    );
    assert_eq!(run.report.exit_code, Some(4));
}

#[test]
fn main_returning_an_error_after_the_guard_is_dropped_gives_the_real_status() {
    let run = exit_report("drop-then-return-5", 5);
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Exit, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(5), "{}", r.to_json_pretty());
}

#[test]
fn main_returning_success_after_the_guard_is_dropped_stays_a_clean_exit() {
    let run = exit_report("drop-then-return-0", 0);
    assert_eq!(
        run.report.outcome,
        Outcome::CleanExit,
        "{}",
        run.report.to_json_pretty()
    );
    assert_eq!(run.report.exit_code, Some(0));
}

#[test]
fn a_leaked_guard_and_a_return_from_main_is_an_exit_not_a_kill() {
    let run = exit_report("forget-guard", 0);
    assert_eq!(
        run.report.outcome,
        Outcome::Exit,
        "{}",
        run.report.to_json_pretty()
    );
    assert_eq!(run.report.exit_code, Some(0));
    assert_eq!(run.report.verdict, None);
}

#[test]
fn guard_exit_with_an_application_code_is_an_exit_not_a_panic() {
    let run = exit_report("guard-exit-app-69", 69);
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Exit, "{}", r.to_json_pretty());
    assert_eq!(r.exit_code, Some(69));
    assert_eq!(r.panic, None);
    let shutdown = r.shutdown.as_ref().expect("the shutdown ran");
    assert_eq!(shutdown.reason, "app");
}
