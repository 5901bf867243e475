//! The one table of exit codes crashguard uses. `docs/exit-codes.md`, the rustdoc below and
//! `crashguard explain` are generated from or tested against [`ExitCode::ALL`].

use crate::outcome::Outcome;
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
///
/// The application's own codes (1, 2, the BSD `sysexits` 64–78, anything from 1 to 125 that is
/// not one of crashguard's 80–84) are made with [`ExitCode::app`]: `guard.exit(ExitCode::app(69)?)`
/// runs the shutdown as usual and the report says `exit` with status 69, not `panic`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// Clean exit, or graceful shutdown completed within the grace period.
    Ok,
    /// Unhandled panic (`EX_SOFTWARE`).
    Panic,
    /// Memory budget exhausted.
    MemoryBudget,
    /// Thread budget exhausted.
    ThreadBudget,
    /// Graceful shutdown missed its deadline; forced exit.
    ShutdownTimeout,
    /// Second termination signal during shutdown; immediate exit.
    ForcedShutdown,
    /// The crash handler itself faulted or timed out.
    HandlerFailure,
    /// The application's own code, made with [`ExitCode::app`]; the report's outcome is `exit`.
    App(AppCode),
}

/// An application exit code that [`ExitCode::app`] accepted: 1–125, except crashguard's own
/// 80–84.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppCode(u8);

impl AppCode {
    /// The numeric exit status.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Why [`ExitCode::app`] refused a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReservedExitCode {
    /// 0 is success: use [`ExitCode::Ok`], which records a clean exit.
    Zero(u8),
    /// 80–84 are crashguard's own documented codes.
    Crashguard(u8),
    /// 126 and up belong to the shells (126, 127), the `128 + signal` convention and
    /// out-of-range statuses; an operator would read them as something else.
    Reserved(u8),
}

impl std::fmt::Display for ReservedExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReservedExitCode::Zero(_) => {
                f.write_str("exit code 0 is success: use ExitCode::Ok, which records a clean exit")
            }
            ReservedExitCode::Crashguard(c) => write!(
                f,
                "exit code {c} is one of crashguard's own codes (80-84); pick another (sysexits 64-78, or 1-125)"
            ),
            ReservedExitCode::Reserved(c) => write!(
                f,
                "exit code {c} is reserved for shells (126, 127) and 128+signal; pick one of 1-125"
            ),
        }
    }
}

impl std::error::Error for ReservedExitCode {}

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

    /// The application's own exit code `code`, for [`crate::ExitCode`]-taking APIs such as
    /// `Guard::exit`. Accepts 1–125 except crashguard's 80–84: generic failures (1, 2), the BSD
    /// `sysexits` codes 64–78 (`EX_UNAVAILABLE` 69, `EX_CONFIG` 78, ...) and any other code of
    /// the application's choosing.
    ///
    /// ```
    /// use crashguard_blackbox::ExitCode;
    /// let unavailable = ExitCode::app(69).expect("not reserved");
    /// assert_eq!(unavailable.code(), 69);
    /// assert!(ExitCode::app(82).is_err());
    /// ```
    pub const fn app(code: u8) -> Result<ExitCode, ReservedExitCode> {
        match code {
            0 => Err(ReservedExitCode::Zero(code)),
            80..=84 => Err(ReservedExitCode::Crashguard(code)),
            126..=255 => Err(ReservedExitCode::Reserved(code)),
            _ => Ok(ExitCode::App(AppCode(code))),
        }
    }

    /// The numeric exit status.
    ///
    /// Async-signal-safe.
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Panic => 70,
            ExitCode::MemoryBudget => 80,
            ExitCode::ThreadBudget => 81,
            ExitCode::ShutdownTimeout => 82,
            ExitCode::ForcedShutdown => 83,
            ExitCode::HandlerFailure => 84,
            ExitCode::App(c) => c.0,
        }
    }

    /// The report outcome recorded when the process ends with this code on purpose: the
    /// code's own outcome, `exit` for an application's code.
    ///
    /// Async-signal-safe.
    pub const fn outcome(self) -> Outcome {
        match self {
            ExitCode::Ok => Outcome::CleanExit,
            ExitCode::Panic => Outcome::Panic,
            ExitCode::MemoryBudget => Outcome::MemoryBudget,
            ExitCode::ThreadBudget => Outcome::ThreadBudget,
            ExitCode::ShutdownTimeout => Outcome::ShutdownTimeout,
            ExitCode::ForcedShutdown => Outcome::ForcedShutdown,
            ExitCode::HandlerFailure => Outcome::HandlerFailure,
            ExitCode::App(_) => Outcome::Exit,
        }
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
            ExitCode::App(_) => "exit",
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
            ExitCode::App(_) => "the application's own exit code",
        }
    }

    /// The code with this numeric value, if it is one of crashguard's own (never an
    /// [`ExitCode::App`]).
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

    #[test]
    fn application_codes_are_accepted_except_reserved_ones() {
        for n in 0..=255u8 {
            let r = ExitCode::app(n);
            let reserved = n == 0 || (80..=84).contains(&n) || n >= 126;
            assert_eq!(r.is_err(), reserved, "{n}: {r:?}");
            if let Ok(c) = r {
                assert_eq!(c.code(), n);
                assert_eq!(c.name(), "exit");
                assert_eq!(c.outcome(), Outcome::Exit);
                assert_eq!(ExitCode::from_code(n).filter(|k| *k == c), None);
            }
        }
        for c in ExitCode::ALL {
            assert_ne!(c.outcome(), Outcome::Exit, "{c}");
        }
        assert!(
            ExitCode::app(82)
                .unwrap_err()
                .to_string()
                .contains("crashguard")
        );
    }
}
