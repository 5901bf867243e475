//! Pre-existing files are not trusted (attacks 3 and 6 of `docs/security.md`): whatever sits
//! under the name of a slot, a temporary file or the termination log — a FIFO, a hard link to a
//! file elsewhere, a file with a wide mode or of another user — is replaced or refused, never
//! read, written through or waited on. Each test runs a real child process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use crashguard_tests::{Child, Finished, TempDir, child_command, run_child};

const SEC: &str = env!("CARGO_BIN_EXE_crashguard-sec-child");

fn sec(dir: &Path, scenario: &str, args: &[&str]) -> Finished {
    run_child(SEC, dir, scenario, args)
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo takes a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Attack 3: a FIFO at the slot's path hung `install()` forever (the harness's watchdog would
/// fail this test after a minute). It is replaced by a fresh slot.
#[test]
fn a_fifo_at_the_slot_path_is_replaced_without_blocking() {
    let dir = TempDir::new("slot-fifo");
    std::fs::create_dir_all(dir.join("blackbox")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.join("blackbox"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let slot = dir.join("blackbox/sec.0.box");
    mkfifo(&slot);
    let f = sec(dir.path(), "none", &[]);
    f.assert_exit_code(0);
    assert!(f.installed().blackbox.ends_with("sec.0.box"), "{f}");
    assert!(std::fs::metadata(&slot).unwrap().is_file());
    assert_eq!(mode(&slot), 0o600);
}

/// Attack 3: a hard link at the slot's path to a file elsewhere was read, copied into the report
/// directory and overwritten. The link is dropped; the file it pointed to is untouched.
#[test]
fn a_hard_link_at_the_slot_path_is_neither_read_nor_written() {
    let dir = TempDir::new("slot-link");
    sec(dir.path(), "none", &[]).assert_exit_code(0);
    let slot = dir.join("blackbox/sec.0.box");
    std::fs::remove_file(&slot).unwrap();
    let secret = dir.join("secret");
    let content = b"root:$6$not-for-the-report:19000:0:99999:7:::\n".repeat(4);
    std::fs::write(&secret, &content).unwrap();
    std::fs::hard_link(&secret, &slot).unwrap();
    let f = sec(dir.path(), "none", &[]);
    f.assert_exit_code(0);
    assert_eq!(f.installed().previous_error, None, "the link was read: {f}");
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        content,
        "the linked file was written"
    );
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
    assert_eq!(std::fs::metadata(&slot).unwrap().nlink(), 1);
    let copies = std::fs::read_dir(dir.join("reports"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(copies, 0, "the linked file was copied into reports/");
}

/// Attack 3: a 0644 box stayed 0644 (anyone could read the breadcrumbs); a box of another uid
/// was trusted. The first is tightened and read, the second replaced unread.
#[test]
fn slot_modes_are_enforced_and_foreign_slots_replaced() {
    let dir = TempDir::new("slot-mode");
    sec(dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    let slot = dir.join("blackbox/sec.0.box");
    std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = sec(dir.path(), "none", &[]);
    f.assert_exit_code(0);
    assert_eq!(mode(&slot), 0o600, "the box stayed readable by others");
    let r = f.previous().expect("our own box is still read");
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal);

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot give the slot to another uid; that half is skipped");
        return;
    }
    sec(dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    std::os::unix::fs::chown(&slot, Some(65534), Some(65534)).unwrap();
    let f = sec(dir.path(), "none", &[]);
    f.assert_exit_code(0);
    assert_eq!(f.previous(), None, "a box of another uid was read: {f}");
    assert_eq!(std::fs::metadata(&slot).unwrap().uid(), 0);
    assert_eq!(mode(&slot), 0o600);
}

/// Attack 3: a pre-created 0666 temporary file (or one hard-linked elsewhere) left the stored
/// report readable by another user. Temporary files are made fresh with `O_EXCL`, reports are
/// 0600 whatever the umask, and stale temporaries are pruned.
#[test]
fn reports_are_private_whatever_was_there_and_whatever_the_umask() {
    let dir = TempDir::new("temp-files");
    sec(dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::set_permissions(&reports, std::fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::write(&elsewhere, "x").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o666)).unwrap();
    let planted = reports.join(".sec-20260101T000000Z-1.json.1-1.tmp");
    std::fs::write(&planted, "planted").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let linked = reports.join(".sec-20260101T000000Z-2.json.1-2.tmp");
    std::fs::hard_link(&elsewhere, &linked).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for p in [&planted, &linked] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    let mut cmd = child_command(SEC, dir.path(), "none", &[]);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let f = Child::start(cmd).finish();
    f.assert_exit_code(0);
    let stored = f.installed().stored_at.expect("stored");
    assert_eq!(mode(&stored), 0o600, "report mode under umask 0");
    assert!(!planted.exists(), "a stale temporary file was kept");
    assert!(!linked.exists(), "a stale temporary link was kept");
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"x");
    for e in std::fs::read_dir(&reports).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

/// Installs with `log` as the termination log and asserts that install refused it (exit 66)
/// with an error containing `why`.
fn assert_termination_log_refused(dir: &Path, log: &Path, why: &str) {
    let f = sec(
        &dir.join("reports-root"),
        "none",
        &["--termlog", log.to_str().unwrap()],
    );
    f.assert_exit_code(66);
    let e = f.line("INSTALL_ERROR ").unwrap_or_default();
    assert!(e.contains(why), "{f}");
}

/// Attack 6: a FIFO as termination log hung `install()`. It is refused at once with an error
/// naming the problem.
#[test]
fn a_fifo_as_termination_log_is_refused_without_blocking() {
    let dir = TempDir::new("termlog-fifo");
    let log = dir.join("termination-log");
    mkfifo(&log);
    assert_termination_log_refused(&dir, &log, "named pipe");
}

/// Attack 6: a hard link as termination log would write the crash summary into another file.
#[test]
fn a_hard_linked_termination_log_is_refused() {
    let dir = TempDir::new("termlog-link");
    let target = dir.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let log = dir.join("termination-log");
    std::fs::hard_link(&target, &log).unwrap();
    assert_termination_log_refused(&dir, &log, "2 hard links");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me\n");
}

/// Attack 7: the termination log kept the stale tail of a longer old message. It is emptied at
/// install, so after a crash it holds exactly the crash's line.
#[test]
fn the_termination_log_holds_only_this_runs_message() {
    let dir = TempDir::new("termlog-stale");
    let log = dir.join("termination-log");
    std::fs::write(&log, format!("an old message {}\n", "x".repeat(3000))).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = sec(
        &dir.join("reports-root"),
        "segv",
        &["--termlog", log.to_str().unwrap()],
    );
    f.assert_killed_by(libc::SIGSEGV);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.contains("SIGSEGV"), "{text:?}");
    assert!(!text.contains("old message"), "{text:?}");
    assert_eq!(mode(&log), 0o600);
}
