//! The README's main command, run for real: the `demo` binary crashes its service child,
//! restarts it, and must exit 0 having told the whole story truthfully.
//!
//! This test lives in the examples package, not in `tests/`, because Cargo builds a package's
//! binaries for its own integration tests only (`CARGO_BIN_EXE_demo` is set here and nowhere
//! else); so `cargo test --workspace` always runs it against the freshly built `demo`.

use std::process::Command;

use crashguard_tests::{Child, TempDir};

#[test]
fn demo_crashes_restarts_and_explains() {
    let dir = TempDir::new("demo");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.arg("--report-dir").arg(dir.path());
    let run = Child::start(cmd).finish();
    run.assert_exit_code(0);
    let out = run.stdout.join("\n");
    let expect = |needle: &str| {
        assert!(
            out.contains(needle),
            "the demo's output lacks {needle:?}\n{run}"
        );
    };
    // Step 1: the service really died of SIGSEGV, and its handler said so on stderr.
    expect("no previous run in this report directory");
    expect("service ! crashguard: fatal signal SIGSEGV (SEGV_MAPERR) at 0xb8 in thread 'worker-");
    expect(
        "the service was killed by signal 11 (SIGSEGV); a shell or an orchestrator shows exit status 139",
    );
    // Step 2: the restarted service read the crash back, with symbolized frames of the bug.
    expect("previous run: demo-service (pid ");
    expect("died of SIGSEGV (SEGV_MAPERR at 0xb8) on thread 'worker-");
    expect("signal:       SIGSEGV (11), code SEGV_MAPERR (1), fault address 0xb8");
    expect("stack overflow: no");
    expect("#0 demo::service::record_hit");
    expect("#1 demo::service::handle_job");
    expect("at examples/src/demo/service.rs:");
    expect("(update hit counter) started");
    expect("the restarted service exited cleanly (exit status: 0)");
    // Step 3: explain.
    expect("[3/3] crashguard explain 139");
    expect("exit status 139: killed by signal 11 (SIGSEGV)");
    // The report the restarted service stored is where the demo said.
    let reports: Vec<_> = std::fs::read_dir(dir.path().join("reports"))
        .expect("the reports directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    expect(&format!("report saved: {}", reports[0].display()));
    let report: crashguard::Report =
        serde_json::from_slice(&std::fs::read(&reports[0]).expect("read")).expect("parse");
    assert_eq!(report.outcome, crashguard::Outcome::FatalSignal);
    assert_eq!(
        report.thread.map(|t| t.name.starts_with("worker-")),
        Some(true)
    );
}

#[test]
fn restarted_service_without_a_crash_to_report_fails() {
    // The service's restart mode on an empty report directory finds nothing and says so: the
    // demo cannot claim success without a report.
    let dir = TempDir::new("demo-empty");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.arg("service").arg("--report-dir").arg(dir.path());
    let run = Child::start(cmd).finish();
    run.assert_exit_code(1);
    assert!(
        run.stdout
            .iter()
            .any(|l| l == "expected to find the previous run's crash, found none"),
        "{run}"
    );
}
