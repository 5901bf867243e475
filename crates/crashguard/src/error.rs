//! The facade's error type.

use std::fmt;

/// Why `install()` (or another guard operation) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; the message says which and why.
    Config(String),
    /// `install()` was called while a guard is alive in this process.
    AlreadyInstalled,
    /// The black box could not be opened or a report stored.
    BlackBox(crashguard_blackbox::Error),
    /// The signal handlers could not be installed.
    Signals(crashguard_signals::Error),
    /// A memory or thread budget could not be set up.
    Budget(crashguard_budget::Error),
    /// A thread budget could not be set up.
    ThreadBudget(crashguard_budget::thread::ThreadError),
    /// Another OS operation failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::AlreadyInstalled => {
                f.write_str("crashguard is already installed in this process (drop the first guard before installing again)")
            }
            Error::BlackBox(_) => f.write_str("cannot set up the black box"),
            Error::Signals(_) => f.write_str("cannot install signal handlers"),
            Error::Budget(_) => f.write_str("cannot set up the memory budget"),
            Error::ThreadBudget(_) => f.write_str("cannot set up the thread budget"),
            Error::Io { what, .. } => write!(f, "cannot {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::BlackBox(e) => Some(e),
            Error::Signals(e) => Some(e),
            Error::Budget(e) => Some(e),
            Error::ThreadBudget(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Config(_) | Error::AlreadyInstalled => None,
        }
    }
}

impl From<crashguard_blackbox::Error> for Error {
    fn from(e: crashguard_blackbox::Error) -> Self {
        Error::BlackBox(e)
    }
}
