//! The loaded objects of this process, captured at install so that the crash handler can turn
//! absolute instruction pointers into (module, offset) pairs without calling the loader.
//!
//! `dl_iterate_phdr` takes the loader's lock, so it is called here, at install, and never from a
//! handler. Libraries loaded later with `dlopen` are missing from the table; their frames are
//! recorded as absolute addresses.

use crate::layout::{BUILD_ID_LEN, MAX_MODULES, Module, PATH_LEN};

/// Fills `out` with the loaded objects (the executable first) and returns how many were found.
pub(crate) fn capture(out: &mut [Module; MAX_MODULES], exe: &[u8]) -> u32 {
    crate::sys_modules::capture(out, exe)
}

/// Finds the module containing `ip`.
///
/// Async-signal-safe.
pub fn find(modules: &[Module], ip: u64) -> Option<(usize, &Module)> {
    modules
        .iter()
        .enumerate()
        .find(|(_, m)| m.start <= ip && ip < m.end)
}

/// An empty module entry.
pub(crate) const EMPTY: Module = Module {
    start: 0,
    end: 0,
    bias: 0,
    build_id_len: 0,
    path_len: 0,
    build_id: [0; BUILD_ID_LEN],
    path: [0; PATH_LEN],
};
