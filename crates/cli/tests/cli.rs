//! The `crashguard` binary against black boxes and reports made with the black-box crate.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::*;
use crashguard_blackbox::Report;
use crashguard_blackbox::layout::{self, Header, Record, Session};

/// A function whose address the symbolization tests record as the crashing frame.
#[inline(never)]
fn crashguard_cli_test_marker() -> u64 {
    std::hint::black_box(0x5eed)
}

fn marker_ip() -> u64 {
    crashguard_cli_test_marker as *const () as usize as u64
}

#[test]
fn explain_known_statuses() {
    for (status, needles) in [
        ("0", &["EXIT_SUCCESS", "graceful shutdown"][..]),
        ("70", &["panic", "EX_SOFTWARE"]),
        ("80", &["memory_budget", "OOM killer"]),
        ("134", &["SIGABRT", "memory allocation of N bytes failed"]),
        (
            "137",
            &[
                "SIGKILL",
                "OOM killer",
                "dmesg",
                "likely OOM-killed",
                "docker stop",
            ],
        ),
        ("139", &["SIGSEGV", "stack overflow", "SEGV_MAPERR"]),
        ("143", &["SIGTERM", "docker stop"]),
        ("255", &["exit(-1)", "ssh"]),
    ] {
        let o = crashguard(&["explain", status]);
        assert_status(&o, 0);
        let out = stdout(&o);
        assert!(out.starts_with(&format!("exit status {status}: ")), "{out}");
        for n in needles {
            assert!(out.contains(n), "explain {status} lacks {n:?}:\n{out}");
        }
    }
}

#[test]
fn explain_rejects_what_is_not_a_status() {
    for bad in ["300", "-1", "abc", "256"] {
        let o = crashguard(&["explain", bad]);
        assert_status(&o, 64);
        assert!(
            stderr(&o).contains("invalid exit status"),
            "{bad}: {}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty());
    }
    assert_status(&crashguard(&["explain"]), 64);
    assert_status(&crashguard(&["frobnicate"]), 64);
}

#[test]
fn explain_json() {
    let o = crashguard(&["explain", "--json", "137"]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["status"], 137);
    assert_eq!(v["signal"]["name"], "SIGKILL");
    let o = crashguard(&["--json", "explain", "70"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["crashguard_code"], "panic");
}

#[test]
fn show_a_raw_black_box_symbolizes_the_crashing_frame() {
    let dir = temp_dir("show-box");
    let bytes = make_box(&dir, "symbolize", |bb| {
        bb.breadcrumb("about to crash");
        // The second frame is a return address just past the marker's first byte, as an
        // unwinder would record a call from it.
        end_with_segv(bb, &[marker_ip(), marker_ip() + 1]);
    });
    let file = dir.join("crash.box");
    fs::write(&file, &bytes).expect("write");
    let o = crashguard(&["show", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 0);
    let out = stdout(&o);
    for needle in [
        "SIGSEGV",
        "SEGV_MAPERR",
        "0x0",
        "'worker'",
        "crashguard_cli_test_marker",
        "cli.rs",
        "about to crash",
        "139",
    ] {
        assert!(out.contains(needle), "show lacks {needle:?}:\n{out}");
    }
    assert!(!out.contains("left raw"), "{out}");
    let o = crashguard(&["show", "--no-symbolize", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("crashguard_cli_test_marker"), "{out}");
    assert!(
        out.contains("cli-") && out.contains("+0x"),
        "raw frames name module+offset:\n{out}"
    );

    let o = crashguard(&["show", "--json", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 0);
    let r: Report = serde_json::from_str(&stdout(&o)).expect("show --json is a Report");
    assert_eq!(r.outcome.as_str(), "fatal_signal");
    let symbol = r
        .backtrace
        .first()
        .and_then(|f| f.symbol.clone())
        .unwrap_or_default();
    assert!(symbol.contains("crashguard_cli_test_marker"), "{symbol}");
    assert!(r.backtrace.first().and_then(|f| f.line).is_some());
}

#[test]
fn show_refuses_a_binary_with_another_build_id() {
    let dir = temp_dir("mismatch");
    let bytes = make_box(&dir, "mismatch", |bb| end_with_segv(bb, &[marker_ip()]));
    let file = dir.join("crash.box");
    fs::write(&file, &bytes).expect("write");
    // The crashguard binary is a different build from this test executable.
    let other = env!("CARGO_BIN_EXE_crashguard");
    let o = crashguard(&[
        "show",
        "--binary",
        other,
        file.to_str().expect("utf-8 path"),
    ]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("refusing to symbolize"), "{out}");
    assert!(
        !out.contains("crashguard_cli_test_marker"),
        "a mismatched binary was used:\n{out}"
    );
    // With --json the refusal goes to stderr and the frame stays raw.
    let o = crashguard(&[
        "show",
        "--json",
        "--binary",
        other,
        file.to_str().expect("utf-8 path"),
    ]);
    assert_status(&o, 0);
    assert!(stderr(&o).contains("refusing to symbolize"));
    let r: Report = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(r.backtrace.first().and_then(|f| f.symbol.clone()), None);
}

#[test]
fn list_and_show_a_report_directory_newest_first() {
    let dir = temp_dir("list");
    let older = make_box(&dir, "svc", |bb| {
        bb.breadcrumb("old run");
        end_with_segv(bb, &[marker_ip()]);
    });
    let (older_path, _) = store_report(&dir, &older);
    let newer = make_box(&dir, "svc", |bb| {
        heartbeat_near_limit(bb);
        bb.breadcrumb("new run");
    });
    let (newer_path, newer_report) = store_report(&dir, &newer);
    // Make the order independent of the file system's timestamp resolution.
    let now = SystemTime::now();
    let set = |p: &std::path::Path, t: SystemTime| {
        fs::File::options()
            .write(true)
            .open(p)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime")
    };
    set(&older_path, now - Duration::from_secs(60));
    set(&newer_path, now);
    // The boxes were only the means to make the reports; one left "running" with its lock free
    // would be listed as a vanished process's uncollected report (tests/tests/cli_oncall.rs).
    fs::remove_dir_all(dir.join("blackbox")).expect("remove the fixture boxes");

    let d = dir.to_str().expect("utf-8 path");
    let o = crashguard(&["list", d]);
    assert_status(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{out}");
    assert!(
        lines[1].contains("killed_without_warning") && lines[1].contains("likely OOM-killed"),
        "{out}"
    );
    assert!(
        lines[2].contains("fatal_signal") && lines[2].contains("139 SIGSEGV"),
        "{out}"
    );
    assert!(lines[2].contains(&std::process::id().to_string()), "{out}");

    let o = crashguard(&["list", "--json", d]);
    assert_status(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        v["reports"][0]["report"]["outcome"],
        "killed_without_warning"
    );

    // `show DIR` picks the newest report and prints memory in human units.
    let o = crashguard(&["show", d]);
    assert_status(&o, 0);
    let out = stdout(&o);
    for needle in [
        "killed_without_warning",
        "likely OOM-killed",
        "950.0 MiB of 1.0 GiB (92.8%)",
        "200.0 MiB",
        "new run",
        "crashguard explain 137",
    ] {
        assert!(out.contains(needle), "show lacks {needle:?}:\n{out}");
    }
    let o = crashguard(&["show", "--json", d]);
    let r: Report = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(r, newer_report);
    // The reports/ directory itself works too.
    assert_status(
        &crashguard(&["list", dir.join("reports").to_str().expect("utf-8")]),
        0,
    );
}

#[test]
fn missing_and_empty_inputs() {
    let dir = temp_dir("empty");
    let d = dir.to_str().expect("utf-8 path");
    let o = crashguard(&["list", d]);
    assert_status(&o, 0);
    assert!(stdout(&o).contains("no crash reports"));
    let o = crashguard(&["show", d]);
    assert_status(&o, 66);
    assert!(stderr(&o).contains("no crash reports"), "{}", stderr(&o));
    let missing = dir.join("nope");
    let m = missing.to_str().expect("utf-8 path");
    for args in [&["list", m][..], &["show", m], &["inspect", m]] {
        let o = crashguard(args);
        assert_status(&o, 66);
        assert!(
            stderr(&o).contains("no such file or directory"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn inspect_a_box_whose_process_is_still_running() {
    let dir = temp_dir("running");
    let bytes = make_box(&dir, "alive", |bb| bb.breadcrumb("still going"));
    let file = dir.join("running.box");
    fs::write(&file, &bytes).expect("write");
    let o = crashguard(&["inspect", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("RUNNING"), "{out}");
    // A copy's lock is never held, but this test process wrote the box and is alive.
    assert!(
        out.contains("no process holds this file's lock") && out.contains("is alive here"),
        "{out}"
    );
    assert!(out.contains("still going"), "{out}");
    let o = crashguard(&["inspect", "--json", file.to_str().expect("utf-8 path")]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["black_box"]["state"], "running");
    assert_eq!(v["process_alive"], true);
}

#[test]
fn corrupt_black_boxes_are_clear_errors() {
    let dir = temp_dir("corrupt");
    let good = make_box(&dir, "corrupt", |bb| end_with_segv(bb, &[marker_ip()]));
    let session_app = std::mem::offset_of!(Record, session) + std::mem::offset_of!(Session, app);
    let end_field = std::mem::offset_of!(Record, end) + 8;

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    cases.push(("empty", Vec::new(), "truncated"));
    cases.push(("truncated-header", good[..20].to_vec(), "truncated"));
    cases.push((
        "truncated-ring",
        good[..good.len() - 100].to_vec(),
        "truncated",
    ));
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 0xff;
    cases.push(("bad-magic", bad_magic, "bad magic"));
    let mut header = good.clone();
    header[std::mem::offset_of!(Header, checksum)] ^= 0x01;
    cases.push(("header-byte", header, "corrupt"));
    let mut session = good.clone();
    session[session_app] ^= 0x20;
    cases.push(("session-byte", session, "session section is corrupt"));
    let mut end = good.clone();
    end[end_field] ^= 0x01;
    cases.push(("end-byte", end, "end section is corrupt"));

    for (name, bytes, needle) in cases {
        let file = dir.join(format!("{name}.box"));
        fs::write(&file, &bytes).expect("write");
        let f = file.to_str().expect("utf-8 path");
        let o = crashguard(&["inspect", f]);
        assert_status(&o, 65);
        let err = stderr(&o);
        assert!(err.contains(f) && err.contains(needle), "{name}: {err}");
        assert!(stdout(&o).is_empty(), "{name}");
        // `show` gives the same verdict for anything that starts like a black box, and calls
        // the rest neither a black box nor a report.
        let o = crashguard(&["show", f]);
        assert_status(&o, 65);
    }
    let o = crashguard(&["inspect", dir.to_str().expect("utf-8 path")]);
    assert_status(&o, 64);
}

#[test]
fn invalid_report_json_is_a_data_error() {
    let dir = temp_dir("badjson");
    let file = dir.join("r.json");
    fs::write(&file, b"{\"schema_version\": 1, \"app\": ").expect("write");
    let o = crashguard(&["show", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 65);
    assert!(
        stderr(&o).contains("neither a crashguard black box nor a report JSON"),
        "{}",
        stderr(&o)
    );
}

fn put(dst: &mut [u8], text: &str) -> u32 {
    dst[..text.len()].copy_from_slice(text.as_bytes());
    text.len() as u32
}

#[test]
fn show_renders_every_section_in_human_units() {
    let dir = temp_dir("sections");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let bytes = make_box(&dir, "sections", |bb| {
        heartbeat_near_limit(bb);
        bb.breadcrumb("accepted connection");
        assert!(bb.write_panic(|p| {
            p.valid = 1;
            p.at_ns = now;
            p.tid = 7;
            p.message_len = put(&mut p.message, "index out of bounds");
            p.location_len = put(&mut p.location, "src/main.rs:10:5");
            put(&mut p.thread_name, "main");
        }));
        assert!(bb.write_shutdown(|s| {
            s.valid = 1;
            s.requested_at_ns = now;
            s.signal = 15;
            s.sender_pid = 1;
            s.sender_uid = 0;
            s.reason = layout::REASON_SIGNAL;
            s.grace_ms = 8000;
            s.hook_count = 2;
            s.hooks[0].status = layout::HOOK_OK;
            s.hooks[0].duration_us = 12_300;
            s.hooks[0].name_len = put(&mut s.hooks[0].name, "flush producer");
            s.hooks[1].status = layout::HOOK_TIMED_OUT;
            s.hooks[1].duration_us = 8_000_000;
            s.hooks[1].name_len = put(&mut s.hooks[1].name, "close database");
        }));
        bb.record_alloc_failure(64 << 20, 8, 500 << 20, 512 << 20, true);
        let mut w = bb.claim_end().expect("claim");
        let e = w.end();
        e.census_total = 300;
        e.census_count = 1;
        e.census[0].count = 250;
        e.census[0].name_len = put(&mut e.census[0].name, "worker-");
        e.detail_len = put(&mut e.detail, "live heap 524288000 of 536870912 bytes");
        w.commit(crashguard_blackbox::Outcome::MemoryBudget, 80);
    });
    let file = dir.join("sections.box");
    fs::write(&file, &bytes).expect("write");
    let o = crashguard(&["show", file.to_str().expect("utf-8 path")]);
    assert_status(&o, 0);
    let out = stdout(&o);
    if std::env::var_os("CRASHGUARD_PRINT").is_some() {
        println!("{out}");
    }
    for needle in [
        "memory_budget",
        "exit status    80: crashguard memory_budget",
        "allocation refused",
        "64.0 MiB (align 8) with 500.0 MiB live, budget 512.0 MiB",
        "live heap 500.0 MiB of 512.0 MiB",
        "'index out of bounds' at src/main.rs:10:5",
        "shutdown requested",
        "SIGTERM (15)",
        "sent by pid 1 (uid 0)",
        "grace period 8.000 s",
        "flush producer",
        "12.3 ms",
        "close database",
        "timed_out",
        "threads at the end: 300",
        "worker-",
        "cgroup memory  950.0 MiB of 1.0 GiB (92.8%)",
        "accepted connection",
    ] {
        assert!(out.contains(needle), "show lacks {needle:?}:\n{out}");
    }
}
