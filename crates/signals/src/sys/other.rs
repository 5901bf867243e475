//! Unixes other than Linux: reduced features (see the parent module's documentation).

use core::ffi::{c_int, c_void};

/// `mmap` flag marking an alternate signal stack as a stack mapping (none here).
pub(crate) const MAP_STACK_FLAG: c_int = 0;

#[cfg(test)]
/// Whether thread stack bounds can be discovered.
pub(crate) const KNOWS_STACK_BOUNDS: bool = false;

/// The calling thread's `errno`.
///
/// Async-signal-safe.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets the calling thread's `errno` (not supported here; the handler's errno changes are
/// limited to the calls it makes).
///
/// Async-signal-safe.
pub(crate) fn set_errno(_value: i32) {}

/// The process id.
///
/// Async-signal-safe.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// Sends `signo` to the calling thread (the `tid` is ignored: only the caller can be named).
///
/// Async-signal-safe.
pub(crate) fn kill_thread(_tid: u32, signo: c_int) -> bool {
    // SAFETY: raise is on the signal-safety(7) list.
    unsafe { libc::raise(signo) == 0 }
}

/// `SIGSTKSZ`.
pub(crate) fn min_signal_stack() -> usize {
    libc::SIGSTKSZ
}

/// Stack bounds are not discovered on this platform.
pub(crate) fn current_stack_bounds() -> Option<(usize, usize, usize)> {
    None
}

/// The calling thread's registers are not read on this platform.
pub(crate) fn with_current_registers<R>(_f: impl FnOnce(&super::Registers) -> R) -> Option<R> {
    None
}

/// The interrupted context is not decoded on this platform.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `uc` must be null or the `ucontext_t` pointer the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn context_registers(_uc: *mut c_void, out: &mut super::Registers) {
    *out = super::Registers::EMPTY;
}

/// There is no checked read on this platform: nothing is copied.
///
/// Async-signal-safe.
pub(crate) fn read_checked(_src: usize, _dst: &mut [u8]) -> usize {
    0
}

/// Machine-check codes are Linux's; no code matches here.
pub(crate) const BUS_MCEERR_AO: i32 = i32::MIN;

/// `si_code`, `si_addr`, `si_pid` and `si_uid` of a siginfo.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `info` must point to the siginfo the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn siginfo_fields(info: &libc::siginfo_t) -> (i32, usize, u32, u32) {
    (
        info.si_code,
        info.si_addr as usize,
        info.si_pid as u32,
        info.si_uid,
    )
}

/// The signal a watchdog alarm would raise; never raised on this platform (see [`Alarm`]).
pub(crate) const ALARM_SIGNAL: c_int = libc::SIGTRAP;

/// A one-shot alarm for the watchdog, built on a pipe and a thread (`crashguard-wd`): arming
/// writes the delay, the thread reads it, sleeps that long and calls the expiry function.
/// Dropping it closes the pipe, which ends the thread.
#[derive(Debug)]
pub(crate) struct Alarm {
    writer: Option<std::io::PipeWriter>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Alarm {
    /// Starts the alarm thread; `on_expiry` runs on it when the alarm goes off.
    pub(crate) fn new(_cookie: u64, on_expiry: fn()) -> std::io::Result<Alarm> {
        let (mut reader, writer) = std::io::pipe()?;
        let thread = std::thread::Builder::new()
            .name("crashguard-wd".into())
            .spawn(move || {
                block_all_signals();
                let mut delay = [0u8; 8];
                if std::io::Read::read_exact(&mut reader, &mut delay).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_nanos(u64::from_ne_bytes(delay)));
                on_expiry();
            })?;
        Ok(Alarm {
            writer: Some(writer),
            thread: Some(thread),
        })
    }

    /// The handle [`arm_alarm`] takes.
    pub(crate) fn handle(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.writer.as_ref().map_or(-1, |w| w.as_raw_fd())
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Keeps process-directed signals away from the alarm thread, so it never runs someone's
/// handler and is always free to act.
fn block_all_signals() {
    // SAFETY: a zeroed sigset_t is a valid buffer for sigfillset.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this thread's mask.
    unsafe {
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// Arms the alarm behind `handle` to go off `after_ns` nanoseconds from now.
///
/// Async-signal-safe.
pub(crate) fn arm_alarm(handle: i32, after_ns: u64) {
    super::write_all(handle, &after_ns.to_ne_bytes());
}

/// A forked child has no alarm thread on this platform: its handler runs unbounded.
///
/// Async-signal-safe.
pub(crate) fn arm_thread_alarm(_tid: u32, _cookie: u64, _after_ns: u64) {}

/// No signal is ever an alarm on this platform.
///
/// Async-signal-safe.
pub(crate) fn alarm_cookie(_info: &libc::siginfo_t) -> Option<u64> {
    None
}

/// No alarm is forwarded on this platform (the alarm thread acts itself).
///
/// Async-signal-safe.
pub(crate) fn send_alarm(_tid: u32, _cookie: u64) -> bool {
    false
}

/// Loaded objects' unwind tables are not read on this platform: the handler records frame 0
/// only, so there are none.
pub(crate) fn unwind_modules() -> Vec<super::UnwindModule> {
    Vec::new()
}
