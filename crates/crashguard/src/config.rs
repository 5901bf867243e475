//! [`Config`]: everything `install()` needs, with validation that turns bad values into errors
//! instead of panics or silent no-ops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crashguard_blackbox::Retention;
use crashguard_blackbox::layout::{
    DEFAULT_RING_CAPACITY, DEFAULT_STACK_CAPACITY, MAX_RING_CAPACITY, MAX_STACK_CAPACITY,
    MIN_RING_CAPACITY,
};
use crashguard_budget::memory::MemoryBudget;
use crashguard_budget::thread::ThreadBudget;
use crashguard_signals::{FatalPolicy, Signal};

use crate::Error;

/// What a panic does to the process.
///
/// | code | choose |
/// |---|---|
/// | plain threads | [`PanicPolicy::ExitProcess`]: a dead worker leaves a half-dead process |
/// | tokio, tasks that may fail alone | [`PanicPolicy::Unwind`]: tokio's isolation, every panic reported |
/// | tokio, a panic must end the service | [`PanicPolicy::ExitAfterUnwind`]: no runtime worker parked, the drain runs |
/// | rayon | [`PanicPolicy::ExitAfterUnwind`] (rayon re-raises a job's panic in the caller, which must not wait for a parked worker) or `Unwind` when the caller catches it |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanicPolicy {
    /// A panic on any thread ends the process with exit code 70 after running the shutdown
    /// hooks under [`Config::panic_grace`]. The panicking thread is parked, never unwound: code
    /// after the panic (and drops that assumed it would not run) stays stopped. The usual
    /// choice for services built on plain threads: a half-dead process whose worker died is
    /// worse than a restarted one. Not for async runtimes: the parked thread is a runtime
    /// worker, and tasks queued on it stall the drain until the grace period ends.
    #[default]
    ExitProcess,
    /// A panic ends the process with exit code 70 as with `ExitProcess`, but the panicking
    /// thread unwinds as std would instead of being parked: tokio turns the panic into the
    /// task's `JoinError` and keeps its worker, so the application's drain and the hooks run
    /// unhindered. For async runtimes and thread pools where a panic means the service is
    /// broken.
    ExitAfterUnwind,
    /// The process survives panics: the thread unwinds as std would (tokio isolates the task;
    /// a panicking `main` still exits 101). Each panic is recorded — the first ten of a run as
    /// reports of their own in the report directory, at once, so `crashguard list` shows them
    /// while the process runs — and counted ([`crate::Guard::panic_count`]); the end of the run
    /// says how many there were.
    Unwind,
}

/// The exit status after a graceful shutdown that finished in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanExit {
    /// Exit 0: the service did what was asked.
    #[default]
    Zero,
    /// Exit `128 + signal` (143 for SIGTERM), the shell convention some supervisors expect.
    SignalConvention,
}

/// Where to write the one-line summary of an abnormal end for the orchestrator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationLog {
    /// `/dev/termination-log` when it exists (Kubernetes mounts it), otherwise nothing.
    #[default]
    Auto,
    /// This file, which must exist or be creatable at install.
    Path(PathBuf),
    /// Never write one.
    Disabled,
}

/// The configuration of a crashguard installation. Build it in `main()` and call
/// [`Config::install`].
#[derive(Clone, Debug)]
#[must_use = "a Config does nothing until it is installed"]
pub struct Config {
    pub(crate) app: String,
    pub(crate) report_dir: Option<PathBuf>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) hook_timeout: Option<Duration>,
    pub(crate) panic_grace: Duration,
    pub(crate) memory_budget: Option<MemoryBudget>,
    pub(crate) memory_interval: Duration,
    pub(crate) memory_shutdown_share: f64,
    pub(crate) previous_run_to_stderr: bool,
    pub(crate) on_memory_soft: Option<crate::memory::SoftCallback>,
    pub(crate) thread_budget: Option<ThreadBudget>,
    pub(crate) fatal_policy: FatalPolicy,
    pub(crate) panic_policy: PanicPolicy,
    pub(crate) clean_exit: CleanExit,
    pub(crate) termination_signals: Vec<Signal>,
    pub(crate) breadcrumb_capacity: u32,
    pub(crate) crash_stack_bytes: u32,
    pub(crate) retention: Retention,
    pub(crate) termination_log: TerminationLog,
    pub(crate) handler_timeout: Duration,
    pub(crate) symbolize_previous: bool,
    pub(crate) oom_score_adj: Option<i32>,
}

impl Config {
    /// A configuration for the application `app` (used in file names and reports; 1–64
    /// characters of `[A-Za-z0-9._-]`).
    pub fn new(app: impl Into<String>) -> Self {
        Config {
            app: app.into(),
            report_dir: None,
            shutdown_grace: Duration::from_secs(8),
            hook_timeout: None,
            panic_grace: Duration::from_secs(2),
            memory_budget: None,
            memory_interval: Duration::from_millis(100),
            memory_shutdown_share: crate::memory::DEFAULT_SHUTDOWN_SHARE,
            previous_run_to_stderr: true,
            on_memory_soft: None,
            thread_budget: None,
            fatal_policy: FatalPolicy::default(),
            panic_policy: PanicPolicy::default(),
            clean_exit: CleanExit::default(),
            termination_signals: vec![Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP],
            breadcrumb_capacity: DEFAULT_RING_CAPACITY,
            crash_stack_bytes: DEFAULT_STACK_CAPACITY,
            retention: Retention::default(),
            termination_log: TerminationLog::default(),
            handler_timeout: Duration::from_secs(2),
            symbolize_previous: true,
            oom_score_adj: None,
        }
    }

    /// Where black boxes and reports live. Default: `$STATE_DIRECTORY/crash-reports` under
    /// systemd with `StateDirectory=` (the first directory when it lists several), else
    /// `$XDG_STATE_HOME/<app>` when `XDG_STATE_HOME` is set, else `./crash-reports` (which is
    /// `/crash-reports` for a service started by systemd without `WorkingDirectory=`, and lost
    /// with a container's filesystem: `install()` warns when the directory is on a container's
    /// overlay root; see `docs/operations.md`). Created with mode 0700; a symbolic link is
    /// refused.
    pub fn report_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.report_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// How long shutdown hooks may run in total after a termination signal (default 8 s, below
    /// docker's 10 s and Kubernetes' 30 s defaults). Must be non-zero.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The most one hook may run (default: the whole grace period).
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = Some(timeout);
        self
    }

    /// How long hooks may run after a panic under [`PanicPolicy::ExitProcess`] (default 2 s).
    pub fn panic_grace(mut self, grace: Duration) -> Self {
        self.panic_grace = grace;
        self
    }

    /// Keep the process inside a memory budget.
    pub fn memory_budget(mut self, budget: MemoryBudget) -> Self {
        self.memory_budget = Some(budget);
        self
    }

    /// Where the graceful shutdown starts, as a share of the hard threshold, when the counting
    /// allocator enforces the hard threshold ([`crate::BudgetAllocator`] with
    /// [`MemoryBudget::bytes`]); default [`crate::memory::DEFAULT_SHUTDOWN_SHARE`] (0.9), which
    /// says why. Crossing it starts a shutdown with reason `memory_budget`: the application
    /// drains, hooks run, exit 80. The allocator's refusal at the hard threshold stays the
    /// backstop for spikes. `1.0` leaves only the backstop. Without the allocator the sampler
    /// enforces the hard threshold itself and this share is not used. Must be in `(0, 1]`.
    pub fn memory_shutdown_share(mut self, share: f64) -> Self {
        self.memory_shutdown_share = share;
        self
    }

    /// Runs `callback` on the memory sampler's thread each time usage rises across the soft
    /// threshold (again only after it fell back below 90% of it): the moment to shed load,
    /// before the shutdown threshold. It gets the [`crate::memory::MemoryStatus`] of that
    /// sample; keep it short. [`crate::Guard::memory`] reads the same figures at any time.
    pub fn on_memory_soft(
        mut self,
        callback: impl Fn(crate::memory::MemoryStatus) + Send + Sync + 'static,
    ) -> Self {
        self.on_memory_soft = Some(crate::memory::SoftCallback(std::sync::Arc::new(callback)));
        self
    }

    /// Whether `install()` prints the previous run's report as one JSON line on stderr,
    /// `{"crashguard":"previous_run","report":{...}}` (default true), so that log pipelines
    /// carry it even when the application never looks at [`crate::Guard::previous_run`]. With
    /// the `tracing` feature the report is also one structured event (target `crashguard`).
    pub fn previous_run_to_stderr(mut self, on: bool) -> Self {
        self.previous_run_to_stderr = on;
        self
    }

    /// How often the memory sampler runs (default 100 ms).
    pub fn memory_sample_interval(mut self, interval: Duration) -> Self {
        self.memory_interval = interval;
        self
    }

    /// Keep the process inside a thread budget.
    pub fn thread_budget(mut self, budget: ThreadBudget) -> Self {
        self.thread_budget = Some(budget);
        self
    }

    /// What a fatal signal does after it is recorded (default [`FatalPolicy::Reraise`]).
    pub fn fatal_policy(mut self, policy: FatalPolicy) -> Self {
        self.fatal_policy = policy;
        self
    }

    /// What a panic does (default [`PanicPolicy::ExitProcess`]).
    pub fn panic_policy(mut self, policy: PanicPolicy) -> Self {
        self.panic_policy = policy;
        self
    }

    /// The exit status of a graceful shutdown that finished in time (default 0).
    pub fn clean_exit(mut self, clean: CleanExit) -> Self {
        self.clean_exit = clean;
        self
    }

    /// Which signals start a graceful shutdown (default SIGTERM, SIGINT, SIGHUP). Fatal
    /// signals are refused.
    pub fn termination_signals(mut self, signals: &[Signal]) -> Self {
        self.termination_signals = signals.to_vec();
        self
    }

    /// How many breadcrumbs the black box keeps (default 256, 64–4096).
    pub fn breadcrumb_capacity(mut self, n: u32) -> Self {
        self.breadcrumb_capacity = n;
        self
    }

    /// How many bytes of the crashing thread's stack the fatal handler copies into the black box
    /// (the report's `context.stack`, what a minidump needs for offline unwinding): default
    /// 32 KiB, 0 for none, at most 1 MiB, a multiple of 16. The black-box file grows by as much.
    /// The report's backtrace does not depend on it: the handler unwinds the live stack within
    /// the thread's known bounds too.
    pub fn crash_stack_bytes(mut self, n: u32) -> Self {
        self.crash_stack_bytes = n;
        self
    }

    /// How many report files (and bytes of them) the report directory keeps.
    pub fn retention(mut self, max_reports: usize, max_bytes: u64) -> Self {
        self.retention = Retention {
            max_reports,
            max_bytes,
        };
        self
    }

    /// Where the one-line summary of an abnormal end goes for the orchestrator.
    pub fn termination_log(mut self, log: TerminationLog) -> Self {
        self.termination_log = log;
        self
    }

    /// How long the crash handler may take before its watchdog ends the process with exit code
    /// 84 (default 2 s).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// Whether `install()` symbolizes the previous run's frames when it was the same binary
    /// (default true; costs tens of milliseconds, only when there is a previous crash).
    pub fn symbolize_previous_run(mut self, on: bool) -> Self {
        self.symbolize_previous = on;
        self
    }

    /// Write this value to `/proc/self/oom_score_adj` at install (-1000..=1000): higher makes
    /// the kernel's OOM killer prefer this process, lower spares it.
    pub fn oom_score_adj(mut self, adj: i32) -> Self {
        self.oom_score_adj = Some(adj);
        self
    }

    /// The report directory this configuration resolves to.
    pub fn resolved_report_dir(&self) -> PathBuf {
        if let Some(d) = &self.report_dir {
            return d.clone();
        }
        if let Some(dirs) = std::env::var_os("STATE_DIRECTORY") {
            use std::os::unix::ffi::OsStrExt;
            let first = dirs
                .as_bytes()
                .split(|&b| b == b':')
                .next()
                .filter(|d| d.first() == Some(&b'/'));
            if let Some(d) = first {
                return Path::new(std::ffi::OsStr::from_bytes(d)).join("crash-reports");
            }
        }
        match std::env::var_os("XDG_STATE_HOME") {
            Some(base) if !base.is_empty() => PathBuf::from(base).join(&self.app),
            _ => PathBuf::from("crash-reports"),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        crashguard_blackbox::validate_app(&self.app).map_err(|e| Error::Config(e.to_string()))?;
        let nonzero = |d: Duration, name: &str| {
            if d.is_zero() {
                Err(Error::Config(format!("{name} must be greater than zero")))
            } else {
                Ok(())
            }
        };
        nonzero(self.shutdown_grace, "shutdown grace period")?;
        nonzero(self.panic_grace, "panic grace period")?;
        nonzero(self.memory_interval, "memory sample interval")?;
        nonzero(self.handler_timeout, "handler timeout")?;
        if let Some(t) = self.hook_timeout {
            nonzero(t, "hook timeout")?;
        }
        if !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&self.breadcrumb_capacity) {
            return Err(Error::Config(format!(
                "breadcrumb capacity {} is outside {MIN_RING_CAPACITY}..={MAX_RING_CAPACITY}",
                self.breadcrumb_capacity
            )));
        }
        if self.crash_stack_bytes > MAX_STACK_CAPACITY || !self.crash_stack_bytes.is_multiple_of(16)
        {
            return Err(Error::Config(format!(
                "crash stack bytes {} must be a multiple of 16 of at most {MAX_STACK_CAPACITY}",
                self.crash_stack_bytes
            )));
        }
        if self.retention.max_reports == 0 || self.retention.max_bytes == 0 {
            return Err(Error::Config(
                "report retention must keep at least one report".into(),
            ));
        }
        if !(self.memory_shutdown_share > 0.0 && self.memory_shutdown_share <= 1.0) {
            return Err(Error::Config(format!(
                "memory shutdown share {} is outside (0, 1]",
                self.memory_shutdown_share
            )));
        }
        if let Some(adj) = self.oom_score_adj
            && !(-1000..=1000).contains(&adj)
        {
            return Err(Error::Config(format!(
                "oom_score_adj {adj} is outside -1000..=1000"
            )));
        }
        for s in &self.termination_signals {
            if s.is_fatal() || matches!(s.number(), libc::SIGKILL | libc::SIGSTOP) {
                return Err(Error::Config(format!("{s} cannot be a termination signal")));
            }
        }
        if let Some(b) = &self.memory_budget {
            b.validate().map_err(|e| Error::Config(e.to_string()))?;
        }
        if let Some(b) = &self.thread_budget {
            b.validate().map_err(|e| Error::Config(e.to_string()))?;
        }
        Ok(())
    }
}
