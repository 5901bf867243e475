//! Attack 4: evidence destroyed on a full disk. When the report cannot be stored, the box is
//! kept (and the failure reported); once there is space again, the next run reports the crash.
//!
//! Two variants. The failing writer always runs: the restart gets `RLIMIT_FSIZE` so small that
//! writing the report fails (`EFBIG`), a real failed write. The full disk runs where the kernel
//! lets the test make a private mount namespace with a 4 MiB tmpfs; where it refuses, the test
//! says why on stderr.

use std::os::unix::process::CommandExt;

use crashguard_tests::{Child, TempDir, child_command, run_child};

const SEC: &str = env!("CARGO_BIN_EXE_crashguard-sec-child");

#[test]
fn a_report_that_cannot_be_written_keeps_its_box() {
    let dir = TempDir::new("failing-writer");
    run_child(SEC, dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    let slot0 = dir.join("blackbox/sec.0.box");
    let evidence = std::fs::read(&slot0).unwrap();

    let mut cmd = child_command(SEC, dir.path(), "none", &[]);
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // A write past 1 KiB fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let starved = Child::start(cmd).finish();
    // No new slot can be sized under the limit either, so install fails; the error says that
    // the record could not be stored and was kept.
    starved.assert_exit_code(66);
    let e = starved
        .line("INSTALL_ERROR ")
        .unwrap_or_else(|| panic!("{starved}"))
        .to_owned();
    assert!(
        e.contains("previous run's report could not be stored"),
        "{e}"
    );
    assert!(e.contains("File too large"), "{e}");
    assert!(e.contains("kept for a later run"), "{e}");
    assert_eq!(
        std::fs::read(&slot0).unwrap(),
        evidence,
        "the box was reset"
    );
    // The CLI shows the crash that is waiting in its slot.
    let listed = crashguard_cli::commands::list(dir.path(), false, false)
        .expect("list")
        .stdout;
    assert!(listed.contains("fatal_signal*"), "{listed}");
    assert!(listed.contains("report not stored yet"), "{listed}");

    let next = run_child(SEC, dir.path(), "none", &[]);
    next.assert_exit_code(0);
    let r = next.previous().expect("the crash survives");
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{next}");
    assert!(next.installed().stored_at.is_some(), "{next}");
}

#[test]
fn a_full_disk_keeps_the_box_until_there_is_space() {
    let dir = TempDir::new("full-disk");
    let f = run_child(SEC, dir.path(), "full-disk", &[SEC]);
    if let Some(reason) = f.line("SKIP ") {
        // Only the kernel's refusal of the namespace skips; anything else fails below.
        eprintln!("full-disk variant skipped: the kernel refused a private tmpfs: {reason}");
        assert_eq!(f.code(), Some(77), "{f}");
        return;
    }
    f.assert_exit_code(0);
    let run = |n: u32| -> Vec<String> {
        let line = f
            .lines_starting(&format!("RUN {n} "))
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no RUN {n}\n{f}"))
            .to_owned();
        let json = &line[line.find('[').unwrap_or_else(|| panic!("{line}"))..];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let first = run(1);
    assert!(first.iter().any(|l| l.starts_with("INSTALLED")), "{f}");
    // On the full disk: the crash is read, storing it fails with ENOSPC, and the run either
    // takes no slot (install fails: no space for a new box) or another one.
    let second = run(2).join("\n");
    assert!(
        second.contains("\"outcome\":\"fatal_signal\"") || second.contains("INSTALL_ERROR"),
        "{f}"
    );
    assert!(second.contains("No space left on device"), "{f}");
    // With space again, the crash is still there and gets stored.
    let third = run(3);
    let previous = third
        .iter()
        .find_map(|l| l.strip_prefix("PREVIOUS "))
        .unwrap_or_else(|| panic!("{f}"));
    let r: crashguard::Report =
        serde_json::from_str(previous).unwrap_or_else(|e| panic!("{e}\n{f}"));
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{f}");
    let installed = third
        .iter()
        .find_map(|l| l.strip_prefix("INSTALLED "))
        .unwrap_or_else(|| panic!("{f}"));
    let installed = crashguard_tests::Installed::parse(installed);
    assert!(installed.stored_at.is_some(), "{f}");
}
