//! The crash signature: a stable grouping key computed from a report without symbols.
//!
//! Two reports get the same signature when they most likely describe the same bug, so a fleet
//! can count occurrences (`crashguard list --group`, a log pipeline, Sentry's fingerprint)
//! without symbolizing anything. The key is built from what the black box records raw:
//!
//! - a run whose report has a panic (an unwinding panic, or a `panic = "abort"` run that ended
//!   in SIGABRT): the panic's `file:line:col`;
//! - a fatal signal or handler failure: the signal name and the executable's build id with the
//!   module-relative offsets of the innermost [`APP_FRAMES`] frames that lie in the executable
//!   (frames in libc or other libraries are skipped, so `abort` → `raise` does not make every
//!   abort one group); when no frame lies in the executable, the innermost frames of any known
//!   module;
//! - every other outcome: the outcome itself.
//!
//! The application name always takes part, so two services' `killed_without_warning` stay apart.
//! The basis string is hashed with 64-bit FNV-1a, whose definition is fixed (unlike std's
//! `DefaultHasher`), and printed as 16 lower-case hex digits. `docs/report-format.md` gives the
//! exact basis, so other tools can compute the same key.
//!
//! Offsets change with every build, so a signature groups one build's crashes; a new build of
//! the same bug starts a new group (panic locations survive rebuilds until the source moves).

use crate::outcome::Outcome;
use crate::report::{Frame, Report};

/// How many innermost application frames take part in a fatal signal's signature.
pub const APP_FRAMES: usize = 5;

/// The version tag at the start of every basis; raised if the recipe ever changes.
const BASIS_VERSION: &str = "v1";

/// The signature of `report`: 16 lower-case hex digits.
pub fn signature(report: &Report) -> String {
    format!("{:016x}", fnv1a64(basis(report).as_bytes()))
}

/// The text the signature hashes, for documentation and debugging: fields joined by `|`.
pub fn basis(report: &Report) -> String {
    let mut parts: Vec<String> = vec![BASIS_VERSION.to_owned(), report.app.clone()];
    if let Some(p) = &report.panic {
        parts.push("panic".to_owned());
        parts.push(p.location.clone());
        return parts.join("|");
    }
    parts.push(report.outcome.as_str().to_owned());
    if matches!(
        report.outcome,
        Outcome::FatalSignal | Outcome::HandlerFailure
    ) {
        if let Some(s) = &report.signal {
            parts.push(if s.name.is_empty() {
                s.number.to_string()
            } else {
                s.name.clone()
            });
        }
        parts.extend(app_frames(report));
    }
    parts.join("|")
}

/// `build_id+offset` for the innermost application frames.
fn app_frames(report: &Report) -> Vec<String> {
    let in_executable = |f: &Frame| match (&report.build_id, &f.build_id) {
        (Some(exe), Some(id)) => exe.eq_ignore_ascii_case(id),
        _ => f.module.is_some() && f.module == report.executable,
    };
    let key = |f: &Frame| {
        let module = f.build_id.clone().or_else(|| {
            f.module
                .as_deref()
                .map(|m| m.rsplit('/').next().unwrap_or(m).to_owned())
        })?;
        Some(format!("{module}+{}", f.offset.as_deref()?))
    };
    let pick = |filter: &dyn Fn(&Frame) -> bool| -> Vec<String> {
        report
            .backtrace
            .iter()
            .filter(|f| filter(f))
            .filter_map(key)
            .take(APP_FRAMES)
            .collect()
    };
    let app = pick(&in_executable);
    if app.is_empty() { pick(&|_| true) } else { app }
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PanicInfo, SignalInfo};

    const MINIMAL: &str = r#"{"schema_version":1,"app":"app","pid":7,
        "started_at":"2024-01-01T00:00:00.000Z","ended_at":null,"outcome":"clean_exit",
        "exit_code":null,"signal":null,"thread":null,"stack_overflow":false,"panic":null,
        "backtrace":[],"breadcrumbs":[],"resources":null,"allocation":null,"shutdown":null,
        "threads":null,"detail":null,"verdict":null,"build_id":null,"executable":null,
        "modules":[],"crashguard_version":"0.1.0"}"#;

    fn frame(module: &str, build_id: &str, offset: &str) -> Frame {
        Frame {
            ip: "0x1".into(),
            module: Some(module.into()),
            offset: Some(offset.into()),
            build_id: Some(build_id.into()),
            ..Frame::default()
        }
    }

    fn segv() -> Report {
        let mut r: Report = serde_json::from_str(MINIMAL).expect("fixture parses");
        r.outcome = Outcome::FatalSignal;
        r.build_id = Some("aa".into());
        r.executable = Some("/bin/app".into());
        r.signal = Some(SignalInfo {
            number: 11,
            name: "SIGSEGV".into(),
            code: 1,
            code_name: "SEGV_MAPERR".into(),
            fault_address: Some("0x0".into()),
            sender_pid: None,
            sender_uid: None,
        });
        r.backtrace = vec![
            frame("/lib/libc.so.6", "cc", "0x99"),
            frame("/bin/app", "aa", "0x10"),
            frame("/bin/app", "aa", "0x20"),
        ];
        r
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fatal_signals_group_by_application_frames() {
        let r = segv();
        assert_eq!(basis(&r), "v1|app|fatal_signal|SIGSEGV|aa+0x10|aa+0x20");
        let sig = signature(&r);
        assert_eq!(sig.len(), 16);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));

        // Another pid, time, address, breadcrumbs or library frame: the same bug.
        let mut same = r.clone();
        same.pid += 1;
        same.started_at = "2030-01-01T00:00:00.000Z".parse().unwrap();
        same.backtrace[0] = frame("/lib/libc.so.6", "dd", "0x42");
        same.breadcrumbs.clear();
        assert_eq!(signature(&same), sig);

        // Another application frame or another signal: another group.
        let mut other = r.clone();
        other.backtrace[2].offset = Some("0x24".into());
        assert_ne!(signature(&other), sig);
        let mut other = r.clone();
        if let Some(s) = other.signal.as_mut() {
            s.name = "SIGBUS".into();
        }
        assert_ne!(signature(&other), sig);
    }

    #[test]
    fn only_the_innermost_application_frames_count() {
        let mut r = segv();
        for i in 0..10 {
            r.backtrace
                .push(frame("/bin/app", "aa", &format!("0x{:x}", 0x100 + i)));
        }
        let b = basis(&r);
        assert_eq!(b.matches("aa+").count(), APP_FRAMES);
        let mut deeper = r.clone();
        deeper.backtrace.last_mut().expect("frames").offset = Some("0xfff".into());
        assert_eq!(signature(&deeper), signature(&r));
    }

    #[test]
    fn without_executable_frames_any_module_counts() {
        let mut r = segv();
        r.backtrace.retain(|f| f.build_id.as_deref() == Some("cc"));
        assert_eq!(basis(&r), "v1|app|fatal_signal|SIGSEGV|cc+0x99");
        r.backtrace.clear();
        assert_eq!(basis(&r), "v1|app|fatal_signal|SIGSEGV");
    }

    #[test]
    fn panics_group_by_location_and_the_rest_by_outcome() {
        let mut r = segv();
        r.panic = Some(PanicInfo {
            message: "index 7 out of range".into(),
            location: "src/main.rs:10:5".into(),
            thread: None,
        });
        assert_eq!(basis(&r), "v1|app|panic|src/main.rs:10:5");
        let mut other_message = r.clone();
        if let Some(p) = other_message.panic.as_mut() {
            p.message = "index 9 out of range".into();
        }
        assert_eq!(signature(&other_message), signature(&r));

        let mut killed = segv();
        killed.outcome = Outcome::KilledWithoutWarning;
        killed.signal = None;
        assert_eq!(basis(&killed), "v1|app|killed_without_warning");
        let mut other_app = killed.clone();
        other_app.app = "other".into();
        assert_ne!(signature(&other_app), signature(&killed));
    }
}
