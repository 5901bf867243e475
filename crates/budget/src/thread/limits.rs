//! The limits that decide whether a new thread can be created, and how close each one is.
//!
//! A thread is refused by whichever of these runs out first: `RLIMIT_NPROC` (tasks per real
//! user), the cgroup `pids.max` of this process or an ancestor (v1 and v2), the host-wide
//! `kernel.threads-max` and `kernel.pid_max`, and the address space for the new stack under
//! `RLIMIT_AS` (or, rarely, the cgroup memory limit). The kernel reports all of them as the same
//! `EAGAIN`, so the diagnosis measures each one.

use std::fmt;
use std::path::PathBuf;

use super::procs::ProcessTable;
use crate::kernel::{self, CgroupVersion, Format, Roots};
use crate::sys::thread::{self as sys, Resource};

/// Which limit a [`Limit`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// The guard's own [`ThreadBudget`](super::ThreadBudget).
    Budget {
        /// Whether it counts every thread of the process (`count_process_threads`), or only
        /// guarded ones.
        process_threads: bool,
    },
    /// `RLIMIT_NPROC`: tasks (processes and threads) owned by the real uid.
    Nproc {
        /// The real uid counted against.
        uid: u32,
    },
    /// A cgroup's `pids.max` against its `pids.current`.
    CgroupPids {
        /// The hierarchy.
        version: CgroupVersion,
    },
    /// `/proc/sys/kernel/threads-max` against the threads on the host.
    ThreadsMax,
    /// `/proc/sys/kernel/pid_max` against the tasks on the host (each takes a pid).
    PidMax,
    /// `RLIMIT_AS` against this process's `VmSize`, with the new stack as the need.
    AddressSpace,
    /// A cgroup's memory limit against its usage.
    CgroupMemory {
        /// The hierarchy.
        version: CgroupVersion,
    },
}

impl LimitKind {
    /// True for limits shared by every process on the host (or of the user), where a neighbour
    /// can be the one using them up.
    pub fn is_shared(self) -> bool {
        matches!(
            self,
            LimitKind::Nproc { .. } | LimitKind::ThreadsMax | LimitKind::PidMax
        ) || matches!(self, LimitKind::CgroupPids { .. })
    }
}

/// One limit with its current use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Which limit.
    pub kind: LimitKind,
    /// Current use (tasks, threads or bytes).
    pub used: u64,
    /// The limit itself.
    pub max: u64,
    /// What one more thread needs of it: 1 task, or a stack's bytes.
    pub need: u64,
    /// The file the limit was read from, when it came from one.
    pub path: Option<PathBuf>,
    /// False when the kernel does not apply the limit to this process (root and
    /// `RLIMIT_NPROC`).
    pub enforced: bool,
}

impl Limit {
    /// Use as a share of the limit (may exceed 1.0).
    pub fn ratio(&self) -> f64 {
        if self.max == 0 {
            return f64::INFINITY;
        }
        // Precision loss above 2^52 does not matter for a percentage.
        #[allow(clippy::cast_precision_loss)]
        let r = self.used as f64 / self.max as f64;
        r
    }

    /// True when one more thread does not fit.
    pub fn is_exhausted(&self) -> bool {
        self.enforced && self.used.saturating_add(self.need) > self.max
    }

    /// True when at least 80% is used.
    pub fn is_near(&self) -> bool {
        self.ratio() >= 0.8
    }

    /// The short name: `RLIMIT_NPROC`, `pids.max`, `kernel.threads-max`, ...
    pub fn name(&self) -> &'static str {
        match self.kind {
            LimitKind::Budget { .. } => "thread budget",
            LimitKind::Nproc { .. } => "RLIMIT_NPROC",
            LimitKind::CgroupPids {
                version: CgroupVersion::V1,
            } => "cgroup v1 pids.max",
            LimitKind::CgroupPids { .. } => "cgroup v2 pids.max",
            LimitKind::ThreadsMax => "kernel.threads-max",
            LimitKind::PidMax => "kernel.pid_max",
            LimitKind::AddressSpace => "RLIMIT_AS",
            LimitKind::CgroupMemory {
                version: CgroupVersion::V1,
            } => "cgroup v1 memory.limit_in_bytes",
            LimitKind::CgroupMemory { .. } => "cgroup v2 memory.max",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (used, max) = (self.used, self.max);
        f.write_str(self.name())?;
        if let Some(path) = &self.path {
            write!(f, " ({})", path.display())?;
        }
        match self.kind {
            LimitKind::Budget {
                process_threads: false,
            } => write!(f, ": {used} of {max} guarded threads live")?,
            LimitKind::Budget {
                process_threads: true,
            } => write!(f, ": {used} of {max} threads live in the process")?,
            LimitKind::Nproc { uid } => write!(f, ": {used} of {max} tasks of uid {uid}")?,
            LimitKind::CgroupPids { .. } => write!(f, ": {used} of {max} tasks")?,
            LimitKind::ThreadsMax => write!(f, ": {used} of {max} threads on the host")?,
            LimitKind::PidMax => write!(f, ": about {used} of {max} pids in use")?,
            LimitKind::AddressSpace => write!(
                f,
                ": {} of {} mapped, a new stack needs {}",
                Bytes(used),
                Bytes(max),
                Bytes(self.need)
            )?,
            LimitKind::CgroupMemory { .. } => {
                write!(f, ": {} of {}", Bytes(used), Bytes(max))?;
            }
        }
        write!(f, " ({:.0}%)", self.ratio() * 100.0)?;
        if !self.enforced {
            f.write_str(", not enforced for root")?;
        }
        if self.is_exhausted() {
            f.write_str(", exhausted")?;
        }
        Ok(())
    }
}

/// Byte counts in binary units for the diagnosis.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        #[allow(clippy::cast_precision_loss)]
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        let name = UNITS.get(unit).copied().unwrap_or("B");
        if unit == 0 {
            write!(f, "{} {name}", self.0)
        } else {
            write!(f, "{v:.1} {name}")
        }
    }
}

/// The resource limits of this process, taken apart from the file trees so tests can set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimits {
    /// Soft `RLIMIT_NPROC`; `None` when unlimited.
    pub nproc: Option<u64>,
    /// Soft `RLIMIT_AS`; `None` when unlimited.
    pub address_space: Option<u64>,
    /// The real uid.
    pub uid: u32,
    /// False for root, which the kernel exempts from `RLIMIT_NPROC`.
    pub nproc_enforced: bool,
}

impl Rlimits {
    /// The limits of the calling process (`getrlimit`, `getuid`, `geteuid`). A failing
    /// `getrlimit` reads as unlimited.
    pub fn current() -> Rlimits {
        let uid = sys::real_uid();
        Rlimits {
            nproc: sys::soft_rlimit(Resource::Nproc).ok().flatten(),
            address_space: sys::soft_rlimit(Resource::AddressSpace).ok().flatten(),
            uid,
            nproc_enforced: uid != 0 && sys::effective_uid() != 0,
        }
    }
}

/// Measures every finite limit that applies, exhausted ones first, then by share used.
/// `stack_bytes` is the stack size of the thread about to be created. Unreadable sources are
/// left out; `RLIMIT_NPROC` use needs `table`.
pub fn discover(
    roots: &Roots,
    rlimits: &Rlimits,
    table: Option<&ProcessTable>,
    stack_bytes: u64,
) -> Vec<Limit> {
    let mut out = Vec::new();
    let host_tasks =
        kernel::read_lenient(&roots.proc().join("loadavg"), kernel::parse_loadavg_tasks);

    if let (Some(max), Some(table)) = (rlimits.nproc, table) {
        out.push(Limit {
            kind: LimitKind::Nproc { uid: rlimits.uid },
            used: table.threads_of_uid(rlimits.uid),
            max,
            need: 1,
            path: None,
            enforced: rlimits.nproc_enforced,
        });
    }
    // The diagnosis reports what it can read: cgroup files it cannot make sense of are left out.
    for dir in kernel::cgroup_dirs(roots, "pids").unwrap_or_default() {
        let tightest = dir
            .levels()
            .filter_map(|level| {
                // `pids.max` is `max` or a number on both hierarchies.
                let max = read_limit(level.join("pids.max"), kernel::parse_v2_limit)?;
                let used = read_u64(level.join("pids.current"))?;
                Some(task_limit(
                    LimitKind::CgroupPids {
                        version: dir.version,
                    },
                    used,
                    max,
                    level.join("pids.max"),
                ))
            })
            .max_by(closeness);
        out.extend(tightest);
    }
    for (kind, file) in [
        (LimitKind::ThreadsMax, "sys/kernel/threads-max"),
        (LimitKind::PidMax, "sys/kernel/pid_max"),
    ] {
        let path = roots.proc().join(file);
        if let (Some(max), Some(used)) = (read_u64(path.clone()), host_tasks) {
            out.push(task_limit(kind, used, max, path));
        }
    }
    if let Some(max) = rlimits.address_space {
        let status = kernel::read_lenient(&roots.proc().join("self/status"), |t| {
            Ok(kernel::parse_status(t))
        });
        if let Some(used) = status.and_then(|s| s.vm_size) {
            out.push(Limit {
                kind: LimitKind::AddressSpace,
                used,
                max,
                need: stack_bytes.saturating_add(crate::sys::page_size()),
                path: None,
                enforced: true,
            });
        }
    }
    for dir in kernel::cgroup_dirs(roots, "memory").unwrap_or_default() {
        let (max_file, used_file, parse_max): (_, _, fn(&str) -> _) = match dir.version {
            CgroupVersion::V1 => (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                kernel::parse_v1_limit,
            ),
            CgroupVersion::V2 => ("memory.max", "memory.current", kernel::parse_v2_limit),
        };
        let tightest = dir
            .levels()
            .filter_map(|level| {
                let max = read_limit(level.join(max_file), parse_max)?;
                let used = read_u64(level.join(used_file))?;
                Some(Limit {
                    kind: LimitKind::CgroupMemory {
                        version: dir.version,
                    },
                    used,
                    max,
                    need: crate::sys::page_size(),
                    path: Some(level.join(max_file)),
                    enforced: true,
                })
            })
            .max_by(closeness);
        out.extend(tightest);
    }
    sort(&mut out);
    out
}

fn task_limit(kind: LimitKind, used: u64, max: u64, path: PathBuf) -> Limit {
    Limit {
        kind,
        used,
        max,
        need: 1,
        path: Some(path),
        enforced: true,
    }
}

/// Orders limits: exhausted ones first, then by share used, largest first.
pub(crate) fn sort(limits: &mut [Limit]) {
    limits.sort_by(|a, b| closeness(b, a));
}

fn closeness(a: &Limit, b: &Limit) -> std::cmp::Ordering {
    a.is_exhausted()
        .cmp(&b.is_exhausted())
        .then(a.ratio().total_cmp(&b.ratio()))
}

fn read_u64(path: PathBuf) -> Option<u64> {
    kernel::read_lenient(&path, |t| kernel::parse_u64(Format::Count, t))
}

/// A finite limit from a `max`-style file; `None` when unlimited or unreadable.
fn read_limit(
    path: PathBuf,
    parse: fn(&str) -> Result<kernel::Limit, kernel::ParseError>,
) -> Option<u64> {
    kernel::read_lenient(&path, parse)?.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(kind: LimitKind, used: u64, max: u64) -> Limit {
        Limit {
            kind,
            used,
            max,
            need: 1,
            path: None,
            enforced: true,
        }
    }

    #[test]
    fn ordering_and_display() {
        let mut v = vec![
            limit(LimitKind::ThreadsMax, 10, 100),
            limit(LimitKind::PidMax, 99, 100),
            limit(LimitKind::Nproc { uid: 7 }, 5, 5),
        ];
        sort(&mut v);
        assert_eq!(v[0].kind, LimitKind::Nproc { uid: 7 });
        assert_eq!(v[1].kind, LimitKind::PidMax);
        assert_eq!(
            v[0].to_string(),
            "RLIMIT_NPROC: 5 of 5 tasks of uid 7 (100%), exhausted"
        );
        let mut root = limit(LimitKind::Nproc { uid: 0 }, 5, 5);
        root.enforced = false;
        assert!(!root.is_exhausted());
        assert!(root.to_string().contains("not enforced for root"));
        let mut as_limit = limit(LimitKind::AddressSpace, 3 << 20, 4 << 20);
        as_limit.need = 2 << 20;
        assert!(as_limit.is_exhausted());
        assert_eq!(
            as_limit.to_string(),
            "RLIMIT_AS: 3.0 MiB of 4.0 MiB mapped, a new stack needs 2.0 MiB (75%), exhausted"
        );
    }

    #[test]
    fn this_machine_has_kernel_limits() {
        let limits = discover(&Roots::system(), &Rlimits::current(), None, 2 << 20);
        assert!(limits.iter().any(|l| l.kind == LimitKind::ThreadsMax));
        assert!(limits.iter().any(|l| l.kind == LimitKind::PidMax));
    }
}
