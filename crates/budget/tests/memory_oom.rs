//! The killed-without-warning verdict, the kernel-log scanner and `oom_score_adj`.

use std::path::PathBuf;

use crashguard_blackbox::Resources;
use crashguard_budget::Error;
use crashguard_budget::memory::{
    OomEvidence, OomScoreAdj, Verdict, find_oom_kill_line, oom_verdict, scan_kmsg_at,
};
use proptest::prelude::*;

/// The last heartbeat's figures, as the report carries them.
fn last() -> Resources {
    let mut r = Resources::default();
    r.rss_bytes = Some(100);
    r.heap_bytes = Some(80);
    r.cgroup_memory_current = Some(500);
    r.cgroup_memory_max = Some(1000);
    r.oom_kill_count = Some(2);
    r.memory_budget = Some(1000);
    r
}

/// `last()` changed by `f`.
fn last_with(f: impl FnOnce(&mut Resources)) -> Resources {
    let mut r = last();
    f(&mut r);
    r
}

#[test]
fn a_grown_oom_kill_counter_is_the_strongest_evidence() {
    let v = oom_verdict(&last(), Some(3));
    assert_eq!(
        v,
        Verdict::LikelyOomKilled {
            evidence: OomEvidence::CounterGrew {
                before: 2,
                after: 3
            }
        }
    );
    assert_eq!(
        v.describe(),
        "likely OOM-killed: the cgroup's oom_kill counter grew from 2 to 3"
    );
}

#[test]
fn a_reset_counter_says_nothing() {
    // A restarted container gets a fresh cgroup whose counter starts at 0 again.
    assert_eq!(
        oom_verdict(&last(), Some(0)),
        Verdict::KilledBySigkillOrPowerLoss
    );
    assert_eq!(
        oom_verdict(&last(), None),
        Verdict::KilledBySigkillOrPowerLoss
    );
}

#[test]
fn usage_near_the_cgroup_limit_or_the_budget_is_evidence() {
    let l = last_with(|r| r.cgroup_memory_current = Some(950));
    assert_eq!(
        oom_verdict(&l, Some(2)),
        Verdict::LikelyOomKilled {
            evidence: OomEvidence::NearCgroupLimit {
                used_bytes: 950,
                limit_bytes: 1000
            }
        }
    );
    // Without the counting allocator the budget is measured on RSS.
    let l = last_with(|r| {
        r.rss_bytes = Some(900);
        r.heap_bytes = None;
    });
    assert_eq!(
        oom_verdict(&l, None),
        Verdict::LikelyOomKilled {
            evidence: OomEvidence::NearBudget {
                used_bytes: 900,
                budget_bytes: 1000
            }
        }
    );
    let l = last_with(|r| {
        r.rss_bytes = Some(899);
        r.heap_bytes = None;
    });
    assert_eq!(oom_verdict(&l, None), Verdict::KilledBySigkillOrPowerLoss);
    // With it, the heap is the measure: a large RSS baseline is not evidence.
    let l = last_with(|r| {
        r.rss_bytes = Some(2000);
        r.heap_bytes = Some(80);
    });
    assert_eq!(oom_verdict(&l, None), Verdict::KilledBySigkillOrPowerLoss);
    assert_eq!(
        oom_verdict(&Resources::default(), None),
        Verdict::KilledBySigkillOrPowerLoss
    );
    assert_eq!(
        Verdict::KilledBySigkillOrPowerLoss.describe(),
        "killed by SIGKILL or power loss"
    );
}

const KMSG: &str = "\
6,1001,5000000,-;systemd[1]: Started thing.\n\
3,1002,5100000,-;Memory cgroup out of memory: Killed process 4242 (java) total-vm:4000kB, anon-rss:3000kB, file-rss:0kB\n\
 SUBSYSTEM=memory\n\
3,1003,5200000,-;Out of memory: Killed process 42 (sh) total-vm:10kB\n";

#[test]
fn kmsg_lines_match_the_exact_pid() {
    assert_eq!(
        find_oom_kill_line(KMSG, 4242),
        Some(
            "Memory cgroup out of memory: Killed process 4242 (java) total-vm:4000kB, anon-rss:3000kB, file-rss:0kB"
        )
    );
    assert_eq!(
        find_oom_kill_line(KMSG, 42),
        Some("Out of memory: Killed process 42 (sh) total-vm:10kB")
    );
    assert_eq!(find_oom_kill_line(KMSG, 424), None);
    assert_eq!(find_oom_kill_line(KMSG, 4), None);
    assert_eq!(find_oom_kill_line(KMSG, 0), None);
    // dmesg's human format works too.
    let dmesg = "[ 5.100000] Out of memory: Killed process 7 (x) total-vm:1kB\n";
    assert_eq!(
        find_oom_kill_line(dmesg, 7),
        Some("[ 5.100000] Out of memory: Killed process 7 (x) total-vm:1kB")
    );
}

#[test]
fn kmsg_files_are_scanned_and_unreadable_ones_say_unknown() {
    let dir = std::env::temp_dir().join(format!("crashguard-memory-{}-kmsg", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kmsg");
    std::fs::write(&path, KMSG).unwrap();
    assert!(scan_kmsg_at(&path, 4242).is_some_and(|l| l.contains("Killed process 4242 (java)")));
    assert_eq!(scan_kmsg_at(&path, 1), None);
    assert_eq!(scan_kmsg_at(&dir.join("missing"), 4242), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_real_kmsg_scan_terminates() {
    // Non-blocking: this returns at the end of the buffered log instead of waiting for new
    // messages, whether or not the log is readable here. Pid 0 never matches.
    assert_eq!(crashguard_budget::memory::scan_kmsg(0), None);
}

proptest! {
    #[test]
    fn kmsg_finder_never_panics(text in any::<String>(), pid in any::<u32>()) {
        let _ = find_oom_kill_line(&text, pid);
    }

    #[test]
    fn kmsg_finder_finds_generated_lines(pid in any::<u32>(), other in any::<u32>(), comm in "[a-z]{1,15}") {
        let line = format!("3,9,1,-;Out of memory: Killed process {pid} ({comm}) total-vm:1kB\n");
        let found = find_oom_kill_line(&line, pid).map(str::to_owned);
        let expected = format!("Out of memory: Killed process {pid} ({comm}) total-vm:1kB");
        prop_assert_eq!(found.as_deref(), Some(expected.as_str()));
        if other != pid {
            prop_assert_eq!(find_oom_kill_line(&line, other), None);
        }
    }
}

#[test]
fn oom_score_adj_is_validated() {
    assert_eq!(OomScoreAdj::new(-1000).unwrap().get(), -1000);
    assert_eq!(OomScoreAdj::new(1000).unwrap().get(), 1000);
    for bad in [-1001, 1001, i32::MIN, i32::MAX] {
        let err = OomScoreAdj::new(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidOomScoreAdj { value } if value == bad));
        assert_eq!(
            err.to_string(),
            format!("oom_score_adj must be within -1000..=1000, got {bad}")
        );
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crashguard-memory-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn oom_score_adj_is_written_and_failures_name_the_file() {
    let root = scratch("oom-score");
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/oom_score_adj"), "0\n").unwrap();
    OomScoreAdj::new(500).unwrap().apply_at(&root).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("proc/self/oom_score_adj")).unwrap(),
        "500\n"
    );
    let err = OomScoreAdj::new(1)
        .unwrap()
        .apply_at(&root.join("nowhere"))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("cannot write ") && err.to_string().contains("oom_score_adj"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();

    // Writing the current value back is always permitted, so the real file can be exercised.
    if let Ok(current) = std::fs::read_to_string("/proc/self/oom_score_adj") {
        let v: i32 = current.trim().parse().unwrap();
        OomScoreAdj::new(v).unwrap().apply().unwrap();
    }
}
