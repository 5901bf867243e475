//! What the shutdown tests share on top of the harness in `crashguard_tests`: the two
//! programs they run, a report directory per test, and readers for what those programs leave.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crashguard_tests::{Child, TempDir};

pub const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-shutdown-child");
pub const SERVICE: &str = env!("CARGO_BIN_EXE_crashguard-service");

/// A fresh report directory for one test; kept for a look when the test fails.
pub fn report_dir(test: &str) -> TempDir {
    TempDir::new(&format!("shutdown-{test}"))
}

/// Starts `program` with `args` under the harness's watchdog.
pub fn spawn(program: &str, args: &[&str]) -> Child {
    let mut command = Command::new(program);
    command.args(args);
    Child::start(command)
}

/// Runs the shutdown child's `report` scenario on `dir` and returns the previous run's report.
pub fn previous_report(dir: &Path) -> serde_json::Value {
    let ended = spawn(CHILD, &[dir.to_str().expect("utf-8 path"), "report"]).wait();
    assert_eq!(ended.code(), Some(0), "report run: {ended:#?}");
    ended.previous_json()
}

/// The termination message file the shutdown child writes.
pub fn termination_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("termination-log")).unwrap_or_default()
}

/// Hook statuses of a report's shutdown section, as `(name, status)`.
pub fn hooks(report: &serde_json::Value) -> Vec<(String, String)> {
    report["shutdown"]["hooks"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h["name"].as_str().unwrap_or_default().to_owned(),
                        h["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
