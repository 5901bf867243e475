//! The memory budget as the application sees it: where usage stands against the thresholds
//! ([`MemoryStatus`], read live with [`crate::Guard::memory`]) and the soft-threshold callback
//! ([`crate::Config::on_memory_soft`]).
//!
//! A budget has three thresholds, lowest first:
//!
//! - **soft** (default 85% of the budget): the callback runs, so the application can shed load;
//! - **shutdown** (default 90% of the hard threshold when the allocator enforces it): a graceful
//!   shutdown with reason `memory_budget` starts — the application hears of it, drains, its
//!   hooks run, and the process exits 80;
//! - **hard**: with [`crate::BudgetAllocator`] and [`crate::MemoryBudget::bytes`], the
//!   allocator refuses the request that would cross it and the process aborts with 80 — the
//!   backstop for a spike faster than the sampler. Without the allocator the sampler enforces
//!   the hard threshold itself, and it is the shutdown threshold.

use std::sync::Arc;

pub use crashguard_budget::memory::Measure;

/// The shutdown threshold's default share of the hard threshold when the allocator enforces
/// the hard one: 0.9. The sampler looks every 100 ms (by default); the 10% between the two
/// thresholds (51 MiB of a 512 MiB budget) covers 500 MiB/s of growth for one interval plus
/// what the drain itself allocates, so that a service growing steadily is shut down gracefully
/// and only a sudden spike meets the allocator's refusal.
pub const DEFAULT_SHUTDOWN_SHARE: f64 = 0.9;

/// Where memory stands against the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStatus {
    /// What is measured: live heap with the counting allocator, else the cgroup's working set or
    /// RSS.
    pub measure: Measure,
    /// The usage now (for a callback: at the sample that crossed the threshold).
    pub used_bytes: u64,
    /// The soft threshold: [`crate::Config::on_memory_soft`] runs when usage crosses it.
    pub soft_bytes: u64,
    /// The threshold at which a graceful shutdown (exit 80) starts.
    pub shutdown_bytes: u64,
    /// The allocator's hard limit, when the counting allocator enforces one.
    pub hard_limit_bytes: Option<u64>,
}

/// The soft-threshold callback.
#[derive(Clone)]
pub(crate) struct SoftCallback(pub(crate) Arc<dyn Fn(MemoryStatus) + Send + Sync>);

impl std::fmt::Debug for SoftCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoftCallback")
    }
}
