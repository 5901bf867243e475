//! `pthread_create` interposition (Linux with glibc): every thread created while the fatal
//! handlers are installed starts with crashguard's guarded alternate stack, whoever creates it.
//!
//! The handler can only run for a stack overflow if the overflowing thread has an alternate
//! stack, and only finish if that stack is big enough for the kernel's signal frame, the
//! handler, a chained handler and a nested signal frame (std's overflow handler aborts, and the
//! SIGABRT arrives on the same stack). std gives its threads an alternate stack of max(`SIGSTKSZ`,
//! `AT_MINSIGSTKSZ`) — 8 KiB on many machines, where two kernel frames of 3.4 KiB each leave
//! almost nothing — and threads created by C code get none at all. So, like Crashpad's and
//! crash-handler's interposers, this module defines `pthread_create` in the executable: the
//! static linker binds std's calls (and those of statically linked C code, and of shared
//! libraries linked against the executable's exported symbol) to it. It looks the real function
//! up with `dlsym(RTLD_NEXT)` and starts the new thread in a trampoline that calls
//! [`crate::altstack::prepare_current`] before the thread's own start routine. std's thread
//! start then finds an alternate stack already enabled and keeps it.
//!
//! While no fatal handlers are installed the interposer passes calls straight through: whether
//! they are is read from the one installed state (`crate::state::armed`), not kept here.
//! Libraries loaded with `dlopen` that call glibc's `pthread_create` directly are not covered;
//! their threads can still call `prepare_current` themselves.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The thread entry point type of `pthread_create`.
type StartRoutine = extern "C" fn(*mut c_void) -> *mut c_void;
/// The type of glibc's `pthread_create`.
type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut c_void,
) -> c_int;

/// glibc's `pthread_create`, once looked up (0: not yet; 1: the lookup failed).
///
/// Not part of the installed state, on purpose: the interposer replaces `pthread_create` for
/// the whole life of the process, also before any install and after the last uninstall (a
/// thread made in `main` before `install`), so it must find the real function without an
/// installation. The value is a fact about the process (where glibc's function is), the same
/// for every install, not a setting of one.
static REAL: AtomicUsize = AtomicUsize::new(0);

/// What the trampoline needs: the caller's start routine and its argument.
struct Start {
    routine: StartRoutine,
    arg: *mut c_void,
}

/// glibc's `pthread_create`, looked up once with `dlsym(RTLD_NEXT)`.
fn real() -> Option<PthreadCreate> {
    let mut addr = REAL.load(Ordering::Acquire);
    if addr == 0 {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; it has no other
        // preconditions. Two threads racing here store the same address.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr()) } as usize;
        let ours = crashguard_pthread_create as PthreadCreate as usize;
        addr = if found == 0 || found == ours {
            1
        } else {
            found
        };
        REAL.store(addr, Ordering::Release);
    }
    if addr == 1 {
        return None;
    }
    // SAFETY: `addr` is the address dlsym returned for glibc's pthread_create, whose
    // signature is `PthreadCreate`.
    Some(unsafe { core::mem::transmute::<usize, PthreadCreate>(addr) })
}

// `pthread_create` itself is a weak symbol that jumps to `crashguard_pthread_create`: weak, so
// that a program which also links another interposer (crash-handler defines a strong
// `pthread_create`) still links, and uses that one. The jump sits in the same module as the
// function, so the object file that defines one defines the other.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.pthread_create,\"ax\",@progbits",
    ".weak pthread_create",
    ".type pthread_create,@function",
    "pthread_create:",
    "jmp {f}",
    ".size pthread_create,.-pthread_create",
    ".popsection",
    f = sym crashguard_pthread_create,
);
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.pthread_create,\"ax\",@progbits",
    ".weak pthread_create",
    ".type pthread_create,%function",
    "pthread_create:",
    "b {f}",
    ".size pthread_create,.-pthread_create",
    ".popsection",
    f = sym crashguard_pthread_create,
);

/// The interposed `pthread_create` (reached through the weak `pthread_create` symbol above):
/// glibc's, with the new thread started in [`trampoline`] while fatal handlers are installed.
///
/// # Safety
///
/// The contract of POSIX `pthread_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn crashguard_pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    let Some(real) = real() else {
        // Without the real function no thread can be created at all; say so the way
        // pthread_create reports a lack of resources.
        return libc::EAGAIN;
    };
    if !crate::state::armed() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real(thread, attr, routine, arg) };
    }
    let start = Box::into_raw(Box::new(Start { routine, arg }));
    // SAFETY: the caller's arguments, with our trampoline and its boxed parameters; the box is
    // taken back by the trampoline or, if no thread was created, below.
    let rc = unsafe { real(thread, attr, trampoline, start.cast()) };
    if rc != 0 {
        // SAFETY: no thread was created, so the box is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    rc
}

/// The new thread's first code: an alternate stack (and the thread's stack bounds, for
/// overflow detection), then the caller's start routine.
extern "C" fn trampoline(start: *mut c_void) -> *mut c_void {
    // SAFETY: `start` is the box `pthread_create` leaked for exactly this thread.
    let start = unsafe { Box::from_raw(start.cast::<Start>()) };
    // A thread that cannot get an alternate stack still runs; its other faults are recorded.
    let _ = crate::altstack::prepare_current();
    (start.routine)(start.arg)
}
