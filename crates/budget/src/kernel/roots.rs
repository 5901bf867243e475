//! [`Roots`]: where the kernel's view is read from.

use std::path::{Path, PathBuf};

/// Where every reader of the kernel's view (`/proc`, `/sys`, cgroup files) looks.
///
/// Production uses [`Roots::system`] (`/proc` and `/sys`); tests point them at fixture trees,
/// either one tree holding `proc/` and `sys/` ([`Roots::under`]) or two separate ones
/// ([`Roots::new`]). Absolute paths the kernel reports (cgroup mount points in
/// `/proc/self/mountinfo`) are mapped into the roots with [`Roots::map`]: a path under `/sys`
/// into the sys root, any other path into the directory that holds the sys root, so a probe
/// pointed at a fixture tree never reads the real machine's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roots {
    proc: PathBuf,
    sys: PathBuf,
}

impl Roots {
    /// `/proc` and `/sys`.
    pub fn system() -> Self {
        Roots::new("/proc", "/sys")
    }

    /// Custom roots, e.g. fixture trees.
    pub fn new(proc: impl Into<PathBuf>, sys: impl Into<PathBuf>) -> Self {
        Roots {
            proc: proc.into(),
            sys: sys.into(),
        }
    }

    /// `<root>/proc` and `<root>/sys`: a whole file-system tree under `root` (`/` for the real
    /// machine).
    pub fn under(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        Roots::new(root.join("proc"), root.join("sys"))
    }

    /// The proc root.
    pub fn proc(&self) -> &Path {
        &self.proc
    }

    /// The sys root.
    pub fn sys(&self) -> &Path {
        &self.sys
    }

    /// Maps an absolute path as the kernel reports it (a mount point, a cgroup directory) into
    /// the roots; see the type's documentation.
    pub fn map(&self, absolute: &str) -> PathBuf {
        match absolute.strip_prefix("/sys") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                self.sys.join(rest.trim_start_matches('/'))
            }
            _ => {
                let base = self.sys.parent().unwrap_or(Path::new("/"));
                base.join(absolute.trim_start_matches('/'))
            }
        }
    }
}

impl Default for Roots {
    fn default() -> Self {
        Roots::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sys_paths() {
        let roots = Roots::new("/p", "/tmp/fx/sys");
        assert_eq!(
            roots.map("/sys/fs/cgroup/pids"),
            PathBuf::from("/tmp/fx/sys/fs/cgroup/pids")
        );
        assert_eq!(roots.map("/sysfoo"), PathBuf::from("/tmp/fx/sysfoo"));
        assert_eq!(roots.map("/cgroup"), PathBuf::from("/tmp/fx/cgroup"));
        let system = Roots::system();
        assert_eq!(
            system.map("/sys/fs/cgroup"),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert_eq!(
            system.map("/cgroup/memory"),
            PathBuf::from("/cgroup/memory")
        );
        assert_eq!(Roots::under("/"), Roots::system());
    }
}
