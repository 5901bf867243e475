//! The registry of shutdown hooks, and running one hook on a thread of its own.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crashguard_blackbox::ExitCode;
use crossbeam_channel::Receiver;

pub(crate) type Hook = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Set on threads that run shutdown hooks and on the coordinator: a panic there is the
    /// hook's failure (or a crashguard bug), recorded by the coordinator, not a reason to start
    /// another shutdown; and `Guard::exit` there must end the hook, not park it.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a hook runner (or the coordinator).
pub(crate) fn mark_hook_thread() {
    IN_HOOK.with(|c| c.set(true));
}

/// Whether the current thread runs a shutdown hook (or is the coordinator).
pub(crate) fn in_hook_thread() -> bool {
    IN_HOOK.with(Cell::get)
}

/// The registry's state: open (hooks wait to be run) or closed (the hook phase is over).
#[derive(Default)]
struct State {
    pending: Vec<(String, Hook)>,
    closed: bool,
}

/// Hooks in registration order. The shutdown takes them in batches until none are left, so a
/// hook registered while earlier hooks run still runs; once the hook phase is over the registry
/// closes and later registrations are refused.
#[derive(Default)]
pub(crate) struct Registry {
    state: Mutex<State>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Adds a hook; returns false (and drops the hook) when the hook phase is already over.
    pub(crate) fn add(&self, name: &str, hook: Hook) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return false;
        }
        state.pending.push((name.to_owned(), hook));
        true
    }

    /// Takes the hooks registered so far; an empty batch closes the registry.
    pub(crate) fn take_batch(&self) -> Vec<(String, Hook)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut state.pending);
        if batch.is_empty() {
            state.closed = true;
        }
        batch
    }

    /// Closes the registry, dropping hooks that never ran.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        state.pending.clear();
    }
}

/// How a hook ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookEnd {
    /// It returned.
    Returned,
    /// It panicked.
    Panicked,
    /// It called [`crate::Guard::exit`]: the hook is over, and the process should end with
    /// this code once the remaining hooks ran.
    Exit(ExitCode),
}

/// The unwind payload [`crate::Guard::exit`] uses to leave a hook. It is raised with
/// `resume_unwind`, which skips the panic hook, so it is not recorded as a panic.
#[derive(Debug)]
pub(crate) struct ExitFromHook(pub(crate) ExitCode);

fn run(hook: Hook) -> HookEnd {
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(()) => HookEnd::Returned,
        Err(payload) => match payload.downcast_ref::<ExitFromHook>() {
            Some(ExitFromHook(code)) => HookEnd::Exit(*code),
            None => HookEnd::Panicked,
        },
    }
}

/// Runs `hook` on a new thread; the receiver yields how it ended. If the thread cannot be
/// started, the hook runs here instead (without its own timeout: there is no other way to run
/// it).
pub(crate) fn spawn(name: &str, hook: Hook) -> Receiver<HookEnd> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let thread_name: String = format!("cg-hook-{name}").chars().take(15).collect();
    let slot = Arc::new(Mutex::new(Some(hook)));
    let for_thread = Arc::clone(&slot);
    let on_thread = tx.clone();
    let body = move || {
        mark_hook_thread();
        let hook = for_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = hook {
            let _ = on_thread.send(run(h));
        }
    };
    if std::thread::Builder::new()
        .name(thread_name)
        .spawn(body)
        .is_err()
    {
        let hook = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = hook {
            let _ = tx.send(run(h));
        }
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_order_and_close_when_empty() {
        let r = Registry::default();
        assert!(r.add("a", Box::new(|| {})));
        assert!(r.add("b", Box::new(|| {})));
        let names: Vec<String> = r.take_batch().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(r.add("late", Box::new(|| {})), "still open between batches");
        assert_eq!(r.take_batch().len(), 1);
        assert!(r.take_batch().is_empty());
        assert!(
            !r.add("too late", Box::new(|| {})),
            "closed after an empty batch"
        );
    }

    #[test]
    fn reports_return_panic_and_exit() {
        let ok = spawn("ok", Box::new(|| {}));
        assert_eq!(ok.recv().ok(), Some(HookEnd::Returned));
        let exit = spawn(
            "exit",
            Box::new(|| std::panic::resume_unwind(Box::new(ExitFromHook(ExitCode::Panic)))),
        );
        assert_eq!(exit.recv().ok(), Some(HookEnd::Exit(ExitCode::Panic)));
        let panicked = spawn(
            "panics",
            Box::new(|| std::panic::resume_unwind(Box::new("boom"))),
        );
        assert_eq!(panicked.recv().ok(), Some(HookEnd::Panicked));
    }
}
