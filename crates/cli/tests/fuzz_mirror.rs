//! The fuzz targets (`fuzz/fuzz_targets/decode_repaired.rs` and `report_json.rs`) mirrored as
//! property tests, so that stable `cargo test` (and CI) runs the same checks on every change:
//! black boxes forged past their checksums decode to a report or an error, never a panic; a
//! report from any JSON renders — `Display`, `show`, `list` — without a raw control character
//! and survives a JSON round trip.

use std::path::Path;

use crashguard_blackbox::Report;
use crashguard_blackbox::repair::forge;
use proptest::prelude::*;

/// The checks of `fuzz/src/lib.rs`, as a property.
fn check_report(report: &Report) -> Result<(), TestCaseError> {
    let line = report.to_string();
    prop_assert!(
        !line.chars().any(char::is_control),
        "Display let a control character through: {:?}",
        line
    );
    let shown = crashguard_blackbox::escape_report(report);
    let text = crashguard_cli::render::report(
        Path::new("mirror.json"),
        &shown,
        None,
        &crashguard_cli::backtrace::Resolved::default(),
    );
    let text = crashguard_blackbox::terminal_safe(&text);
    prop_assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "show: {:?}",
        text
    );
    let summary = crashguard_cli::list::summary(&shown);
    prop_assert!(
        !summary.chars().any(char::is_control),
        "list: {:?}",
        summary
    );
    let json = report.to_json_pretty();
    let back: Report =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(back.to_json_pretty(), json);
    Ok(())
}

/// Patches aimed at the interesting parts of the record: offsets anywhere, short bodies.
fn patches() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..48)),
        0..24,
    )
    .prop_map(|ps| {
        let mut out = Vec::new();
        for (off, body) in ps {
            out.extend_from_slice(&off.to_le_bytes()[..3]);
            out.push(body.len() as u8);
            out.extend_from_slice(&body);
        }
        out
    })
}

/// Text with the characters that matter here: controls, escapes, C1, direction overrides.
fn hostile_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            any::<char>(),
            Just('\n'),
            Just('\r'),
            Just('\x1b'),
            Just('\u{9b}'),
            Just('\u{202e}'),
            Just('\u{7f}'),
        ],
        0..40,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A report JSON whose every string field is hostile text.
fn hostile_report_json() -> impl Strategy<Value = Vec<u8>> {
    (
        hostile_text(),
        hostile_text(),
        hostile_text(),
        hostile_text(),
        hostile_text(),
        any::<u32>(),
    )
        .prop_map(|(app, msg, crumb, thread, verdict, pid)| {
            serde_json::to_vec(&serde_json::json!({
                "schema_version": 1,
                "app": app,
                "pid": pid,
                "started_at": "2026-12-01T00:00:00.000000000Z",
                "ended_at": "2026-12-01T00:00:01.000000000Z",
                "outcome": "panic",
                "exit_code": 70,
                "thread": { "tid": 7, "name": thread },
                "stack_overflow": false,
                "panic": { "message": msg, "location": "src/main.rs:1:1" },
                "backtrace": [],
                "breadcrumbs": [ { "at": "2026-12-01T00:00:00.500000000Z", "thread": 7, "message": crumb } ],
                "verdict": verdict,
                "detail": "d",
                "modules": [],
                "crashguard_version": "0.1.0",
            }))
            .unwrap_or_default()
        })
}

/// Found by the `decode_repaired` fuzzer: a large hook duration came back one ULP off from its
/// own JSON until serde_json's `float_roundtrip` was enabled.
#[test]
fn floats_survive_the_json_round_trip() {
    for ms in [
        7_792_392_992_899_885.0_f64,
        1.837_469_417_627_785_6e16,
        0.256,
    ] {
        let json = serde_json::to_string(&ms).expect("serialise");
        let back: f64 = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.to_bits(), ms.to_bits(), "{json}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forged_black_boxes_decode_or_fail_cleanly(input in patches()) {
        let bytes = forge(&input);
        if let Ok(report) = crashguard_blackbox::decode(&bytes) {
            check_report(&report)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(report) = serde_json::from_slice::<Report>(&bytes) {
            check_report(&report)?;
        }
    }

    #[test]
    fn hostile_report_strings_render_escaped(json in hostile_report_json()) {
        let report: Report = serde_json::from_slice(&json)
            .map_err(|e| TestCaseError::fail(format!("fixture JSON: {e}")))?;
        check_report(&report)?;
    }
}
