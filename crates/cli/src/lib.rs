//! The `crashguard` command as a library: reading report directories, report files and raw black
//! boxes, symbolizing recorded frames offline, and rendering reports for humans.
//!
//! The binary in `main.rs` only parses arguments and maps errors to exit statuses; everything
//! else lives here so that tests and other tools can use it.
//!
//! # Async-signal safety
//!
//! Nothing here runs in a signal handler: the CLI reads files that crashed (or running)
//! processes left behind, so it may allocate, lock and take its time. It never writes to a black
//! box, so inspecting a live process's box cannot disturb it.
//!
//! # Limitations
//!
//! - Symbolization needs the module on disk with the recorded build id (`--binary` replaces the
//!   executable's path). Separate debug files are found under `/usr/lib/debug/.build-id/` and
//!   through `.gnu_debuglink`; debuginfod is not asked.
//! - File and line need DWARF line tables: for a release build, set
//!   `[profile.release] debug = "line-tables-only"` (file:line and inlined functions, the
//!   smallest setting that gives them; `debug = "limited"` or `true` work too). Rust's default
//!   release profile strips debug information but keeps the symbol table, which gives function
//!   names only. A stripped binary (`strip = "symbols"`) shows frames as `module+0xoffset`.
//!   Ship the debug information split off with `objcopy --only-keep-debug` and either
//!   `--add-gnu-debuglink` or a `.build-id/` directory (`--debug-dir`).
//! - Inline frames are expanded; in `show --json` they become extra frames sharing one `ip`.
//! - Whether a black box's process is still alive is judged from the slot file's `flock`
//!   (`crashguard_blackbox::slot_in_use`): the kernel drops it when the process dies, so a box
//!   still "running" with its lock free belongs to a vanished process, and `list`/`show` present
//!   it as the report its next run will store. A copy of a box is never locked; for a copy the
//!   CLI also says whether the recorded pid is alive (`/proc/<pid>`, which cannot tell a reused
//!   pid).
//!
//! # Examples
//!
//! ```
//! // `crashguard explain 139`, as a library call.
//! let text = crashguard_blackbox::explain::explain(139).to_string();
//! assert!(text.contains("SIGSEGV"));
//! ```

#![forbid(unsafe_code)]

// The command reads black boxes through `crashguard-blackbox`, which exists for Unix only: say
// so once and plainly here too rather than leave a non-Unix build to fail inside that crate.
#[cfg(not(unix))]
compile_error!(
    "crashguard-cli supports Unix targets only: Linux (x86_64, aarch64) fully, other Unixes with reduced features"
);

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
pub mod backtrace;
#[cfg(unix)]
pub mod commands;
#[cfg(unix)]
pub mod debuginfo;
#[cfg(unix)]
pub mod error;
#[cfg(unix)]
pub mod exit_codes;
#[cfg(unix)]
pub mod input;
#[cfg(unix)]
pub mod list;
#[cfg(unix)]
pub mod render;
#[cfg(unix)]
pub mod symbolize;
#[cfg(unix)]
pub mod units;

#[cfg(unix)]
pub use error::{CliExit, Error};
