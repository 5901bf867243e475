//! `panic = "abort"` built for real, not played by a hook: `tests/panic_abort/main.rs` is
//! compiled here with `rustc -C panic=abort`, linked against the `crashguard` this test was
//! built with (crates compiled to unwind may be linked into an aborting binary; the reverse is
//! what rustc forbids), into the test's own temporary directory. It panics under
//! `PanicPolicy::Unwind` inside `catch_unwind`, which cannot catch anything in such a binary:
//! the process dies of SIGABRT, and the restart (`crashguard-signals-child DIR none`, the whole of
//! crashguard for the same app) must report the SIGABRT with the panic's message and location.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashguard::Outcome;
use crashguard_tests::{Child, TempDir, run_child};

const RESTART: &str = env!("CARGO_BIN_EXE_crashguard-signals-child");
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/panic_abort/main.rs");

/// The newest `libcrashguard-*.rlib` next to this test's executable (cargo's `deps` directory,
/// which also holds every crate it depends on).
fn crashguard_rlib(deps: &Path) -> PathBuf {
    std::fs::read_dir(deps)
        .expect("deps directory")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcrashguard-") && name.ends_with(".rlib")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no libcrashguard-*.rlib in {}", deps.display()))
}

/// Compiles the child with `-C panic=abort` into `out`.
fn build_child(out: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps directory");
    let rlib = crashguard_rlib(deps);
    let child = out.join("panic-abort-child");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--edition", "2024", "--crate-type", "bin"])
        .args(["--crate-name", "panic_abort_child"])
        .args(["-C", "panic=abort"])
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("--extern")
        .arg(format!("crashguard={}", rlib.display()))
        .arg("-o")
        .arg(&child)
        .arg(SOURCE)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc}: {e}"));
    assert!(
        output.status.success(),
        "{rustc} -C panic=abort failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    child
}

#[test]
fn a_panic_in_a_panic_abort_build_is_reported_with_its_message_and_sigabrt() {
    let dir = TempDir::new("panic-abort");
    let bin = TempDir::new("panic-abort-bin");
    let exe = build_child(bin.path());

    let mut command = Command::new(&exe);
    command.arg(dir.path());
    let mut child = Child::start(command);
    let pid = child.pid();
    child.expect_line("ARMED");
    let crashed = child.finish();
    // catch_unwind could not catch it: the binary really aborts on panic.
    assert!(crashed.line("CAUGHT").is_none(), "{crashed}");
    crashed.assert_killed_by(libc::SIGABRT);
    assert!(
        crashed.stderr.contains("boom under panic=abort"),
        "{crashed}"
    );

    let restarted = run_child(RESTART, dir.path(), "none", &[]);
    restarted.assert_exit_code(0);
    let r = restarted
        .previous()
        .unwrap_or_else(|| panic!("no report\n{crashed}\n{restarted}"));
    let ctx = || format!("{}\n{crashed}", r.to_json_pretty());
    assert_eq!(r.pid, pid, "{}", ctx());
    assert_eq!(r.outcome, Outcome::FatalSignal, "{}", ctx());
    assert_eq!(r.exit_code, Some(128 + libc::SIGABRT as u32), "{}", ctx());
    assert_eq!(
        r.signal.as_ref().map(|s| s.name.as_str()),
        Some("SIGABRT"),
        "{}",
        ctx()
    );
    let panic = r
        .panic
        .as_ref()
        .unwrap_or_else(|| panic!("no panic in the report\n{}", ctx()));
    assert_eq!(panic.message, "boom under panic=abort", "{}", ctx());
    assert!(panic.location.contains("panic_abort/main.rs"), "{}", ctx());
    assert!(
        r.breadcrumbs
            .iter()
            .any(|b| b.message == "about to panic under panic=abort"),
        "{}",
        ctx()
    );
}
