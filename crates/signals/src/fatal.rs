//! Installing and removing the fatal-signal handlers.

use core::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crashguard_blackbox::assafe;

use crate::state::{self, CRASH_STACK_BYTES, Disposition, EndEnricher, Installed, Previous};
use crate::watchdog::Watchdog;
use crate::{Error, Installation, InvalidSetting, Signal, altstack, handler, sys, unwind};

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
#[derive(Clone)]
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
    /// Called with the `end` section just before it is committed; default none.
    pub enricher: Option<&'static dyn EndEnricher>,
    /// A file (the Kubernetes termination log) that also receives the summary line; default
    /// none. The handlers keep the descriptor open while installed, so the crash path never
    /// has to open a file.
    pub termination_log: Option<Arc<OwnedFd>>,
}

impl fmt::Debug for FatalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FatalConfig")
            .field("policy", &self.policy)
            .field("watchdog_timeout", &self.watchdog_timeout)
            .field("second_crash_wait", &self.second_crash_wait)
            .field("summary_to_stderr", &self.summary_to_stderr)
            .field("enricher", &self.enricher.is_some())
            .field("termination_log", &self.termination_log)
            .finish()
    }
}

impl Default for FatalConfig {
    fn default() -> Self {
        FatalConfig {
            policy: FatalPolicy::Reraise,
            watchdog_timeout: Duration::from_millis(1000),
            second_crash_wait: Duration::from_secs(2),
            summary_to_stderr: true,
            enricher: None,
            termination_log: None,
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

    /// Sets [`FatalConfig::enricher`]. The trait's `# Safety` contract is what makes this
    /// safe to call: the enricher runs inside the signal handler.
    pub fn enricher(mut self, enricher: &'static dyn EndEnricher) -> Self {
        self.enricher = Some(enricher);
        self
    }

    /// Sets [`FatalConfig::termination_log`].
    pub fn termination_log(mut self, fd: OwnedFd) -> Self {
        self.termination_log = Some(Arc::new(fd));
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.watchdog_timeout.is_zero() {
            return Err(Error::InvalidConfig(InvalidSetting::WatchdogTimeoutZero));
        }
        if self.watchdog_timeout > Duration::from_secs(600) {
            return Err(Error::InvalidConfig(InvalidSetting::WatchdogTimeoutTooLong));
        }
        if self.second_crash_wait > Duration::from_secs(60) {
            return Err(Error::InvalidConfig(InvalidSetting::SecondCrashWaitTooLong));
        }
        Ok(())
    }
}

/// The installed fatal-signal handlers. Dropping it (or [`FatalHandlers::uninstall`]) puts the
/// previous dispositions back where crashguard's handler is still the one installed; a handler
/// another library installed after crashguard stays.
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
    state: &'static Installed,
    /// Dispositions actually replaced (a failed install restores only these).
    replaced: Vec<Signal>,
    watchdog: Option<Watchdog>,
    /// Keeps the termination-log descriptor open while the handlers may write to it.
    _termination_log: Option<Arc<OwnedFd>>,
    done: bool,
}

impl fmt::Debug for FatalHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FatalHandlers")
            .field("state", self.state)
            .field("watchdog", &self.watchdog.is_some())
            .finish()
    }
}

impl FatalHandlers {
    /// Installs the handlers for every signal in [`Signal::FATAL`] with `SA_SIGINFO |
    /// SA_ONSTACK`, after copying the loaded objects' unwind tables for the handler's unwinder
    /// (see `docs/unwinding.md`) and mapping its recording stack, giving the calling thread an alternate
    /// stack ([`altstack::prepare_current`]) and creating the watchdog's timer (see
    /// [`FatalConfig::watchdog_timeout`]).
    /// While installed, every thread created with `pthread_create` starts with an alternate
    /// stack too (Linux with glibc; see [`altstack`]).
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
        // Whether handlers exist is part of the one installed state (`state::claim`), not a
        // flag of its own.
        let Some(claimed) = state::claim() else {
            return Err(Error::AlreadyInstalled(Installation::FatalHandlers));
        };
        let mut handlers = FatalHandlers {
            state: claimed,
            replaced: Vec::with_capacity(Signal::FATAL.len()),
            watchdog: None,
            _termination_log: None,
            done: false,
        };
        // On error `handlers` is dropped: it undoes what `arm` did and releases the state.
        handlers.arm(config)?;
        Ok(handlers)
    }

    /// The steps of install after the state is claimed; the last publishes the armed state,
    /// which also turns on alternate stacks for new threads, and installs the handlers.
    fn arm(&mut self, config: FatalConfig) -> Result<(), Error> {
        let unwinder: &'static unwind::Prepared = Box::leak(Box::new(unwind::Prepared::new()));
        // The stack the handler records on: mapped once per install and never unmapped (a
        // handler may be on it); pages below the prefaulted top cost nothing until used.
        let page = sys::page_size();
        let crash_stack = sys::map_guarded(CRASH_STACK_BYTES, page).map_err(Error::AltStack)?;
        let crash_stack_top = crash_stack + page + CRASH_STACK_BYTES;
        // The part a crash uses (four pages in a release build of the crash benchmark) is
        // backed now: page faults on it were about a fifth of the handler's time.
        sys::prefault(crash_stack_top, state::CRASH_STACK_PREFAULTED);
        let mut name = [0u8; 16];
        let _ = assafe::current_thread_name(&mut name);
        altstack::prepare_installing_thread()?;
        let watchdog = self
            .watchdog
            .insert(Watchdog::start().map_err(Error::Watchdog)?);
        let (alarm, alarm_cookie) = (watchdog.handle(), watchdog.cookie());
        // A shutdown that finds the crash handler's claim on the record waits for it to commit
        // at most this long (the watchdog ends the process by then).
        crashguard_blackbox::set_end_wait_limit(config.watchdog_timeout + Duration::from_secs(1));

        let ours = sys::fatal_action(handler::on_fatal_signal);
        let our_address = sys::handler_address(&ours);
        let mut previous = [None; Signal::FATAL.len()];
        for (slot, signal) in previous.iter_mut().zip(Signal::FATAL) {
            let action = sys::query_action(signal.number())
                .map_err(|source| Error::Sigaction { signal, source })?;
            // Never chain to ourselves (a handler left behind by an earlier install that a
            // later library kept, or a process that lost its FatalHandlers without dropping it).
            let chain = if sys::handler_address(&action) == our_address {
                Disposition::Default
            } else {
                sys::disposition(&action)
            };
            *slot = Some(Previous {
                signal,
                action,
                chain,
            });
        }
        self.state = state::publish(Installed {
            held: true,
            armed: true,
            policy_exit: config.policy == FatalPolicy::Exit,
            second_crash_wait_ns: u64::try_from(config.second_crash_wait.as_nanos())
                .unwrap_or(u64::MAX),
            summary_to_stderr: config.summary_to_stderr,
            termination_log_fd: config
                .termination_log
                .as_ref()
                .map_or(-1, |fd| fd.as_raw_fd()),
            enricher: config.enricher,
            unwinder: Some(unwinder),
            crash_stack_top,
            previous,
            alarm,
            alarm_cookie,
            watchdog_timeout_ns: u64::try_from(config.watchdog_timeout.as_nanos())
                .unwrap_or(u64::MAX),
            owner_pid: sys::getpid(),
        });
        self._termination_log = config.termination_log;
        for signal in Signal::FATAL {
            sys::set_action(signal.number(), &ours).map_err(|errno| Error::Sigaction {
                signal,
                source: io::Error::from_raw_os_error(errno),
            })?;
            self.replaced.push(signal);
        }
        Ok(())
    }

    /// Bytes of unwind tables (`.eh_frame_hdr` and `.eh_frame` of every loaded object) copied at
    /// install for the handler's unwinder: its memory cost. The tables of the executable and of
    /// the shared objects it depends on are not copied but read where the loader mapped them
    /// (see `docs/unwinding.md`); [`FatalHandlers::unwind_tables_known`] counts all of them.
    pub fn unwind_table_bytes(&self) -> usize {
        self.state
            .unwinder
            .map_or(0, unwind::Prepared::copied_bytes)
    }

    /// Bytes of unwind tables the handler's unwinder knows, copied or not.
    pub fn unwind_tables_known(&self) -> usize {
        self.state.unwinder.map_or(0, unwind::Prepared::table_bytes)
    }

    /// Puts back the dispositions that were in place before [`FatalHandlers::install`] — for
    /// each signal whose handler is still crashguard's; a handler another library installed
    /// since stays, and if it chains to crashguard's, that one now passes the signal on as the
    /// old disposition would have — and stops the watchdog. Alternate stacks stay installed
    /// (they are harmless and freed with their threads).
    ///
    /// # Errors
    ///
    /// [`Error::Sigaction`] if a previous disposition could not be restored; the others are
    /// still restored.
    pub fn uninstall(mut self) -> Result<(), Error> {
        self.restore()
    }

    fn restore(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        // First the handler stops recording and only passes signals on (and new threads stop
        // getting alternate stacks), then the dispositions go back: a signal in between is
        // handled as the old disposition would.
        let old = self.state;
        let disarmed = state::publish(Installed {
            armed: false,
            termination_log_fd: -1,
            enricher: None,
            alarm: -1,
            ..*old
        });
        let ours = sys::handler_address(&sys::fatal_action(handler::on_fatal_signal));
        let mut first_error = None;
        for signal in self.replaced.drain(..).rev() {
            let Some(prev) = old.previous(signal.number()) else {
                continue;
            };
            let still_ours = sys::query_action(signal.number())
                .is_ok_and(|current| sys::handler_address(&current) == ours);
            if !still_ours {
                continue;
            }
            if let Err(errno) = sys::set_action(signal.number(), &prev.action) {
                first_error.get_or_insert(Error::Sigaction {
                    signal,
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        }
        self.watchdog = None;
        // Last: from here on another install may claim the state and set its handlers.
        state::release(disarmed);
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for FatalHandlers {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config_before_touching_anything() {
        let e = FatalHandlers::install(FatalConfig::new().watchdog_timeout(Duration::ZERO));
        assert!(matches!(
            e,
            Err(Error::InvalidConfig(InvalidSetting::WatchdogTimeoutZero))
        ));
        let e =
            FatalHandlers::install(FatalConfig::new().watchdog_timeout(Duration::from_secs(601)));
        assert!(matches!(
            e,
            Err(Error::InvalidConfig(InvalidSetting::WatchdogTimeoutTooLong))
        ));
        let e =
            FatalHandlers::install(FatalConfig::new().second_crash_wait(Duration::from_secs(3600)));
        assert!(matches!(
            e,
            Err(Error::InvalidConfig(InvalidSetting::SecondCrashWaitTooLong))
        ));
    }

    #[test]
    fn install_twice_is_an_error_and_drop_restores() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let before = sys::query_action(libc::SIGSEGV).expect("query");
        let h = FatalHandlers::install(FatalConfig::new()).expect("install");
        let during = sys::query_action(libc::SIGSEGV).expect("query");
        // The unwinder has the tables of this executable and libc at least, and copies none of
        // them: they stay mapped for the life of the process.
        let tables = h.unwind_tables_known();
        let copied = h.unwind_table_bytes();
        println!("unwind tables: {tables} bytes, of which copied at install: {copied} bytes");
        assert!(tables > 1024, "{tables} bytes of unwind tables");
        assert!(copied < tables / 4, "{copied} of {tables} bytes copied");
        assert_ne!(sys::handler_address(&during), sys::handler_address(&before));
        assert!(during.sa_flags & libc::SA_ONSTACK != 0);
        assert!(during.sa_flags & libc::SA_SIGINFO != 0);
        let again = FatalHandlers::install(FatalConfig::new());
        assert!(matches!(
            again,
            Err(Error::AlreadyInstalled(Installation::FatalHandlers))
        ));
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

    #[test]
    fn of_racing_installs_exactly_one_wins() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for _round in 0..3 {
            let start = std::sync::Barrier::new(4);
            let results: Vec<Result<FatalHandlers, Error>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            FatalHandlers::install(FatalConfig::new())
                        })
                    })
                    .collect();
                racers
                    .into_iter()
                    .map(|r| r.join().expect("racer"))
                    .collect()
            });
            let won = results.iter().filter(|r| r.is_ok()).count();
            let refused = results
                .iter()
                .filter(|r| matches!(r, Err(Error::AlreadyInstalled(Installation::FatalHandlers))))
                .count();
            assert_eq!((won, refused), (1, 3), "{results:?}");
            assert!(state::armed());
            drop(results);
            // The winner's drop released the state: new threads are left alone, and a new
            // install works.
            assert!(!state::armed());
            assert!(state::current().is_some_and(|s| !s.held));
        }
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
