//! Report files: `<report_dir>/reports/<app>-<time>-<pid>.json`, and the bytes of black boxes
//! that could not be decoded as `<app>-corrupt-<ns>-<pid>.box`. Each is written atomically
//! (a fresh temporary file made with `O_EXCL`, mode 0600, fsync, `renameat`, fsync of the
//! directory), always relative to the checked directory descriptor, and each app's files are
//! pruned to a bounded count and size after every write.
//!
//! File names come from the configured application name (validated), a timestamp reduced to
//! `[A-Za-z0-9]` and a number: nothing read back from a black box or a report becomes a path.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::dir::{REPORTS, ReportDir, SubDir};
use crate::error::Error;
use crate::files::private_file_problem;
use crate::report::Report;
use crate::sys::fs as sysfs;
use crate::sys::fs::{DirEntries, FileKind};

/// How many files, and how many bytes of them, the report directory keeps **per application**:
/// reports and kept copies of unreadable black boxes together, newest first. Temporary files
/// left by a writer that died are removed once they are a minute old. Another application's
/// files in the same directory are never counted or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most files kept.
    pub max_reports: usize,
    /// Most bytes of files kept.
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

/// A report file larger than this is not a report (one is well under 1 MiB).
pub const MAX_REPORT_BYTES: u64 = 16 << 20;

/// Temporary files younger than this may belong to a writer that is still running.
const STALE_TEMP_NS: i128 = 60_000_000_000;

/// The directory holding report files under `report_dir`.
pub fn reports_dir(report_dir: &Path) -> PathBuf {
    report_dir.join("reports")
}

/// The kinds of file crashguard writes into `reports/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Report,
    Corrupt,
    Temp,
}

/// Which application a file of `reports/` belongs to, and what it is, from its name alone:
/// `<app>-<stamp>-<pid>.json`, `<app>-corrupt-<ns>-<pid>.box`, or `.<one of those>.<tag>.tmp`.
/// The stamp and numbers contain no `-`, so the app (which may) is what is left.
fn classify(name: &str) -> Option<(&str, Kind)> {
    if let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        let (target, _tag) = inner.rsplit_once('.')?;
        let (app, kind) = classify(target)?;
        return (kind != Kind::Temp).then_some((app, Kind::Temp));
    }
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if let Some(stem) = name.strip_suffix(".json") {
        let (rest, pid) = stem.rsplit_once('-')?;
        let (app, stamp) = rest.rsplit_once('-')?;
        return (alnum(pid) && alnum(stamp) && !app.is_empty()).then_some((app, Kind::Report));
    }
    if let Some(stem) = name.strip_suffix(".box") {
        let (rest, pid) = stem.rsplit_once('-')?;
        let (rest, ns) = rest.rsplit_once('-')?;
        let app = rest.strip_suffix("-corrupt")?;
        return (alnum(pid) && alnum(ns) && !app.is_empty()).then_some((app, Kind::Corrupt));
    }
    None
}

impl ReportDir {
    fn reports(&self) -> Result<SubDir, Error> {
        self.sub(REPORTS, true)?
            .ok_or_else(|| Error::NotADirectory {
                path: reports_dir(self.path()),
            })
    }

    /// Writes `report` atomically as `reports/<app>-<time>-<pid>.json` and prunes `app`'s
    /// files to `retention`. The file name comes from `app` (validated), never from the
    /// report's own strings. Returns the path of the new file.
    pub fn write_report(
        &self,
        app: &str,
        report: &Report,
        retention: Retention,
    ) -> Result<PathBuf, Error> {
        crate::validate_app(app)?;
        // `20261121T000000123Z` for 2026-11-21T00:00:00.123Z: the time, in characters that are
        // safe in a file name.
        let stamp: String = report
            .ended_at
            .unwrap_or(report.started_at)
            .to_string()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("{app}-{stamp}-{}.json", report.pid);
        let mut json = report.to_json_pretty();
        json.push('\n');
        let dir = self.reports()?;
        let path = write_atomically(&dir, &name, json.as_bytes())?;
        prune(&dir, app, retention, &name);
        Ok(path)
    }

    /// Keeps the bytes of a black box that could not be decoded, as
    /// `reports/<app>-corrupt-<ns>-<pid>.box`, for inspection with `crashguard inspect`; they
    /// count toward `app`'s retention like its reports.
    pub fn keep_unreadable(
        &self,
        app: &str,
        bytes: &[u8],
        retention: Retention,
    ) -> Result<PathBuf, Error> {
        crate::validate_app(app)?;
        let now = crate::assafe::now_realtime_ns();
        let name = format!("{app}-corrupt-{now}-{}.box", std::process::id());
        let dir = self.reports()?;
        let path = write_atomically(&dir, &name, bytes)?;
        prune(&dir, app, retention, &name);
        Ok(path)
    }

    /// The report files (`*.json`) of `reports/`, streamed from the directory one entry at a
    /// time and never opened (`fstatat` without following links: a FIFO cannot block this).
    /// Only regular files are yielded. A missing `reports/` yields nothing.
    pub fn report_files(&self) -> Result<impl Iterator<Item = StoredReport> + use<>, Error> {
        self.regular_files(REPORTS, b".json")
    }

    /// The regular, non-hidden files of the subdirectory `sub` whose names end in `suffix`,
    /// streamed from its descriptor: never opened, only `fstatat`ed. A missing `sub` yields
    /// nothing.
    fn regular_files(
        &self,
        sub: &std::ffi::CStr,
        suffix: &'static [u8],
    ) -> Result<impl Iterator<Item = StoredReport> + use<>, Error> {
        let dir = self.sub(sub, false)?;
        let entries = match &dir {
            Some(d) => Some(DirEntries::new(&d.fd).map_err(|source| Error::ReportDir {
                path: d.path.clone(),
                source,
            })?),
            None => None,
        };
        Ok(entries.into_iter().flatten().filter_map(move |name| {
            let d = dir.as_ref()?;
            let bytes = name.as_bytes();
            if !bytes.ends_with(suffix) || bytes.starts_with(b".") {
                return None;
            }
            let st = sysfs::stat_at(&d.fd, &sysfs::c_name(&name).ok()?).ok()?;
            (st.kind == FileKind::Regular).then(|| StoredReport {
                path: d.path.join(OsStr::from_bytes(bytes)),
                len: st.size,
                modified: system_time(st.mtime_ns),
            })
        }))
    }
}

impl ReportDir {
    /// The black-box slot files (`blackbox/*.box`) of every app, streamed like
    /// [`ReportDir::report_files`]: never opened, only regular files.
    pub fn slot_files(&self) -> Result<impl Iterator<Item = StoredReport> + use<>, Error> {
        self.regular_files(crate::dir::BLACKBOX, b".box")
    }
}

fn system_time(ns: i128) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(ns.clamp(0, u64::MAX as i128) as u64);
    std::time::UNIX_EPOCH + d
}

/// Writes `report` atomically into `<report_dir>/reports/` and prunes the app's old files.
/// The file is named after `report.app`, which must be a valid application name (this is the
/// entry point for tools that store a report they made; `install()` names files after the
/// configured app). Returns the path of the new file.
pub fn write_report(
    report_dir: &Path,
    report: &Report,
    retention: Retention,
) -> Result<PathBuf, Error> {
    crate::validate_app(&report.app)?;
    ReportDir::open(report_dir)?.write_report(&report.app, report, retention)
}

/// Writes `bytes` as `<dir>/<name>`: a fresh temporary file (`O_EXCL`, mode 0600), fsync,
/// `renameat` over the name, fsync of the directory. A temporary file is removed when any step
/// fails.
fn write_atomically(dir: &SubDir, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let tag = format!(
        "{}-{}",
        std::process::id(),
        crate::assafe::now_monotonic_ns()
    );
    let tmp_name = format!(".{name}.{tag}.tmp");
    let tmp_path = dir.join(&tmp_name);
    let file_err = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::File { path, source }
    };
    let tmp = sysfs::cstring(tmp_name.as_bytes()).map_err(file_err(&tmp_path))?;
    let target = sysfs::cstring(name.as_bytes()).map_err(file_err(&path))?;
    let fd = sysfs::open_at(
        &dir.fd,
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )
    .map_err(file_err(&tmp_path))?;
    let result = (|| {
        let st = sysfs::fstat(&fd).map_err(file_err(&tmp_path))?;
        if let Some(problem) = private_file_problem(&st, sysfs::euid()) {
            return Err(Error::UnsafeFile {
                path: tmp_path.clone(),
                problem,
            });
        }
        sysfs::write_fd(&fd, bytes).map_err(file_err(&tmp_path))?;
        sysfs::fsync(&fd).map_err(file_err(&tmp_path))?;
        sysfs::rename_at(&dir.fd, &tmp, &target).map_err(file_err(&path))
    })();
    drop(fd);
    if let Err(e) = result {
        let _ = sysfs::unlink_at(&dir.fd, &tmp);
        return Err(e);
    }
    let _ = sysfs::fsync(&dir.fd);
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
/// Holds one small entry per file; tools facing directories of unknown size should stream
/// [`ReportDir::report_files`] instead.
pub fn list_reports(report_dir: &Path) -> Result<Vec<StoredReport>, Error> {
    let dir = match ReportDir::open_for_reading(report_dir) {
        Ok(d) => d,
        Err(Error::ReportDir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out: Vec<StoredReport> = dir.report_files()?.collect();
    sort_newest_first(&mut out);
    Ok(out)
}

/// Orders reports newest first (ties by name, descending).
pub fn sort_newest_first(reports: &mut [StoredReport]) {
    reports.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.path.cmp(&a.path))
    });
}

/// Reads and parses a report file: a regular file (never blocking on anything else), at most
/// [`MAX_REPORT_BYTES`].
pub fn read_report(path: &Path) -> Result<Report, Error> {
    let bytes =
        crate::files::read_regular_file(path, MAX_REPORT_BYTES).map_err(|source| Error::File {
            path: path.to_owned(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::File {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// One of `app`'s files, for pruning.
struct Candidate {
    name: Vec<u8>,
    len: u64,
    mtime_ns: i128,
}

/// Removes `app`'s oldest files beyond `retention` (reports and corrupt copies, counted
/// together; `keep`, just written, always stays) and its stale temporary files. Another app's
/// files are never touched. Best effort: a failure leaves files behind, never loses the new
/// one.
fn prune(dir: &SubDir, app: &str, retention: Retention, keep: &str) {
    let Ok(entries) = DirEntries::new(&dir.fd) else {
        return;
    };
    let now = crate::assafe::now_realtime_ns() as i128;
    let mut files = Vec::new();
    for name in entries {
        let Some(text) = name.to_str() else { continue };
        let Some((owner, kind)) = classify(text) else {
            continue;
        };
        if owner != app {
            continue;
        }
        let Ok(cname) = sysfs::c_name(&name) else {
            continue;
        };
        let Ok(st) = sysfs::stat_at(&dir.fd, &cname) else {
            continue;
        };
        if st.kind == FileKind::Directory {
            continue;
        }
        if kind == Kind::Temp {
            if now - st.mtime_ns > STALE_TEMP_NS {
                let _ = sysfs::unlink_at(&dir.fd, &cname);
            }
            continue;
        }
        files.push(Candidate {
            name: name.into_encoded_bytes(),
            len: st.size,
            mtime_ns: st.mtime_ns,
        });
    }
    files.sort_by(|a, b| {
        let a_keep = a.name == keep.as_bytes();
        let b_keep = b.name == keep.as_bytes();
        b_keep
            .cmp(&a_keep)
            .then(b.mtime_ns.cmp(&a.mtime_ns))
            .then_with(|| b.name.cmp(&a.name))
    });
    let mut total = 0u64;
    for (i, f) in files.iter().enumerate() {
        total = total.saturating_add(f.len);
        let over = i >= retention.max_reports.max(1) || total > retention.max_bytes;
        if over
            && f.name != keep.as_bytes()
            && let Ok(c) = sysfs::cstring(&f.name)
        {
            let _ = sysfs::unlink_at(&dir.fd, &c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_attributed_to_their_app_only() {
        assert_eq!(
            classify("svc-20261201T023113Z-42.json"),
            Some(("svc", Kind::Report))
        );
        assert_eq!(
            classify("svc-worker-20261201T023113Z-42.json"),
            Some(("svc-worker", Kind::Report))
        );
        assert_eq!(
            classify("svc-corrupt-1764556273000000000-42.box"),
            Some(("svc", Kind::Corrupt))
        );
        assert_eq!(
            classify(".svc-20261201T023113Z-42.json.42-99.tmp"),
            Some(("svc", Kind::Temp))
        );
        assert_eq!(
            classify(".svc-corrupt-1-2.box.42-99.tmp"),
            Some(("svc", Kind::Temp))
        );
        for other in [
            "svc.json",
            "-1-2.json",
            "notes.txt",
            "corrupt-1-2.box",
            "svc-1-2.box",
            ".svc.tmp",
            "svc-a-b-c.json.tmp",
        ] {
            assert_eq!(classify(other), None, "{other}");
        }
    }
}
