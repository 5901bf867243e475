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

use crate::error::{Error, IoOp, Result};

use crashguard_blackbox::Resources;
pub use crashguard_blackbox::verdict::{NEAR_LIMIT, OomEvidence, Verdict};

/// Weighs the last heartbeat of a process that died without a record (the report's
/// `resources`, as the decoder read them); see
/// [`crashguard_blackbox::verdict::assess`], which this forwards to so that the CLI reading a
/// raw black box and the next run reach the same verdict.
///
/// `current_oom_kill` is the `oom_kill` counter of the same cgroup read now. It only counts as
/// evidence when it is higher than the heartbeat's: a restarted container gets a fresh cgroup
/// whose counter starts again at 0, and a lower value says nothing.
pub fn oom_verdict(last: &Resources, current_oom_kill: Option<u64>) -> Verdict {
    crashguard_blackbox::verdict::assess(last, current_oom_kill)
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
            .map_err(|source| Error::io(IoOp::Write, path, source))
    }
}
