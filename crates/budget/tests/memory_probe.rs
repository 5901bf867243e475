//! The memory probe against fixture trees (v1, v1 in docker, v2, nested v2, missing files,
//! garbage, no cgroup) and against the real machine.

use std::path::{Path, PathBuf};

use crashguard_budget::Error;
use crashguard_budget::memory::{CgroupVersion, Limit, MemoryProbe, Pressure};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn probe(name: &str) -> MemoryProbe {
    MemoryProbe::with_root(fixture(name))
        .expect("probe builds")
        .with_page_size(4096)
}

#[test]
fn v1_hybrid_reads_the_memory_controller_and_the_lowest_ancestor_limit() {
    let mut p = probe("cgroup-v1");
    let loc = p.cgroup().expect("cgroup found").clone();
    assert_eq!(loc.version, CgroupVersion::V1);
    assert_eq!(
        loc.dir,
        fixture("cgroup-v1").join("sys/fs/cgroup/memory/process_api/abc123")
    );
    assert_eq!(
        loc.ancestors,
        vec![
            fixture("cgroup-v1").join("sys/fs/cgroup/memory/process_api"),
            fixture("cgroup-v1").join("sys/fs/cgroup/memory"),
        ]
    );
    let s = p.sample().expect("sample");
    assert_eq!(s.rss_bytes, Some(5000 * 4096));
    assert_eq!(s.mem_total_bytes, Some(8_388_608 * 1024));
    let c = s.cgroup.expect("cgroup sample");
    assert_eq!(c.current_bytes, Some(209_715_200));
    assert_eq!(c.limit, Limit::Value(536_870_912));
    assert_eq!(c.high, Limit::Unlimited);
    assert_eq!(c.oom_kill, Some(3));
    assert_eq!(c.oom, None);
    assert_eq!(c.pressure, None);
    // v1 reports the hierarchical figure as total_inactive_file, not inactive_file.
    assert_eq!(c.inactive_file_bytes, Some(8_388_608));
    assert_eq!(c.working_set_bytes(), Some(209_715_200 - 8_388_608));
}

#[test]
fn v1_in_a_container_maps_the_mount_root_to_the_mount_point() {
    let mut p = probe("cgroup-v1-docker");
    let loc = p.cgroup().expect("cgroup found");
    assert_eq!(
        loc.dir,
        fixture("cgroup-v1-docker").join("sys/fs/cgroup/memory")
    );
    assert!(loc.ancestors.is_empty());
    let c = p.sample().expect("sample").cgroup.expect("cgroup sample");
    assert_eq!(c.limit, Limit::Value(268_435_456));
    assert_eq!(c.current_bytes, Some(134_217_728));
    // memory.oom_control without an oom_kill line (kernels before 4.13).
    assert_eq!(c.oom_kill, None);
}

#[test]
fn v2_reads_events_pressure_and_stat() {
    let mut p = probe("cgroup-v2");
    let loc = p.cgroup().expect("cgroup found");
    assert_eq!(loc.version, CgroupVersion::V2);
    assert_eq!(
        loc.dir,
        fixture("cgroup-v2").join("sys/fs/cgroup/kubepods/pod42/ctr")
    );
    assert_eq!(loc.ancestors.len(), 3);
    let c = p.sample().expect("sample").cgroup.expect("cgroup sample");
    assert_eq!(c.current_bytes, Some(805_306_368));
    // The container's own limit is lower than the pod's, which is lower than "max".
    assert_eq!(c.limit, Limit::Value(1_073_741_824));
    assert_eq!(c.high, Limit::Unlimited);
    assert_eq!(
        (c.oom_kill, c.oom, c.max_events),
        (Some(1), Some(2), Some(17))
    );
    assert_eq!(
        c.pressure,
        Some(Pressure {
            some_avg10: 1.5,
            full_avg10: Some(0.25)
        })
    );
    assert_eq!(c.working_set_bytes(), Some(805_306_368 - 40_000_000));
}

#[test]
fn nested_v2_takes_the_limit_of_an_ancestor_when_the_leaf_says_max() {
    let mut p = probe("cgroup-v2-nested");
    let root = fixture("cgroup-v2-nested");
    let loc = p.cgroup().expect("cgroup found");
    assert_eq!(
        loc.dir,
        root.join("sys/fs/cgroup/system.slice/my\\x2dservice.service/payload")
    );
    let c = p.sample().expect("sample").cgroup.expect("cgroup sample");
    assert_eq!(c.limit, Limit::Value(268_435_456));
    assert_eq!(c.high, Limit::Value(200_000_000));
    assert_eq!(c.current_bytes, Some(251_658_240));
    // No memory.stat: the working set falls back to the raw usage.
    assert_eq!(c.inactive_file_bytes, None);
    assert_eq!(c.working_set_bytes(), Some(251_658_240));
    assert_eq!(
        c.pressure,
        Some(Pressure {
            some_avg10: 0.0,
            full_avg10: None
        })
    );
}

#[test]
fn missing_files_give_none_not_errors() {
    let mut p = probe("cgroup-v2-missing");
    assert_eq!(p.mem_total_bytes(), None);
    let s = p.sample().expect("sample");
    assert_eq!(s.rss_bytes, Some(50 * 4096));
    let c = s.cgroup.expect("cgroup sample");
    assert_eq!(c.current_bytes, Some(4096));
    assert_eq!(c.limit, Limit::Unlimited);
    assert_eq!(
        (c.oom_kill, c.oom, c.max_events, c.pressure),
        (None, None, None, None)
    );
}

#[test]
fn no_cgroup_files_means_no_cgroup() {
    let mut p = probe("cgroup-none");
    assert!(p.cgroup().is_none());
    let s = p.sample().expect("sample");
    assert!(s.cgroup.is_none());
    assert_eq!(s.rss_bytes, Some(5000 * 4096));
}

#[test]
fn garbage_is_an_error_naming_the_file() {
    let mut p = probe("cgroup-v2-garbage");
    let err = p.sample().expect_err("garbage must not parse");
    let Error::Parse { path, .. } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert!(path.ends_with("sys/fs/cgroup/app/memory.max"), "{path:?}");
    // The file in the message, what was wrong with it in the source: each said once.
    let msg = err.to_string();
    assert!(msg.contains("memory.max") && !msg.contains("lots"), "{msg}");
    let source = std::error::Error::source(&err)
        .expect("the parse error")
        .to_string();
    assert!(
        source.contains("lots") && !source.contains("memory.max"),
        "{source}"
    );
}

#[test]
fn garbage_in_discovery_files_fails_construction() {
    let dir = scratch("discovery-garbage");
    std::fs::create_dir_all(dir.join("proc/self")).unwrap();
    std::fs::write(dir.join("proc/self/cgroup"), "this is not a cgroup file\n").unwrap();
    let err = MemoryProbe::with_root(&dir).expect_err("garbage must not parse");
    assert!(err.to_string().contains("proc/self/cgroup"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_real_machine_is_readable() {
    let mut p = MemoryProbe::new().expect("probe of this machine");
    let s = p.sample().expect("sample of this machine");
    if Path::new("/proc/self/statm").exists() {
        assert!(s.rss_bytes.is_some_and(|r| r > 0));
    }
    // Discovery agrees with what the kernel lists for this process.
    let listed = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let has_v1_memory = listed.lines().any(|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "memory"))
    });
    if has_v1_memory {
        assert_eq!(p.cgroup().map(|c| c.version), Some(CgroupVersion::V1));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crashguard-memory-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
