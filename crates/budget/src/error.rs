//! The crate's error type, for both budgets.
//!
//! One enum for the whole crate keeps the facade's conversion simple. Every variant that comes
//! from the operating system keeps its `io::Error` (and the path it concerned) as its
//! [`source`](std::error::Error::source), and its `Display` does not repeat it: a caller that
//! prints the chain prints each cause once. What a variant names (which budget, which share,
//! which file operation) is an enum, not a string, so that code can match on it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::kernel::ParseError;

/// Everything that can go wrong in `crashguard-budget`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing or listing a file or directory under `/proc` or `/sys` failed.
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory concerned.
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
    /// A share of a budget (or the fraction a memory budget takes of a limit) outside `(0, 1]`.
    InvalidShare {
        /// The budget it belongs to.
        budget: BudgetKind,
        /// Which share.
        which: Share,
        /// The value given.
        value: f64,
    },
    /// A budget's soft share is above its hard share.
    SoftAboveHard {
        /// The budget.
        budget: BudgetKind,
        /// The soft share given.
        soft: f64,
        /// The hard share given.
        hard: f64,
    },
    /// A sampler interval of zero.
    ZeroInterval {
        /// The budget whose sampler it is.
        budget: BudgetKind,
    },
    /// `ThreadBudget::max(0)`: a thread budget must allow at least one thread.
    ZeroThreads,
    /// `MemoryBudget::bytes(0)`.
    ZeroBytes,
    /// A memory budget that resolves to zero bytes on this machine (a tiny limit times a small
    /// share).
    ResolvesToZero {
        /// The limit the budget is a share of, in bytes.
        base_bytes: u64,
    },
    /// The budget is a share of a limit that could not be determined.
    NoLimit {
        /// Which limit was missing.
        limit: MissingLimit,
    },
    /// An `oom_score_adj` value outside `-1000..=1000`.
    InvalidOomScoreAdj {
        /// The rejected value.
        value: i32,
    },
    /// A path that cannot be passed to the OS (it contains a NUL byte).
    InvalidPath {
        /// The path.
        path: PathBuf,
    },
    /// A budget's sampler thread could not be started.
    Spawn {
        /// The budget whose sampler it is.
        sampler: BudgetKind,
        /// The operating system's error.
        source: io::Error,
    },
}

/// Which budget an [`Error`] concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetKind {
    /// The memory budget ([`MemoryBudget`](crate::memory::MemoryBudget)).
    Memory,
    /// The thread budget ([`ThreadBudget`](crate::thread::ThreadBudget)).
    Threads,
}

impl BudgetKind {
    /// `"memory"` or `"thread"`, as in "the memory budget".
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::Memory => "memory",
            BudgetKind::Threads => "thread",
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which share of a budget [`Error::InvalidShare`] rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Share {
    /// The soft share: the warning threshold.
    Soft,
    /// The hard share: the refusal threshold.
    Hard,
    /// The fraction of the cgroup memory limit (`MemoryBudget::cgroup_fraction`).
    CgroupFraction,
    /// The fraction of physical memory (`MemoryBudget::ram_fraction`).
    RamFraction,
}

impl Share {
    /// The words for it: `"soft share"`, `"hard share"`, `"cgroup fraction"`, `"ram fraction"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Share::Soft => "soft share",
            Share::Hard => "hard share",
            Share::CgroupFraction => "cgroup fraction",
            Share::RamFraction => "ram fraction",
        }
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file operation of an [`Error::Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Listing a directory.
    List,
}

impl IoOp {
    /// The verb: `"read"`, `"write"`, `"list"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::List => "list",
        }
    }
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limit an [`Error::NoLimit`] could not find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissingLimit {
    /// The physical memory size (`MemTotal` in `/proc/meminfo`), which a `ram_fraction` budget
    /// and a `cgroup_fraction` budget without a cgroup limit take their share of.
    MemTotal,
}

impl MissingLimit {
    /// The words for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MissingLimit::MemTotal => "physical memory size (MemTotal in /proc/meminfo)",
        }
    }
}

impl fmt::Display for MissingLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, .. } => write!(f, "cannot {op} {}", path.display()),
            Error::Parse { path, .. } => write!(f, "cannot parse {}", path.display()),
            Error::InvalidShare {
                budget,
                which,
                value,
            } => write!(
                f,
                "the {budget} budget's {which} must be within (0, 1], got {value}"
            ),
            Error::SoftAboveHard { budget, soft, hard } => write!(
                f,
                "the {budget} budget's soft share ({soft}) must not exceed its hard share ({hard})"
            ),
            Error::ZeroInterval { budget } => {
                write!(
                    f,
                    "the {budget} sampler's interval must be greater than zero"
                )
            }
            Error::ZeroThreads => f.write_str("a thread budget must allow at least one thread"),
            Error::ZeroBytes => f.write_str("a byte memory budget must be greater than zero"),
            Error::ResolvesToZero { base_bytes } => write!(
                f,
                "the memory budget resolves to zero bytes (a share of {base_bytes} bytes)"
            ),
            Error::NoLimit { limit } => write!(f, "no {limit} to take a fraction of"),
            Error::InvalidOomScoreAdj { value } => {
                write!(f, "oom_score_adj must be within -1000..=1000, got {value}")
            }
            Error::InvalidPath { path } => {
                write!(f, "path {} contains a nul byte", path.display())
            }
            Error::Spawn { sampler, .. } => write!(f, "cannot start the {sampler} sampler thread"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Spawn { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::InvalidShare { .. }
            | Error::SoftAboveHard { .. }
            | Error::ZeroInterval { .. }
            | Error::ZeroThreads
            | Error::ZeroBytes
            | Error::ResolvesToZero { .. }
            | Error::NoLimit { .. }
            | Error::InvalidOomScoreAdj { .. }
            | Error::InvalidPath { .. } => None,
        }
    }
}

impl Error {
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// Every message with its chain, as a caller printing `e` and then each `source()` would.
    fn chain(e: &Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push(c.to_string());
            cause = c.source();
        }
        out
    }

    #[test]
    fn each_cause_is_printed_once_and_the_os_error_is_kept() {
        let os = || io::Error::from_raw_os_error(libc::EACCES);
        let os_text = os().to_string();
        for e in [
            Error::io(IoOp::Read, "/proc/self/statm", os()),
            Error::io(IoOp::Write, "/proc/self/oom_score_adj", os()),
            Error::io(IoOp::List, "/proc", os()),
            Error::Spawn {
                sampler: BudgetKind::Memory,
                source: os(),
            },
        ] {
            let lines = chain(&e);
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert!(!lines[0].contains(&os_text), "{lines:?}");
            assert_eq!(lines[1], os_text);
            let kept = e
                .source()
                .and_then(|s| s.downcast_ref::<io::Error>())
                .and_then(io::Error::raw_os_error);
            assert_eq!(kept, Some(libc::EACCES), "{e:?}");
        }
        let parse = Error::Parse {
            path: "/proc/self/statm".into(),
            source: ParseError {
                format: crate::kernel::Format::Statm,
                detail: "empty file".into(),
            },
        };
        assert_eq!(
            chain(&parse),
            ["cannot parse /proc/self/statm", "statm: empty file"]
        );
    }

    #[test]
    fn messages_name_the_budget_and_the_setting() {
        let cases = [
            (
                Error::InvalidShare {
                    budget: BudgetKind::Threads,
                    which: Share::Hard,
                    value: 1.5,
                },
                "the thread budget's hard share must be within (0, 1], got 1.5",
            ),
            (
                Error::SoftAboveHard {
                    budget: BudgetKind::Memory,
                    soft: 0.9,
                    hard: 0.5,
                },
                "the memory budget's soft share (0.9) must not exceed its hard share (0.5)",
            ),
            (
                Error::ZeroInterval {
                    budget: BudgetKind::Threads,
                },
                "the thread sampler's interval must be greater than zero",
            ),
            (
                Error::NoLimit {
                    limit: MissingLimit::MemTotal,
                },
                "no physical memory size (MemTotal in /proc/meminfo) to take a fraction of",
            ),
            (
                Error::io(
                    IoOp::List,
                    "/proc",
                    io::Error::from_raw_os_error(libc::EMFILE),
                ),
                "cannot list /proc",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert!(e.source().is_none() || matches!(e, Error::Io { .. }));
        }
    }
}
