//! [`Guard`]: the handle `install()` returns. Keep it alive for the life of the service.

use std::path::Path;

use crashguard_blackbox::{ExitCode, Report};

use crate::install::Installation;
use crate::previous::PreviousRun;
use crate::shutdown::{Coordinator, ShutdownSignal};
use crate::{Config, Error};

impl Config {
    /// Installs crashguard: see [`crate::install`].
    pub fn install(self) -> Result<Guard, Error> {
        crate::install::install(self).map(|inner| Guard { inner })
    }
}

/// crashguard, installed. Dropping the guard records a clean exit, restores the signal
/// dispositions that were there before and stops the samplers; keep it alive in `main()`.
///
/// `crashguard::install(config)?;` on its own line would drop the guard at once and uninstall
/// everything again, hence `#[must_use]`: bind it, `let guard = ...`, for the life of `main`.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn main() -> Result<(), crashguard::Error> {
///     crashguard::install(crashguard::Config::new("my-service"))?; // the guard is dropped here
///     Ok(())
/// }
/// ```
#[must_use = "dropping the Guard uninstalls crashguard at once; keep it alive in main()"]
pub struct Guard {
    /// Dropping it undoes `install()` step by step, in reverse.
    inner: Installation,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("app", &self.inner.config.app)
            .field("report_dir", &self.inner.report_dir)
            .field("blackbox", &self.inner.blackbox().path())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// How the previous run in this slot ended, if a previous run left a readable black box:
    /// the shorthand for `guard.previous().report()`. Check [`Report::outcome`]: a clean exit
    /// is reported too.
    pub fn previous_run(&self) -> Option<&Report> {
        self.inner.previous.report()
    }

    /// Everything install found of the previous run in this slot: its report, where the
    /// report was stored, why it could not be stored or read.
    pub fn previous(&self) -> &PreviousRun {
        &self.inner.previous
    }

    /// The report directory in use.
    pub fn report_dir(&self) -> &Path {
        &self.inner.report_dir
    }

    /// The black-box file of this run (`crashguard inspect` reads it, even while running).
    pub fn blackbox_path(&self) -> &Path {
        self.inner.blackbox().path()
    }

    fn coordinator(&self) -> &Coordinator {
        self.inner.coordinator()
    }

    /// Registers a shutdown hook. Hooks run once, in registration order, on graceful shutdown,
    /// on [`Guard::exit`], and (under a shorter deadline) after a panic; each on a thread of its
    /// own, under its own timeout and all under the grace period. A hook that panics or overruns
    /// is recorded by name and the rest still run. A hook registered while a shutdown runs its
    /// hooks still runs, after the others.
    ///
    /// The report records the name, status and duration of the first 16 hooks; later ones run
    /// all the same.
    ///
    /// Returns false, and drops `hook` unrun, when the hook phase of a shutdown is already over.
    pub fn on_shutdown(&self, name: &str, hook: impl FnOnce() + Send + 'static) -> bool {
        let added = self.coordinator().on_shutdown(name, Box::new(hook));
        if !added {
            self.inner
                .blackbox()
                .breadcrumb("shutdown hook registered too late to run");
        }
        added
    }

    /// Where memory stands now against the memory budget: the live usage (exact live heap with
    /// the counting allocator, else a fresh reading of the cgroup or RSS) and the soft,
    /// shutdown and hard thresholds. `None` without a memory budget.
    pub fn memory(&self) -> Option<crate::memory::MemoryStatus> {
        self.inner.budgets()?.memory_status()
    }

    /// How many panics this run has had so far, on any thread (hooks included). Under
    /// [`crate::PanicPolicy::Unwind`] the process survives them; each of the first ten has a
    /// report of its own in the report directory (`crashguard list`), and the end of the run
    /// says how many there were.
    pub fn panic_count(&self) -> u64 {
        self.coordinator().panics()
    }

    /// A handle that tells when shutdown was requested. Clone it into every worker.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.coordinator().signal()
    }

    /// Starts a graceful shutdown, as if a termination signal had arrived.
    pub fn request_shutdown(&self, reason: &str) {
        self.coordinator().request_app(reason);
    }

    /// Runs the shutdown hooks under the grace period, records the end, and exits with `code`.
    /// The replacement for `std::process::exit`, which skips destructors and flushes.
    ///
    /// If a shutdown is already under way (the application heard of it and drained), this ends
    /// the application's part of it: the process exits with `code` once the hooks are done and
    /// no [`crate::ShutdownHold`] is alive — with the root cause's code instead when a panic or
    /// a budget started the shutdown, and with the shutdown's own code (0, or `128 + n` under
    /// [`crate::CleanExit::SignalConvention`]) for [`ExitCode::Ok`]. Called from inside a
    /// shutdown hook, it ends that hook at once (by
    /// unwinding out of it, which `panic = "abort"` turns into an abort) and the process exits
    /// with `code` after the remaining hooks.
    pub fn exit(&self, code: ExitCode) -> ! {
        self.coordinator().exit(code)
    }

    /// Runs the shutdown hooks under the grace period, records the end with `code`, removes
    /// the guard, and returns `code` for `main` to return, so that `main`'s own destructors
    /// still run:
    ///
    /// ```no_run
    /// fn main() -> std::process::ExitCode {
    ///     let guard = crashguard::Config::new("my-service").install().expect("install");
    ///     // ... serve ...
    ///     guard.shutdown(crashguard::ExitCode::Ok)
    /// }
    /// ```
    ///
    /// The returned status is `code`, unless a hook called [`Guard::exit`] with another.
    /// Deadlines and second signals still end the process at once, as in any shutdown. If a
    /// shutdown is already under way (the application heard of it and drained), this ends the
    /// application's part of it: it waits for the hooks and the [`crate::ShutdownHold`]s, and
    /// returns the status as [`Guard::exit`] would exit with it.
    #[must_use = "return the status from main, or the process exits with another one"]
    pub fn shutdown(self, code: ExitCode) -> std::process::ExitCode {
        let status = self.coordinator().finish(code);
        drop(self);
        std::process::ExitCode::from(status)
    }
}
