//! Finding and reading what the commands work on: a report directory, a report JSON file, or a
//! raw black-box file (recognised by its magic, whatever its name).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs;
use std::path::{Path, PathBuf};

use crashguard_blackbox::layout::{self, Header, MAGIC, Record};
use crashguard_blackbox::{
    Report, ReportDir, StoredReport, decode, decode_header, reports_dir, sort_newest_first,
};
use serde::Serialize;

use crate::error::Error;

/// Files larger than this are not reports or black boxes (a black box is under 1 MiB); reading
/// stops here so that pointing the command at a huge file fails quickly.
const MAX_INPUT: u64 = 64 << 20;

/// The state word of a black box: what the process that owned it was doing last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    /// Created but never armed.
    Empty,
    /// Armed: the process is still running, or vanished without any handler running.
    Running,
    /// The end section is complete.
    Ended,
    /// A value this reader does not know.
    Unknown(u32),
}

impl BoxState {
    /// The state as the layout names it.
    pub fn label(self) -> String {
        match self {
            BoxState::Empty => "EMPTY".to_owned(),
            BoxState::Running => "RUNNING".to_owned(),
            BoxState::Ended => "ENDED".to_owned(),
            BoxState::Unknown(v) => format!("unknown ({v})"),
        }
    }
}

/// Facts about a raw black-box file beyond its report.
#[derive(Clone, Debug, Serialize)]
pub struct BoxInfo {
    /// The state word.
    pub state: BoxState,
    /// Layout version.
    pub version: u32,
    /// Breadcrumb ring capacity.
    pub ring_capacity: u32,
    /// File size the header declares.
    pub file_size: u64,
    /// Whether a live process holds the file's lock now (`None` when it could not be probed).
    /// A slot whose state is `running` and whose lock is free belongs to a process that is gone.
    pub in_use: Option<bool>,
}

impl BoxInfo {
    /// Whether the box is `running` but no process holds it: the process vanished without a
    /// handler running, and its next run will report what the decoded report says.
    pub fn abandoned(&self) -> bool {
        self.state == BoxState::Running && self.in_use == Some(false)
    }
}

/// What a path turned out to hold.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The file read.
    pub path: PathBuf,
    /// `Some` for a raw black box, `None` for a report JSON.
    pub blackbox: Option<BoxInfo>,
    /// The report.
    pub report: Report,
}

/// Reads `path`, at most 64 MiB of it. Only a regular file is read: a FIFO, socket or device
/// is refused without blocking.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    read_bytes_max(path, MAX_INPUT)
}

/// Reads at most `max` bytes of the regular file `path`, never blocking.
pub fn read_bytes_max(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    crashguard_blackbox::read_regular_file(path, max).map_err(|e| Error::read(path, e))
}

/// Whether `bytes` start like a black box.
pub fn is_blackbox(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The state word of a black box whose header is valid.
pub fn box_state(bytes: &[u8]) -> Option<BoxState> {
    let off = std::mem::offset_of!(Record, state);
    let word: [u8; 4] = bytes.get(off..off + 4)?.try_into().ok()?;
    Some(match u32::from_ne_bytes(word) {
        layout::STATE_EMPTY => BoxState::Empty,
        layout::STATE_RUNNING => BoxState::Running,
        layout::STATE_ENDED => BoxState::Ended,
        other => BoxState::Unknown(other),
    })
}

fn box_info(path: &Path, header: &Header, bytes: &[u8]) -> BoxInfo {
    BoxInfo {
        state: box_state(bytes).unwrap_or(BoxState::Unknown(u32::MAX)),
        version: header.version,
        ring_capacity: header.ring_capacity,
        file_size: header.file_size,
        in_use: crashguard_blackbox::slot_in_use(path).ok(),
    }
}

/// Decodes a raw black box; anything else is a data error.
pub fn load_blackbox(path: &Path) -> Result<Loaded, Error> {
    let bytes = read_bytes(path)?;
    decode_blackbox(path, &bytes)
}

fn decode_blackbox(path: &Path, bytes: &[u8]) -> Result<Loaded, Error> {
    let decode_err = |source| Error::Decode {
        path: path.to_owned(),
        source,
    };
    let header = decode_header(bytes).map_err(decode_err)?;
    let report = decode(bytes).map_err(decode_err)?;
    Ok(Loaded {
        path: path.to_owned(),
        blackbox: Some(box_info(path, &header, bytes)),
        report,
    })
}

/// Reads a file that is either a raw black box or a report JSON.
pub fn load_file(path: &Path) -> Result<Loaded, Error> {
    let bytes = read_bytes(path)?;
    parse_file(path, &bytes)
}

/// Parses the bytes of a file that is either a raw black box or a report JSON.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Loaded, Error> {
    if is_blackbox(bytes) {
        return decode_blackbox(path, bytes);
    }
    let mut report: Report =
        serde_json::from_slice(bytes).map_err(|source| Error::InvalidReport {
            path: path.to_owned(),
            source,
        })?;
    // Reports stored before signatures existed get theirs computed here.
    report.fill_signature();
    Ok(Loaded {
        path: path.to_owned(),
        blackbox: None,
        report,
    })
}

/// The newest `limit` report files of a report directory (newest first), how many there are
/// in all, and the directory searched.
///
/// `dir` may be the report directory given to `Config::report_dir` or its `reports/`
/// subdirectory. The directory is streamed: however many files it holds, only `limit` entries
/// are kept, and no file is opened.
pub fn report_files(dir: &Path, limit: usize) -> Result<ReportFiles, Error> {
    let meta = fs::metadata(dir).map_err(|e| Error::read(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let root = if !reports_dir(dir).is_dir() && dir.file_name().is_some_and(|n| n == "reports") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let opened = ReportDir::open_for_reading(root).map_err(Error::Store)?;
    let mut newest = Newest::new(limit);
    let mut total = 0usize;
    for r in opened.report_files().map_err(Error::Store)? {
        total += 1;
        newest.offer(r);
    }
    Ok(ReportFiles {
        searched: reports_dir(root),
        files: newest.into_sorted(),
        total,
    })
}

/// What [`report_files`] found.
#[derive(Debug)]
pub struct ReportFiles {
    /// The `reports/` directory searched.
    pub searched: PathBuf,
    /// The newest files, newest first.
    pub files: Vec<StoredReport>,
    /// How many report files the directory holds in all.
    pub total: usize,
}

/// Keeps the `limit` newest of the reports offered to it, in O(limit) memory.
struct Newest {
    limit: usize,
    heap: BinaryHeap<Reverse<Key>>,
}

/// Orders reports by time, then name, like [`crashguard_blackbox::sort_newest_first`].
struct Key(StoredReport);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .modified
            .cmp(&other.0.modified)
            .then_with(|| self.0.path.cmp(&other.0.path))
    }
}

impl Newest {
    fn new(limit: usize) -> Newest {
        Newest {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
        }
    }

    fn offer(&mut self, r: StoredReport) {
        if self.limit == 0 {
            return;
        }
        self.heap.push(Reverse(Key(r)));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<StoredReport> {
        let mut v: Vec<StoredReport> = self.heap.into_iter().map(|Reverse(Key(r))| r).collect();
        sort_newest_first(&mut v);
        v
    }
}

/// The newest report in a report directory.
pub fn load_newest(dir: &Path) -> Result<Loaded, Error> {
    let found = report_files(dir, 1)?;
    let newest = found.files.first().ok_or(Error::NoReports {
        dir: found.searched.clone(),
    })?;
    load_file(&newest.path)
}

/// A directory, or a file of either kind.
pub fn load_target(target: &Path) -> Result<Loaded, Error> {
    let meta = fs::metadata(target).map_err(|e| Error::read(target, e))?;
    if meta.is_dir() {
        load_newest(target)
    } else {
        load_file(target)
    }
}

/// At most `limit` black-box files of a report directory (`<dir>/blackbox/*.box`), by name,
/// streamed like [`report_files`].
pub fn blackbox_files(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let Ok(opened) = ReportDir::open_for_reading(dir) else {
        return Vec::new();
    };
    let Ok(files) = opened.slot_files() else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = files.take(limit).map(|f| f.path).collect();
    out.sort();
    out
}

/// Whether a process with this pid runs on this machine, from `/proc/<pid>/stat`; `None` where
/// there is no `/proc`. A zombie (dead, not yet reaped by its parent) counts as not running. A
/// live pid may still belong to another process that reused the number.
pub fn pid_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self/stat").exists() {
        return None;
    }
    if pid == 0 {
        return Some(false);
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Some(false);
    };
    // The state letter follows the command name, which is in parentheses and may itself
    // contain spaces or parentheses: take the text after the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    Some(!matches!(state, Some("Z" | "X" | "x")))
}
