//! Hostile input (attack 6 of `docs/security.md`): the CLI never blocks on a file it opens (a
//! FIFO given on the command line, named in a report as a module, or found where a debug file
//! is looked for; a debug file another process holds a lease on), escapes control characters
//! from reports before they reach the terminal, and bounds what `list` keeps from a directory
//! of many files.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{make_box, store_report, temp_dir};
use crashguard_cli::symbolize::build_id_of;

/// Runs the CLI, failing the test if it has not finished within 20 s (a hang is the bug).
fn crashguard_bounded(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_crashguard"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crashguard");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Output is collected on another thread, so a large output never fills the pipe.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("crashguard {args:?} hung");
        }
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo takes a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
}

/// A function of this test binary, recorded as the crashing frame of the debug-file tests.
#[inline(never)]
fn hostile_input_marker() -> u64 {
    std::hint::black_box(0xdeb6)
}

/// A raw black box whose crashing frame is [`hostile_input_marker`], written to
/// `<dir>/crash.box`, and the path under `debug_dir` where the CLI looks for this binary's
/// debug file by build id (`.build-id/ab/cdef….debug`, its directory made).
fn crash_in_this_binary(dir: &Path, debug_dir: &Path) -> (PathBuf, PathBuf) {
    let ip = hostile_input_marker as *const () as usize as u64;
    let bytes = make_box(dir, "svc", |bb| common::end_with_segv(bb, &[ip]));
    let file = dir.join("crash.box");
    std::fs::write(&file, &bytes).expect("write the box");
    let exe = std::env::current_exe().expect("this test binary");
    let id = build_id_of(&exe)
        .expect("parse this test binary")
        .expect("this test binary has a build id");
    let candidate = debug_dir
        .join(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]));
    std::fs::create_dir_all(candidate.parent().expect("a parent")).expect("mkdir");
    (file, candidate)
}

/// Runs `show --debug-dir <debug_dir> <file>` and asserts that it finished (bounded) and still
/// named the crashing frame, from the binary itself.
fn assert_show_names_the_frame(file: &Path, debug_dir: &Path) {
    let out = crashguard_bounded(&[
        "show",
        "--debug-dir",
        debug_dir.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    assert!(
        text.contains("hostile_input_marker") && text.contains("hostile_input.rs"),
        "the crashing frame is not named:\n{text}\n{err}"
    );
}

#[test]
fn show_and_inspect_refuse_a_fifo_without_blocking() {
    let dir = temp_dir("hostile-fifo");
    let fifo = dir.join("pipe.box");
    mkfifo(&fifo);
    for cmd in ["show", "inspect"] {
        let out = crashguard_bounded(&[cmd, fifo.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_ne!(out.status.code(), Some(0), "{cmd}: {err}");
        assert!(err.contains("not a regular file"), "{cmd}: {err}");
    }
}

#[test]
fn a_report_naming_a_fifo_as_its_module_does_not_hang_show() {
    let dir = temp_dir("hostile-module");
    let bytes = make_box(&dir, "svc", |bb| {
        common::end_with_segv(bb, &[0x1000, 0x2000])
    });
    let (_, mut report) = store_report(&dir, &bytes);
    let fifo = dir.join("exe-fifo");
    mkfifo(&fifo);
    let fifo_s = fifo.to_string_lossy().into_owned();
    report.executable = Some(fifo_s.clone());
    for m in &mut report.modules {
        m.path = fifo_s.clone();
    }
    for f in &mut report.backtrace {
        f.module = Some(fifo_s.clone());
        f.offset = Some("0x10".to_owned());
    }
    assert!(!report.backtrace.is_empty());
    let json = dir.join("hostile.json");
    std::fs::write(&json, report.to_json_pretty()).unwrap();
    let out = crashguard_bounded(&["show", json.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_fifo_where_a_debug_file_is_looked_for_does_not_hang_show() {
    let dir = temp_dir("hostile-debug-fifo");
    let debug_dir = dir.join("debug");
    let (file, candidate) = crash_in_this_binary(&dir, &debug_dir);
    mkfifo(&candidate);
    assert_show_names_the_frame(&file, &debug_dir);
}

/// A regular file at the debug file's path, on which this process holds a write lease: another
/// process's blocking open of it waits until the lease is given up, or until the kernel breaks
/// it after `/proc/sys/fs/lease-break-time` (45 s by default); a non-blocking open fails at
/// once with `EWOULDBLOCK`. (An open of the lookup that was not non-blocking hangs here: the
/// file passes any check by path, such as `is_file`, made before it is opened.)
#[test]
fn a_leased_debug_file_does_not_hold_show_up() {
    let dir = temp_dir("hostile-debug-lease");
    let debug_dir = dir.join("debug");
    let (file, candidate) = crash_in_this_binary(&dir, &debug_dir);
    std::fs::write(&candidate, b"not a debug file").expect("write the candidate");
    let held = std::fs::File::open(&candidate).expect("open the candidate");
    // SAFETY: fcntl on a descriptor this test owns and keeps open until the end.
    let rc = unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    assert_eq!(rc, 0, "F_SETLEASE: {}", std::io::Error::last_os_error());
    // No owner: breaking the lease signals nobody (the default, SIGIO to this process, would
    // end the test binary).
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(held.as_raw_fd(), libc::F_SETOWN, 0) };
    assert_eq!(rc, 0, "F_SETOWN: {}", std::io::Error::last_os_error());
    assert_show_names_the_frame(&file, &debug_dir);
    drop(held);
}

#[test]
fn control_characters_from_a_report_are_escaped() {
    let dir = temp_dir("hostile-text");
    let hostile = "\x1b[2J\x1b[31mFAKE\nlevel=error msg=\"forged\"\r\u{9b}2J";
    let bytes = make_box(&dir, "svc", |bb| bb.breadcrumb(hostile));
    let (path, report) = store_report(&dir, &bytes);
    // The one-line Display the README suggests logging stays one line, without escapes.
    let line = report.to_string();
    assert!(
        !line.contains('\n') && !line.contains('\x1b') && !line.contains('\u{9b}'),
        "{line:?}"
    );
    assert!(line.contains("\\x1b[2J") && line.contains("\\n"), "{line}");

    for args in [
        vec!["show", path.to_str().unwrap()],
        vec!["list", dir.to_str().unwrap()],
        vec!["show", "--json", path.to_str().unwrap()],
    ] {
        let out = crashguard_bounded(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert!(
            !text.contains('\x1b'),
            "{args:?} printed a raw escape: {text}"
        );
        assert!(
            !text.contains('\u{9b}'),
            "{args:?} printed a raw CSI: {text}"
        );
        assert!(!text.contains('\r'), "{args:?} printed a raw CR: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("level=error")),
            "{args:?} let a forged line through: {text}"
        );
        if args.contains(&"--json") {
            let back: crashguard_blackbox::Report =
                serde_json::from_str(&text).expect("valid JSON");
            assert!(back.breadcrumbs.iter().any(|b| b.message == hostile));
        } else if args[0] == "show" {
            assert!(text.contains("\\x1b[2J"), "{text}");
        }
    }
}

#[test]
fn list_keeps_the_newest_entries_of_a_large_directory() {
    let dir = temp_dir("hostile-many");
    let bytes = make_box(&dir, "svc", |_| {});
    let mut report = crashguard_blackbox::decode(&bytes).unwrap();
    let opened = crashguard_blackbox::ReportDir::open(&dir).unwrap();
    let keep_all = crashguard_blackbox::Retention {
        max_reports: 10_000,
        max_bytes: u64::MAX,
    };
    for pid in 0..260 {
        report.pid = pid;
        opened.write_report("svc", &report, keep_all).unwrap();
    }
    let out = crashguard_bounded(&["list", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(60 older reports not shown; the newest 200 are listed)"),
        "{text}"
    );
    let json = crashguard_bounded(&["list", "--json", dir.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let stored = v["reports"]
        .as_array()
        .map(|rs| rs.iter().filter(|r| r["uncollected"] != true).count());
    assert_eq!(stored, Some(200), "{v}");
    assert_eq!(v["total_reports"], 260);
}
