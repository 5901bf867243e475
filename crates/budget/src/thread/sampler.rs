//! The thread sampler: watches the process's real thread count against the budget.
//!
//! Guarded spawns only see the threads they create. Libraries start threads of their own (a
//! runtime's workers, an HTTP client's resolver pool), so a background thread named
//! `crashguard-thr` reads `Threads:` from `/proc/self/status` every interval, writes it into the
//! black box's heartbeat, and calls back when the count crosses the soft or hard limit.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::budget::ThreadBudget;
use super::spawn::start_hook;
use crate::kernel::parse_status_threads;
use crate::{BudgetKind, Error, Result};

/// The sampler thread's name.
pub const SAMPLER_THREAD_NAME: &str = "crashguard-thr";

/// Which threshold a [`ThreadEvent`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadLevel {
    /// The count reached the soft limit.
    Soft,
    /// The count went beyond the hard limit.
    Hard,
}

/// A threshold crossing seen by the sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadEvent {
    /// Which threshold.
    pub level: ThreadLevel,
    /// Threads in the process at the sample.
    pub threads: u64,
    /// The threshold crossed (the soft or the hard limit, in threads).
    pub limit: u64,
    /// The budget's maximum.
    pub budget: u64,
}

type Callback = Box<dyn Fn(&ThreadEvent) + Send + 'static>;
type SampleCallback = Box<dyn Fn(u64) + Send + 'static>;

/// Configures and starts a [`ThreadSampler`].
#[must_use = "a ThreadSamplerBuilder does nothing until start is called"]
pub struct ThreadSamplerBuilder {
    budget: ThreadBudget,
    interval: Duration,
    proc_root: PathBuf,
    on_soft: Option<Callback>,
    on_hard: Option<Callback>,
    on_sample: Option<SampleCallback>,
}

impl std::fmt::Debug for ThreadSamplerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadSamplerBuilder")
            .field("budget", &self.budget)
            .field("interval", &self.interval)
            .field("proc_root", &self.proc_root)
            .finish_non_exhaustive()
    }
}

impl ThreadSamplerBuilder {
    /// How often to sample (default 100 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Where to read `self/status` from (default `/proc`); tests point it at a fixture tree.
    pub fn proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = root.into();
        self
    }

    /// Called once each time the count rises to the soft limit (again after it fell below).
    /// A breadcrumb is written to the black box as well.
    pub fn on_soft(mut self, f: impl Fn(&ThreadEvent) + Send + 'static) -> Self {
        self.on_soft = Some(Box::new(f));
        self
    }

    /// Called once each time the count rises beyond the hard limit. The facade passes a callback
    /// that, under [`ThreadPolicy::Exit`](super::ThreadPolicy::Exit), starts a graceful
    /// shutdown with exit code 81.
    pub fn on_hard(mut self, f: impl Fn(&ThreadEvent) + Send + 'static) -> Self {
        self.on_hard = Some(Box::new(f));
        self
    }

    /// Called with every sample's thread count, after any threshold callbacks (for metrics,
    /// and for tests that must know a value was seen).
    pub fn on_sample(mut self, f: impl Fn(u64) + Send + 'static) -> Self {
        self.on_sample = Some(Box::new(f));
        self
    }

    /// Validates the budget and the interval and starts the sampler thread. The first sample is
    /// taken at once.
    pub fn start(self) -> Result<ThreadSampler> {
        self.budget.validate()?;
        if self.interval.is_zero() {
            return Err(Error::ZeroInterval {
                budget: BudgetKind::Threads,
            });
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let hook = start_hook();
        let handle = std::thread::Builder::new()
            .name(SAMPLER_THREAD_NAME.to_string())
            .spawn(move || {
                if let Some(hook) = hook {
                    hook();
                }
                let mut state = Watch::new(self.budget);
                let status = self.proc_root.join("self/status");
                let mut buf = Vec::with_capacity(2048);
                loop {
                    buf.clear();
                    let read = File::open(&status).and_then(|mut f| f.read_to_end(&mut buf));
                    // Lossy: a process name that is not UTF-8 must not hide the count.
                    let threads = read
                        .ok()
                        .and_then(|_| parse_status_threads(&String::from_utf8_lossy(&buf)).ok());
                    if let Some(threads) = threads {
                        record(threads, &self.budget);
                        for event in state.observe(threads) {
                            let callback = match event.level {
                                ThreadLevel::Soft => &self.on_soft,
                                ThreadLevel::Hard => &self.on_hard,
                            };
                            breadcrumb(&event);
                            if let Some(cb) = callback {
                                cb(&event);
                            }
                        }
                        if let Some(cb) = &self.on_sample {
                            cb(threads);
                        }
                    }
                    match stopped.recv_timeout(self.interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|source| Error::Spawn {
                sampler: BudgetKind::Threads,
                source,
            })?;
        Ok(ThreadSampler {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

/// A running sampler; stops when [`ThreadSampler::stop`] is called or it is dropped.
#[derive(Debug)]
pub struct ThreadSampler {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl ThreadSampler {
    /// A builder for a sampler of `budget`.
    pub fn builder(budget: ThreadBudget) -> ThreadSamplerBuilder {
        ThreadSamplerBuilder {
            budget,
            interval: Duration::from_millis(100),
            proc_root: PathBuf::from("/proc"),
            on_soft: None,
            on_hard: None,
            on_sample: None,
        }
    }

    /// Stops the sampler and waits for its thread (at most one callback's duration).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            // A panicking callback ended the sampler already; there is nothing left to stop.
            let _ = handle.join();
        }
    }
}

impl Drop for ThreadSampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Edge detection: each threshold fires once per crossing and re-arms when the count falls back.
#[derive(Debug)]
struct Watch {
    soft: u64,
    hard: u64,
    budget: u64,
    above_soft: bool,
    above_hard: bool,
}

impl Watch {
    fn new(budget: ThreadBudget) -> Watch {
        let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Watch {
            soft: to_u64(budget.soft_limit()),
            hard: to_u64(budget.hard_limit()),
            budget: to_u64(budget.max_threads()),
            above_soft: false,
            above_hard: false,
        }
    }

    fn observe(&mut self, threads: u64) -> Vec<ThreadEvent> {
        let mut events = Vec::new();
        let soft_now = threads >= self.soft;
        if soft_now && !self.above_soft {
            events.push(self.event(ThreadLevel::Soft, threads, self.soft));
        }
        self.above_soft = soft_now;
        let hard_now = threads > self.hard;
        if hard_now && !self.above_hard {
            events.push(self.event(ThreadLevel::Hard, threads, self.hard));
        }
        self.above_hard = hard_now;
        events
    }

    fn event(&self, level: ThreadLevel, threads: u64, limit: u64) -> ThreadEvent {
        ThreadEvent {
            level,
            threads,
            limit,
            budget: self.budget,
        }
    }
}

fn record(threads: u64, budget: &ThreadBudget) {
    if let Some(bb) = crashguard_blackbox::active() {
        let max = u64::try_from(budget.max_threads()).unwrap_or(u64::MAX);
        // Only the thread fields are this sampler's; the memory sampler owns the rest. `valid`
        // must be set for the reader to trust the section at all, and a heartbeat that nobody
        // else stamps gets this sample's time.
        bb.write_heartbeat(|h| {
            h.threads = threads;
            h.thread_budget = max;
            h.valid = 1;
            if h.sampled_at_ns == 0 {
                h.sampled_at_ns = crashguard_blackbox::assafe::now_realtime_ns();
            }
        });
    }
}

fn breadcrumb(event: &ThreadEvent) {
    if let Some(bb) = crashguard_blackbox::active() {
        let which = match event.level {
            ThreadLevel::Soft => "soft",
            ThreadLevel::Hard => "hard",
        };
        bb.breadcrumb(&format!(
            "threads {} crossed the {which} limit {} of budget {}",
            event.threads, event.limit, event.budget
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_crossing() {
        let mut w = Watch::new(ThreadBudget::max(10));
        assert!(w.observe(5).is_empty());
        let e = w.observe(8);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].level, e[0].limit), (ThreadLevel::Soft, 8));
        assert!(w.observe(9).is_empty());
        assert!(w.observe(10).is_empty());
        let e = w.observe(11);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].level, ThreadLevel::Hard);
        assert!(w.observe(12).is_empty());
        assert!(w.observe(3).is_empty());
        let e = w.observe(20);
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(matches!(
            ThreadSampler::builder(ThreadBudget::max(0)).start(),
            Err(Error::ZeroThreads)
        ));
        assert!(matches!(
            ThreadSampler::builder(ThreadBudget::max(1))
                .interval(Duration::ZERO)
                .start(),
            Err(Error::ZeroInterval {
                budget: BudgetKind::Threads
            })
        ));
    }
}
