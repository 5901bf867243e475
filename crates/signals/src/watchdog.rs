//! The watchdog that bounds the fatal handler's run time.
//!
//! On Linux it is a POSIX timer, not a thread: install creates one disarmed timer
//! (`timer_create`, `SIGEV_SIGNAL` with [`sys::ALARM_SIGNAL`], SIGTRAP, and a random cookie as
//! its value); the handler's first action arms it with one system call. If the process ends in
//! time nothing else happens, and there is no extra thread for the kernel to wind down at
//! exit (a thread parked on a `timerfd` did this job before; its exit was most of the gap to
//! `crash-handler` in crash-to-reaped time, `docs/performance/signals.md`). If the timer
//! expires, the handler is stuck (a deadlocked unwinder, a chained handler that never returns,
//! a write to a stderr nobody reads) and its signal arrives at crashguard's own handler, which
//! recognises it by `SI_TIMER` and the cookie and calls [`expired`].
//!
//! The takeover happens on the crashing thread itself: a timer signal delivered to another
//! thread is forwarded to the recording thread (`rt_tgsigqueueinfo`), whose handler is then
//! interrupted right where it is stuck and never resumes. So no store of the stuck handler can
//! land after the takeover's commit and tear the record. Only when the recording thread cannot
//! take the forwarded signal within [`FORWARD_GRACE_NS`] (it blocks SIGTRAP, or sleeps in the
//! kernel uninterruptibly) does the thread that got the timer take over itself.
//!
//! A forked child has no share in its parent's timers; its handler creates a timer aimed at
//! the crashing thread (`SIGEV_THREAD_ID`) when it arms. Other unixes have no such timers: a
//! thread sleeps on a pipe the handler writes the delay into, and calls [`expired`] itself.

use core::sync::atomic::{AtomicBool, Ordering};
use crashguard_blackbox::assafe;
use std::io;

use crate::state::Installed;
use crate::sys;

/// How long a thread that received the timer's signal waits for the recording thread to act
/// on the forwarded one before it takes over itself.
const FORWARD_GRACE_NS: u64 = 100_000_000;

/// Set by the first thread that forwards the expiry, so that only one does.
static FORWARDED: AtomicBool = AtomicBool::new(false);

/// The watchdog's alarm; dropping it deletes the timer (or stops the thread).
#[derive(Debug)]
pub(crate) struct Watchdog {
    alarm: sys::Alarm,
    cookie: u64,
}

impl Watchdog {
    /// Creates the disarmed alarm; the handler arms it through [`arm`] with the handle and
    /// cookie kept in the installed state.
    pub(crate) fn start() -> io::Result<Watchdog> {
        let cookie = new_cookie();
        let alarm = sys::Alarm::new(cookie, expired_elsewhere)?;
        Ok(Watchdog { alarm, cookie })
    }

    /// The alarm's handle for [`arm`].
    pub(crate) fn handle(&self) -> i32 {
        self.alarm.handle()
    }

    /// The value the alarm's signal carries.
    pub(crate) fn cookie(&self) -> u64 {
        self.cookie
    }
}

/// A value nobody outside this process can be expected to guess, so that a signal forged with
/// `SI_TIMER` from outside is not taken for the watchdog.
fn new_cookie() -> u64 {
    let here = &FORWARDED as *const AtomicBool as u64;
    let mixed = assafe::now_monotonic_ns() ^ assafe::now_realtime_ns().rotate_left(17) ^ here;
    // A splitmix64 round spreads the bits; 0 is never a cookie.
    let mut z = mixed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

/// Starts the countdown. In the process that installed, arms the timer made at install; in a
/// forked child (which shares no timer with its parent), creates one aimed at this thread.
///
/// Async-signal-safe.
pub(crate) fn arm(state: &Installed, tid: u32) {
    if state.alarm < 0 {
        return;
    }
    if state.owner_pid == sys::getpid() {
        sys::arm_alarm(state.alarm, state.watchdog_timeout_ns);
    } else {
        sys::arm_thread_alarm(tid, state.alarm_cookie, state.watchdog_timeout_ns);
    }
}

/// Whether `info` is the watchdog's alarm: the alarm signal with `SI_TIMER` and our cookie.
///
/// Async-signal-safe.
///
/// # Safety
///
/// `info` is null or the kernel's `siginfo` pointer for this signal.
pub(crate) unsafe fn is_expiry(
    state: &Installed,
    signo: i32,
    info: *const libc::siginfo_t,
) -> bool {
    // SAFETY: as the caller promises.
    signo == sys::ALARM_SIGNAL
        && state.alarm >= 0
        && unsafe { info.as_ref() }.and_then(sys::alarm_cookie) == Some(state.alarm_cookie)
}

/// The alarm went off on thread `me` while thread `owner` handles a crash (0: none known).
/// Forwards the expiry to `owner` when that is another thread and waits for it to end the
/// process; takes the record over and exits with the handler-failure code otherwise, or when
/// the forwarded signal is not acted on in time.
///
/// Async-signal-safe.
pub(crate) fn expired(state: &Installed, owner: u32, me: u32) -> ! {
    let forward = owner != 0 && owner != me && !FORWARDED.swap(true, Ordering::AcqRel);
    if forward && sys::send_alarm(owner, state.alarm_cookie) {
        let start = assafe::now_monotonic_ns();
        while assafe::now_monotonic_ns().saturating_sub(start) < FORWARD_GRACE_NS {
            sys::sleep_ns(5_000_000);
        }
    }
    take_over_and_exit()
}

/// For the alarm thread of platforms without timers: that thread is never the recording one.
fn expired_elsewhere() {
    take_over_and_exit()
}

/// Records the handler failure and ends the process with exit code 84.
///
/// Async-signal-safe.
fn take_over_and_exit() -> ! {
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
                end.detail_len = assafe::copy_bytes(
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
    sys::exit_now(code as i32)
}
