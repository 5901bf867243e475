//! Make services die deliberately and leave evidence.
//!
//! Link crashguard into a service and install it first thing in `main()`. From then on:
//!
//! - **Fatal signals** (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, stack overflows) are
//!   recorded by async-signal-safe handlers into a preallocated, file-backed black box, and the
//!   process then dies of the same signal (or exits `128 + n`, by [`FatalPolicy`]).
//! - **Termination signals** (SIGTERM, SIGINT, SIGHUP) start a graceful shutdown: the
//!   application is told who asked ([`ShutdownSignal`]), hooks run in order under a deadline
//!   ([`Guard::on_shutdown`]), and the process exits with a documented [`ExitCode`]. An
//!   application that listens ([`ShutdownSignal::wait_async`] and friends) owns its drain: the
//!   process ends when the application ends it, or at the deadline; [`ShutdownSignal::hold`]
//!   keeps the exit back for work in flight.
//! - **Budgets** end the process deliberately before the kernel does: a [`MemoryBudget`]
//!   (exact with [`BudgetAllocator`], sampled from RSS and the cgroup otherwise) and a
//!   [`ThreadBudget`] with a spawn API that returns errors instead of panicking.
//! - **Panics** are recorded and, by [`PanicPolicy`], end the process with code 70.
//! - **After a restart**, [`Guard::previous_run`] says how the last run ended — including
//!   "killed without warning" with the last resource heartbeat when the kernel's OOM killer or a
//!   `kill -9` left no chance to write anything. The `crashguard` CLI reads the same reports.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//!
//! fn main() -> Result<(), crashguard::Error> {
//!     let guard = crashguard::Config::new("my-service")
//!         .report_dir("/var/lib/my-service/crash")
//!         .shutdown_grace(Duration::from_secs(8))
//!         .memory_budget(crashguard::MemoryBudget::bytes(512 << 20))
//!         .thread_budget(crashguard::ThreadBudget::max(256))
//!         .install()?;
//!     if let Some(report) = guard.previous_run() {
//!         eprintln!("previous run: {report}");
//!     }
//!     guard.on_shutdown("flush producer", || { /* producer.flush() */ });
//!     let shutdown = guard.shutdown_signal();
//!     // The exit waits for the worker's work in flight (within the grace period).
//!     let hold = shutdown.hold();
//!     let worker = crashguard::thread::Builder::new()
//!         .name("worker".into())
//!         .spawn(move || {
//!             while !shutdown.is_requested() {
//!                 crashguard::breadcrumb("handled a request");
//!                 # break;
//!             }
//!             drop(hold);
//!         })
//!         .expect("within the thread budget");
//!     let _ = worker.join();
//!     guard.exit(crashguard::ExitCode::Ok)
//! }
//! ```
//!
//! # Async-signal safety
//!
//! The code that runs inside signal handlers and inside the global allocator lives in the
//! `crashguard-blackbox` and `crashguard-signals` crates and in `BudgetAllocator`; it never
//! allocates, locks, panics or touches lazily initialised thread-locals, and calls only the
//! libc functions listed in `docs/async-signal-safety.md`. [`breadcrumb`] is safe to call from
//! anywhere, including signal handlers. Everything else in this crate — `install()`, the
//! shutdown coordinator, hooks, the panic hook — runs in ordinary threads.
//!
//! # Limitations
//!
//! - Linux (x86_64, aarch64) is the target. Other Unixes build with reduced features: no module
//!   table for symbolization, no cgroup or `/proc` sampling, no thread census.
//! - One guard per process at a time; a second `install()` while one is alive is an error.
//! - Every thread created with `pthread_create` while the guard is installed (std threads and
//!   threads of statically linked C code included) gets a guarded alternate stack through
//!   crashguard's `pthread_create` interposer (Linux with glibc). Threads created before
//!   install, or by a `dlopen`ed library calling glibc directly, call [`thread::prepare_current`].
//! - `SIGKILL` cannot be caught. Its traces are the black box left in "running" state and the
//!   last heartbeat, which the next run reports as `killed_without_warning`.
//! - Dropping the [`Guard`] records a clean exit: drop it only when the service is done.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml) and labels the feature-gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Every part of crashguard sits on POSIX signals and Unix files: there is no Windows (or other
// non-Unix) implementation to fall back to, so say so once and plainly instead of failing deep
// inside platform code.
#[cfg(not(unix))]
compile_error!(
    "crashguard supports Unix targets only: Linux (x86_64, aarch64) fully, other Unixes with reduced features"
);

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
mod budgets;
#[cfg(unix)]
mod census;
#[cfg(unix)]
mod config;
#[cfg(unix)]
mod error;
#[cfg(unix)]
mod events;
#[cfg(unix)]
mod exit;
#[cfg(unix)]
mod guard;
#[cfg(unix)]
mod install;
#[cfg(unix)]
pub mod memory;
#[cfg(unix)]
mod panic;
#[cfg(unix)]
mod previous;
#[cfg(unix)]
mod shutdown;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
mod systemd;
#[cfg(unix)]
mod termlog;
#[cfg(unix)]
pub mod thread;
#[cfg(feature = "tracing")]
#[cfg(unix)]
mod tracing_layer;

/// Breadcrumbs from `tracing` events, and crashguard's own lifecycle as `tracing` events
/// (feature `tracing`).
///
/// [`BreadcrumbLayer`](crate::tracing::BreadcrumbLayer) implements `tracing_subscriber::Layer` from **tracing-subscriber 0.3**.
///
/// crashguard emits its lifecycle under the target `crashguard`: installed; the previous run's
/// report once at install (WARN when it was abnormal; fields `outcome`, `exit_code`, `pid`,
/// `signature`, `stored_at`, and `report`, the whole report as JSON); an install warning
/// (report directory on an overlay root); shutdown requested (`reason`); each hook done
/// (`hook`, `status`, `duration_ms`); the application's drain done; the run ended (`outcome`,
/// `exit_code`, `detail`); the memory soft threshold crossed; a panic recorded. Install your
/// subscriber before crashguard to see the install-time events.
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
#[cfg(unix)]
pub mod tracing {
    pub use crate::tracing_layer::BreadcrumbLayer;
}

#[cfg(unix)]
pub use config::{CleanExit, Config, PanicPolicy, TerminationLog};
#[cfg(unix)]
pub use crashguard_blackbox::{AppCode, ExitCode, Outcome, Report, ReservedExitCode, explain};
#[cfg(unix)]
pub use crashguard_budget::memory::{BudgetAllocator, MemoryBudget};
#[cfg(unix)]
pub use crashguard_budget::thread::{ThreadBudget, ThreadPolicy};
#[cfg(unix)]
pub use crashguard_signals::{FatalPolicy, Signal};
#[cfg(unix)]
pub use error::Error;
#[cfg(unix)]
pub use guard::Guard;
#[cfg(unix)]
pub use previous::{PreviousRun, PreviousRunError};
#[cfg(unix)]
pub use shutdown::{
    AppRequest, MemoryOverrun, PanicDetails, ShutdownHold, ShutdownReason, ShutdownRequest,
    ShutdownSignal, ThreadOverrun, WaitAsync,
};

/// The report types, for code that inspects [`Report`] in detail.
#[cfg(unix)]
pub mod report {
    pub use crashguard_blackbox::{
        AllocationInfo, BreadcrumbInfo, CensusGroup, CrashContext, Frame, HookInfo, HookStatus,
        ModuleInfo, PanicInfo, Resources, ShutdownInfo, ShutdownTrigger, SignalInfo, StackMemory,
        ThreadCensus, ThreadInfo, Timestamp,
    };
}

/// The lower crates' errors that [`Error`]'s variants carry, so that code matching on them
/// needs no dependency of its own on those crates.
#[cfg(unix)]
pub mod errors {
    pub use crate::error::IoStep;
    pub use crashguard_blackbox::BoxOption;
    pub use crashguard_blackbox::Error as BlackBoxError;
    pub use crashguard_budget::Error as BudgetError;
    pub use crashguard_budget::thread::SpawnError;
    pub use crashguard_budget::{BudgetKind, IoOp, MissingLimit, Share};
    pub use crashguard_signals::Error as SignalsError;
    pub use crashguard_signals::{Installation, InvalidSetting};
}

/// Records a breadcrumb: a short message kept in the black box's ring, so the report of a crash
/// shows what the service was doing. Lock-free, allocation-free, and safe to call from any
/// thread and from signal handlers; a no-op when crashguard is not installed. Messages longer
/// than about 100 bytes are truncated.
///
/// Async-signal-safe.
#[cfg(unix)]
pub fn breadcrumb(message: &str) {
    if let Some(bb) = crashguard_blackbox::active() {
        bb.breadcrumb(message);
    }
}

/// Installs crashguard with `config`; the same as [`Config::install`].
///
/// Errors (never panics): invalid configuration (zero grace period, bad app name, a budget out
/// of range), a report directory that cannot be created or written or is a symbolic link,
/// crashguard already installed in this process, or signal handlers that cannot be installed.
#[cfg(unix)]
pub fn install(config: Config) -> Result<Guard, Error> {
    config.install()
}

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The crate's own README (the page crates.io shows), compiled as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct CrateReadmeDoctests;
