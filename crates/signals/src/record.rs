//! What the fatal handler writes: the crash as read from `siginfo` and the `ucontext`, the
//! one-line summary, and the `end` and `context` sections of the black box.
//!
//! Everything here is async-signal-safe: plain memory, the bounded formatting of
//! [`LineBuf`], and the calls listed in `docs/async-signal-safety.md`.

use core::ffi::c_int;

use crashguard_blackbox::assafe::{self, LineBuf};
use crashguard_blackbox::layout::{self, End};
use crashguard_blackbox::{BlackBox, EndWriter, ExitCode, Outcome};

use crate::state::Installed;
use crate::{context, stacks, sys, unwind};

/// What the handler learned about the crash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crash {
    pub(crate) signo: c_int,
    pub(crate) code: i32,
    /// Sent by a process (`kill`, `tgkill`, `sigqueue`): `si_code <= 0`.
    pub(crate) sent: bool,
    pub(crate) fault_address: u64,
    pub(crate) sender_pid: u32,
    pub(crate) sender_uid: u32,
    pub(crate) tid: u32,
    pub(crate) name: [u8; 16],
    pub(crate) name_len: usize,
    pub(crate) stack_overflow: bool,
    /// The outcome and exit status the record gives.
    pub(crate) outcome: Outcome,
    pub(crate) exit_code: u32,
    pub(crate) memory_budget: bool,
}

impl Crash {
    pub(crate) const EMPTY: Crash = Crash {
        signo: 0,
        code: 0,
        sent: false,
        fault_address: 0,
        sender_pid: 0,
        sender_uid: u32::MAX,
        tid: 0,
        name: [0; 16],
        name_len: 0,
        stack_overflow: false,
        outcome: Outcome::FatalSignal,
        exit_code: 0,
        memory_budget: false,
    };

    /// Reads the crash from the kernel's `siginfo` and the decoded registers.
    ///
    /// Async-signal-safe.
    ///
    /// # Safety
    ///
    /// `info` is null or the kernel's `siginfo` pointer for this signal.
    pub(crate) unsafe fn capture(
        signo: c_int,
        info: *mut libc::siginfo_t,
        regs: &sys::Registers,
        tid: u32,
        bb: Option<&BlackBox>,
    ) -> Crash {
        // SAFETY: the kernel's siginfo, read through libc's accessors.
        let (code, addr, pid, uid) = match unsafe { info.as_ref() } {
            // SAFETY: `i` is the kernel's siginfo for this signal.
            Some(i) => unsafe { sys::siginfo_fields(i) },
            None => (0, 0, 0, u32::MAX),
        };
        let sent = crashguard_blackbox::code_is_sent(code);
        let mut crash = Crash {
            signo,
            code,
            sent,
            fault_address: if sent { 0 } else { addr as u64 },
            sender_pid: if sent { pid } else { 0 },
            sender_uid: if sent { uid } else { u32::MAX },
            tid,
            stack_overflow: !sent && stacks::is_stack_overflow(signo, addr, regs.sp, tid),
            exit_code: 128 + signo as u32,
            ..Crash::EMPTY
        };
        crash.name_len = assafe::current_thread_name(&mut crash.name);
        if bb.is_some() && is_memory_budget_abort(&crash) {
            crash.memory_budget = true;
            crash.outcome = Outcome::MemoryBudget;
            crash.exit_code = u32::from(ExitCode::MemoryBudget.code());
        }
        crash
    }

    /// Async-signal-safe.
    pub(crate) fn thread_name(&self) -> &[u8] {
        self.name.get(..self.name_len).unwrap_or(&[])
    }
}

/// Whether this SIGABRT is the abort that follows the memory budget's refusal of an
/// allocation on this very thread (see `crashguard_blackbox::refusal`): `handle_alloc_error`
/// calls `abort()`, which sends SIGABRT to the calling thread, before that thread calls the
/// allocator again. A `try_reserve` that went on, an abort on another thread, a SIGABRT sent
/// from outside all stay SIGABRT.
///
/// Async-signal-safe.
fn is_memory_budget_abort(crash: &Crash) -> bool {
    crash.signo == libc::SIGABRT
        && crash.sent
        && crash.sender_pid == sys::getpid()
        && crashguard_blackbox::refusal::refused_on_this_thread()
}

/// Buffers the recording thread uses (the first crashing thread only).
#[derive(Debug)]
pub(crate) struct Buffers {
    pub(crate) regs: sys::Registers,
    pub(crate) line: LineBuf<{ layout::DETAIL_LEN }>,
    pub(crate) unwind: unwind::Scratch,
}

impl Buffers {
    pub(crate) const fn new() -> Buffers {
        Buffers {
            regs: sys::Registers::EMPTY,
            line: LineBuf::new(),
            unwind: unwind::Scratch::new(),
        }
    }
}

/// Fills the parts of the `end` section that need no memory but the crash itself.
///
/// Async-signal-safe.
fn fill_basics(end: &mut End, crash: &Crash, pc: usize) {
    end.signal = crash.signo as u32;
    end.si_code = crash.code;
    end.fault_address = crash.fault_address;
    end.sender_pid = crash.sender_pid;
    end.sender_uid = crash.sender_uid;
    end.tid = crash.tid;
    end.stack_overflow = u32::from(crash.stack_overflow);
    end.thread_name = [0; layout::THREAD_NAME_LEN];
    assafe::copy_bytes(&mut end.thread_name, crash.thread_name());
    // Frame 0 first: the interrupted program counter is in the record before anything that
    // reads other memory (the stack copy, the unwinder) could go wrong.
    if let Some(first) = end.frames.first_mut() {
        *first = pc as u64;
        end.frame_count = u32::from(pc != 0);
    }
}

/// Fills and commits the `end` and `context` sections, unless someone else (a shutdown, a
/// panic exit) already claimed the end.
///
/// Async-signal-safe.
pub(crate) fn record(bb: &BlackBox, state: &Installed, crash: &Crash, buf: &mut Buffers) {
    // A crash always wins over a clean end recorded before it (an atexit handler or a
    // destructor that faults after `Guard::exit`).
    let Some(mut writer) = bb.claim_end_for_crash() else {
        return;
    };
    fill_basics(writer.end(), crash, buf.regs.pc);
    writer.end().detail_len = assafe::copy_bytes(&mut writer.end().detail, detail_of(&buf.line));
    let live = context::record(&mut writer, &buf.regs, crash.tid, crash.stack_overflow);
    let frames = unwind::capture(
        state.unwinder,
        &buf.regs,
        &mut writer,
        live,
        &mut buf.unwind,
    );
    let end = writer.end();
    for (slot, &ip) in end.frames.iter_mut().zip(frames) {
        *slot = ip;
    }
    end.frame_count = frames.len().min(layout::MAX_FRAMES) as u32;
    if let Some(enricher) = state.enricher {
        enricher.enrich(writer.end());
    }
    writer.commit(crash.outcome, crash.exit_code);
}

/// Commits the original crash after a fault inside the handler interrupted its recording: what
/// was gathered (at least the signal and frame 0) stays, the detail says what happened. Returns
/// false when there is no black box or someone else holds the record.
///
/// Async-signal-safe.
pub(crate) fn commit_interrupted(crash: &Crash, pc: usize, handler_signo: c_int) -> bool {
    let Some(bb) = crashguard_blackbox::active() else {
        return false;
    };
    // The fault may have come before the handler claimed the record.
    let fresh = bb.claimant() == 0;
    let Some(mut writer) = bb.reclaim_end().or_else(|| bb.claim_end()) else {
        return false;
    };
    if fresh || writer.end().tid != crash.tid {
        fill_basics(writer.end(), crash, pc);
    }
    let mut line = LineBuf::<{ layout::DETAIL_LEN }>::new();
    summarize(crash, &mut line);
    let detail = detail_of(&line);
    line_note(&mut writer, detail, handler_signo);
    writer.commit(crash.outcome, crash.exit_code);
    true
}

/// Async-signal-safe.
fn line_note(writer: &mut EndWriter<'_>, summary: &[u8], handler_signo: c_int) {
    let mut note = LineBuf::<{ layout::DETAIL_LEN }>::new();
    note.push(summary);
    note.push(b" (recording cut short by ");
    push_signal_name(&mut note, handler_signo);
    note.push(b" inside the crash handler)");
    let end = writer.end();
    end.detail_len = assafe::copy_bytes(&mut end.detail, note.as_bytes());
}

/// Async-signal-safe.
fn push_signal_name<const N: usize>(line: &mut LineBuf<N>, signo: c_int) {
    match crashguard_blackbox::signal_name(signo as u32) {
        Some(name) => line.push(name.as_bytes()),
        None => line.push(b"signal ").dec(signo as u64),
    };
}

/// The summary without its `crashguard: ` prefix and trailing newline.
///
/// Async-signal-safe.
fn detail_of<const N: usize>(line: &LineBuf<N>) -> &[u8] {
    let bytes = line.as_bytes();
    let bytes = bytes.strip_prefix(b"crashguard: ").unwrap_or(bytes);
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// Builds the one-line summary into `line`.
///
/// Async-signal-safe.
pub(crate) fn summarize<const N: usize>(crash: &Crash, line: &mut LineBuf<N>) {
    line.clear();
    line.push(b"crashguard: ");
    if crash.memory_budget {
        line.push(b"memory budget exhausted (");
    } else {
        line.push(b"fatal signal ");
    }
    push_signal_name(line, crash.signo);
    if let Some(code) = crashguard_blackbox::code_name(crash.signo as u32, crash.code) {
        line.push(b" (").push(code.as_bytes()).push(b")");
    }
    if crash.memory_budget {
        line.push(b" after a failed allocation)");
    }
    if crash.sent {
        line.push(b" sent by pid ").dec(u64::from(crash.sender_pid));
        line.push(b" uid ").dec(u64::from(crash.sender_uid));
    } else if crash.fault_address != 0 || crash.signo != libc::SIGABRT {
        line.push(b" at ").hex(crash.fault_address);
    }
    if crash.stack_overflow {
        line.push(b": stack overflow");
    }
    line.push(b" in thread '")
        .push(crash.thread_name())
        .push(b"' (tid ");
    line.dec(u64::from(crash.tid)).push(b")\n");
}

/// Writes a line to stderr and the termination log, as configured.
///
/// Async-signal-safe.
pub(crate) fn emit(state: &Installed, line: &[u8]) {
    if state.summary_to_stderr {
        assafe::write_fd(2, line);
    }
    if state.termination_log_fd >= 0 {
        // The whole file is this line: an earlier, longer message must not keep its tail.
        assafe::replace_fd_contents(state.termination_log_fd, line);
    }
}
