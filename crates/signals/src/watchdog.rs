//! The watchdog that bounds the fatal handler's run time.
//!
//! A thread started at install (`crashguard-wd`) blocks on a disarmed one-shot alarm (a
//! `timerfd` on Linux). The handler's first action arms it with one system call, which wakes
//! nobody: if the process ends in time, the watchdog thread is never scheduled. If the alarm
//! goes off, the handler is stuck (a deadlocked unwinder, a chained handler that never
//! returns, a thread that cannot be scheduled) and the watchdog ends the process with the
//! handler-failure code. It needs nothing from the crashing thread, and unlike `alarm(2)` it
//! takes no signal away from the application.

use core::sync::atomic::{AtomicBool, Ordering};
use crashguard_blackbox::assafe;
use std::io;
use std::thread::JoinHandle;

use crate::state::Installed;
use crate::sys;

/// Set by `Drop` before it fires the alarm to stop the thread. (The alarm's handle, budget and
/// owner are part of the installed state.)
static QUIT: AtomicBool = AtomicBool::new(false);

/// The running watchdog thread; stopping it is `Drop`.
#[derive(Debug)]
pub(crate) struct Watchdog {
    handle: i32,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog thread `crashguard-wd`; the handler arms it through
    /// [`Watchdog::handle`] (kept in the installed state).
    pub(crate) fn start() -> io::Result<Watchdog> {
        let (alarm, handle) = sys::Alarm::new()?;
        QUIT.store(false, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name("crashguard-wd".into())
            .spawn(move || run(alarm))?;
        Ok(Watchdog {
            handle,
            thread: Some(thread),
        })
    }

    /// The alarm's handle for [`arm`].
    pub(crate) fn handle(&self) -> i32 {
        self.handle
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        QUIT.store(true, Ordering::Release);
        sys::arm_alarm(self.handle, 1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut alarm: sys::Alarm) {
    block_all_signals();
    if !alarm.wait() || QUIT.load(Ordering::Acquire) {
        return;
    }
    assafe::write_fd(
        2,
        b"crashguard: the crash handler did not finish in time; exiting with code 84\n",
    );
    let code = u32::from(crashguard_blackbox::ExitCode::HandlerFailure.code());
    if let Some(bb) = crashguard_blackbox::active() {
        // The crashing thread is stuck; take the record over so the next run learns why. If
        // it had already committed (and hung afterwards), keep its record but make the exit
        // status it gives the one the process really ends with.
        match bb.take_over_end() {
            Some(mut writer) => {
                let end = writer.end();
                end.detail_len = crashguard_blackbox::assafe::copy_bytes(
                    &mut end.detail,
                    b"the crash handler did not finish in time (watchdog)",
                );
                writer.commit(crashguard_blackbox::Outcome::HandlerFailure, code);
            }
            None => {
                bb.amend_exit_code_as_watchdog(code);
            }
        }
    }
    sys::exit_now(i32::from(
        crashguard_blackbox::ExitCode::HandlerFailure.code(),
    ));
}

/// Keeps process-directed signals away from the watchdog, so it never runs someone's handler
/// and is always free to act.
fn block_all_signals() {
    // SAFETY: a zeroed sigset_t is a valid buffer for sigfillset.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this thread's mask.
    unsafe {
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// Starts the countdown, if a watchdog runs in this process (a forked child shares the alarm
/// but not the thread, and must not arm its parent's watchdog).
///
/// Async-signal-safe.
pub(crate) fn arm(state: &Installed) {
    if state.alarm >= 0 && state.owner_pid == sys::getpid() {
        sys::arm_alarm(state.alarm, state.watchdog_timeout_ns);
    }
}
