//! Why a shutdown was requested: [`ShutdownReason`] and the typed details of each kind.
//!
//! Every closed set is an enum or a number, so that an application (or a test) can match on
//! what happened instead of parsing a sentence; only what is free text by nature stays text (a
//! panic's message, the words the application passed to `request_shutdown`). `Display` gives
//! the sentence the end record's detail, the breadcrumbs and the tracing events carry.

use std::fmt;

use crashguard_blackbox::{ExitCode, ShutdownTrigger};
use crashguard_budget::memory::Measure;
use crashguard_budget::thread::{Limit, SpawnError};
use crashguard_signals::{Signal, TermSignal};

/// Why a shutdown was requested.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// A termination signal arrived.
    Signal {
        /// Which.
        signal: Signal,
        /// The sending process, when the kernel said.
        sender_pid: Option<u32>,
        /// The sending user, when the kernel said.
        sender_uid: Option<u32>,
    },
    /// The application asked.
    App(AppRequest),
    /// The memory budget's shutdown threshold was crossed.
    MemoryBudget(MemoryOverrun),
    /// The thread budget's hard threshold was crossed.
    ThreadBudget(ThreadOverrun),
    /// A panic, under [`crate::PanicPolicy::ExitProcess`] or
    /// [`crate::PanicPolicy::ExitAfterUnwind`].
    Panic(PanicDetails),
}

impl ShutdownReason {
    /// The kind, in the report's vocabulary (the `shutdown.reason` of the next run's report).
    pub fn trigger(&self) -> ShutdownTrigger {
        match self {
            ShutdownReason::Signal { .. } => ShutdownTrigger::Signal,
            ShutdownReason::App(_) => ShutdownTrigger::App,
            ShutdownReason::MemoryBudget(_) => ShutdownTrigger::MemoryBudget,
            ShutdownReason::ThreadBudget(_) => ShutdownTrigger::ThreadBudget,
            ShutdownReason::Panic(_) => ShutdownTrigger::Panic,
        }
    }
}

/// What the application asked for ([`ShutdownReason::App`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppRequest {
    /// [`crate::Guard::request_shutdown`], with the application's own words.
    Requested(String),
    /// [`crate::Guard::exit`] with this code, before any other request.
    Exit(ExitCode),
    /// [`crate::Guard::shutdown`] with this code, before any other request.
    Shutdown(ExitCode),
}

impl fmt::Display for AppRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppRequest::Requested(why) => f.write_str(why),
            AppRequest::Exit(code) => write!(f, "exit with {code}"),
            AppRequest::Shutdown(code) => write!(f, "shutdown with {code}"),
        }
    }
}

/// The memory sample that crossed the shutdown threshold ([`ShutdownReason::MemoryBudget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryOverrun {
    /// What was measured.
    pub measure: Measure,
    /// The usage at that sample, in bytes.
    pub used_bytes: u64,
    /// The threshold it crossed, in bytes.
    pub threshold_bytes: u64,
}

impl MemoryOverrun {
    pub(crate) fn new(measure: Measure, used_bytes: u64, threshold_bytes: u64) -> Self {
        MemoryOverrun {
            measure,
            used_bytes,
            threshold_bytes,
        }
    }
}

impl fmt::Display for MemoryOverrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} bytes crossed the shutdown threshold of {} bytes",
            self.measure.name(),
            self.used_bytes,
            self.threshold_bytes
        )
    }
}

/// How the thread budget was overrun ([`ShutdownReason::ThreadBudget`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadOverrun {
    /// The thread sampler counted more threads than the hard limit.
    Count {
        /// Threads counted.
        threads: u64,
        /// The hard limit.
        limit: u64,
    },
    /// A guarded spawn was refused under [`crate::ThreadPolicy::Exit`].
    Spawn {
        /// True when the OS refused the thread; false when crashguard's budget did.
        os_refused: bool,
        /// The limit that was exhausted, when the diagnosis found one (its kind, use and
        /// maximum).
        exhausted: Option<Limit>,
        /// The diagnosis in one line (the limit hit and the largest thread group).
        summary: String,
    },
}

impl ThreadOverrun {
    pub(crate) fn from_spawn_error(err: &SpawnError) -> Self {
        ThreadOverrun::Spawn {
            os_refused: err.is_os_refusal(),
            exhausted: err.diagnosis().and_then(|d| d.exhausted_limit()).cloned(),
            summary: err.summary(),
        }
    }
}

impl fmt::Display for ThreadOverrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadOverrun::Count { threads, limit } => {
                write!(f, "{threads} threads crossed the hard limit of {limit}")
            }
            ThreadOverrun::Spawn { summary, .. } => f.write_str(summary),
        }
    }
}

/// The panic that started the shutdown ([`ShutdownReason::Panic`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PanicDetails {
    /// The panic's message (its payload, when a string).
    pub message: String,
    /// The source file of the panic, when std knew it.
    pub file: Option<String>,
    /// The line in `file`.
    pub line: Option<u32>,
    /// Which panic of the run this was, from 1.
    pub number: u64,
}

impl fmt::Display for PanicDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            write!(f, " at {file}:{line}")?;
        }
        if self.number > 1 {
            write!(f, " (panic {} of the run)", self.number)?;
        }
        Ok(())
    }
}

impl From<TermSignal> for ShutdownReason {
    fn from(t: TermSignal) -> Self {
        ShutdownReason::Signal {
            signal: t.signal,
            sender_pid: t.sender_pid,
            sender_uid: t.sender_uid,
        }
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownReason::Signal {
                signal,
                sender_pid,
                sender_uid,
            } => {
                write!(f, "{signal}")?;
                if let Some(pid) = sender_pid {
                    write!(f, " from pid {pid}")?;
                }
                if let Some(uid) = sender_uid {
                    write!(f, " (uid {uid})")?;
                }
                Ok(())
            }
            ShutdownReason::App(why) => write!(f, "requested by the application: {why}"),
            ShutdownReason::MemoryBudget(o) => write!(f, "memory budget: {o}"),
            ShutdownReason::ThreadBudget(o) => write!(f, "thread budget: {o}"),
            ShutdownReason::Panic(p) => write!(f, "panic: {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_as_before_and_names_its_report_trigger() {
        let cases = [
            (
                ShutdownReason::Signal {
                    signal: Signal::SIGTERM,
                    sender_pid: Some(7),
                    sender_uid: Some(0),
                },
                "SIGTERM from pid 7 (uid 0)",
                "signal",
            ),
            (
                ShutdownReason::App(AppRequest::Requested("config reload".into())),
                "requested by the application: config reload",
                "app",
            ),
            (
                ShutdownReason::App(AppRequest::Exit(ExitCode::Ok)),
                "requested by the application: exit with 0 (ok)",
                "app",
            ),
            (
                ShutdownReason::MemoryBudget(MemoryOverrun::new(Measure::Heap, 950, 900)),
                "memory budget: heap 950 bytes crossed the shutdown threshold of 900 bytes",
                "memory_budget",
            ),
            (
                ShutdownReason::ThreadBudget(ThreadOverrun::Count {
                    threads: 70,
                    limit: 64,
                }),
                "thread budget: 70 threads crossed the hard limit of 64",
                "thread_budget",
            ),
            (
                ShutdownReason::Panic(PanicDetails {
                    message: "boom".into(),
                    file: Some("src/main.rs".into()),
                    line: Some(3),
                    number: 2,
                }),
                "panic: boom at src/main.rs:3 (panic 2 of the run)",
                "panic",
            ),
        ];
        for (reason, text, trigger) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(reason.trigger().as_str(), trigger, "{reason}");
        }
    }
}
