//! `MemorySampler`: the background thread that samples memory, writes the black box's
//! heartbeat and calls back when usage crosses the budget's thresholds.
//!
//! Cost: one sample reads `statm` and, in a cgroup, five to seven small cgroup files plus one
//! limit file per ancestor, all into one reused buffer. [`SamplerStats::cpu_time`] is the
//! thread's own CPU clock, so the cost can be read off a running service; the figures measured
//! here are in `docs/performance/memory.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crashguard_blackbox::{active, assafe};

use super::budget::{Measure, MemoryBudget, ResolvedBudget};
use super::probe::{MemoryProbe, MemorySample};
use crate::error::{BudgetKind, Error, Result};
use crate::sys::memory as sys;

/// The sampling interval used when the configuration does not name one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// The name of the sampler thread (visible in `ps -L`, `top -H` and thread censuses).
pub const THREAD_NAME: &str = "crashguard-mem";

/// Usage must fall this far below the soft threshold before the soft callback can fire again.
const SOFT_REARM: f64 = 0.9;

/// Which threshold was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLevel {
    /// The soft threshold: shed load.
    Soft,
    /// The hard threshold: shut down with the memory exit code.
    Hard,
}

/// What the heartbeats record as the memory budget.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    /// Nothing: a sampler that only records.
    Nothing,
    /// The resolved hard threshold, which this sampler enforces.
    HardThreshold,
    /// A hard limit enforced elsewhere (the allocator), above this sampler's thresholds.
    Fixed(u64),
}

/// A threshold crossing, passed to the callbacks.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEvent {
    /// Which threshold.
    pub level: MemoryLevel,
    /// What was measured.
    pub measure: Measure,
    /// The measured bytes.
    pub used_bytes: u64,
    /// The threshold they crossed.
    pub threshold_bytes: u64,
    /// The budget in force.
    pub budget: ResolvedBudget,
    /// The whole sample.
    pub sample: MemorySample,
}

/// A threshold callback. It runs on the sampler thread; a panic in it is caught and the
/// sampler carries on.
pub type MemoryCallback = Box<dyn Fn(MemoryEvent) + Send>;

/// Called with a failed sample's error.
pub type ErrorCallback = Box<dyn Fn(&Error) + Send>;

/// What the sampler calls.
#[derive(Default)]
pub struct SamplerCallbacks {
    /// Called once each time usage rises through the soft threshold (again only after it fell
    /// 10% below it).
    pub on_soft: Option<MemoryCallback>,
    /// Called once, the first time usage reaches the hard threshold.
    pub on_hard: Option<MemoryCallback>,
    /// Called when a sample fails (a file became unreadable or garbled), at most once per run
    /// of consecutive failures.
    pub on_error: Option<ErrorCallback>,
}

impl std::fmt::Debug for SamplerCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerCallbacks")
            .field("on_soft", &self.on_soft.is_some())
            .field("on_hard", &self.on_hard.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

/// Counters of a running sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples taken successfully.
    pub samples: u64,
    /// Samples that failed.
    pub errors: u64,
    /// CPU time the sampler thread has used.
    pub cpu_time: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    samples: AtomicU64,
    errors: AtomicU64,
    cpu_ns: AtomicU64,
}

/// The running sampler; [`stop`](Self::stop) (or drop) ends and joins the thread.
#[derive(Debug)]
pub struct MemorySampler {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    budget: ResolvedBudget,
}

impl MemorySampler {
    /// Resolves `budget` against a first sample and starts the sampler thread.
    ///
    /// Errors: an invalid budget, a zero interval, a first sample that fails, or a thread that
    /// cannot be spawned. The budget is resolved again on every sample, so a cgroup limit that
    /// changes while the service runs is followed.
    pub fn spawn(
        probe: MemoryProbe,
        budget: MemoryBudget,
        interval: Duration,
        callbacks: SamplerCallbacks,
    ) -> Result<Self> {
        Self::start(probe, budget, interval, callbacks, Recorded::HardThreshold)
    }

    /// Like [`MemorySampler::spawn`], for a sampler that acts below a hard limit someone else
    /// enforces (the counting allocator's refusal at `hard_limit`): `budget`'s hard threshold is
    /// where the sampler calls `on_hard` (the facade's graceful shutdown), and the heartbeats
    /// record `hard_limit` as the budget, so the next run compares usage with the real limit.
    pub fn spawn_below(
        probe: MemoryProbe,
        budget: MemoryBudget,
        interval: Duration,
        callbacks: SamplerCallbacks,
        hard_limit: u64,
    ) -> Result<Self> {
        Self::start(
            probe,
            budget,
            interval,
            callbacks,
            Recorded::Fixed(hard_limit),
        )
    }

    /// Starts a sampler that only writes heartbeats: no budget, no thresholds, and the
    /// heartbeat's `memory_budget` left unknown. The facade runs one when no memory budget is
    /// configured, so that the next run can still tell an OOM kill from a plain SIGKILL.
    pub fn heartbeat_only(probe: MemoryProbe, interval: Duration) -> Result<Self> {
        // Physical memory as the nominal budget keeps `resolve` meaningful; with no callbacks
        // and nothing recorded it never acts and is never recorded.
        let callbacks = SamplerCallbacks::default();
        Self::start(
            probe,
            MemoryBudget::ram_fraction(1.0),
            interval,
            callbacks,
            Recorded::Nothing,
        )
    }

    fn start(
        mut probe: MemoryProbe,
        budget: MemoryBudget,
        interval: Duration,
        callbacks: SamplerCallbacks,
        recorded: Recorded,
    ) -> Result<Self> {
        if interval.is_zero() {
            return Err(Error::ZeroInterval {
                budget: BudgetKind::Memory,
            });
        }
        let first = probe.sample()?;
        let resolved = budget.resolve(&first)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let mut worker = Worker {
            probe,
            budget,
            resolved,
            callbacks,
            shared: Arc::clone(&shared),
            crossings: Crossings::default(),
            failing: false,
            recorded,
        };
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                worker.observe(Ok(first));
                // A message or a dropped sender both mean stop; only a timeout means sample.
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    let s = worker.probe.sample();
                    worker.observe(s);
                }
            })
            .map_err(|source| Error::Spawn {
                sampler: BudgetKind::Memory,
                source,
            })?;
        Ok(MemorySampler {
            stop: Some(tx),
            handle: Some(handle),
            shared,
            budget: resolved,
        })
    }

    /// The budget as resolved when the sampler started.
    pub fn budget(&self) -> ResolvedBudget {
        self.budget
    }

    /// The sampler's counters so far.
    pub fn stats(&self) -> SamplerStats {
        SamplerStats {
            samples: self.shared.samples.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
            cpu_time: Duration::from_nanos(self.shared.cpu_ns.load(Ordering::Relaxed)),
        }
    }

    /// Stops the thread and waits for it; returns the final counters.
    pub fn stop(mut self) -> SamplerStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            // A panic inside the worker was already reported by the panic hook; the sampler
            // is gone either way.
            let _ = h.join();
        }
    }
}

impl Drop for MemorySampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    probe: MemoryProbe,
    budget: MemoryBudget,
    resolved: ResolvedBudget,
    callbacks: SamplerCallbacks,
    shared: Arc<Shared>,
    crossings: Crossings,
    failing: bool,
    /// Whether the budget is real: written into heartbeats. Off for heartbeat-only samplers.
    recorded: Recorded,
}

/// Which callbacks a new reading fires: the soft one once per rise through the threshold
/// (re-armed after falling 10% below it), the hard one once ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Crossings {
    soft_armed: bool,
    hard_fired: bool,
}

impl Default for Crossings {
    fn default() -> Self {
        Crossings {
            soft_armed: true,
            hard_fired: false,
        }
    }
}

impl Crossings {
    /// Returns `(fire_soft, fire_hard)` for a reading of `used` bytes.
    fn update(&mut self, used: u64, soft: u64, hard: u64) -> (bool, bool) {
        let mut fire_soft = false;
        if self.soft_armed && used >= soft {
            self.soft_armed = false;
            fire_soft = true;
        } else if !self.soft_armed && (used as f64) < soft as f64 * SOFT_REARM {
            self.soft_armed = true;
        }
        let fire_hard = !self.hard_fired && used >= hard;
        self.hard_fired |= fire_hard;
        (fire_soft, fire_hard)
    }
}

impl Worker {
    fn observe(&mut self, sample: Result<MemorySample>) {
        match sample {
            Ok(s) => {
                self.failing = false;
                self.shared.samples.fetch_add(1, Ordering::Relaxed);
                // A limit that became unreadable keeps the last good thresholds.
                if let Ok(r) = self.budget.resolve(&s) {
                    self.resolved = r;
                }
                let budget = match self.recorded {
                    Recorded::Nothing => None,
                    Recorded::HardThreshold => Some(self.resolved.hard_bytes),
                    Recorded::Fixed(bytes) => Some(bytes),
                };
                write_heartbeat(&s, budget);
                self.check(s);
            }
            Err(e) => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    if let Some(bb) = active() {
                        bb.breadcrumb("memory sampler: a sample failed");
                    }
                    if let Some(cb) = &self.callbacks.on_error {
                        let _ = catch_unwind(AssertUnwindSafe(|| cb(&e)));
                    }
                }
            }
        }
        if let Some(ns) = sys::thread_cpu_time_ns() {
            self.shared.cpu_ns.store(ns, Ordering::Relaxed);
        }
    }

    fn check(&mut self, sample: MemorySample) {
        let Some((measure, used)) = self.resolved.usage(&sample) else {
            return;
        };
        let r = self.resolved;
        let event = |level, threshold_bytes| MemoryEvent {
            level,
            measure,
            used_bytes: used,
            threshold_bytes,
            budget: r,
            sample: sample.clone(),
        };
        let (fire_soft, fire_hard) = self.crossings.update(used, r.soft_bytes, r.hard_bytes);
        if fire_soft {
            if let Some(bb) = active() {
                bb.breadcrumb("memory budget: soft threshold crossed");
            }
            if let Some(cb) = &self.callbacks.on_soft {
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    cb(event(MemoryLevel::Soft, r.soft_bytes))
                }));
            }
        }
        if fire_hard {
            if let Some(bb) = active() {
                bb.breadcrumb("memory budget: hard threshold crossed");
            }
            if let Some(cb) = &self.callbacks.on_hard {
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    cb(event(MemoryLevel::Hard, r.hard_bytes))
                }));
            }
        }
    }
}

/// Writes `sample` into the armed black box's heartbeat. The thread count belongs to the
/// thread budget's sampler and is left alone.
fn write_heartbeat(sample: &MemorySample, budget: Option<u64>) {
    let Some(bb) = active() else {
        return;
    };
    let cgroup = sample.cgroup.as_ref();
    let rss = sample.rss_bytes.unwrap_or(0);
    let heap = sample.heap_bytes.unwrap_or(u64::MAX);
    let current = cgroup.and_then(|c| c.current_bytes).unwrap_or(u64::MAX);
    let max = cgroup.and_then(|c| c.limit.value()).unwrap_or(u64::MAX);
    let oom_kill = cgroup.and_then(|c| c.oom_kill).unwrap_or(u64::MAX);
    let threads = sample.threads;
    // The thread sampler writes the same section; when it is inside, try again shortly
    // rather than lose this sample.
    for _ in 0..3 {
        let written = bb.write_heartbeat(|h| {
            h.sampled_at_ns = assafe::now_realtime_ns();
            h.rss_bytes = rss;
            h.heap_bytes = heap;
            h.cgroup_memory_current = current;
            h.cgroup_memory_max = max;
            h.oom_kill_count = oom_kill;
            // The thread sampler writes the same figure more often when a thread budget runs;
            // both read it from the same file.
            if let Some(t) = threads {
                h.threads = t;
            }
            h.memory_budget = budget.unwrap_or(u64::MAX);
            h.valid = 1;
        });
        if written {
            return;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::Crossings;

    #[test]
    fn soft_fires_once_per_rise_and_hard_once_ever() {
        let mut c = Crossings::default();
        let (soft, hard) = (850, 1000);
        let readings = [100, 860, 900, 840, 800, 760, 870, 1000, 1200, 500, 1100];
        let fired: Vec<(bool, bool)> = readings.iter().map(|&u| c.update(u, soft, hard)).collect();
        let expect = [
            (false, false), // below both
            (true, false),  // rises through soft
            (false, false), // still above: no repeat
            (false, false), // just below soft, not 10% below: not re-armed
            (false, false), // 800 >= 765: still not re-armed
            (false, false), // 760 < 765: re-armed
            (true, false),  // rises through soft again
            (false, true),  // reaches hard
            (false, false), // hard never repeats
            (false, false), // re-arms soft
            (true, false),  // soft again, hard still not repeated
        ];
        assert_eq!(fired, expect);
    }

    #[test]
    fn a_jump_past_both_fires_both() {
        let mut c = Crossings::default();
        assert_eq!(c.update(2000, 850, 1000), (true, true));
    }
}
