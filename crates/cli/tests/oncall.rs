//! The CLI at the on-call moment: signal names for `explain`, each error cause once.

mod common;

use common::*;

#[test]
fn explain_accepts_signal_names() {
    let by_number = crashguard(&["explain", "137"]);
    assert_status(&by_number, 0);
    for name in ["SIGKILL", "sigkill", "KILL"] {
        let o = crashguard(&["explain", name]);
        assert_status(&o, 0);
        assert_eq!(stdout(&o), stdout(&by_number), "explain {name}");
    }
    let o = crashguard(&["explain", "--json", "SIGSEGV"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["status"], 139);
    let o = crashguard(&["explain", "SIGNOPE"]);
    assert_status(&o, 64);
    assert!(stderr(&o).contains("signal name"), "{}", stderr(&o));
}

#[test]
fn each_cause_is_printed_once() {
    let dir = temp_dir("oncall-cause");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, b"{ not json").expect("write");
    let o = crashguard(&["show", bad.to_str().expect("utf-8")]);
    assert_status(&o, 65);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("key must be a string").count(), 1, "{err}");

    let short = dir.join("short.box");
    let mut bytes = make_box(&dir, "svc", |_| {});
    bytes.truncate(100);
    std::fs::write(&short, &bytes).expect("write");
    let o = crashguard(&["show", short.to_str().expect("utf-8")]);
    assert_status(&o, 65);
    let err = stderr(&o);
    assert_eq!(err.matches("truncated").count(), 1, "{err}");
    assert_eq!(err.matches("short.box").count(), 1, "{err}");
}

#[test]
fn export_refuses_a_report_without_registers_with_a_data_error() {
    let dir = temp_dir("oncall-export");
    let bytes = make_box(&dir, "svc", |bb| bb.breadcrumb("then nothing"));
    let file = dir.join("killed.box");
    std::fs::write(&file, &bytes).expect("write");
    let out = dir.join("crash.dmp");
    let o = crashguard(&[
        "export",
        "--minidump",
        file.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_status(&o, 65);
    let err = stderr(&o);
    assert!(
        err.contains("cannot export") && err.contains("killed_without_warning"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    // The format must be named.
    let o = crashguard(&["export", file.to_str().expect("utf-8"), "-o", "x.dmp"]);
    assert_status(&o, 64);
}
