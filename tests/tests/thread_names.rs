//! Full thread names: the kernel keeps 15 bytes of a thread's name, so a crash on a thread that
//! `crashguard::thread::Builder` started must still be reported under the whole name, by the
//! next run and by `crashguard show`.

use crashguard_cli::backtrace::Options;
use crashguard_cli::commands;
use crashguard_tests::crash_and_restart;

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");
/// The name `segv-long-thread-name` gives its thread (40 characters).
const FULL: &str = "ingest-partition-compactor-worker-000042";

#[test]
fn a_crash_on_a_builder_thread_is_reported_under_its_full_name() {
    assert_eq!(FULL.len(), 40);
    let crash = crash_and_restart(CHILD, "segv-long-thread-name", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let r = &crash.report;
    let pretty = r.to_json_pretty();
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{pretty}");
    let thread = r.thread.as_ref().expect("the crashing thread");
    assert_eq!(thread.name, FULL, "{pretty}");
    assert_eq!(
        thread.truncated_name.as_deref(),
        Some(&FULL[..15]),
        "the kernel's 15 bytes stay available\n{pretty}"
    );
    assert!(r.to_string().contains(FULL), "{r}");

    let shown = commands::show(crash.dir.path(), false, &Options::default()).expect("show");
    assert!(shown.stdout.contains(FULL), "{}", shown.stdout);
    let json = commands::show(crash.dir.path(), true, &Options::default()).expect("show --json");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["thread"]["name"], FULL, "{}", json.stdout);
    assert_eq!(
        v["thread"]["truncated_name"],
        &FULL[..15],
        "{}",
        json.stdout
    );
}
