//! The memory budget end to end: a child that runs into its 64 MiB budget, one that runs into a
//! real kernel limit (`RLIMIT_AS`), and children killed with SIGKILL near their budget and far
//! from it, each followed by the run that reads the report.

use std::path::Path;
use std::process::Command;

use crashguard::{Outcome, Report};
use crashguard_tests::{Child, Finished, TempDir, child_command};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-budget-child");
const MIB: u64 = 1 << 20;
/// The budget of the child's memory scenarios.
const BUDGET: u64 = 64 * MIB;
/// How far the allocator's count may run past the exact figure: 64 KiB per thread (see the
/// accounting module), and the child has fewer than 16 threads.
const SLACK: u64 = 16 * 64 * 1024;

/// The child's command line. `RUST_BACKTRACE` is pinned on: std's allocation-failure hook then
/// allocates to print a backtrace and is refused again, and the report must still name the
/// request that exhausted the budget, not those later ones.
fn command(dir: &Path, scenario: &str, args: &[&str]) -> Command {
    let mut c = child_command(CHILD, dir, scenario, args);
    c.env("RUST_BACKTRACE", "1");
    c
}

/// Runs the child again with `none` and returns what it read of the previous run.
fn restart(dir: &Path) -> (Finished, Report) {
    let restarted = Child::start(command(dir, "none", &[])).finish();
    restarted.assert_exit_code(0);
    let report = restarted
        .previous()
        .unwrap_or_else(|| panic!("the restarted child found no report\n{restarted}"));
    (restarted, report)
}

/// A number from a protocol line.
fn number(text: &str) -> u64 {
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("not a number: {text:?}: {e}"))
}

#[test]
fn memory_budget_ends_the_run_with_80_and_names_the_refused_request() {
    let dir = TempDir::new("mem-budget");
    let child = Child::start(command(dir.path(), "mem-budget", &[]));
    let pid = child.pid();
    let ended = child.finish();
    ended.assert_exit_code(80);
    let chunk = number(ended.line("ALLOCATING ").expect("ALLOCATING line"));
    assert!(
        ended
            .stderr
            .contains(&format!("memory allocation of {chunk} bytes failed")),
        "std's message names the request\n{ended}"
    );
    assert!(
        ended.stderr.contains("crashguard: memory budget exhausted"),
        "crashguard's one-line summary follows it\n{ended}"
    );

    let (restarted, r) = restart(dir.path());
    let ctx = || format!("{}\n{ended}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::MemoryBudget, "{}", ctx());
    assert_eq!(r.exit_code, Some(80), "{}", ctx());
    assert_eq!(r.pid, pid, "{}", ctx());
    let a = r
        .allocation
        .as_ref()
        .unwrap_or_else(|| panic!("no allocation in the report\n{}", ctx()));
    assert_eq!(a.request_bytes, chunk, "the refused request\n{}", ctx());
    assert_eq!(a.budget_bytes, Some(BUDGET), "{}", ctx());
    assert!(
        a.live_bytes + a.request_bytes > BUDGET,
        "the request did not fit\n{}",
        ctx()
    );
    assert!(
        a.live_bytes <= BUDGET + SLACK,
        "the count stayed within its precision of the budget\n{}",
        ctx()
    );
    // A byte budget with the counting allocator is enforced by the allocator itself, before
    // the sampler's next look: the run ends in the SIGABRT that follows the refusal, on the
    // refused thread, and no graceful shutdown was asked for.
    let signal = r
        .signal
        .as_ref()
        .unwrap_or_else(|| panic!("no signal\n{}", ctx()));
    assert_eq!(signal.name, "SIGABRT", "{}", ctx());
    assert_eq!(
        r.shutdown,
        None,
        "the sampler did not end this run\n{}",
        ctx()
    );
    assert_eq!(r.thread.as_ref().map(|t| t.tid), Some(a.tid), "{}", ctx());
    assert!(
        r.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("memory budget exhausted")),
        "{}",
        ctx()
    );
    // The heartbeat knows the budget the sampler held the run to.
    let res = r
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("no heartbeat\n{}", ctx()));
    assert_eq!(res.memory_budget, Some(BUDGET), "{}", ctx());
    assert!(res.heap_bytes.is_some(), "{}", ctx());
    assert!(
        restarted.installed().stored_at.is_some(),
        "the report was stored\n{restarted}"
    );
}

#[test]
fn a_kernel_refusal_under_rlimit_as_is_recorded_and_ends_with_80() {
    let dir = TempDir::new("mem-rlimit-as");
    let ended = Child::start(command(dir.path(), "mem-rlimit-as", &[])).finish();
    ended.assert_exit_code(80);
    let chunk = number(ended.line("ALLOCATING ").expect("ALLOCATING line"));
    assert!(ended.line("LIMIT ").is_some(), "{ended}");
    assert!(
        ended
            .stderr
            .contains(&format!("memory allocation of {chunk} bytes failed")),
        "{ended}"
    );

    let (_, r) = restart(dir.path());
    let ctx = || format!("{}\n{ended}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::MemoryBudget, "{}", ctx());
    assert_eq!(r.exit_code, Some(80), "{}", ctx());
    let a = r
        .allocation
        .as_ref()
        .unwrap_or_else(|| panic!("no allocation in the report\n{}", ctx()));
    assert_eq!(a.request_bytes, chunk, "{}", ctx());
    assert_eq!(
        a.budget_bytes,
        None,
        "the inner allocator failed, not a budget\n{}",
        ctx()
    );
    // The child had 256 MiB of address space beyond what it had mapped and spent it in
    // chunks; the kernel refused once less than a chunk (and its mapping overhead) was left.
    let headroom = 256 * MIB;
    assert!(
        a.live_bytes > headroom - 3 * chunk && a.live_bytes <= headroom + SLACK,
        "live bytes {} for a headroom of {headroom}\n{}",
        a.live_bytes,
        ctx()
    );
    assert_eq!(
        r.signal.as_ref().map(|s| s.name.as_str()),
        Some("SIGABRT"),
        "{}",
        ctx()
    );
    assert!(r.resources.is_some(), "{}", ctx());
}

/// Starts `mem-fill <percent>`, waits for its `READY`, kills it with SIGKILL, and returns the
/// next run's report with the heartbeat figures the child saw.
fn kill_after_fill(label: &str, percent: &str) -> (Report, serde_json::Value, u32) {
    let dir = TempDir::new(label);
    let mut child = Child::start(command(dir.path(), "mem-fill", &[percent]));
    let ready: serde_json::Value =
        serde_json::from_str(&child.expect_line("READY ")).expect("READY json");
    let pid = child.pid();
    child.signal(libc::SIGKILL);
    child.finish().assert_killed_by(libc::SIGKILL);
    let (_, report) = restart(dir.path());
    (report, ready, pid)
}

#[test]
fn sigkill_right_after_a_heartbeat_near_the_budget_reads_as_likely_oom_killed() {
    let (r, ready, pid) = kill_after_fill("mem-kill-near", "92");
    let ctx = || format!("{}\nREADY {ready}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::KilledWithoutWarning, "{}", ctx());
    assert_eq!(r.pid, pid);
    assert_eq!(r.ended_at, None, "{}", ctx());
    let res = r
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("no heartbeat\n{}", ctx()));
    let target = ready["target"].as_u64().expect("target");
    assert!(
        res.heap_bytes.is_some_and(|h| h >= target),
        "the last heartbeat shows the filled heap\n{}",
        ctx()
    );
    assert_eq!(res.memory_budget, Some(BUDGET), "{}", ctx());
    let verdict = r.verdict.as_deref().unwrap_or_default();
    assert!(
        verdict.to_lowercase().starts_with("likely oom-killed"),
        "{}",
        ctx()
    );
    // The verdict carries the numbers it was drawn from: the heap (the budget's measure with the
    // counting allocator installed), and the budget.
    let used = res
        .heap_bytes
        .expect("heap counted by the budget allocator");
    assert!(verdict.contains(&used.to_string()), "{}", ctx());
    assert!(verdict.contains(&BUDGET.to_string()), "{}", ctx());
    assert!(r.to_string().contains(verdict), "{r}");
}

#[test]
fn sigkill_far_from_the_budget_reads_as_a_plain_kill() {
    let (r, ready, pid) = kill_after_fill("mem-kill-low", "0");
    let ctx = || format!("{}\nREADY {ready}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::KilledWithoutWarning, "{}", ctx());
    assert_eq!(r.pid, pid);
    let res = r
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("no heartbeat\n{}", ctx()));
    assert_eq!(res.memory_budget, Some(BUDGET), "{}", ctx());
    let used = res.rss_bytes.unwrap_or(0).max(res.heap_bytes.unwrap_or(0));
    assert!(used * 10 < BUDGET * 9, "the child stayed low\n{}", ctx());
    assert_eq!(
        r.verdict.as_deref().map(str::to_lowercase).as_deref(),
        Some("killed by sigkill or power loss"),
        "{}",
        ctx()
    );
}

#[test]
fn steady_growth_meets_the_graceful_threshold_drains_and_exits_80_before_the_allocator_refuses() {
    let dir = TempDir::new("mem-graceful");
    let mut child = Child::start(command(dir.path(), "mem-graceful", &[]));
    let before: serde_json::Value =
        serde_json::from_str(&child.expect_line("STATUS")).expect("status JSON");
    // The thresholds, readable through the facade: soft 85% of the budget, the shutdown at
    // 90% of the allocator's hard limit, which is the budget itself.
    assert_eq!(before["measure"], "heap", "{before}");
    assert_eq!(before["hard"], BUDGET, "{before}");
    assert_eq!(before["shutdown"], BUDGET * 9 / 10, "{before}");
    assert_eq!(before["soft"], BUDGET * 85 / 100, "{before}");
    assert!(
        before["used"].as_u64().is_some_and(|u| u < BUDGET / 2),
        "{before}"
    );
    // The soft callback runs first, with the live figure past the soft threshold.
    let soft: serde_json::Value =
        serde_json::from_str(&child.expect_line("SOFT")).expect("status JSON");
    assert!(soft["used"].as_u64() >= soft["soft"].as_u64(), "{soft}");
    let reason = child.expect_line("DRAINING");
    assert!(
        reason.starts_with("memory budget: heap ") && reason.contains("shutdown threshold"),
        "{reason}"
    );
    let ended = child.wait();
    ended.assert_exit_code(80);
    assert_eq!(
        ended.lines_starting("HOOK "),
        ["HOOK release caches"],
        "{ended}"
    );
    // The drain released the memory before the end.
    let after: serde_json::Value = serde_json::from_str(
        ended
            .lines_starting("STATUS ")
            .last()
            .and_then(|l| l.strip_prefix("STATUS "))
            .unwrap_or("null"),
    )
    .expect("status JSON");
    assert!(
        after["used"].as_u64().is_some_and(|u| u < BUDGET / 2),
        "{after}"
    );

    let (_, r) = restart(dir.path());
    let ctx = || r.to_json_pretty();
    assert_eq!(r.outcome, Outcome::MemoryBudget, "{}", ctx());
    assert_eq!(r.exit_code, Some(80), "{}", ctx());
    assert!(
        r.allocation.is_none(),
        "the allocator refused nothing\n{}",
        ctx()
    );
    assert!(r.signal.is_none(), "no abort\n{}", ctx());
    let shutdown = r.shutdown.as_ref().unwrap_or_else(|| panic!("{}", ctx()));
    assert_eq!(shutdown.reason, "memory_budget", "{}", ctx());
    assert_eq!(shutdown.hooks.len(), 1, "{}", ctx());
}

/// Runs an attribution scenario: the budget refused a `try_reserve`, then the process aborted
/// for another reason. The run must end as the SIGABRT it was (134), not as the budget (80).
fn abort_after_refusal_stays_sigabrt(scenario: &str) {
    let dir = TempDir::new(scenario);
    let ended = Child::start(command(dir.path(), scenario, &[])).finish();
    ended.assert_killed_by(libc::SIGABRT);
    assert_eq!(
        ended.line("REFUSED "),
        Some("true"),
        "the budget refused the try_reserve\n{ended}"
    );
    assert!(
        !ended.stderr.contains("memory budget exhausted"),
        "not summarised as the budget\n{ended}"
    );
    let (_restarted, r) = restart(dir.path());
    let ctx = || format!("{}\n{ended}", r.to_json_pretty());
    assert_eq!(r.outcome, Outcome::FatalSignal, "{}", ctx());
    assert_eq!(r.exit_code, Some(134), "{}", ctx());
    assert_eq!(
        r.signal.as_ref().map(|s| s.name.as_str()),
        Some("SIGABRT"),
        "{}",
        ctx()
    );
}

#[test]
fn an_abort_after_a_refused_try_reserve_on_the_same_thread_stays_sigabrt() {
    abort_after_refusal_stays_sigabrt("mem-try-reserve-abort");
}

#[test]
fn an_abort_while_another_thread_was_refused_stays_sigabrt() {
    abort_after_refusal_stays_sigabrt("mem-refused-elsewhere-abort");
}
