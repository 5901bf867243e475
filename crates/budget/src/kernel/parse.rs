//! Pure parsers for the `/proc` and cgroup files the memory and thread budgets read.
//!
//! Each function takes a file's text and returns a value or a [`ParseError`]; none touches the
//! file system, so they are property-tested on arbitrary strings (they must never panic) and on
//! generated valid input (they must give back what was generated). Only the fields the budgets
//! need are extracted; unknown keys and extra columns are ignored because kernels add them over
//! time. Numbers go through one parser, [`parse_decimal`].

use std::fmt;

/// A file's contents did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The format being parsed.
    pub format: Format,
    /// What was wrong, lowercase, without a trailing period (it may quote the start of the
    /// offending text, so it is free text).
    pub detail: String,
}

/// The kinds of file the budgets parse: what a [`ParseError`] was reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Any text file (the error is that it is not UTF-8).
    Text,
    /// `/proc/self/cgroup`.
    ProcCgroup,
    /// `/proc/self/mountinfo`.
    Mountinfo,
    /// A cgroup v2 limit (`memory.max`, `memory.high`, `pids.max`) or a v1 `pids.max`.
    CgroupV2Limit,
    /// A cgroup v1 memory limit (`memory.limit_in_bytes`).
    CgroupV1Limit,
    /// `/proc/self/statm`.
    Statm,
    /// `/proc/self/status`.
    Status,
    /// `/proc/meminfo`.
    Meminfo,
    /// `/proc/loadavg`.
    Loadavg,
    /// A pressure-stall file (`memory.pressure`, `/proc/pressure/memory`).
    Pressure,
    /// A file holding one count (`pids.current`, `threads-max`, `pid_max`).
    Count,
    /// A cgroup's memory usage (`memory.current`, `memory.usage_in_bytes`).
    MemoryUsage,
    /// A cgroup's `memory.stat`.
    MemoryStat,
    /// A cgroup v2 `memory.events`.
    MemoryEvents,
    /// A cgroup v1 `memory.oom_control`.
    MemoryOomControl,
}

impl Format {
    /// Its name in messages: `"statm"`, `"cgroup v2 limit"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::ProcCgroup => "proc cgroup",
            Format::Mountinfo => "mountinfo",
            Format::CgroupV2Limit => "cgroup v2 limit",
            Format::CgroupV1Limit => "cgroup v1 limit",
            Format::Statm => "statm",
            Format::Status => "status",
            Format::Meminfo => "meminfo",
            Format::Loadavg => "loadavg",
            Format::Pressure => "pressure",
            Format::Count => "count",
            Format::MemoryUsage => "cgroup memory usage",
            Format::MemoryStat => "memory.stat",
            Format::MemoryEvents => "memory.events",
            Format::MemoryOomControl => "memory.oom_control",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ParseError {
    pub(crate) fn new(format: Format, detail: impl Into<String>) -> Self {
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

/// A limit as the kernel reports it (`memory.max`, `pids.max`, `memory.limit_in_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (`max`, or a huge value in cgroup v1).
    Unlimited,
    /// A limit, in the file's unit (bytes for memory files, tasks for `pids.max`).
    Value(u64),
}

impl Limit {
    /// The limit, or `None` when unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Value(n) => Some(n),
        }
    }

    /// The lower of two limits; `Unlimited` is above every value.
    pub fn min(self, other: Limit) -> Limit {
        match (self, other) {
            (Limit::Value(x), Limit::Value(y)) => Limit::Value(x.min(y)),
            (Limit::Value(x), Limit::Unlimited) | (Limit::Unlimited, Limit::Value(x)) => {
                Limit::Value(x)
            }
            (Limit::Unlimited, Limit::Unlimited) => Limit::Unlimited,
        }
    }
}

/// The one number parser: an unsigned decimal of ASCII digits only (no sign, no spaces);
/// `None` on anything else or on overflow.
pub fn parse_decimal(token: &str) -> Option<u64> {
    if token.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in token.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn number(format: Format, token: &str) -> Result<u64, ParseError> {
    parse_decimal(token).ok_or_else(|| {
        ParseError::new(
            format,
            format!("not a non-negative integer: {:?}", clip(token)),
        )
    })
}

fn single_token(format: Format, text: &str) -> Result<&str, ParseError> {
    let mut tokens = text.split_ascii_whitespace();
    match (tokens.next(), tokens.next()) {
        (Some(t), None) => Ok(t),
        (None, _) => Err(ParseError::new(format, "empty file")),
        (Some(_), Some(_)) => Err(ParseError::new(format, "expected a single value")),
    }
}

/// Keeps error messages short when a file holds something large and unexpected.
pub(crate) fn clip(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Parses a file holding one unsigned integer (`memory.current`, `pids.current`,
/// `threads-max`).
pub fn parse_u64(format: Format, text: &str) -> Result<u64, ParseError> {
    number(format, single_token(format, text)?)
}

/// Parses a cgroup v2 limit (`memory.max`, `memory.high`, `pids.max`) or a v1 `pids.max`:
/// `max` or a number.
pub fn parse_v2_limit(text: &str) -> Result<Limit, ParseError> {
    const F: Format = Format::CgroupV2Limit;
    match single_token(F, text)? {
        "max" => Ok(Limit::Unlimited),
        t => number(F, t).map(Limit::Value),
    }
}

/// Parses a cgroup v1 memory limit (`memory.limit_in_bytes`); see [`V1_UNLIMITED_THRESHOLD`].
///
/// A negative value (`-1`, which some tools write to mean "unset") also reads as unlimited.
pub fn parse_v1_limit(text: &str) -> Result<Limit, ParseError> {
    const F: Format = Format::CgroupV1Limit;
    let token = single_token(F, text)?;
    if token == "-1" {
        return Ok(Limit::Unlimited);
    }
    let n = number(F, token)?;
    Ok(if n >= V1_UNLIMITED_THRESHOLD {
        Limit::Unlimited
    } else {
        Limit::Value(n)
    })
}

/// The two fields of `/proc/<pid>/statm` the memory probe uses, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statm {
    /// Total program size (`VmSize`), in pages.
    pub size_pages: u64,
    /// Resident set size, in pages.
    pub resident_pages: u64,
}

/// Parses `/proc/<pid>/statm`: seven integers; the first two are size and resident pages.
pub fn parse_statm(text: &str) -> Result<Statm, ParseError> {
    const F: Format = Format::Statm;
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

/// The fields of `/proc/<pid>/status` the budgets use; a field that is missing or malformed
/// is `None` (a process's status is read best-effort, while it may be exiting).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name:`, the process's `comm`.
    pub name: Option<String>,
    /// The real uid, the first number of `Uid:`.
    pub uid: Option<u32>,
    /// `Threads:`.
    pub threads: Option<u64>,
    /// `VmSize:` in bytes (the file says kB).
    pub vm_size: Option<u64>,
}

/// Parses the parts of `/proc/<pid>/status` listed in [`Status`].
pub fn parse_status(text: &str) -> Status {
    let mut out = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_ascii();
        let first = || {
            value
                .split_ascii_whitespace()
                .next()
                .and_then(parse_decimal)
        };
        match key {
            "Name" => out.name = Some(value.to_owned()),
            "Uid" => out.uid = first().and_then(|n| u32::try_from(n).ok()),
            "Threads" => out.threads = parse_decimal(value),
            "VmSize" => out.vm_size = first().and_then(|kb| kb.checked_mul(1024)),
            _ => {}
        }
    }
    out
}

/// Parses only the `Threads:` line of `/proc/<pid>/status` (the samplers' hot path): the
/// process's thread count, threads created outside crashguard included.
pub fn parse_status_threads(text: &str) -> Result<u64, ParseError> {
    const F: Format = Format::Status;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .ok_or_else(|| ParseError::new(F, "no Threads line"))?;
    number(F, value.trim_ascii())
}

/// Parses `MemTotal` out of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Result<u64, ParseError> {
    const F: Format = Format::Meminfo;
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

/// The number of scheduling entities (threads) on the host: the part after `/` in the fourth
/// field of `/proc/loadavg` (`0.05 0.13 0.06 1/83 5054`).
pub fn parse_loadavg_tasks(text: &str) -> Result<u64, ParseError> {
    const F: Format = Format::Loadavg;
    let field = text
        .split_ascii_whitespace()
        .nth(3)
        .ok_or_else(|| ParseError::new(F, "fewer than four fields"))?;
    let (_, total) = field
        .split_once('/')
        .ok_or_else(|| ParseError::new(F, format!("no `/` in {:?}", clip(field))))?;
    number(F, total)
}

/// Finds `key`'s value in a flat-keyed file of `key value` lines (`memory.events`,
/// `memory.stat`, v1 `memory.oom_control`). `Ok(None)` when the key is absent (older kernels);
/// an error when the key is present with a value that is not an integer.
pub fn parse_keyed(format: Format, text: &str, key: &str) -> Result<Option<u64>, ParseError> {
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
    const F: Format = Format::Pressure;
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

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\thttp-client\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t1000\t1000\t1000\t1000\nVmSize:\t   3896 kB\nThreads:\t240\n";

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS);
        assert_eq!(s.name.as_deref(), Some("http-client"));
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.threads, Some(240));
        assert_eq!(s.vm_size, Some(3896 * 1024));
        assert_eq!(parse_status_threads(STATUS), Ok(240));
        assert_eq!(parse_status("Threads:\tmany\n").threads, None);
        assert!(parse_status_threads("Threads:\tmany\n").is_err());
    }

    #[test]
    fn limits_and_numbers() {
        assert_eq!(parse_v2_limit("max\n"), Ok(Limit::Unlimited));
        assert_eq!(parse_v2_limit("1024\n"), Ok(Limit::Value(1024)));
        assert_eq!(
            parse_v1_limit("9223372036854771712\n"),
            Ok(Limit::Unlimited)
        );
        assert_eq!(parse_v1_limit("-1"), Ok(Limit::Unlimited));
        assert!(parse_v2_limit("-1").is_err());
        assert_eq!(parse_u64(Format::Count, " 193102\n"), Ok(193_102));
        assert_eq!(parse_decimal("18446744073709551616"), None);
        assert_eq!(parse_decimal("+5"), None);
        assert_eq!(parse_loadavg_tasks("0.05 0.13 0.06 1/83 5054\n"), Ok(83));
        assert!(parse_loadavg_tasks("0.05 0.13").is_err());
        assert_eq!(Limit::Value(3).min(Limit::Unlimited), Limit::Value(3));
        assert_eq!(Limit::Value(3).min(Limit::Value(2)), Limit::Value(2));
    }
}
