//! The loaded objects of this process, captured at install so that the crash handler can turn
//! absolute instruction pointers into (module, offset) pairs without calling the loader.
//!
//! `dl_iterate_phdr` takes the loader's lock, so it is called here, at install, and never from a
//! handler. Libraries loaded later with `dlopen` are missing from the table; their frames are
//! recorded as absolute addresses.

use crate::layout::{BUILD_ID_LEN, MAX_MODULES, Module, PATH_LEN};

/// Fills `out` with the loaded objects (the executable first) and returns how many were found.
pub(crate) fn capture(out: &mut [Module; MAX_MODULES], exe: &[u8]) -> u32 {
    crate::sys::modules::capture(out, exe)
}

/// The objects loaded right now (the executable first). Allocates; not for signal handlers.
pub fn loaded() -> Vec<Module> {
    let mut table = Box::new([EMPTY; MAX_MODULES]);
    let exe = std::env::current_exe()
        .map(std::path::PathBuf::into_os_string)
        .unwrap_or_default();
    let n = capture(
        &mut table,
        std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str()),
    );
    table.iter().take(n as usize).copied().collect()
}

/// The module's path as text.
pub fn path_of(m: &Module) -> String {
    String::from_utf8_lossy(m.path.get(..m.path_len as usize).unwrap_or(&[])).into_owned()
}

/// The module's build id in lowercase hex, empty when it has none.
pub fn build_id_hex(m: &Module) -> String {
    m.build_id
        .iter()
        .take(m.build_id_len as usize)
        .map(|b| format!("{b:02x}"))
        .collect()
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
