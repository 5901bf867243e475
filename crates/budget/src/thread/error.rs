//! [`ThreadError`]: bad thread-budget configuration and failed probes. (A refused spawn is a
//! [`SpawnError`](super::SpawnError), in `spawn_error.rs`.)

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Bad thread-budget configuration, or a failed read of `/proc` or a cgroup file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ThreadError {
    /// `ThreadBudget::max(0)`: a budget must allow at least one thread.
    ZeroBudget,
    /// A soft or hard share outside `(0, 1]`, or a soft share above the hard one.
    InvalidShare {
        /// `"soft"` or `"hard"`.
        which: &'static str,
        /// The share given.
        value: f64,
    },
    /// The sampler interval is zero.
    ZeroInterval,
    /// Reading a file or directory failed.
    Io {
        /// What was read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A path cannot be passed to the OS (it contains a NUL byte).
    InvalidPath {
        /// The path.
        path: PathBuf,
    },
    /// The sampler thread could not be started.
    SamplerSpawn(io::Error),
}

impl ThreadError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        ThreadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid_path(path: &Path) -> Self {
        ThreadError::InvalidPath {
            path: path.to_path_buf(),
        }
    }
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::ZeroBudget => f.write_str("thread budget must allow at least one thread"),
            ThreadError::InvalidShare { which, value } => write!(
                f,
                "thread budget {which} share {value} must be in (0, 1] and soft must not exceed hard"
            ),
            ThreadError::ZeroInterval => f.write_str("thread sampler interval must not be zero"),
            ThreadError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            ThreadError::InvalidPath { path } => {
                write!(f, "path {} contains a nul byte", path.display())
            }
            ThreadError::SamplerSpawn(_) => f.write_str("cannot start the thread sampler"),
        }
    }
}

impl StdError for ThreadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ThreadError::Io { source, .. } => Some(source),
            ThreadError::SamplerSpawn(source) => Some(source),
            _ => None,
        }
    }
}
