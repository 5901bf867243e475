//! The platform layer: the only module that talks to libc.
//!
//! Linux is the target. On other Unixes the same functions exist with reduced fidelity:
//! thread ids come from `pthread_self`, thread names may be empty, and loaded modules are not
//! enumerated (frames are then recorded as absolute addresses).

pub(crate) mod exit;
pub(crate) mod fs;
pub(crate) mod modules;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Which clock to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clock {
    Realtime,
    /// The wall clock as of the last kernel tick: a read of the vDSO page, no counter read.
    RealtimeCoarse,
    Monotonic,
}

/// Async-signal-safe.
pub(crate) fn clock_ns(clock: Clock) -> u64 {
    let id = match clock {
        Clock::Realtime => libc::CLOCK_REALTIME,
        #[cfg(target_os = "linux")]
        Clock::RealtimeCoarse => libc::CLOCK_REALTIME_COARSE,
        #[cfg(not(target_os = "linux"))]
        Clock::RealtimeCoarse => libc::CLOCK_REALTIME,
        Clock::Monotonic => libc::CLOCK_MONOTONIC,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; it is on the POSIX
    // async-signal-safe list.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Async-signal-safe.
#[cfg(not(target_os = "linux"))]
pub(crate) fn gettid() -> u32 {
    // SAFETY: pthread_self has no preconditions; the value is only used as an identifier.
    (unsafe { libc::pthread_self() }) as usize as u32
}

/// Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn thread_name(out: &mut [u8; 16]) -> usize {
    *out = [0; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into the buffer we pass.
    let rc = unsafe {
        libc::prctl(
            libc::PR_GET_NAME,
            out.as_mut_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return 0;
    }
    out.iter().position(|&b| b == 0).unwrap_or(out.len())
}

/// Async-signal-safe.
#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_name(out: &mut [u8; 16]) -> usize {
    *out = [0; 16];
    0
}

/// Async-signal-safe.
pub(crate) fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: write reads `bytes.len()` bytes from a valid slice; it is async-signal-safe.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
}

/// Empties the file `fd` and moves its offset to the start; errors are ignored.
///
/// Async-signal-safe.
pub(crate) fn truncate_and_rewind(fd: i32) {
    // SAFETY: ftruncate and lseek take a descriptor and integers; both are on the POSIX
    // async-signal-safe list.
    unsafe {
        libc::ftruncate(fd, 0);
        libc::lseek(fd, 0, libc::SEEK_SET);
    }
}

/// Unmaps a mapping made by [`map_shared`].
///
/// # Safety
///
/// `base` and `len` must describe exactly one live mapping that nothing references any more.
pub(crate) unsafe fn unmap(base: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { libc::munmap(base.cast(), len) };
}

/// Takes an exclusive, non-blocking `flock`. `Ok(false)` when another process holds it.
pub(crate) fn try_lock(fd: &OwnedFd) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// `open` flags for probing another process's slot file: non-blocking (a FIFO put in its
/// place cannot hang the reader), never through a symbolic link, never inherited.
pub(crate) const PROBE_OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Whether another open file description holds an exclusive `flock` on `fd`'s file: tries a
/// shared, non-blocking lock and releases it at once.
pub(crate) fn lock_held_elsewhere(fd: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: flock on a descriptor the caller owns; no memory is passed.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above; releases the shared lock just taken.
        unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
        return Ok(false);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(true)
    } else {
        Err(err)
    }
}

/// Releases an `flock` taken by [`try_lock`]; errors are ignored (the lock then goes with the
/// process).
pub(crate) fn unlock(fd: &OwnedFd) {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) };
}

/// Maps `len` bytes of `fd` shared and writable.
pub(crate) fn map_shared(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh shared mapping of a file we own, at an address the kernel picks; the file
    // was sized to at least `len` by the caller.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Sets the file's length (zero-filling anything new).
pub(crate) fn set_len(fd: &OwnedFd, len: u64) -> io::Result<()> {
    // SAFETY: ftruncate on a descriptor we own.
    let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Allocates the file's blocks up front. File systems that cannot (`EOPNOTSUPP`) are left
/// sparse; running out of space is an error.
#[cfg(target_os = "linux")]
pub(crate) fn reserve(fd: &OwnedFd, len: u64) -> io::Result<()> {
    // SAFETY: posix_fallocate on a descriptor we own; it returns an error number, not -1.
    let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Other Unixes: the file stays as `ftruncate` left it.
#[cfg(not(target_os = "linux"))]
pub(crate) fn reserve(_fd: &OwnedFd, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Keeps a mapping out of every child made by `fork`: the child gets a hole instead of a share
/// of the file, so it neither writes into this process's record nor keeps the slot's file
/// description (and so its `flock`) alive. Errors are ignored: the fork handler below covers
/// children made through `fork(3)` either way.
#[cfg(target_os = "linux")]
pub(crate) fn dont_fork(base: *mut u8, len: usize) {
    // SAFETY: madvise only changes how the kernel copies the range at fork; the range is one
    // mapping we own.
    unsafe { libc::madvise(base.cast(), len, libc::MADV_DONTFORK) };
}

/// Other Unixes have no `MADV_DONTFORK`; the fork handler replaces the mapping instead.
#[cfg(not(target_os = "linux"))]
pub(crate) fn dont_fork(_base: *mut u8, _len: usize) {}

/// In a child made by `fork`: puts private, zero-filled memory where the parent's black box
/// was mapped (a hole after `MADV_DONTFORK`, the shared mapping elsewhere), so that any write
/// the child still makes through an old reference lands in memory of its own instead of
/// faulting or reaching the parent's file; and closes the child's copy of the slot's
/// descriptor, so the child holds no reference to the locked file description.
///
/// Async-signal-safe: `mmap` and `close` are single system calls.
pub(crate) fn detach_in_child(base: *mut u8, len: usize, fd: i32) {
    // SAFETY: MAP_FIXED over an address range the parent mapped and this child owns (the
    // child is single-threaded at this point); nothing else is mapped there.
    unsafe {
        libc::mmap(
            base.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor is the child's copy of the slot's; the box that owns it is
        // leaked and never closes it in the child (it is no longer the active box there).
        unsafe { libc::close(fd) };
    }
}

/// Registers `child` to run in every child process right after `fork`, once per process
/// however often it is called.
pub(crate) fn on_fork_child(child: extern "C" fn()) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: pthread_atfork only stores the function pointer; `child` is a plain
        // `extern "C" fn` that stays valid for the life of the process. A failure (ENOMEM)
        // leaves forked children armed, which only matters if one of them crashes.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
}
