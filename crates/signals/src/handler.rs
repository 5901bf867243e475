//! The fatal-signal handler itself. Everything in this module is async-signal-safe: it
//! allocates nothing, takes no lock, cannot panic (no indexing, no unwrap, no formatting
//! machinery), touches no lazily initialised thread-local, and calls only the libc functions
//! listed in `docs/async-signal-safety.md`.
//!
//! Its stack use is kept small on purpose: an unprepared std thread runs it on std's ~12 KiB
//! alternate stack, so buffers live in [`SCRATCH`], a static claimed by the first crash.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crashguard_blackbox::assafe::{self, LineBuf};
use crashguard_blackbox::layout::{self, End};
use crashguard_blackbox::{BlackBox, ExitCode, Outcome};

use crate::{context, stacks, sys, watchdog};

/// Kernel tid of the thread handling the first crash, or 0.
static CRASH_TID: AtomicU32 = AtomicU32::new(0);
/// What the first crashing thread is doing; see the `PHASE_*` constants.
static PHASE: AtomicU32 = AtomicU32::new(PHASE_IDLE);
const PHASE_IDLE: u32 = 0;
/// Capturing and writing the record: a fault now is a fault inside the handler.
const PHASE_RECORDING: u32 = 1;
/// Chaining or re-raising: a signal now comes from the previous handler (std's stack-overflow
/// handler calls `abort()`) or from our own re-raise, and must take its default action.
const PHASE_TERMINATING: u32 = 2;
/// Recording the handler's own failure after a fault inside it: a fault now exits at once.
const PHASE_FAILING: u32 = 3;

/// Previous handlers, by position in [`crate::Signal::FATAL`]: address and `sa_flags`.
pub(crate) static PREV_HANDLER: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
pub(crate) static PREV_FLAGS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
/// `FatalPolicy::Exit` when set; re-raise otherwise.
pub(crate) static POLICY_EXIT: AtomicBool = AtomicBool::new(false);
/// How long a second crashing thread waits for the first to finish.
pub(crate) static SECOND_WAIT_NS: AtomicU64 = AtomicU64::new(2_000_000_000);
/// Whether the one-line summary goes to stderr.
pub(crate) static SUMMARY_STDERR: AtomicBool = AtomicBool::new(true);
/// A pre-opened file (the Kubernetes termination log) that also receives the summary, or -1.
pub(crate) static TERMINATION_LOG_FD: AtomicI32 = AtomicI32::new(-1);
/// `fn(&mut End)` called before commit (the facade's thread census), or 0.
pub(crate) static ENRICHER: AtomicUsize = AtomicUsize::new(0);

/// An allocation failure on the crashing thread this recent turns a SIGABRT into the
/// memory-budget outcome (Rust's default out-of-memory handler aborts right after the failure).
const ALLOC_FAILURE_WINDOW_NS: u64 = 5_000_000_000;

/// Frames the unwinder may report, handler frames included, before the copy into the record.
const SCRATCH_FRAMES: usize = layout::MAX_FRAMES + 32;

/// Buffers used by the first crashing thread only (the CAS on [`CRASH_TID`] is the lock).
struct Scratch {
    frames: [u64; SCRATCH_FRAMES],
    line: LineBuf<{ layout::DETAIL_LEN }>,
    regs: sys::Registers,
}

struct ScratchCell(UnsafeCell<Scratch>);

// SAFETY: only the thread that won the CRASH_TID compare-exchange ever touches the contents,
// and it never gives the winner role back.
unsafe impl Sync for ScratchCell {}

static SCRATCH: ScratchCell = ScratchCell(UnsafeCell::new(Scratch {
    frames: [0; SCRATCH_FRAMES],
    line: LineBuf::new(),
    regs: sys::Registers::EMPTY,
}));

/// What the handler learned about the crash.
struct Crash {
    signo: c_int,
    code: i32,
    sent: bool,
    fault_address: u64,
    sender_pid: u32,
    sender_uid: u32,
    tid: u32,
    pc: usize,
    name: [u8; 16],
    name_len: usize,
    stack_overflow: bool,
}

/// The `sigaction` entry point for every fatal signal.
///
/// Async-signal-safe.
///
/// # Safety
///
/// Only the kernel calls this, as an `SA_SIGINFO` handler: `info` and `uc` are its pointers.
pub(crate) unsafe extern "C" fn on_fatal_signal(
    signo: c_int,
    info: *mut libc::siginfo_t,
    uc: *mut c_void,
) {
    let saved_errno = sys::errno();
    // SAFETY: forwarded from the kernel.
    unsafe { handle(signo, info, uc) };
    sys::set_errno(saved_errno);
}

/// Async-signal-safe.
///
/// # Safety
///
/// As for [`on_fatal_signal`].
unsafe fn handle(signo: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo (checked for null anyway).
    let code = unsafe { info.as_ref() }.map_or(0, |i| i.si_code);
    let tid = assafe::gettid();
    match CRASH_TID.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(owner) if owner == tid => return reentered(signo, tid),
        Err(_) => {
            wait_for_first_crash();
            return die_by_default(signo, tid);
        }
    }
    // The phase first: a fault from here on is a fault inside the handler.
    PHASE.store(PHASE_RECORDING, Ordering::Release);
    watchdog::arm();

    // SAFETY: this thread won CRASH_TID and is the only user of SCRATCH from now on.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    // SAFETY: forwarded from the kernel.
    unsafe { sys::context_registers(uc, &mut scratch.regs) };
    // SAFETY: forwarded from the kernel.
    let crash = unsafe { Crash::capture(signo, code, info, &scratch.regs, tid) };
    let bb = crashguard_blackbox::active();
    let memory_budget = bb.is_some_and(|bb| is_memory_budget_abort(bb, &crash));
    let (outcome, exit_code) = if memory_budget {
        (
            Outcome::MemoryBudget,
            u32::from(ExitCode::MemoryBudget.code()),
        )
    } else {
        (Outcome::FatalSignal, 128 + signo as u32)
    };

    summarize(&crash, memory_budget, &mut scratch.line);
    if let Some(bb) = bb {
        record(bb, &crash, outcome, exit_code, scratch);
    }
    emit_summary(scratch.line.as_bytes());

    PHASE.store(PHASE_TERMINATING, Ordering::Release);
    if memory_budget || POLICY_EXIT.load(Ordering::Relaxed) {
        sys::exit_now(exit_code as i32);
    }
    // SAFETY: forwarded from the kernel.
    unsafe { chain(signo, info, uc) };
    die_by_default(signo, tid);
}

impl Crash {
    /// Async-signal-safe.
    ///
    /// # Safety
    ///
    /// `info` is the kernel's pointer (may be null).
    unsafe fn capture(
        signo: c_int,
        code: i32,
        info: *mut libc::siginfo_t,
        regs: &sys::Registers,
        tid: u32,
    ) -> Crash {
        let sent = crashguard_blackbox::code_is_sent(code);
        // SAFETY: the kernel's siginfo, read through libc's accessors.
        let (addr, pid, uid) = match unsafe { info.as_ref() } {
            // SAFETY: `i` is the kernel's siginfo for this signal.
            Some(i) => unsafe { sys::siginfo_fields(i) },
            None => (0, 0, u32::MAX),
        };
        let (pc, sp) = (regs.pc, regs.sp);
        let fault_address = if sent { 0 } else { addr as u64 };
        let mut name = [0u8; 16];
        let name_len = assafe::current_thread_name(&mut name);
        Crash {
            signo,
            code,
            sent,
            fault_address,
            sender_pid: if sent { pid } else { 0 },
            sender_uid: if sent { uid } else { u32::MAX },
            tid,
            pc,
            name,
            name_len,
            stack_overflow: !sent && stacks::is_stack_overflow(signo, addr, sp, tid),
        }
    }

    /// Async-signal-safe.
    fn thread_name(&self) -> &[u8] {
        self.name.get(..self.name_len).unwrap_or(&[])
    }
}

/// Whether this SIGABRT follows a recent allocation failure. Any thread's counts: when several
/// threads are refused near the limit, the record holds the latest refusal, which need not be
/// the aborting thread's. The read is retried while another refusal is being written.
///
/// Async-signal-safe.
fn is_memory_budget_abort(bb: &BlackBox, crash: &Crash) -> bool {
    if crash.signo != libc::SIGABRT {
        return false;
    }
    let failure = (0..8).find_map(|_| bb.alloc_failure());
    let Some(failure) = failure else {
        return false;
    };
    let now = assafe::now_realtime_ns();
    now.saturating_sub(failure.at_ns) <= ALLOC_FAILURE_WINDOW_NS
}

/// Fills and commits the `end` section, unless someone else (a shutdown, a panic exit) already
/// claimed it.
///
/// Async-signal-safe.
fn record(bb: &BlackBox, crash: &Crash, outcome: Outcome, exit_code: u32, scratch: &mut Scratch) {
    let Some(mut writer) = bb.claim_end() else {
        return;
    };
    let end = writer.end();
    end.signal = crash.signo as u32;
    end.si_code = crash.code;
    end.fault_address = crash.fault_address;
    end.sender_pid = crash.sender_pid;
    end.sender_uid = crash.sender_uid;
    end.tid = crash.tid;
    end.stack_overflow = u32::from(crash.stack_overflow);
    end.thread_name = [0; layout::THREAD_NAME_LEN];
    crashguard_blackbox::assafe::copy_bytes(&mut end.thread_name, crash.thread_name());
    // Frame 0 first: the interrupted program counter is in the record before anything that
    // reads memory (the stack copy, the unwinder) could go wrong.
    if let Some(first) = end.frames.first_mut() {
        *first = crash.pc as u64;
        end.frame_count = u32::from(crash.pc != 0);
    }
    context::record(&mut writer, &scratch.regs, crash.tid, crash.stack_overflow);
    let end = writer.end();
    end.frame_count = capture_frames(crash.pc, &mut scratch.frames, &mut end.frames);
    end.detail_len =
        crashguard_blackbox::assafe::copy_bytes(&mut end.detail, detail_of(&scratch.line));
    run_enricher(end);
    writer.commit(outcome, exit_code);
}

/// The summary without its `crashguard: ` prefix and trailing newline.
///
/// Async-signal-safe.
fn detail_of<const N: usize>(line: &LineBuf<N>) -> &[u8] {
    let bytes = line.as_bytes();
    let bytes = bytes.strip_prefix(b"crashguard: ").unwrap_or(bytes);
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// Async-signal-safe.
fn run_enricher(end: &mut End) {
    let f = ENRICHER.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: ENRICHER only ever holds 0 or a `fn(&mut End)` stored by
        // `set_end_enricher`, whose contract requires it to be async-signal-safe.
        let f: fn(&mut End) = unsafe { core::mem::transmute::<usize, fn(&mut End)>(f) };
        f(end);
    }
}

/// Records the crashing stack: the interrupted program counter first (the unwinder may lose
/// it when stepping through the signal frame), then the frames the unwinder finds below it.
/// Handler frames are skipped by finding `pc` among the unwound frames; if it is not there,
/// every unwound frame is kept.
///
/// Async-signal-safe.
fn capture_frames(
    pc: usize,
    scratch: &mut [u64; SCRATCH_FRAMES],
    out: &mut [u64; layout::MAX_FRAMES],
) -> u32 {
    let mut n = 0usize;
    // SAFETY: trace_unsynchronized is unsafe only because it does not take backtrace's global
    // lock; this thread is the only one unwinding on the crash path (CRASH_TID). The unwinder
    // was warmed up at install, and with glibc >= 2.35 its table lookup takes no lock; on older
    // glibc it takes the loader lock on every lookup, and a crash inside `dlopen` (or during a
    // panic's unwind) could deadlock here, which the watchdog bounds (exit 84). The closure
    // only stores integers.
    unsafe {
        backtrace::trace_unsynchronized(|frame| match scratch.get_mut(n) {
            Some(slot) => {
                *slot = frame.ip() as u64;
                n += 1;
                true
            }
            None => false,
        });
    }
    let unwound = scratch.get(..n).unwrap_or(&[]);
    let pc = pc as u64;
    let below = match unwound.iter().position(|&ip| pc != 0 && ip == pc) {
        Some(i) => unwound.get(i + 1..).unwrap_or(&[]),
        None => unwound,
    };
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
    count as u32
}

/// Builds the one-line summary into `line`.
///
/// Async-signal-safe.
fn summarize<const N: usize>(crash: &Crash, memory_budget: bool, line: &mut LineBuf<N>) {
    line.clear();
    line.push(b"crashguard: ");
    if memory_budget {
        line.push(b"memory budget exhausted (");
    } else {
        line.push(b"fatal signal ");
    }
    match crashguard_blackbox::signal_name(crash.signo as u32) {
        Some(name) => line.push(name.as_bytes()),
        None => line.push(b"signal ").dec(crash.signo as u64),
    };
    if let Some(code) = crashguard_blackbox::code_name(crash.signo as u32, crash.code) {
        line.push(b" (").push(code.as_bytes()).push(b")");
    }
    if memory_budget {
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

/// Writes the summary to stderr and the termination log, as configured.
///
/// Async-signal-safe.
fn emit_summary(line: &[u8]) {
    if SUMMARY_STDERR.load(Ordering::Relaxed) {
        assafe::write_fd(2, line);
    }
    let fd = TERMINATION_LOG_FD.load(Ordering::Acquire);
    if fd >= 0 {
        assafe::write_fd(fd, line);
    }
}

/// Calls the handler that was installed before ours, with the arity its flags ask for. Does
/// nothing for `SIG_DFL` and `SIG_IGN`.
///
/// Async-signal-safe (as far as the previous handler is).
///
/// # Safety
///
/// `info` and `uc` are the kernel's pointers for this signal.
unsafe fn chain(signo: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    let Some(i) = crate::Signal::FATAL
        .iter()
        .position(|s| s.number() == signo)
    else {
        return;
    };
    let (Some(handler), Some(flags)) = (PREV_HANDLER.get(i), PREV_FLAGS.get(i)) else {
        return;
    };
    let handler = handler.load(Ordering::Acquire);
    let flags = flags.load(Ordering::Acquire);
    if handler == sys::SIG_DFL_ADDR || handler == sys::SIG_IGN_ADDR || handler == 0 {
        return;
    }
    if sys::takes_siginfo(flags) {
        type Action = unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);
        // SAFETY: the previous sigaction had SA_SIGINFO, so its handler has this signature.
        let f = unsafe { core::mem::transmute::<usize, Action>(handler) };
        // SAFETY: we pass the kernel's own arguments on, as the kernel would have.
        unsafe { f(signo, info, uc) };
    } else {
        type Handler = unsafe extern "C" fn(c_int);
        // SAFETY: without SA_SIGINFO the handler takes the signal number only.
        let f = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        // SAFETY: as above.
        unsafe { f(signo) };
    }
}

/// A fatal signal arrived on the thread that is already handling one.
///
/// Async-signal-safe.
fn reentered(signo: c_int, tid: u32) {
    match PHASE.load(Ordering::Acquire) {
        PHASE_TERMINATING => {
            // The record is committed; this comes from the handler we chained to (std's
            // stack-overflow handler aborts) or from our own re-raise. The process dies of this
            // signal, so that is the status the record must give.
            if let Some(bb) = crashguard_blackbox::active() {
                bb.amend_exit_code(128 + signo as u32);
            }
            return die_by_default(signo, tid);
        }
        PHASE_RECORDING => {
            PHASE.store(PHASE_FAILING, Ordering::Release);
            record_handler_failure(signo);
        }
        // A fault while recording the failure itself: nothing more can be written safely.
        _ => {}
    }
    assafe::write_fd(
        2,
        b"crashguard: fatal signal inside the crash handler; exiting with code 84\n",
    );
    sys::exit_now(i32::from(ExitCode::HandlerFailure.code()));
}

/// Lets a second crashing thread wait (bounded) for the first one to end the process.
///
/// Async-signal-safe.
fn wait_for_first_crash() {
    let budget = SECOND_WAIT_NS.load(Ordering::Relaxed);
    let start = assafe::now_monotonic_ns();
    while assafe::now_monotonic_ns().saturating_sub(start) < budget {
        sys::sleep_ns(1_000_000);
    }
}

/// Restores the default action and sends the signal to this thread again, so the process dies
/// of it (with a core dump where enabled) as soon as the kernel delivers it.
///
/// Async-signal-safe.
fn die_by_default(signo: c_int, tid: u32) {
    sys::set_default(signo);
    // Re-sent even for hardware faults, which would usually repeat on return: some do not
    // (an action-optional machine check, a signal sent with a forged code), and a process
    // whose record says it died must not carry on. With SA_NODEFER the signal is not blocked
    // here, so it takes the default action as soon as the kernel delivers it.
    if !sys::kill_thread(tid, signo) {
        sys::exit_now(128 + signo);
    }
}

/// Commits a `handler_failure` record over whatever the faulting handler had written, so the
/// next run reports the failure instead of "killed without warning".
///
/// Async-signal-safe.
fn record_handler_failure(signo: c_int) {
    let Some(bb) = crashguard_blackbox::active() else {
        return;
    };
    // The fault may have come before the handler claimed the record.
    let Some(mut writer) = bb.reclaim_end().or_else(|| bb.claim_end()) else {
        return;
    };
    let mut line = LineBuf::<{ layout::DETAIL_LEN }>::new();
    line.push(b"fault inside the crash handler: ");
    match crashguard_blackbox::signal_name(signo as u32) {
        Some(name) => line.push(name.as_bytes()),
        None => line.push(b"signal ").dec(signo as u64),
    };
    let end = writer.end();
    end.detail_len = crashguard_blackbox::assafe::copy_bytes(&mut end.detail, line.as_bytes());
    writer.commit(
        Outcome::HandlerFailure,
        u32::from(ExitCode::HandlerFailure.code()),
    );
}
