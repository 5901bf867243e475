//! `MemoryProbe`: reads the process's memory figures from `/proc` and its cgroup.
//!
//! Every path is taken relative to a root directory (`/` on a real machine) so that tests can
//! point the probe at fixture trees. The probe discovers the process's memory cgroup once, at
//! construction, from `<root>/proc/self/cgroup` and `<root>/proc/self/mountinfo`, and then reads
//! the same files on every [`MemoryProbe::sample`] into one reused buffer.
//!
//! A missing file (no cgroup, an older kernel, a non-Linux unix) gives `None` for what it would
//! have told; a file with contents that cannot be parsed gives [`Error::Parse`] naming it.

use std::path::{Path, PathBuf};

use super::accounting;
use crate::error::{Error, Result};
use crate::kernel::{
    self as parse, CgroupVersion, Format, Limit, Pressure, Roots, read, read_parsed,
};

/// Where the process's memory cgroup lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLocation {
    /// The hierarchy.
    pub version: CgroupVersion,
    /// The cgroup's directory (under the probe's root).
    pub dir: PathBuf,
    /// Directories of its ancestors up to the mount point, nearest first; their limits apply
    /// to the process too.
    pub ancestors: Vec<PathBuf>,
}

/// The cgroup's memory figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupSample {
    /// The hierarchy they came from.
    pub version: CgroupVersion,
    /// Memory charged to the cgroup (`memory.current` / `memory.usage_in_bytes`), page cache
    /// included.
    pub current_bytes: Option<u64>,
    /// Inactive file-backed pages (`inactive_file` / `total_inactive_file` in `memory.stat`):
    /// page cache the kernel reclaims before it considers the OOM killer.
    pub inactive_file_bytes: Option<u64>,
    /// The effective hard limit: the lowest `memory.max` / `memory.limit_in_bytes` of the
    /// cgroup and its ancestors.
    pub limit: Limit,
    /// The effective `memory.high` (throttling threshold; v2 only, unlimited on v1).
    pub high: Limit,
    /// Processes killed by the OOM killer in this cgroup (`oom_kill` in `memory.events` or v1
    /// `memory.oom_control`).
    pub oom_kill: Option<u64>,
    /// Times the cgroup hit its limit and the OOM killer was invoked (v2 `oom`).
    pub oom: Option<u64>,
    /// Times usage was about to go over `memory.max` (v2 `max`).
    pub max_events: Option<u64>,
    /// Memory pressure stall information (v2 `memory.pressure`).
    pub pressure: Option<Pressure>,
}

impl CgroupSample {
    /// Usage the kernel cannot simply reclaim: `current - inactive_file` (what kubelet calls the
    /// working set). Falls back to `current` when `memory.stat` is unavailable.
    pub fn working_set_bytes(&self) -> Option<u64> {
        let current = self.current_bytes?;
        Some(current.saturating_sub(self.inactive_file_bytes.unwrap_or(0)))
    }
}

/// One sample of the process's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySample {
    /// Resident set size from `statm`.
    pub rss_bytes: Option<u64>,
    /// Live heap bytes counted by `BudgetAllocator`, when it is the global allocator.
    pub heap_bytes: Option<u64>,
    /// `MemTotal` from `/proc/meminfo`, read when the probe was built.
    pub mem_total_bytes: Option<u64>,
    /// Threads in the process, from `/proc/self/status`, when readable.
    pub threads: Option<u64>,
    /// The cgroup's figures, when the process is in a memory cgroup.
    pub cgroup: Option<CgroupSample>,
}

/// Reads the process's memory figures; see the module documentation.
#[derive(Debug)]
pub struct MemoryProbe {
    page_size: u64,
    statm: PathBuf,
    status: PathBuf,
    cgroup: Option<CgroupLocation>,
    files: Option<CgroupFiles>,
    mem_total: Option<u64>,
    heap: bool,
    buf: String,
}

/// Paths of the files read on every sample, built once.
#[derive(Debug)]
struct CgroupFiles {
    current: PathBuf,
    stat: PathBuf,
    events: PathBuf,
    pressure: Option<PathBuf>,
    /// `(memory.max or memory.limit_in_bytes, memory.high)` of the cgroup and its ancestors.
    limits: Vec<(PathBuf, Option<PathBuf>)>,
}

impl MemoryProbe {
    /// A probe of this process on the real machine (root `/`).
    pub fn new() -> Result<Self> {
        Self::with_root("/")
    }

    /// A probe that reads `<root>/proc/self/...` and the cgroup files under `root`.
    pub fn with_root(root: impl AsRef<Path>) -> Result<Self> {
        Self::with_roots(&Roots::under(root))
    }

    /// A probe that reads `<proc>/self/...` and the cgroup files the roots lead to.
    pub fn with_roots(roots: &Roots) -> Result<Self> {
        let mut buf = String::with_capacity(4096);
        let cgroup = discover(roots)?;
        let meminfo = roots.proc().join("meminfo");
        let mem_total = read_parsed(&meminfo, &mut buf, parse::parse_meminfo_total)?;
        let files = cgroup.as_ref().map(CgroupFiles::new);
        Ok(MemoryProbe {
            page_size: crate::sys::page_size(),
            statm: roots.proc().join("self/statm"),
            status: roots.proc().join("self/status"),
            cgroup,
            files,
            mem_total,
            heap: accounting::is_installed(),
            buf,
        })
    }

    /// Overrides the page size used to turn `statm` pages into bytes (fixtures use 4096).
    pub fn with_page_size(mut self, page_size: u64) -> Self {
        self.page_size = page_size;
        self
    }

    /// The memory cgroup found at construction, if any.
    pub fn cgroup(&self) -> Option<&CgroupLocation> {
        self.cgroup.as_ref()
    }

    /// `MemTotal`, read at construction.
    pub fn mem_total_bytes(&self) -> Option<u64> {
        self.mem_total
    }

    /// Reads the current figures.
    pub fn sample(&mut self) -> Result<MemorySample> {
        let rss_bytes = match read_parsed(&self.statm, &mut self.buf, parse::parse_statm)? {
            Some(s) => Some(s.resident_pages.saturating_mul(self.page_size)),
            None => None,
        };
        let cgroup = match (&self.cgroup, &self.files) {
            (Some(loc), Some(files)) => Some(files.sample(loc.version, &mut self.buf)?),
            _ => None,
        };
        // The thread count rides along for the heartbeat; a missing or odd status file is no
        // reason to lose the memory figures.
        let threads = read_parsed(&self.status, &mut self.buf, parse::parse_status_threads)
            .ok()
            .flatten();
        Ok(MemorySample {
            rss_bytes,
            heap_bytes: self.heap.then(accounting::live_bytes),
            mem_total_bytes: self.mem_total,
            threads,
            cgroup,
        })
    }
}

impl CgroupFiles {
    fn new(loc: &CgroupLocation) -> Self {
        let d = &loc.dir;
        let limit_files = |dir: &Path| match loc.version {
            CgroupVersion::V2 => (dir.join("memory.max"), Some(dir.join("memory.high"))),
            CgroupVersion::V1 => (dir.join("memory.limit_in_bytes"), None),
        };
        let limits = std::iter::once(d)
            .chain(&loc.ancestors)
            .map(|p| limit_files(p))
            .collect();
        match loc.version {
            CgroupVersion::V2 => CgroupFiles {
                current: d.join("memory.current"),
                stat: d.join("memory.stat"),
                events: d.join("memory.events"),
                pressure: Some(d.join("memory.pressure")),
                limits,
            },
            CgroupVersion::V1 => CgroupFiles {
                current: d.join("memory.usage_in_bytes"),
                stat: d.join("memory.stat"),
                events: d.join("memory.oom_control"),
                pressure: None,
                limits,
            },
        }
    }

    fn sample(&self, version: CgroupVersion, buf: &mut String) -> Result<CgroupSample> {
        let v2 = version == CgroupVersion::V2;
        let current_bytes = read_parsed(&self.current, buf, |t| {
            parse::parse_u64(Format::MemoryUsage, t)
        })?;
        let stat_key = if v2 {
            "inactive_file"
        } else {
            "total_inactive_file"
        };
        let inactive_file_bytes = read_parsed(&self.stat, buf, |t| {
            parse::parse_keyed(Format::MemoryStat, t, stat_key)
        })?
        .flatten();
        let mut limit = Limit::Unlimited;
        let mut high = Limit::Unlimited;
        for (max_path, high_path) in &self.limits {
            let parse_limit = if v2 {
                parse::parse_v2_limit
            } else {
                parse::parse_v1_limit
            };
            if let Some(l) = read_parsed(max_path, buf, parse_limit)? {
                limit = limit.min(l);
            }
            if let Some(h) = high_path
                && let Some(l) = read_parsed(h, buf, parse::parse_v2_limit)?
            {
                high = high.min(l);
            }
        }
        let (mut oom_kill, mut oom, mut max_events) = (None, None, None);
        if read(&self.events, buf)? {
            let events = |key| {
                parse::parse_keyed(
                    if v2 {
                        Format::MemoryEvents
                    } else {
                        Format::MemoryOomControl
                    },
                    buf,
                    key,
                )
                .map_err(|source| Error::Parse {
                    path: self.events.clone(),
                    source,
                })
            };
            oom_kill = events("oom_kill")?;
            if v2 {
                oom = events("oom")?;
                max_events = events("max")?;
            }
        }
        let pressure = match &self.pressure {
            Some(p) => read_parsed(p, buf, parse::parse_pressure)?,
            None => None,
        };
        Ok(CgroupSample {
            version,
            current_bytes,
            inactive_file_bytes,
            limit,
            high,
            oom_kill,
            oom,
            max_events,
            pressure,
        })
    }
}

/// Finds the process's memory cgroup: the v1 `memory` controller when the process is in one
/// (hybrid hosts such as this project's CI keep memory on v1 and mount an empty v2 hierarchy
/// beside it), else the v2 unified hierarchy.
fn discover(roots: &Roots) -> Result<Option<CgroupLocation>> {
    let dirs = crate::kernel::cgroup_dirs(roots, "memory")?;
    let chosen = dirs
        .iter()
        .find(|d| d.version == CgroupVersion::V1)
        .or_else(|| dirs.iter().find(|d| d.version == CgroupVersion::V2));
    Ok(chosen.map(|d| CgroupLocation {
        version: d.version,
        dir: d.dir.clone(),
        ancestors: d.levels().skip(1).map(Path::to_path_buf).collect(),
    }))
}
