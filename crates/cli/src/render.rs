//! The human view of one report (`crashguard show`, `crashguard inspect`).

use std::fmt::Write;
use std::path::Path;

use crashguard_blackbox::explain::explain;
use crashguard_blackbox::{Outcome, Report, Resources, SignalInfo, Timestamp};

use crate::backtrace::{Resolved, ResolvedFrame};
use crate::input::{BoxInfo, BoxState, pid_alive};
use crate::units::{bytes, duration, humanize_byte_counts, percent};

/// Breadcrumbs shown in the text view; `--json` has them all.
const SHOWN_BREADCRUMBS: usize = 32;

/// Renders a report as multi-line text.
pub fn report(path: &Path, report: &Report, blackbox: Option<&BoxInfo>, bt: &Resolved) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_report(&mut out, path, report, blackbox, bt);
    out
}

/// The moment the other times are shown relative to: the end, else the last sign of life.
#[derive(Clone, Copy)]
struct Reference {
    at: Option<Timestamp>,
    label: &'static str,
}

fn reference_time(r: &Report) -> Reference {
    match r.ended_at {
        Some(at) => Reference {
            at: Some(at),
            label: "the end",
        },
        None => Reference {
            // The later of the last breadcrumb and the last heartbeat.
            at: r
                .breadcrumbs
                .last()
                .map(|b| b.at)
                .into_iter()
                .chain(r.resources.as_ref().map(|x| x.sampled_at))
                .max(),
            label: "the last sign of life",
        },
    }
}

/// A signed offset from the reference: `-1.2 s`.
fn relative(at: Timestamp, reference: Reference) -> String {
    match reference.at.map(|r| at.seconds_since(r)) {
        Some(s) => duration(s),
        None => at.to_string(),
    }
}

/// The same offset in words: `1.2 s before the end`.
fn when(at: Timestamp, reference: Reference) -> String {
    match reference.at.map(|r| at.seconds_since(r)) {
        Some(s) if s < 0.0 => format!("{} before {}", duration(-s), reference.label),
        Some(s) if s > 0.0 => format!("{} after {}", duration(s), reference.label),
        Some(_) => format!("at {}", reference.label),
        None => at.to_string(),
    }
}

fn thread_name(name: &str) -> String {
    if name.is_empty() {
        "(unnamed)".to_owned()
    } else {
        format!("'{name}'")
    }
}

fn signal_text(s: &SignalInfo) -> String {
    let name = if s.name.is_empty() {
        format!("signal {}", s.number)
    } else {
        format!("{} ({})", s.name, s.number)
    };
    let mut t = name;
    if !s.code_name.is_empty() {
        let _ = write!(t, ", code {} ({})", s.code_name, s.code);
    } else {
        let _ = write!(t, ", code {}", s.code);
    }
    if let Some(a) = &s.fault_address {
        let _ = write!(t, ", fault address {a}");
    }
    if let Some(pid) = s.sender_pid {
        let _ = write!(t, ", sent by pid {pid}");
        if let Some(uid) = s.sender_uid {
            let _ = write!(t, " (uid {uid})");
        }
    }
    t
}

fn write_report(
    out: &mut String,
    path: &Path,
    r: &Report,
    blackbox: Option<&BoxInfo>,
    bt: &Resolved,
) -> std::fmt::Result {
    // The one-line summary, with the verdict's exact byte counts in human units.
    // The allocation is shown in its own section below, in human units.
    let mut headline = r.clone();
    headline.verdict = r.verdict.as_deref().map(humanize_byte_counts);
    headline.allocation = None;
    writeln!(out, "{headline}")?;
    writeln!(out)?;
    let field = |out: &mut String, name: &str, value: &str| writeln!(out, "  {name:<15}{value}");
    field(out, "file", &path.display().to_string())?;
    if let Some(b) = blackbox {
        let state = match b.state {
            BoxState::Running => match (b.in_use, pid_alive(r.pid)) {
                (Some(true), _) => format!(
                    "RUNNING: a live process holds this slot (pid {}); what follows is its record so far",
                    r.pid
                ),
                (Some(false), Some(true)) => format!(
                    "RUNNING, but no process holds this file's lock while pid {} is alive here: \
                     a copy of a running process's box, or the pid was reused",
                    r.pid
                ),
                (Some(false), _) => "RUNNING, but no process holds its lock: the process vanished \
                     without a handler running (SIGKILL, the OOM killer, power loss); its next run \
                     will report what follows"
                    .to_owned(),
                (None, alive) => {
                    let alive = match alive {
                        Some(true) => format!(
                            "pid {} is alive here: the process is probably still running (unless the pid was reused)",
                            r.pid
                        ),
                        Some(false) => format!(
                            "no pid {} here: the process vanished without a handler running",
                            r.pid
                        ),
                        None => "process still running or vanished without a handler".to_owned(),
                    };
                    format!(
                        "RUNNING: process still running or vanished without a handler ({alive})"
                    )
                }
            },
            other => other.label(),
        };
        field(
            out,
            "black box",
            &format!(
                "state {state}; layout v{}, {} breadcrumbs, {} bytes",
                b.version, b.ring_capacity, b.file_size
            ),
        )?;
    }
    field(
        out,
        "app",
        &format!(
            "{} (pid {}, crashguard {})",
            r.app, r.pid, r.crashguard_version
        ),
    )?;
    if let Some(exe) = &r.executable {
        let id = r
            .build_id
            .as_deref()
            .map(|b| format!(" (build id {b})"))
            .unwrap_or_default();
        field(out, "executable", &format!("{exe}{id}"))?;
    }
    field(out, "started", &r.started_at.to_string())?;
    if let Some(end) = &r.ended_at {
        let up = r
            .uptime_secs()
            .map(|s| format!(" (after {})", duration(s)))
            .unwrap_or_default();
        field(out, "ended", &format!("{end}{up}"))?;
    }
    field(out, "outcome", r.outcome.as_str())?;
    if !r.signature.is_empty() {
        field(
            out,
            "signature",
            &format!("{} (`crashguard list --group` counts them)", r.signature),
        )?;
    }
    if let Some(code) = r.exit_code {
        let meaning = u8::try_from(code)
            .map(|c| format!(": {} (see `crashguard explain {c}`)", explain(c).summary))
            .unwrap_or_default();
        field(out, "exit status", &format!("{code}{meaning}"))?;
    }
    if let Some(s) = &r.signal {
        field(out, "signal", &signal_text(s))?;
    }
    if let Some(t) = &r.thread {
        field(
            out,
            "thread",
            &format!("{} (tid {})", thread_name(&t.name), t.tid),
        )?;
    }
    if r.stack_overflow {
        field(
            out,
            "stack overflow",
            "yes: the fault address lies in a thread's stack guard region",
        )?;
    }
    if let Some(p) = &r.panic {
        let thread = p
            .thread
            .as_ref()
            .map(|t| format!(" on thread {} (tid {})", thread_name(&t.name), t.tid))
            .unwrap_or_default();
        field(
            out,
            "panic",
            &format!("'{}' at {}{thread}", p.message, p.location),
        )?;
    }
    if let Some(d) = &r.detail {
        field(out, "detail", &humanize_byte_counts(d))?;
    }
    if let Some(v) = &r.verdict {
        field(out, "verdict", &humanize_byte_counts(v))?;
    }
    if r.outcome == Outcome::KilledWithoutWarning {
        field(
            out,
            "",
            "see `crashguard explain 137` for what kills a process without warning",
        )?;
    }
    let reference = reference_time(r);
    write_allocation(out, r, reference)?;
    if let Some(res) = &r.resources {
        write_resources(out, res, reference)?;
    }
    write_shutdown(out, r, reference)?;
    write_threads(out, r)?;
    write_backtrace(out, bt)?;
    write_breadcrumbs(out, r, reference)?;
    Ok(())
}

fn write_allocation(out: &mut String, r: &Report, reference: Reference) -> std::fmt::Result {
    let Some(a) = &r.allocation else {
        return Ok(());
    };
    writeln!(out)?;
    let budget = match a.budget_bytes {
        Some(b) => format!("budget {}", bytes(b)),
        None => "the allocator itself failed".to_owned(),
    };
    writeln!(
        out,
        "allocation refused {}: {} (align {}) with {} live, {budget}, thread {}",
        when(a.at, reference),
        bytes(a.request_bytes),
        a.align,
        bytes(a.live_bytes),
        a.tid
    )
}

fn used_of(used: Option<u64>, limit: Option<u64>) -> Option<String> {
    let used = used?;
    Some(match limit {
        Some(l) => format!(
            "{} of {}{}",
            bytes(used),
            bytes(l),
            percent(used, l)
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        ),
        None => bytes(used),
    })
}

fn write_resources(out: &mut String, res: &Resources, reference: Reference) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(
        out,
        "resources at the last heartbeat ({}):",
        when(res.sampled_at, reference)
    )?;
    let line = |out: &mut String, name: &str, value: Option<String>| match value {
        Some(v) => writeln!(out, "  {name:<15}{v}"),
        None => Ok(()),
    };
    line(out, "rss", used_of(res.rss_bytes, None))?;
    line(out, "heap", used_of(res.heap_bytes, res.memory_budget))?;
    if res.heap_bytes.is_none() {
        line(out, "memory budget", res.memory_budget.map(bytes))?;
    }
    line(
        out,
        "cgroup memory",
        used_of(res.cgroup_memory_current, res.cgroup_memory_max),
    )?;
    if res.cgroup_memory_current.is_none() {
        line(out, "cgroup limit", res.cgroup_memory_max.map(bytes))?;
    }
    let threads = res.threads.map(|t| match res.thread_budget {
        Some(b) => format!("{t} (budget {b})"),
        None => t.to_string(),
    });
    line(out, "threads", threads)?;
    line(
        out,
        "oom_kill count",
        res.oom_kill_count.map(|n| n.to_string()),
    )
}

fn write_shutdown(out: &mut String, r: &Report, reference: Reference) -> std::fmt::Result {
    let Some(s) = &r.shutdown else { return Ok(()) };
    writeln!(out)?;
    let by = s
        .signal
        .as_ref()
        .map(|sig| format!(" ({})", signal_text(sig)))
        .unwrap_or_default();
    writeln!(
        out,
        "shutdown requested {}: reason {}{by}, grace period {}",
        when(s.requested_at, reference),
        s.reason,
        duration(s.grace_ms as f64 / 1e3)
    )?;
    for (i, h) in s.hooks.iter().enumerate() {
        writeln!(
            out,
            "  {:>2}. {:<32} {:<10} {}",
            i + 1,
            h.name,
            h.status,
            duration(h.duration_ms / 1e3)
        )?;
    }
    Ok(())
}

fn write_threads(out: &mut String, r: &Report) -> std::fmt::Result {
    let Some(t) = &r.threads else { return Ok(()) };
    writeln!(out)?;
    writeln!(out, "threads at the end: {}", t.total)?;
    for g in &t.groups {
        writeln!(
            out,
            "  {:>6}  {}",
            g.count,
            if g.name.is_empty() {
                "(unnamed)"
            } else {
                &g.name
            }
        )?;
    }
    Ok(())
}

fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn write_frame(out: &mut String, f: &ResolvedFrame, noted: bool) -> std::fmt::Result {
    let ip = &f.frame.ip;
    if f.locations.is_empty() {
        let place = match (&f.frame.module, &f.frame.offset) {
            (Some(m), Some(o)) => format!("{}+{o}", module_name(m)),
            _ => "??".to_owned(),
        };
        write!(out, "  {:>3}: {ip:<18} {place}", f.index)?;
        match &f.error {
            // The module's reason is already printed once above the backtrace.
            Some(e) if !noted => writeln!(out, "  [{e}]"),
            _ => writeln!(out),
        }?;
        return Ok(());
    }
    for (i, l) in f.locations.iter().enumerate() {
        let function = l.function.as_deref().unwrap_or("??");
        let inlined = if l.inlined { " [inlined]" } else { "" };
        if i == 0 {
            writeln!(out, "  {:>3}: {ip:<18} {function}{inlined}", f.index)?;
        } else {
            writeln!(out, "       {:<18} {function}{inlined}", "")?;
        }
        if let Some(file) = &l.file {
            let line = l.line.map(|n| format!(":{n}")).unwrap_or_default();
            // Column 0 means "unknown" in DWARF (assembly sources have none).
            let col = l
                .column
                .filter(|&c| c > 0 && l.line.is_some())
                .map(|c| format!(":{c}"))
                .unwrap_or_default();
            writeln!(out, "       {:<18}   at {file}{line}{col}", "")?;
        }
    }
    Ok(())
}

fn write_backtrace(out: &mut String, bt: &Resolved) -> std::fmt::Result {
    if bt.frames.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "backtrace ({} frames, innermost first):",
        bt.frames.len()
    )?;
    for n in &bt.notes {
        writeln!(out, "  note: {n}")?;
    }
    for f in &bt.frames {
        let noted = f.error.is_some() && f.frame.module.is_some() && !bt.notes.is_empty();
        write_frame(out, f, noted)?;
    }
    Ok(())
}

fn write_breadcrumbs(out: &mut String, r: &Report, reference: Reference) -> std::fmt::Result {
    if r.breadcrumbs.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let skipped = r.breadcrumbs.len().saturating_sub(SHOWN_BREADCRUMBS);
    let base = reference.label;
    writeln!(out, "breadcrumbs (oldest first, times relative to {base}):")?;
    if skipped > 0 {
        writeln!(
            out,
            "  ... {skipped} earlier breadcrumbs (use --json for all)"
        )?;
    }
    for b in r.breadcrumbs.iter().skip(skipped) {
        writeln!(
            out,
            "  {:>12}  [tid {}]  {}",
            relative(b.at, reference),
            b.thread,
            b.message
        )?;
    }
    Ok(())
}
