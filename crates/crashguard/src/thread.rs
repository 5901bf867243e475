//! Threads that cannot take the service down by failing to start: `Builder` and `spawn` return
//! `Err(SpawnError)` where std panics, count against the [`crate::ThreadBudget`], and get an
//! alternate signal stack so a stack overflow on them is reported.
//!
//! Threads created elsewhere (std, tokio, C libraries) can call [`prepare_current`] first thing
//! to get the same alternate stack.

pub use crashguard_budget::thread::{Builder, Census, CensusGroup, SpawnError, spawn};

/// Gives the calling thread a guarded alternate signal stack, so that a stack overflow on it is
/// recorded. Threads from [`Builder`] and [`spawn`] already have one; call this first thing in
/// threads created by other means (`std::thread`, thread pools, FFI).
pub fn prepare_current() -> Result<(), crate::Error> {
    crashguard_signals::altstack::prepare_current().map_err(crate::Error::Signals)
}

/// The start hook the budget crate calls in every guarded thread.
pub(crate) fn on_thread_start() {
    // A thread without an alternate stack still works; only a stack overflow on it would go
    // unreported, and there is nobody to tell at this point.
    let _ = crashguard_signals::altstack::prepare_current();
}
