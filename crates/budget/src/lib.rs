//! Memory and thread budgets for crashguard.
//!
//! The two silent killers of long-running services are the kernel's OOM killer and thread
//! exhaustion. This crate gives a service the means to act before either: [`memory`] holds the
//! counting global allocator and the RSS / cgroup sampler, [`thread`] the guarded spawn API, the
//! thread census and the discovery of the limits that apply. Most services use it through the
//! `crashguard` facade (`Config::memory_budget`, `Config::thread_budget`,
//! `crashguard::thread::Builder`), which wires the samplers' thresholds into a graceful shutdown
//! with exit codes 80 and 81.
//!
//! # Async-signal safety
//!
//! Two parts run where ordinary code must not: [`memory::BudgetAllocator`] runs inside every
//! allocation, and [`thread::census_raw_into`] runs inside the fatal-signal handler. Neither
//! allocates, locks or panics; the allocator keeps its per-thread count in a `const`-initialised
//! thread-local `Cell` (no lazy initialisation, no destructor) and records a refused request in
//! the black box with plain stores; the census uses only `open`, `getdents64`, `openat`, `read`
//! and `close` with stack buffers. The one documented exception is the allocator's once-per-thread
//! `pthread_key_create`/`pthread_setspecific`, which returns an exiting thread's unflushed count.
//! Everything else (probes, samplers, `SpawnError`'s diagnosis) runs on ordinary threads and
//! allocates freely.
//!
//! # Limitations
//!
//! - The allocator's live-byte count is exact to within 64 KiB per thread (per-thread batching
//!   is what keeps it within a few percent of `System`).
//! - The probes read Linux's `/proc` and cgroup files (v1 and v2). Other Unixes build, with
//!   samplers that find nothing to read and an empty census.
//! - Guarded spawns count guarded threads; the thread sampler counts every thread of the process,
//!   crashguard's own included. Size a budget for the whole process.
//! - The OOM verdict is a judgement from the last heartbeat (and the cgroup's `oom_kill` counter
//!   and kernel log when readable), not a certainty.
//!
//! # Examples
//!
//! ```
//! use crashguard_budget::memory::{MemoryBudget, MemoryProbe};
//! use crashguard_budget::thread::{Builder, ThreadBudget};
//!
//! // How much memory this process uses, and which limit applies.
//! let sample = MemoryProbe::new()?.sample()?;
//! let budget = MemoryBudget::bytes(512 << 20).resolve(&sample)?;
//! assert_eq!(budget.hard_bytes, 512 << 20);
//!
//! // A thread that reports why it could not start instead of panicking.
//! ThreadBudget::max(64).validate()?;
//! let handle = Builder::new().name("worker".into()).spawn(|| 21 * 2)?;
//! assert_eq!(handle.join().unwrap(), 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The budgets read `/proc`, cgroups and POSIX resource limits and use `pthread` keys: there is
// no Windows (or other non-Unix) implementation to fall back to, so say so once and plainly
// instead of failing deep inside platform code.
#[cfg(not(unix))]
compile_error!(
    "crashguard-budget supports Unix targets only: Linux (x86_64, aarch64) fully, other Unixes with reduced features"
);

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
mod error;
#[cfg(unix)]
pub mod kernel;
#[cfg(unix)]
pub mod memory;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
pub mod thread;

#[cfg(unix)]
pub use error::{BudgetKind, Error, IoOp, MissingLimit, Result, Share};
// The type `Error::Parse` carries, next to the error itself.
#[cfg(unix)]
pub use kernel::ParseError;
