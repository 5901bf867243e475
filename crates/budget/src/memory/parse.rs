//! Pure parsers for the `/proc` and cgroup files the memory probe reads.
//!
//! Each function takes the file's text and returns a value or a [`ParseError`]; none touches
//! the file system, so they are property-tested on arbitrary strings (they must never panic)
//! and on generated valid input (they must give back what was generated). Only the fields the
//! probe needs are extracted; unknown keys and extra columns are ignored because kernels add
//! them over time.

use std::fmt;

/// A file's contents did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The format being parsed, e.g. `"statm"`.
    pub format: &'static str,
    /// What was wrong, lowercase, without a trailing period.
    pub detail: String,
}

impl ParseError {
    fn new(format: &'static str, detail: impl Into<String>) -> Self {
        ParseError {
            format,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.format, self.detail)
    }
}

impl std::error::Error for ParseError {}

/// Values at or above this in a cgroup v1 limit file mean "no limit".
///
/// The kernel reports an unset v1 limit as `PAGE_COUNTER_MAX * PAGE_SIZE`, which is
/// `i64::MAX` rounded down to a page (9223372036854771712 with 4 KiB pages, a little less with
/// 64 KiB pages). No machine has 4 EiB of memory, so anything from 2^62 up is treated as unset.
pub const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// A memory limit as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (`max` in cgroup v2, a huge value in cgroup v1).
    Unlimited,
    /// A limit in bytes.
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, or `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Bytes(n) => Some(n),
        }
    }
}

fn single_token<'a>(format: &'static str, text: &'a str) -> Result<&'a str, ParseError> {
    let mut tokens = text.split_ascii_whitespace();
    match (tokens.next(), tokens.next()) {
        (Some(t), None) => Ok(t),
        (None, _) => Err(ParseError::new(format, "empty file")),
        (Some(_), Some(_)) => Err(ParseError::new(format, "expected a single value")),
    }
}

fn number(format: &'static str, token: &str) -> Result<u64, ParseError> {
    token.parse::<u64>().map_err(|_| {
        ParseError::new(
            format,
            format!("not a non-negative integer: {:?}", clip(token)),
        )
    })
}

/// Keeps error messages short when a file holds something large and unexpected.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Parses a file holding one unsigned integer (`memory.current`, `memory.usage_in_bytes`).
pub fn parse_u64(format: &'static str, text: &str) -> Result<u64, ParseError> {
    number(format, single_token(format, text)?)
}

/// Parses a cgroup v2 limit (`memory.max`, `memory.high`): `max` or a byte count.
pub fn parse_v2_limit(text: &str) -> Result<Limit, ParseError> {
    const F: &str = "cgroup v2 limit";
    match single_token(F, text)? {
        "max" => Ok(Limit::Unlimited),
        t => number(F, t).map(Limit::Bytes),
    }
}

/// Parses a cgroup v1 limit (`memory.limit_in_bytes`); see [`V1_UNLIMITED_THRESHOLD`].
///
/// A negative value (`-1`, which some tools write to mean "unset") also reads as unlimited.
pub fn parse_v1_limit(text: &str) -> Result<Limit, ParseError> {
    const F: &str = "cgroup v1 limit";
    let token = single_token(F, text)?;
    if token == "-1" {
        return Ok(Limit::Unlimited);
    }
    let n = number(F, token)?;
    Ok(if n >= V1_UNLIMITED_THRESHOLD {
        Limit::Unlimited
    } else {
        Limit::Bytes(n)
    })
}

/// The two fields of `/proc/<pid>/statm` the probe uses, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statm {
    /// Total program size (`VmSize`), in pages.
    pub size_pages: u64,
    /// Resident set size, in pages.
    pub resident_pages: u64,
}

/// Parses `/proc/<pid>/statm`: seven integers; the first two are size and resident pages.
pub fn parse_statm(text: &str) -> Result<Statm, ParseError> {
    const F: &str = "statm";
    let mut tokens = text.split_ascii_whitespace();
    let size = tokens
        .next()
        .ok_or_else(|| ParseError::new(F, "empty file"))?;
    let resident = tokens
        .next()
        .ok_or_else(|| ParseError::new(F, "missing resident field"))?;
    Ok(Statm {
        size_pages: number(F, size)?,
        resident_pages: number(F, resident)?,
    })
}

/// Parses the `Threads:` line of `/proc/self/status`: the process's thread count, threads
/// created outside crashguard included.
pub fn parse_status_threads(text: &str) -> Result<u64, ParseError> {
    const F: &str = "status";
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .ok_or_else(|| ParseError::new(F, "no Threads line"))?;
    number(F, value.trim())
}

/// Parses `MemTotal` out of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Result<u64, ParseError> {
    const F: &str = "meminfo";
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or_else(|| ParseError::new(F, "no MemTotal line"))?;
    let mut tokens = line.split_ascii_whitespace();
    let value = number(
        F,
        tokens
            .next()
            .ok_or_else(|| ParseError::new(F, "MemTotal has no value"))?,
    )?;
    match tokens.next() {
        Some("kB") => value
            .checked_mul(1024)
            .ok_or_else(|| ParseError::new(F, "MemTotal overflows")),
        None => Ok(value),
        Some(unit) => Err(ParseError::new(F, format!("unknown unit {:?}", clip(unit)))),
    }
}

/// Finds `key`'s value in a flat-keyed file of `key value` lines (`memory.events`,
/// `memory.stat`, v1 `memory.oom_control`). `Ok(None)` when the key is absent (older kernels);
/// an error when the key is present with a value that is not an integer.
pub fn parse_keyed(format: &'static str, text: &str, key: &str) -> Result<Option<u64>, ParseError> {
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        if tokens.next() == Some(key) {
            let value = tokens
                .next()
                .ok_or_else(|| ParseError::new(format, format!("{key} has no value")))?;
            return number(format, value).map(Some);
        }
    }
    Ok(None)
}

/// Pressure stall information for memory (`memory.pressure`), the 10-second averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    /// Percentage of time at least one task stalled on memory.
    pub some_avg10: f64,
    /// Percentage of time all non-idle tasks stalled on memory; absent on old kernels.
    pub full_avg10: Option<f64>,
}

/// Parses a PSI file: `some avg10=.. avg60=.. avg300=.. total=..` and optionally a `full` line.
pub fn parse_pressure(text: &str) -> Result<Pressure, ParseError> {
    const F: &str = "pressure";
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        let slot = match tokens.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(other) => {
                return Err(ParseError::new(
                    F,
                    format!("unknown line {:?}", clip(other)),
                ));
            }
            None => continue,
        };
        let avg10 = tokens
            .find_map(|t| t.strip_prefix("avg10="))
            .ok_or_else(|| ParseError::new(F, "line without avg10"))?;
        let value: f64 = avg10
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ParseError::new(F, format!("bad avg10 {:?}", clip(avg10))))?;
        *slot = Some(value);
    }
    let some_avg10 = some.ok_or_else(|| ParseError::new(F, "no some line"))?;
    Ok(Pressure {
        some_avg10,
        full_avg10: full,
    })
}

/// The process's cgroup memberships that matter for memory, from `/proc/self/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// Path in the v1 hierarchy that has the `memory` controller.
    pub v1_memory: Option<String>,
    /// Path in the v2 (unified) hierarchy: the `0::` line.
    pub v2: Option<String>,
}

/// Parses `/proc/<pid>/cgroup`: lines of `hierarchy-id:controllers:path`.
///
/// The path may itself contain `:`, so only the first two colons split.
pub fn parse_proc_cgroup(text: &str) -> Result<ProcCgroup, ParseError> {
    const F: &str = "proc cgroup";
    let mut out = ProcCgroup::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::new(
                F,
                format!("line without two colons: {:?}", clip(line)),
            ));
        };
        if !path.starts_with('/') {
            return Err(ParseError::new(
                F,
                format!("path is not absolute: {:?}", clip(path)),
            ));
        }
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            out.v1_memory = Some(path.to_owned());
        }
    }
    Ok(out)
}

/// A cgroup file system mount found in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The directory of the hierarchy that is the root of this mount (field 4).
    pub root: String,
    /// Where it is mounted (field 5), with octal escapes decoded.
    pub mount_point: String,
}

/// The cgroup mounts relevant to memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// The first `cgroup` (v1) mount whose super options include `memory`.
    pub v1_memory: Option<CgroupMount>,
    /// The first `cgroup2` mount.
    pub v2: Option<CgroupMount>,
}

/// Decodes the `\ooo` octal escapes the kernel uses for space, tab, newline and backslash.
fn unescape_octal(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let digits = bytes.get(i + 1..i + 4)?;
            let mut v: u32 = 0;
            for &d in digits {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v * 8 + u32::from(d - b'0');
            }
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `/proc/<pid>/mountinfo` and picks out the cgroup mounts.
///
/// Each line is `id parent major:minor root mount-point options [optional...] - fstype source
/// super-options`; the optional fields end at a lone `-`.
pub fn parse_mountinfo(text: &str) -> Result<CgroupMounts, ParseError> {
    const F: &str = "mountinfo";
    let mut out = CgroupMounts::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-").ok_or_else(|| {
            ParseError::new(F, format!("line without separator: {:?}", clip(line)))
        })?;
        if sep < 6 {
            return Err(ParseError::new(
                F,
                format!("too few fields: {:?}", clip(line)),
            ));
        }
        let (Some(root), Some(mount_point), Some(fstype)) =
            (fields.get(3), fields.get(4), fields.get(sep + 1))
        else {
            return Err(ParseError::new(
                F,
                format!("too few fields: {:?}", clip(line)),
            ));
        };
        let super_options = fields.get(sep + 3).copied().unwrap_or("");
        let decode = |s: &str| {
            unescape_octal(s)
                .ok_or_else(|| ParseError::new(F, format!("bad escape in {:?}", clip(s))))
        };
        match *fstype {
            "cgroup2" if out.v2.is_none() => {
                out.v2 = Some(CgroupMount {
                    root: decode(root)?,
                    mount_point: decode(mount_point)?,
                });
            }
            "cgroup"
                if out.v1_memory.is_none() && super_options.split(',').any(|o| o == "memory") =>
            {
                out.v1_memory = Some(CgroupMount {
                    root: decode(root)?,
                    mount_point: decode(mount_point)?,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Joins a cgroup path from `/proc/self/cgroup` to its mount: the directory, relative to the
/// file-system root, that holds the cgroup's files.
///
/// The mount's `root` is the part of the hierarchy visible at the mount point; the process's
/// path normally starts with it (`/docker/<id>` mounted at `/sys/fs/cgroup/memory` inside a
/// container, path `/docker/<id>` -> the mount point itself). When it does not (cgroup
/// namespaces can show paths such as `/../..`), the process is taken to be at the mount point.
pub fn cgroup_dir(mount: &CgroupMount, path: &str) -> String {
    let rel = if mount.root == "/" {
        Some(path)
    } else {
        path.strip_prefix(mount.root.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))
    };
    let rel = match rel {
        Some(r) if !r.split('/').any(|c| c == "..") => r.trim_matches('/'),
        _ => "",
    };
    let base = mount.mount_point.trim_end_matches('/');
    match (base.is_empty(), rel.is_empty()) {
        (true, true) => "/".to_owned(),
        (false, true) => base.to_owned(),
        _ => format!("{base}/{rel}"),
    }
}
