//! Everything around the crash itself: SIGKILL, a corrupted black box, two processes sharing a
//! report directory, and installations that must fail with a clear error.

use std::path::Path;

use crashguard::Outcome;
use crashguard_tests::{Child, TempDir, child_command, run_child};

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

/// Starts a `wait` child and returns it once it is installed and blocking on stdin.
fn start_waiting(dir: &Path) -> (Child, crashguard_tests::Installed) {
    let mut child = Child::start(child_command(CHILD, dir, "wait", &[]));
    let installed = crashguard_tests::Installed::parse(&child.expect_line("INSTALLED "));
    child.expect_line("READY");
    (child, installed)
}

#[test]
fn sigkill_is_reported_as_killed_without_warning() {
    let dir = TempDir::new("sigkill");
    let (child, _) = start_waiting(dir.path());
    let pid = child.pid();
    child.signal(libc::SIGKILL);
    let killed = child.finish();
    killed.assert_killed_by(libc::SIGKILL);
    assert!(
        killed.stderr.is_empty(),
        "nothing can run on SIGKILL\n{killed}"
    );

    let restarted = run_child(CHILD, dir.path(), "none", &[]);
    restarted.assert_exit_code(0);
    let report = restarted.previous().expect("a report of the killed run");
    assert_eq!(
        report.outcome,
        Outcome::KilledWithoutWarning,
        "{}",
        report.to_json_pretty()
    );
    assert_eq!(report.pid, pid);
    assert_eq!(report.signal, None, "a SIGKILL leaves no signal record");
    assert_eq!(report.ended_at, None, "nobody recorded the end");
    let verdict = report.verdict.as_deref().unwrap_or_default();
    assert!(
        !verdict.is_empty(),
        "a verdict says what probably happened\n{}",
        report.to_json_pretty()
    );
    assert_eq!(
        report.breadcrumbs.last().map(|b| b.message.as_str()),
        Some("waiting for a scenario on stdin")
    );
    let line = report.to_string();
    assert!(line.contains("was killed without warning"), "{line}");
    assert!(line.contains(verdict), "{line}");
    let stored = restarted
        .installed()
        .stored_at
        .expect("an abnormal end is stored");
    assert!(
        stored.starts_with(dir.path().join("reports")),
        "{}",
        stored.display()
    );
}

#[test]
fn a_report_that_cannot_be_stored_is_still_handed_over_with_the_reason() {
    let dir = TempDir::new("unstorable");
    run_child(CHILD, dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    // Something else took the place of the reports directory.
    std::fs::write(dir.path().join("reports"), b"not a directory").expect("write");

    let second = run_child(CHILD, dir.path(), "none", &[]);
    second.assert_exit_code(0);
    let report = second.previous().expect("the crash is still reported");
    assert_eq!(report.outcome, Outcome::FatalSignal, "{second}");
    let installed = second.installed();
    assert_eq!(installed.stored_at, None, "{second}");
    let why = installed
        .store_error
        .expect("previous().store_error() is Some");
    assert!(
        why.contains("not a directory") && why.contains("reports"),
        "unclear reason: {why}"
    );
}

/// Flips bytes of the black box left by a crash, then checks that the next run starts fresh,
/// explains what was wrong, and keeps the corrupt bytes.
fn assert_corruption_handled(label: &str, corrupt: impl FnOnce(&mut Vec<u8>), expected: &str) {
    let dir = TempDir::new(label);
    run_child(CHILD, dir.path(), "segv", &[]).assert_killed_by(libc::SIGSEGV);
    let box_path = dir.path().join("blackbox").join("child.0.box");
    let mut bytes = std::fs::read(&box_path).expect("read the black box");
    corrupt(&mut bytes);
    std::fs::write(&box_path, &bytes).expect("write the corrupt black box");

    let second = run_child(CHILD, dir.path(), "none", &[]);
    second.assert_exit_code(0);
    assert_eq!(
        second.previous(),
        None,
        "no report from a corrupt box\n{second}"
    );
    let installed = second.installed();
    let error = installed
        .previous_error
        .expect("previous().read_error() is Some");
    assert!(
        error.starts_with("previous run's black box is unreadable: ") && error.contains(expected),
        "unclear error: {error}"
    );
    let kept = installed
        .previous_saved_to
        .expect("the corrupt bytes were kept");
    assert_eq!(kept.parent(), Some(dir.path().join("reports").as_path()));
    let name = kept
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // Named after the configured app, so that retention counts it with the app's reports.
    assert!(
        name.starts_with("child-corrupt-") && name.ends_with(".box"),
        "{name}"
    );
    assert!(
        error.contains(&kept.display().to_string()),
        "the error says where: {error}"
    );
    assert_eq!(std::fs::read(&kept).expect("read the kept bytes"), bytes);
    // The second run used the same slot with a fresh black box ...
    assert_eq!(installed.blackbox, box_path);

    // ... so the third run reads its clean exit and no error.
    let third = run_child(CHILD, dir.path(), "none", &[]);
    third.assert_exit_code(0);
    let report = third.previous().expect("the second run's record");
    assert_eq!(
        report.outcome,
        Outcome::CleanExit,
        "{}",
        report.to_json_pretty()
    );
    assert_eq!(third.installed().previous_error, None);
}

#[test]
fn corrupt_session_section_gives_a_clear_error_and_a_fresh_start() {
    use crashguard_blackbox::layout::{Record, Session};
    let at = std::mem::offset_of!(Record, session) + std::mem::offset_of!(Session, exe);
    assert_corruption_handled(
        "corrupt-session",
        |bytes| bytes[at..at + 8].iter_mut().for_each(|b| *b ^= 0xff),
        "black-box session section is corrupt (checksum mismatch)",
    );
}

#[test]
fn corrupt_end_section_gives_a_clear_error_and_a_fresh_start() {
    use crashguard_blackbox::layout::{End, Record};
    // The recorded signal number of the crash.
    let at = std::mem::offset_of!(Record, end) + std::mem::offset_of!(End, signal);
    assert_corruption_handled(
        "corrupt-end",
        |bytes| bytes[at] ^= 0x40,
        "black-box end section is corrupt (checksum mismatch)",
    );
}

#[test]
fn truncated_black_box_gives_a_clear_error_and_a_fresh_start() {
    assert_corruption_handled(
        "truncated",
        |bytes| bytes.truncate(100),
        "black box truncated: 100 bytes",
    );
}

#[test]
fn overwritten_magic_gives_a_clear_error_and_a_fresh_start() {
    assert_corruption_handled(
        "bad-magic",
        |bytes| bytes[..8].copy_from_slice(b"NOTABOX\0"),
        "not a crashguard black box (bad magic)",
    );
}

#[test]
fn two_live_processes_get_different_slots_and_both_crashes_are_read_back() {
    let dir = TempDir::new("two");
    let (mut a, a_installed) = start_waiting(dir.path());
    let (mut b, b_installed) = start_waiting(dir.path());
    let boxes = dir.path().join("blackbox");
    assert_eq!(a_installed.blackbox, boxes.join("child.0.box"));
    assert_eq!(b_installed.blackbox, boxes.join("child.1.box"));
    let (a_pid, b_pid) = (a.pid(), b.pid());

    a.send_line("segv");
    b.send_line("abort");
    a.finish().assert_killed_by(libc::SIGSEGV);
    b.finish().assert_killed_by(libc::SIGABRT);

    // Two live processes again. The first to install collects every slot no live process
    // holds: it takes slot 0, stores both crashes, and reports the more recent one; slot 1 is
    // cleared, so the second finds nothing left to report.
    let (mut c, c_installed) = start_waiting(dir.path());
    let (mut d, d_installed) = start_waiting(dir.path());
    assert_eq!(c_installed.blackbox, boxes.join("child.0.box"));
    assert_eq!(d_installed.blackbox, boxes.join("child.1.box"));
    c.send_line("none");
    d.send_line("none");
    let (c, d) = (c.finish(), d.finish());
    c.assert_exit_code(0);
    d.assert_exit_code(0);
    let newest = c.previous().expect("a report of the collected slots");
    assert!([a_pid, b_pid].contains(&newest.pid), "{c}");
    assert_eq!(d.previous(), None, "a slot was reported twice\n{d}");
    let stored_reports: Vec<crashguard::Report> = std::fs::read_dir(dir.path().join("reports"))
        .expect("list reports")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("parse"))
        .collect();
    let by_pid = |pid: u32| {
        stored_reports
            .iter()
            .find(|r| r.pid == pid)
            .cloned()
            .unwrap_or_else(|| panic!("no stored report of pid {pid}"))
    };
    let (from_a, from_b) = (by_pid(a_pid), by_pid(b_pid));
    let name = |r: &crashguard::Report| r.signal.as_ref().map(|s| s.name.clone());
    assert_eq!(name(&from_a).as_deref(), Some("SIGSEGV"));
    assert_eq!(name(&from_b).as_deref(), Some("SIGABRT"));
    assert!(
        from_a
            .breadcrumbs
            .iter()
            .any(|x| x.message == "about to run scenario segv")
    );
    assert!(
        from_b
            .breadcrumbs
            .iter()
            .any(|x| x.message == "about to run scenario abort")
    );

    // Both reports were stored side by side.
    let mut stored: Vec<_> = std::fs::read_dir(dir.path().join("reports"))
        .expect("list reports")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    stored.sort();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mut pids: Vec<u32> = stored
        .iter()
        .map(|p| {
            serde_json::from_slice::<crashguard::Report>(&std::fs::read(p).expect("read report"))
                .expect("parse report")
                .pid
        })
        .collect();
    pids.sort();
    let mut expected = vec![a_pid, b_pid];
    expected.sort();
    assert_eq!(pids, expected);
}

/// Runs the child on `dir` and returns its `INSTALL_ERROR` message; asserts exit status 66.
fn install_error(dir: &Path) -> String {
    let run = run_child(CHILD, dir, "none", &[]);
    run.assert_exit_code(66);
    run.line("INSTALL_ERROR ")
        .unwrap_or_else(|| panic!("no INSTALL_ERROR\n{run}"))
        .to_owned()
}

#[test]
fn report_dir_that_is_a_symlink_is_refused() {
    let dir = TempDir::new("symlink");
    let real = dir.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let error = install_error(&link);
    assert!(error.contains("symbolic link"), "{error}");
    assert!(error.contains(&link.display().to_string()), "{error}");
    assert_eq!(
        std::fs::read_dir(&real).expect("list").count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn black_box_file_that_is_a_symlink_is_replaced_never_followed() {
    let dir = TempDir::new("symlink-box");
    let boxes = dir.path().join("blackbox");
    std::fs::create_dir(&boxes).expect("mkdir");
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, b"precious").expect("write");
    let slot = boxes.join("child.0.box");
    std::os::unix::fs::symlink(&target, &slot).expect("symlink");
    let run = run_child(CHILD, dir.path(), "none", &[]);
    run.assert_exit_code(0);
    assert_eq!(run.installed().blackbox, slot);
    assert!(
        std::fs::symlink_metadata(&slot)
            .expect("stat")
            .file_type()
            .is_file(),
        "the link was replaced by a private regular file"
    );
    assert_eq!(
        std::fs::read(&target).expect("read"),
        b"precious",
        "the target is untouched"
    );
}

#[test]
fn report_dir_under_a_regular_file_is_refused() {
    // The tests may run as root, which chmod cannot stop; a path under a regular file cannot be
    // created by anyone.
    let dir = TempDir::new("notdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").expect("write");
    let target = file.join("reports");
    let error = install_error(&target);
    assert!(error.contains(&target.display().to_string()), "{error}");
    assert!(error.contains("Not a directory"), "{error}");
    // And a report dir that is itself a regular file.
    let error = install_error(&file);
    assert!(error.contains("is not a directory"), "{error}");
}

#[test]
fn report_dir_in_proc_is_refused() {
    let error = install_error(Path::new("/proc/crashguard-e2e/reports"));
    assert!(error.contains("/proc/crashguard-e2e/reports"), "{error}");
}

#[test]
fn installing_twice_is_an_error() {
    let dir = TempDir::new("twice");
    let run = run_child(CHILD, dir.path(), "install-twice", &[]);
    run.assert_exit_code(0);
    let result = run.line("RESULT ").expect("a RESULT line");
    assert!(
        result.starts_with("AlreadyInstalled: crashguard is already installed"),
        "{result}"
    );
}

#[test]
fn zero_grace_period_is_an_error() {
    let dir = TempDir::new("zero-grace");
    let run = run_child(CHILD, dir.path(), "zero-grace", &[]);
    run.assert_exit_code(0);
    let result = run.line("RESULT ").expect("a RESULT line");
    assert!(
        result.contains("invalid configuration: shutdown grace period must be greater than zero"),
        "{result}"
    );
    assert!(
        std::fs::read_dir(dir.path())
            .expect("list")
            .next()
            .is_none(),
        "a refused configuration writes nothing"
    );
}
