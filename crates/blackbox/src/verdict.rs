//! Why a run vanished without a handler running: the OOM killer, or a SIGKILL / power loss?
//!
//! One implementation serves both readers: `decode` (and so the CLI, reading a raw black box)
//! gives a first verdict from the last heartbeat alone, and the next run refines it with the
//! cgroup's `oom_kill` counter read now (`crashguard-budget`'s `oom_verdict` forwards here) and
//! the kernel log.

use crate::report::Resources;

/// Usage at or above this share of a limit counts as "near" it.
pub const NEAR_LIMIT: f64 = 0.9;

/// Why a death looks like the OOM killer's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvidence {
    /// The cgroup's `oom_kill` counter is higher now than in the last heartbeat.
    CounterGrew {
        /// The counter in the last heartbeat.
        before: u64,
        /// The counter now.
        after: u64,
    },
    /// The last heartbeat's cgroup usage was within 10% of the cgroup's limit.
    NearCgroupLimit {
        /// Usage.
        used_bytes: u64,
        /// Limit.
        limit_bytes: u64,
    },
    /// The last heartbeat's usage (the heap when the counting allocator ran, else RSS) was
    /// within 10% of the memory budget.
    NearBudget {
        /// Usage.
        used_bytes: u64,
        /// Budget.
        budget_bytes: u64,
    },
}

/// What most likely killed a process that left no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Memory was short: probably the kernel's OOM killer.
    LikelyOomKilled {
        /// The strongest evidence found.
        evidence: OomEvidence,
    },
    /// Nothing points at memory: a SIGKILL from someone, or the machine lost power.
    KilledBySigkillOrPowerLoss,
}

impl Verdict {
    /// One lowercase line for reports and `crashguard explain`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::LikelyOomKilled { evidence } => match evidence {
                OomEvidence::CounterGrew { before, after } => {
                    format!(
                        "likely OOM-killed: the cgroup's oom_kill counter grew from {before} to {after}"
                    )
                }
                OomEvidence::NearCgroupLimit {
                    used_bytes,
                    limit_bytes,
                } => format!(
                    "likely OOM-killed: cgroup usage was {used_bytes} bytes of a {limit_bytes}-byte limit"
                ),
                OomEvidence::NearBudget {
                    used_bytes,
                    budget_bytes,
                } => format!(
                    "likely OOM-killed: memory use was {used_bytes} bytes of a {budget_bytes}-byte budget"
                ),
            },
            Verdict::KilledBySigkillOrPowerLoss => "killed by SIGKILL or power loss".to_owned(),
        }
    }
}

fn near(used: u64, limit: u64) -> bool {
    limit > 0 && used as f64 >= limit as f64 * NEAR_LIMIT
}

/// Weighs the last heartbeat of a process that died without a record.
///
/// `current_oom_kill` is the `oom_kill` counter of the same cgroup read now. It only counts as
/// evidence when it is higher than the heartbeat's: a restarted container gets a fresh cgroup
/// whose counter starts again at 0, and a lower value says nothing.
pub fn assess(last: &Resources, current_oom_kill: Option<u64>) -> Verdict {
    if let (Some(before), Some(after)) = (last.oom_kill_count, current_oom_kill)
        && after > before
    {
        return Verdict::LikelyOomKilled {
            evidence: OomEvidence::CounterGrew { before, after },
        };
    }
    if let (Some(used), Some(limit)) = (last.cgroup_memory_current, last.cgroup_memory_max)
        && near(used, limit)
    {
        return Verdict::LikelyOomKilled {
            evidence: OomEvidence::NearCgroupLimit {
                used_bytes: used,
                limit_bytes: limit,
            },
        };
    }
    // The budget was measured on the heap when the counting allocator was installed, else on
    // RSS; comparing the larger of the two would make any process with a large RSS baseline
    // (code, stacks, caches) look OOM-killed against a heap budget.
    let used = last.heap_bytes.or(last.rss_bytes).unwrap_or(0);
    if let Some(budget) = last.memory_budget
        && near(used, budget)
    {
        return Verdict::LikelyOomKilled {
            evidence: OomEvidence::NearBudget {
                used_bytes: used,
                budget_bytes: budget,
            },
        };
    }
    Verdict::KilledBySigkillOrPowerLoss
}

/// A one-line verdict for a `killed_without_warning` report, from the last heartbeat alone.
pub fn killed_without_warning(last: Option<&Resources>) -> String {
    match last {
        Some(r) => assess(r, None).describe(),
        None => "killed by SIGKILL or power loss (no resource heartbeat was recorded)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_the_cgroup_limit_is_oom() {
        let r = Resources {
            cgroup_memory_current: Some(95),
            cgroup_memory_max: Some(100),
            ..Resources::default()
        };
        assert!(killed_without_warning(Some(&r)).starts_with("likely OOM-killed"));
        let r = Resources {
            cgroup_memory_current: Some(50),
            cgroup_memory_max: Some(100),
            ..Resources::default()
        };
        assert!(killed_without_warning(Some(&r)).starts_with("killed by SIGKILL"));
        assert!(killed_without_warning(None).starts_with("killed by SIGKILL"));
    }
}
