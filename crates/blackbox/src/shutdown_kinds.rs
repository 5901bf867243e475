//! The two closed vocabularies of a report's shutdown section: [`ShutdownTrigger`] (what
//! started it) and [`HookStatus`] (what became of each hook). Each enum owns the mapping from
//! the record's numbers (`layout::REASON_*`, `layout::HOOK_*`) and its JSON name.

use serde::{Deserialize, Serialize};

use crate::layout::*;

/// What started a graceful shutdown (`shutdown.reason` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShutdownTrigger {
    /// A termination signal (`shutdown.signal` says which and who sent it).
    Signal,
    /// The application asked (`Guard::shutdown`, `Guard::exit`, a shutdown request).
    App,
    /// The memory budget's hard threshold.
    MemoryBudget,
    /// The thread budget's hard threshold.
    ThreadBudget,
    /// A panic under a policy that ends the process.
    Panic,
    /// A number this reader does not know (a record from a newer writer).
    Unknown,
}

impl ShutdownTrigger {
    /// The trigger a record's `reason` number stands for.
    ///
    /// Async-signal-safe.
    pub const fn from_code(code: u32) -> ShutdownTrigger {
        match code {
            REASON_SIGNAL => ShutdownTrigger::Signal,
            REASON_APP => ShutdownTrigger::App,
            REASON_MEMORY => ShutdownTrigger::MemoryBudget,
            REASON_THREADS => ShutdownTrigger::ThreadBudget,
            REASON_PANIC => ShutdownTrigger::Panic,
            _ => ShutdownTrigger::Unknown,
        }
    }

    /// The number the record stores (0 for `Unknown`, which no writer stores).
    ///
    /// Async-signal-safe.
    pub const fn code(self) -> u32 {
        match self {
            ShutdownTrigger::Signal => REASON_SIGNAL,
            ShutdownTrigger::App => REASON_APP,
            ShutdownTrigger::MemoryBudget => REASON_MEMORY,
            ShutdownTrigger::ThreadBudget => REASON_THREADS,
            ShutdownTrigger::Panic => REASON_PANIC,
            ShutdownTrigger::Unknown => 0,
        }
    }

    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ShutdownTrigger::Signal => "signal",
            ShutdownTrigger::App => "app",
            ShutdownTrigger::MemoryBudget => "memory_budget",
            ShutdownTrigger::ThreadBudget => "thread_budget",
            ShutdownTrigger::Panic => "panic",
            ShutdownTrigger::Unknown => "unknown",
        }
    }
}

/// What became of one shutdown hook (`shutdown.hooks[].status` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HookStatus {
    /// Not started (also any number this reader does not know).
    Pending,
    /// Returned normally.
    Ok,
    /// Panicked.
    Panicked,
    /// Its own timeout or the grace deadline passed while it ran.
    TimedOut,
    /// Never started because the deadline had passed.
    Skipped,
    /// Still running when the record was last written.
    Running,
}

impl HookStatus {
    /// The status a record's number stands for; unknown numbers read as `Pending`.
    ///
    /// Async-signal-safe.
    pub const fn from_code(code: u32) -> HookStatus {
        match code {
            HOOK_OK => HookStatus::Ok,
            HOOK_PANICKED => HookStatus::Panicked,
            HOOK_TIMED_OUT => HookStatus::TimedOut,
            HOOK_SKIPPED => HookStatus::Skipped,
            HOOK_RUNNING => HookStatus::Running,
            _ => HookStatus::Pending,
        }
    }

    /// The number the record stores.
    ///
    /// Async-signal-safe.
    pub const fn code(self) -> u32 {
        match self {
            HookStatus::Pending => HOOK_PENDING,
            HookStatus::Ok => HOOK_OK,
            HookStatus::Panicked => HOOK_PANICKED,
            HookStatus::TimedOut => HOOK_TIMED_OUT,
            HookStatus::Skipped => HOOK_SKIPPED,
            HookStatus::Running => HOOK_RUNNING,
        }
    }

    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookStatus::Pending => "pending",
            HookStatus::Ok => "ok",
            HookStatus::Panicked => "panicked",
            HookStatus::TimedOut => "timed_out",
            HookStatus::Skipped => "skipped",
            HookStatus::Running => "running",
        }
    }
}

macro_rules! named {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with the JSON name, so `info.reason == "signal"` reads as it did when the
        /// field was a string.
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
named!(ShutdownTrigger);
named!(HookStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for t in [
            ShutdownTrigger::Signal,
            ShutdownTrigger::App,
            ShutdownTrigger::MemoryBudget,
            ShutdownTrigger::ThreadBudget,
            ShutdownTrigger::Panic,
        ] {
            assert_eq!(ShutdownTrigger::from_code(t.code()), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
        }
        assert_eq!(ShutdownTrigger::from_code(99), ShutdownTrigger::Unknown);
        for h in [
            HookStatus::Pending,
            HookStatus::Ok,
            HookStatus::Panicked,
            HookStatus::TimedOut,
            HookStatus::Skipped,
            HookStatus::Running,
        ] {
            assert_eq!(HookStatus::from_code(h.code()), h);
            assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{h}\""));
        }
        assert_eq!(HookStatus::TimedOut, "timed_out");
    }
}
