//! The crashing stack's return addresses, innermost first.
//!
//! Async-signal-safe; see `docs/async-signal-safety.md`, "The unwinder".

use crashguard_blackbox::EndWriter;
use crashguard_blackbox::layout;

use crate::sys;

/// Frames the unwinder may report, handler frames included, before the copy into the record.
const SCRATCH_FRAMES: usize = layout::MAX_FRAMES + 32;

/// The unwinder's buffers, owned by the recording thread.
#[derive(Debug)]
pub(crate) struct Scratch {
    frames: [u64; SCRATCH_FRAMES],
    out: [u64; layout::MAX_FRAMES],
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch {
            frames: [0; SCRATCH_FRAMES],
            out: [0; layout::MAX_FRAMES],
        }
    }
}

/// Records the crashing stack: the interrupted program counter first, then the frames the
/// unwinder finds below it. Handler frames are skipped by finding `pc` among the unwound
/// frames; if it is not there, every unwound frame is kept.
///
/// Async-signal-safe.
pub(crate) fn capture<'s>(
    regs: &sys::Registers,
    _writer: &EndWriter<'_>,
    _tid: u32,
    scratch: &'s mut Scratch,
) -> &'s [u64] {
    let pc = regs.pc;
    let mut n = 0usize;
    let frames = &mut scratch.frames;
    // SAFETY: trace_unsynchronized is unsafe only because it does not take backtrace's global
    // lock; this thread is the only one unwinding on the crash path. The closure only stores
    // integers.
    unsafe {
        backtrace::trace_unsynchronized(|frame| match frames.get_mut(n) {
            Some(slot) => {
                *slot = frame.ip() as u64;
                n += 1;
                true
            }
            None => false,
        });
    }
    let unwound = scratch.frames.get(..n).unwrap_or(&[]);
    let pc = pc as u64;
    let below = match unwound.iter().position(|&ip| pc != 0 && ip == pc) {
        Some(i) => unwound.get(i + 1..).unwrap_or(&[]),
        None => unwound,
    };
    let out = &mut scratch.out;
    let mut count = 0usize;
    let mut push = |ip: u64| {
        if let Some(slot) = out.get_mut(count) {
            *slot = ip;
            count += 1;
        }
    };
    if pc != 0 {
        push(pc);
    }
    for &ip in below {
        if ip != 0 {
            push(ip);
        }
    }
    scratch.out.get(..count).unwrap_or(&[])
}

/// Runs the unwinder once outside any handler, so that its first use (caches, the loader's
/// lock) never happens inside one.
pub(crate) fn warm_up() {
    let mut frames = 0usize;
    // SAFETY: called outside any signal handler; the closure only counts.
    unsafe {
        backtrace::trace_unsynchronized(|_| {
            frames += 1;
            frames < 8
        });
    }
}
