//! The crashing stack's return addresses, innermost first: framehop's DWARF CFI unwinder,
//! started from the interrupted registers, reading only the copied stack (or the live stack
//! within the thread's known bounds) and unwind tables copied at install.
//!
//! Why framehop and not libgcc's `_Unwind_Backtrace` or a frame-pointer walker: see
//! `docs/unwinding.md`. In short: libgcc reads the code at a bad program counter and takes a
//! lock when frames were registered; a frame-pointer walk finds nothing in Rust code built
//! without frame pointers (the default); framehop evaluates the same `.eh_frame` tables as
//! libgcc, but every byte it reads comes from a closure this module bounds, and with
//! `MustNotAllocateDuringUnwind` it allocates nothing.
//!
//! Async-signal-safe: [`capture`]. Not: [`Prepared::new`] (install time).

use core::cell::UnsafeCell;
use core::fmt;

use crashguard_blackbox::EndWriter;
use crashguard_blackbox::layout;
use framehop::{FrameAddress, MustNotAllocateDuringUnwind, Unwinder as _};

use crate::sys;

#[cfg(target_arch = "x86_64")]
use framehop::x86_64::{
    CacheX86_64 as Cache, UnwindRegsX86_64 as Regs, UnwinderX86_64 as ArchUnwinder,
};

#[cfg(target_arch = "aarch64")]
use framehop::aarch64::{
    CacheAarch64 as Cache, UnwindRegsAarch64 as Regs, UnwinderAarch64 as ArchUnwinder,
};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type Unwinder = ArchUnwinder<Vec<u8>, MustNotAllocateDuringUnwind>;

/// The unwinder and its tables, made at install and never freed (a handler may use them at any
/// moment).
pub(crate) struct Prepared {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    unwinder: Unwinder,
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    cache: UnsafeCell<Cache<MustNotAllocateDuringUnwind>>,
    /// `[start, end)` of every module with unwind tables, sorted.
    ranges: Vec<(u64, u64)>,
    /// Bytes of unwind tables copied.
    table_bytes: usize,
}

// SAFETY: the unwinder is only read; the cache is used by the one thread that won the crash
// (`handler::CRASH_TID`), never concurrently.
unsafe impl Sync for Prepared {}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("modules", &self.ranges.len())
            .field("table_bytes", &self.table_bytes)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Copies the unwind tables of every loaded object and builds the unwinder and its cache.
    /// Objects loaded later are unknown to the handler (their frames end the unwind).
    pub(crate) fn new() -> Prepared {
        let modules = sys::unwind_modules();
        let mut ranges: Vec<(u64, u64)> = modules.iter().map(|m| (m.start, m.end)).collect();
        ranges.sort_unstable();
        let table_bytes = modules
            .iter()
            .map(|m| m.eh_frame.len() + m.eh_frame_hdr.len())
            .sum();
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            let mut unwinder = Unwinder::new();
            for m in modules {
                let info = framehop::ExplicitModuleSectionInfo {
                    base_svma: 0,
                    eh_frame_svma: Some(m.eh_frame_svma..m.eh_frame_svma + m.eh_frame.len() as u64),
                    eh_frame: Some(m.eh_frame),
                    eh_frame_hdr_svma: Some(
                        m.eh_frame_hdr_svma..m.eh_frame_hdr_svma + m.eh_frame_hdr.len() as u64,
                    ),
                    eh_frame_hdr: Some(m.eh_frame_hdr),
                    ..Default::default()
                };
                unwinder.add_module(framehop::Module::new(m.name, m.start..m.end, m.bias, info));
            }
            Prepared {
                unwinder,
                cache: UnsafeCell::new(Cache::new_in()),
                ranges,
                table_bytes,
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            drop(modules);
            Prepared {
                ranges,
                table_bytes,
            }
        }
    }

    /// Bytes of unwind tables copied at install.
    pub(crate) fn table_bytes(&self) -> usize {
        self.table_bytes
    }

    /// Whether `pc` lies in an object whose tables we have.
    ///
    /// Async-signal-safe.
    fn knows(&self, pc: u64) -> bool {
        self.ranges
            .iter()
            .any(|&(start, end)| (start..end).contains(&pc))
    }
}

/// The unwinder's output buffer, owned by the recording thread.
#[derive(Debug)]
pub(crate) struct Scratch {
    out: [u64; layout::MAX_FRAMES],
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch {
            out: [0; layout::MAX_FRAMES],
        }
    }
}

/// The memory the unwinder may read: the copied stack in the black box, and — when the
/// thread's stack bounds are known — the live stack from where the copy starts up to the top
/// (mapped: see `context.rs`). Anything else is refused, which ends the unwind.
struct StackView<'a> {
    copy: &'a [u8],
    start: u64,
    /// `[start, live_end)` may be read directly; `live_end == start` when the bounds are unknown.
    live_end: u64,
}

impl StackView<'_> {
    /// Async-signal-safe.
    fn read(&self, addr: u64) -> Result<u64, ()> {
        let offset = addr.checked_sub(self.start).ok_or(())? as usize;
        if let Some(bytes) = self.copy.get(offset..offset.checked_add(8).ok_or(())?) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            return Ok(u64::from_ne_bytes(word));
        }
        if addr.checked_add(8).is_some_and(|end| end <= self.live_end) {
            // SAFETY: `[addr, addr + 8)` lies in the thread's known stack above the first
            // readable byte of the copy, which is mapped up to the known top.
            return Ok(unsafe { core::ptr::read_unaligned(addr as *const u64) });
        }
        Err(())
    }
}

/// Records the crashing stack into `scratch`: the interrupted program counter first, then the
/// return addresses the unwinder finds. A program counter outside every known object (a call
/// through a bad function pointer) is stepped over as a call that never executed: the return
/// address is where the call left it (x86-64: at the stack pointer; aarch64: the link
/// register). Stack reads come from the copy, and — when `live` (see `context::record`) — from
/// the live stack between the copy's start and the thread's known top.
///
/// Async-signal-safe.
pub(crate) fn capture<'s>(
    prepared: Option<&Prepared>,
    regs: &sys::Registers,
    writer: &mut EndWriter<'_>,
    live: bool,
    scratch: &'s mut Scratch,
) -> &'s [u64] {
    let ctx = *writer.context();
    let copied = (ctx.stack_len as usize).min(writer.stack_area().len());
    let copy = writer.stack_area().get(..copied).unwrap_or(&[]);
    let view = StackView {
        copy,
        start: ctx.stack_start,
        live_end: if live && ctx.stack_high > ctx.stack_start {
            ctx.stack_high
        } else {
            ctx.stack_start
        },
    };
    let out = &mut scratch.out;
    let mut count = 0usize;
    let mut push = |ip: u64| match out.get_mut(count) {
        Some(slot) => {
            *slot = ip;
            count += 1;
            true
        }
        None => false,
    };
    let pc = regs.pc as u64;
    if pc == 0 || !push(pc) {
        return &[];
    }
    if let Some(prepared) = prepared {
        walk(prepared, regs, &view, &mut push);
    }
    scratch.out.get(..count).unwrap_or(&[])
}

/// Async-signal-safe.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn walk(
    prepared: &Prepared,
    regs: &sys::Registers,
    view: &StackView<'_>,
    push: &mut impl FnMut(u64) -> bool,
) {
    let pc = regs.pc as u64;
    let mut unwind_regs = arch_regs(regs);
    let mut read = |addr: u64| view.read(addr);
    let mut address = FrameAddress::from_instruction_pointer(pc);
    if !prepared.knows(pc) {
        let Some(ra) = step_over_bad_call(regs, &mut unwind_regs, &mut read) else {
            return;
        };
        let Some(next) = FrameAddress::from_return_address(ra) else {
            return;
        };
        if !push(ra) {
            return;
        }
        address = next;
    }
    // SAFETY: only the thread that won the crash unwinds, so this is the cache's one user.
    let cache = unsafe { &mut *prepared.cache.get() };
    for _ in 0..layout::MAX_FRAMES {
        match prepared
            .unwinder
            .unwind_frame(address, &mut unwind_regs, cache, &mut read)
        {
            Ok(Some(ra)) => {
                let Some(next) = FrameAddress::from_return_address(ra) else {
                    return;
                };
                if !push(ra) {
                    return;
                }
                address = next;
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Async-signal-safe.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn walk(
    _prepared: &Prepared,
    _regs: &sys::Registers,
    _view: &StackView<'_>,
    _push: &mut impl FnMut(u64) -> bool,
) {
}

/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn arch_regs(regs: &sys::Registers) -> Regs {
    Regs::new(regs.pc as u64, regs.sp as u64, regs.fp as u64)
}

/// Async-signal-safe.
#[cfg(target_arch = "aarch64")]
fn arch_regs(regs: &sys::Registers) -> Regs {
    Regs::new(
        regs.values.get(30).copied().unwrap_or(0),
        regs.sp as u64,
        regs.fp as u64,
    )
}

/// The return address of a call whose target was not code: x86-64's `call` pushed it.
///
/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn step_over_bad_call(
    regs: &sys::Registers,
    unwind_regs: &mut Regs,
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Option<u64> {
    let sp = regs.sp as u64;
    let ra = read(sp).ok()?;
    unwind_regs.set_sp(sp + 8);
    Some(ra)
}

/// The return address of a call whose target was not code: aarch64's `blr` left it in the
/// link register.
///
/// Async-signal-safe.
#[cfg(target_arch = "aarch64")]
fn step_over_bad_call(
    regs: &sys::Registers,
    _unwind_regs: &mut Regs,
    _read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Option<u64> {
    regs.values.get(30).copied().filter(|&lr| lr != 0)
}
