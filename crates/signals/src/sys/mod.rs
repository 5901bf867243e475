//! Every platform-specific call of this crate, behind one interface.
//!
//! Linux gets the full feature set. Other unixes compile with reduced features: thread ids are
//! process-local counters instead of kernel tids, re-raising uses `raise` instead of `tgkill`,
//! the interrupted program counter and stack pointer are only read on the architectures listed
//! in `context_pc_sp`, and thread stack bounds are not discovered (the stack-overflow flag then
//! rests on the stack-pointer heuristic alone). Nothing outside this module uses `cfg` on the
//! target OS.
//!
//! Functions documented `Async-signal-safe.` are called from the fatal-signal handler: they only
//! make system calls listed in signal-safety(7) or raw `syscall(2)`s.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(all(unix, not(target_os = "linux")))]
mod other;
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use other::*;

#[cfg(not(unix))]
compile_error!("crashguard-signals supports unix targets only");

mod common;
pub(crate) use common::*;

#[cfg(target_os = "linux")]
mod unwind_tables;
#[cfg(target_os = "linux")]
pub(crate) use unwind_tables::unwind_modules;

mod stack_switch;
pub(crate) use stack_switch::call_on_stack;

/// The interrupted context's registers, as [`context_registers`] decodes them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registers {
    /// `layout::ARCH_*`.
    pub(crate) arch: u32,
    /// Valid entries of `values`, in the arch's order (`layout::X86_64_REGISTERS`, ...).
    pub(crate) count: u32,
    pub(crate) values: [u64; crashguard_blackbox::layout::MAX_REGISTERS],
    /// Program counter, stack pointer and frame pointer, 0 when unknown.
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) fp: usize,
}

impl Registers {
    pub(crate) const EMPTY: Registers = Registers {
        arch: crashguard_blackbox::layout::ARCH_NONE,
        count: 0,
        values: [0; crashguard_blackbox::layout::MAX_REGISTERS],
        pc: 0,
        sp: 0,
        fp: 0,
    };
}

// Without glibc there is no `pthread_create` interposer (see the crate's limitations).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod interpose;
