//! The [`Signal`] newtype: signal numbers in the public API without libc types.

use core::fmt;

use crate::Error;

/// A unix signal number.
///
/// The constants cover the signals crashguard deals with; [`Signal::try_from`] accepts any
/// valid signal number of the platform.
///
/// ```
/// use crashguard_signals::Signal;
/// assert_eq!(Signal::SIGSEGV.name(), "SIGSEGV");
/// assert_eq!(Signal::try_from(15).unwrap(), Signal::SIGTERM);
/// assert_eq!(Signal::SIGTERM.to_string(), "SIGTERM");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

impl Signal {
    /// Invalid memory reference.
    pub const SIGSEGV: Signal = Signal(libc::SIGSEGV);
    /// Bus error (bad memory access, e.g. a truncated mapped file).
    pub const SIGBUS: Signal = Signal(libc::SIGBUS);
    /// Illegal instruction.
    pub const SIGILL: Signal = Signal(libc::SIGILL);
    /// Arithmetic exception (integer division by zero, ...).
    pub const SIGFPE: Signal = Signal(libc::SIGFPE);
    /// `abort()`.
    pub const SIGABRT: Signal = Signal(libc::SIGABRT);
    /// Trace or breakpoint trap.
    pub const SIGTRAP: Signal = Signal(libc::SIGTRAP);
    /// Polite termination request (`kill`, `docker stop`, Kubernetes).
    pub const SIGTERM: Signal = Signal(libc::SIGTERM);
    /// Interrupt from the terminal (Ctrl-C).
    pub const SIGINT: Signal = Signal(libc::SIGINT);
    /// Hangup of the controlling terminal.
    pub const SIGHUP: Signal = Signal(libc::SIGHUP);
    /// Quit from the terminal (Ctrl-\).
    pub const SIGQUIT: Signal = Signal(libc::SIGQUIT);
    /// Uncatchable kill.
    pub const SIGKILL: Signal = Signal(libc::SIGKILL);
    /// User-defined signal 1.
    pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
    /// User-defined signal 2.
    pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);

    /// The fatal signals the fatal handlers catch, in the order they are installed.
    pub const FATAL: [Signal; 6] = [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGABRT,
        Signal::SIGTRAP,
    ];

    /// The termination signals a service usually shuts down on (SIGQUIT is opt-in).
    pub const TERMINATION: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

    /// The platform's signal number.
    ///
    /// Async-signal-safe.
    pub const fn number(self) -> i32 {
        self.0
    }

    /// The conventional name, such as `"SIGSEGV"`, or `"SIG?"` for a number without one here.
    ///
    /// Async-signal-safe.
    pub fn name(self) -> &'static str {
        name_of(self.0).unwrap_or("SIG?")
    }

    /// Whether this is one of [`Signal::FATAL`].
    pub fn is_fatal(self) -> bool {
        Signal::FATAL.contains(&self)
    }
}

/// The name of a signal number, when it has a well-known one: the one table in
/// `crashguard-blackbox`, so the handler's messages and the reports say the same.
///
/// Async-signal-safe.
pub(crate) fn name_of(n: i32) -> Option<&'static str> {
    crashguard_blackbox::signal_name(u32::try_from(n).ok()?)
}

/// The highest signal number accepted by [`Signal::try_from`].
const MAX_SIGNAL: i32 = 64;

impl TryFrom<i32> for Signal {
    type Error = Error;

    fn try_from(n: i32) -> Result<Signal, Error> {
        if (1..=MAX_SIGNAL).contains(&n) {
            Ok(Signal(n))
        } else {
            Err(Error::InvalidSignal(n))
        }
    }
}

impl From<Signal> for i32 {
    fn from(s: Signal) -> i32 {
        s.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match name_of(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({self}, {})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_valid_number() {
        for n in 1..=MAX_SIGNAL {
            let s = Signal::try_from(n).expect("valid signal number");
            assert_eq!(s.number(), n);
            assert_eq!(i32::from(s), n);
        }
    }

    #[test]
    fn rejects_out_of_range_numbers() {
        for n in [-1, 0, MAX_SIGNAL + 1, i32::MAX] {
            assert!(matches!(Signal::try_from(n), Err(Error::InvalidSignal(m)) if m == n));
        }
    }

    #[test]
    fn names_match_libc_numbers() {
        assert_eq!(Signal::SIGSEGV.number(), libc::SIGSEGV);
        assert_eq!(Signal::SIGABRT.name(), "SIGABRT");
        assert_eq!(Signal::SIGQUIT.to_string(), "SIGQUIT");
        assert_eq!(Signal::try_from(60).unwrap().name(), "SIG?");
        assert!(Signal::SIGTRAP.is_fatal());
        assert!(!Signal::SIGTERM.is_fatal());
    }
}
