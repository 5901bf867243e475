//! After the fact: was a process that vanished without a word killed by the OOM killer?
//!
//! When the next start finds the black box still "running", the previous process died without
//! running any handler: SIGKILL (the OOM killer, an operator, an orchestrator) or a power loss.
//! [`oom_verdict`] weighs the last heartbeat that survived and the cgroup's `oom_kill` counter;
//! [`kmsg`](super::kmsg) can confirm the verdict from the kernel log when it is readable.
//! [`OomScoreAdj`] lets a service tell the OOM killer how to rank it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Usage at or above this share of a limit counts as "near" it.
pub const NEAR_LIMIT: f64 = 0.9;

/// The memory figures of the last heartbeat, `None` where unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastMemory {
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Live heap bytes counted by the allocator.
    pub heap_bytes: Option<u64>,
    /// The cgroup's usage.
    pub cgroup_current_bytes: Option<u64>,
    /// The cgroup's limit (`None` also when unlimited).
    pub cgroup_max_bytes: Option<u64>,
    /// The cgroup's `oom_kill` counter.
    pub oom_kill_count: Option<u64>,
    /// The memory budget's hard threshold.
    pub memory_budget_bytes: Option<u64>,
}

impl LastMemory {
    /// Builds from the raw heartbeat fields, where `u64::MAX` means unknown and `rss == 0`
    /// means not sampled.
    pub fn from_heartbeat_fields(
        rss_bytes: u64,
        heap_bytes: u64,
        cgroup_current: u64,
        cgroup_max: u64,
        oom_kill_count: u64,
        memory_budget: u64,
    ) -> Self {
        let known = |v: u64| (v != u64::MAX).then_some(v);
        LastMemory {
            rss_bytes: (rss_bytes != 0).then_some(rss_bytes).and_then(known),
            heap_bytes: known(heap_bytes),
            cgroup_current_bytes: known(cgroup_current),
            cgroup_max_bytes: known(cgroup_max),
            oom_kill_count: known(oom_kill_count),
            memory_budget_bytes: known(memory_budget),
        }
    }
}

impl From<&crashguard_blackbox::Resources> for LastMemory {
    fn from(r: &crashguard_blackbox::Resources) -> Self {
        LastMemory {
            rss_bytes: r.rss_bytes,
            heap_bytes: r.heap_bytes,
            cgroup_current_bytes: r.cgroup_memory_current,
            cgroup_max_bytes: r.cgroup_memory_max,
            oom_kill_count: r.oom_kill_count,
            memory_budget_bytes: r.memory_budget,
        }
    }
}

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
    /// The last heartbeat's usage (RSS or heap, whichever is larger) was within 10% of the
    /// memory budget.
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
pub fn oom_verdict(last: &LastMemory, current_oom_kill: Option<u64>) -> Verdict {
    if let (Some(before), Some(after)) = (last.oom_kill_count, current_oom_kill)
        && after > before
    {
        return Verdict::LikelyOomKilled {
            evidence: OomEvidence::CounterGrew { before, after },
        };
    }
    if let (Some(used), Some(limit)) = (last.cgroup_current_bytes, last.cgroup_max_bytes)
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
    if let Some(budget) = last.memory_budget_bytes
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

/// A value for `/proc/self/oom_score_adj`: -1000 (never kill) to 1000 (kill first).
///
/// Raising the value is always allowed; lowering it below the value the process started with
/// needs `CAP_SYS_RESOURCE`, and the kernel refuses with `EACCES` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomScoreAdj(i16);

impl OomScoreAdj {
    /// Validates `value`.
    pub fn new(value: i32) -> Result<Self> {
        match i16::try_from(value) {
            Ok(v) if (-1000..=1000).contains(&v) => Ok(OomScoreAdj(v)),
            _ => Err(Error::InvalidOomScoreAdj { value }),
        }
    }

    /// The value.
    pub fn get(self) -> i32 {
        i32::from(self.0)
    }

    /// Writes the value for this process.
    pub fn apply(self) -> Result<()> {
        self.apply_at(Path::new("/"))
    }

    /// Writes the value to `<root>/proc/self/oom_score_adj` (tests use a fixture root).
    pub fn apply_at(self, root: &Path) -> Result<()> {
        let path = root.join("proc/self/oom_score_adj");
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{}\n", self.0).as_bytes()))
            .map_err(|source| Error::Io {
                op: "write",
                path,
                source,
            })
    }
}
