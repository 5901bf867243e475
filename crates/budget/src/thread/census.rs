//! The census of a process's threads, grouped by name.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crashguard_blackbox::layout::{CensusEntry, THREAD_NAME_LEN};

use super::group::{group_prefix, trim_comm};
use crate::sys::thread as sys;
use crate::{Error, IoOp};

/// Groups shown by `Display` before the rest is summarised in one "more" item.
const DISPLAY_GROUPS: usize = 12;

/// Threads that share a name once the trailing number is dropped (see [`Census`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CensusGroup {
    prefix: String,
    numbered: bool,
    count: u64,
}

impl CensusGroup {
    /// The shared prefix, e.g. `worker-` for `worker-1`, `worker-2`, or the whole name of an
    /// unnumbered thread such as `main`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the members' names carried a number that was dropped; shown as a trailing `*`.
    pub fn is_numbered(&self) -> bool {
        self.numbered
    }

    /// Threads in the group.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl fmt::Display for CensusGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.numbered { "*" } else { "" };
        write!(f, "{}{star}: {}", self.prefix, self.count)
    }
}

/// The threads of one process grouped by name, largest group first.
///
/// Names come from `/proc/<pid>/task/<tid>/comm` (at most 15 bytes, as the kernel keeps
/// them) and are grouped by dropping a trailing number, so that `http-client-1` ..
/// `http-client-240` read as `http-client-*: 240`. `Display` gives the one-line form
/// `"http-client-*: 240, worker-*: 12, main: 1"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    groups: Vec<CensusGroup>,
    total: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    len: u8,
    numbered: bool,
    bytes: [u8; 32],
}

impl Census {
    /// Counts the threads of this process under `proc_root` (normally `/proc`): reads
    /// `<proc_root>/self/task/*/comm`.
    ///
    /// The walk uses `getdents64` and `openat` relative to the task directory, one reused
    /// buffer and no allocation per thread: three system calls per thread, about 35 ms for
    /// 10,000 threads on a 2-core machine (see `docs/performance/threads.md`). Threads that
    /// exit during the walk are skipped.
    pub fn collect(proc_root: &Path) -> Result<Census, Error> {
        let dir = proc_root.join("self/task");
        let c_dir = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidPath { path: dir.clone() })?;
        let mut counts: HashMap<Key, u64> = HashMap::new();
        let mut dents = vec![0u8; 32 * 1024];
        let mut total = 0u64;
        sys::scan_task_comms(&c_dir, &mut dents, u32::MAX, u32::MAX, &mut |raw| {
            total += 1;
            *counts.entry(key_of(trim_comm(raw))).or_insert(0) += 1;
        })
        .map_err(|errno| Error::io(IoOp::List, &dir, std::io::Error::from_raw_os_error(errno)))?;
        Ok(Self::from_counts(counts, total))
    }

    /// Builds a census from thread names, as if each were read from a `comm` file.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Census {
        let mut counts: HashMap<Key, u64> = HashMap::new();
        let mut total = 0u64;
        for name in names {
            total += 1;
            *counts.entry(key_of(trim_comm(name))).or_insert(0) += 1;
        }
        Self::from_counts(counts, total)
    }

    fn from_counts(counts: HashMap<Key, u64>, total: u64) -> Census {
        let mut groups: Vec<CensusGroup> = counts
            .into_iter()
            .map(|(key, count)| CensusGroup {
                prefix: String::from_utf8_lossy(
                    key.bytes.get(..usize::from(key.len)).unwrap_or(&[]),
                )
                .into_owned(),
                numbered: key.numbered,
                count,
            })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.prefix.cmp(&b.prefix)));
        Census { groups, total }
    }

    /// The groups, largest first (ties by name).
    pub fn groups(&self) -> &[CensusGroup] {
        &self.groups
    }

    /// Threads counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The group with this prefix (`"worker-"`), if any.
    pub fn group(&self, prefix: &str) -> Option<&CensusGroup> {
        self.groups.iter().find(|g| g.prefix == prefix)
    }

    /// Copies the census into the black box's fixed-size form (e.g. `End::census`): the largest
    /// groups first, as many as fit in `entries`; `total` counts every thread.
    pub fn fill_entries(&self, entries: &mut [CensusEntry], count: &mut u32, total: &mut u32) {
        let mut n = 0u32;
        for (slot, group) in entries.iter_mut().zip(&self.groups) {
            let bytes = group.prefix.as_bytes();
            let len = bytes.len().min(THREAD_NAME_LEN);
            slot.name = [0; THREAD_NAME_LEN];
            if let (Some(dst), Some(src)) = (slot.name.get_mut(..len), bytes.get(..len)) {
                dst.copy_from_slice(src);
            }
            slot.name_len = u32::try_from(len).unwrap_or(0);
            slot.count = u32::try_from(group.count).unwrap_or(u32::MAX);
            n += 1;
        }
        *count = n;
        *total = u32::try_from(self.total).unwrap_or(u32::MAX);
    }
}

fn key_of(name: &[u8]) -> Key {
    let (len, numbered) = group_prefix(name);
    let mut bytes = [0u8; 32];
    let len = len.min(bytes.len());
    if let (Some(dst), Some(src)) = (bytes.get_mut(..len), name.get(..len)) {
        dst.copy_from_slice(src);
    }
    Key {
        len: u8::try_from(len).unwrap_or(0),
        numbered,
        bytes,
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() {
            return f.write_str("no threads counted");
        }
        for (i, group) in self.groups.iter().take(DISPLAY_GROUPS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{group}")?;
        }
        if self.groups.len() > DISPLAY_GROUPS {
            let rest = self.groups.get(DISPLAY_GROUPS..).unwrap_or(&[]);
            let threads: u64 = rest.iter().map(|g| g.count).sum();
            write!(f, ", {} more groups: {threads}", rest.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_sorted_and_displayed() {
        let mut names: Vec<String> = (0..240).map(|i| format!("http-client-{i}")).collect();
        names.extend((0..12).map(|i| format!("worker-{i}\n")));
        names.push("main".into());
        let census = Census::from_names(names.iter().map(|n| n.as_bytes()));
        assert_eq!(census.total(), 253);
        assert_eq!(
            census.to_string(),
            "http-client-*: 240, worker-*: 12, main: 1"
        );
        assert_eq!(census.group("worker-").map(CensusGroup::count), Some(12));
    }

    #[test]
    fn long_census_is_summarised() {
        let names: Vec<String> = (0..20)
            .map(|i| format!("g{}x-1", (b'a' + i) as char))
            .collect();
        let census = Census::from_names(names.iter().map(|n| n.as_bytes()));
        assert!(
            census.to_string().ends_with(", 8 more groups: 8"),
            "{census}"
        );
    }

    #[test]
    fn fills_fixed_entries() {
        let names = ["a-1", "a-2", "b", "c-1"];
        let census = Census::from_names(names.iter().map(|n| n.as_bytes()));
        let mut entries = [CensusEntry {
            count: 0,
            name_len: 0,
            name: [0; 16],
        }; 2];
        let (mut count, mut total) = (0, 0);
        census.fill_entries(&mut entries, &mut count, &mut total);
        assert_eq!((count, total), (2, 4));
        assert_eq!(&entries[0].name[..entries[0].name_len as usize], b"a-");
        assert_eq!(entries[0].count, 2);
    }

    #[test]
    fn collects_this_process() {
        let census = Census::collect(Path::new("/proc")).expect("census of /proc/self");
        assert!(census.total() >= 1);
        let missing = Census::collect(Path::new("/nonexistent-proc"));
        assert!(missing.is_err());
    }
}
