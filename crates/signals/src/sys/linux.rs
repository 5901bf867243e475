//! Linux: the full feature set.

use core::ffi::{c_int, c_void};
use core::mem;

/// `mmap` flag marking an alternate signal stack as a stack mapping.
pub(crate) const MAP_STACK_FLAG: c_int = libc::MAP_STACK;

#[cfg(test)]
/// Whether thread stack bounds can be discovered (see [`current_stack_bounds`]).
pub(crate) const KNOWS_STACK_BOUNDS: bool = true;

/// The calling thread's `errno`.
///
/// Async-signal-safe.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location always returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
///
/// Async-signal-safe.
pub(crate) fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// The process id.
///
/// Async-signal-safe.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid is on the signal-safety(7) list and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// Sends `signo` to thread `tid` of this process; false when the kernel refused.
///
/// Async-signal-safe.
pub(crate) fn kill_thread(tid: u32, signo: c_int) -> bool {
    // SAFETY: a raw tgkill system call with plain integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, signo) };
    rc == 0
}

/// The smallest alternate stack the kernel and libc accept for this CPU:
/// max(`SIGSTKSZ`, `getauxval(AT_MINSIGSTKSZ)`).
pub(crate) fn min_signal_stack() -> usize {
    // SAFETY: getauxval has no preconditions and returns 0 for an unknown entry.
    let dynamic = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    libc::SIGSTKSZ.max(dynamic)
}

/// The calling thread's stack as `(low, high, guard_size)`; `low` excludes the guard.
///
/// Not async-signal-safe (for the main thread glibc reads `/proc/self/maps`): call it at
/// preparation time and keep the result.
pub(crate) fn current_stack_bounds() -> Option<(usize, usize, usize)> {
    // SAFETY: a zeroed pthread_attr_t is what pthread_getattr_np expects to fill.
    let mut attr: libc::pthread_attr_t = unsafe { mem::zeroed() };
    // SAFETY: `attr` is a valid out-pointer; on success it must be destroyed below.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
        return None;
    }
    let mut addr: *mut c_void = core::ptr::null_mut();
    let mut size: usize = 0;
    let mut guard: usize = 0;
    // SAFETY: `attr` was initialised by pthread_getattr_np; out-pointers are valid.
    let ok = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) } == 0;
    // SAFETY: as above.
    unsafe { libc::pthread_attr_getguardsize(&attr, &mut guard) };
    // SAFETY: `attr` was initialised and is destroyed exactly once.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if !ok || size == 0 {
        return None;
    }
    let low = addr as usize;
    Some((low, low.saturating_add(size), guard))
}

/// The program counter and stack pointer of the interrupted context, or zeros on an
/// architecture this crate does not decode.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `uc` must be null or the `ucontext_t` pointer the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn context_pc_sp(uc: *mut c_void) -> (usize, usize) {
    if uc.is_null() {
        return (0, 0);
    }
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*uc.cast::<libc::ucontext_t>() };
    arch_pc_sp(uc)
}

/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn arch_pc_sp(uc: &libc::ucontext_t) -> (usize, usize) {
    let regs = &uc.uc_mcontext.gregs;
    let pc = regs.get(libc::REG_RIP as usize).copied().unwrap_or(0);
    let sp = regs.get(libc::REG_RSP as usize).copied().unwrap_or(0);
    (pc as usize, sp as usize)
}

/// Async-signal-safe.
#[cfg(target_arch = "aarch64")]
fn arch_pc_sp(uc: &libc::ucontext_t) -> (usize, usize) {
    (uc.uc_mcontext.pc as usize, uc.uc_mcontext.sp as usize)
}

/// Async-signal-safe.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn arch_pc_sp(_uc: &libc::ucontext_t) -> (usize, usize) {
    (0, 0)
}

/// `si_addr`, `si_pid` and `si_uid` of a siginfo; the latter two only mean something for
/// signals sent by a process.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `info` must point to the siginfo the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn siginfo_fields(info: &libc::siginfo_t) -> (usize, u32, u32) {
    // SAFETY: reading the union members through libc's accessors; the caller decides which
    // of them are meaningful from si_code.
    unsafe { (info.si_addr() as usize, info.si_pid() as u32, info.si_uid()) }
}

/// A one-shot alarm for the watchdog: a `timerfd` that a thread blocks on. Arming it from the
/// handler is a single system call and wakes nobody until the time is up, so a crash that ends
/// the process in time never schedules the watchdog thread at all.
#[derive(Debug)]
pub(crate) struct Alarm(std::os::fd::OwnedFd);

impl Alarm {
    /// Creates a disarmed alarm; returns it and the handle [`arm_alarm`] takes.
    pub(crate) fn new() -> std::io::Result<(Alarm, i32)> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: timerfd_create has no memory arguments.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let raw = owned.as_raw_fd();
        Ok((Alarm(owned), raw))
    }

    /// Blocks until the alarm goes off; false if waiting failed.
    pub(crate) fn wait(&mut self) -> bool {
        use std::os::fd::AsRawFd;
        loop {
            let mut expirations = 0u64;
            // SAFETY: reads 8 bytes into a u64, as timerfd requires.
            let n = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    (&raw mut expirations).cast::<c_void>(),
                    size_of::<u64>(),
                )
            };
            if n == size_of::<u64>() as isize {
                return true;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return false;
        }
    }
}

/// Arms the alarm behind `handle` to go off `after_ns` nanoseconds from now (at least 1).
///
/// Async-signal-safe.
pub(crate) fn arm_alarm(handle: i32, after_ns: u64) {
    let after_ns = after_ns.max(1);
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (after_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (after_ns % 1_000_000_000) as libc::c_long,
        },
    };
    // SAFETY: timerfd_settime is a thin system-call wrapper; `spec` is valid and the old value
    // is not requested.
    unsafe { libc::timerfd_settime(handle, 0, &spec, core::ptr::null_mut()) };
}
