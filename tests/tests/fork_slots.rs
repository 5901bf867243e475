//! Fork-safe slots: a process that forks a helper and then crashes is reported by its restart
//! while the helper still lives. The helper neither holds the parent's slot lock (the restart
//! takes slot 0 again) nor writes into the parent's record (its breadcrumb, written through
//! the reference the parent held, is not in the report).

use crashguard_tests::{Child, TempDir, child_command, run_child};

const SEC: &str = env!("CARGO_BIN_EXE_crashguard-sec-child");

/// Kills the helper when the test ends, however it ends.
struct Helper(i32);

impl Drop for Helper {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions. The helper was reparented when its
        // parent died, so this process cannot reap it; its pid stays valid while it lives.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); read the state letter instead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

#[test]
fn the_restart_reads_the_crash_while_a_forked_helper_lives() {
    let dir = TempDir::new("fork");
    let mut parent = Child::start(child_command(SEC, dir.path(), "fork-then-crash", &[]));
    let helper: i32 = parent
        .expect_line("FORKED ")
        .trim()
        .parse()
        .expect("the helper's pid");
    let helper = Helper(helper);
    let crashed = parent.wait();
    crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        crashed.installed().blackbox.ends_with("sec.0.box"),
        "{crashed}"
    );
    assert!(
        alive(helper.0),
        "the helper must outlive its parent for this test"
    );

    let restarted = run_child(SEC, dir.path(), "none", &[]);
    restarted.assert_exit_code(0);
    assert!(
        alive(helper.0),
        "the helper must still live during the restart"
    );
    // The helper does not hold the slot: the restart takes slot 0 and reads the crash there.
    assert!(
        restarted.installed().blackbox.ends_with("sec.0.box"),
        "the forked helper still holds slot 0\n{restarted}"
    );
    let report = restarted
        .previous()
        .unwrap_or_else(|| panic!("the crash was not read\n{crashed}\n{restarted}"));
    assert_eq!(
        report.outcome,
        crashguard::Outcome::FatalSignal,
        "{restarted}"
    );
    assert_eq!(report.exit_code, Some(128 + libc::SIGSEGV as u32));
    let crumbs: Vec<&str> = report
        .breadcrumbs
        .iter()
        .map(|b| b.message.as_str())
        .collect();
    assert!(crumbs.contains(&"parent about to crash"), "{crumbs:?}");
    assert!(
        !crumbs.contains(&"written by the forked helper"),
        "the helper wrote into the parent's record: {crumbs:?}"
    );
    drop(helper);
}
