//! Hostile input (attack 6 of `docs/security.md`): the CLI never blocks on a file that is not a
//! regular file (a FIFO given on the command line, or named in a report as a module), escapes
//! control characters from reports before they reach the terminal, and bounds what `list`
//! keeps from a directory of many files.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{make_box, store_report, temp_dir};

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
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
}

unsafe extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
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
