//! What an exit status means: `crashguard explain 137`.
//!
//! An exit status is one byte, and several conventions share it: crashguard's own codes
//! ([`ExitCode`]), C and the shells, BSD's sysexits, container runtimes, systemd, and `128 + n`
//! for a death by signal `n`. [`explain`] lists every meaning that applies, most specific first,
//! with the usual causes and where to look, so an operator staring at "exited with 253" or "137"
//! has somewhere to start.

mod codes;
mod signals;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exit_code::ExitCode;

/// Who gives an exit status its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// crashguard's own [`ExitCode`] table.
    Crashguard,
    /// C (`EXIT_SUCCESS`, `EXIT_FAILURE`) and widespread practice.
    Convention,
    /// The LSB init-script codes for the `start` action.
    Lsb,
    /// BSD's `sysexits.h`.
    Sysexits,
    /// The shells and the commands they run (`timeout`, `exit`).
    Shell,
    /// Docker and other container runtimes.
    Docker,
    /// Death by a signal, reported as `128 + n`.
    Signal,
    /// systemd's service manager, when setting up a service failed.
    Systemd,
    /// The Rust standard library.
    Rust,
    /// Nobody: the code is whatever the application chose.
    Application,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Crashguard => "crashguard",
            Source::Convention => "convention",
            Source::Lsb => "LSB init script",
            Source::Sysexits => "sysexits.h",
            Source::Shell => "shell",
            Source::Docker => "docker",
            Source::Signal => "signal",
            Source::Systemd => "systemd",
            Source::Rust => "Rust",
            Source::Application => "application",
        }
    }
}

/// One interpretation of an exit status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Meaning {
    /// Who assigns this meaning.
    pub source: Source,
    /// The symbolic name: `memory_budget`, `EX_SOFTWARE`, `SIGKILL`, `EXIT_EXEC`, ...
    pub name: String,
    /// What it means, one line.
    pub description: String,
    /// What usually produces it, most likely first.
    pub causes: Vec<String>,
    /// Where to look to find out which cause it was.
    pub checks: Vec<String>,
}

/// The signal behind a `128 + n` status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SignalRef {
    /// The signal number `n`.
    pub number: u8,
    /// Its name, e.g. `SIGKILL`.
    pub name: String,
}

/// Everything known about one exit status; `Display` renders it as multi-line text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The status explained.
    pub status: u8,
    /// One line: the most likely meaning.
    pub summary: String,
    /// The crashguard [`ExitCode::name`] when the status is one of crashguard's codes.
    pub crashguard_code: Option<String>,
    /// The signal when the status is `128 + n` for a Linux signal `n`.
    pub signal: Option<SignalRef>,
    /// Every meaning that applies, most specific first.
    pub meanings: Vec<Meaning>,
    /// Background that applies to this range of statuses.
    pub notes: Vec<String>,
}

/// Explains any exit status.
///
/// Never fails: a status nobody assigns a meaning to is explained as application-specific.
pub fn explain(status: u8) -> Explanation {
    let mut meanings = Vec::new();
    let crashguard = ExitCode::from_code(status);
    if let Some(code) = crashguard {
        meanings.push(crashguard_meaning(code));
    }

    let signal = status.checked_sub(128).and_then(signals::signal_text);
    if let Some(text) = &signal {
        let name = signals::name_of(text.number);
        meanings.push(Meaning {
            source: Source::Signal,
            name: name.clone(),
            description: text.description.to_owned(),
            causes: strings(text.causes),
            checks: strings(text.checks),
        });
    }

    for t in codes::conventional(status) {
        meanings.push(Meaning {
            source: t.source,
            name: t.name.to_owned(),
            description: t.description.to_owned(),
            causes: strings(t.causes),
            checks: strings(t.checks),
        });
    }

    if meanings.is_empty() {
        meanings.push(Meaning {
            source: Source::Application,
            name: "application-specific".to_owned(),
            description: "no standard assigns this status; it is whatever the program (or its entrypoint script) chose".to_owned(),
            causes: strings(&[
                "the program's own exit(n) for one of its error conditions",
                "a wrapper or entrypoint script that maps failures to its own codes",
            ]),
            checks: strings(&[
                "the program's documentation or source for `exit(n)` with this value",
                "the program's last log lines (`docker logs`, `journalctl -u <unit>`)",
            ]),
        });
    }

    let summary = match (crashguard, &signal) {
        (Some(code), _) => format!("crashguard {}: {}", code.name(), code.meaning()),
        (None, Some(text)) => {
            format!(
                "killed by signal {} ({})",
                text.number,
                signals::name_of(text.number)
            )
        }
        (None, None) => meanings
            .first()
            .map(|m| format!("{}: {}", m.name, m.description))
            .unwrap_or_default(),
    };

    Explanation {
        status,
        summary,
        crashguard_code: crashguard.map(|c| c.name().to_owned()),
        signal: signal.map(|t| SignalRef {
            number: t.number,
            name: signals::name_of(t.number),
        }),
        notes: notes(status),
        meanings,
    }
}

fn crashguard_meaning(code: ExitCode) -> Meaning {
    let (causes, checks): (&[&str], &[&str]) = match code.code() {
        0 => (
            &[
                "the program returned from main or called exit(0); with crashguard, also a graceful shutdown whose hooks finished within the grace period",
            ],
            &[],
        ),
        70 => (
            &[
                "a panic that crashguard's panic policy turned into a deliberate exit (instead of Rust's default 101 or an abort)",
            ],
            &["`crashguard show <report dir>`: the panic message, location, thread and backtrace"],
        ),
        80 => (
            &[
                "the BudgetAllocator refused an allocation over the hard budget, or the inner allocator failed",
                "the memory sampler saw RSS or the cgroup's usage cross the hard share of the limit and shut down before the kernel OOM killer could send SIGKILL (137)",
            ],
            &[
                "`crashguard show <report dir>`: the refused request, live heap, budget and the last resource heartbeat",
            ],
        ),
        81 => (
            &[
                "a thread could not be spawned within the thread budget, or the OS refused a new thread (RLIMIT_NPROC, cgroup pids.max, kernel.threads-max), possibly because a neighbour process leaked threads",
            ],
            &[
                "`crashguard show <report dir>`: the thread census by name and the limit that applied",
            ],
        ),
        82 => (
            &["a shutdown hook did not finish before the grace period ended"],
            &[
                "`crashguard show <report dir>`: which hook was running or timed out, and for how long",
            ],
        ),
        83 => (
            &[
                "a second SIGTERM/SIGINT arrived while the graceful shutdown was still running (an impatient operator or orchestrator)",
            ],
            &["`crashguard show <report dir>`: the signals, their senders and the hooks' progress"],
        ),
        84 => (
            &["the crash handler itself faulted or its watchdog expired while recording a crash"],
            &[
                "`crashguard inspect <black box>`: whatever part of the record was completed",
                "please report it: this is a crashguard bug",
            ],
        ),
        _ => (&[], &[]),
    };
    Meaning {
        source: Source::Crashguard,
        name: code.name().to_owned(),
        description: code.meaning().to_owned(),
        causes: strings(causes),
        checks: strings(checks),
    }
}

fn notes(status: u8) -> Vec<String> {
    let mut notes = Vec::new();
    if status > 128 && status <= 192 {
        notes.push(
            "A shell ($?), docker (State.ExitCode) and Kubernetes (exitCode) report a death by signal n as 128+n. \
             waitpid() reports it as \"killed by signal n\" (WIFSIGNALED, WTERMSIG), and systemd as code=killed status=n. \
             A process can also exit with 128+n itself (crashguard's FatalPolicy::Exit does, after writing its report); \
             waitpid tells the two apart."
                .to_owned(),
        );
        notes.push(
            "Signal numbers are Linux's (x86, ARM, RISC-V); MIPS, SPARC and Alpha number some signals differently."
                .to_owned(),
        );
    }
    if (193..=199).contains(&status) || (244..=254).contains(&status) {
        notes.push(
            "Statuses above 192 that are not systemd's are application-specific. A container that exits 253, for example, \
             exited with a code its entrypoint chose (one such case: a volume mounted over a directory the image lacked), \
             not with a code docker defines: read `docker logs` for the container."
                .to_owned(),
        );
    }
    if (244..=254).contains(&status) {
        notes.push(
            "Newer systemd versions use a few codes just above 243 for further setup steps (e.g. BPF restrictions); \
             for a systemd service, `systemctl status <unit>` names them."
                .to_owned(),
        );
    }
    if status != 0 {
        notes.push(
            "If the process ran with crashguard, `crashguard show <report dir>` prints what it recorded about this exit."
                .to_owned(),
        );
    }
    notes.push(
        "Only the low 8 bits of an exit status survive: exit(256) is seen as 0, exit(-1) as 255."
            .to_owned(),
    );
    notes
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit status {}: {}", self.status, self.summary)?;
        for m in &self.meanings {
            writeln!(f)?;
            writeln!(f, "[{}] {}: {}", m.source.label(), m.name, m.description)?;
            if !m.causes.is_empty() {
                writeln!(f, "  usual causes:")?;
                for c in &m.causes {
                    writeln!(f, "    - {c}")?;
                }
            }
            if !m.checks.is_empty() {
                writeln!(f, "  what to check:")?;
                for c in &m.checks {
                    writeln!(f, "    - {c}")?;
                }
            }
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
            writeln!(f, "notes:")?;
            for n in &self.notes {
                writeln!(f, "  - {n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_crashguard_code_explains_as_itself() {
        for code in ExitCode::ALL {
            let e = explain(code.code());
            assert_eq!(e.crashguard_code.as_deref(), Some(code.name()), "{code}");
            let first = e.meanings.first().expect("a meaning");
            assert_eq!(first.source, Source::Crashguard);
            assert_eq!(first.name, code.name());
            assert_eq!(first.description, code.meaning());
            assert!(e.to_string().contains(code.meaning()), "{code}");
        }
    }

    #[test]
    fn seventy_is_both_panic_and_ex_software() {
        let e = explain(70);
        let names: Vec<_> = e.meanings.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["panic", "EX_SOFTWARE"]);
    }

    #[test]
    fn sigkill_mentions_the_oom_killer_and_the_verdict() {
        let e = explain(137);
        assert_eq!(
            e.signal,
            Some(SignalRef {
                number: 9,
                name: "SIGKILL".to_owned()
            })
        );
        let text = e.to_string();
        for needle in [
            "OOM killer",
            "dmesg",
            "memory.events",
            "killed_without_warning",
            "likely OOM-killed",
            "docker stop",
        ] {
            assert!(text.contains(needle), "137 lacks {needle:?}:\n{text}");
        }
    }

    #[test]
    fn common_signals() {
        for (status, name, needle) in [
            (139, "SIGSEGV", "stack_overflow"),
            (143, "SIGTERM", "docker stop"),
            (134, "SIGABRT", "memory allocation of N bytes failed"),
            (130, "SIGINT", "Ctrl-C"),
            (141, "SIGPIPE", "pipe"),
            (159, "SIGSYS", "seccomp"),
        ] {
            let e = explain(status);
            assert_eq!(e.signal.as_ref().map(|s| s.name.as_str()), Some(name));
            assert!(e.to_string().contains(needle), "{status} lacks {needle:?}");
            assert!(e.to_string().contains("waitpid"), "{status}");
        }
        assert_eq!(
            explain(192).signal.map(|s| s.name),
            Some("SIGRTMAX".to_owned())
        );
        assert_eq!(explain(193).signal, None);
    }

    #[test]
    fn other_conventions() {
        assert!(explain(0).meanings.iter().any(|m| m.name == "EXIT_SUCCESS"));
        assert_eq!(explain(1).meanings[0].name, "EXIT_FAILURE");
        assert_eq!(explain(64).meanings[0].name, "EX_USAGE");
        assert_eq!(explain(101).meanings[0].source, Source::Rust);
        assert_eq!(explain(125).meanings[0].source, Source::Docker);
        assert_eq!(explain(126).meanings[0].name, "not executable");
        assert_eq!(explain(127).meanings[0].name, "command not found");
        assert_eq!(explain(203).meanings[0].name, "EXIT_EXEC");
        assert!(explain(255).to_string().contains("ssh"));
        let e = explain(253);
        assert_eq!(e.meanings[0].source, Source::Application);
        assert!(e.to_string().contains("docker logs"));
        assert_eq!(explain(42).meanings[0].source, Source::Application);
    }

    #[test]
    fn json_round_trip() {
        let e = explain(137);
        let json = serde_json::to_string(&e).expect("serialize");
        let back: Explanation = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, e);
        assert!(json.contains("\"source\":\"signal\""));
    }

    proptest! {
        #[test]
        fn never_panics_and_always_says_something(status in any::<u8>()) {
            let e = explain(status);
            prop_assert_eq!(e.status, status);
            prop_assert!(!e.meanings.is_empty());
            prop_assert!(!e.summary.is_empty());
            let text = e.to_string();
            let prefix = format!("exit status {status}: ");
            prop_assert!(text.starts_with(&prefix));
        }
    }
}
