//! The `crashguard` CLI at the on-call moment: a process killed without warning has left its
//! black box "running" and no report yet. `list` and `show` must say at once what the app's
//! next run will say, instead of "RUNNING" and "no crash reports".

use crashguard_cli::backtrace::Options;
use crashguard_cli::commands;
use crashguard_tests::{Child, TempDir, child_command, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

#[test]
fn list_and_show_tell_what_the_next_run_will_say_about_a_sigkilled_process() {
    let dir = TempDir::new("cli-oncall");
    let mut child = Child::start(child_command(CHILD, dir.path(), "wait", &[]));
    child.expect_line("READY");
    // While it runs, its box is held and no report exists.
    let running = commands::list(dir.path(), false, false).expect("list");
    assert!(
        running.stdout.contains("no crash reports") && running.stdout.contains("holds the slot"),
        "{}",
        running.stdout
    );
    child.signal(libc::SIGKILL);
    child.wait().assert_killed_by(libc::SIGKILL);

    // The process is gone and nobody has collected its box yet.
    let listed = commands::list(dir.path(), false, false).expect("list");
    let first_row = listed.stdout.lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        first_row.contains("killed_without_warning*") && first_row.contains("killed by"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("process is gone"),
        "{}",
        listed.stdout
    );
    let json = commands::list(dir.path(), true, false).expect("list --json");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["reports"][0]["uncollected"], true);
    assert_eq!(v["black_boxes"][0]["in_use"], false);

    let shown = commands::show(dir.path(), false, &Options::default()).expect("show");
    assert!(
        shown.stdout.contains("no process holds its lock")
            && shown.stdout.contains("waiting for a scenario on stdin"),
        "{}",
        shown.stdout
    );
    let shown = commands::show(
        dir.path(),
        true,
        &Options {
            disabled: true,
            ..Options::default()
        },
    )
    .expect("show --json");
    let said_now: crashguard::Report = serde_json::from_str(&shown.stdout).expect("report json");

    // The next run says the same.
    let next = run_child(CHILD, dir.path(), "none", &[]);
    next.assert_exit_code(0);
    let said_later = next.previous().expect("the next run read a report");
    assert_eq!(said_now.outcome, said_later.outcome);
    assert_eq!(said_now.pid, said_later.pid);
    assert_eq!(said_now.signature, said_later.signature);
    assert_eq!(said_now.breadcrumbs, said_later.breadcrumbs);
    assert!(said_now.verdict.is_some() && said_later.verdict.is_some());

    // Once collected, the row is an ordinary report and the box belongs to the new run.
    let listed = commands::list(dir.path(), false, false).expect("list");
    assert!(!listed.stdout.contains('*'), "{}", listed.stdout);
}

#[test]
fn show_skips_an_unreadable_newest_report() {
    let dir = TempDir::new("cli-unreadable");
    let crashed = run_child(CHILD, dir.path(), "abort", &[]);
    crashed.assert_killed_by(libc::SIGABRT);
    run_child(CHILD, dir.path(), "none", &[]).assert_exit_code(0);
    // A newer report file that cannot be parsed (a disk error, a truncated copy).
    let reports = dir.path().join("reports");
    let newest = reports.join("child-29991231T235959000Z-1.json");
    std::fs::write(&newest, b"{\"schema_version\": 1, \"app\": ").expect("write");
    let far_future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&newest)
        .and_then(|f| f.set_modified(far_future))
        .expect("set mtime");

    let shown = commands::show(
        dir.path(),
        false,
        &Options {
            disabled: true,
            ..Options::default()
        },
    )
    .expect("show skips to a readable report");
    assert!(shown.stdout.contains("SIGABRT"), "{}", shown.stdout);
    assert_eq!(shown.warnings.len(), 1, "{:?}", shown.warnings);
    assert!(
        shown.warnings[0].contains("skipped an unreadable report")
            && shown.warnings[0].contains("child-29991231T235959000Z-1.json"),
        "{:?}",
        shown.warnings
    );
}
