//! A real crash's report, sent with crashguard-sentry through sentry-core's test transport: the
//! envelope holds the event with the signal mechanism, the crashing frames by instruction
//! address, the executable's debug image and the minidump, and a SIGKILLed run becomes a
//! `killed` event with its verdict.

use crashguard_tests::{Child, TempDir, child_command, crash_and_restart, run_child};
use sentry_core::protocol::{AttachmentType, DebugImage, EnvelopeItem};
use sentry_core::test::with_captured_envelopes;

const CHILD: &str = env!("CARGO_BIN_EXE_crashguard-child");

#[test]
fn a_real_segv_is_sent_with_its_frames_images_and_minidump() {
    let crash = crash_and_restart(CHILD, "segv", &[]);
    crash.crashed.assert_killed_by(libc::SIGSEGV);
    let report = &crash.report;
    let envelopes = with_captured_envelopes(|| {
        assert!(crashguard_sentry::capture_report(report).is_some());
    });
    assert_eq!(envelopes.len(), 1);
    let event = envelopes[0].event().expect("an event");
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "SIGSEGV");
    let m = exc.mechanism.as_ref().expect("mechanism");
    assert_eq!(m.ty, "signal");
    assert_eq!(m.meta.signal.as_ref().map(|s| s.number), Some(11));
    // The innermost frame is the last one for Sentry, at the recorded instruction pointer.
    let frames = &exc.stacktrace.as_ref().expect("stacktrace").frames;
    assert_eq!(frames.len(), report.backtrace.len());
    let top = frames.last().expect("frames");
    assert_eq!(
        top.instruction_addr.map(|a| format!("{:#x}", a.0)),
        Some(report.backtrace[0].ip.clone())
    );
    assert!(
        top.function
            .as_deref()
            .is_some_and(|f| f.ends_with("crash_null_write")),
        "{top:?}"
    );
    assert_eq!(top.in_app, Some(true));
    // The executable's image: code id = the build id recorded at the crash.
    let exe = event
        .debug_meta
        .images
        .iter()
        .find_map(|i| match i {
            DebugImage::Symbolic(s) if Some(&s.name) == report.executable.as_ref() => Some(s),
            _ => None,
        })
        .expect("the executable's debug image");
    assert_eq!(
        exe.code_id.as_ref().map(|c| c.to_string()),
        report.build_id.clone()
    );
    assert_eq!(event.tags.get("signature"), Some(&report.signature));
    let minidump = envelopes[0].items().find_map(|item| match item {
        EnvelopeItem::Attachment(a) if a.ty == Some(AttachmentType::Minidump) => Some(a),
        _ => None,
    });
    assert!(
        minidump.is_some_and(|a| a.buffer.starts_with(b"MDMP")),
        "a minidump attachment"
    );
}

#[test]
fn a_sigkilled_run_is_a_killed_event_with_its_verdict() {
    let dir = TempDir::new("sentry-killed");
    let mut child = Child::start(child_command(CHILD, dir.path(), "wait", &[]));
    child.expect_line("READY");
    child.signal(libc::SIGKILL);
    child.wait().assert_killed_by(libc::SIGKILL);
    let next = run_child(CHILD, dir.path(), "none", &[]);
    let report = next.previous().expect("the next run read a report");
    let envelopes = with_captured_envelopes(|| {
        assert!(crashguard_sentry::capture_report(&report).is_some());
    });
    let event = envelopes[0].event().expect("an event");
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "KilledWithoutWarning");
    assert_eq!(
        exc.mechanism.as_ref().map(|m| m.ty.as_str()),
        Some("killed")
    );
    assert_eq!(exc.value, report.verdict);
    assert_eq!(event.tags.get("verdict"), report.verdict.as_ref());
    assert_eq!(
        event.tags.get("outcome").map(String::as_str),
        Some("killed_without_warning")
    );
    assert!(
        envelopes[0]
            .items()
            .all(|i| !matches!(i, EnvelopeItem::Attachment(_))),
        "no minidump without registers"
    );
}
