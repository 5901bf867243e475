//! Installing and removing the fatal-signal handlers.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use crashguard_blackbox::assafe;
use std::io;
use std::time::Duration;

use crashguard_blackbox::layout::End;

use crate::handler::{
    self, ENRICHER, POLICY_EXIT, PREV_FLAGS, PREV_HANDLER, SECOND_WAIT_NS, SUMMARY_STDERR,
    TERMINATION_LOG_FD,
};
use crate::watchdog::Watchdog;
use crate::{Error, Signal, altstack, sys};

/// How the process ends after the crash has been recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FatalPolicy {
    /// Chain to the handler that was installed before (keeping, for example, std's "has
    /// overflowed its stack" message), then restore the default action and let the signal
    /// kill the process, so the parent sees "killed by signal n" and a core dump is still
    /// written where enabled.
    #[default]
    Reraise,
    /// Exit with status `128 + n` without chaining, for supervisors that only look at exit
    /// codes.
    Exit,
}

/// Settings of the fatal handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FatalConfig {
    /// How the process ends; default [`FatalPolicy::Reraise`].
    pub policy: FatalPolicy,
    /// The longest the handler may run before the watchdog ends the process with the
    /// handler-failure code (84); default 1 s.
    pub watchdog_timeout: Duration,
    /// How long a second thread that crashes while the first one is being handled waits before
    /// it dies by the default action; default 2 s.
    pub second_crash_wait: Duration,
    /// Whether the one-line summary is written to stderr; default true.
    pub summary_to_stderr: bool,
}

impl Default for FatalConfig {
    fn default() -> Self {
        FatalConfig {
            policy: FatalPolicy::Reraise,
            watchdog_timeout: Duration::from_millis(1000),
            second_crash_wait: Duration::from_secs(2),
            summary_to_stderr: true,
        }
    }
}

impl FatalConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`FatalConfig::policy`].
    pub fn policy(mut self, policy: FatalPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets [`FatalConfig::watchdog_timeout`].
    pub fn watchdog_timeout(mut self, timeout: Duration) -> Self {
        self.watchdog_timeout = timeout;
        self
    }

    /// Sets [`FatalConfig::second_crash_wait`].
    pub fn second_crash_wait(mut self, wait: Duration) -> Self {
        self.second_crash_wait = wait;
        self
    }

    /// Sets [`FatalConfig::summary_to_stderr`].
    pub fn summary_to_stderr(mut self, on: bool) -> Self {
        self.summary_to_stderr = on;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.watchdog_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "the watchdog timeout must not be zero",
            ));
        }
        if self.watchdog_timeout > Duration::from_secs(600) {
            return Err(Error::InvalidConfig(
                "the watchdog timeout must be at most 600 seconds",
            ));
        }
        if self.second_crash_wait > Duration::from_secs(60) {
            return Err(Error::InvalidConfig(
                "the second-crash wait must be at most 60 seconds",
            ));
        }
        Ok(())
    }
}

/// Whether a [`FatalHandlers`] exists in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The installed fatal-signal handlers. Dropping it (or [`FatalHandlers::uninstall`]) puts the
/// previous dispositions back.
///
/// # Examples
///
/// ```no_run
/// use crashguard_signals::{FatalConfig, FatalHandlers, FatalPolicy};
/// let handlers = FatalHandlers::install(FatalConfig::new().policy(FatalPolicy::Exit))?;
/// // ... a crash from here on is recorded into the active black box ...
/// handlers.uninstall()?;
/// # Ok::<(), crashguard_signals::Error>(())
/// ```
pub struct FatalHandlers {
    previous: Vec<(Signal, libc::sigaction)>,
    watchdog: Option<Watchdog>,
}

impl fmt::Debug for FatalHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FatalHandlers")
            .field(
                "signals",
                &self.previous.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            )
            .field("watchdog", &self.watchdog.is_some())
            .finish()
    }
}

impl FatalHandlers {
    /// Installs the handlers for every signal in [`Signal::FATAL`] with `SA_SIGINFO |
    /// SA_ONSTACK`, after warming up the unwinder, giving the calling thread an alternate
    /// stack ([`altstack::prepare_current`]) and starting the watchdog thread `crashguard-wd`.
    ///
    /// A crash is recorded into [`crashguard_blackbox::active`] when a black box is armed;
    /// without one the handlers still summarise the crash on stderr and terminate as
    /// configured.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInstalled`] if handlers are installed already, [`Error::InvalidConfig`]
    /// for out-of-range settings, and the OS errors of the steps above. On error nothing stays
    /// installed.
    pub fn install(config: FatalConfig) -> Result<FatalHandlers, Error> {
        config.validate()?;
        if INSTALLED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::AlreadyInstalled("fatal signal handlers are"));
        }
        match Self::install_inner(&config) {
            Ok(h) => Ok(h),
            Err(e) => {
                INSTALLED.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    fn install_inner(config: &FatalConfig) -> Result<FatalHandlers, Error> {
        warm_up();
        altstack::prepare_current()?;
        POLICY_EXIT.store(config.policy == FatalPolicy::Exit, Ordering::Relaxed);
        SECOND_WAIT_NS.store(
            u64::try_from(config.second_crash_wait.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        SUMMARY_STDERR.store(config.summary_to_stderr, Ordering::Relaxed);
        let watchdog = Watchdog::start(config.watchdog_timeout).map_err(Error::Thread)?;
        sys::set_interposer_active(true);

        let mut handlers = FatalHandlers {
            previous: Vec::with_capacity(Signal::FATAL.len()),
            watchdog: Some(watchdog),
        };
        let ours = sys::fatal_action(handler::on_fatal_signal);
        let our_address = sys::handler_address(&ours);
        for (i, signal) in Signal::FATAL.iter().copied().enumerate() {
            let prev = sys::query_action(signal.number())
                .map_err(|source| Error::Sigaction { signal, source })?;
            let prev_address = sys::handler_address(&prev);
            // Never chain to ourselves (a handler left behind by an earlier install in a
            // process that lost its FatalHandlers without dropping it).
            let chain_to = if prev_address == our_address {
                sys::SIG_DFL_ADDR
            } else {
                prev_address
            };
            if let (Some(h), Some(f)) = (PREV_HANDLER.get(i), PREV_FLAGS.get(i)) {
                f.store(sys::action_flags(&prev), Ordering::Release);
                h.store(chain_to, Ordering::Release);
            }
            sys::set_action(signal.number(), &ours).map_err(|errno| Error::Sigaction {
                signal,
                source: io::Error::from_raw_os_error(errno),
            })?;
            handlers.previous.push((signal, prev));
        }
        Ok(handlers)
    }

    /// Restores the dispositions that were in place before [`FatalHandlers::install`] and
    /// stops the watchdog. Alternate stacks stay installed (they are harmless and freed with
    /// their threads).
    ///
    /// # Errors
    ///
    /// [`Error::Sigaction`] if a previous disposition could not be restored; the others are
    /// still restored.
    pub fn uninstall(mut self) -> Result<(), Error> {
        self.restore()
    }

    fn restore(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        for (signal, prev) in self.previous.drain(..).rev() {
            if let Err(errno) = sys::set_action(signal.number(), &prev) {
                first_error.get_or_insert(Error::Sigaction {
                    signal,
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        }
        self.watchdog = None;
        sys::set_interposer_active(false);
        INSTALLED.store(false, Ordering::Release);
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for FatalHandlers {
    fn drop(&mut self) {
        if INSTALLED.load(Ordering::Acquire)
            && (!self.previous.is_empty() || self.watchdog.is_some())
        {
            let _ = self.restore();
        }
    }
}

/// Runs the unwinder once outside any handler: libgcc's unwinder takes the loader lock and
/// builds its caches on first use, which must not happen for the first time inside a handler
/// that interrupted a thread holding that lock.
fn warm_up() {
    let mut frames = 0usize;
    // SAFETY: called outside any signal handler; the closure only counts.
    unsafe {
        backtrace::trace_unsynchronized(|_| {
            frames += 1;
            frames < 8
        });
    }
    let mut name = [0u8; 16];
    let _ = assafe::current_thread_name(&mut name);
}

/// Registers a function the handler calls with the `end` section just before committing it
/// (the facade uses it to add the thread census).
///
/// Async-signal-safe.
///
/// # Safety
///
/// `f` runs inside the signal handler, on a small alternate stack, at any point of any thread:
/// it must be async-signal-safe (no allocation, locks, panics or lazy thread-locals) and use
/// little stack (a few hundred bytes).
pub unsafe fn set_end_enricher(f: fn(&mut End)) {
    ENRICHER.store(f as usize, Ordering::Release);
}

/// Removes the function registered with [`set_end_enricher`].
pub fn clear_end_enricher() {
    ENRICHER.store(0, Ordering::Release);
}

/// Also writes the crash summary line to `fd` (the Kubernetes termination-log file, opened at
/// install so the crash path never has to open a file); a negative `fd` stops it. The caller
/// keeps the descriptor open for the life of the process.
pub fn set_termination_log_fd(fd: i32) {
    TERMINATION_LOG_FD.store(fd.max(-1), Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config_before_touching_anything() {
        let e = FatalHandlers::install(FatalConfig::new().watchdog_timeout(Duration::ZERO));
        assert!(matches!(e, Err(Error::InvalidConfig(_))));
        let e =
            FatalHandlers::install(FatalConfig::new().second_crash_wait(Duration::from_secs(3600)));
        assert!(matches!(e, Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn install_twice_is_an_error_and_drop_restores() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let before = sys::query_action(libc::SIGSEGV).expect("query");
        let h = FatalHandlers::install(FatalConfig::new()).expect("install");
        let during = sys::query_action(libc::SIGSEGV).expect("query");
        assert_ne!(sys::handler_address(&during), sys::handler_address(&before));
        assert!(during.sa_flags & libc::SA_ONSTACK != 0);
        assert!(during.sa_flags & libc::SA_SIGINFO != 0);
        let again = FatalHandlers::install(FatalConfig::new());
        assert!(matches!(again, Err(Error::AlreadyInstalled(_))));
        drop(h);
        for signal in Signal::FATAL {
            let after = sys::query_action(signal.number()).expect("query");
            if signal == Signal::SIGSEGV {
                assert_eq!(sys::handler_address(&after), sys::handler_address(&before));
                assert_eq!(after.sa_flags, before.sa_flags);
            }
        }
        // Uninstalled: a new install works again.
        let h = FatalHandlers::install(FatalConfig::new()).expect("reinstall");
        h.uninstall().expect("uninstall");
        let after = sys::query_action(libc::SIGSEGV).expect("query");
        assert_eq!(sys::handler_address(&after), sys::handler_address(&before));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn threads_created_while_installed_get_a_full_size_alternate_stack() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let h = FatalHandlers::install(FatalConfig::new()).expect("install");
        // A std thread (std calls pthread_create) and a raw one, neither calling prepare_current.
        let std_stack = std::thread::spawn(altstack::current)
            .join()
            .expect("thread");
        extern "C" fn raw(out: *mut libc::c_void) -> *mut libc::c_void {
            // SAFETY: `out` points to the caller's Option, alive until the join below.
            unsafe { *out.cast::<Option<(usize, usize)>>() = altstack::current() };
            core::ptr::null_mut()
        }
        let mut raw_stack: Option<(usize, usize)> = None;
        // SAFETY: a plain pthread_create/join; the argument outlives the thread.
        unsafe {
            let mut t: libc::pthread_t = core::mem::zeroed();
            let arg = (&raw mut raw_stack).cast::<libc::c_void>();
            assert_eq!(libc::pthread_create(&mut t, core::ptr::null(), raw, arg), 0);
            libc::pthread_join(t, core::ptr::null_mut());
        }
        drop(h);
        for (what, stack) in [("std", std_stack), ("raw", raw_stack)] {
            let size = stack.map_or(0, |(_, size)| size);
            assert!(
                size >= altstack::required_size(),
                "{what} thread: alternate stack of {size} bytes"
            );
        }
        // Uninstalled: new threads are left alone again (std gives its own, smaller one).
        let after = std::thread::spawn(altstack::current)
            .join()
            .expect("thread");
        assert!(
            after.is_none_or(|(_, size)| size < altstack::required_size()),
            "{after:?}"
        );
    }
}
