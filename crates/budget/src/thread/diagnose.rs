//! What a refused spawn found out: counts, limits, the census and the neighbours.

use std::fmt;

use super::budget::ThreadBudget;
use super::census::Census;
use super::limits::{self, Limit, LimitKind, Rlimits};
use super::procs::{ProcessInfo, ProcessTable};
use crate::kernel::{self, Roots};

/// Processes listed when a shared limit is nearly used up.
const TOP_PROCESSES: usize = 5;
/// Limits listed besides the one that was hit.
const LISTED_LIMITS: usize = 6;

/// The spawn that failed, as the diagnosis needs it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The name given to the builder.
    pub name: Option<String>,
    /// The stack size of the thread that was to be created.
    pub stack_bytes: u64,
    /// Guarded threads alive when the spawn failed.
    pub live_guarded: usize,
    /// The budget in force.
    pub budget: Option<ThreadBudget>,
    /// True when the operating system refused, false when the budget did.
    pub os_refused: bool,
}

/// The findings behind a [`SpawnError`](super::SpawnError).
#[derive(Clone, Debug)]
pub struct Diagnosis {
    request: Request,
    process_threads: Option<u64>,
    limits: Vec<Limit>,
    census: Option<Census>,
    top: Vec<ProcessInfo>,
    top_reason: Option<String>,
}

impl Diagnosis {
    /// Reads the census, the limits and, if a shared limit is near or the OS refused, the
    /// process table, under `roots`. Never fails: what cannot be read is left out.
    pub fn gather(roots: &Roots, rlimits: &Rlimits, request: Request) -> Diagnosis {
        let process_threads = kernel::read_lenient(
            &roots.proc().join("self/status"),
            kernel::parse_status_threads,
        );
        let table = ProcessTable::scan(roots.proc()).ok();
        let mut limits = limits::discover(roots, rlimits, table.as_ref(), request.stack_bytes);
        if let Some(budget) = request.budget {
            let live = u64::try_from(request.live_guarded).unwrap_or(u64::MAX);
            let used = if budget.counts_process_threads() {
                live.max(process_threads.unwrap_or(0))
            } else {
                live
            };
            limits.push(Limit {
                kind: LimitKind::Budget {
                    process_threads: budget.counts_process_threads(),
                },
                used,
                max: u64::try_from(budget.hard_limit()).unwrap_or(u64::MAX),
                need: 1,
                path: None,
                enforced: true,
            });
            limits::sort(&mut limits);
        }
        let near_shared = limits
            .iter()
            .find(|l| l.kind.is_shared() && (l.is_near() || l.is_exhausted()));
        let top_reason = match near_shared {
            Some(l) => Some(format!("{} is {:.0}% used", l.name(), l.ratio() * 100.0)),
            None if request.os_refused => Some("the os refused a thread".to_string()),
            None => None,
        };
        // For RLIMIT_NPROC only the user's own processes count, so only they are listed.
        let top = match (&top_reason, &table, near_shared.map(|l| l.kind)) {
            (Some(_), Some(table), Some(LimitKind::Nproc { uid })) => {
                table.top_of_uid(uid, TOP_PROCESSES)
            }
            (Some(_), Some(table), _) => table.top(TOP_PROCESSES).to_vec(),
            _ => Vec::new(),
        };
        Diagnosis {
            request,
            process_threads,
            limits,
            census: Census::collect(roots.proc()).ok(),
            top,
            top_reason,
        }
    }

    /// Guarded threads alive when the spawn failed.
    pub fn live_guarded(&self) -> usize {
        self.request.live_guarded
    }

    /// All threads of the process (`Threads:` of `/proc/self/status`), when readable.
    pub fn process_threads(&self) -> Option<u64> {
        self.process_threads
    }

    /// The budget in force.
    pub fn budget(&self) -> Option<ThreadBudget> {
        self.request.budget
    }

    /// Every finite limit found, exhausted ones first, then by share used.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// The first exhausted limit: the one that refused the thread.
    pub fn exhausted_limit(&self) -> Option<&Limit> {
        self.limits.iter().find(|l| l.is_exhausted())
    }

    /// The exhausted limit, or else the one with the largest share used.
    pub fn closest_limit(&self) -> Option<&Limit> {
        self.limits.first()
    }

    /// This process's threads by name, when `/proc/self/task` was readable.
    pub fn census(&self) -> Option<&Census> {
        self.census.as_ref()
    }

    /// The processes with the most threads, listed when a shared limit is nearly used up or the
    /// OS refused; empty otherwise.
    pub fn top_processes(&self) -> &[ProcessInfo] {
        &self.top
    }

    /// A one-line summary for a report's detail field.
    pub fn summary(&self) -> String {
        let mut s = format!("{} guarded threads live", self.request.live_guarded);
        if let Some(b) = self.request.budget {
            s = format!(
                "{} of {} guarded threads",
                self.request.live_guarded,
                b.hard_limit()
            );
        }
        match (self.exhausted_limit(), self.closest_limit()) {
            (Some(l), _) => s.push_str(&format!("; hit {l}")),
            (None, Some(l)) => s.push_str(&format!("; closest {l}")),
            (None, None) => {}
        }
        if let Some(g) = self.census.as_ref().and_then(|c| c.groups().first()) {
            s.push_str(&format!("; largest group {g}"));
        }
        s
    }

    pub(crate) fn thread_label(&self) -> String {
        match &self.request.name {
            Some(name) => format!("{name:?}"),
            None => "(unnamed)".to_string(),
        }
    }
}

/// The lines after the headline of `SpawnError`'s `Display`, each indented by two spaces.
impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  threads: ")?;
        if let Some(n) = self.process_threads {
            write!(f, "{n} in this process, ")?;
        }
        write!(f, "{} started through the guard", self.request.live_guarded)?;
        match self.request.budget {
            Some(b) => write!(
                f,
                "; budget {} (soft {}, hard {})",
                b.max_threads(),
                b.soft_limit(),
                b.hard_limit()
            )?,
            None => f.write_str("; no thread budget set")?,
        }
        let rest = match self.exhausted_limit() {
            Some(hit) => {
                write!(f, "\n  limit hit: {hit}")?;
                self.limits.iter().filter(|l| *l != hit).collect::<Vec<_>>()
            }
            None => {
                if self.request.os_refused {
                    f.write_str("\n  limit hit: none of the known limits is exhausted")?;
                }
                self.limits.iter().collect()
            }
        };
        if let Some(closest) = rest.first() {
            write!(f, "\n  closest limits: {closest}")?;
            for l in rest.iter().skip(1).take(LISTED_LIMITS - 1) {
                write!(f, "\n                  {l}")?;
            }
        }
        match &self.census {
            Some(c) => write!(f, "\n  threads by name: {c}")?,
            None => f.write_str("\n  threads by name: unavailable")?,
        }
        if let (Some(reason), false) = (&self.top_reason, self.top.is_empty()) {
            write!(f, "\n  top processes by threads ({reason}): ")?;
            for (i, p) in self.top.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} (pid {}", p.name, p.pid)?;
                if let Some(uid) = p.uid {
                    write!(f, ", uid {uid}")?;
                }
                write!(f, "): {}", p.threads)?;
            }
        }
        Ok(())
    }
}
