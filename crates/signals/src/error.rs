//! The crate's error type.

use core::fmt;
use std::io;

use crate::Signal;

/// Everything that can go wrong while installing or removing handlers.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The fatal handlers (or a termination listener) are already installed in this process;
    /// the value says which.
    AlreadyInstalled(Installation),
    /// A configuration value is out of range; the value says which.
    InvalidConfig(InvalidSetting),
    /// A number that is not a signal of this platform.
    InvalidSignal(i32),
    /// The signal cannot be listened for (a fatal or uncatchable signal).
    UnsupportedSignal(Signal),
    /// `sigaction` refused to install a handler.
    Sigaction {
        /// The signal whose disposition could not be changed.
        signal: Signal,
        /// The operating system's error.
        source: io::Error,
    },
    /// The alternate signal stack could not be mapped or installed.
    AltStack(io::Error),
    /// The calling thread is exiting (its thread-local storage is being torn down), so an
    /// alternate stack installed now could never be freed.
    ThreadExiting,
    /// The listener thread (or, off Linux, the watchdog thread or its pipe) could not be
    /// created.
    Thread(io::Error),
    /// The watchdog's timer could not be created.
    Watchdog(io::Error),
    /// signal-hook refused to register the termination signals.
    Listener(io::Error),
}

/// Which of the crate's installations an [`Error::AlreadyInstalled`] found in place. Each exists
/// at most once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Installation {
    /// The fatal-signal handlers ([`FatalHandlers`](crate::FatalHandlers)).
    FatalHandlers,
    /// A termination listener ([`TerminationListener`](crate::TerminationListener)), threaded
    /// or polled.
    TerminationListener,
}

impl fmt::Display for Installation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Installation::FatalHandlers => "fatal signal handlers",
            Installation::TerminationListener => "a termination listener",
        })
    }
}

/// Which setting an [`Error::InvalidConfig`] rejected, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidSetting {
    /// [`FatalConfig::watchdog_timeout`](crate::FatalConfig::watchdog_timeout) of zero.
    WatchdogTimeoutZero,
    /// [`FatalConfig::watchdog_timeout`](crate::FatalConfig::watchdog_timeout) above 600
    /// seconds.
    WatchdogTimeoutTooLong,
    /// [`FatalConfig::second_crash_wait`](crate::FatalConfig::second_crash_wait) above 60
    /// seconds.
    SecondCrashWaitTooLong,
    /// A termination listener asked to listen for no signal at all.
    NoTerminationSignals,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidSetting::WatchdogTimeoutZero => "the watchdog timeout must not be zero",
            InvalidSetting::WatchdogTimeoutTooLong => {
                "the watchdog timeout must be at most 600 seconds"
            }
            InvalidSetting::SecondCrashWaitTooLong => {
                "the second-crash wait must be at most 60 seconds"
            }
            InvalidSetting::NoTerminationSignals => {
                "the termination listener needs at least one signal"
            }
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInstalled(what) => {
                let verb = match what {
                    Installation::FatalHandlers => "are",
                    Installation::TerminationListener => "is",
                };
                write!(f, "{what} {verb} already installed in this process")
            }
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::InvalidSignal(n) => write!(f, "{n} is not a valid signal number"),
            Error::UnsupportedSignal(s) => {
                write!(f, "{s} cannot be used as a termination signal")
            }
            Error::Sigaction { signal, .. } => write!(f, "cannot install a handler for {signal}"),
            Error::AltStack(_) => f.write_str("cannot install an alternate signal stack"),
            Error::ThreadExiting => {
                f.write_str("cannot prepare a thread whose thread-local storage is being destroyed")
            }
            Error::Thread(_) => f.write_str("cannot start a crashguard helper thread"),
            Error::Watchdog(_) => f.write_str("cannot create the crash handler's watchdog timer"),
            Error::Listener(_) => f.write_str("cannot register the termination signals"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sigaction { source, .. } => Some(source),
            Error::AltStack(e) | Error::Thread(e) | Error::Watchdog(e) | Error::Listener(e) => {
                Some(e)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_are_lowercase_without_period_and_keep_the_source() {
        let errors = [
            Error::AlreadyInstalled(Installation::FatalHandlers),
            Error::InvalidConfig(InvalidSetting::WatchdogTimeoutZero),
            Error::InvalidSignal(0),
            Error::UnsupportedSignal(Signal::SIGSEGV),
            Error::Sigaction {
                signal: Signal::SIGBUS,
                source: io::Error::from_raw_os_error(libc::EINVAL),
            },
            Error::AltStack(io::Error::from_raw_os_error(libc::ENOMEM)),
            Error::ThreadExiting,
            Error::Thread(io::Error::from_raw_os_error(libc::EAGAIN)),
            Error::Listener(io::Error::from_raw_os_error(libc::EINVAL)),
            Error::Watchdog(io::Error::from_raw_os_error(libc::EAGAIN)),
        ];
        for e in &errors {
            let text = e.to_string();
            let first = text.chars().next().unwrap_or('x');
            assert!(!first.is_uppercase() || text.starts_with("SIG"), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
        assert!(errors[4].source().is_some());
        assert!(errors[5].source().is_some());
        assert!(errors[0].source().is_none());
    }

    #[test]
    fn the_typed_variants_say_which_installation_and_which_setting() {
        assert_eq!(
            Error::AlreadyInstalled(Installation::FatalHandlers).to_string(),
            "fatal signal handlers are already installed in this process"
        );
        assert_eq!(
            Error::AlreadyInstalled(Installation::TerminationListener).to_string(),
            "a termination listener is already installed in this process"
        );
        assert_eq!(
            Error::InvalidConfig(InvalidSetting::SecondCrashWaitTooLong).to_string(),
            "invalid configuration: the second-crash wait must be at most 60 seconds"
        );
        assert_eq!(
            Error::InvalidConfig(InvalidSetting::NoTerminationSignals).to_string(),
            "invalid configuration: the termination listener needs at least one signal"
        );
    }
}
