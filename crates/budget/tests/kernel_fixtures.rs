//! The one cgroup resolver against every fixture tree of both budgets: the memory probe's trees
//! (one root holding `proc/` and `sys/`) and the thread budget's (separate proc and sys trees)
//! go through the same `kernel::cgroup_dirs`.

use std::path::{Path, PathBuf};

use crashguard_budget::kernel::{CgroupDir, CgroupVersion, Roots, cgroup_dirs};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn dirs(roots: &Roots, controller: &str) -> Vec<(CgroupVersion, PathBuf)> {
    cgroup_dirs(roots, controller)
        .expect("fixture files parse")
        .into_iter()
        .map(|CgroupDir { version, dir, .. }| (version, dir))
        .collect()
}

#[test]
fn memory_trees_resolve_v1_and_v2() {
    let v1 = fixture("cgroup-v1");
    assert_eq!(
        dirs(&Roots::under(&v1), "memory"),
        vec![
            (
                CgroupVersion::V1,
                v1.join("sys/fs/cgroup/memory/process_api/abc123")
            ),
            (CgroupVersion::V2, v1.join("sys/fs/cgroup/unified")),
        ]
    );
    // A container sees its own cgroup as the mount's root.
    let docker = fixture("cgroup-v1-docker");
    assert_eq!(
        dirs(&Roots::under(&docker), "memory"),
        vec![(CgroupVersion::V1, docker.join("sys/fs/cgroup/memory"))]
    );
    let v2 = fixture("cgroup-v2");
    let found = cgroup_dirs(&Roots::under(&v2), "memory").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].dir, v2.join("sys/fs/cgroup/kubepods/pod42/ctr"));
    let levels: Vec<&Path> = found[0].levels().collect();
    assert_eq!(
        levels.len(),
        4,
        "ctr, pod42, kubepods and the mount: {levels:?}"
    );
    assert!(dirs(&Roots::under(fixture("cgroup-none")), "memory").is_empty());
}

#[test]
fn thread_trees_resolve_pids_on_v1_and_v2() {
    let sys = fixture("threads-sys-v1");
    let roots = Roots::new(fixture("proc-neighbour-leak"), &sys);
    assert_eq!(
        dirs(&roots, "pids"),
        vec![
            (CgroupVersion::V1, sys.join("fs/cgroup/pids/svc/mmkt")),
            (CgroupVersion::V2, sys.join("fs/cgroup/unified")),
        ]
    );
    let sys = fixture("threads-sys-v2");
    let roots = Roots::new(fixture("proc-pids-v2"), &sys);
    assert_eq!(
        dirs(&roots, "pids"),
        vec![(
            CgroupVersion::V2,
            sys.join("fs/cgroup/system.slice/app.service")
        )]
    );
}

#[test]
fn a_malformed_cgroup_file_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("cg-kernel-fixture-{}", std::process::id()));
    let self_dir = dir.join("proc/self");
    std::fs::create_dir_all(&self_dir).unwrap();
    std::fs::write(self_dir.join("cgroup"), "not a cgroup line\n").unwrap();
    std::fs::write(self_dir.join("mountinfo"), "").unwrap();
    let err = cgroup_dirs(&Roots::under(&dir), "memory").unwrap_err();
    assert!(
        err.to_string().contains("proc/self/cgroup"),
        "the error names the file: {err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
