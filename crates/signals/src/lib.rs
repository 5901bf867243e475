//! Fatal-signal handlers and the termination-signal listener of crashguard.
//!
//! - [`FatalHandlers::install`] catches SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and SIGTRAP
//!   with raw `sigaction` (`SA_SIGINFO | SA_ONSTACK`) on per-thread alternate stacks with guard
//!   pages ([`altstack`]), records what happened into the armed black box
//!   ([`crashguard_blackbox::active`]), writes a one-line summary to stderr (and optionally to a
//!   termination-log file), and then ends the process deliberately: by default it chains to
//!   the previous handler and lets the signal take its default action, so the parent still
//!   sees "killed by signal n" — for a fault by returning into the faulting instruction, so
//!   a core dump shows the original fault.
//! - [`TerminationListener::start`] turns SIGTERM, SIGINT, SIGHUP (and SIGQUIT if asked) into
//!   [`TermSignal`] messages, with the sender's pid and uid, on a crossbeam channel.
//!
//! # Async-signal safety
//!
//! Everything reachable from the fatal handler is documented `Async-signal-safe.`: it makes
//! only the system calls listed in `docs/async-signal-safety.md` (all on the POSIX
//! signal-safety(7) list, or raw `syscall(2)`s), allocates nothing, takes no lock, cannot
//! panic, and touches no lazily initialised thread-local. Buffers live in static memory owned by
//! the first crashing thread, so the handler also fits on a small (8 KiB) alternate stack. The
//! installed state is one immutable value behind one pointer. The handler is reentrancy-safe
//! and bounded:
//!
//! - errno is saved and restored;
//! - signals *sent* by a process (`si_code <= 0`) are told apart from faults everywhere: a
//!   sent signal whose disposition was `SIG_IGN` stays ignored, and one that arrives while a
//!   crash is being handled changes nothing;
//! - the first crash wins a compare-exchange on its thread id; a second faulting thread waits
//!   (bounded, [`FatalConfig::second_crash_wait`]) and then dies by the default action;
//! - a fault inside the handler commits the original crash with what was gathered, chains, and
//!   lets the original signal end the process; exit code 84 is left for a handler that could
//!   record nothing;
//! - a watchdog — on Linux a POSIX timer created at install, which the handler arms and whose
//!   signal is taken over on the crashing thread itself, no thread of its own — ends the process
//!   with code 84 if the handler does not finish within [`FatalConfig::watchdog_timeout`];
//! - frame 0 (the interrupted program counter), the registers and a bounded stack copy are in
//!   the record before the unwinder runs.
//!
//! The termination listener does its signal-handler work through signal-hook, whose handler
//! only stores the signal and its origin and writes to a self-pipe.
//!
//! # Limitations
//!
//! - Linux is the target. Other unixes compile with reduced features: no kernel thread ids or
//!   thread names, no stack bounds (the stack-overflow flag rests on a stack-pointer heuristic,
//!   and only on the architectures whose `ucontext` is decoded), `raise` instead of `tgkill`.
//! - On Linux with glibc the crate interposes `pthread_create` (a weak symbol, so a program
//!   that also links crash-handler's interposer uses that one): while the fatal handlers are
//!   installed every new thread — std's, and C code's linked into the executable — starts with
//!   a 64 KiB guarded alternate stack and registered stack bounds. A thread created before
//!   install, or by a `dlopen`ed library calling glibc's `pthread_create` directly, has only
//!   what its creator gave it (std: max(`SIGSTKSZ`, `AT_MINSIGSTKSZ`), as small as 8 KiB,
//!   too small for a nested signal frame; C code: none, so its stack overflow is not
//!   recorded) unless it calls [`altstack::prepare_current`].
//! - With the default [`FatalPolicy::Reraise`], a chained handler decides the final status: on
//!   a stack overflow std's handler prints "has overflowed its stack" and aborts, so the
//!   process ends with SIGABRT (134). The record keeps the fault (SIGSEGV with
//!   `stack_overflow`) and is amended to the status the process really ended with, 134.
//! - The fatal signals are treated as fatal: a runtime that handles SIGSEGV itself (a JIT, a
//!   garbage collector) must install its handler after crashguard, so that it runs first.
//! - If a shutdown or a panic exit already claimed the black box's `end` section, a crash
//!   during it is summarised on stderr but not recorded.
//! - A watchdog timeout exits with 84 and records `handler_failure` (or, if the record was
//!   committed, amends its status to 84).
//! - The watchdog's timer signals with SIGTRAP (`SI_TIMER` and a random cookie tell it from a
//!   sent or real SIGTRAP); the recording thread unblocks SIGTRAP for itself if the interrupted
//!   code had it blocked. A recording thread that cannot take the forwarded expiry (asleep in
//!   the kernel uninterruptibly) is taken over by the thread that got the timer after 100 ms.
//!   A SIGTRAP handler installed after crashguard's receives the timer's signal first and must
//!   chain it to crashguard's for the watchdog to act.
//! - In a forked child the handler creates a timer aimed at the crashing thread when it starts;
//!   on other unixes (a watchdog thread) a forked child's handler runs unbounded.
//! - Dropping the listener restores the previous dispositions; signal-hook-registry keeps its
//!   bookkeeping, which this crate re-arms when a new listener starts.
//!
//! # Examples
//!
//! ```no_run
//! use crashguard_signals::{FatalConfig, FatalHandlers, Signal, TerminationListener};
//!
//! // Fatal signals: record and re-raise.
//! let fatal = FatalHandlers::install(FatalConfig::new())?;
//!
//! // Threads not spawned through crashguard should get an alternate stack of their own.
//! let worker = std::thread::spawn(|| {
//!     crashguard_signals::altstack::prepare_current().expect("alternate stack");
//!     // ... work ...
//! });
//!
//! // Termination signals: a channel the shutdown coordinator selects on.
//! let (listener, requests) = TerminationListener::start(&Signal::TERMINATION)?;
//! if let Ok(request) = requests.recv() {
//!     eprintln!("{request}: shutting down");
//! }
//! listener.stop();
//! worker.join().unwrap();
//! drop(fatal);
//! # Ok::<(), crashguard_signals::Error>(())
//! ```

// POSIX signals, `sigaltstack` and `sigaction` are what this crate is: there is no Windows (or
// other non-Unix) implementation to fall back to, so say so once and plainly instead of
// failing deep inside platform code.
#[cfg(not(unix))]
compile_error!(
    "crashguard-signals supports Unix targets only: Linux (x86_64, aarch64) fully, other Unixes with reduced features"
);

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
pub mod altstack;
#[cfg(unix)]
mod context;
#[cfg(unix)]
mod error;
#[cfg(unix)]
mod fatal;
#[cfg(unix)]
mod handler;
#[cfg(unix)]
mod record;
#[cfg(unix)]
mod signal;
#[cfg(unix)]
mod stacks;
#[cfg(unix)]
mod state;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
mod term_source;
#[cfg(unix)]
mod termination;
#[cfg(unix)]
mod unwind;
#[cfg(unix)]
mod watchdog;

#[cfg(unix)]
pub use error::{Error, Installation, InvalidSetting};
#[cfg(unix)]
pub use fatal::{FatalConfig, FatalHandlers, FatalPolicy};
#[cfg(unix)]
pub use signal::Signal;
#[cfg(unix)]
pub use state::EndEnricher;
#[cfg(unix)]
pub use term_source::TermSource;
#[cfg(unix)]
pub use termination::{TermSignal, TerminationListener};

/// Serialises the unit tests that change process-wide state (dispositions, alternate stacks).
#[cfg(test)]
pub(crate) static TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
