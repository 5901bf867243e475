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

/// Calls `f` with the calling thread's registers as `getcontext` saw them in this function: the
/// program counter is the return address of that call, the stack and frame pointers are this
/// function's, and this function's frame stays live (below it only `f`'s frames are made) while
/// `f` runs, so `f` may unwind from those registers through this frame and its callers. `None`
/// when the registers could not be read.
///
/// Not async-signal-safe (install time only): it is used to unwind the installing thread's own
/// stack once, which warms the unwinder's cache (`unwind.rs`).
#[cfg(target_env = "gnu")]
#[inline(never)]
pub(crate) fn with_current_registers<R>(f: impl FnOnce(&super::Registers) -> R) -> Option<R> {
    let mut regs = super::Registers::EMPTY;
    // SAFETY: all-zero bytes are a valid ucontext_t (integers and null pointers).
    let mut uc: libc::ucontext_t = unsafe { mem::zeroed() };
    // SAFETY: `uc` is a valid out-pointer. getcontext returns once here; nothing ever resumes
    // this context (no setcontext), so it cannot return a second time.
    if unsafe { libc::getcontext(&mut uc) } != 0 {
        return None;
    }
    arch_registers(&uc, &mut regs);
    if regs.pc == 0 || regs.sp == 0 {
        return None;
    }
    Some(f(&regs))
}

/// Without glibc's `getcontext` the calling thread's registers are not read.
#[cfg(not(target_env = "gnu"))]
pub(crate) fn with_current_registers<R>(_f: impl FnOnce(&super::Registers) -> R) -> Option<R> {
    None
}

/// Fills `out` with the interrupted context's registers; leaves it empty (`ARCH_NONE`) for a
/// null context or an architecture this crate does not decode.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `uc` must be null or the `ucontext_t` pointer the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn context_registers(uc: *mut c_void, out: &mut super::Registers) {
    *out = super::Registers::EMPTY;
    if uc.is_null() {
        return;
    }
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*uc.cast::<libc::ucontext_t>() };
    arch_registers(uc, out);
}

/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn arch_registers(uc: &libc::ucontext_t, out: &mut super::Registers) {
    use crashguard_blackbox::layout::{ARCH_X86_64, X86_64_REGISTERS};
    let g = &uc.uc_mcontext.gregs;
    let reg = |i: libc::c_int| g.get(i as usize).copied().unwrap_or(0) as u64;
    let csgsfs = reg(libc::REG_CSGSFS);
    // The order of X86_64_REGISTERS.
    let values = [
        reg(libc::REG_RAX),
        reg(libc::REG_RBX),
        reg(libc::REG_RCX),
        reg(libc::REG_RDX),
        reg(libc::REG_RSI),
        reg(libc::REG_RDI),
        reg(libc::REG_RBP),
        reg(libc::REG_RSP),
        reg(libc::REG_R8),
        reg(libc::REG_R9),
        reg(libc::REG_R10),
        reg(libc::REG_R11),
        reg(libc::REG_R12),
        reg(libc::REG_R13),
        reg(libc::REG_R14),
        reg(libc::REG_R15),
        reg(libc::REG_RIP),
        reg(libc::REG_EFL),
        csgsfs & 0xffff,
        (csgsfs >> 16) & 0xffff,
        (csgsfs >> 32) & 0xffff,
        reg(libc::REG_ERR),
        reg(libc::REG_TRAPNO),
    ];
    const _: () = assert!(X86_64_REGISTERS.len() == 23);
    for (slot, v) in out.values.iter_mut().zip(values) {
        *slot = v;
    }
    out.arch = ARCH_X86_64;
    out.count = values.len() as u32;
    out.pc = reg(libc::REG_RIP) as usize;
    out.sp = reg(libc::REG_RSP) as usize;
    out.fp = reg(libc::REG_RBP) as usize;
}

/// Async-signal-safe.
#[cfg(target_arch = "aarch64")]
fn arch_registers(uc: &libc::ucontext_t, out: &mut super::Registers) {
    use crashguard_blackbox::layout::{AARCH64_REGISTERS, ARCH_AARCH64};
    let m = &uc.uc_mcontext;
    for (slot, &v) in out.values.iter_mut().zip(m.regs.iter()) {
        *slot = v;
    }
    let tail = [m.sp, m.pc, m.pstate];
    for (slot, v) in out.values.iter_mut().skip(m.regs.len()).zip(tail) {
        *slot = v;
    }
    out.arch = ARCH_AARCH64;
    out.count = AARCH64_REGISTERS.len() as u32;
    out.pc = m.pc as usize;
    out.sp = m.sp as usize;
    out.fp = m.regs.get(29).copied().unwrap_or(0) as usize;
}

/// Async-signal-safe.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn arch_registers(_uc: &libc::ucontext_t, _out: &mut super::Registers) {}

/// Copies `dst.len()` bytes from address `src` of this process without faulting: the kernel
/// reads them (`process_vm_readv` on our own pid) and reports an unmapped page as an error
/// instead of a SIGSEGV. Returns how many bytes were copied (a prefix; 0 when the first page is
/// unreadable or the call is refused, e.g. by a seccomp filter).
///
/// Async-signal-safe.
pub(crate) fn read_checked(src: usize, dst: &mut [u8]) -> usize {
    if dst.is_empty() {
        return 0;
    }
    let local = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    let remote = libc::iovec {
        iov_base: src as *mut c_void,
        iov_len: dst.len(),
    };
    // SAFETY: a raw system call; the kernel writes at most `dst.len()` bytes into `dst` and
    // reads the remote range through its own checked copy.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        0
    } else {
        (n as usize).min(dst.len())
    }
}

/// `si_code` of a SIGBUS for an action-optional machine check: asynchronous, not raised by
/// the interrupted instruction.
pub(crate) const BUS_MCEERR_AO: i32 = 5;

/// `si_code`, `si_addr`, `si_pid` and `si_uid` of a siginfo; the last two only mean something
/// for signals sent by a process.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `info` must point to the siginfo the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn siginfo_fields(info: &libc::siginfo_t) -> (i32, usize, u32, u32) {
    // SAFETY: reading the union members through libc's accessors; the caller decides which
    // of them are meaningful from si_code.
    unsafe {
        (
            info.si_code,
            info.si_addr() as usize,
            info.si_pid() as u32,
            info.si_uid(),
        )
    }
}

/// The signal the watchdog's timer raises: SIGTRAP, one of the fatal signals, so that its
/// disposition is crashguard's handler for as long as a crash can be handled, and the one
/// least likely to be the crash being handled (a trap ends the process by being sent again at
/// once, never by returning with the default action restored and running on).
pub(crate) const ALARM_SIGNAL: c_int = libc::SIGTRAP;

/// `sigev_value`'s offset in a `siginfo_t` for `SI_TIMER` and `SI_QUEUE` (after `si_signo`,
/// `si_errno`, `si_code`, padding, then `si_tid`/`si_pid` and `si_overrun`/`si_uid`), the
/// same on every 64-bit and 32-bit Linux ABI this crate builds for.
const SIGINFO_VALUE_OFFSET: usize = if cfg!(target_pointer_width = "64") {
    24
} else {
    20
};

/// The watchdog's POSIX timer (the kernel's timer id), created disarmed at install; its expiry
/// is the signal [`ALARM_SIGNAL`] with `SI_TIMER` and the cookie as its value, sent to the
/// process. Deleted on drop.
#[derive(Debug)]
pub(crate) struct Alarm(c_int);

impl Alarm {
    /// Creates the disarmed timer. `_on_expiry` is for platforms that wait in a thread; here
    /// the handler recognises the signal.
    pub(crate) fn new(cookie: u64, _on_expiry: fn()) -> std::io::Result<Alarm> {
        match create_timer(cookie, None) {
            -1 => Err(std::io::Error::last_os_error()),
            id => Ok(Alarm(id)),
        }
    }

    /// The handle [`arm_alarm`] takes.
    pub(crate) fn handle(&self) -> i32 {
        self.0
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // SAFETY: deletes the timer this value created and owns.
        unsafe { libc::syscall(libc::SYS_timer_delete, self.0) };
    }
}

/// Arms timer `handle` to expire `after_ns` nanoseconds from now (at least 1), once.
///
/// Async-signal-safe.
pub(crate) fn arm_alarm(handle: i32, after_ns: u64) {
    let spec = one_shot(after_ns);
    // SAFETY: a raw timer_settime system call; `spec` is valid and the old value is not asked.
    unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            handle,
            0,
            &raw const spec,
            core::ptr::null_mut::<libc::itimerspec>(),
        )
    };
}

/// In a process that has no watchdog timer of its own (a child made by `fork`): creates one
/// aimed at thread `tid` and arms it. Never deleted: the process is ending.
///
/// Async-signal-safe.
pub(crate) fn arm_thread_alarm(tid: u32, cookie: u64, after_ns: u64) {
    let id = create_timer(cookie, Some(tid));
    if id != -1 {
        arm_alarm(id, after_ns);
    }
}

/// Creates a disarmed `CLOCK_MONOTONIC` timer whose expiry sends [`ALARM_SIGNAL`] carrying
/// `cookie`: to the process, or to thread `thread` when given (`SIGEV_THREAD_ID`). Returns the
/// timer's id, or -1 with `errno` set.
///
/// Async-signal-safe.
fn create_timer(cookie: u64, thread: Option<u32>) -> c_int {
    // SAFETY: an all-zero sigevent is a valid value to fill in.
    let mut event: libc::sigevent = unsafe { mem::zeroed() };
    event.sigev_signo = ALARM_SIGNAL;
    event.sigev_value = libc::sigval {
        sival_ptr: cookie as usize as *mut c_void,
    };
    match thread {
        Some(tid) => {
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_notify_thread_id = tid as c_int;
        }
        None => event.sigev_notify = libc::SIGEV_SIGNAL,
    }
    let mut id: c_int = -1;
    // SAFETY: a raw timer_create system call; `event` and `id` are valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            libc::CLOCK_MONOTONIC,
            &raw mut event,
            &raw mut id,
        )
    };
    if rc == 0 { id } else { -1 }
}

/// Async-signal-safe.
fn one_shot(after_ns: u64) -> libc::itimerspec {
    let after_ns = after_ns.max(1);
    libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (after_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (after_ns % 1_000_000_000) as libc::c_long,
        },
    }
}

/// The value a watchdog alarm carries, if `info` is one (`SI_TIMER`).
///
/// Async-signal-safe.
pub(crate) fn alarm_cookie(info: &libc::siginfo_t) -> Option<u64> {
    if info.si_code != libc::SI_TIMER {
        return None;
    }
    let base: *const libc::siginfo_t = info;
    // SAFETY: the value field lies inside the 128-byte siginfo_t at this offset for SI_TIMER
    // (see SIGINFO_VALUE_OFFSET); an unaligned read of a pointer-sized integer.
    let value = unsafe {
        core::ptr::read_unaligned(base.cast::<u8>().add(SIGINFO_VALUE_OFFSET).cast::<usize>())
    };
    Some(value as u64)
}

/// Sends the watchdog's alarm (as the timer would, `SI_TIMER` with `cookie`) to thread `tid` of
/// this process; false when the kernel refused.
///
/// Async-signal-safe.
pub(crate) fn send_alarm(tid: u32, cookie: u64) -> bool {
    // SAFETY: an all-zero siginfo_t is a valid value to fill in.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    info.si_signo = ALARM_SIGNAL;
    info.si_code = libc::SI_TIMER;
    let base: *mut libc::siginfo_t = &mut info;
    // SAFETY: as in `alarm_cookie`: the value field lies inside the siginfo_t.
    unsafe {
        core::ptr::write_unaligned(
            base.cast::<u8>().add(SIGINFO_VALUE_OFFSET).cast::<usize>(),
            cookie as usize,
        )
    };
    // SAFETY: a raw rt_tgsigqueueinfo system call to a thread of this very process (which may
    // use any si_code); `info` is valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            tid as libc::pid_t,
            ALARM_SIGNAL,
            &raw const info,
        )
    };
    rc == 0
}
