//! Exits made outside crashguard: `std::process::exit(n)`, `libc::exit(n)`, `main` returning
//! a status after the guard recorded a clean end.
//!
//! The first black box armed in a process registers one handler with the C library's exit
//! machinery (glibc's `on_exit`, which is told the status; `atexit` elsewhere, which is not).
//! When the process calls `exit`:
//!
//! - a black box still running (nobody recorded an end) gets an `exit` end with the status, or
//!   with [`EXIT_CODE_UNKNOWN`] where the status cannot be known;
//! - a clean end recorded with a different status (the guard was dropped, then `main` returned
//!   an error) becomes an `exit` end with the real status;
//! - an end claimed but not yet committed by another thread (a crash handler recording) is
//!   waited for, so that the process does not exit 0 under a record that is still being written.
//!
//! What cannot be seen: `_exit`/`exit_group` (no user code runs), `exec` replacing the process,
//! and, with `atexit`, the status. The black box of a dropped guard stays "retired" (mapped and
//! locked) until the process ends or the next install, so that this handler can still amend it
//! and no other process can take the slot in between.

use std::ffi::{c_int, c_void};

use crate::layout::EXIT_CODE_UNKNOWN;
use crate::sys;
use crate::writer;

/// Registers the exit handler, once per process.
pub(crate) fn watch() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        sys::exit::on_process_exit(exit_with_status, exit_without_status);
    });
}

/// The `on_exit` handler.
extern "C" fn exit_with_status(status: c_int, _: *mut c_void) {
    // The kernel keeps the low eight bits of the status.
    observe((status & 0xff) as u32);
}

/// The `atexit` handler, where the status is not available.
extern "C" fn exit_without_status() {
    observe(EXIT_CODE_UNKNOWN);
}

fn observe(status: u32) {
    if let Some(bb) = writer::active().or_else(writer::retired) {
        bb.record_exit(status);
    }
}
