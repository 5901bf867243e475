//! Watching the process end: `on_exit` where the C library has it (glibc), `atexit` elsewhere.

use std::ffi::{c_int, c_void};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    /// glibc's `on_exit(3)`: like `atexit`, but the handler is given the status passed to
    /// `exit`. Not in the `libc` crate because POSIX does not have it.
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// Registers `with_status` to run when the process calls `exit` (or returns from `main`), told
/// the status; where the C library cannot tell handlers the status, registers `without_status`
/// with `atexit` instead. Returns whether the status will be known.
///
/// Handlers registered this way do not run on `_exit`, on a death by signal, or when `exec`
/// replaces the process.
pub(crate) fn on_process_exit(
    with_status: extern "C" fn(c_int, *mut c_void),
    without_status: extern "C" fn(),
) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _ = without_status;
        // SAFETY: on_exit only stores the function pointer and argument; the function is a
        // plain `extern "C" fn` valid for the life of the process and ignores the argument.
        let rc = unsafe { on_exit(with_status, std::ptr::null_mut()) };
        rc == 0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = with_status;
        // SAFETY: atexit only stores the function pointer, a plain `extern "C" fn` valid for
        // the life of the process.
        unsafe { libc::atexit(without_status) };
        false
    }
}

/// Sleeps for about `ns` nanoseconds (less if a signal interrupts).
///
/// Async-signal-safe.
pub(crate) fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: nanosleep reads one timespec through a valid pointer and may leave the remainder
    // unwritten (null); it is on the POSIX async-signal-safe list.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}
