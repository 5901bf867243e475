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
    /// The termination log could not be used (a FIFO, a link, a file of another user, ...).
    TerminationLog(crashguard_blackbox::Error),
    /// The previous run's record could not be stored (a full disk), so its slot was kept as it
    /// is for a later run; and no other slot could be prepared for this run.
    PreviousRunKept {
        /// Why the previous run's report could not be stored.
        store: crashguard_blackbox::Error,
        /// Why no other slot could be prepared.
        source: crashguard_blackbox::Error,
    },
    /// The signal handlers could not be installed.
    Signals(crashguard_signals::Error),
    /// The memory budget could not be set up.
    Budget(crashguard_budget::Error),
    /// The thread budget could not be set up.
    ThreadBudget(crashguard_budget::Error),
    /// Another OS operation failed.
    Io {
        /// What was being done.
        what: IoStep,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The step of `install()` an [`Error::Io`] failed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoStep {
    /// Duplicating the termination log's descriptor for the fatal handlers.
    DuplicateTerminationLog,
    /// Making the shutdown latch (the descriptor termination signals wake).
    MakeShutdownLatch,
    /// Starting the shutdown coordinator's thread.
    StartShutdownThread,
    /// Starting the thread that reads termination signals.
    StartSignalThread,
}

impl IoStep {
    /// What was being done, as in "cannot duplicate the termination log's descriptor".
    pub fn as_str(self) -> &'static str {
        match self {
            IoStep::DuplicateTerminationLog => "duplicate the termination log's descriptor",
            IoStep::MakeShutdownLatch => "make the shutdown latch",
            IoStep::StartShutdownThread => "start the shutdown thread",
            IoStep::StartSignalThread => "start the signal thread",
        }
    }
}

impl fmt::Display for IoStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::AlreadyInstalled => {
                f.write_str("crashguard is already installed in this process (drop the first guard before installing again)")
            }
            Error::BlackBox(_) => f.write_str("cannot set up the black box"),
            Error::TerminationLog(_) => f.write_str("cannot use the termination log"),
            Error::PreviousRunKept { store, .. } => {
                write!(f, "the previous run's report could not be stored (")?;
                let mut cause: Option<&dyn std::error::Error> = Some(store);
                let mut first = true;
                while let Some(c) = cause {
                    if !first {
                        f.write_str(": ")?;
                    }
                    write!(f, "{c}")?;
                    first = false;
                    cause = c.source();
                }
                f.write_str(
                    "), so its black box was kept for a later run; and no other black-box slot \
                     could be prepared",
                )
            }
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
            Error::BlackBox(e) | Error::TerminationLog(e) => Some(e),
            Error::PreviousRunKept { source, .. } => Some(source),
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

#[cfg(test)]
mod io_step_tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_step_once_and_keeps_the_os_error() {
        let e = Error::Io {
            what: IoStep::DuplicateTerminationLog,
            source: std::io::Error::from_raw_os_error(libc::EMFILE),
        };
        assert_eq!(
            e.to_string(),
            "cannot duplicate the termination log's descriptor"
        );
        let source = std::error::Error::source(&e).expect("the OS error");
        let os = source
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(os.raw_os_error(), Some(libc::EMFILE));
    }
}
