//! The registry of shutdown hooks, and running one hook on a thread of its own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use crossbeam_channel::Receiver;

type Hook = Box<dyn FnOnce() + Send>;

/// Hooks in registration order; taken once, by the shutdown.
#[derive(Default)]
pub(crate) struct Registry {
    hooks: Mutex<Option<Vec<(String, Hook)>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Adds a hook. A hook registered after the shutdown took the list never runs: the
    /// shutdown is already past the point where it could be ordered.
    pub(crate) fn add(&self, name: &str, hook: Hook) {
        let mut guard = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get_or_insert_with(Vec::new)
            .push((name.to_owned(), hook));
    }

    /// Takes every hook, leaving the registry closed.
    pub(crate) fn take(&self) -> Vec<(String, Hook)> {
        let mut guard = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        let hooks = guard.take().unwrap_or_default();
        // An empty, non-None list marks the registry as taken for `add`.
        *guard = Some(Vec::new());
        hooks
    }
}

/// Runs `hook` on a new thread; the receiver yields `true` when it returned, `false` when it
/// panicked. If the thread cannot be started, the hook runs here instead.
pub(crate) fn spawn(name: &str, hook: Hook) -> Receiver<bool> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let thread_name: String = format!("cg-hook-{name}").chars().take(15).collect();
    let slot = std::sync::Arc::new(Mutex::new(Some(hook)));
    let for_thread = std::sync::Arc::clone(&slot);
    let run = move || {
        crate::panic::mark_hook_thread();
        let hook = for_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let ok = hook.is_some_and(|h| catch_unwind(AssertUnwindSafe(h)).is_ok());
        let _ = tx.send(ok);
    };
    if std::thread::Builder::new()
        .name(thread_name)
        .spawn(run)
        .is_err()
    {
        let hook = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let ok = hook.is_some_and(|h| catch_unwind(AssertUnwindSafe(h)).is_ok());
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(ok);
        return rx;
    }
    rx
}
