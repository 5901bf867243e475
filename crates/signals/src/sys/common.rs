//! POSIX calls shared by every unix this crate builds on.

use core::ffi::{c_int, c_void};
use core::{mem, ptr};
use std::io;

/// Sleeps for about `ns` nanoseconds; an interruption by a signal ends the sleep early.
///
/// Async-signal-safe.
pub(crate) fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is valid; a null remainder pointer is allowed; nanosleep is on the list.
    unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
}

/// Ends the process at once with `code`, without running destructors or `atexit` handlers.
///
/// Async-signal-safe.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is on the list and never returns.
    unsafe { libc::_exit(code) }
}

/// Reads the current disposition of `signo`.
pub(crate) fn query_action(signo: c_int) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid out-pointer.
    let rc = unsafe { libc::sigaction(signo, ptr::null(), &mut old) };
    if rc == 0 {
        Ok(old)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs `action` for `signo` and returns the previous disposition.
///
/// Async-signal-safe.
pub(crate) fn set_action(signo: c_int, action: &libc::sigaction) -> Result<libc::sigaction, i32> {
    // SAFETY: as in `query_action`.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: both pointers are valid; sigaction is on the list.
    let rc = unsafe { libc::sigaction(signo, action, &mut old) };
    if rc == 0 {
        Ok(old)
    } else {
        Err(super::errno())
    }
}

/// Unblocks `signo` for the calling thread if `mask` (the mask the interrupted code ran with,
/// which a handler without `sa_mask` runs with too) blocks it; does nothing otherwise.
///
/// Async-signal-safe.
pub(crate) fn unblock_if_blocked(mask: &libc::sigset_t, signo: c_int) {
    // SAFETY: `mask` is a valid sigset_t; sigismember only reads it.
    if unsafe { libc::sigismember(mask, signo) } != 1 {
        return;
    }
    // SAFETY: an all-zero sigset_t is a valid buffer for sigemptyset.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this thread's mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
    }
}

/// Restores the default disposition of `signo`.
///
/// Async-signal-safe.
pub(crate) fn set_default(signo: c_int) {
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask and no flags.
    let action: libc::sigaction = unsafe { mem::zeroed() };
    let _ = set_action(signo, &action);
}

/// Builds the sigaction that runs `handler` with siginfo, on the alternate stack, without
/// blocking its own signal (so that a fault inside the handler reaches the handler again and
/// can be turned into the handler-failure exit instead of a silent kill).
pub(crate) fn fatal_action(
    handler: unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void),
) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid starting value.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler as usize as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
    // SAFETY: `sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// The handler address stored in a sigaction, as an integer.
pub(crate) fn handler_address(action: &libc::sigaction) -> usize {
    action.sa_sigaction
}

/// Decodes a sigaction into its typed disposition (once, at install: the handler only ever
/// calls typed function pointers).
pub(crate) fn disposition(action: &libc::sigaction) -> crate::state::Disposition {
    use crate::state::Disposition;
    match action.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        addr if action.sa_flags & libc::SA_SIGINFO != 0 => {
            type Action = unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);
            // SAFETY: with SA_SIGINFO, the kernel calls `sa_sigaction` with this signature;
            // the address is not SIG_DFL or SIG_IGN, so it is a function.
            Disposition::Action(unsafe { mem::transmute::<usize, Action>(addr) })
        }
        addr => {
            type Handler = unsafe extern "C" fn(c_int);
            // SAFETY: without SA_SIGINFO, the kernel calls `sa_handler` with the signal number
            // only; the address is not SIG_DFL or SIG_IGN, so it is a function.
            Disposition::Handler(unsafe { mem::transmute::<usize, Handler>(addr) })
        }
    }
}

/// The page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// The calling thread's alternate signal stack: `(base, size, enabled, on_it)`.
///
/// Async-signal-safe (a raw `sigaltstack`; the error path, never taken in a handler, builds an
/// `io::Error` from the OS code without allocating).
pub(crate) fn altstack_query() -> io::Result<(usize, usize, bool, bool)> {
    // SAFETY: an all-zero stack_t is valid.
    let mut old: libc::stack_t = unsafe { mem::zeroed() };
    // SAFETY: a null new stack only queries.
    let rc = unsafe { libc::sigaltstack(ptr::null(), &mut old) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        old.ss_sp as usize,
        old.ss_size,
        old.ss_flags & libc::SS_DISABLE == 0,
        old.ss_flags & libc::SS_ONSTACK != 0,
    ))
}

/// The calling thread's enabled alternate stack as `(base, size)`, or `None`.
///
/// Async-signal-safe.
pub(crate) fn altstack_current() -> Option<(usize, usize)> {
    match altstack_query() {
        Ok((base, size, true, _)) => Some((base, size)),
        _ => None,
    }
}

/// The alternate stack the kernel saved in a signal's context (`uc_stack`) as `(base, size)`,
/// when it was enabled and not auto-disarming; `None` otherwise (ask [`altstack_current`]).
///
/// Async-signal-safe.
pub(crate) fn altstack_from_context(uc: &libc::ucontext_t) -> Option<(usize, usize)> {
    let stack = &uc.uc_stack;
    let unusable = libc::SS_DISABLE | AUTODISARM;
    (stack.ss_flags & unusable == 0 && stack.ss_size != 0 && !stack.ss_sp.is_null())
        .then_some((stack.ss_sp as usize, stack.ss_size))
}

/// `SS_AUTODISARM` (Linux): the alternate stack is disabled while a handler runs on it.
const AUTODISARM: c_int = 1 << 31;

/// Makes `[base, base + size)` the calling thread's alternate signal stack.
///
/// Async-signal-safe.
pub(crate) fn altstack_set(base: usize, size: usize) -> io::Result<()> {
    let stack = libc::stack_t {
        ss_sp: base as *mut c_void,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: the caller owns the memory for as long as it stays installed.
    let rc = unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Disables the calling thread's alternate signal stack.
pub(crate) fn altstack_disable() {
    let stack = libc::stack_t {
        ss_sp: ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        // Some implementations reject a size below MINSIGSTKSZ even when disabling.
        ss_size: libc::SIGSTKSZ,
    };
    // SAFETY: disabling takes no memory.
    unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
}

/// Maps `guard + size` bytes and makes the lowest `guard` bytes inaccessible; returns the
/// mapping's base (the guard's start).
pub(crate) fn map_guarded(size: usize, guard: usize) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping has no preconditions.
    let base = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size + guard,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | super::MAP_STACK_FLAG,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the first `guard` bytes belong to the mapping just created.
    if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
        let err = io::Error::last_os_error();
        unmap(base as usize, size + guard);
        return Err(err);
    }
    Ok(base as usize)
}

/// Writes to every page of `[top - bytes, top)` of a private mapping so that the kernel backs
/// them now, not at the first use by the crash handler (a page fault costs a microsecond or
/// more in a virtual machine).
pub(crate) fn prefault(top: usize, bytes: usize) {
    let page = page_size();
    let mut addr = top.saturating_sub(bytes);
    while addr < top {
        // SAFETY: the caller passes the top of a writable mapping of at least `bytes` bytes that
        // nobody uses yet; a zero byte is stored where one already is.
        unsafe { ptr::write_volatile(addr as *mut u8, 0) };
        addr += page;
    }
}

/// Unmaps a mapping created by [`map_guarded`].
pub(crate) fn unmap(base: usize, len: usize) {
    // SAFETY: callers pass a mapping they own and no longer use.
    unsafe { libc::munmap(base as *mut c_void, len) };
}

/// A loaded object's unwind table bytes: used where the loader mapped them, for an object
/// that is never unmapped, or a copy taken at install for any other.
#[derive(Debug)]
pub(crate) enum TableBytes {
    /// The bytes in the object's own mapping, which lasts as long as the process.
    InPlace(&'static [u8]),
    /// A copy on the heap, never freed while a handler may read it.
    Copied(Vec<u8>),
}

impl core::ops::Deref for TableBytes {
    type Target = [u8];

    /// Async-signal-safe.
    fn deref(&self) -> &[u8] {
        match self {
            TableBytes::InPlace(bytes) => bytes,
            TableBytes::Copied(bytes) => bytes,
        }
    }
}

impl Default for TableBytes {
    /// No bytes (framehop's section description asks for a default for the sections it is
    /// not given).
    fn default() -> TableBytes {
        TableBytes::Copied(Vec::new())
    }
}

impl TableBytes {
    /// Whether these bytes are a copy (memory of their own).
    pub(crate) fn is_copy(&self) -> bool {
        matches!(self, TableBytes::Copied(_))
    }
}

/// A loaded object's address range and its unwind tables, found at install for the handler's
/// unwinder. One type for every platform; only Linux fills it.
#[derive(Debug)]
pub(crate) struct UnwindModule {
    /// The object's path as the loader names it (empty for the executable).
    pub(crate) name: String,
    /// `[start, end)` of its `PT_LOAD` segments, in this process.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The load bias (`dlpi_addr`): an address in the file is `address - bias`.
    pub(crate) bias: u64,
    /// `.eh_frame_hdr` (the `PT_GNU_EH_FRAME` segment) and its file address.
    pub(crate) eh_frame_hdr: TableBytes,
    pub(crate) eh_frame_hdr_svma: u64,
    /// `.eh_frame`, from where `.eh_frame_hdr` says it starts to the end of the `PT_LOAD`
    /// segment holding it (its exact size is not in the program headers), and its file address.
    pub(crate) eh_frame: TableBytes,
    pub(crate) eh_frame_svma: u64,
}
