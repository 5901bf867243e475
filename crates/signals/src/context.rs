//! The crashing thread's machine context in the black box: its general-purpose registers and a
//! bounded copy of its stack, what a minidump writer or an offline unwinder needs.
//!
//! The stack copy starts at the interrupted stack pointer and goes up (towards the callers) for
//! at most the black box's stack capacity (32 KiB by default). It never reads outside the
//! thread's known stack bounds, and it reads memory directly only where the bounds make that
//! safe; everywhere else it goes through [`sys::read_checked`], which cannot fault.

use crashguard_blackbox::EndWriter;

use crate::{stacks, sys};

/// Records `regs` and the stack above its stack pointer into the context section and seals it.
/// Returns whether the live stack from the context's `stack_start` up to its `stack_high` is
/// mapped and may be read directly (by the unwinder): true when bytes were copied from it with
/// known bounds, or when the direct copy's conditions hold even if the black box keeps no stack
/// copy at all (`stack_capacity` 0), so that the backtrace does not depend on the copy's size.
///
/// The direct copy is used when the stack pointer lies inside the thread's registered stack
/// `[low, high)` and the fault is no stack overflow: a thread's stack is mapped from the
/// running stack pointer up to `high` (a pthread stack is one mapping; the main thread's stack
/// mapping grows down to where it has been used). In every other case — unknown bounds, a stack
/// pointer outside them (a corrupted or switched stack), an overflow whose stack pointer may
/// lie in the guard gap — the bytes are read through the checked path, and still clamped to
/// `high` when it is known.
///
/// Async-signal-safe.
pub(crate) fn record(
    writer: &mut EndWriter<'_>,
    regs: &sys::Registers,
    tid: u32,
    stack_overflow: bool,
) -> bool {
    let bounds = stacks::lookup(tid);
    {
        let ctx = writer.context();
        ctx.arch = regs.arch;
        ctx.register_count = regs.count;
        ctx.registers = regs.values;
        ctx.tid = tid;
        ctx.stack_start = regs.sp as u64;
        ctx.stack_len = 0;
        let (low, high) = bounds.map_or((0, 0), |(low, high, _)| (low, high));
        ctx.stack_low = low as u64;
        ctx.stack_high = high as u64;
    }
    let sp = regs.sp;
    let high = bounds.map_or(usize::MAX, |(_, high, _)| high);
    let direct = bounds.is_some_and(|(low, high, _)| !stack_overflow && sp >= low && sp < high);
    let area = writer.stack_area();
    let (start, copied) = if sp == 0 || sp >= high || area.is_empty() {
        (sp, 0)
    } else if direct {
        let len = area.len().min(high - sp);
        let dst = area.get_mut(..len).unwrap_or(&mut []);
        // SAFETY: `[sp, sp + len)` lies inside the thread's registered stack, above its running
        // stack pointer, which is mapped (see the function's documentation); `dst` is the black
        // box's stack area, which does not overlap any thread stack.
        unsafe { core::ptr::copy_nonoverlapping(sp as *const u8, dst.as_mut_ptr(), dst.len()) };
        (sp, dst.len())
    } else {
        checked_copy(sp, high, area)
    };
    let ctx = writer.context();
    ctx.stack_start = start as u64;
    ctx.stack_len = copied as u32;
    writer.seal_context();
    let known_top = bounds.is_some();
    known_top && (copied > 0 || (direct && sp != 0))
}

/// Pages skipped, at most, looking for the first readable byte above a stack pointer that lies
/// in a guard region (a stack overflow): a thread's guard is one page by default, and the main
/// thread's gap below its stack is where the kernel refused to grow it.
const GUARD_PAGES_SKIPPED: usize = 64;

/// Copies from `sp` (or, when the stack pointer's page cannot be read, from the first readable
/// page above it, at most [`GUARD_PAGES_SKIPPED`] pages up) towards `high`, through the checked
/// path. Returns where the copy starts and how many bytes it holds.
///
/// Async-signal-safe.
fn checked_copy(sp: usize, high: usize, area: &mut [u8]) -> (usize, usize) {
    const PAGE: usize = 4096;
    let mut start = sp;
    for _ in 0..=GUARD_PAGES_SKIPPED {
        if start >= high {
            break;
        }
        let len = area.len().min(high - start);
        let n = sys::read_checked(start, area.get_mut(..len).unwrap_or(&mut []));
        if n > 0 {
            return (start, n);
        }
        start = (start / PAGE + 1) * PAGE;
    }
    (sp, 0)
}
