//! What guarded spawning is configured with: one immutable value behind one pointer, put in
//! force with [`install`] and taken back by dropping the guard it returns.
//!
//! Guarded spawns read it once per spawn (a read lock and an `Arc` clone, nothing next to the
//! cost of creating a thread), so a spawn sees one whole configuration, never half of an
//! update.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use super::budget::ThreadBudget;
use super::spawn_error::SpawnError;
use crate::Error;

/// The function [`ThreadSettings::on_exhausted`] calls.
pub type ExhaustedCallback = Arc<dyn Fn(&SpawnError) + Send + Sync>;

/// Everything guarded spawning is configured with.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ThreadSettings {
    /// The budget guarded spawns are held to; `None`: threads are counted, not limited.
    pub budget: Option<ThreadBudget>,
    /// Run first by every guarded thread (and the sampler thread), before the user's closure:
    /// the facade passes a function that gives the thread an alternate signal stack, so that a
    /// stack overflow on it can be reported.
    pub on_start: Option<fn()>,
    /// Called, under [`ThreadPolicy::Exit`](super::ThreadPolicy::Exit), with every
    /// [`SpawnError`] caused by exhaustion (the budget or the OS refusing) before it is
    /// returned. The facade turns it into a graceful shutdown with exit code 81 and a
    /// `thread_budget` report; it must not block for long, the failing spawn waits for it.
    pub on_exhausted: Option<ExhaustedCallback>,
}

impl ThreadSettings {
    /// No budget, no hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ThreadSettings::budget`].
    pub fn budget(mut self, budget: Option<ThreadBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Sets [`ThreadSettings::on_start`].
    pub fn on_start(mut self, hook: fn()) -> Self {
        self.on_start = Some(hook);
        self
    }

    /// Sets [`ThreadSettings::on_exhausted`].
    pub fn on_exhausted(mut self, callback: impl Fn(&SpawnError) + Send + Sync + 'static) -> Self {
        self.on_exhausted = Some(Arc::new(callback));
        self
    }
}

impl fmt::Debug for ThreadSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSettings")
            .field("budget", &self.budget)
            .field("on_start", &self.on_start.is_some())
            .field("on_exhausted", &self.on_exhausted.is_some())
            .finish()
    }
}

/// The settings in force; `None` until the first [`install`].
static CURRENT: RwLock<Option<Arc<ThreadSettings>>> = RwLock::new(None);

/// The settings in force now (the defaults when none were installed).
pub(crate) fn current() -> Arc<ThreadSettings> {
    CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_default()
}

/// A copy of the settings in force now, to build the next ones from (so that installing a
/// budget keeps the start hook someone else installed).
pub fn settings() -> ThreadSettings {
    ThreadSettings::clone(&current())
}

/// Puts `settings` in force for every guarded spawn until the returned guard is dropped; the
/// guard then puts back the settings that were in force before (guards dropped in reverse
/// order restore each other's).
///
/// # Errors
///
/// An invalid budget (see [`ThreadBudget::validate`]); nothing changes then.
pub fn install(settings: ThreadSettings) -> Result<InstalledThreadSettings, Error> {
    if let Some(b) = &settings.budget {
        b.validate()?;
    }
    let mut slot = CURRENT.write().unwrap_or_else(PoisonError::into_inner);
    let previous = slot.replace(Arc::new(settings));
    Ok(InstalledThreadSettings { previous })
}

/// The settings of one [`install`]; dropping it puts back the ones in force before.
#[must_use = "dropping it removes the settings again"]
pub struct InstalledThreadSettings {
    previous: Option<Arc<ThreadSettings>>,
}

impl fmt::Debug for InstalledThreadSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstalledThreadSettings")
            .finish_non_exhaustive()
    }
}

impl Drop for InstalledThreadSettings {
    fn drop(&mut self) {
        *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = self.previous.take();
    }
}
