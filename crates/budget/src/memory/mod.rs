//! The memory budget: keep a service inside a memory budget and end it deliberately, with a
//! report, before the kernel's OOM killer does; and when the kernel wins anyway, tell the next
//! run so.
//!
//! - [`BudgetAllocator`] wraps the global allocator, counts live heap bytes with per-thread
//!   batches (within `threads x 64 KiB` of exact) and refuses requests over the hard limit,
//!   recording them in the black box first.
//! - [`MemoryProbe`] reads RSS (`/proc/self/statm`), `MemTotal` and the process's cgroup
//!   (v1 and v2) through the crate's one kernel reader, [`crate::kernel`].
//! - [`MemoryBudget`] says how much memory the service may use; [`ResolvedBudget`] is that
//!   budget in bytes on this machine.
//! - [`MemorySampler`] samples on a background thread, writes the black box's heartbeat and
//!   calls back at the soft and hard thresholds.
//! - [`oom_verdict`], [`kmsg`] and [`OomScoreAdj`] deal with the OOM killer itself.

mod accounting;
mod allocator;
mod budget;
pub mod kmsg;
mod oom;
mod probe;
mod sampler;

pub use accounting::{
    AllocatorLimits, BATCH, InstalledLimits, SoftCallback, install_limits, is_installed, limits,
    live_bytes,
};
pub use allocator::BudgetAllocator;
pub use budget::{
    BudgetBasis, DEFAULT_HARD_FRACTION, DEFAULT_SOFT, Measure, MemoryBudget, ResolvedBudget,
};
pub use kmsg::{find_oom_kill_line, scan_kmsg, scan_kmsg_at};
pub use oom::{NEAR_LIMIT, OomEvidence, OomScoreAdj, Verdict, oom_verdict};
// The kernel reader's types that appear in this module's API, so users need one import.
pub use crate::kernel::{CgroupVersion, Limit, ParseError, Pressure};
pub use probe::{CgroupLocation, CgroupSample, MemoryProbe, MemorySample};
pub use sampler::{
    DEFAULT_INTERVAL, ErrorCallback, MemoryCallback, MemoryEvent, MemoryLevel, MemorySampler,
    SamplerCallbacks, SamplerStats, THREAD_NAME,
};
