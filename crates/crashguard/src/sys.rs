//! The facade's platform calls.

use std::path::Path;

/// `OVERLAYFS_SUPER_MAGIC` from `linux/magic.h`: the filesystem of a container's root.
#[cfg(target_os = "linux")]
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Whether `path` lies on an overlay filesystem — a container's writable root, which is gone
/// when the container is replaced. False when it cannot be told.
#[cfg(target_os = "linux")]
pub(crate) fn on_overlay(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data, zeroed is a valid value; `c` is a NUL-terminated path and
    // `st` a valid out-pointer for the duration of the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    // The field's integer type differs between C libraries and architectures.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64;
    rc == 0 && magic == OVERLAYFS_SUPER_MAGIC
}

/// Other Unixes have no overlay root to warn about.
#[cfg(not(target_os = "linux"))]
pub(crate) fn on_overlay(_path: &Path) -> bool {
    false
}

/// Makes the calling thread `SCHED_BATCH` (`batch`) or `SCHED_OTHER` again: a batch thread
/// woken by another never preempts it (the kernel skips wake-up preemption for it) but keeps
/// its full share of the CPU. Best effort: a refusal leaves the policy as it was.
#[cfg(target_os = "linux")]
pub(crate) fn set_batch(batch: bool) {
    let policy = if batch {
        libc::SCHED_BATCH
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is the
    // calling thread on Linux.
    let _ = unsafe { libc::sched_setscheduler(0, policy, &param) };
}

/// Other Unixes have no `SCHED_BATCH`; the policy stays.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_batch(_batch: bool) {}
