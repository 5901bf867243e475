//! The thread module's errors: [`SpawnError`] for a refused spawn, [`ThreadError`] for bad
//! configuration and failed probes.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::diagnose::Diagnosis;

/// Why a guarded spawn returned `Err` instead of a thread.
///
/// `Display` is a multi-line diagnosis: the live thread count against the budget, the limit that
/// was hit or is closest, the census of this process's threads by name and, when a host-wide
/// limit is nearly used up, the processes holding the most threads.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// The configured [`ThreadBudget`](super::ThreadBudget) has no room for another thread.
    BudgetExhausted(Box<Diagnosis>),
    /// The operating system refused to create the thread (`EAGAIN` / `ENOMEM` from
    /// `pthread_create`, or any other error `std::thread::Builder::spawn` returned).
    OsRefused {
        /// The error `std::thread::Builder::spawn` returned.
        source: io::Error,
        /// What was found about the limits when it happened.
        diagnosis: Box<Diagnosis>,
    },
    /// The thread name contains a NUL byte, which `std` would panic on.
    InvalidName {
        /// The name as given.
        name: String,
    },
}

impl SpawnError {
    /// The diagnosis gathered when the spawn failed; `None` for [`SpawnError::InvalidName`].
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            SpawnError::BudgetExhausted(d) => Some(d),
            SpawnError::OsRefused { diagnosis, .. } => Some(diagnosis),
            SpawnError::InvalidName { .. } => None,
        }
    }

    /// True when the guard's own budget refused the thread.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self, SpawnError::BudgetExhausted(_))
    }

    /// True when the operating system refused the thread.
    pub fn is_os_refusal(&self) -> bool {
        matches!(self, SpawnError::OsRefused { .. })
    }

    /// One line for a report's detail field, e.g. `thread budget exhausted: 256 of 256 guarded
    /// threads; hit: RLIMIT_NPROC 96 of 96 tasks of uid 65534`.
    pub fn summary(&self) -> String {
        match self {
            SpawnError::BudgetExhausted(d) => format!("thread budget exhausted: {}", d.summary()),
            SpawnError::OsRefused { source, diagnosis } => {
                format!("os refused a thread ({source}): {}", diagnosis.summary())
            }
            SpawnError::InvalidName { .. } => "thread name contains a nul byte".to_string(),
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::BudgetExhausted(d) => {
                write!(
                    f,
                    "thread budget exhausted: cannot spawn {}",
                    d.thread_label()
                )?;
                write!(f, "\n{d}")
            }
            SpawnError::OsRefused { source, diagnosis } => {
                write!(
                    f,
                    "the os refused to create thread {}: {source}",
                    diagnosis.thread_label()
                )?;
                write!(f, "\n{diagnosis}")
            }
            SpawnError::InvalidName { name } => {
                write!(f, "thread name {name:?} contains a nul byte")
            }
        }
    }
}

impl StdError for SpawnError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SpawnError::OsRefused { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
