//! The crate's error type.
//!
//! One enum for the whole crate keeps the facade's conversion simple. Every variant that comes
//! from the operating system keeps its `io::Error` and the path it concerned, so the message a
//! user sees names the file that could not be read and `source()` still gives the OS error.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::kernel::ParseError;

/// Everything that can go wrong in `crashguard-budget`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file under `/proc` or `/sys` failed.
    Io {
        /// What was being done, e.g. `"read"` or `"write"`.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file under `/proc` or `/sys` had contents this crate does not understand.
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// What was wrong with it.
        source: ParseError,
    },
    /// A budget was configured with a value that cannot work (zero, NaN, out of range).
    InvalidBudget {
        /// Which setting was wrong and why.
        reason: String,
    },
    /// The budget is a share of a limit (cgroup or RAM) that could not be determined.
    NoLimit {
        /// Which limit was missing.
        what: &'static str,
    },
    /// An `oom_score_adj` value outside `-1000..=1000`.
    InvalidOomScoreAdj {
        /// The rejected value.
        value: i32,
    },
    /// A background thread could not be started.
    Spawn {
        /// Which thread.
        name: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            Error::Parse { path, source } => write!(f, "cannot parse {}: {source}", path.display()),
            Error::InvalidBudget { reason } => write!(f, "invalid memory budget: {reason}"),
            Error::NoLimit { what } => write!(f, "no {what} to take a fraction of"),
            Error::InvalidOomScoreAdj { value } => {
                write!(f, "oom_score_adj must be within -1000..=1000, got {value}")
            }
            Error::Spawn { name, source } => write!(f, "cannot spawn thread {name}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Spawn { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::InvalidBudget { .. }
            | Error::NoLimit { .. }
            | Error::InvalidOomScoreAdj { .. } => None,
        }
    }
}

/// The crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
