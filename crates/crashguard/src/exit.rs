//! Ending the process, the two ways crashguard does it.

/// Exits after a completed shutdown: stdio is flushed and `atexit` handlers run, as with
/// `std::process::exit`. Destructors of other threads' values do not run; hooks were the place
/// for that.
pub(crate) fn clean(code: u8) -> ! {
    std::process::exit(i32::from(code))
}

/// Exits at once, for deadlines and second signals: a hung hook may hold the very locks that
/// `atexit` handlers and stdio flushing would need, so none of them run.
///
/// A crash handler recording on another thread is waited for (bounded): it ends the process
/// itself, with the status its record gives. (`clean` gets the same wait from the black box's
/// exit watcher, which runs inside `exit`.)
pub(crate) fn immediate(code: u8) -> ! {
    if let Some(bb) = crashguard_blackbox::active() {
        bb.wait_for_end();
    }
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(i32::from(code)) }
}
