//! The thread census for the crash path: no allocation, no locks, bounded.
//!
//! The crash handler calls [`census_raw_into`] to fill `End::census` of the black box. It uses
//! only `open`, `getdents64`, `openat`, `read` and `close` with buffers on the stack, at most
//! about 1.2 KiB at a time. Its time does not grow with the number of threads: it lists only the first
//! [`MAX_NAMED`] entries of `/proc/self/task` and reads their names (one `openat` + `read` +
//! `close` each), and takes the total from the kernel's own count (`num_threads` in
//! `/proc/self/stat`); the tasks it did not name form the group `(not named)`. Listing the whole
//! directory instead cost about 1 ms per thousand threads (procfs renders every entry), 10 ms
//! and more for 10,000 threads, in a handler that must end the process quickly.

use std::ffi::CStr;

use crashguard_blackbox::layout::{CensusEntry, THREAD_NAME_LEN};

use super::group::{group_prefix, trim_comm};
use crate::sys::thread as sys;

/// Tasks the crash-time census counts at most.
pub const MAX_TASKS: u32 = 100_000;

/// Tasks whose names the crash-time census reads; the rest are counted only.
pub const MAX_NAMED: u32 = 256;

/// The name of the group that collects everything once all entries are taken.
const OTHER: &[u8] = b"(other)";

/// The group of tasks counted but not named (past [`MAX_NAMED`]).
const NOT_NAMED: &[u8] = b"(not named)";

/// Counts this process's threads by name group into `entries` (largest first), sets `count` to
/// the number of entries used and `total` to the number of threads read. When there are more
/// groups than entries, the last entry becomes `(other)` and collects the rest. On any error
/// (no `/proc`, not Linux) `count` and `total` are 0.
///
/// Async-signal-safe.
pub fn census_raw_into(entries: &mut [CensusEntry], count: &mut u32, total: &mut u32) {
    match sys::thread_count() {
        Some(kernel_total) => census(
            c"/proc/self/task",
            MAX_NAMED,
            Some(kernel_total),
            entries,
            count,
            total,
        ),
        // No count from the kernel: list the whole directory, as for a fixture tree.
        None => census_raw_from(c"/proc/self/task", entries, count, total),
    }
}

/// [`census_raw_into`] over any task directory, for fixture trees.
///
/// Async-signal-safe.
pub fn census_raw_from(
    task_dir: &CStr,
    entries: &mut [CensusEntry],
    count: &mut u32,
    total: &mut u32,
) {
    census(task_dir, MAX_TASKS, None, entries, count, total);
}

/// Lists at most `listed` tasks of `task_dir` (naming the first [`MAX_NAMED`]); the total is
/// `kernel_total` when given (never less than what was listed), else what was listed.
///
/// Async-signal-safe.
fn census(
    task_dir: &CStr,
    listed: u32,
    kernel_total: Option<u32>,
    entries: &mut [CensusEntry],
    count: &mut u32,
    total: &mut u32,
) {
    let mut dents = [0u8; 1024];
    let mut used: usize = 0;
    let mut other: Option<usize> = None;
    let result = sys::scan_task_comms(task_dir, &mut dents, listed, MAX_NAMED, &mut |raw| {
        let name = trim_comm(raw);
        let (len, _) = group_prefix(name);
        let prefix = name.get(..len.min(THREAD_NAME_LEN)).unwrap_or(&[]);
        add(entries, &mut used, &mut other, prefix);
    });
    match result {
        Ok((listed, named)) => {
            let seen = kernel_total.map_or(listed, |t| t.max(listed));
            if seen > named {
                add_many(entries, &mut used, &mut other, NOT_NAMED, seen - named);
            }
            sort_by_count(entries.get_mut(..used).unwrap_or(&mut []));
            *count = u32::try_from(used).unwrap_or(0);
            *total = seen;
        }
        Err(_) => {
            *count = 0;
            *total = 0;
        }
    }
}

/// Adds `n` tasks of the group `prefix`.
///
/// Async-signal-safe.
fn add_many(
    entries: &mut [CensusEntry],
    used: &mut usize,
    other: &mut Option<usize>,
    prefix: &[u8],
    n: u32,
) {
    add(entries, used, other, prefix);
    let live = entries.get_mut(..*used).unwrap_or(&mut []);
    if let Some(entry) = live
        .iter_mut()
        .rev()
        .find(|e| name_of(e) == prefix || name_of(e) == OTHER)
    {
        entry.count = entry.count.saturating_add(n.saturating_sub(1));
    }
}

/// Async-signal-safe.
fn add(entries: &mut [CensusEntry], used: &mut usize, other: &mut Option<usize>, prefix: &[u8]) {
    let live = entries.get_mut(..*used).unwrap_or(&mut []);
    for (i, entry) in live.iter_mut().enumerate() {
        if Some(i) != *other && name_of(entry) == prefix {
            entry.count = entry.count.saturating_add(1);
            return;
        }
    }
    if let Some(slot) = entries.get_mut(*used) {
        set(slot, prefix, 1);
        *used += 1;
        return;
    }
    // Full: fold the last entry into "(other)" once, then count every new group there.
    let last = match *other {
        Some(i) => i,
        None => {
            let Some(i) = used.checked_sub(1) else {
                return;
            };
            if let Some(slot) = entries.get_mut(i) {
                let kept = slot.count;
                set(slot, OTHER, kept);
            }
            *other = Some(i);
            i
        }
    };
    if let Some(slot) = entries.get_mut(last) {
        slot.count = slot.count.saturating_add(1);
    }
}

/// Async-signal-safe.
fn name_of(entry: &CensusEntry) -> &[u8] {
    let len = usize::try_from(entry.name_len).unwrap_or(0);
    entry.name.get(..len).unwrap_or(&[])
}

/// Async-signal-safe.
fn set(slot: &mut CensusEntry, name: &[u8], count: u32) {
    let len = name.len().min(THREAD_NAME_LEN);
    slot.name = [0; THREAD_NAME_LEN];
    if let (Some(dst), Some(src)) = (slot.name.get_mut(..len), name.get(..len)) {
        dst.copy_from_slice(src);
    }
    slot.name_len = u32::try_from(len).unwrap_or(0);
    slot.count = count;
}

/// Insertion sort by count, largest first; at most a few dozen entries.
///
/// Async-signal-safe.
fn sort_by_count(entries: &mut [CensusEntry]) {
    for i in 1..entries.len() {
        let mut j = i;
        while j > 0 {
            let (Some(a), Some(b)) = (entries.get(j - 1), entries.get(j)) else {
                break;
            };
            if a.count >= b.count {
                break;
            }
            entries.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashguard_blackbox::layout::MAX_CENSUS;
    use proptest::prelude::*;

    fn empty() -> CensusEntry {
        CensusEntry {
            count: 0,
            name_len: 0,
            name: [0; THREAD_NAME_LEN],
        }
    }

    fn run(names: &[&[u8]], slots: usize) -> Vec<(Vec<u8>, u32)> {
        let mut entries = vec![empty(); slots];
        let mut used = 0;
        let mut other = None;
        for name in names {
            let (len, _) = group_prefix(name);
            add(&mut entries, &mut used, &mut other, &name[..len.min(16)]);
        }
        sort_by_count(&mut entries[..used]);
        entries[..used]
            .iter()
            .map(|e| (name_of(e).to_vec(), e.count))
            .collect()
    }

    #[test]
    fn groups_and_sorts() {
        let got = run(&[b"main", b"w-1", b"w-2", b"w-3", b"io-1", b"io-2"], 8);
        assert_eq!(
            got,
            vec![
                (b"w-".to_vec(), 3),
                (b"io-".to_vec(), 2),
                (b"main".to_vec(), 1)
            ]
        );
    }

    #[test]
    fn overflow_goes_to_other() {
        // "b" is folded into "(other)" when "c" finds no free entry; later "b"s count there.
        let got = run(&[b"a", b"b", b"c", b"d", b"b"], 2);
        assert_eq!(got, vec![(b"(other)".to_vec(), 4), (b"a".to_vec(), 1)]);
        assert!(run(&[b"a"], 0).is_empty());
    }

    #[test]
    fn own_process() {
        let mut entries = [empty(); MAX_CENSUS];
        let (mut count, mut total) = (0, 0);
        census_raw_into(&mut entries, &mut count, &mut total);
        assert!(total >= 1);
        assert!(count >= 1);
        let summed: u32 = entries[..count as usize].iter().map(|e| e.count).sum();
        assert_eq!(summed, total);
    }

    #[test]
    fn missing_dir_gives_zero() {
        let mut entries = [empty(); 4];
        let (mut count, mut total) = (7, 7);
        census_raw_from(c"/nonexistent/task", &mut entries, &mut count, &mut total);
        assert_eq!((count, total), (0, 0));
    }

    proptest! {
        #[test]
        fn counts_are_conserved(
            names in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..200),
            slots in 0usize..6,
        ) {
            let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let got = run(&refs, slots);
            let sum: u32 = got.iter().map(|(_, c)| c).sum();
            if slots > 0 {
                prop_assert_eq!(sum as usize, names.len());
            }
            prop_assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
        }
    }
}
