//! `crashguard list`: the reports of a directory as a table, newest first, and the black boxes
//! that processes hold there now.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crashguard_blackbox::{Outcome, Report, Timestamp, escape_control, signal_name};
use serde::Serialize;

use crate::error::Error;
use crate::input::{self, BoxState};
use crate::units::{humanize_byte_counts, short_time};

/// Characters of the summary column before it is cut.
const SUMMARY_WIDTH: usize = 90;

/// One row: a report, or why its file could not be read.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The report file.
    pub path: PathBuf,
    /// The report, when it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The row comes from a black box whose process is gone (its state is `running` and no one
    /// holds its lock): what the app's next run will store as a report.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncollected: bool,
}

/// A black-box slot file.
#[derive(Debug, Serialize)]
pub struct BoxEntry {
    /// The file.
    pub path: PathBuf,
    /// Its state, when the header is valid.
    pub state: Option<BoxState>,
    /// The owning application and pid, when the session decodes.
    pub app: Option<String>,
    /// See `app`.
    pub pid: Option<u32>,
    /// Whether that pid is alive on this machine.
    pub alive: Option<bool>,
    /// Whether a live process holds the slot's lock now.
    pub in_use: Option<bool>,
    /// Why the file could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `list` shows.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The directory the reports came from.
    pub reports_dir: PathBuf,
    /// The newest reports (at most [`MAX_LISTED`]), newest first.
    pub reports: Vec<Entry>,
    /// How many report files the directory holds in all.
    pub total_reports: usize,
    /// Black-box slot files.
    pub black_boxes: Vec<BoxEntry>,
}

/// Reports listed at most: the directory is streamed and only this many newest entries are
/// kept, so a directory of millions of files costs no more than this many rows.
pub const MAX_LISTED: usize = 200;

/// Bytes read of one listed report; a bigger file is listed as unreadable. Together with
/// [`MAX_LISTED`] this bounds what `list` holds in memory.
const MAX_LISTED_REPORT: u64 = 4 << 20;

/// Black-box files listed at most (16 slots for each of 16 apps).
const MAX_LISTED_BOXES: usize = 256;

/// Reads the reports and black boxes of `dir`.
pub fn listing(dir: &Path) -> Result<Listing, Error> {
    let found = input::report_files(dir, MAX_LISTED)?;
    let reports = found
        .files
        .into_iter()
        .map(|f| {
            let loaded = if f.len > MAX_LISTED_REPORT {
                Err(format!(
                    "{} bytes: too large for a report (limit {MAX_LISTED_REPORT})",
                    f.len
                ))
            } else {
                input::read_bytes_max(&f.path, MAX_LISTED_REPORT)
                    .and_then(|bytes| input::parse_file(&f.path, &bytes))
                    .map_err(|e| crate::error::chain(&e))
            };
            match loaded {
                Ok(l) => Entry {
                    path: f.path,
                    report: Some(l.report),
                    error: None,
                    uncollected: false,
                },
                Err(e) => Entry {
                    path: f.path,
                    report: None,
                    error: Some(e),
                    uncollected: false,
                },
            }
        })
        .collect::<Vec<_>>();
    let reports_dir = found.searched;
    let root = reports_dir.parent().unwrap_or(dir);
    let mut black_boxes = Vec::new();
    let mut uncollected = Vec::new();
    for path in input::blackbox_files(root, MAX_LISTED_BOXES) {
        let (entry, report) = box_entry(&path);
        // Not held by anyone and not yet stored: a run that vanished (still "running"), or an
        // abnormal end whose report install could not store (a full disk) and so left in its
        // slot. Both are reported by the app's next run; a collected slot is reset or emptied.
        let pending = entry.state == Some(BoxState::Running)
            || (entry.state == Some(BoxState::Ended)
                && report.as_ref().is_some_and(|r| r.outcome.is_abnormal()));
        if pending && entry.in_use == Some(false) {
            uncollected.extend(report.map(|r| Entry {
                path: path.clone(),
                report: Some(r),
                error: None,
                uncollected: true,
            }));
        }
        black_boxes.push(entry);
    }
    // A vanished process's box is newer than any report its slot stored before.
    uncollected.sort_by_key(|e| std::cmp::Reverse(last_seen_of(e)));
    uncollected.extend(reports);
    let reports = uncollected;
    Ok(Listing {
        reports_dir,
        reports,
        total_reports: found.total,
        black_boxes,
    })
}

fn last_seen_of(e: &Entry) -> Option<Timestamp> {
    e.report.as_ref().map(last_seen)
}

/// The last sign of life of a run: its end, else its last breadcrumb or heartbeat, else its
/// start.
pub fn last_seen(r: &Report) -> Timestamp {
    if let Some(end) = r.ended_at {
        return end;
    }
    let crumb = r.breadcrumbs.last().map(|b| b.at);
    let beat = r.resources.as_ref().map(|x| x.sampled_at);
    crumb.into_iter().chain(beat).max().unwrap_or(r.started_at)
}

fn box_entry(path: &Path) -> (BoxEntry, Option<Report>) {
    let mut e = BoxEntry {
        path: path.to_owned(),
        state: None,
        app: None,
        pid: None,
        alive: None,
        in_use: None,
        error: None,
    };
    let mut report = None;
    match input::read_bytes(path) {
        Ok(bytes) => {
            if crashguard_blackbox::decode_header(&bytes).is_ok() {
                e.state = input::box_state(&bytes);
                e.in_use = crashguard_blackbox::slot_in_use(path).ok();
            }
            match crashguard_blackbox::decode(&bytes) {
                Ok(r) => {
                    e.alive = input::pid_alive(r.pid);
                    e.app = Some(r.app.clone());
                    e.pid = Some(r.pid);
                    report = Some(r);
                }
                Err(err) => e.error = Some(crate::error::chain(&err)),
            }
        }
        Err(err) => e.error = Some(crate::error::chain(&err)),
    }
    (e, report)
}

/// The status column: the number, and the signal for `128 + n`.
pub fn status(r: &Report) -> String {
    match r.exit_code {
        Some(code) => match code.checked_sub(128).and_then(signal_name) {
            Some(name) => format!("{code} {name}"),
            None => code.to_string(),
        },
        None => "-".to_owned(),
    }
}

/// One line on what happened.
pub fn summary(r: &Report) -> String {
    // The same words as the report's one-line `Display`.
    let mut s = r.cause();
    if let Some(t) = &r.thread
        && r.outcome == Outcome::FatalSignal
        && !t.name.is_empty()
    {
        let _ = write!(s, " on '{}'", t.name);
    }
    if let Some(p) = &r.panic {
        let _ = write!(
            s,
            "{}'{}' at {}",
            if s.is_empty() { "" } else { ": " },
            p.message,
            p.location
        );
    } else if let Some(d) = r
        .detail
        .as_ref()
        .filter(|_| r.outcome != Outcome::FatalSignal)
    {
        // A fatal signal's detail repeats the signal, code and address already summarised.
        let _ = write!(s, ": {d}");
    }
    truncate(&humanize_byte_counts(&s.replace('\n', " ")), SUMMARY_WIDTH)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The table as text.
pub fn render(l: &Listing) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "TIME (UTC)".into(),
        "APP".into(),
        "PID".into(),
        "OUTCOME".into(),
        "STATUS".into(),
        "SUMMARY".into(),
    ]];
    for e in &l.reports {
        let escaped = e.report.as_ref().map(crashguard_blackbox::escape_report);
        rows.push(match (&escaped, &e.error) {
            (Some(r), _) => [
                short_time(&last_seen(r).to_string()),
                r.app.clone(),
                r.pid.to_string(),
                if e.uncollected {
                    format!("{}*", r.outcome.as_str())
                } else {
                    r.outcome.as_str().to_owned()
                },
                status(r),
                summary(r),
            ],
            (None, err) => [
                "?".into(),
                e.path
                    .file_name()
                    .map(|n| escape_control(&n.to_string_lossy()).into_owned())
                    .unwrap_or_default(),
                "?".into(),
                "unreadable".into(),
                "-".into(),
                truncate(&escape_control(err.as_deref().unwrap_or("")), SUMMARY_WIDTH),
            ],
        });
    }
    let mut out = String::new();
    if l.reports.is_empty() {
        let _ = writeln!(
            out,
            "no crash reports in {}",
            escape_control(&l.reports_dir.display().to_string())
        );
    } else {
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if l.reports.iter().any(|e| e.uncollected) {
            let _ = writeln!(
                out,
                "* from a black box whose process is gone (no one holds its lock): the app's next run stores this report"
            );
        }
    }
    let listed = l.reports.iter().filter(|e| !e.uncollected).count();
    if l.total_reports > listed {
        let _ = writeln!(
            out,
            "({} older reports not shown; the newest {listed} are listed)",
            l.total_reports - listed,
        );
    }
    if !l.black_boxes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "black boxes (decode one with `crashguard inspect FILE`):"
        );
        for b in &l.black_boxes {
            let name = b
                .path
                .file_name()
                .map(|n| escape_control(&n.to_string_lossy()).into_owned())
                .unwrap_or_default();
            let state = b
                .state
                .map(BoxState::label)
                .unwrap_or_else(|| "unreadable".to_owned());
            let owner = match (&b.app, b.pid, b.alive) {
                (Some(app), Some(pid), _) if b.in_use == Some(true) => {
                    format!(
                        "{} pid {pid} (holds the slot: running)",
                        escape_control(app)
                    )
                }
                (Some(app), Some(pid), _)
                    if b.in_use == Some(false) && b.state == Some(BoxState::Running) =>
                {
                    format!(
                        "{} pid {pid} (gone without a handler running: see the * row)",
                        escape_control(app)
                    )
                }
                (Some(app), Some(pid), _)
                    if b.in_use == Some(false)
                        && l.reports.iter().any(|e| e.uncollected && e.path == b.path) =>
                {
                    format!(
                        "{} pid {pid} (ended abnormally, report not stored yet: see the * row)",
                        escape_control(app)
                    )
                }
                (Some(app), Some(pid), Some(true)) => {
                    format!("{} pid {pid} (alive)", escape_control(app))
                }
                (Some(app), Some(pid), _) => format!("{} pid {pid}", escape_control(app)),
                _ => escape_control(b.error.as_deref().unwrap_or_default()).into_owned(),
            };
            let _ = writeln!(out, "  {name:<24} {state:<9} {owner}");
        }
    }
    out
}

/// Reports sharing one crash signature (`crashguard list --group`).
#[derive(Debug, Serialize)]
pub struct Group {
    /// The signature (see `docs/report-format.md`).
    pub signature: String,
    /// Reports with this signature.
    pub count: usize,
    /// The newest report's application.
    pub app: String,
    /// The newest report's outcome.
    pub outcome: String,
    /// End (or start) time of the oldest report, RFC 3339.
    pub first_seen: String,
    /// End (or start) time of the newest report, RFC 3339.
    pub last_seen: String,
    /// The newest report's file: `crashguard show` it for the details.
    pub newest: PathBuf,
    /// The newest report's one-line summary.
    pub summary: String,
}

/// Everything `list --group` shows.
#[derive(Debug, Serialize)]
pub struct Grouped {
    /// The directory the reports came from.
    pub reports_dir: PathBuf,
    /// Groups, the largest first (ties: the most recently seen first).
    pub groups: Vec<Group>,
    /// Report files that could not be read, so are in no group.
    pub unreadable: Vec<PathBuf>,
}

/// Groups a listing's reports by signature.
pub fn group(l: &Listing) -> Grouped {
    let mut groups: Vec<Group> = Vec::new();
    // The listing is newest first, so the first report of a signature is its newest.
    for e in &l.reports {
        let Some(r) = &e.report else { continue };
        match groups.iter_mut().find(|g| g.signature == r.signature) {
            Some(g) => {
                g.count += 1;
                g.first_seen = last_seen(r).to_string();
            }
            None => groups.push(Group {
                signature: r.signature.clone(),
                count: 1,
                app: r.app.clone(),
                outcome: r.outcome.as_str().to_owned(),
                first_seen: last_seen(r).to_string(),
                last_seen: last_seen(r).to_string(),
                newest: e.path.clone(),
                summary: summary(r),
            }),
        }
    }
    // Stable: equal counts keep the newest-first order.
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    Grouped {
        reports_dir: l.reports_dir.clone(),
        groups,
        unreadable: l
            .reports
            .iter()
            .filter(|e| e.report.is_none())
            .map(|e| e.path.clone())
            .collect(),
    }
}

/// The grouped table as text.
pub fn render_groups(g: &Grouped) -> String {
    let mut out = String::new();
    if g.groups.is_empty() {
        let _ = writeln!(out, "no crash reports in {}", g.reports_dir.display());
    } else {
        let mut rows: Vec<[String; 6]> = vec![[
            "COUNT".into(),
            "SIGNATURE".into(),
            "LAST SEEN (UTC)".into(),
            "APP".into(),
            "OUTCOME".into(),
            "SUMMARY OF THE NEWEST".into(),
        ]];
        for x in &g.groups {
            rows.push([
                x.count.to_string(),
                x.signature.clone(),
                short_time(&x.last_seen),
                x.app.clone(),
                x.outcome.clone(),
                x.summary.clone(),
            ]);
        }
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else if i == 0 {
                    let _ = write!(line, "{cell:>w$}  ");
                } else {
                    let _ = write!(line, "{cell:<w$}  ");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if !g.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "\n{} unreadable report file(s) are in no group (see `crashguard list`)",
            g.unreadable.len()
        );
    }
    out
}
