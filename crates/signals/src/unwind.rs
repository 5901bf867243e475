//! The crashing stack's return addresses, innermost first: framehop's DWARF CFI unwinder,
//! started from the interrupted registers, reading only the copied stack (or the live stack
//! within the thread's known bounds) and the unwind tables found at install (in place for
//! objects that are never unmapped, copies for the others: `sys::unwind_modules`).
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
type Unwinder = ArchUnwinder<sys::TableBytes, MustNotAllocateDuringUnwind>;

/// The unwinder and its tables, made at install and never freed (a handler may use them at any
/// moment).
pub(crate) struct Prepared {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    unwinder: Unwinder,
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    cache: UnsafeCell<Cache<MustNotAllocateDuringUnwind>>,
    /// `[start, end)` of every module with unwind tables, sorted.
    ranges: Vec<(u64, u64)>,
    /// Bytes of unwind tables the unwinder reads, and how many of them are copies (see
    /// `sys::unwind_modules`).
    table_bytes: usize,
    copied_bytes: usize,
    /// Frames unwound at install to warm the cache (see [`warm`]).
    warmed: usize,
}

// SAFETY: the unwinder is only read; the cache is used by the one thread that won the crash
// (`handler::CRASH_TID`), never concurrently.
unsafe impl Sync for Prepared {}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("modules", &self.ranges.len())
            .field("table_bytes", &self.table_bytes)
            .field("copied_bytes", &self.copied_bytes)
            .field("warmed", &self.warmed)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Finds the unwind tables of every loaded object (copying those of objects that may be
    /// unloaded), builds the unwinder and its cache, and warms the cache ([`warm`]).
    /// Objects loaded later are unknown to the handler (their frames end the unwind).
    pub(crate) fn new() -> Prepared {
        let modules = sys::unwind_modules();
        let mut ranges: Vec<(u64, u64)> = modules.iter().map(|m| (m.start, m.end)).collect();
        ranges.sort_unstable();
        let table_bytes = modules
            .iter()
            .map(|m| m.eh_frame.len() + m.eh_frame_hdr.len())
            .sum();
        let copied_bytes = modules
            .iter()
            .flat_map(|m| [&m.eh_frame, &m.eh_frame_hdr])
            .filter(|t| t.is_copy())
            .map(|t| t.len())
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
            let mut cache = Cache::new_in();
            let warmed = warm(&unwinder, &mut cache);
            Prepared {
                unwinder,
                cache: UnsafeCell::new(cache),
                ranges,
                table_bytes,
                copied_bytes,
                warmed,
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            drop(modules);
            Prepared {
                ranges,
                table_bytes,
                copied_bytes,
                warmed: 0,
            }
        }
    }

    /// Bytes of unwind tables the unwinder knows.
    pub(crate) fn table_bytes(&self) -> usize {
        self.table_bytes
    }

    /// Bytes of unwind tables copied at install (the rest is read where the loader mapped it).
    pub(crate) fn copied_bytes(&self) -> usize {
        self.copied_bytes
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

/// Warms `cache` before any crash: unwinds the installing thread's own stack, so that the
/// unwind rules of its frames are cached. Returns the frames unwound.
///
/// framehop caches one rule per code address (a memo of what the tables say for that address,
/// whatever stack it was found on, so a warm-up cannot put anything into the cache that the
/// crash would not have worked out itself). Working one out is a binary search of the module's
/// `.eh_frame_hdr` and an evaluation of the function's CFI, about 4,600 instructions; a cached
/// rule is a few dozen. A crash on the installing thread — usually the main thread — shares
/// its outermost frames with the stack found here: `main`, std's `lang_start` and libc's
/// start-up code up to `_start`. Those rules are then cached at crash time, and only the frames
/// below them are worked out in the handler. (Threads started later share std's and libc's
/// thread start instead; warming those would take a thread of its own at install, whose stack
/// glibc keeps cached and the kernel frees at exit: about 40 µs at install and about 10 µs at
/// the process's death, for 3 cached frames of a crash on such a thread. It is not done.)
///
/// Not async-signal-safe: install time, before the handlers exist, so nothing else uses the
/// cache meanwhile.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn warm(unwinder: &Unwinder, cache: &mut Cache<MustNotAllocateDuringUnwind>) -> usize {
    warm_with_own_stack(unwinder, cache)
}

/// Unwinds the calling thread's stack from the current registers into `cache`, reading only
/// its own stack between the current stack pointer and the top of its known bounds. Returns
/// the frames unwound (0 when the registers or the bounds are unknown).
///
/// Not async-signal-safe (install time).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn warm_with_own_stack(
    unwinder: &Unwinder,
    cache: &mut Cache<MustNotAllocateDuringUnwind>,
) -> usize {
    let Some((_, high, _)) = sys::current_stack_bounds() else {
        return 0;
    };
    sys::with_current_registers(|regs| {
        let (sp, high) = (regs.sp as u64, high as u64);
        let mut read = |addr: u64| -> Result<u64, ()> {
            if addr >= sp && addr.checked_add(8).is_some_and(|end| end <= high) {
                // SAFETY: `[addr, addr + 8)` lies on this thread's own stack, between the stack
                // pointer of a frame that is live while this runs and the stack's top: mapped,
                // and holding the frames of that frame's callers.
                Ok(unsafe { core::ptr::read_unaligned(addr as *const u64) })
            } else {
                Err(())
            }
        };
        let mut unwind_regs = arch_regs(regs);
        let mut address = FrameAddress::from_instruction_pointer(regs.pc as u64);
        let mut frames = 0;
        for _ in 0..layout::MAX_FRAMES {
            let Ok(Some(ra)) = unwinder.unwind_frame(address, &mut unwind_regs, cache, &mut read)
            else {
                break;
            };
            frames += 1;
            let Some(next) = FrameAddress::from_return_address(ra) else {
                break;
            };
            address = next;
        }
        frames
    })
    .unwrap_or(0)
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

#[cfg(all(
    test,
    target_os = "linux",
    target_env = "gnu",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;

    /// Unwinds this thread's stack from a few frames deeper than the caller; returns the
    /// frames and the cache hits that unwind had.
    #[inline(never)]
    fn unwind_deeper(
        unwinder: &Unwinder,
        cache: &mut Cache<MustNotAllocateDuringUnwind>,
    ) -> (usize, u64) {
        let before = cache.stats().hit_count;
        let frames = std::hint::black_box(warm_with_own_stack(unwinder, cache));
        (frames, cache.stats().hit_count - before)
    }

    #[test]
    fn warming_caches_the_frames_a_crash_on_the_installing_thread_shares() {
        let mut prepared = Prepared::new();
        // This test, the test harness, std's and libc's thread start.
        assert!(prepared.warmed >= 6, "{} frames warmed", prepared.warmed);
        let cache = prepared.cache.get_mut();
        let (frames, warm_hits) = unwind_deeper(&prepared.unwinder, cache);
        assert!(frames >= 6, "{frames} frames");
        let mut cold = Cache::new_in();
        let (cold_frames, cold_hits) = unwind_deeper(&prepared.unwinder, &mut cold);
        assert_eq!(cold_frames, frames);
        // Every frame from this test outwards was found cached in the warmed cache, none in a
        // cold one.
        assert!(
            warm_hits >= cold_hits + 5,
            "warm cache: {warm_hits} hits, cold cache: {cold_hits}"
        );
    }
}
