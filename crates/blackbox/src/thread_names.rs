//! Full names of threads crashguard spawned. The kernel keeps 15 bytes of a thread name
//! (`tokio-runtime-w`), which is all the fatal handler can read; a thread started by
//! `crashguard::thread::Builder` writes its whole name into the black box's thread-name table
//! when it starts and clears it when its closure ends, and the decoder names the crashing or
//! panicking thread from there. Nothing here runs in a signal handler.

use std::sync::atomic::{AtomicU32, Ordering, fence};

use crate::layout::{
    FULL_THREAD_NAME_LEN, MAX_THREAD_NAMES, THREAD_NAME_LEN, ThreadName, thread_name_check,
};
use crate::writer::BlackBox;

/// Holds the calling thread's entry in the thread-name table; dropping it frees the entry.
/// Must be dropped on the thread that created it (it is neither `Send` nor `Sync`).
#[derive(Debug)]
#[must_use = "the entry is freed when the registration is dropped"]
pub struct Registration {
    entry: Option<(&'static BlackBox, usize, u32)>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Registration {
    /// Whether the name went into the table (false when no black box is armed, the name fits
    /// the kernel's 15 bytes anyway, or all entries are taken).
    pub fn is_recorded(&self) -> bool {
        self.entry.is_some()
    }
}

/// Records `name` as the full name of the calling thread in the armed black box, so that a
/// report of this thread's crash or panic names it by more than the kernel's 15 bytes. Names
/// that fit in 15 bytes need no entry and get none; a name longer than 64 bytes is cut at a
/// UTF-8 boundary. Call it first thing in the thread and keep the [`Registration`] until the
/// thread's work is done.
pub fn register_current(name: &str) -> Registration {
    let none = Registration {
        entry: None,
        _not_send: std::marker::PhantomData,
    };
    if name.len() < THREAD_NAME_LEN {
        return none;
    }
    let Some(bb) = crate::active() else {
        return none;
    };
    let tid = crate::assafe::gettid();
    if tid == 0 {
        return none;
    }
    let table = bb.thread_names();
    // An entry still owned by this thread id (a registration that was leaked) is reused, so
    // that one thread id never has two entries.
    let index = (0..MAX_THREAD_NAMES)
        .find(|&i| owner(table, i).load(Ordering::Acquire) == tid)
        .or_else(|| {
            (0..MAX_THREAD_NAMES).find(|&i| {
                owner(table, i)
                    .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        });
    let Some(index) = index else {
        return none;
    };
    let mut cut = name.len().min(FULL_THREAD_NAME_LEN);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let bytes = name.as_bytes().get(..cut).unwrap_or(&[]);
    let seq = sequence(table, index);
    let odd = seq.load(Ordering::Relaxed).wrapping_add(1) | 1;
    let even = odd.wrapping_add(1);
    seq.store(odd, Ordering::Relaxed);
    fence(Ordering::Release);
    let mut body = [0u8; FULL_THREAD_NAME_LEN];
    body[..bytes.len()].copy_from_slice(bytes);
    let len = bytes.len() as u32;
    let check = thread_name_check(even, tid, len, &body);
    // SAFETY: `index < MAX_THREAD_NAMES`, so the entry lies in the live mapping; this thread owns
    // it (its id is in `tid`), so nobody else writes these fields; plain integer and byte fields.
    unsafe {
        let entry = table.add(index);
        std::ptr::write_volatile(&raw mut (*entry).len, len);
        std::ptr::write_volatile(&raw mut (*entry).name, body);
        std::ptr::write_volatile(&raw mut (*entry).check, check);
    }
    seq.store(even, Ordering::Release);
    Registration {
        entry: Some((bb, index, tid)),
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some((bb, index, tid)) = self.entry.take() else {
            return;
        };
        let table = bb.thread_names();
        let owner = owner(table, index);
        if owner.load(Ordering::Acquire) != tid {
            return;
        }
        // Odd first: the entry is invalid before the thread id that validates it goes, so a
        // later owner with the same id never sees this thread's name as its own.
        let seq = sequence(table, index);
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1) | 1,
            Ordering::Release,
        );
        owner.store(0, Ordering::Release);
    }
}

fn owner(table: *mut ThreadName, index: usize) -> &'static AtomicU32 {
    debug_assert!(index < MAX_THREAD_NAMES);
    // SAFETY: callers pass `index < MAX_THREAD_NAMES`; the mapping lives for the rest of the
    // process (an armed box is never unmapped), the word is 4-byte aligned (`repr(C)` of u32s)
    // and only ever accessed atomically while the process runs.
    unsafe { AtomicU32::from_ptr(&raw mut (*table.add(index)).tid) }
}

fn sequence(table: *mut ThreadName, index: usize) -> &'static AtomicU32 {
    debug_assert!(index < MAX_THREAD_NAMES);
    // SAFETY: as in `owner`.
    unsafe { AtomicU32::from_ptr(&raw mut (*table.add(index)).seq) }
}

/// The full name of thread `tid` from a decoded table, if an entry for it is complete and
/// intact and agrees with `recorded`, the (truncated) name the crash or panic recorded: the
/// full name must start with it, so a thread renamed since it started keeps its recorded name.
pub(crate) fn lookup(table: &[ThreadName], tid: u32, recorded: &[u8]) -> Option<String> {
    if tid == 0 {
        return None;
    }
    let recorded = &recorded[..recorded
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(recorded.len())];
    table.iter().find_map(|e| {
        let len = e.len as usize;
        let name = e.name.get(..len)?;
        let valid = e.tid == tid
            && e.seq != 0
            && e.seq & 1 == 0
            && e.check == thread_name_check(e.seq, e.tid, e.len, &e.name)
            && name.len() > recorded.len()
            && name.starts_with(recorded);
        valid.then(|| String::from_utf8_lossy(name).into_owned())
    })
}
