//! The crashguard black box: a preallocated, file-backed record of how a process ended.
//!
//! At install, [`open`] takes a free slot in the report directory (an `flock`ed file, so several
//! processes can share one directory), reads what the slot's previous owner left there, and maps
//! a fresh record. From then on the process writes into it only with memory stores — breadcrumbs,
//! resource heartbeats, a panic, the shutdown's progress, and finally the `end` section followed
//! by the state word. Because the mapping is shared with the file, what was written survives a
//! crash of the process; the next run decodes it with [`decode`].
//!
//! # Async-signal safety
//!
//! Every method of [`BlackBox`] reachable from a signal handler or a global allocator is
//! documented `Async-signal-safe.`: it performs only atomic operations and plain stores into the
//! mapping, and the helpers in [`assafe`] make only raw syscalls. Nothing on that path allocates,
//! locks or panics. Opening, decoding and storing reports allocate freely and must not be called
//! from a handler.
//!
//! # Limitations
//!
//! - Linux is the target. Other Unixes build, but loaded modules are not enumerated (frames stay
//!   absolute addresses) and thread names are empty.
//! - The record is native-endian; a file from a machine of the other endianness is refused.
//! - The mapping is never unmapped: a handler may hold a reference until the process ends. A
//!   disarmed box costs its file size in address space.
//! - Surviving power loss needs the page cache flushed; the writer never calls `msync` on the
//!   crash path (it is not async-signal-safe), so a power cut may lose the last record.
//!
//! # Examples
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("cg-doc-{}", std::process::id()));
//! use crashguard_blackbox::{open, Options, layout};
//! let opened = open(&dir, &Options { ring_capacity: 64, ..Options::new("doc") })?;
//! let path = opened.blackbox.path().to_owned();
//! opened.blackbox.breadcrumb("hello");
//! let report = crashguard_blackbox::decode(&std::fs::read(&path)?)?;
//! assert_eq!(report.outcome, crashguard_blackbox::Outcome::KilledWithoutWarning);
//! assert_eq!(report.breadcrumbs[0].message, "hello");
//! # let _ = layout::MAGIC;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The record is a shared file mapping locked with `flock` and written from signal handlers:
// there is no Windows (or other non-Unix) implementation to fall back to, so say so once and
// plainly instead of failing deep inside platform code.
#[cfg(not(unix))]
compile_error!(
    "crashguard-blackbox supports Unix targets only: Linux (x86_64, aarch64) fully, other Unixes with reduced features"
);

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
pub mod assafe;
#[cfg(unix)]
mod crc;
#[cfg(unix)]
mod crumbs;
#[cfg(unix)]
mod decode;
#[cfg(unix)]
mod dir;
#[cfg(unix)]
mod error;
#[cfg(unix)]
mod escape;
#[cfg(unix)]
mod exit_code;
#[cfg(unix)]
mod exit_watch;
#[cfg(unix)]
pub mod explain;
#[cfg(unix)]
mod files;
#[cfg(unix)]
mod in_use;
#[cfg(unix)]
pub mod layout;
#[cfg(unix)]
pub mod modules;
#[cfg(unix)]
mod names;
#[cfg(unix)]
mod open;
#[cfg(unix)]
mod outcome;
#[cfg(unix)]
pub mod refusal;
#[cfg(unix)]
pub mod repair;
#[cfg(unix)]
mod report;
#[cfg(unix)]
mod shutdown_kinds;
#[cfg(unix)]
pub mod signature;
#[cfg(unix)]
mod store;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
pub mod thread_names;
#[cfg(unix)]
pub mod time;
#[cfg(unix)]
pub mod verdict;
#[cfg(unix)]
mod writer;

#[cfg(unix)]
pub use crc::crc32;
#[cfg(unix)]
pub use decode::{DecodeError, decode, decode_header, signal_info};
#[cfg(unix)]
pub use dir::ReportDir;
#[cfg(unix)]
pub use error::{BoxOption, Error};
#[cfg(unix)]
pub use escape::{Escaped, escape_control, escape_report, json_terminal_safe, terminal_safe};
#[cfg(unix)]
pub use exit_code::{AppCode, ExitCode, ReservedExitCode};
#[cfg(unix)]
pub use files::{open_regular_file, open_termination_log, read_regular_file};
#[cfg(unix)]
pub use in_use::slot_in_use;
#[cfg(unix)]
pub use names::{code_is_sent, code_name, signal_name};
#[cfg(unix)]
pub use open::{
    MAX_SLOTS, Opened, Options, Slot, ensure_private_dir, open, open_slot, validate_app,
};
#[cfg(unix)]
pub use outcome::Outcome;
#[cfg(unix)]
pub use report::*;
#[cfg(unix)]
pub use shutdown_kinds::{HookStatus, ShutdownTrigger};
#[cfg(unix)]
pub use store::{
    MAX_REPORT_BYTES, Retention, StoredReport, list_reports, read_report, reports_dir,
    sort_newest_first, write_report,
};
#[cfg(unix)]
pub use time::Timestamp;
#[cfg(unix)]
pub use writer::{BlackBox, EndWriter, active, set_end_wait_limit};
