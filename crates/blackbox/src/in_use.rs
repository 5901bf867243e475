//! Whether a live process holds a black-box slot now.
//!
//! A process keeps its slot file `flock`ed for its whole life, and the kernel drops the lock when
//! the process dies, however it dies. So a box whose state word still says "running" while no one
//! holds its lock belongs to a process that vanished without a handler running: its next run will
//! report `killed_without_warning`, and a reader (the CLI) can say so at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys;

/// Whether some process holds the lock of the slot file at `path` now.
///
/// The probe takes a shared lock for an instant and releases it; a process starting at that
/// very instant finds the slot taken and uses the next one, which costs it nothing. The file is
/// opened read-only, non-blocking and without following a symbolic link; anything but a regular
/// file is an error. A copy of a slot file is never locked, so this says nothing about the
/// process that wrote the original.
pub fn slot_in_use(path: &Path) -> io::Result<bool> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(sys::PROBE_OPEN_FLAGS)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    sys::lock_held_elsewhere(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_held_by_this_process_is_in_use_and_a_copy_is_not() {
        let dir = std::env::temp_dir().join(format!("cg-in-use-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opened = crate::open(
            &dir,
            &crate::Options {
                app: "inuse".into(),
                ring_capacity: 64,
                stack_capacity: crate::layout::DEFAULT_STACK_CAPACITY,
            },
        )
        .expect("open");
        let path = opened.blackbox.path().to_owned();
        assert!(slot_in_use(&path).expect("probe"));
        // The probe released its shared lock: the slot is still held, and still ours.
        assert!(slot_in_use(&path).expect("probe"));
        let copy = dir.join("copy.box");
        std::fs::copy(&path, &copy).expect("copy");
        assert!(!slot_in_use(&copy).expect("probe"));
        assert!(slot_in_use(&dir).is_err());
        assert!(slot_in_use(&dir.join("missing.box")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
