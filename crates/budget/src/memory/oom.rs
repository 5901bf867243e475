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

pub use crashguard_blackbox::verdict::{NEAR_LIMIT, OomEvidence, Verdict};

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

impl LastMemory {
    /// The same figures in the report's form.
    fn to_resources(self) -> crashguard_blackbox::Resources {
        crashguard_blackbox::Resources {
            rss_bytes: self.rss_bytes,
            heap_bytes: self.heap_bytes,
            cgroup_memory_current: self.cgroup_current_bytes,
            cgroup_memory_max: self.cgroup_max_bytes,
            oom_kill_count: self.oom_kill_count,
            memory_budget: self.memory_budget_bytes,
            ..crashguard_blackbox::Resources::default()
        }
    }
}

/// Weighs the last heartbeat of a process that died without a record; see
/// [`crashguard_blackbox::verdict::assess`], which this forwards to so that the CLI reading a
/// raw black box and the next run reach the same verdict.
///
/// `current_oom_kill` is the `oom_kill` counter of the same cgroup read now. It only counts as
/// evidence when it is higher than the heartbeat's: a restarted container gets a fresh cgroup
/// whose counter starts again at 0, and a lower value says nothing.
pub fn oom_verdict(last: &LastMemory, current_oom_kill: Option<u64>) -> Verdict {
    crashguard_blackbox::verdict::assess(&last.to_resources(), current_oom_kill)
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
