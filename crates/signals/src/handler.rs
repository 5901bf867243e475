//! The fatal-signal handler's control flow: who records, what a signal that arrives during a
//! crash means, how the process ends. Everything in this module is async-signal-safe: it
//! allocates nothing, takes no lock, cannot panic (no indexing, no unwrap, no formatting
//! machinery), touches no lazily initialised thread-local, and calls only the libc functions
//! listed in `docs/async-signal-safety.md`.
//!
//! Its stack use is kept small on purpose: buffers live in [`SCRATCH`], a static claimed by the
//! first crash, so the handler also fits on a small alternate stack someone else installed.
//!
//! A signal is *sent* when its `si_code` says a process sent it (`SI_USER`, `SI_TKILL`,
//! `SI_QUEUE`, ...), and a *fault* when the kernel raised it for the instruction the thread was
//! executing. The difference decides everything below:
//!
//! - a sent signal whose disposition before crashguard was `SIG_IGN` stays ignored;
//! - a sent signal that arrives while a crash is being handled (on the recording thread or any
//!   other) is not a second crash: the crash being handled ends the process;
//! - after recording, a fault returns into the faulting instruction with the default action
//!   restored, so the kernel kills the process with the original fault (and a core dump shows
//!   the original registers); a sent signal is sent again.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, Ordering};

use crashguard_blackbox::ExitCode;
use crashguard_blackbox::assafe;

use crate::record::{self, Buffers, Crash};
use crate::state::{self, Disposition, Installed};
use crate::{sys, watchdog};

/// Kernel tid of the thread handling the first crash, or 0.
static CRASH_TID: AtomicU32 = AtomicU32::new(0);
/// What the first crashing thread is doing; see the `PHASE_*` constants.
static PHASE: AtomicU32 = AtomicU32::new(PHASE_IDLE);
const PHASE_IDLE: u32 = 0;
/// Capturing and writing the record: a fault now is a fault inside the handler.
const PHASE_RECORDING: u32 = 1;
/// Chaining or ending the process: a signal now comes from the previous handler (std's
/// stack-overflow handler calls `abort()`) or from our own re-send, and takes its default
/// action.
const PHASE_TERMINATING: u32 = 2;
/// Committing the original crash after a fault inside the handler: a fault now exits at once.
const PHASE_FAILING: u32 = 3;

/// What the first crashing thread keeps between the handler and a nested fault inside it.
struct Scratch {
    crash: Crash,
    buffers: Buffers,
    /// Copies of the original signal's kernel arguments, for chaining after a nested fault: a
    /// fault on the recording stack makes the kernel start the nested signal frame at the top
    /// of the alternate stack, over the original one.
    info: libc::siginfo_t,
    uc: libc::ucontext_t,
}

struct ScratchCell(UnsafeCell<Scratch>);

// SAFETY: only the thread that won the CRASH_TID compare-exchange ever touches the contents,
// and it never gives the winner role back.
unsafe impl Sync for ScratchCell {}

static SCRATCH: ScratchCell = ScratchCell(UnsafeCell::new(Scratch {
    crash: Crash::EMPTY,
    buffers: Buffers::new(),
    // SAFETY: all-zero bytes are a valid siginfo_t and ucontext_t (integers and null pointers).
    info: unsafe { core::mem::zeroed() },
    // SAFETY: as above.
    uc: unsafe { core::mem::zeroed() },
}));

/// What [`record_on_crash_stack`] needs.
struct RecordJob<'a> {
    bb: &'a crashguard_blackbox::BlackBox,
    state: &'a Installed,
    crash: &'a Crash,
    buffers: &'a mut Buffers,
}

/// Runs [`record::record`] (on the recording stack).
///
/// Async-signal-safe.
///
/// # Safety
///
/// `job` points to a live `RecordJob`.
unsafe extern "C" fn record_on_crash_stack(job: *mut c_void) {
    // SAFETY: the caller passes a live RecordJob, used by nobody else meanwhile.
    let job = unsafe { &mut *job.cast::<RecordJob<'_>>() };
    record::record(job.bb, job.state, job.crash, job.buffers);
}

/// Runs [`record_on_crash_stack`] on the recording stack, which is made this thread's alternate
/// stack meanwhile: a signal arriving while it records (one sent from outside, a fault inside
/// the handler) then gets its frame below the recording stack's pointer, instead of at the top
/// of the alternate stack, where it would overwrite the interrupted handler's own frame.
///
/// Async-signal-safe.
fn record_switching_stacks(
    state: &Installed,
    interrupted: &libc::ucontext_t,
    job: *mut RecordJob<'_>,
) {
    let top = state.crash_stack_top;
    // The kernel saved the thread's alternate stack in the context it passed (`uc_stack`), which
    // spares a `sigaltstack` query; an auto-disarming stack (`SS_AUTODISARM`, disabled while
    // the handler runs) is asked for instead, as is a context the kernel did not pass.
    let original = sys::altstack_from_context(interrupted).or_else(sys::altstack_current);
    let switched = top != 0 && original.is_some();
    if !switched {
        // SAFETY: `job` is live for the call.
        unsafe { record_on_crash_stack(job.cast()) };
        return;
    }
    // SAFETY: the recording stack was mapped at install for exactly this, and only the thread
    // that won CRASH_TID ever runs on it; `job` is live for the call and the function does not
    // unwind.
    unsafe { sys::call_on_stack(top, enter_crash_stack, job.cast()) };
    // Back on the alternate stack, which is no longer the registered one, so it may be
    // registered again.
    if let Some((base, size)) = original {
        let _ = sys::altstack_set(base, size);
    }
}

/// The first code on the recording stack: registers it as the alternate stack (allowed: the
/// thread is no longer on the old one), then records.
///
/// Async-signal-safe.
///
/// # Safety
///
/// As for [`record_on_crash_stack`]; runs on the recording stack.
unsafe extern "C" fn enter_crash_stack(job: *mut c_void) {
    // SAFETY: the caller passes a live RecordJob.
    let state = unsafe { &*job.cast::<RecordJob<'_>>() }.state;
    let size = state::CRASH_STACK_BYTES;
    let _ = sys::altstack_set(state.crash_stack_top - size, size);
    // SAFETY: as the caller promises.
    unsafe { record_on_crash_stack(job) };
}

/// The `sigaction` entry point for every fatal signal.
///
/// Async-signal-safe.
///
/// # Safety
///
/// Only the kernel calls this (or a handler installed after ours, chaining to it), as an
/// `SA_SIGINFO` handler: `info` and `uc` are the kernel's pointers.
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
    let sent = crashguard_blackbox::code_is_sent(code);
    let Some(state) = state::current() else {
        // Never installed (a foreign caller): behave as the default action would.
        return finish(signo, code, assafe::gettid());
    };
    let previous = state
        .previous(signo)
        .map_or(Disposition::Default, |p| p.chain);
    if !state.armed {
        // Uninstalled, but a handler installed after ours still chains here: be transparent.
        // SAFETY: forwarded from the kernel.
        return unsafe { pass_on(previous, signo, code, info, uc) };
    }
    // SAFETY: forwarded from the kernel.
    if unsafe { watchdog::is_expiry(state, signo, info) } {
        watchdog::expired(state, CRASH_TID.load(Ordering::Acquire), assafe::gettid());
    }
    if sent && matches!(previous, Disposition::Ignore) {
        // The application had this signal ignored; being sent it stays ignored.
        return;
    }
    let tid = assafe::gettid();
    match CRASH_TID.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        // SAFETY: forwarded from the kernel.
        Err(owner) if owner == tid => return unsafe { reentered(state, signo, code, info, tid) },
        Err(_) if sent => {
            // Someone sent a fatal signal while another thread records a crash: that crash
            // ends the process; this signal changes nothing.
            return;
        }
        Err(_) => {
            wait_for_first_crash(state);
            return finish(signo, code, tid);
        }
    }
    // The phase first: a fault from here on is a fault inside the handler.
    PHASE.store(PHASE_RECORDING, Ordering::Release);
    watchdog::arm(state, tid);

    // SAFETY: this thread won CRASH_TID and is the only user of SCRATCH from now on.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    // SAFETY: the kernel's pointers, each valid for its type when not null; copied in place
    // (no temporary on the small signal stack).
    unsafe {
        if !info.is_null() {
            core::ptr::copy_nonoverlapping(info, &raw mut scratch.info, 1);
        }
        if !uc.is_null() {
            core::ptr::copy_nonoverlapping(uc.cast::<libc::ucontext_t>(), &raw mut scratch.uc, 1);
        }
    }
    if !uc.is_null() {
        // The watchdog's signal must be able to reach this thread even if the interrupted
        // code had it blocked (the mask in force now is that one).
        sys::unblock_if_blocked(&scratch.uc.uc_sigmask, sys::ALARM_SIGNAL);
    }
    // SAFETY: forwarded from the kernel.
    unsafe { sys::context_registers(uc, &mut scratch.buffers.regs) };
    let bb = crashguard_blackbox::active();
    // SAFETY: forwarded from the kernel.
    scratch.crash = unsafe { Crash::capture(signo, info, &scratch.buffers.regs, tid, bb) };
    let crash = scratch.crash;
    record::summarize(&crash, &mut scratch.buffers.line);
    if let Some(bb) = bb {
        let mut job = RecordJob {
            bb,
            state,
            crash: &crash,
            buffers: &mut scratch.buffers,
        };
        record_switching_stacks(state, &scratch.uc, &mut job);
    }
    record::emit(state, scratch.buffers.line.as_bytes());

    PHASE.store(PHASE_TERMINATING, Ordering::Release);
    if crash.memory_budget || state.policy_exit {
        sys::exit_now(crash.exit_code as i32);
    }
    // SAFETY: forwarded from the kernel.
    unsafe { chain(previous, signo, info, uc) };
    finish(signo, code, tid);
}

/// A fatal signal arrived on the thread that is already handling one.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `info` is the kernel's pointer for this (nested) signal.
unsafe fn reentered(
    state: &Installed,
    signo: c_int,
    code: i32,
    info: *mut libc::siginfo_t,
    tid: u32,
) {
    let sent = crashguard_blackbox::code_is_sent(code);
    // SAFETY: the kernel's siginfo for this signal, read through libc's accessors.
    let sender = unsafe { info.as_ref() }.map_or(0, |i| unsafe { sys::siginfo_fields(i) }.2);
    let from_this_process = sender == sys::getpid();
    match PHASE.load(Ordering::Acquire) {
        PHASE_TERMINATING if !sent || from_this_process => {
            // The record is committed; this comes from the handler we chained to (std's
            // stack-overflow handler aborts) or from our own re-send. The process dies of this
            // signal, so that is the status the record must give.
            if let Some(bb) = crashguard_blackbox::active() {
                bb.amend_exit_code(128 + signo as u32);
            }
            finish(signo, code, tid)
        }
        // A signal sent from outside (`kill -SEGV`, `kill -ABRT`) while this thread records or
        // ends the process: not a fault of the handler. The crash being handled ends the
        // process.
        PHASE_RECORDING | PHASE_TERMINATING if sent && !from_this_process => {}
        // The recording code itself aborted (`abort()` sends SIGABRT from this process): a
        // failure inside the handler like a fault.
        PHASE_RECORDING => {
            PHASE.store(PHASE_FAILING, Ordering::Release);
            // SAFETY: this thread owns SCRATCH (it won CRASH_TID); the outer handler is
            // suspended below us and never resumes.
            let scratch = unsafe { &mut *SCRATCH.0.get() };
            let crash = scratch.crash;
            let recorded = record::commit_interrupted(&crash, scratch.buffers.regs.pc, signo);
            let mut line = assafe::LineBuf::<160>::new();
            line.push(b"crashguard: fault inside the crash handler (");
            match crashguard_blackbox::signal_name(signo as u32) {
                Some(name) => line.push(name.as_bytes()),
                None => line.push(b"signal ").dec(signo as u64),
            };
            line.push(if recorded {
                b"); the record keeps the original crash\n".as_slice()
            } else {
                b"); nothing could be recorded\n".as_slice()
            });
            record::emit(state, line.as_bytes());
            PHASE.store(PHASE_TERMINATING, Ordering::Release);
            if crash.signo == 0 {
                // The fault came before the crash was even read: nothing to end the process
                // with but the handler-failure code.
                sys::exit_now(i32::from(ExitCode::HandlerFailure.code()));
            }
            if crash.memory_budget || state.policy_exit {
                sys::exit_now(crash.exit_code as i32);
            }
            let previous = state
                .previous(crash.signo)
                .map_or(Disposition::Default, |p| p.chain);
            // SAFETY: copies of the original signal's kernel arguments (the originals may have
            // been overwritten by this nested signal's frame).
            unsafe {
                chain(
                    previous,
                    crash.signo,
                    &raw mut scratch.info,
                    (&raw mut scratch.uc).cast(),
                )
            };
            // Returning would re-run the faulting instruction of the handler, not the
            // original one: the original signal is sent instead.
            resend(crash.signo, tid);
        }
        _ if sent => {}
        _ => {
            // A fault while committing the original after a fault: nothing more can be
            // written safely.
            assafe::write_fd(
                2,
                b"crashguard: fault inside the crash handler while recording its own failure; exiting with code 84\n",
            );
            sys::exit_now(i32::from(ExitCode::HandlerFailure.code()));
        }
    }
}

/// Lets a second crashing thread wait (bounded) for the first one to end the process.
///
/// Async-signal-safe.
fn wait_for_first_crash(state: &Installed) {
    let budget = state.second_crash_wait_ns;
    let start = assafe::now_monotonic_ns();
    while assafe::now_monotonic_ns().saturating_sub(start) < budget {
        sys::sleep_ns(1_000_000);
    }
}

/// Whether returning from the handler re-executes the instruction that raised `signo` with
/// `code`, so that the kernel raises it again: the synchronous faults. Not traps (`int3`
/// reports the instruction after it), not action-optional machine checks (asynchronous), not
/// anything sent.
///
/// Async-signal-safe.
fn repeats_on_return(signo: c_int, code: i32) -> bool {
    if crashguard_blackbox::code_is_sent(code) {
        return false;
    }
    match signo {
        libc::SIGSEGV | libc::SIGILL | libc::SIGFPE => true,
        libc::SIGBUS => code != sys::BUS_MCEERR_AO,
        _ => false,
    }
}

/// Ends the process with `signo`'s default action: restores it, then, for a fault that repeats
/// on return, returns into the faulting instruction (the kernel raises the same fault again,
/// with the original registers in a core dump); otherwise sends the signal to this thread again.
/// Should the instruction not fault again after all (a code forged by the process itself), the
/// watchdog, armed since the handler started, ends the process.
///
/// Async-signal-safe.
fn finish(signo: c_int, code: i32, tid: u32) {
    sys::set_default(signo);
    if !repeats_on_return(signo, code) {
        resend(signo, tid);
    }
}

/// Sends `signo` (whose default action is restored) to this thread; with `SA_NODEFER` it is
/// not blocked, so it takes effect as soon as the kernel delivers it.
///
/// Async-signal-safe.
fn resend(signo: c_int, tid: u32) {
    sys::set_default(signo);
    if !sys::kill_thread(tid, signo) {
        sys::exit_now(128 + signo);
    }
}

/// After uninstall: does what the disposition before crashguard would have done.
///
/// Async-signal-safe (as far as the previous handler is).
///
/// # Safety
///
/// `info` and `uc` are the kernel's pointers for this signal.
unsafe fn pass_on(
    previous: Disposition,
    signo: c_int,
    code: i32,
    info: *mut libc::siginfo_t,
    uc: *mut c_void,
) {
    match previous {
        Disposition::Ignore => {}
        Disposition::Default => finish(signo, code, assafe::gettid()),
        // SAFETY: forwarded from the kernel.
        _ => unsafe { chain(previous, signo, info, uc) },
    }
}

/// Calls the handler that was installed before ours, with the arity it was installed with.
/// Does nothing for `SIG_DFL` and `SIG_IGN`.
///
/// Async-signal-safe (as far as the previous handler is).
///
/// # Safety
///
/// `info` and `uc` are the kernel's pointers for this signal.
unsafe fn chain(previous: Disposition, signo: c_int, info: *mut libc::siginfo_t, uc: *mut c_void) {
    match previous {
        Disposition::Default | Disposition::Ignore => {}
        // SAFETY: the previous handler was installed without SA_SIGINFO, so it takes the
        // signal number only, as the kernel would have called it.
        Disposition::Handler(f) => unsafe { f(signo) },
        // SAFETY: installed with SA_SIGINFO; we pass the kernel's own arguments on.
        Disposition::Action(f) => unsafe { f(signo, info, uc) },
    }
}
