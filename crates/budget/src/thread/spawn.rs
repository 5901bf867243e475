//! Guarded spawning: `std::thread::Builder` that returns `Err` instead of panicking, counts its
//! threads against the budget, and prepares each new thread for crash handling.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use super::budget::{ThreadBudget, ThreadPolicy};
use super::diagnose::{Diagnosis, Request};
use super::limits::Rlimits;
use super::settings::{ThreadSettings, current};
use super::spawn_error::SpawnError;
use crate::kernel::{self, Roots};
use crate::sys::thread as sys;

/// std's default stack for spawned threads when neither the builder nor `RUST_MIN_STACK` says
/// otherwise; used only to size the diagnosis's `RLIMIT_AS` check.
const STD_DEFAULT_STACK: u64 = 2 << 20;

/// The stack size std gives a thread without an explicit size.
fn default_stack() -> u64 {
    std::env::var("RUST_MIN_STACK")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(STD_DEFAULT_STACK)
}

/// Guarded threads whose closure has not yet returned.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The budget guarded spawns are held to.
pub fn budget() -> Option<ThreadBudget> {
    current().budget
}

/// Guarded threads alive now: spawned through [`Builder`] or [`spawn`] and whose closure has
/// not yet returned or unwound.
pub fn live_threads() -> usize {
    LIVE.load(Ordering::Relaxed)
}

pub(crate) fn start_hook() -> Option<fn()> {
    current().on_start
}

/// Holds one unit of [`LIVE`]; moved into the thread so that it is released when the closure
/// returns or unwinds, or when std drops the closure because the thread could not be created.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Release);
    }
}

/// Spawns a guarded thread with default settings; see [`Builder::spawn`].
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// A thread factory with the shape of `std::thread::Builder` whose `spawn` returns
/// `Err(SpawnError)` where std would panic or give a bare `io::Error`.
///
/// The handle is std's own [`JoinHandle`], so `join`, `thread()` and `is_finished` behave as
/// usual; a guarded thread stops counting against the budget as soon as its closure returns or
/// unwinds, before `join`.
#[derive(Debug, Default)]
#[must_use = "a Builder does nothing until spawn is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with std's defaults.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread (shown in the census, in crash reports and by the OS, truncated to 15
    /// bytes there). Crash and panic reports of this thread carry the whole name (up to 64
    /// bytes) when a black box is armed while it starts.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Sets the stack size in bytes.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns the thread, or explains why not.
    ///
    /// Fails with [`SpawnError::BudgetExhausted`] when the budget installed with [`install`](super::install) has no
    /// room, with [`SpawnError::OsRefused`] when the OS refuses, and with
    /// [`SpawnError::InvalidName`] for a name with a NUL byte. Under [`ThreadPolicy::Exit`] the
    /// exhaustion callback sees the error first.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if let Some(name) = &self.name
            && name.contains('\0')
        {
            return Err(SpawnError::InvalidName { name: name.clone() });
        }
        let settings = current();
        let slot = match reserve(settings.budget) {
            Ok(slot) => slot,
            Err(live) => {
                let err =
                    SpawnError::BudgetExhausted(Box::new(self.diagnose(&settings, live, false)));
                return Err(exhausted(&settings, err));
            }
        };
        let mut std_builder = std::thread::Builder::new();
        if let Some(name) = &self.name {
            std_builder = std_builder.name(name.clone());
        }
        if let Some(size) = self.stack_size {
            std_builder = std_builder.stack_size(size);
        }
        let on_start = settings.on_start;
        let full_name = self.name.clone();
        let spawned = std_builder.spawn(move || {
            let _slot = slot;
            // The kernel keeps 15 bytes of the name; the black box keeps it whole for the
            // report of a crash or panic on this thread, until the closure ends.
            let _name = full_name
                .as_deref()
                .map(crashguard_blackbox::thread_names::register_current);
            if let Some(hook) = on_start {
                hook();
            }
            f()
        });
        match spawned {
            Ok(handle) => Ok(handle),
            Err(source) => {
                let refusal = sys::is_resource_refusal(&source);
                let diagnosis = Box::new(self.diagnose(&settings, live_threads(), true));
                let err = SpawnError::OsRefused { source, diagnosis };
                Err(if refusal {
                    exhausted(&settings, err)
                } else {
                    err
                })
            }
        }
    }

    fn diagnose(&self, settings: &ThreadSettings, live: usize, os_refused: bool) -> Diagnosis {
        let stack_bytes = self
            .stack_size
            .map(|s| u64::try_from(s).unwrap_or(u64::MAX))
            .unwrap_or_else(default_stack);
        Diagnosis::gather(
            &Roots::system(),
            &Rlimits::current(),
            Request {
                name: self.name.clone(),
                stack_bytes,
                live_guarded: live,
                budget: settings.budget,
                os_refused,
            },
        )
    }
}

/// Takes one unit of the budget, or returns the live count that left no room.
fn reserve(budget: Option<ThreadBudget>) -> Result<Slot, usize> {
    let Some(budget) = budget else {
        LIVE.fetch_add(1, Ordering::AcqRel);
        return Ok(Slot);
    };
    let hard = budget.hard_limit();
    let before = LIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < hard).then_some(n + 1)
    })?;
    let slot = Slot;
    if budget.counts_process_threads() {
        let threads =
            kernel::read_lenient(Path::new("/proc/self/status"), kernel::parse_status_threads)
                .unwrap_or(0);
        if threads >= u64::try_from(hard).unwrap_or(u64::MAX) {
            drop(slot);
            return Err(live_threads());
        }
    }
    // Exactly one spawn takes the count to the soft limit; it leaves the breadcrumb.
    if before + 1 == budget.soft_limit()
        && let Some(bb) = crashguard_blackbox::active()
    {
        bb.breadcrumb("thread budget: guarded threads reached the soft limit");
    }
    Ok(slot)
}

/// Hands an exhaustion error to the callback under [`ThreadPolicy::Exit`], then returns it.
fn exhausted(settings: &ThreadSettings, err: SpawnError) -> SpawnError {
    if let Some(bb) = crashguard_blackbox::active() {
        bb.breadcrumb(if err.is_budget_exhausted() {
            "thread budget exhausted: guarded spawn refused"
        } else {
            "os refused a guarded thread"
        });
    }
    let exit = settings
        .budget
        .is_some_and(|b| b.policy_kind() == ThreadPolicy::Exit);
    if let (true, Some(callback)) = (exit, &settings.on_exhausted) {
        callback(&err);
    }
    err
}
