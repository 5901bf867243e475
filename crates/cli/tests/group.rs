//! `crashguard list --group`: reports counted per crash signature.

mod common;

use common::*;
use crashguard_blackbox::{Retention, decode, write_report};

/// Stores the report of `bytes` under another pid, so several reports of one test process get
/// distinct file names.
fn store_as(dir: &std::path::Path, bytes: &[u8], pid: u32) -> String {
    let mut r = decode(bytes).expect("fixture decodes");
    r.pid = pid;
    write_report(dir, &r, Retention::default()).expect("write report");
    r.signature
}

#[test]
fn reports_are_counted_per_signature() {
    let dir = temp_dir("group");
    // The executable's own text: frames that fall in the first recorded module.
    let here = reports_are_counted_per_signature as *const () as usize as u64;
    let a = make_box(&dir, "svc", |bb| end_with_segv(bb, &[here, here + 16]));
    let b = make_box(&dir, "svc", |bb| end_with_segv(bb, &[here + 32, here + 16]));
    let killed = make_box(&dir, "svc", |bb| bb.breadcrumb("then nothing"));

    let sig_a = store_as(&dir, &a, 101);
    assert_eq!(store_as(&dir, &a, 102), sig_a);
    assert_eq!(store_as(&dir, &a, 103), sig_a);
    let sig_b = store_as(&dir, &b, 104);
    let sig_killed = store_as(&dir, &killed, 105);
    assert_eq!(store_as(&dir, &killed, 106), sig_killed);
    assert_ne!(sig_a, sig_b, "another crashing frame is another signature");
    assert_ne!(sig_a, sig_killed);
    // The boxes were only the means to make the reports (a box left "running" with a free lock
    // would be listed as a vanished process's uncollected report).
    std::fs::remove_dir_all(dir.join("blackbox")).expect("remove the fixture boxes");

    let d = dir.to_str().expect("utf-8 path");
    let o = crashguard(&["list", "--group", d]);
    assert_status(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].trim_start().starts_with("COUNT"), "{out}");
    assert_eq!(lines.len(), 4, "a header and three groups:\n{out}");
    assert!(
        lines[1].trim_start().starts_with('3') && lines[1].contains(&sig_a),
        "{out}"
    );
    assert!(
        lines[2].trim_start().starts_with('2') && lines[2].contains(&sig_killed),
        "{out}"
    );
    assert!(
        lines[3].trim_start().starts_with('1') && lines[3].contains(&sig_b),
        "{out}"
    );

    let o = crashguard(&["list", "--group", "--json", d]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let groups = v["groups"].as_array().expect("groups");
    let counts: Vec<(u64, &str)> = groups
        .iter()
        .map(|g| {
            (
                g["count"].as_u64().unwrap_or(0),
                g["signature"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (3, sig_a.as_str()),
            (2, sig_killed.as_str()),
            (1, sig_b.as_str())
        ]
    );
    assert_eq!(groups[0]["outcome"], "fatal_signal");
    assert_eq!(groups[1]["outcome"], "killed_without_warning");

    // `show --json` carries the signature too.
    let o = crashguard(&["show", "--json", "--no-symbolize", d]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["signature"].as_str().map(str::len), Some(16));
}

#[test]
fn a_report_stored_without_a_signature_gets_one() {
    let dir = temp_dir("group-old");
    let bytes = make_box(&dir, "svc", |bb| bb.breadcrumb("x"));
    let r = decode(&bytes).expect("decodes");
    let path = write_report(&dir, &r, Retention::default()).expect("write");
    // As an older crashguard wrote it: no `signature` key.
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    v.as_object_mut().expect("object").remove("signature");
    std::fs::write(&path, v.to_string()).expect("rewrite");
    let o = crashguard(&["show", "--json", path.to_str().expect("utf-8")]);
    assert_status(&o, 0);
    let back: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(back["signature"].as_str(), Some(r.signature.as_str()));
}
