//! [`SpawnError`]: why a guarded spawn returned `Err` instead of a thread. It lives beside
//! nothing it does not need: it holds a [`Diagnosis`], and the diagnosis module does not
//! depend on it, so the thread module's files import one another in one direction.

use std::error::Error as StdError;
use std::fmt;
use std::io;

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
