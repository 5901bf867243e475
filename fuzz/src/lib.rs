//! What every fuzz target checks about a report it obtained.

use std::path::Path;

use crashguard_blackbox::Report;

/// Whether `c` must never reach a terminal raw.
fn hostile(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// The one-line `Display` is one line without control characters.
pub fn check_line(report: &Report) {
    let line = report.to_string();
    assert!(
        !line.chars().any(char::is_control),
        "Display let a control character through: {line:?}"
    );
}

/// The report renders safely and survives JSON.
pub fn check_report(report: &Report) {
    check_line(report);
    let shown = crashguard_blackbox::escape_report(report);
    let text = crashguard_cli::render::report(
        Path::new("fuzz.json"),
        &shown,
        None,
        &crashguard_cli::backtrace::Resolved::default(),
    );
    let text = crashguard_blackbox::terminal_safe(&text);
    assert!(!text.chars().any(hostile), "show: {text:?}");
    let summary = crashguard_cli::list::summary(&shown);
    assert!(!summary.chars().any(char::is_control), "list: {summary:?}");
    let json = report.to_json_pretty();
    let back: Report = serde_json::from_str(&json).expect("a report's own JSON parses");
    assert_eq!(back.to_json_pretty(), json, "JSON round trip changed the report");
}
