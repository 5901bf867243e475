//! Running a function on another stack: the fatal handler records on a stack of its own, so
//! that the unwinder's and the enricher's stack use never depends on how small an alternate
//! stack the crashing thread was given.

use core::ffi::c_void;

/// Calls `f(arg)` with the stack pointer set to `top` (16-byte aligned, the high end of a
/// mapping of enough bytes), then restores the stack pointer.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `top` must be the 16-byte aligned end of a writable region no one else uses while `f` runs,
/// large enough for `f`; `f` must not unwind.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn call_on_stack(
    top: usize,
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) {
    // SAFETY: r12 is callee-saved, so `f` preserves the old stack pointer kept in it; the call
    // leaves the new stack 16-byte aligned minus the return address, as the ABI wants; every
    // register `f` may clobber is declared by clobber_abi.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {f}",
            "mov rsp, r12",
            top = in(reg) top,
            f = in(reg) f,
            in("rdi") arg,
            out("r12") _,
            clobber_abi("C"),
        );
    }
}

/// See the x86-64 version.
///
/// Async-signal-safe.
///
/// # Safety
///
/// As for the x86-64 version.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn call_on_stack(
    top: usize,
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) {
    // SAFETY: x20 is callee-saved, so `f` preserves the old stack pointer kept in it; `top` is
    // 16-byte aligned as the ABI wants; every register `f` may clobber is declared by
    // clobber_abi.
    unsafe {
        core::arch::asm!(
            "mov x20, sp",
            "mov sp, {top}",
            "blr {f}",
            "mov sp, x20",
            top = in(reg) top,
            f = in(reg) f,
            in("x0") arg,
            out("x20") _,
            clobber_abi("C"),
        );
    }
}

/// Other architectures call `f` on the current stack.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `f` must accept `arg`.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn call_on_stack(
    _top: usize,
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) {
    // SAFETY: as the caller promises.
    unsafe { f(arg) }
}
