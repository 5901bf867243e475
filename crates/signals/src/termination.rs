//! The termination-signal listener: SIGTERM, SIGINT, SIGHUP (and SIGQUIT when asked) are
//! turned into [`TermSignal`] messages on a crossbeam channel.
//!
//! signal-hook does the async-signal-safe part (its handler records the signal and its sender
//! and wakes a self-pipe); a named thread, `crashguard-sig`, reads the pipe and forwards each
//! signal into the channel. That thread never runs application code, so a slow shutdown hook
//! can never delay noticing a second signal.

use core::fmt;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, TrySendError};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};

use crate::term_source::TermSource;
use crate::{Error, Installation, InvalidSetting, Signal, sys};

/// Messages buffered for a consumer that does not keep up; later ones are dropped (the first
/// signals are the ones a shutdown acts on).
const CHANNEL_CAPACITY: usize = 256;

/// A termination signal and, when the kernel says who sent it, the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TermSignal {
    /// The signal.
    pub signal: Signal,
    /// `si_pid` of the sending process, when the signal was sent by one.
    pub sender_pid: Option<u32>,
    /// `si_uid` of the sending process, when the signal was sent by one.
    pub sender_uid: Option<u32>,
}

impl fmt::Display for TermSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.signal)?;
        match (self.sender_pid, self.sender_uid) {
            (Some(pid), Some(uid)) => write!(f, " from pid {pid} (uid {uid})"),
            (Some(pid), None) => write!(f, " from pid {pid}"),
            _ => Ok(()),
        }
    }
}

impl TermSignal {
    /// The message for what signal-hook's handler recorded; `None` for a number that is not a
    /// signal.
    pub(crate) fn from_origin(origin: &signal_hook::low_level::siginfo::Origin) -> Option<Self> {
        let signal = Signal::try_from(origin.signal).ok()?;
        let sender = origin.process;
        Some(TermSignal {
            signal,
            sender_pid: sender.map(|p| p.pid as u32),
            sender_uid: sender.map(|p| p.uid),
        })
    }
}

/// The dispositions in place for `signals` (each once), to restore on stop.
fn previous_actions(signals: &[Signal]) -> Result<Vec<(Signal, libc::sigaction)>, Error> {
    let mut previous = Vec::with_capacity(signals.len());
    for &signal in signals {
        if previous.iter().any(|(s, _)| *s == signal) {
            continue;
        }
        let action = sys::query_action(signal.number())
            .map_err(|source| Error::Sigaction { signal, source })?;
        previous.push((signal, action));
    }
    Ok(previous)
}

/// The termination side's installed state: one value for the process, owned by the running
/// [`TerminationListener`] while there is one. Nothing here is read by a signal handler
/// (signal-hook's handler owns that part), so a mutex guards it.
struct Listening {
    /// Whether a listener exists in this process: claimed by `start`/`start_polled` and
    /// released as the listener's shutdown's last step.
    running: bool,
    /// signal-hook-registry's own sigaction per signal, remembered when a listener restored
    /// the dispositions it replaced. The registry never reinstalls its handler for a signal it
    /// has seen before, so the next listener puts it back itself: this part outlives each
    /// listener on purpose, as a fact about the process's registry.
    registry_actions: Vec<(i32, libc::sigaction)>,
}

/// The one [`Listening`] value of the process.
static LISTENING: Mutex<Listening> = Mutex::new(Listening {
    running: false,
    registry_actions: Vec::new(),
});

/// The state, also after a panic elsewhere while it was held (every update leaves it whole).
fn listening() -> MutexGuard<'static, Listening> {
    LISTENING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks `signals` and claims the one listener of the process.
fn claim(signals: &[Signal]) -> Result<(), Error> {
    if signals.is_empty() {
        return Err(Error::InvalidConfig(InvalidSetting::NoTerminationSignals));
    }
    for &s in signals {
        if s.is_fatal() || signal_hook::consts::FORBIDDEN.contains(&s.number()) {
            return Err(Error::UnsupportedSignal(s));
        }
    }
    let mut state = listening();
    if state.running {
        return Err(Error::AlreadyInstalled(Installation::TerminationListener));
    }
    state.running = true;
    Ok(())
}

/// Releases the claim taken by [`claim`].
fn release() {
    listening().running = false;
}

/// The running listener. [`TerminationListener::stop`] (or dropping it) restores the
/// dispositions that were in place before [`TerminationListener::start`] and joins the thread.
///
/// # Examples
///
/// ```no_run
/// use crashguard_signals::{Signal, TerminationListener};
/// let (listener, rx) = TerminationListener::start(&Signal::TERMINATION)?;
/// let request = rx.recv().expect("listener runs until stopped");
/// eprintln!("shutting down on {request}");
/// listener.stop();
/// # Ok::<(), crashguard_signals::Error>(())
/// ```
pub struct TerminationListener {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    previous: Vec<(Signal, libc::sigaction)>,
}

impl fmt::Debug for TerminationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminationListener")
            .field(
                "signals",
                &self.previous.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TerminationListener {
    /// Registers handlers for `signals` and starts the `crashguard-sig` thread. The handlers
    /// are in place when this returns, so a signal that arrives from then on (even before the
    /// application reads the channel) is delivered; signals are never lost, though repeated
    /// deliveries of the same signal between two reads may be merged into one message.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedSignal`] for fatal signals, SIGKILL and SIGSTOP;
    /// [`Error::InvalidConfig`] for an empty list; [`Error::AlreadyInstalled`] while another
    /// listener runs; [`Error::Listener`] and [`Error::Thread`] for OS failures.
    pub fn start(signals: &[Signal]) -> Result<(TerminationListener, Receiver<TermSignal>), Error> {
        claim(signals)?;
        Self::start_inner(signals).inspect_err(|_| release())
    }

    /// Like [`TerminationListener::start`], but without the `crashguard-sig` thread: signal-hook's
    /// handler records each signal and its sender and wakes a self-pipe, and whoever polls the
    /// returned [`TermSource`]'s descriptor reads them with [`TermSource::drain`]. A thread
    /// blocked on that descriptor (or a runtime's reactor watching it) is woken by the signal
    /// handler itself, with no thread in between.
    ///
    /// # Errors
    ///
    /// As for [`TerminationListener::start`].
    pub fn start_polled(
        signals: &[Signal],
    ) -> Result<(TerminationListener, std::sync::Arc<TermSource>), Error> {
        claim(signals)?;
        Self::start_polled_inner(signals).inspect_err(|_| release())
    }

    fn start_polled_inner(
        signals: &[Signal],
    ) -> Result<(TerminationListener, std::sync::Arc<TermSource>), Error> {
        let previous = previous_actions(signals)?;
        let numbers: Vec<i32> = previous.iter().map(|(s, _)| s.number()).collect();
        let source = TermSource::register(&numbers).map_err(Error::Listener)?;
        rearm_registry(&previous);
        let listener = TerminationListener {
            handle: source.handle(),
            thread: None,
            previous,
        };
        Ok((listener, std::sync::Arc::new(source)))
    }

    fn start_inner(
        signals: &[Signal],
    ) -> Result<(TerminationListener, Receiver<TermSignal>), Error> {
        let previous = previous_actions(signals)?;
        let numbers: Vec<i32> = previous.iter().map(|(s, _)| s.number()).collect();
        let mut delivery = SignalsInfo::<WithOrigin>::new(&numbers).map_err(Error::Listener)?;
        rearm_registry(&previous);
        let handle = delivery.handle();
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let spawned = std::thread::Builder::new()
            .name("crashguard-sig".into())
            .spawn(move || {
                for origin in delivery.forever() {
                    let Some(msg) = TermSignal::from_origin(&origin) else {
                        continue;
                    };
                    match tx.try_send(msg) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Disconnected(_)) => {}
                    }
                }
            });
        let mut listener = TerminationListener {
            handle,
            thread: None,
            previous,
        };
        match spawned {
            Ok(thread) => {
                listener.thread = Some(thread);
                Ok((listener, rx))
            }
            Err(e) => {
                // Drop restores the dispositions and unregisters.
                drop(listener);
                Err(Error::Thread(e))
            }
        }
    }

    /// Restores the previous dispositions, closes the signal-hook delivery and joins the
    /// listener thread. The channel's receiver then reports disconnection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.previous.is_empty() && self.thread.is_none() {
            return;
        }
        restore_previous(&self.previous);
        self.previous.clear();
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        release();
    }
}

impl Drop for TerminationListener {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Puts back what was there before signal-hook's registry took over, for each signal whose
/// handler is still the registry's (a handler someone installed after us is left alone), and
/// remembers the registry's action for [`rearm_registry`].
fn restore_previous(previous: &[(Signal, libc::sigaction)]) {
    let mut state = listening();
    let saved = &mut state.registry_actions;
    for (signal, prev) in previous {
        let Ok(current) = sys::query_action(signal.number()) else {
            continue;
        };
        if sys::handler_address(&current) == sys::handler_address(prev) {
            continue;
        }
        if let Some(known) = saved.iter().find(|(n, _)| *n == signal.number())
            && sys::handler_address(&known.1) != sys::handler_address(&current)
        {
            // Someone else's handler replaced the registry's: not ours to undo.
            continue;
        }
        if sys::set_action(signal.number(), prev).is_ok() {
            saved.retain(|(n, _)| *n != signal.number());
            saved.push((signal.number(), current));
        }
    }
}

/// Reinstalls the registry's handler for signals whose disposition an earlier listener restored
/// (and that nobody changed since).
fn rearm_registry(previous: &[(Signal, libc::sigaction)]) {
    let state = listening();
    let saved = &state.registry_actions;
    for (signal, prev) in previous {
        let Some((_, registry)) = saved.iter().find(|(n, _)| *n == signal.number()) else {
            continue;
        };
        if let Ok(current) = sys::query_action(signal.number())
            && sys::handler_address(&current) == sys::handler_address(prev)
            && sys::handler_address(&current) != sys::handler_address(registry)
        {
            let _ = sys::set_action(signal.number(), registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rejects_fatal_and_uncatchable_signals_and_empty_lists() {
        for s in [Signal::SIGSEGV, Signal::SIGABRT, Signal::SIGKILL] {
            assert!(matches!(
                TerminationListener::start(&[s]),
                Err(Error::UnsupportedSignal(x)) if x == s
            ));
        }
        assert!(matches!(
            TerminationListener::start(&[]),
            Err(Error::InvalidConfig(InvalidSetting::NoTerminationSignals))
        ));
    }

    #[test]
    fn survives_a_storm_and_keeps_delivering() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let signals = [Signal::SIGUSR1, Signal::SIGUSR2];
        let (listener, rx) = TerminationListener::start(&signals).expect("start");
        // Sent to this thread, not the process: a signal a thread sends itself is handled
        // before `pthread_kill` returns, so none is still pending on another thread when the
        // listener stops and the default action (which ends the process) is back.
        for i in 0..600 {
            let s = signals[i % 2];
            // SAFETY: signals the calling thread, which may take it (nothing blocks it).
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), s.number()) };
            assert_eq!(rc, 0);
        }
        // Same-signal deliveries may merge, but at least one of each arrives and never more
        // than were sent.
        let mut seen = Vec::new();
        while seen.len() < 2 || !(seen.contains(&signals[0]) && seen.contains(&signals[1])) {
            let got = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("storm delivered");
            seen.push(got.signal);
        }
        while let Ok(got) = rx.try_recv() {
            seen.push(got.signal);
        }
        assert!(seen.len() <= 600, "{} messages for 600 signals", seen.len());
        // Still alive and still listening after the storm.
        // SAFETY: as above.
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), signals[0].number()) };
        assert_eq!(rc, 0);
        let got = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("after storm");
        assert!(signals.contains(&got.signal));
        listener.stop();
    }

    #[test]
    fn delivers_sender_and_restores_on_stop() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let sig = Signal::SIGUSR2;
        let before = sys::query_action(sig.number()).expect("query");
        for round in 0..2 {
            let (listener, rx) = TerminationListener::start(&[sig]).expect("start");
            assert!(matches!(
                TerminationListener::start(&[Signal::SIGUSR1]),
                Err(Error::AlreadyInstalled(Installation::TerminationListener))
            ));
            // SAFETY: sends a signal to this process, which has a handler for it.
            assert_eq!(unsafe { libc::kill(libc::getpid(), sig.number()) }, 0);
            let got = rx.recv_timeout(Duration::from_secs(30)).expect("delivered");
            assert_eq!(got.signal, sig, "round {round}");
            assert_eq!(got.sender_pid, Some(std::process::id()));
            // SAFETY: getuid cannot fail.
            assert_eq!(got.sender_uid, Some(unsafe { libc::getuid() }));
            listener.stop();
            let after = sys::query_action(sig.number()).expect("query");
            assert_eq!(sys::handler_address(&after), sys::handler_address(&before));
            assert!(rx.recv().is_err(), "channel disconnects after stop");
        }
    }
}
