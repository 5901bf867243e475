//! `capture_previous_run` with a real `Guard`, the way a service uses it: a real child process
//! (this test binary, run again with `--crash-child DIR`) installs crashguard and dies of a real
//! SIGSEGV; then this process — the next run of the same application and the same binary —
//! installs crashguard on the same report directory, and `capture_previous_run(&guard)` sends the
//! crash through sentry-core's test transport. The envelope is asserted field by field against
//! what is known independently of the report (the child's pid and exit status, the fault address
//! the crash used, this binary's build id, the breadcrumb the child left) and against the report
//! the guard read.
//!
//! A test without the libtest harness: the child role needs its own `main`, and one test per
//! process keeps crashguard's process-wide handlers away from other tests.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crashguard::Outcome;
use sentry_core::protocol::{AttachmentType, Context, DebugImage, EnvelopeItem, Value};
use sentry_core::test::with_captured_envelopes;

const APP: &str = "sentry-next-run";
const CRUMB: &str = "about to crash for the sentry test";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--crash-child") {
        crash_child(Path::new(&args[i + 1]));
    }
    a_crash_is_captured_by_the_next_run_through_its_guard();
    println!("test a_crash_is_captured_by_the_next_run_through_its_guard ... ok");
}

/// The run that crashes: crashguard installed as a service would, one breadcrumb, a real fault.
fn crash_child(dir: &Path) -> ! {
    let _guard = crashguard::Config::new(APP)
        .report_dir(dir)
        .install()
        .expect("the crashing run installs crashguard");
    crashguard::breadcrumb(CRUMB);
    crash_here()
}

#[inline(never)]
fn crash_here() -> ! {
    // SAFETY: not safe at all: it writes to an unmapped address, to die of SIGSEGV.
    unsafe { sadness_generator::raise_segfault() }
}

/// A private scratch directory (the report directory must not be writable by others).
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crashguard-sentry-next-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the report directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .expect("make it private");
    dir
}

fn a_crash_is_captured_by_the_next_run_through_its_guard() {
    let dir = scratch();

    // The run that crashes, for real, in another process.
    let child = Command::new(std::env::current_exe().expect("this test binary"))
        .arg("--crash-child")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the crashing run");
    let child_pid = child.id();
    let out = child.wait_with_output().expect("wait for the crashing run");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "the crashing run must die of SIGSEGV: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The next run: crashguard installed with a real Guard, then the Sentry integration.
    let guard = crashguard::Config::new(APP)
        .report_dir(&dir)
        .previous_run_to_stderr(false)
        .install()
        .expect("the next run installs crashguard");
    let report = guard
        .previous_run()
        .expect("the next run read the crash")
        .clone();
    assert_eq!(report.outcome, Outcome::FatalSignal);
    assert_eq!(report.pid, child_pid);

    let mut sent = None;
    let envelopes = with_captured_envelopes(|| {
        sent = crashguard_sentry::capture_previous_run(&guard);
    });
    let id = sent.expect("capture_previous_run sent an event");
    assert_eq!(envelopes.len(), 1, "one envelope");
    let envelope = &envelopes[0];
    let event = envelope.event().expect("the envelope holds an event");
    assert_eq!(event.event_id, id);

    // The event as a whole.
    assert_eq!(event.level, sentry_core::Level::Fatal);
    assert_eq!(event.platform, "native");
    // Computed from the report's text, independently of `Timestamp`.
    let ended = report
        .ended_at
        .expect("a crash has an end time")
        .to_string();
    let ms = ended_ms(&ended);
    assert_eq!(
        event.timestamp,
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        "timestamp = the report's ended_at {ended}"
    );

    // The exception: the signal and where it hit.
    assert_eq!(event.exception.values.len(), 1);
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "SIGSEGV");
    assert_eq!(
        exc.value.as_deref(),
        Some(format!("SEGV_MAPERR at {:#x}", sadness_generator::SEGFAULT_ADDRESS).as_str())
    );
    // The crash happened on the child's main thread, whose tid is its pid.
    assert_eq!(
        exc.thread_id,
        Some(sentry_core::protocol::ThreadId::Int(u64::from(child_pid)))
    );
    let m = exc.mechanism.as_ref().expect("a mechanism");
    assert_eq!(m.ty, "signal");
    assert_eq!(m.handled, Some(false));
    let sig = m.meta.signal.as_ref().expect("meta.signal");
    assert_eq!(sig.number, libc::SIGSEGV);
    // SEGV_MAPERR (asm-generic/siginfo.h; the libc crate does not export it).
    assert_eq!(sig.code, Some(1));
    assert_eq!(sig.name.as_deref(), Some("SIGSEGV"));
    assert_eq!(sig.code_name.as_deref(), Some("SEGV_MAPERR"));

    // The frames: oldest first, every recorded one, at its recorded address; the innermost is
    // the faulting function, named by the next run (same binary) and in the application.
    let st = exc.stacktrace.as_ref().expect("a stacktrace");
    assert_eq!(st.frames.len(), report.backtrace.len());
    for (sent, recorded) in st.frames.iter().rev().zip(&report.backtrace) {
        assert_eq!(
            sent.instruction_addr.map(|a| format!("{:#x}", a.0)),
            Some(recorded.ip.clone())
        );
        assert_eq!(sent.package, recorded.module);
        assert_eq!(sent.function, recorded.symbol);
    }
    // The innermost frames: the faulting store (`write_volatile`, a call of its own in a debug
    // build), sadness-generator's `raise_segfault`, then its caller `crash_here`; every one named
    // by the next run, which is the same binary.
    let top = st.frames.last().expect("frames");
    assert!(top.function.is_some(), "named by the next run: {top:?}");
    assert_eq!(top.in_app, Some(true));
    let exe = std::env::current_exe()
        .expect("this binary")
        .display()
        .to_string();
    assert_eq!(top.package.as_deref(), Some(exe.as_str()));
    let named: Vec<&str> = st
        .frames
        .iter()
        .rev()
        .map(|f| f.function.as_deref().unwrap_or("?"))
        .collect();
    let raise = named
        .iter()
        .position(|n| n.ends_with("raise_segfault"))
        .unwrap_or_else(|| panic!("raise_segfault among the innermost frames: {named:?}"));
    assert!(
        raise <= 1,
        "raise_segfault is innermost or its callee is: {named:?}"
    );
    assert!(
        named[raise + 1].ends_with("crash_here"),
        "crash_here called raise_segfault: {named:?}"
    );
    // The crashing thread's registers: the program counter is the innermost frame's address.
    let pc = if cfg!(target_arch = "x86_64") {
        "rip"
    } else {
        "pc"
    };
    assert_eq!(
        st.registers.get(pc).map(|r| format!("{:#x}", r.0)),
        Some(report.backtrace[0].ip.clone())
    );

    // debug_meta: this binary's image, code id = its build id (read from this process's own
    // loaded image, not from the report), debug id derived from it as Sentry does.
    let table = crashguard_blackbox::modules::loaded();
    let build_id = crashguard_blackbox::modules::build_id_hex(&table[0]);
    assert!(!build_id.is_empty(), "this test binary has a build id");
    let image = event
        .debug_meta
        .images
        .iter()
        .find_map(|i| match i {
            DebugImage::Symbolic(s) if s.name == exe => Some(s),
            _ => None,
        })
        .expect("the executable's debug image");
    assert_eq!(
        image.code_id.as_ref().map(|c| c.to_string()),
        Some(build_id.clone())
    );
    assert_eq!(
        Some(image.id),
        crashguard_sentry::debug_id_from_build_id(&build_id)
    );
    let module = report
        .modules
        .iter()
        .find(|m| m.path == exe)
        .expect("the executable's module");
    assert_eq!(
        Some(image.image_addr.0),
        u64::from_str_radix(module.start.trim_start_matches("0x"), 16).ok()
    );

    // The breadcrumb the crashed run left, the contexts and the tags.
    assert!(
        event
            .breadcrumbs
            .values
            .iter()
            .any(|b| b.message.as_deref() == Some(CRUMB)
                && b.data.get("thread") == Some(&Value::from(child_pid))),
        "the child's breadcrumb: {:?}",
        event.breadcrumbs.values
    );
    let Some(Context::Other(cg)) = event.contexts.get("crashguard") else {
        panic!("the crashguard context: {:?}", event.contexts)
    };
    assert_eq!(cg.get("app"), Some(&Value::from(APP)));
    assert_eq!(cg.get("pid"), Some(&Value::from(child_pid)));
    assert_eq!(
        event.tags.get("outcome").map(String::as_str),
        Some("fatal_signal")
    );
    assert_eq!(event.tags.get("exit_code").map(String::as_str), Some("139"));
    assert_eq!(event.tags.get("signature"), Some(&report.signature));
    assert_eq!(report.signature.len(), 16);
    assert!(!event.tags.contains_key("verdict"));

    // The minidump of the same report, attached as one.
    let dumps: Vec<_> = envelope
        .items()
        .filter_map(|item| match item {
            EnvelopeItem::Attachment(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(dumps.len(), 1, "one attachment");
    assert_eq!(dumps[0].filename, crashguard_sentry::MINIDUMP_FILENAME);
    assert_eq!(dumps[0].ty, Some(AttachmentType::Minidump));
    assert!(dumps[0].buffer.starts_with(b"MDMP"));
    assert_eq!(
        dumps[0].buffer,
        crashguard_minidump::write_minidump(&report).expect("the same report's minidump")
    );

    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Milliseconds since the epoch of an RFC 3339 UTC time with milliseconds
/// (`2026-01-01T00:00:05.250Z`), computed here rather than by the crate under test.
fn ended_ms(t: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| -> i64 { t[r].parse().expect("a number") };
    let (y, mo, d) = (n(0..4), n(5..7), n(8..10));
    let (h, mi, s, ms) = (n(11..13), n(14..16), n(17..19), n(20..23));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + mi) * 60 + s).expect("after 1970") * 1000
        + u64::try_from(ms).expect("ms")
}
