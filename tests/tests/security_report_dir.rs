//! The report directory as a trust boundary, attacked for real: each test reproduces one attack
//! of the threat model (`docs/security.md`) against a real child process that installs
//! crashguard, and asserts the new behaviour (and that the old symptom is absent).
//!
//! As root (here and in CI) the attacker is a second uid: a process that drops to uid 65534
//! before preparing its part of the directory. Without root, tests that need a second uid say
//! so and fall back to a file layout that shows the same check.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crashguard_tests::{Finished, TempDir, run_child};

const SEC: &str = env!("CARGO_BIN_EXE_crashguard-sec-child");
const NOBODY: u32 = 65534;

fn sec(dir: &Path, scenario: &str, args: &[&str]) -> Finished {
    run_child(SEC, dir, scenario, args)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a shell command as uid/gid 65534: the attacker.
fn as_attacker(script: &str) {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script);
    // SAFETY: setgroups/setgid/setuid are async-signal-safe and touch no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = c.output().expect("run the attacker");
    assert!(
        out.status.success(),
        "attacker script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn install_error(f: &Finished) -> String {
    f.line("INSTALL_ERROR ")
        .unwrap_or_else(|| panic!("install was expected to fail\n{f}"))
        .to_owned()
}

/// Attack 1: the app name read back from the box became the report's file name, so a box whose
/// app name is `/../../x` made a root `install()` create files anywhere.
#[test]
fn an_app_name_read_from_the_box_never_becomes_a_path() {
    let root = TempDir::new("traversal");
    let dir = root.join("reports-root");
    let victim = root.join("victim");
    std::fs::create_dir(&victim).expect("victim dir");
    // An absolute path with a `..` in it: joined onto the reports directory, an absolute name
    // replaces the whole path (what the old code did with the name it read back).
    let hostile = format!("/..{}/x", victim.display());
    assert!(
        hostile.len() <= crashguard_blackbox::layout::APP_LEN,
        "{hostile}"
    );
    let poisoned = sec(&dir, "poison-app", &[&hostile]);
    poisoned.assert_killed_by(libc::SIGKILL);

    let next = sec(&dir, "none", &[]);
    next.assert_exit_code(0);
    let report = next.previous().expect("the poisoned run is reported");
    // The hostile name is reported as data...
    assert_eq!(report.app, hostile);
    // ...but the file is named after the configured app, inside reports/.
    let stored = next.installed().stored_at.expect("stored");
    assert_eq!(stored.parent(), Some(dir.join("reports").as_path()));
    let name = stored.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("sec-") && name.ends_with(".json"),
        "{name}"
    );
    // The old symptom: a file `x-<stamp>-<pid>.json` in the victim directory.
    let escaped: Vec<_> = std::fs::read_dir(&victim).unwrap().collect();
    assert!(
        escaped.is_empty(),
        "files escaped into {}: {escaped:?}",
        victim.display()
    );
    // And the one-line summary does not carry the path's raw bytes into a log either way.
    assert!(report.to_string().contains("/../"), "{report}");
}

/// Attack 2: whoever owns the report directory owns the process's file operations. A directory
/// owned by another uid is refused with a message saying what to do; nothing is created in it
/// or chmodded.
#[test]
fn a_report_directory_owned_by_another_user_is_refused() {
    let root = TempDir::new("foreign-dir");
    let dir = root.join("theirs");
    if is_root() {
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod scratch");
        as_attacker(&format!("mkdir -m 0755 '{}'", dir.display()));
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), NOBODY);
    } else {
        eprintln!("not root: no second uid; using /, which root owns, as the foreign directory");
    }
    let target = if is_root() { dir.clone() } else { "/".into() };
    let before = mode(&target);
    let f = sec(&target, "none", &[]);
    f.assert_exit_code(66);
    let e = install_error(&f);
    assert!(e.contains("refusing report directory"), "{e}");
    assert!(e.contains("owned by uid"), "{e}");
    assert!(e.contains("directory of its own"), "{e}");
    assert_eq!(mode(&target), before, "the directory's mode was changed");
    if is_root() {
        assert!(
            std::fs::read_dir(&dir).unwrap().next().is_none(),
            "crashguard created files in a directory another user owns"
        );
    }
}

/// Attack 8: a shared directory (mode 1777) given as the report directory was chmodded to 0700.
/// It is refused and left as it was.
#[test]
fn a_shared_directory_is_refused_not_chmodded() {
    let root = TempDir::new("shared-dir");
    let dir = root.join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let f = sec(&dir, "none", &[]);
    f.assert_exit_code(66);
    let e = install_error(&f);
    assert!(e.contains("writable by other users (mode 1777)"), "{e}");
    assert!(e.contains("chmod go-w"), "{e}");
    assert_eq!(mode(&dir), 0o1777, "the shared directory was chmodded");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    // A private subdirectory, which crashguard creates itself, works.
    let private = dir.join("sec");
    sec(&private, "none", &[]).assert_exit_code(0);
    assert_eq!(mode(&private), 0o700);
}

/// Attack 2, the symlink swap: `reports/` replaced by a symbolic link to a victim directory full
/// of report-like files. Nothing is written, chmodded or pruned there; the crash stays in its
/// slot for the next run.
#[test]
fn a_reports_symlink_is_refused_and_the_victim_untouched() {
    let root = TempDir::new("reports-symlink");
    let dir = root.join("dir");
    let victim = root.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..120 {
        std::fs::write(
            victim.join(format!("sec-2026010{}T000000Z-{i}.json", i % 10)),
            "{}",
        )
        .unwrap();
    }
    sec(&dir, "segv", &[]).assert_killed_by(libc::SIGSEGV);
    std::fs::remove_dir_all(dir.join("reports")).ok();
    std::os::unix::fs::symlink(&victim, dir.join("reports")).unwrap();

    let next = sec(&dir, "none", &["--retention", "5"]);
    next.assert_exit_code(0);
    let store_error = next.installed().store_error.expect("storing must fail");
    assert!(store_error.contains("symbolic link"), "{store_error}");
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        120,
        "victim pruned"
    );
    assert_eq!(mode(&victim), 0o755, "victim chmodded");
    // The crash was not lost: once the link is gone, the next run stores it.
    std::fs::remove_file(dir.join("reports")).unwrap();
    let after = sec(&dir, "none", &[]);
    after.assert_exit_code(0);
    let r = after.previous().expect("the crash is still there");
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{after}");
    assert!(after.installed().stored_at.is_some(), "{after}");
}

/// Attack 2, the race itself: the directory is swapped for a symbolic link *after* crashguard
/// opened it (what `renameat2(RENAME_EXCHANGE)` in a loop achieves). Every operation goes
/// through the descriptor opened and checked at the start, so the swap changes nothing.
#[test]
fn a_directory_swapped_after_the_check_is_not_followed() {
    let root = TempDir::new("swap");
    let dir = root.join("dir");
    let victim = root.join("victim");
    std::fs::create_dir(&victim).unwrap();
    for i in 0..120 {
        std::fs::write(
            victim.join(format!("sec-2026010{}T000000Z-{i}.json", i % 10)),
            "{}",
        )
        .unwrap();
    }
    let opened = crashguard_blackbox::ReportDir::open(&dir).expect("open");
    // Make reports/ exist, then swap the whole directory for a link to the victim.
    let report = sample_report("sec");
    let retention = crashguard_blackbox::Retention {
        max_reports: 5,
        max_bytes: 1 << 20,
    };
    opened.write_report("sec", &report, retention).unwrap();
    let moved = root.join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("reports")).unwrap();
    for pid in 1..=10 {
        let mut r = report.clone();
        r.pid = pid;
        opened.write_report("sec", &r, retention).unwrap();
    }
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        120,
        "victim pruned"
    );
    // Everything went to the directory that was opened, and retention held there.
    assert_eq!(std::fs::read_dir(moved.join("reports")).unwrap().count(), 5);
}

/// A report like a killed run's, for the in-process tests: a real black box, decoded.
fn sample_report(app: &str) -> crashguard::Report {
    let scratch = TempDir::new("sample");
    let opened = crashguard_blackbox::open(scratch.path(), &crashguard_blackbox::Options::new(app))
        .expect("open a black box");
    let bytes = std::fs::read(opened.blackbox.path()).expect("read it");
    crashguard_blackbox::decode(&bytes).expect("decode it")
}

/// Attack 7: a crash recorded in slot 1 (while another instance held slot 0) was never reported
/// by later single-instance runs, which take slot 0.
#[test]
fn a_crash_in_another_slot_is_collected_at_install() {
    let dir = TempDir::new("stranded");
    let mut holder = crashguard_tests::Child::start(crashguard_tests::child_command(
        SEC,
        dir.path(),
        "hold",
        &[],
    ));
    holder.expect_line("READY");
    let crashed = sec(dir.path(), "segv", &[]);
    crashed.assert_killed_by(libc::SIGSEGV);
    assert!(
        crashed.installed().blackbox.ends_with("sec.1.box"),
        "{crashed}"
    );
    holder.send_line("done");
    holder.finish().assert_exit_code(0);

    let next = sec(dir.path(), "none", &[]);
    next.assert_exit_code(0);
    assert!(next.installed().blackbox.ends_with("sec.0.box"), "{next}");
    let r = next.previous().expect("the slot-1 crash is reported");
    assert_eq!(r.outcome, crashguard::Outcome::FatalSignal, "{next}");
    assert!(next.installed().stored_at.is_some(), "{next}");
    // It is reported once: the run after that finds nothing new.
    let again = sec(dir.path(), "none", &[]);
    let r = again.previous().expect("the clean exit");
    assert_eq!(r.outcome, crashguard::Outcome::CleanExit, "{again}");
}

/// Attack 5: corrupt copies were never pruned, and retention counted the whole directory, so
/// one app's crash loop deleted another app's reports.
#[test]
fn retention_is_per_app_and_covers_corrupt_copies() {
    let dir = TempDir::new("retention");
    // Another app's reports, which must survive.
    let reports = dir.join("reports");
    let opened = crashguard_blackbox::ReportDir::open(dir.path()).unwrap();
    let keep_all = crashguard_blackbox::Retention::default();
    for pid in 0..10 {
        let mut r = sample_report("other");
        r.pid = pid;
        opened.write_report("other", &r, keep_all).unwrap();
    }
    // A crash loop with an undecodable box: each run finds garbage in its slot.
    for _ in 0..8 {
        let first = sec(dir.path(), "none", &["--retention", "3"]);
        first.assert_exit_code(0);
        let slot = first.installed().blackbox;
        let mut bytes = std::fs::read(&slot).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&slot, &bytes).unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let corrupt = names.iter().filter(|n| n.contains("-corrupt-")).count();
    let other = names.iter().filter(|n| n.starts_with("other-")).count();
    assert_eq!(corrupt, 3, "corrupt copies beyond retention: {names:?}");
    assert_eq!(other, 10, "another app's reports were pruned: {names:?}");
    // In bulk, in process: 200 corrupt boxes leave max_reports files.
    let bulk = crashguard_blackbox::Retention {
        max_reports: 50,
        max_bytes: 64 << 20,
    };
    for _ in 0..200 {
        opened.keep_unreadable("bulk", &[0xee; 4096], bulk).unwrap();
    }
    let bulk_files = std::fs::read_dir(&reports)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("bulk-")
        })
        .count();
    assert_eq!(bulk_files, 50);
}
