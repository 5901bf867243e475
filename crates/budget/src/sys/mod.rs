//! The budget crate's platform layer: every libc call of the crate lives below this module,
//! in one file per area. Everything is POSIX except the task-directory scan, which is Linux's
//! `getdents64` and reports `ENOSYS` elsewhere; the files the probes read (`/proc`, cgroup
//! trees, `/dev/kmsg`) exist only on Linux and are reported missing on other unixes.

pub(crate) mod memory;
pub(crate) mod thread;

/// The size of a memory page in bytes (4096 when the system will not say).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads configuration.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}
