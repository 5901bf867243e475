//! Finding this process's cgroup directories for a controller, on cgroup v1 and v2.
//!
//! `/proc/self/cgroup` names the cgroup path per hierarchy; `/proc/self/mountinfo` says where
//! each hierarchy is mounted and which part of it (a container sees its own cgroup as the mount
//! root). Both may be present at once: this machine has v1 `pids` and `memory` plus a v2
//! hierarchy at `/sys/fs/cgroup/unified`.

use std::fs;
use std::path::{Path, PathBuf};

use super::parse::{self, CgroupLine, CgroupMount};
use super::procs::Roots;

/// A cgroup directory of this process for one controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDir {
    /// 1 or 2.
    pub version: u8,
    /// The process's own cgroup directory.
    pub dir: PathBuf,
    /// The hierarchy's mount point; limits of ancestors up to here also apply.
    pub mount: PathBuf,
}

impl CgroupDir {
    /// The own directory and its ancestors up to the mount point, innermost first.
    pub fn levels(&self) -> impl Iterator<Item = &Path> {
        self.dir
            .ancestors()
            .take_while(move |p| p.starts_with(&self.mount))
    }
}

/// The directories of `controller` (`"pids"`, `"memory"`) for this process: the v1 hierarchy
/// that carries the controller, and the v2 hierarchy (where every controller lives). Missing or
/// unreadable files give an empty list.
pub fn dirs_for(roots: &Roots, controller: &str) -> Vec<CgroupDir> {
    let own = fs::read(roots.proc().join("self/cgroup")).unwrap_or_default();
    let mountinfo = fs::read(roots.proc().join("self/mountinfo")).unwrap_or_default();
    resolve(
        roots,
        controller,
        &parse::cgroup(&own),
        &parse::cgroup_mounts(&mountinfo),
    )
}

fn resolve(
    roots: &Roots,
    controller: &str,
    lines: &[CgroupLine],
    mounts: &[CgroupMount],
) -> Vec<CgroupDir> {
    let mut out = Vec::new();
    for line in lines {
        let version = if line.hierarchy == 0 && line.controllers.is_empty() {
            2
        } else if line.controllers.iter().any(|c| c == controller) {
            1
        } else {
            continue;
        };
        let mount = mounts.iter().find(|m| {
            m.version == version && (version == 2 || m.options.iter().any(|o| o == controller))
        });
        let Some(mount) = mount else {
            continue;
        };
        let relative = line
            .path
            .strip_prefix(mount.root.trim_end_matches('/'))
            .unwrap_or(&line.path)
            .trim_start_matches('/');
        let mount_dir = roots.map_sys(&mount.mount_point);
        out.push(CgroupDir {
            version,
            dir: mount_dir.join(relative),
            mount: mount_dir,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_v1_and_v2() {
        let lines = parse::cgroup(b"8:pids:/svc\n4:memory:/m\n0::/unified-svc\n");
        let mounts = parse::cgroup_mounts(
            b"39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
              41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        let roots = Roots::new("/fx/proc", "/fx/sys");
        let dirs = resolve(&roots, "pids", &lines, &mounts);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].version, 1);
        assert_eq!(dirs[0].dir, PathBuf::from("/fx/sys/fs/cgroup/pids/svc"));
        assert_eq!(
            dirs[1].dir,
            PathBuf::from("/fx/sys/fs/cgroup/unified/unified-svc")
        );
        let levels: Vec<&Path> = dirs[0].levels().collect();
        assert_eq!(
            levels,
            vec![
                Path::new("/fx/sys/fs/cgroup/pids/svc"),
                Path::new("/fx/sys/fs/cgroup/pids")
            ]
        );
    }

    #[test]
    fn container_mount_root_is_stripped() {
        let lines = parse::cgroup(b"0::/docker/abc/inner\n");
        let mounts = parse::cgroup_mounts(
            b"41 31 0:38 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        let dirs = resolve(&Roots::system(), "pids", &lines, &mounts);
        assert_eq!(dirs[0].dir, PathBuf::from("/sys/fs/cgroup/inner"));
    }
}
