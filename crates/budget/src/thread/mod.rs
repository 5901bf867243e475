//! The thread budget: guarded spawning, a census of threads by name, and the limits that apply.
//!
//! `std::thread::spawn` panics with "failed to spawn thread" when the OS refuses, and nothing
//! says which limit was hit or who holds the threads. This module gives a service:
//!
//! - [`Builder`] and [`spawn`], shaped like std's, which return [`SpawnError`] instead of
//!   panicking, both when the [`ThreadBudget`] installed with [`install`] is exhausted and when the
//!   OS refuses. Guarded threads are counted ([`live_threads`]) until their closure returns or
//!   unwinds, and each first runs the start hook of the installed [`ThreadSettings`] (the facade uses it
//!   to give the thread an alternate signal stack).
//! - [`SpawnError`]'s `Display`, a diagnosis: the thread counts against the budget, which limit
//!   was hit or is closest (`RLIMIT_NPROC`, cgroup `pids.max` v1/v2, `kernel.threads-max`,
//!   `kernel.pid_max`, the stack under `RLIMIT_AS`, the cgroup memory limit; see [`Limit`]), the
//!   [`Census`] of this process's threads by name, and, when a shared limit is nearly used up,
//!   the processes with the most threads, so a neighbour's leak is named.
//! - [`ThreadSampler`], a background thread comparing the real thread count (including threads
//!   other libraries start) with the budget's soft and hard limits.
//! - [`census_raw_into`], the async-signal-safe census the crash handler stores in the black box.
//!
//! Everything that reads the kernel's view goes through [`crate::kernel`] and takes its roots as
//! a parameter ([`Roots`](crate::kernel::Roots)), so tests run it against fixture trees. The module is complete on Linux; other unixes compile with an
//! empty census (see the `sys` module).

mod budget;
mod census;
mod crash_census;
mod diagnose;
mod group;
mod limits;
mod procs;
mod sampler;
mod settings;
mod spawn;
mod spawn_error;

pub use budget::{ThreadBudget, ThreadPolicy};
pub use census::{Census, CensusGroup};
pub use crash_census::{MAX_NAMED, MAX_TASKS, census_raw_from, census_raw_into};
pub use diagnose::{Diagnosis, Request};
pub use limits::{Limit, LimitKind, Rlimits, discover as discover_limits};
pub use procs::{ProcessInfo, ProcessTable};
pub use sampler::{
    SAMPLER_THREAD_NAME, ThreadEvent, ThreadLevel, ThreadSampler, ThreadSamplerBuilder,
};
pub use settings::{ExhaustedCallback, InstalledThreadSettings, ThreadSettings, install, settings};
pub use spawn::{Builder, budget, live_threads, spawn};
pub use spawn_error::SpawnError;

/// The prefix and whether a number was dropped, for a thread name (see [`Census`]).
pub use group::group_prefix;
