//! Wiring of the memory and thread budgets (crate `crashguard-budget`) into the guard: the
//! samplers, the allocator's hard limit, the hard thresholds that start a shutdown, the census
//! in crash records, and the verdict on a run that vanished.

use std::sync::Mutex;

use crashguard_blackbox::layout::End;
use crashguard_blackbox::{BlackBox, Outcome, Report};
use crashguard_budget::memory::{self, MemoryProbe, MemorySampler, SamplerCallbacks};
use crashguard_budget::thread::{self, SpawnError, ThreadPolicy, ThreadSampler};

use crate::shutdown::{ShutdownHandle, ShutdownReason};
use crate::{Config, Error};

/// The shutdown handle the thread-exhaustion callback (a plain `fn`) reaches.
static EXHAUSTED_HANDLE: Mutex<Option<ShutdownHandle>> = Mutex::new(None);

/// The running samplers.
#[derive(Debug)]
pub(crate) struct Budgets {
    memory: Option<MemorySampler>,
    threads: Option<ThreadSampler>,
}

impl Budgets {
    pub(crate) fn start(
        config: &Config,
        _bb: &'static BlackBox,
        shutdown: ShutdownHandle,
    ) -> Result<Self, Error> {
        let mut budgets = Budgets {
            memory: None,
            threads: None,
        };
        // The memory sampler always runs: its heartbeats are what lets the next run tell an
        // OOM kill from a plain SIGKILL. Without a configured budget it only records.
        let probe = MemoryProbe::new().map_err(Error::Budget)?;
        let sampler = match config.memory_budget {
            None => MemorySampler::heartbeat_only(probe, config.memory_interval),
            Some(budget) => {
                MemorySampler::spawn(probe, budget, config.memory_interval, callbacks(&shutdown))
            }
        }
        .map_err(Error::Budget)?;
        let resolved = sampler.budget();
        // With the counting allocator installed, a byte budget's hard threshold is also enforced
        // on every allocation, so a burst between two samples cannot run past it.
        if config.memory_budget.is_some()
            && resolved.measure == memory::Measure::Heap
            && memory::is_installed()
        {
            memory::set_hard_limit(Some(resolved.hard_bytes));
            memory::set_soft_limit(Some(resolved.soft_bytes));
        }
        budgets.memory = Some(sampler);
        if let Some(budget) = config.thread_budget {
            thread::set_budget(Some(budget)).map_err(Error::ThreadBudget)?;
            let mut builder = ThreadSampler::builder(budget);
            if budget.policy_kind() == ThreadPolicy::Exit {
                *EXHAUSTED_HANDLE.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(shutdown.clone());
                thread::set_exhausted_callback(on_thread_exhausted);
                let hard = shutdown.clone();
                builder = builder.on_hard(move |e| {
                    hard.request(ShutdownReason::ThreadBudget(format!(
                        "{} threads crossed the hard limit of {}",
                        e.threads, e.limit
                    )));
                });
            }
            match builder.start() {
                Ok(s) => budgets.threads = Some(s),
                Err(e) => {
                    budgets.stop();
                    return Err(Error::ThreadBudget(e));
                }
            }
        }
        Ok(budgets)
    }

    pub(crate) fn stop(self) {
        if let Some(m) = self.memory {
            m.stop();
            memory::set_hard_limit(None);
            memory::set_soft_limit(None);
        }
        if let Some(t) = self.threads {
            t.stop();
            let _ = thread::set_budget(None);
            thread::clear_exhausted_callback();
            *EXHAUSTED_HANDLE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The memory sampler's callbacks: a breadcrumb at the soft threshold, a shutdown with the
/// memory code at the hard one.
fn callbacks(shutdown: &ShutdownHandle) -> SamplerCallbacks {
    let hard = shutdown.clone();
    SamplerCallbacks {
        on_soft: Some(Box::new(|e: memory::MemoryEvent| {
            crate::breadcrumb(&format!(
                "memory soft threshold: {} {} of {} bytes",
                e.measure.name(),
                e.used_bytes,
                e.threshold_bytes
            ));
        })),
        on_hard: Some(Box::new(move |e: memory::MemoryEvent| {
            hard.request(ShutdownReason::MemoryBudget(format!(
                "{} {} bytes crossed the hard threshold of {} bytes",
                e.measure.name(),
                e.used_bytes,
                e.threshold_bytes
            )));
        })),
        on_error: None,
    }
}

fn on_thread_exhausted(err: &SpawnError) {
    let handle = EXHAUSTED_HANDLE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(h) = handle {
        // The summary names the limit hit and the largest thread group; the report's census
        // has the rest.
        h.request(ShutdownReason::ThreadBudget(err.summary()));
    }
}

/// Adds the thread census to an end record. Registered with the fatal handlers.
///
/// Async-signal-safe.
pub(crate) fn enrich_end(end: &mut End) {
    thread::census_raw_into(
        &mut end.census,
        &mut end.census_count,
        &mut end.census_total,
    );
}

/// Refines a `killed_without_warning` report with what only a live process can see: the
/// cgroup's `oom_kill` counter now, and the kernel log's "Killed process" line.
pub(crate) fn refine_verdict(report: &mut Report) {
    debug_assert_eq!(report.outcome, Outcome::KilledWithoutWarning);
    let last = report
        .resources
        .as_ref()
        .map(memory::LastMemory::from)
        .unwrap_or_default();
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
