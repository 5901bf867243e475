//! The one table of exit codes crashguard uses. `docs/exit-codes.md`, the rustdoc below and
//! `crashguard explain` are generated from or tested against [`ExitCode::ALL`].

/// The documented exit codes.
///
/// The values avoid 1–2 (too generic), 126–165 (shell conventions and `128 + signal`) and
/// 200–243 (systemd's own codes), so an operator can tell them apart from everything else.
///
/// | code | name | meaning |
/// |---:|---|---|
/// | 0 | `ok` | clean exit, or graceful shutdown completed within the grace period |
/// | 70 | `panic` | unhandled panic (`EX_SOFTWARE`) |
/// | 80 | `memory_budget` | memory budget exhausted before the kernel's OOM killer acted |
/// | 81 | `thread_budget` | thread budget exhausted |
/// | 82 | `shutdown_timeout` | graceful shutdown missed its deadline; forced exit |
/// | 83 | `forced_shutdown` | second termination signal during shutdown; immediate exit |
/// | 84 | `handler_failure` | the crash handler itself faulted or timed out |
/// | 128+n | | fatal signal n, when the fatal policy is `Exit` instead of re-raising |
#[repr(u8)]
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// Clean exit, or graceful shutdown completed within the grace period.
    Ok = 0,
    /// Unhandled panic (`EX_SOFTWARE`).
    Panic = 70,
    /// Memory budget exhausted.
    MemoryBudget = 80,
    /// Thread budget exhausted.
    ThreadBudget = 81,
    /// Graceful shutdown missed its deadline; forced exit.
    ShutdownTimeout = 82,
    /// Second termination signal during shutdown; immediate exit.
    ForcedShutdown = 83,
    /// The crash handler itself faulted or timed out.
    HandlerFailure = 84,
}

impl ExitCode {
    /// Every code, in numeric order.
    pub const ALL: [ExitCode; 7] = [
        ExitCode::Ok,
        ExitCode::Panic,
        ExitCode::MemoryBudget,
        ExitCode::ThreadBudget,
        ExitCode::ShutdownTimeout,
        ExitCode::ForcedShutdown,
        ExitCode::HandlerFailure,
    ];

    /// The numeric exit status.
    ///
    /// Async-signal-safe.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// A short snake_case name, matching the report's `outcome` where one exists.
    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Panic => "panic",
            ExitCode::MemoryBudget => "memory_budget",
            ExitCode::ThreadBudget => "thread_budget",
            ExitCode::ShutdownTimeout => "shutdown_timeout",
            ExitCode::ForcedShutdown => "forced_shutdown",
            ExitCode::HandlerFailure => "handler_failure",
        }
    }

    /// One sentence on what the code means.
    pub const fn meaning(self) -> &'static str {
        match self {
            ExitCode::Ok => "clean exit, or graceful shutdown completed within the grace period",
            ExitCode::Panic => "unhandled panic (EX_SOFTWARE)",
            ExitCode::MemoryBudget => {
                "memory budget exhausted: the allocator's hard limit, or usage crossed the configured share of the cgroup or RAM limit before the kernel OOM killer acted"
            }
            ExitCode::ThreadBudget => "thread budget exhausted",
            ExitCode::ShutdownTimeout => "graceful shutdown missed its deadline; forced exit",
            ExitCode::ForcedShutdown => "second termination signal during shutdown; immediate exit",
            ExitCode::HandlerFailure => "the crash handler itself faulted or timed out",
        }
    }

    /// The code with this numeric value, if it is one of crashguard's.
    pub fn from_code(code: u8) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_reserved_ranges() {
        for c in ExitCode::ALL {
            let n = c.code();
            assert!(
                !(1..=2).contains(&n) && !(126..=165).contains(&n) && !(200..=243).contains(&n),
                "{c}"
            );
            assert_eq!(ExitCode::from_code(n), Some(c));
        }
        let mut sorted = ExitCode::ALL.map(|c| c.code());
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ExitCode::ALL.map(|c| c.code()),
            "ALL is in numeric order"
        );
    }
}
