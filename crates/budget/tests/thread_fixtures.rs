//! Limits discovery, census and diagnosis against fixture `/proc` and `/sys` trees.
//!
//! `proc-neighbour-leak` is the seed story: this service (`mmkt`, 5 threads, cgroup v1 pids)
//! sits on a host where `partner-bridge` of the same user holds 30,500 threads, close to
//! `kernel.threads-max` and to the user's `RLIMIT_NPROC`. `proc-pids-v2` is a systemd service on
//! cgroup v2 whose `pids.max` is used up by its own tokio runtime.

use std::path::PathBuf;

use crashguard_blackbox::layout::{CensusEntry, MAX_CENSUS};
use crashguard_budget::kernel::{CgroupVersion, Roots};
use crashguard_budget::thread::{
    self, Census, Diagnosis, LimitKind, ProcessTable, Request, Rlimits, ThreadBudget,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn neighbour_roots() -> Roots {
    Roots::new(fixture("proc-neighbour-leak"), fixture("threads-sys-v1"))
}

fn user_rlimits() -> Rlimits {
    Rlimits {
        nproc: Some(31_000),
        address_space: None,
        uid: 1000,
        nproc_enforced: true,
    }
}

#[test]
fn v1_limits_are_discovered_and_ordered() {
    let table = ProcessTable::scan(&fixture("proc-neighbour-leak")).unwrap();
    assert_eq!(table.threads_of_uid(1000), 30_505);
    assert_eq!(table.top(1)[0].name, "partner-bridge");

    let limits =
        thread::discover_limits(&neighbour_roots(), &user_rlimits(), Some(&table), 2 << 20);
    let kinds: Vec<LimitKind> = limits.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        vec![
            LimitKind::Nproc { uid: 1000 },
            LimitKind::ThreadsMax,
            LimitKind::CgroupMemory {
                version: CgroupVersion::V1
            },
            LimitKind::CgroupPids {
                version: CgroupVersion::V1
            },
            LimitKind::PidMax,
        ]
    );
    let pids = &limits[3];
    assert_eq!((pids.used, pids.max), (12, 1024));
    assert!(
        pids.path
            .as_ref()
            .unwrap()
            .ends_with("fs/cgroup/pids/svc/pids.max")
    );
    let memory = &limits[2];
    assert!(
        memory
            .path
            .as_ref()
            .unwrap()
            .ends_with("memory/svc/memory.limit_in_bytes")
    );
    assert!(limits.iter().all(|l| !l.is_exhausted()));
}

#[test]
fn neighbour_leak_is_named() {
    let d = Diagnosis::gather(
        &neighbour_roots(),
        &user_rlimits(),
        Request {
            name: Some("worker-3".into()),
            stack_bytes: 2 << 20,
            live_guarded: 2,
            budget: Some(ThreadBudget::max(64)),
            os_refused: true,
        },
    );
    let text = d.to_string();
    assert!(
        text.contains(
            "threads: 5 in this process, 2 started through the guard; budget 64 (soft 52, hard 64)"
        ),
        "{text}"
    );
    assert!(
        text.contains("limit hit: none of the known limits is exhausted"),
        "{text}"
    );
    assert!(
        text.contains("closest limits: RLIMIT_NPROC: 30505 of 31000 tasks of uid 1000 (98%)"),
        "{text}"
    );
    assert!(text.contains("kernel.threads-max"), "{text}");
    assert!(
        text.contains("threads by name: http-client-*: 2, worker-*: 2, mmkt: 1"),
        "{text}"
    );
    assert!(
        text.contains("top processes by threads (RLIMIT_NPROC is 98% used): partner-bridge (pid 4242, uid 1000): 30500, mmkt (pid 100, uid 1000): 5"),
        "{text}"
    );
    assert_eq!(d.process_threads(), Some(5));
    assert_eq!(d.top_processes()[0].pid, 4242);
}

#[test]
fn v2_pids_max_is_the_limit_hit() {
    let roots = Roots::new(fixture("proc-pids-v2"), fixture("threads-sys-v2"));
    let rlimits = Rlimits {
        nproc: None,
        address_space: None,
        uid: 0,
        nproc_enforced: false,
    };
    let d = Diagnosis::gather(
        &roots,
        &rlimits,
        Request {
            name: None,
            stack_bytes: 2 << 20,
            live_guarded: 0,
            budget: None,
            os_refused: true,
        },
    );
    let hit = d.exhausted_limit().expect("pids.max is used up");
    assert_eq!(
        hit.kind,
        LimitKind::CgroupPids {
            version: CgroupVersion::V2
        }
    );
    assert!(
        hit.path
            .as_ref()
            .unwrap()
            .ends_with("system.slice/app.service/pids.max")
    );
    let text = d.to_string();
    assert!(text.contains("limit hit: cgroup v2 pids.max ("), "{text}");
    assert!(
        text.contains(": 64 of 64 tasks (100%), exhausted"),
        "{text}"
    );
    assert!(text.contains("cgroup v2 memory.max"), "{text}");
    assert!(
        text.contains("threads by name: tokio-rt-*: 63, app: 1"),
        "{text}"
    );
    assert!(text.contains("no thread budget set"), "{text}");
    // A cgroup limit is shared with the other processes of the cgroup, so they are listed.
    assert!(
        text.contains(
            "top processes by threads (cgroup v2 pids.max is 100% used): app (pid 300, uid 0): 64"
        ),
        "{text}"
    );
}

#[test]
fn census_of_fixture_trees() {
    let census = Census::collect(&fixture("proc-pids-v2")).unwrap();
    assert_eq!(census.total(), 64);
    assert_eq!(census.to_string(), "tokio-rt-*: 63, app: 1");

    let dir = std::ffi::CString::new(
        fixture("proc-neighbour-leak")
            .join("self/task")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let mut entries = [CensusEntry {
        count: 0,
        name_len: 0,
        name: [0; 16],
    }; MAX_CENSUS];
    let (mut count, mut total) = (0, 0);
    thread::census_raw_from(&dir, &mut entries, &mut count, &mut total);
    assert_eq!((count, total), (3, 5));
    let groups: Vec<(&[u8], u32)> = entries[..3]
        .iter()
        .map(|e| (&e.name[..e.name_len as usize], e.count))
        .collect();
    assert_eq!(groups[2], (&b"mmkt"[..], 1));
    assert!(groups.contains(&(&b"worker-"[..], 2)));
    assert!(groups.contains(&(&b"http-client-"[..], 2)));
}

/// The crash-time census reads the names of the first `MAX_NAMED` tasks only and counts the
/// rest from the directory entries, as `(not named)`: bounded work however many threads exist.
#[test]
fn crash_census_names_a_bounded_number_of_tasks_and_counts_the_rest() {
    let root = std::env::temp_dir().join(format!("cg-crash-census-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let extra = 44;
    for tid in 0..thread::MAX_NAMED + extra {
        let task = root.join(format!("{}", 1000 + tid));
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("comm"), format!("worker-{tid}\n")).unwrap();
    }
    let dir = std::ffi::CString::new(root.clone().into_os_string().into_encoded_bytes()).unwrap();
    let mut entries = [CensusEntry {
        count: 0,
        name_len: 0,
        name: [0; 16],
    }; MAX_CENSUS];
    let (mut count, mut total) = (0, 0);
    thread::census_raw_from(&dir, &mut entries, &mut count, &mut total);
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(total, thread::MAX_NAMED + extra);
    let groups: Vec<(&[u8], u32)> = entries[..count as usize]
        .iter()
        .map(|e| (&e.name[..e.name_len as usize], e.count))
        .collect();
    assert_eq!(
        groups,
        [
            (&b"worker-"[..], thread::MAX_NAMED),
            (&b"(not named)"[..], extra)
        ]
    );
}
