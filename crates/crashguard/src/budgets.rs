//! Wiring of the memory and thread budgets (crate `crashguard-budget`) into the guard: the
//! samplers, the allocator's hard limit, the hard thresholds that start a shutdown, the census
//! in crash records, and the verdict on a run that vanished.

use std::sync::{Mutex, OnceLock};

use crashguard_blackbox::{Outcome, Report};
use crashguard_budget::memory::{
    self, MemoryBudget, MemoryProbe, MemorySampler, ResolvedBudget, SamplerCallbacks,
};
use crashguard_budget::thread::{self, InstalledThreadSettings, ThreadPolicy, ThreadSampler};

use crate::memory::{MemoryStatus, SoftCallback};
use crate::shutdown::{MemoryOverrun, ShutdownHandle, ShutdownReason, ThreadOverrun};
use crate::{Config, Error};

/// The running samplers.
#[derive(Debug)]
pub(crate) struct Budgets {
    memory: Option<MemorySampler>,
    /// The counting allocator's limits, while this holds them.
    allocator_limits: Option<memory::InstalledLimits>,
    /// The thread budget (and the exhaustion callback) guarded spawns are held to.
    thread_settings: Option<InstalledThreadSettings>,
    threads: Option<ThreadSampler>,
    /// The memory thresholds in force, when a memory budget is configured.
    thresholds: Option<Thresholds>,
    /// A probe for live readings of sampled measures, made on first use.
    probe: OnceLock<Mutex<Option<MemoryProbe>>>,
}

/// A memory budget's thresholds, as the facade reports them.
#[derive(Clone, Copy, Debug)]
struct Thresholds {
    resolved: ResolvedBudget,
    hard_limit: Option<u64>,
}

impl Thresholds {
    fn status(&self, used_bytes: u64) -> MemoryStatus {
        MemoryStatus {
            measure: self.resolved.measure,
            used_bytes,
            soft_bytes: self.resolved.soft_bytes,
            shutdown_bytes: self.resolved.hard_bytes,
            hard_limit_bytes: self.hard_limit,
        }
    }
}

/// The budget the sampler enforces, and the hard limit the allocator enforces (if it does).
///
/// With the counting allocator and a byte budget, the allocator refuses at the budget's hard
/// threshold; the sampler then starts the graceful shutdown earlier, at `share` of it, so that
/// steady growth ends in a drain and exit 80 rather than in the allocator's abort.
fn split(budget: MemoryBudget, share: f64) -> (MemoryBudget, Option<u64>) {
    match budget.fixed_bytes() {
        Some(n) if memory::is_installed() && share < 1.0 => {
            let hard = budget.hard_share();
            let shutdown = hard * share;
            let sampled = budget
                .hard(shutdown)
                .soft(budget.soft_share().min(shutdown));
            (sampled, Some((n as f64 * hard) as u64))
        }
        Some(n) if memory::is_installed() => {
            (budget, Some((n as f64 * budget.hard_share()) as u64))
        }
        _ => (budget, None),
    }
}

impl Budgets {
    pub(crate) fn start(config: &Config, shutdown: ShutdownHandle) -> Result<Self, Error> {
        let mut budgets = Budgets {
            memory: None,
            allocator_limits: None,
            thread_settings: None,
            threads: None,
            thresholds: None,
            probe: OnceLock::new(),
        };
        // The memory sampler always runs: its heartbeats are what lets the next run tell an
        // OOM kill from a plain SIGKILL. Without a configured budget it only records.
        let probe = MemoryProbe::new().map_err(Error::Budget)?;
        let split = config
            .memory_budget
            .map(|b| split(b, config.memory_shutdown_share));
        let sampler = match split {
            None => MemorySampler::heartbeat_only(probe, config.memory_interval),
            Some((budget, hard_limit)) => {
                let cb = callbacks(&shutdown, config.on_memory_soft.clone(), hard_limit);
                match hard_limit {
                    Some(hard) => {
                        MemorySampler::spawn_below(probe, budget, config.memory_interval, cb, hard)
                    }
                    None => MemorySampler::spawn(probe, budget, config.memory_interval, cb),
                }
            }
        }
        .map_err(Error::Budget)?;
        let resolved = sampler.budget();
        if let Some((_, hard_limit)) = split {
            // With the counting allocator installed, a byte budget's hard threshold is also
            // enforced on every allocation, so a burst between two samples cannot run past it.
            let hard_limit = hard_limit.filter(|_| resolved.measure == memory::Measure::Heap);
            if let Some(hard) = hard_limit {
                budgets.allocator_limits = Some(memory::install_limits(
                    memory::AllocatorLimits::NONE
                        .hard(hard)
                        .soft(resolved.soft_bytes),
                ));
            }
            budgets.thresholds = Some(Thresholds {
                resolved,
                hard_limit,
            });
        }
        budgets.memory = Some(sampler);
        if let Some(budget) = config.thread_budget {
            let mut settings = thread::settings().budget(Some(budget));
            let mut builder = ThreadSampler::builder(budget);
            if budget.policy_kind() == ThreadPolicy::Exit {
                let exhausted = shutdown.clone();
                settings = settings.on_exhausted(move |err| {
                    // The summary names the limit hit and the largest thread group; the
                    // report's census has the rest.
                    exhausted.request(ShutdownReason::ThreadBudget(
                        ThreadOverrun::from_spawn_error(err),
                    ));
                });
                let hard = shutdown.clone();
                builder = builder.on_hard(move |e| {
                    hard.request(ShutdownReason::ThreadBudget(ThreadOverrun::Count {
                        threads: e.threads,
                        limit: e.limit,
                    }));
                });
            }
            budgets.thread_settings = Some(thread::install(settings).map_err(Error::ThreadBudget)?);
            match builder.start() {
                Ok(s) => budgets.threads = Some(s),
                // Dropping `budgets` stops what was started.
                Err(e) => return Err(Error::ThreadBudget(e)),
            }
        }
        Ok(budgets)
    }

    /// Where memory stands now against the budget; `None` without a memory budget, or when
    /// the usage cannot be read.
    pub(crate) fn memory_status(&self) -> Option<MemoryStatus> {
        let t = self.thresholds?;
        if t.resolved.measure == memory::Measure::Heap {
            return Some(t.status(memory::live_bytes()));
        }
        let probe = self
            .probe
            .get_or_init(|| Mutex::new(MemoryProbe::new().ok()));
        let mut probe = probe.lock().unwrap_or_else(|e| e.into_inner());
        let sample = probe.as_mut()?.sample().ok()?;
        let (_, used) = t.resolved.usage(&sample)?;
        Some(t.status(used))
    }
}

impl Drop for Budgets {
    /// Stops the samplers and takes the limits and callbacks back, in the reverse order of
    /// `start`.
    fn drop(&mut self) {
        if let Some(t) = self.threads.take() {
            t.stop();
            drop(self.thread_settings.take());
        }
        if let Some(m) = self.memory.take() {
            m.stop();
            drop(self.allocator_limits.take());
        }
    }
}

/// The memory sampler's callbacks: a breadcrumb and the application's callback at the soft
/// threshold, a graceful shutdown with the memory code at the sampler's hard threshold (the
/// shutdown threshold).
fn callbacks(
    shutdown: &ShutdownHandle,
    on_soft: Option<SoftCallback>,
    hard_limit: Option<u64>,
) -> SamplerCallbacks {
    let hard = shutdown.clone();
    SamplerCallbacks {
        on_soft: Some(Box::new(move |e: memory::MemoryEvent| {
            crate::breadcrumb(&format!(
                "memory soft threshold: {} {} of {} bytes",
                e.measure.name(),
                e.used_bytes,
                e.threshold_bytes
            ));
            let status = Thresholds {
                resolved: e.budget,
                hard_limit,
            }
            .status(e.used_bytes);
            crate::events::memory_soft(&status);
            if let Some(cb) = &on_soft {
                // The sampler catches a panic in a callback and carries on.
                (cb.0)(status);
            }
        })),
        on_hard: Some(Box::new(move |e: memory::MemoryEvent| {
            hard.request(ShutdownReason::MemoryBudget(MemoryOverrun::new(
                e.measure,
                e.used_bytes,
                e.threshold_bytes,
            )));
        })),
        on_error: None,
    }
}

/// Refines a `killed_without_warning` report with what only a live process can see: the
/// cgroup's `oom_kill` counter now, and the kernel log's "Killed process" line.
pub(crate) fn refine_verdict(report: &mut Report) {
    debug_assert_eq!(report.outcome, Outcome::KilledWithoutWarning);
    let last = report.resources.clone().unwrap_or_default();
    let current = MemoryProbe::new()
        .ok()
        .and_then(|mut p| p.sample().ok())
        .and_then(|s| s.cgroup.and_then(|c| c.oom_kill));
    let mut verdict = memory::oom_verdict(&last, current).describe();
    if let Some(line) = memory::scan_kmsg(report.pid) {
        verdict = format!("OOM-killed: the kernel log says \"{}\"", line.trim());
    }
    report.verdict = Some(verdict);
}

pub(crate) fn apply_oom_score_adj(adj: i32) -> Result<(), Error> {
    memory::OomScoreAdj::new(adj)
        .and_then(memory::OomScoreAdj::apply)
        .map_err(Error::Budget)
}
