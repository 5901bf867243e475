//! How the restarted service tells what its previous run died of.

use std::path::Path;

use crashguard::Report;

/// At most this many frames are shown: enough to see the bug and its callers.
const FRAMES_SHOWN: usize = 6;
/// Breadcrumbs shown, newest last.
const BREADCRUMBS_SHOWN: usize = 6;

/// Prints the previous run's report: the one-line summary, then the details an on-call
/// engineer needs first.
pub fn print_report(report: &Report, stored_at: Option<&Path>) {
    println!("previous run: {report}");
    if let Some(s) = &report.signal {
        println!(
            "  signal:       {} ({}), code {} ({}), fault address {}",
            s.name,
            s.number,
            s.code_name,
            s.code,
            s.fault_address.as_deref().unwrap_or("none")
        );
    }
    if let Some(t) = &report.thread {
        println!("  thread:       '{}' (tid {})", t.name, t.tid);
    }
    if report.outcome == crashguard::Outcome::FatalSignal {
        println!(
            "  stack overflow: {}",
            if report.stack_overflow { "yes" } else { "no" }
        );
    }
    if let Some(v) = &report.verdict {
        println!("  verdict:      {v}");
    }
    // The application's frames, up to the thread start-up code of std.
    let frames: Vec<_> = report
        .backtrace
        .iter()
        .filter(|f| f.symbol.is_some())
        .take_while(|f| {
            f.symbol
                .as_deref()
                .is_some_and(|s| !s.starts_with("std::") && !s.starts_with("core::"))
        })
        .take(FRAMES_SHOWN)
        .collect();
    if !frames.is_empty() {
        println!(
            "  crashed in ({} frames recorded, symbolized after restart):",
            report.backtrace.len()
        );
        for (i, f) in frames.iter().enumerate() {
            let symbol = f.symbol.as_deref().unwrap_or("??");
            match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    println!("    #{i} {symbol}\n         at {}:{line}", short_path(file))
                }
                _ => println!("    #{i} {symbol}"),
            }
        }
    }
    let skip = report.breadcrumbs.len().saturating_sub(BREADCRUMBS_SHOWN);
    if !report.breadcrumbs.is_empty() {
        println!("  last breadcrumbs (oldest first):");
        for b in report.breadcrumbs.iter().skip(skip) {
            println!("    {} [tid {}] {}", b.at, b.thread, b.message);
        }
    }
    if let Some(p) = stored_at {
        println!("  report saved: {}", p.display());
    }
}

/// Source paths relative to the workspace when they are inside it.
fn short_path(file: &str) -> &str {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../");
    let workspace = workspace.trim_end_matches("examples/../");
    file.strip_prefix(workspace).unwrap_or(file)
}

/// An error and its sources, joined by ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
