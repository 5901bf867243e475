//! Report files: `<report_dir>/reports/<app>-<time>-<pid>.json`, written atomically (temporary
//! file, fsync, rename, fsync of the directory), mode 0600, never through a symbolic link, and
//! pruned to a bounded count and size.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::report::Report;

/// How many reports, and how many bytes of them, a directory keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most reports kept.
    pub max_reports: usize,
    /// Most bytes of reports kept.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_reports: 50,
            max_bytes: 16 << 20,
        }
    }
}

/// The directory holding report files under `report_dir`.
pub fn reports_dir(report_dir: &Path) -> PathBuf {
    report_dir.join("reports")
}

/// Writes `report` atomically into `<report_dir>/reports/` and prunes old reports. Returns the
/// path of the new file.
pub fn write_report(
    report_dir: &Path,
    report: &Report,
    retention: Retention,
) -> Result<PathBuf, Error> {
    let stamp: String = report
        .ended_at
        .as_deref()
        .unwrap_or(&report.started_at)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let name = format!("{}-{stamp}-{}.json", report.app, report.pid);
    let mut json = report.to_json_pretty();
    json.push('\n');
    let path = write_atomically(report_dir, &name, json.as_bytes())?;
    prune(&reports_dir(report_dir), retention, &path);
    Ok(path)
}

/// Keeps the bytes of a black box that could not be decoded, as
/// `<report_dir>/reports/corrupt-<ns>-<pid>.box`, for inspection with `crashguard inspect`.
/// They are not counted as reports (the name does not end in `.json`), nor pruned.
pub fn keep_unreadable(report_dir: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
    let now = crate::assafe::now_realtime_ns();
    let name = format!("corrupt-{now}-{}.box", std::process::id());
    write_atomically(report_dir, &name, bytes)
}

/// Writes `bytes` as `<report_dir>/reports/<name>`: a temporary file (mode 0600, never through
/// a symbolic link), fsync, rename, fsync of the directory.
fn write_atomically(report_dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let dir = reports_dir(report_dir);
    crate::open::ensure_private_dir(&dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let file_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::File { path, source }
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(crate::sys::PRIVATE_OPEN_FLAGS)
        .open(&tmp)
        .map_err(file_err(&tmp))?;
    f.write_all(bytes).map_err(file_err(&tmp))?;
    f.sync_all().map_err(file_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(file_err(&path))?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

/// One report file on disk.
#[derive(Clone, Debug)]
pub struct StoredReport {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// Modification time, for ordering.
    pub modified: std::time::SystemTime,
}

/// The report files in `<report_dir>/reports/`, newest first. A missing directory is empty.
pub fn list_reports(report_dir: &Path) -> Result<Vec<StoredReport>, Error> {
    let dir = reports_dir(report_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::ReportDir { path: dir, source }),
    };
    let mut out: Vec<StoredReport> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| StoredReport {
                path: e.path(),
                len: m.len(),
                modified: m.modified().unwrap_or(std::time::UNIX_EPOCH),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.path.cmp(&a.path))
    });
    Ok(out)
}

/// Reads and parses a report file.
pub fn read_report(path: &Path) -> Result<Report, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::File {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::File {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

fn prune(dir: &Path, retention: Retention, keep: &Path) {
    let Ok(reports) = list_reports(dir.parent().unwrap_or(dir)) else {
        return;
    };
    let mut total = 0u64;
    for (i, r) in reports.iter().enumerate() {
        total += r.len;
        let over = i >= retention.max_reports || total > retention.max_bytes;
        if over && r.path != keep {
            let _ = fs::remove_file(&r.path);
        }
    }
}
