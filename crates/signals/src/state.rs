//! The fatal handlers' installed state: one immutable value behind one pointer.
//!
//! [`crate::FatalHandlers::install`] builds an [`Installed`] (the configuration, the typed
//! dispositions it replaced, the enricher, the termination-log descriptor, the watchdog's timer)
//! and publishes it with one release store; the handler reads it with one acquire load and never
//! sees a half-configured value. Uninstalling publishes a *disarmed* copy instead of null: a
//! library that installed its handler after crashguard may still chain to ours, and ours must
//! then pass the signal on exactly as the disposition before crashguard would have handled it.
//!
//! The same value says whether a [`crate::FatalHandlers`] exists (`held`: [`claim`] takes it
//! with one compare-and-swap, so two installs cannot both succeed, and [`release`] gives it
//! back as the very last step of uninstalling) and whether new threads get an alternate stack
//! (`armed`, read by the `pthread_create` interposer). There is no separate "installed" flag.
//!
//! Published values are leaked, never freed: a handler on another thread may hold the reference
//! at any moment. Four values (about 1.5 KiB each) per install and uninstall.
//!
//! (signal-hook-registry's `GlobalData` is the model.)

use core::ffi::{c_int, c_void};
use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

use crashguard_blackbox::layout::End;

use crate::Signal;

/// Something the fatal handler calls with the `end` section just before committing it (the
/// facade adds the thread census this way).
///
/// # Safety
///
/// [`EndEnricher::enrich`] runs inside the fatal-signal handler, on a thread that may have been
/// interrupted anywhere (holding the allocator's lock, in the middle of `printf`), on an
/// alternate stack that may be as small as 8 KiB. An implementation must be async-signal-safe:
/// no allocation, no lock, no panic, no lazily initialised thread-local, only functions on the
/// POSIX signal-safety(7) list or raw system calls; it must use at most a few hundred bytes of
/// stack and finish in a bounded time (the watchdog ends the process otherwise). It may only
/// write to the `end` section it is given.
pub unsafe trait EndEnricher: Sync + 'static {
    /// Adds to the record. Async-signal-safe.
    fn enrich(&self, end: &mut End);
}

/// The size of the stack the handler records on (unwinder, enricher): far more than they need
/// (about 10 KiB in a debug build), so that no alternate stack size limits them.
pub(crate) const CRASH_STACK_BYTES: usize = 256 * 1024;

/// The top of the recording stack backed with memory at install: twice what the release
/// handler touches when it unwinds (four pages, counted with `getrusage` in the crash
/// benchmark). A deeper unwind takes a page fault on its own stack, which is safe; every page
/// backed ahead is one more the kernel frees when the process dies.
pub(crate) const CRASH_STACK_PREFAULTED: usize = 32 * 1024;

/// A disposition the fatal handlers replaced, decoded once at install into its typed form.
#[derive(Clone, Copy)]
pub(crate) enum Disposition {
    /// `SIG_DFL`: the signal's default action.
    Default,
    /// `SIG_IGN`.
    Ignore,
    /// A plain `sa_handler`.
    Handler(unsafe extern "C" fn(c_int)),
    /// An `SA_SIGINFO` `sa_sigaction`.
    Action(unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)),
}

impl fmt::Debug for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disposition::Default => "SIG_DFL",
            Disposition::Ignore => "SIG_IGN",
            Disposition::Handler(_) => "handler",
            Disposition::Action(_) => "sigaction",
        })
    }
}

/// One fatal signal's replaced disposition: the raw `sigaction` to restore, and how to chain.
#[derive(Clone, Copy)]
pub(crate) struct Previous {
    pub(crate) signal: Signal,
    pub(crate) action: libc::sigaction,
    pub(crate) chain: Disposition,
}

impl fmt::Debug for Previous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.signal, self.chain)
    }
}

/// Everything the fatal handler needs, fixed at install.
pub(crate) struct Installed {
    /// True from [`claim`] to [`release`]: a [`crate::FatalHandlers`] owns the handlers (the
    /// one "installed" flag).
    pub(crate) held: bool,
    /// False once uninstalled: the handler then only passes signals on (see the module docs).
    pub(crate) armed: bool,
    /// `FatalPolicy::Exit`.
    pub(crate) policy_exit: bool,
    pub(crate) second_crash_wait_ns: u64,
    pub(crate) summary_to_stderr: bool,
    /// The termination-log descriptor, or -1.
    pub(crate) termination_log_fd: i32,
    pub(crate) enricher: Option<&'static dyn EndEnricher>,
    /// The high end of the stack the handler records on (mapped at install, with a guard page),
    /// or 0 to record on the signal stack.
    pub(crate) crash_stack_top: usize,
    /// The unwinder and the unwind tables copied at install.
    pub(crate) unwinder: Option<&'static crate::unwind::Prepared>,
    /// The dispositions replaced, one per signal of [`Signal::FATAL`], in that order.
    pub(crate) previous: [Option<Previous>; Signal::FATAL.len()],
    /// The watchdog's alarm handle (a timer id on Linux), or -1; the value its signal carries;
    /// its budget.
    pub(crate) alarm: i32,
    pub(crate) alarm_cookie: u64,
    pub(crate) watchdog_timeout_ns: u64,
    /// The process that installed: a forked child has no share in its timer.
    pub(crate) owner_pid: u32,
}

impl Installed {
    /// The state before any install: nothing held, nothing armed, nothing to chain to (the
    /// handler then acts as the default action would).
    const NEVER: Installed = Installed {
        held: false,
        armed: false,
        policy_exit: false,
        second_crash_wait_ns: 0,
        summary_to_stderr: false,
        termination_log_fd: -1,
        enricher: None,
        crash_stack_top: 0,
        unwinder: None,
        previous: [None; Signal::FATAL.len()],
        alarm: -1,
        alarm_cookie: 0,
        watchdog_timeout_ns: 0,
        owner_pid: 0,
    };

    /// The replaced disposition of `signo`, if it is one of ours.
    ///
    /// Async-signal-safe.
    pub(crate) fn previous(&self, signo: c_int) -> Option<&Previous> {
        self.previous
            .iter()
            .flatten()
            .find(|p| p.signal.number() == signo)
    }
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed")
            .field("held", &self.held)
            .field("armed", &self.armed)
            .field("policy_exit", &self.policy_exit)
            .field("previous", &self.previous)
            .field("enricher", &self.enricher.is_some())
            .field("termination_log_fd", &self.termination_log_fd)
            .finish_non_exhaustive()
    }
}

static CURRENT: AtomicPtr<Installed> = AtomicPtr::new(core::ptr::null_mut());

/// The state the handler works with, if handlers were ever installed.
///
/// Async-signal-safe.
pub(crate) fn current() -> Option<&'static Installed> {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: CURRENT only ever holds null or a pointer from `Box::leak` in `publish`, never
    // freed, so a non-null value is valid for 'static.
    unsafe { p.as_ref() }
}

/// Whether threads created now should start with crashguard's alternate stack: the fatal
/// handlers are installed and armed.
///
/// Async-signal-safe.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    expect(dead_code, reason = "only the glibc pthread_create interposer asks")
)]
pub(crate) fn armed() -> bool {
    current().is_some_and(|s| s.armed)
}

/// Takes the state for one [`crate::FatalHandlers`]: publishes a held, disarmed copy of the
/// current value (the handler keeps passing signals on as before), or returns `None` if
/// another one holds it. One compare-and-swap, so of two racing installs exactly one wins.
pub(crate) fn claim() -> Option<&'static Installed> {
    let mut seen = CURRENT.load(Ordering::Acquire);
    loop {
        // SAFETY: as in `current`: null or a leaked, never freed value.
        let old = unsafe { seen.as_ref() }.unwrap_or(&Installed::NEVER);
        if old.held {
            return None;
        }
        let claimed = Box::into_raw(Box::new(Installed {
            held: true,
            armed: false,
            ..*old
        }));
        match CURRENT.compare_exchange(seen, claimed, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `claimed` came from Box::into_raw above and is never freed from now on.
            Ok(_) => return Some(unsafe { &*claimed }),
            Err(now) => {
                // SAFETY: the box was never published, so nobody else can see it.
                drop(unsafe { Box::from_raw(claimed) });
                seen = now;
            }
        }
    }
}

/// Publishes `state` for the handler (leaking it: see the module docs). Only the holder of the
/// state (between [`claim`] and [`release`]) publishes.
pub(crate) fn publish(state: Installed) -> &'static Installed {
    debug_assert!(state.held, "only the holder publishes");
    let leaked: &'static Installed = Box::leak(Box::new(state));
    CURRENT.store((leaked as *const Installed).cast_mut(), Ordering::Release);
    leaked
}

/// Gives the state back (disarmed, so the handler only passes signals on): a new install may
/// claim it from now on. The holder's last step.
pub(crate) fn release(last: &'static Installed) {
    let leaked: &'static Installed = Box::leak(Box::new(Installed {
        held: false,
        armed: false,
        ..*last
    }));
    CURRENT.store((leaked as *const Installed).cast_mut(), Ordering::Release);
}
