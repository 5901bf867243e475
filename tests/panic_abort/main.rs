//! A service built with `panic = "abort"` for real: compiled by `tests/tests/panic_abort.rs`
//! with `rustc -C panic=abort` against the workspace's own `crashguard` (not a cargo target of
//! its own, so that the workspace's profiles, which unwind, do not apply to it).
//!
//! `panic-abort-child DIR`: installs crashguard for the app `sigtest` in `DIR` with
//! `PanicPolicy::Unwind` (the panic hook records the panic and returns, so std's abort follows),
//! then panics inside `catch_unwind`. Under `panic = "abort"` nothing can catch it: the process
//! dies of SIGABRT. Should it ever unwind instead, it says `CAUGHT` and exits 3.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: panic-abort-child REPORT_DIR");
        return ExitCode::from(64);
    };
    let guard = match crashguard::Config::new("sigtest")
        .report_dir(&dir)
        .panic_policy(crashguard::PanicPolicy::Unwind)
        .install()
    {
        Ok(guard) => guard,
        Err(e) => {
            println!("INSTALL_ERROR {e}");
            return ExitCode::from(66);
        }
    };
    crashguard::breadcrumb("about to panic under panic=abort");
    println!("ARMED");
    let caught = std::panic::catch_unwind(|| {
        panic!("boom under panic=abort");
    });
    println!("CAUGHT {}", caught.is_err());
    drop(guard);
    ExitCode::from(3)
}
