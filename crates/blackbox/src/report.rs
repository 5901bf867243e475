//! The report: what a black box says about how a run ended, in the JSON form documented in
//! `docs/report-format.md` (`schema_version` 1). `crashguard show --json` prints the same form.

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;
use crate::shutdown_kinds::{HookStatus, ShutdownTrigger};
use crate::time::Timestamp;

/// The schema version this crate writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The signal that ended the run (or asked it to shut down).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SignalInfo {
    /// Signal number.
    pub number: u32,
    /// `SIGSEGV`, ...; empty when unknown.
    pub name: String,
    /// `si_code`.
    pub code: i32,
    /// `SEGV_MAPERR`, `SI_USER`, ...; empty when unknown.
    pub code_name: String,
    /// The faulting address for SIGSEGV, SIGBUS, SIGILL and SIGFPE, as `0x...`.
    pub fault_address: Option<String>,
    /// The sending process, when the signal was sent (`kill`, `tgkill`, `sigqueue`).
    pub sender_pid: Option<u32>,
    /// The sending user, when the signal was sent.
    pub sender_uid: Option<u32>,
}

/// A thread, by kernel id and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadInfo {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name: the full name when the thread registered it in the black box's thread-name
    /// table (threads from `crashguard::thread::Builder`), else the name as recorded at the end
    /// (at most 15 bytes on Linux).
    pub name: String,
    /// The name as recorded at the end (the kernel keeps 15 bytes) when `name` is the longer one
    /// from the thread-name table; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_name: Option<String>,
}

/// A panic's message and location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PanicInfo {
    /// The payload, when it was a string.
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    /// The panicking thread.
    pub thread: Option<ThreadInfo>,
}

/// One stack frame. Raw fields come from the black box; `symbol`, `file` and `line` are filled by
/// symbolization after the fact (by the next run or the CLI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Frame {
    /// The absolute instruction pointer, as `0x...`.
    pub ip: String,
    /// Path of the module containing it, when known.
    pub module: Option<String>,
    /// Offset of `ip` from the module's load bias, as `0x...`: the address to look up in the file.
    pub offset: Option<String>,
    /// Build id of the module, hex, when known.
    pub build_id: Option<String>,
    /// Demangled function name.
    pub symbol: Option<String>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
}

/// One breadcrumb.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BreadcrumbInfo {
    /// When (RFC 3339 UTC text in the JSON, to the millisecond).
    pub at: Timestamp,
    /// Kernel thread id of the writer.
    pub thread: u32,
    /// The message.
    pub message: String,
}

/// The last resource sample before the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resources {
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Live heap bytes counted by `BudgetAllocator`.
    pub heap_bytes: Option<u64>,
    /// Threads in the process.
    pub threads: Option<u64>,
    /// Memory charged to the cgroup.
    pub cgroup_memory_current: Option<u64>,
    /// The cgroup's memory limit.
    pub cgroup_memory_max: Option<u64>,
    /// The cgroup's `oom_kill` counter.
    pub oom_kill_count: Option<u64>,
    /// The memory budget in force.
    pub memory_budget: Option<u64>,
    /// The thread budget in force.
    pub thread_budget: Option<u64>,
    /// When the sample was taken (RFC 3339 UTC text in the JSON).
    pub sampled_at: Timestamp,
}

/// The allocation that the memory budget refused (or that the allocator failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AllocationInfo {
    /// Bytes requested.
    pub request_bytes: u64,
    /// Alignment requested.
    pub align: u64,
    /// Live heap bytes at the time.
    pub live_bytes: u64,
    /// The hard budget, or `None` when the inner allocator itself failed.
    pub budget_bytes: Option<u64>,
    /// The requesting thread.
    pub tid: u32,
    /// When (RFC 3339 UTC text in the JSON, to the millisecond).
    pub at: Timestamp,
}

/// One shutdown hook's fate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HookInfo {
    /// Name given to `on_shutdown`.
    pub name: String,
    /// What became of it.
    pub status: HookStatus,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
}

/// The graceful shutdown, when one began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShutdownInfo {
    /// What started it.
    pub reason: ShutdownTrigger,
    /// The termination signal, when a signal asked.
    pub signal: Option<SignalInfo>,
    /// When the shutdown was requested (RFC 3339 UTC text in the JSON).
    pub requested_at: Timestamp,
    /// The grace period, in milliseconds.
    pub grace_ms: u64,
    /// Hooks in registration order.
    pub hooks: Vec<HookInfo>,
}

/// A thread-name group of a census.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CensusGroup {
    /// Threads whose names differ only in trailing digits share a group (`worker-`).
    pub name: String,
    /// Threads in the group.
    pub count: u32,
}

/// Threads alive when the run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThreadCensus {
    /// All threads counted.
    pub total: u32,
    /// The largest groups, largest first.
    pub groups: Vec<CensusGroup>,
}

/// A loaded module, as captured at install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModuleInfo {
    /// Path.
    pub path: String,
    /// Build id, hex.
    pub build_id: Option<String>,
    /// Lowest mapped address, `0x...`.
    pub start: String,
    /// One past the highest mapped address, `0x...` (absent from reports stored before it was
    /// recorded).
    #[serde(default)]
    pub end: Option<String>,
    /// Load bias, `0x...`.
    pub bias: String,
}

/// The crashing thread's machine state, recorded by the fatal handler: what a minidump writer
/// or an offline unwinder needs besides the modules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CrashContext {
    /// `x86_64` or `aarch64`.
    pub arch: String,
    /// The general-purpose registers at the fault, by name (`rip`, `rsp`, ... or `pc`, `sp`,
    /// `x0`, ...), each as `0x...`.
    pub registers: std::collections::BTreeMap<String, String>,
    /// The copied stack, from the stack pointer (x86-64: 128 bytes below it, the red zone)
    /// upwards, when it could be read.
    pub stack: Option<StackMemory>,
    /// The thread's known lowest stack address, `0x...`, when known.
    pub stack_low: Option<String>,
    /// One past the thread's highest stack address, `0x...`, when known.
    pub stack_high: Option<String>,
}

/// A copy of memory from the crashed process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StackMemory {
    /// Address of the first byte, `0x...`.
    pub start: String,
    /// Number of bytes.
    pub len: u32,
    /// The bytes, as lowercase hex (two digits a byte, no separators).
    pub bytes: String,
}

impl StackMemory {
    /// The bytes, decoded from hex; `None` if the text is not valid hex.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let hex = self.bytes.as_bytes();
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        hex.chunks_exact(2)
            .map(|pair| {
                let digit = |c: u8| (c as char).to_digit(16);
                Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
            })
            .collect()
    }

    /// The address of the first byte.
    pub fn start_address(&self) -> Option<u64> {
        u64::from_str_radix(self.start.trim_start_matches("0x"), 16).ok()
    }
}

/// Everything known about how one run ended. See `docs/report-format.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Application name given to `Config::new`.
    pub app: String,
    /// Process id of the run.
    pub pid: u32,
    /// When the run started (RFC 3339 UTC text in the JSON).
    pub started_at: Timestamp,
    /// When the run ended, when the end was recorded (RFC 3339 UTC text in the JSON).
    pub ended_at: Option<Timestamp>,
    /// How the run ended.
    pub outcome: Outcome,
    /// The crash signature: a grouping key computed without symbols (see [`crate::signature`]).
    /// Reports written before it existed read back with an empty string; fill it with
    /// [`Report::fill_signature`].
    #[serde(default)]
    pub signature: String,
    /// The exit status the run ended with (exit code, or `128 + n` for a signal), when known.
    pub exit_code: Option<u32>,
    /// The fatal signal, when one ended the run.
    pub signal: Option<SignalInfo>,
    /// The thread that ended the run.
    pub thread: Option<ThreadInfo>,
    /// Whether the fatal signal was a stack overflow.
    pub stack_overflow: bool,
    /// The panic, when one was recorded (also for `panic = "abort"` runs ending in SIGABRT).
    pub panic: Option<PanicInfo>,
    /// The crashing (or panicking) stack, innermost first.
    pub backtrace: Vec<Frame>,
    /// The last breadcrumbs, oldest first.
    pub breadcrumbs: Vec<BreadcrumbInfo>,
    /// The last resource heartbeat.
    pub resources: Option<Resources>,
    /// The allocation that exhausted the memory budget.
    pub allocation: Option<AllocationInfo>,
    /// The graceful shutdown, when one began.
    pub shutdown: Option<ShutdownInfo>,
    /// Threads alive at the end, when counted.
    pub threads: Option<ThreadCensus>,
    /// A free-form line from whoever ended the run (the limit hit, the hook that overran, ...).
    pub detail: Option<String>,
    /// For `killed_without_warning`: the most likely cause given the last heartbeat.
    pub verdict: Option<String>,
    /// Build id of the executable, hex.
    pub build_id: Option<String>,
    /// Path of the executable.
    pub executable: Option<String>,
    /// Loaded modules at install.
    pub modules: Vec<ModuleInfo>,
    /// crashguard's version in the run.
    pub crashguard_version: String,
    /// The crashing thread's registers and stack copy, for a fatal signal the handler recorded.
    /// Absent in reports written before it existed.
    #[serde(default)]
    pub context: Option<CrashContext>,
}

impl Report {
    /// Seconds the run lasted, when both ends are known.
    pub fn uptime_secs(&self) -> Option<f64> {
        Some(self.ended_at?.seconds_since(self.started_at).max(0.0))
    }

    /// Computes [`Report::signature`] when it is empty (a report stored before signatures
    /// existed, or one built by hand).
    pub fn fill_signature(&mut self) {
        if self.signature.is_empty() {
            self.signature = crate::signature::signature(self);
        }
    }

    /// What ended the run, in words: the phrase `Display` and the CLI's summary both use, so
    /// that every place says the same. For example `died of SIGSEGV (SEGV_MAPERR at 0x0):
    /// stack overflow`, `shut down cleanly on SIGTERM from pid 1`, `was killed without warning
    /// (likely OOM-killed: ...)`, `ran out of its memory budget: request of 4096 bytes with
    /// 536870912 live`.
    pub fn cause(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        match self.outcome {
            Outcome::CleanExit => match &self.shutdown {
                Some(ShutdownInfo {
                    signal: Some(sig), ..
                }) => {
                    let _ = write!(s, "shut down cleanly on {}", sig.name);
                    if let Some(pid) = sig.sender_pid {
                        let _ = write!(s, " from pid {pid}");
                    }
                }
                Some(sd) if sd.reason != ShutdownTrigger::Unknown => {
                    let _ = write!(s, "shut down cleanly ({})", sd.reason);
                }
                _ => s.push_str("exited cleanly"),
            },
            Outcome::FatalSignal => {
                s.push_str("died of ");
                match &self.signal {
                    Some(sig) => {
                        s.push_str(if sig.name.is_empty() {
                            "an unknown signal"
                        } else {
                            &sig.name
                        });
                        if !sig.code_name.is_empty() {
                            let _ = write!(s, " ({}", sig.code_name);
                            if let Some(a) = &sig.fault_address {
                                let _ = write!(s, " at {a}");
                            }
                            s.push(')');
                        }
                        if let Some(pid) = sig.sender_pid {
                            let _ = write!(s, " sent by pid {pid}");
                        }
                    }
                    None => s.push_str("a signal"),
                }
                if self.stack_overflow {
                    s.push_str(": stack overflow");
                }
            }
            Outcome::Panic => s.push_str("panicked"),
            Outcome::MemoryBudget => s.push_str("ran out of its memory budget"),
            Outcome::ThreadBudget => s.push_str("ran out of its thread budget"),
            Outcome::ShutdownTimeout => s.push_str("missed its shutdown deadline"),
            Outcome::ForcedShutdown => s.push_str("was forced down by a second termination signal"),
            Outcome::KilledWithoutWarning => s.push_str("was killed without warning"),
            Outcome::HandlerFailure => s.push_str("crashed inside its crash handler"),
            Outcome::Exit => match self.exit_code {
                Some(code) => {
                    let _ = write!(s, "exited with status {code}");
                }
                None => s.push_str("exited with an unknown status"),
            },
        }
        if let Some(a) = &self.allocation {
            let _ = write!(
                s,
                ": request of {} bytes with {} live",
                a.request_bytes, a.live_bytes
            );
        }
        if let Some(v) = &self.verdict {
            let _ = write!(s, " ({v})");
        }
        s
    }

    /// The report as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string map keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl std::fmt::Display for Report {
    /// One line: who died of what, where, and the last thing it said. Every string from the
    /// record is shown with its control characters escaped ([`crate::escape_control`]), so the
    /// line stays one line and cannot carry terminal escape sequences into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::escape::Escaped as E;
        write!(f, "{} (pid {}) ", E(&self.app), self.pid)?;
        write!(f, "{}", E(&self.cause()))?;
        // Which thread ran the clean exit says nothing; for everything else it matters.
        if let Some(t) = self
            .thread
            .as_ref()
            .filter(|_| self.outcome != Outcome::CleanExit)
        {
            if t.name.is_empty() {
                write!(f, " on thread {}", t.tid)?;
            } else {
                write!(f, " on thread '{}' ({})", E(&t.name), t.tid)?;
            }
        }
        if let Some(p) = &self.panic {
            write!(f, ": '{}' at {}", E(&p.message), E(&p.location))?;
        }
        if let Some(code) = self.exit_code.filter(|_| self.outcome != Outcome::Exit) {
            write!(f, ", exit status {code}")?;
        }
        if let Some(secs) = self.uptime_secs() {
            write!(f, " after {secs:.1} s")?;
        }
        if let Some(b) = self.breadcrumbs.last() {
            write!(f, "; last breadcrumb: \"{}\"", E(&b.message))?;
        }
        Ok(())
    }
}
