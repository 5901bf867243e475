//! The thread budget end to end: a child that leaks threads through the guarded API into its
//! budget gets `Err` with a census naming the leak; under `ThreadPolicy::Exit` the run ends with
//! 81 and a `thread_budget` report, whether the guarded spawn or the sampler (counting threads
//! started outside the guard) sees it first; and a real OS limit (`RLIMIT_NPROC`, `RLIMIT_AS`)
//! gives `Err` with that limit named.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use crashguard::{Outcome, Report};
use crashguard_tests::{Child, Finished, TempDir, child_command};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-budget-child");
/// The thread budget of the child's budget scenarios.
const BUDGET: u32 = 20;

/// The child's command line, with std's default 2 MiB thread stacks.
fn command(dir: &Path, scenario: &str, args: &[&str]) -> Command {
    let mut c = child_command(CHILD, dir, scenario, args);
    c.env_remove("RUST_MIN_STACK");
    c
}

/// Runs `scenario` to the end.
fn run(dir: &Path, scenario: &str, args: &[&str]) -> Finished {
    Child::start(command(dir, scenario, args)).finish()
}

/// Runs the child again with `none` and returns what it read of the previous run.
fn restart(dir: &Path) -> Report {
    let restarted = run(dir, "none", &[]);
    restarted.assert_exit_code(0);
    restarted
        .previous()
        .unwrap_or_else(|| panic!("the restarted child found no report\n{restarted}"))
}

/// What the child printed about its failed spawn.
#[derive(Debug)]
struct SpawnFailure {
    spawned: u32,
    kind: String,
    display: String,
    summary: String,
}

fn spawn_failure(f: &Finished) -> SpawnFailure {
    let spawned = f
        .line("SPAWNED ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no SPAWNED line\n{f}"));
    let json: serde_json::Value = f
        .line("SPAWN_ERROR ")
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no SPAWN_ERROR line\n{f}"));
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
    SpawnFailure {
        spawned,
        kind: text("kind"),
        display: text("display"),
        summary: text("summary"),
    }
}

/// The report's census group `name`'s count.
fn group(r: &Report, name: &str) -> Option<u32> {
    r.threads
        .as_ref()?
        .groups
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.count)
}

#[test]
fn leaking_into_the_budget_gives_err_with_a_census_naming_the_leak() {
    let dir = TempDir::new("threads-error");
    let ended = run(dir.path(), "threads-error", &[]);
    ended.assert_exit_code(0);
    assert!(!ended.stderr.contains("panicked"), "{ended}");
    let e = spawn_failure(&ended);
    let ctx = || format!("{e:#?}\n{ended}");
    assert_eq!(e.kind, "budget", "{}", ctx());
    assert_eq!(
        e.spawned,
        BUDGET,
        "every thread within the budget started\n{}",
        ctx()
    );
    assert!(
        e.display
            .starts_with("thread budget exhausted: cannot spawn \"leaky-21\""),
        "{}",
        ctx()
    );
    assert!(
        e.display.contains(&format!("budget {BUDGET} ")),
        "the budget is named\n{}",
        ctx()
    );
    assert!(
        e.display.contains(&format!(
            "limit hit: thread budget: {BUDGET} of {BUDGET} guarded threads live"
        )),
        "{}",
        ctx()
    );
    assert!(
        e.display
            .contains(&format!("threads by name: leaky-*: {BUDGET}")),
        "the leak is the largest group\n{}",
        ctx()
    );
    assert!(
        e.summary
            .contains(&format!("largest group leaky-*: {BUDGET}")),
        "{}",
        ctx()
    );

    // The refusal left a breadcrumb, and the process carried on to a clean exit.
    let r = restart(dir.path());
    assert_eq!(r.outcome, Outcome::CleanExit, "{}", r.to_json_pretty());
    assert!(
        r.breadcrumbs
            .iter()
            .any(|b| b.message == "thread budget exhausted: guarded spawn refused"),
        "{}",
        r.to_json_pretty()
    );
}

#[test]
fn exit_policy_ends_a_refused_guarded_spawn_with_81_and_a_census() {
    let dir = TempDir::new("threads-exit");
    let ended = run(dir.path(), "threads-exit", &[]);
    ended.assert_exit_code(81);
    let e = spawn_failure(&ended);
    assert_eq!(e.kind, "budget", "{e:#?}\n{ended}");

    let r = restart(dir.path());
    let ctx = || format!("{}\n{e:#?}\n{ended}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::ThreadBudget, "{}", ctx());
    assert_eq!(r.exit_code, Some(81), "{}", ctx());
    let shutdown = r
        .shutdown
        .as_ref()
        .unwrap_or_else(|| panic!("no shutdown\n{}", ctx()));
    assert_eq!(shutdown.reason, "thread_budget", "{}", ctx());
    assert_eq!(
        r.detail.as_deref(),
        Some(format!("thread budget: {}", e.summary).as_str()),
        "the detail is the refused spawn's summary\n{}",
        ctx()
    );
    assert!(
        e.summary.contains(&format!("of {BUDGET} guarded threads")),
        "{}",
        ctx()
    );
    // The census was taken when the run ended, with the leaked threads still alive.
    assert_eq!(group(&r, "leaky-"), Some(e.spawned), "{}", ctx());
    let census = r.threads.as_ref().expect("census");
    assert_eq!(
        census.groups.first().map(|g| g.name.as_str()),
        Some("leaky-")
    );
    assert!(census.total > e.spawned, "{}", ctx());
}

#[test]
fn exit_policy_counts_threads_started_outside_the_guard() {
    let dir = TempDir::new("threads-outside");
    let ended = run(dir.path(), "threads-outside", &[]);
    ended.assert_exit_code(81);
    assert!(ended.line("READY").is_some(), "{ended}");

    let r = restart(dir.path());
    let ctx = || format!("{}\n{ended}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::ThreadBudget, "{}", ctx());
    assert_eq!(r.exit_code, Some(81), "{}", ctx());
    let detail = r.detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("thread budget: ")
            && detail.ends_with(&format!("threads crossed the hard limit of {BUDGET}")),
        "{}",
        ctx()
    );
    assert_eq!(group(&r, "outside-"), Some(24), "{}", ctx());
    let res = r
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("no heartbeat\n{}", ctx()));
    assert_eq!(res.thread_budget, Some(u64::from(BUDGET)), "{}", ctx());
    assert!(
        res.threads.is_some_and(|t| t > u64::from(BUDGET)),
        "{}",
        ctx()
    );
}

/// Every uid that owns a task now.
fn uids_in_use() -> HashSet<u32> {
    let mut uids = HashSet::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if let Some(line) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
            uids.extend(
                line.split_whitespace()
                    .filter_map(|u| u.parse::<u32>().ok()),
            );
        }
    }
    uids
}

#[test]
fn rlimit_nproc_refusal_names_the_limit() {
    let dir = TempDir::new("threads-nproc");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // Root is exempt from RLIMIT_NPROC; the child then becomes a uid nobody uses.
    let uid = root.then(|| {
        let used = uids_in_use();
        (47_000..48_000)
            .find(|u| !used.contains(u))
            .expect("a free uid")
    });
    let uid_arg = uid.map(|u| u.to_string());
    let args: Vec<&str> = uid_arg.iter().map(String::as_str).collect();
    let ended = run(dir.path(), "threads-nproc", &args);
    ended.assert_exit_code(0);
    assert!(!ended.stderr.contains("panicked"), "{ended}");
    let e = spawn_failure(&ended);
    let ctx = || format!("{e:#?}\n{ended}");
    assert_eq!(e.kind, "os", "{}", ctx());
    assert!(
        e.display.starts_with(&format!(
            "the os refused to create thread \"leaky-{}\"",
            e.spawned + 1
        )),
        "{}",
        ctx()
    );
    assert!(e.display.contains("limit hit: RLIMIT_NPROC"), "{}", ctx());
    if let Some(uid) = uid {
        assert!(
            e.display
                .contains(&format!("tasks of uid {uid} (100%), exhausted")),
            "{}",
            ctx()
        );
        assert!(
            e.display.contains(&format!("leaky-*: {}", e.spawned)),
            "{}",
            ctx()
        );
    }
    assert!(e.summary.contains("hit RLIMIT_NPROC"), "{}", ctx());
}

#[test]
fn rlimit_as_refusal_names_the_limit() {
    let dir = TempDir::new("threads-rlimit-as");
    let ended = run(dir.path(), "threads-rlimit-as", &[]);
    ended.assert_exit_code(0);
    assert!(!ended.stderr.contains("panicked"), "{ended}");
    let e = spawn_failure(&ended);
    let ctx = || format!("{e:#?}\n{ended}");
    assert_eq!(e.kind, "os", "{}", ctx());
    assert!(e.display.contains("limit hit: RLIMIT_AS"), "{}", ctx());
    assert!(e.display.contains("a new stack needs 2.0 MiB"), "{}", ctx());
    // The limit left room for a few stacks, not for dozens; the threads that did start are
    // in the census (unless other threads of the child took the room first).
    assert!(e.spawned < 10, "{}", ctx());
    if e.spawned > 0 {
        assert!(
            e.display.contains(&format!("leaky-*: {}", e.spawned)),
            "{}",
            ctx()
        );
    }
}
