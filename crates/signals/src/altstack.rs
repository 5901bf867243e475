//! Per-thread alternate signal stacks with a guard page.
//!
//! A stack overflow can only be reported if the kernel has somewhere else to run the handler:
//! the overflowed stack has no room left. Each thread therefore needs its own alternate stack
//! (`sigaltstack` is per thread and is not inherited by new threads).
//!
//! - The thread that installs the fatal handlers is prepared by [`crate::FatalHandlers::install`].
//! - Every thread created with `pthread_create` while the handlers are installed (std threads,
//!   crashguard's, C code's) is prepared before its start routine runs, by the crate's
//!   `pthread_create` interposer (Linux with glibc).
//! - A thread that exists already at install, or that a `dlopen`ed library creates through
//!   glibc directly, should call [`prepare_current`] once at its start.
//!
//! Why not rely on std's own alternate stack: std gives its threads max(`SIGSTKSZ`,
//! `AT_MINSIGSTKSZ`) bytes, 8 KiB on many machines, and a stack overflow there needs two
//! kernel signal frames (the fault, then the SIGABRT std's chained handler raises), each up to
//! `AT_MINSIGSTKSZ` (3.4 KiB with AVX-512) — which leaves no room for either handler. A thread
//! with no alternate stack at all cannot run any handler on a stack overflow: the kernel kills
//! the process with SIGSEGV and the black box reads "killed without warning".

use core::cell::Cell;
use crashguard_blackbox::assafe;

use crate::{Error, stacks, sys};

/// The smallest alternate stack crashguard keeps: 64 KiB, or more if the CPU's signal frame
/// (`AT_MINSIGSTKSZ`) or libc's `SIGSTKSZ` asks for more. An existing alternate stack at least
/// this large is left alone.
pub fn required_size() -> usize {
    let page = sys::page_size();
    let want = sys::min_signal_stack().max(64 * 1024);
    want.div_ceil(page) * page
}

/// Our mapping on this thread, freed when the thread exits.
struct Owned {
    /// Base of the mapping (the guard page), or 0.
    map: Cell<usize>,
    /// Length of the mapping.
    len: Cell<usize>,
    /// Start of the usable stack, as given to `sigaltstack`.
    stack: Cell<usize>,
    /// Kernel tid whose stack bounds were registered, or 0.
    tid: Cell<u32>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let map = self.map.replace(0);
        if map != 0 {
            // Only disable the alternate stack if it is still ours: std's own per-thread handler
            // may already have disabled it (or something else may have replaced it).
            if let Ok((base, _, enabled, on_it)) = sys::altstack_query()
                && enabled
                && !on_it
                && base == self.stack.get()
            {
                sys::altstack_disable();
            }
            sys::unmap(map, self.len.get());
            #[cfg(test)]
            FREED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.stack.get());
        }
        let tid = self.tid.replace(0);
        if tid != 0 {
            stacks::unregister(tid);
        }
    }
}

std::thread_local! {
    // Const-initialised; its destructor is registered the first time `prepare_current` touches
    // it, which is never on the signal-handler path.
    static OWNED: Owned = const {
        Owned { map: Cell::new(0), len: Cell::new(0), stack: Cell::new(0), tid: Cell::new(0) }
    };
}

/// Gives the calling thread an alternate signal stack of at least [`required_size`] bytes with
/// a `PROT_NONE` guard page below it, and records the thread's stack bounds so that a stack
/// overflow on it is recognised. Idempotent: a thread that already has a large enough
/// alternate stack keeps it. A smaller one (such as the ~12 KiB std gives its threads) is
/// replaced; std frees its own mapping when the thread ends.
///
/// The mapping is released when the thread exits (through a thread-local destructor), except
/// on the main thread, whose alternate stack must survive until the very end of the process.
///
/// Call this at the start of threads that crashguard did not spawn, e.g. from C code through
/// your own FFI shim, or at the top of a `std::thread::spawn` closure.
///
/// # Errors
///
/// [`Error::AltStack`] when the memory cannot be mapped or installed, [`Error::ThreadExiting`]
/// when called from a thread-local destructor.
///
/// # Examples
///
/// ```
/// std::thread::spawn(|| {
///     crashguard_signals::altstack::prepare_current().expect("alternate stack");
///     // ... the thread's work ...
/// })
/// .join()
/// .unwrap();
/// ```
pub fn prepare_current() -> Result<(), Error> {
    prepare(0)
}

/// The top of the installing thread's alternate stack backed with memory at install: where
/// the kernel writes its signal frame (up to `AT_MINSIGSTKSZ`, 3.4 KiB with AVX-512) and the
/// handler runs until it switches to the recording stack.
const INSTALLER_PREFAULTED: usize = 8 * 1024;

/// [`prepare_current`] for the thread that installs the fatal handlers (usually the main
/// thread): when it maps a new alternate stack, the top [`INSTALLER_PREFAULTED`] bytes are
/// backed at once, so that a crash on this thread takes no page fault while the kernel
/// delivers the signal (two faults, 2–3 µs, measured in `docs/performance/signals.md`). Other
/// threads' alternate stacks are backed when first used: 8 KiB per thread is not spent ahead.
pub(crate) fn prepare_installing_thread() -> Result<(), Error> {
    prepare(INSTALLER_PREFAULTED)
}

/// [`prepare_current`], backing the top `prefault` bytes of a newly mapped alternate stack.
fn prepare(prefault: usize) -> Result<(), Error> {
    let tid = assafe::gettid();
    let is_main = tid == sys::getpid();
    let required = required_size();
    let (base, size, enabled, on_it) = sys::altstack_query().map_err(Error::AltStack)?;

    let registered = stacks::register_current();
    if !is_main && registered {
        // Make sure the table entry is dropped with the thread even if the stack is kept.
        OWNED
            .try_with(|o| o.tid.set(tid))
            .map_err(|_| Error::ThreadExiting)?;
    }

    if on_it || (enabled && size >= required) {
        // Either we are running on the alternate stack right now (it cannot be changed) or it
        // is already large enough.
        let _ = base;
        return Ok(());
    }

    if !is_main {
        // Touch the thread-local before mapping anything, so a thread that is exiting fails
        // cleanly instead of leaking the mapping.
        OWNED.try_with(|_| ()).map_err(|_| Error::ThreadExiting)?;
    }

    let guard = sys::page_size();
    let map = sys::map_guarded(required, guard).map_err(Error::AltStack)?;
    let stack = map + guard;
    if let Err(e) = sys::altstack_set(stack, required) {
        sys::unmap(map, required + guard);
        return Err(Error::AltStack(e));
    }
    // A fresh mapping of `required` bytes that no signal is running on yet.
    sys::prefault(stack + required, prefault.min(required));
    if is_main {
        // Deliberately kept for the life of the process, like std does for the main thread.
        return Ok(());
    }
    let previous = OWNED.try_with(|o| {
        let old = (o.map.replace(map), o.len.replace(required + guard));
        o.stack.set(stack);
        old
    });
    match previous {
        Ok((old_map, old_len)) if old_map != 0 => sys::unmap(old_map, old_len),
        Ok(_) => {}
        Err(_) => {
            // The thread-local vanished between the check above and now: undo.
            sys::altstack_disable();
            sys::unmap(map, required + guard);
            return Err(Error::ThreadExiting);
        }
    }
    Ok(())
}

/// Alternate stacks freed by thread-local destructors; lets the tests see that thread exit
/// frees them.
#[cfg(test)]
pub(crate) static FREED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// The calling thread's alternate stack as `(base, size)`, if one is enabled.
pub fn current() -> Option<(usize, usize)> {
    match sys::altstack_query() {
        Ok((base, size, true, _)) => Some((base, size)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_a_thread_and_frees_on_exit() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (base, size) = std::thread::spawn(|| {
            prepare_current().expect("prepare");
            let (base, size) = current().expect("installed");
            assert!(size >= required_size());
            // Idempotent: a second call keeps the same stack.
            prepare_current().expect("prepare again");
            assert_eq!(current(), Some((base, size)));
            (base, size)
        })
        .join()
        .expect("thread");
        assert!(size >= 64 * 1024);
        let freed = FREED.lock().unwrap_or_else(|e| e.into_inner());
        assert!(freed.contains(&base), "mapping not freed at thread exit");
    }

    #[test]
    fn replaces_a_small_alternate_stack() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            let small = 16 * 1024;
            let map = sys::map_guarded(small, 4096).expect("map");
            sys::altstack_set(map + 4096, small).expect("set small");
            prepare_current().expect("prepare");
            let (base, size) = current().expect("installed");
            assert_ne!(base, map + 4096);
            assert!(size >= required_size());
            sys::unmap(map, small + 4096);
        })
        .join()
        .expect("thread");
    }
}
