//! The memory budget's platform calls.
//!
//! Everything is POSIX, so the module compiles on every unix; the files the probe reads
//! (`/proc`, cgroup trees, `/dev/kmsg`) exist only on Linux, and elsewhere the probe reports
//! them as missing (`None` figures, no cgroup).

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates a thread-specific-data key whose destructor runs when a thread that set a non-null
/// value for it exits. Returns the key, or `None` when the process is out of keys.
///
/// Called once per process from the allocator's slow path. It never calls Rust's allocator,
/// so it cannot recurse into it: glibc claims a slot with an atomic compare-and-swap and takes
/// no lock; musl takes its internal key lock, which nothing on the allocator path holds.
pub(crate) fn thread_exit_key_create(dtor: unsafe extern "C" fn(*mut c_void)) -> Option<usize> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `dtor` is a valid function for the process lifetime.
    let rc = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) };
    if rc == 0 {
        usize::try_from(key).ok()
    } else {
        None
    }
}

/// Arms the key for the calling thread so its destructor runs at the thread's exit.
///
/// In glibc, keys below 32 live in a table inside the thread descriptor and setting them is a
/// plain store; higher keys may make glibc `calloc` a second-level table from its own heap (not
/// the Rust global allocator, so no recursion). musl keeps a fixed table.
pub(crate) fn thread_exit_key_arm(key: usize) -> bool {
    let Ok(key) = libc::pthread_key_t::try_from(key) else {
        return false;
    };
    // SAFETY: `key` came from pthread_key_create; any non-null value arms the destructor and the
    // destructor never dereferences it.
    unsafe { libc::pthread_setspecific(key, std::ptr::dangling::<c_void>()) == 0 }
}

/// Opens a file for reading without blocking (for `/dev/kmsg`, whose reads wait for new
/// messages unless the descriptor is non-blocking).
pub(crate) fn open_read_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// CPU time consumed so far by the calling thread, in nanoseconds.
pub(crate) fn thread_cpu_time_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Whether an error means the kernel does not offer this file's data (`EOPNOTSUPP`, `ENOSYS`,
/// `ENODEV`), as `memory.pressure` does when PSI is disabled.
pub(crate) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::ENODEV)
    )
}
