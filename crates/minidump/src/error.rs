//! The minidump writer's errors.

use std::fmt;
use std::io;

/// Why a report could not become a minidump.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The report has no crashing thread's context: it is not a native crash (a panic that
    /// unwound, a budget, a shutdown, a process killed without warning), or it was recorded by
    /// a crashguard that did not record registers.
    NoContext {
        /// The report's outcome.
        outcome: String,
    },
    /// The recorded architecture is not one this writer knows.
    UnsupportedArch(String),
    /// The minidump could not be written.
    Write(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoContext { outcome } => write!(
                f,
                "the report ({outcome}) holds no crashing thread's registers: minidumps are made of native crashes (fatal signals) recorded with registers"
            ),
            Error::UnsupportedArch(arch) => {
                write!(
                    f,
                    "cannot write a minidump context for architecture {arch:?}"
                )
            }
            // The OS error is the source.
            Error::Write(_) => f.write_str("cannot write the minidump"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Write(e) => Some(e),
            _ => None,
        }
    }
}
