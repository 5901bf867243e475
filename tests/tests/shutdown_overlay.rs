//! End-to-end: a report directory on an overlay filesystem — what a container's writable root
//! is — draws the warning at install (stderr, and a breadcrumb the next run's report carries),
//! and one on an ordinary filesystem does not.
//!
//! The overlay is real: each run of the child happens in a mount namespace of its own
//! (`unshare --user --map-root-user --mount`, or `unshare --mount` when the tests run as root
//! and user namespaces are refused) where the same lower/upper/work directories are mounted
//! with `mount -t overlay`, so the second run finds what the first left in the upper layer. A
//! machine that allows neither (no `unshare`, user namespaces disabled and not root, no
//! overlay module) cannot host the test; it then says so on stderr and checks only the
//! ordinary-filesystem half.

mod shutdown_support;

use std::path::Path;
use std::process::Command;

use crashguard_tests::{Child, Finished, TempDir};
use shutdown_support::CHILD;

const WARNING: &str = "is on an overlay filesystem (a container's root)";
const BREADCRUMB: &str = "report directory on an overlay filesystem";

/// The ways of getting a mount namespace to try, most unprivileged first.
const UNSHARE: [&[&str]; 2] = [&["--user", "--map-root-user", "--mount"], &["--mount"]];

/// A `sh -c` script that mounts the overlay of `base` on `base/merged` and runs `then`.
fn mount_script(base: &Path, then: &str) -> String {
    let d = |n: &str| base.join(n).to_str().expect("utf-8 path").to_owned();
    format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {} && {then}",
        d("lower"),
        d("upper"),
        d("work"),
        d("merged")
    )
}

/// The `unshare` flags with which an overlay can be mounted here, or why none can.
fn overlay_support(base: &Path) -> Result<&'static [&'static str], String> {
    let mut why = Vec::new();
    for flags in UNSHARE {
        let probe = Command::new("unshare")
            .args(flags)
            .args(["sh", "-c", &mount_script(base, "stat -f -c %T merged")])
            .current_dir(base)
            .output();
        match probe {
            Ok(out) if out.status.success() && out.stdout.starts_with(b"overlay") => {
                return Ok(flags);
            }
            Ok(out) => why.push(format!(
                "unshare {}: {} {}",
                flags.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => why.push(format!("unshare: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Runs the shutdown child's `report` scenario with its report directory inside the overlay.
fn run_on_overlay(base: &Path, flags: &[&str]) -> Finished {
    let reports = base.join("merged/reports");
    let script = mount_script(
        base,
        &format!(
            "exec {CHILD} {} report",
            reports.to_str().expect("utf-8 path")
        ),
    );
    let mut command = Command::new("unshare");
    command.args(flags).args(["sh", "-c", &script]);
    Child::start(command).wait()
}

#[test]
fn a_report_dir_on_an_overlay_draws_the_warning_and_the_next_run_still_reads_it() {
    // The control: an ordinary filesystem draws no warning.
    let plain = TempDir::new("overlay-control");
    let ended = Child::start({
        let mut c = Command::new(CHILD);
        c.args([plain.path().to_str().expect("utf-8 path"), "report"]);
        c
    })
    .wait();
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
    assert!(
        !ended.stderr.contains(WARNING),
        "no warning off an overlay: {}",
        ended.stderr
    );

    let base = TempDir::new("overlay");
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(base.path().join(d)).expect("overlay directories");
    }
    let flags = match overlay_support(base.path()) {
        Ok(flags) => flags,
        Err(why) => {
            eprintln!(
                "SKIPPED the overlay half of this test: no overlay can be mounted on this \
                 machine ({why})"
            );
            return;
        }
    };

    // Run 1: installs with its reports on the overlay and ends cleanly.
    let first = run_on_overlay(base.path(), flags);
    assert_eq!(first.code(), Some(0), "{first:#?}");
    let warning = first
        .stderr
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_else(|| panic!("the warning on stderr: {}", first.stderr));
    assert!(warning.contains("merged/reports"), "{warning}");
    assert!(warning.contains("emptyDir"), "{warning}");
    // What the first run wrote went to the upper layer, where the next mount finds it.
    assert!(base.path().join("upper/reports").is_dir());

    // Run 2, in a fresh namespace over the same layers: the previous run's report carries the
    // breadcrumb, and the warning is given again.
    let second = run_on_overlay(base.path(), flags);
    assert_eq!(second.code(), Some(0), "{second:#?}");
    assert!(second.stderr.contains(WARNING), "{}", second.stderr);
    let previous = second.previous_json();
    assert_eq!(previous["outcome"], "clean_exit", "{previous:#}");
    let crumbs = previous["breadcrumbs"]
        .as_array()
        .unwrap_or_else(|| panic!("breadcrumbs: {previous:#}"));
    assert!(
        crumbs.iter().any(|b| b["message"]
            .as_str()
            .is_some_and(|t| t.contains(BREADCRUMB))),
        "{crumbs:#?}"
    );
}
