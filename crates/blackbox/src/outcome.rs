//! [`Outcome`]: the one vocabulary for how a run ended. The record stores [`Outcome::code`],
//! the reader maps it back with [`Outcome::from_code`], and the report's JSON, the termination
//! log, the shutdown runner, `Report`'s `Display` and the CLI all name it with
//! [`Outcome::as_str`].

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The process exited normally or finished a graceful shutdown in time.
    CleanExit,
    /// A fatal signal (SIGSEGV, SIGABRT, ...) ended it.
    FatalSignal,
    /// An unhandled panic ended it.
    Panic,
    /// The memory budget ended it.
    MemoryBudget,
    /// The thread budget ended it.
    ThreadBudget,
    /// Graceful shutdown missed its deadline.
    ShutdownTimeout,
    /// A second termination signal cut the shutdown short.
    ForcedShutdown,
    /// The process vanished without any handler running: SIGKILL, the OOM killer, power loss.
    KilledWithoutWarning,
    /// The crash handler itself faulted or timed out.
    HandlerFailure,
    /// The process exited on its own terms rather than through a crashguard shutdown:
    /// `std::process::exit`, `libc::exit`, `main` returning a status other than the one
    /// recorded, or `Guard::exit` with an application's own code ([`crate::ExitCode::app`]).
    /// `exit_code` is the status when it could be known.
    Exit,
}

impl Outcome {
    /// Every outcome, in the order of their codes (`KilledWithoutWarning`, which is never
    /// recorded, last).
    pub const ALL: [Outcome; 10] = [
        Outcome::CleanExit,
        Outcome::FatalSignal,
        Outcome::Panic,
        Outcome::MemoryBudget,
        Outcome::ThreadBudget,
        Outcome::ShutdownTimeout,
        Outcome::ForcedShutdown,
        Outcome::HandlerFailure,
        Outcome::Exit,
        Outcome::KilledWithoutWarning,
    ];

    /// The number stored in the record's `end` section ([`crate::layout::End::outcome`]); the
    /// numbering is part of the file format. `KilledWithoutWarning` is what a record *without*
    /// an end means and is never stored; its code, 0, is one no writer records.
    ///
    /// Async-signal-safe.
    pub const fn code(self) -> u32 {
        match self {
            Outcome::KilledWithoutWarning => 0,
            Outcome::CleanExit => 1,
            Outcome::FatalSignal => 2,
            Outcome::Panic => 3,
            Outcome::MemoryBudget => 4,
            Outcome::ThreadBudget => 5,
            Outcome::ShutdownTimeout => 6,
            Outcome::ForcedShutdown => 7,
            Outcome::HandlerFailure => 8,
            Outcome::Exit => 9,
        }
    }

    /// The outcome a recorded code stands for; `None` for a code no writer records (0, or one
    /// from a newer writer).
    ///
    /// Async-signal-safe.
    pub const fn from_code(code: u32) -> Option<Outcome> {
        Some(match code {
            1 => Outcome::CleanExit,
            2 => Outcome::FatalSignal,
            3 => Outcome::Panic,
            4 => Outcome::MemoryBudget,
            5 => Outcome::ThreadBudget,
            6 => Outcome::ShutdownTimeout,
            7 => Outcome::ForcedShutdown,
            8 => Outcome::HandlerFailure,
            9 => Outcome::Exit,
            _ => return None,
        })
    }

    /// The snake_case name used in JSON, the termination log and the CLI.
    ///
    /// Async-signal-safe.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::CleanExit => "clean_exit",
            Outcome::FatalSignal => "fatal_signal",
            Outcome::Panic => "panic",
            Outcome::MemoryBudget => "memory_budget",
            Outcome::ThreadBudget => "thread_budget",
            Outcome::ShutdownTimeout => "shutdown_timeout",
            Outcome::ForcedShutdown => "forced_shutdown",
            Outcome::KilledWithoutWarning => "killed_without_warning",
            Outcome::HandlerFailure => "handler_failure",
            Outcome::Exit => "exit",
        }
    }

    /// Whether this outcome is worth an operator's attention.
    pub fn is_abnormal(self) -> bool {
        self != Outcome::CleanExit
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for o in Outcome::ALL {
            let expected = (o != Outcome::KilledWithoutWarning).then_some(o);
            assert_eq!(Outcome::from_code(o.code()), expected, "{o}");
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(Outcome::from_code(0), None);
        assert_eq!(Outcome::from_code(10), None);
    }
}
