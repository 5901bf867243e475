//! The previous run's crashguard report as a Sentry event, sent with the application's own
//! Sentry client.
//!
//! crashguard never sends anything from a crashing process. The next run reads the black box,
//! and this crate turns that report into an event for whatever Sentry client the application
//! has bound (`sentry::init` binds one to the current hub):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // let _sentry = sentry::init("https://key@sentry.example/1");
//! let guard = crashguard::Config::new("my-service").install()?;
//! crashguard_sentry::capture_previous_run(&guard);
//! # Ok(())
//! # }
//! ```
//!
//! The event, by outcome:
//!
//! | outcome | exception type | mechanism | attachment |
//! |---|---|---|---|
//! | `fatal_signal` | the signal (`SIGSEGV`) | `signal`, with `meta.signal` (number, code, names) | the minidump |
//! | `panic` | `panic` | `panic` | — |
//! | `memory_budget`, `thread_budget` | `MemoryBudgetExceeded`, `ThreadBudgetExceeded` | `budget` | — |
//! | `killed_without_warning` | `KilledWithoutWarning` (value: the verdict) | `killed` | — |
//! | `shutdown_timeout`, `forced_shutdown` | `ShutdownTimeout`, `ForcedShutdown` | `shutdown` | — |
//! | `handler_failure` | `CrashHandlerFailure` | `handler_failure` | the minidump, when registers were recorded |
//! | `exit` with a status other than 0 | `Exit` | `exit` | — |
//!
//! A clean exit sends nothing. Every event is `fatal` (a clean `exit` with a non-zero status is
//! an `error`), unhandled, `platform: native`, with
//!
//! - the frames (oldest first, as Sentry orders them) with `instruction_addr`, the symbol, file
//!   and line crashguard resolved, `package` = the module, `in_app` for the executable's frames,
//!   and the crashing thread's registers;
//! - `debug_meta.images`: one `elf` image per module with a build id, `code_id` = the build id
//!   and `debug_id` derived from it as Sentry does ([`debug_id_from_build_id`]), so Sentry
//!   symbolicates from uploaded debug files;
//! - the breadcrumbs; contexts `crashguard` (app, pid, times, detail, verdict), `resources`
//!   (the last heartbeat), `census` (threads at the end) and `shutdown`;
//! - tags `outcome`, `exit_code`, `verdict`, `signature` (the crash signature; Sentry's own
//!   grouping is left alone).

#[cfg(not(unix))]
compile_error!("crashguard-sentry supports Unix targets only, like crashguard");

// On those targets every item below is configured out, so that the build stops at that one
// error instead of going on to fail in every module.
#[cfg(unix)]
use std::borrow::Cow;
#[cfg(unix)]
use std::collections::BTreeMap;

#[cfg(unix)]
use crashguard::{Outcome, Report};
#[cfg(unix)]
use sentry_core::Hub;
#[cfg(unix)]
use sentry_core::protocol::{
    Addr, Attachment, AttachmentType, Breadcrumb, Context, DebugImage, DebugMeta, Event, Exception,
    Frame, Level, Map, Mechanism, MechanismMeta, PosixSignal, RegVal, Stacktrace,
    SymbolicDebugImage, Value,
};
#[cfg(unix)]
use sentry_core::types::{CodeId, DebugId, Uuid};

/// The file name of the attached minidump.
#[cfg(unix)]
pub const MINIDUMP_FILENAME: &str = "crashguard.dmp";

/// Sends the report of the run before this one, if it ended abnormally, with the current hub's
/// client. Returns the event id, or `None` when there was nothing to send (no previous run, a
/// clean exit) or no client is bound.
#[cfg(unix)]
pub fn capture_previous_run(guard: &crashguard::Guard) -> Option<Uuid> {
    capture_report(guard.previous_run()?)
}

/// Sends `report` with the current hub's client, the minidump attached for a native crash.
/// Returns the event id; `None` for a clean exit.
#[cfg(unix)]
pub fn capture_report(report: &Report) -> Option<Uuid> {
    capture_report_with(&Hub::current(), report)
}

/// [`capture_report`] on a given hub.
#[cfg(unix)]
pub fn capture_report_with(hub: &Hub, report: &Report) -> Option<Uuid> {
    let event = event_from_report(report)?;
    let minidump = crashguard_minidump::write_minidump(report).ok();
    let id = hub.with_scope(
        |scope| {
            if let Some(buffer) = minidump {
                scope.add_attachment(Attachment {
                    buffer,
                    filename: MINIDUMP_FILENAME.to_owned(),
                    content_type: Some("application/x-dmp".to_owned()),
                    ty: Some(AttachmentType::Minidump),
                });
            }
        },
        || hub.capture_event(event),
    );
    (!id.is_nil()).then_some(id)
}

/// The event for `report`; `None` for a clean exit (nothing to report).
#[cfg(unix)]
pub fn event_from_report(report: &Report) -> Option<Event<'static>> {
    let (ty, value, mechanism) = exception_kind(report)?;
    let mut event = Event {
        level: if report.outcome == Outcome::Exit {
            Level::Error
        } else {
            Level::Fatal
        },
        platform: Cow::Borrowed("native"),
        timestamp: report
            .ended_at
            .unwrap_or(report.started_at)
            .to_system_time(),
        ..Event::default()
    };
    event.exception.values.push(Exception {
        ty,
        value: Some(value),
        thread_id: report
            .thread
            .as_ref()
            .map(|t| sentry_core::protocol::ThreadId::Int(u64::from(t.tid))),
        mechanism: Some(mechanism),
        stacktrace: stacktrace(report),
        ..Exception::default()
    });
    event.debug_meta = Cow::Owned(DebugMeta {
        images: images(report),
        ..DebugMeta::default()
    });
    event.breadcrumbs.values = report
        .breadcrumbs
        .iter()
        .map(|b| Breadcrumb {
            timestamp: b.at.to_system_time(),
            category: Some("crashguard".to_owned()),
            message: Some(b.message.clone()),
            data: [("thread".to_owned(), Value::from(b.thread))]
                .into_iter()
                .collect(),
            ..Breadcrumb::default()
        })
        .collect();
    contexts(report, &mut event.contexts);
    let tags = &mut event.tags;
    tags.insert("outcome".into(), report.outcome.as_str().to_owned());
    tags.insert("signature".into(), report.signature.clone());
    if let Some(code) = report.exit_code {
        tags.insert("exit_code".into(), code.to_string());
    }
    if let Some(v) = &report.verdict {
        tags.insert("verdict".into(), v.clone());
    }
    Some(event)
}

/// The exception's type, value and mechanism; `None` when the run ended cleanly.
#[cfg(unix)]
fn exception_kind(r: &Report) -> Option<(String, String, Mechanism)> {
    let detail = || r.detail.clone().unwrap_or_else(|| r.to_string());
    let mechanism = |ty: &str| Mechanism {
        ty: ty.to_owned(),
        handled: Some(false),
        description: r.detail.clone(),
        ..Mechanism::default()
    };
    Some(match r.outcome {
        Outcome::CleanExit => return None,
        Outcome::Exit if r.exit_code.unwrap_or(0) == 0 => return None,
        Outcome::FatalSignal => {
            let s = r.signal.as_ref();
            let name = s
                .map(|s| s.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "fatal signal".to_owned());
            let mut value = s.map(|s| s.code_name.clone()).unwrap_or_default();
            if let Some(a) = s.and_then(|s| s.fault_address.as_deref()) {
                value = format!("{value} at {a}").trim().to_owned();
            }
            if r.stack_overflow {
                value = format!("stack overflow ({value})");
            }
            if let Some(p) = &r.panic {
                value = format!("{value}: panic '{}' at {}", p.message, p.location);
            }
            let mut m = mechanism("signal");
            m.meta = MechanismMeta {
                signal: s.map(|s| PosixSignal {
                    number: s.number as i32,
                    code: Some(s.code),
                    name: Some(s.name.clone()).filter(|n| !n.is_empty()),
                    code_name: Some(s.code_name.clone()).filter(|n| !n.is_empty()),
                }),
                ..MechanismMeta::default()
            };
            (name, if value.is_empty() { detail() } else { value }, m)
        }
        Outcome::Panic => {
            let value = r
                .panic
                .as_ref()
                .map(|p| format!("'{}' at {}", p.message, p.location))
                .unwrap_or_else(detail);
            ("panic".to_owned(), value, mechanism("panic"))
        }
        Outcome::MemoryBudget => (
            "MemoryBudgetExceeded".to_owned(),
            detail(),
            mechanism("budget"),
        ),
        Outcome::ThreadBudget => (
            "ThreadBudgetExceeded".to_owned(),
            detail(),
            mechanism("budget"),
        ),
        Outcome::KilledWithoutWarning => (
            "KilledWithoutWarning".to_owned(),
            r.verdict.clone().unwrap_or_else(detail),
            mechanism("killed"),
        ),
        Outcome::ShutdownTimeout => (
            "ShutdownTimeout".to_owned(),
            detail(),
            mechanism("shutdown"),
        ),
        Outcome::ForcedShutdown => ("ForcedShutdown".to_owned(), detail(), mechanism("shutdown")),
        Outcome::HandlerFailure => (
            "CrashHandlerFailure".to_owned(),
            detail(),
            mechanism("handler_failure"),
        ),
        Outcome::Exit => ("Exit".to_owned(), detail(), mechanism("exit")),
        // An outcome added after this crate was written is still reported, under its name.
        _ => (
            r.outcome.as_str().to_owned(),
            detail(),
            mechanism("crashguard"),
        ),
    })
}

#[cfg(unix)]
fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

#[cfg(unix)]
fn stacktrace(r: &Report) -> Option<Stacktrace> {
    if r.backtrace.is_empty() {
        return None;
    }
    // Sentry lists frames oldest first; the report innermost first.
    let frames = r
        .backtrace
        .iter()
        .rev()
        .map(|f| Frame {
            instruction_addr: parse_hex(&f.ip).map(Addr),
            function: f.symbol.clone(),
            filename: f.file.clone(),
            lineno: f.line.map(u64::from),
            package: f.module.clone(),
            in_app: Some(f.module.is_some() && f.module == r.executable),
            ..Frame::default()
        })
        .collect();
    let registers: BTreeMap<String, RegVal> = r
        .context
        .as_ref()
        .map(|c| {
            c.registers
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), RegVal(parse_hex(v)?))))
                .collect()
        })
        .unwrap_or_default();
    Some(Stacktrace {
        frames,
        registers,
        ..Stacktrace::default()
    })
}

/// The debug id Sentry (and Breakpad) derive from an ELF build id: its first 16 bytes (padded
/// with zeros when shorter) read as a little-endian GUID, age 0.
#[cfg(unix)]
pub fn debug_id_from_build_id(build_id_hex: &str) -> Option<DebugId> {
    let bytes: Vec<u8> = (0..build_id_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(build_id_hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    if bytes.is_empty() {
        return None;
    }
    let mut guid = [0u8; 16];
    for (slot, b) in guid.iter_mut().zip(&bytes) {
        *slot = *b;
    }
    DebugId::from_guid_age(&guid, 0).ok()
}

#[cfg(unix)]
fn images(r: &Report) -> Vec<DebugImage> {
    let arch = r.context.as_ref().map(|c| c.arch.clone());
    r.modules
        .iter()
        .filter_map(|m| {
            let build_id = m.build_id.as_deref()?;
            let start = parse_hex(&m.start)?;
            let bias = parse_hex(&m.bias).unwrap_or(start);
            let end = m.end.as_deref().and_then(parse_hex).unwrap_or(start);
            Some(DebugImage::Symbolic(SymbolicDebugImage {
                name: m.path.clone(),
                arch: arch.clone(),
                image_addr: Addr(start),
                image_size: end.saturating_sub(start),
                image_vmaddr: Addr(start.wrapping_sub(bias)),
                id: debug_id_from_build_id(build_id)?,
                code_id: Some(CodeId::new(build_id.to_owned())),
                debug_file: None,
            }))
        })
        .collect()
}

#[cfg(unix)]
fn other<T: serde::Serialize>(value: &T) -> Option<Context> {
    match serde_json::to_value(value).ok()? {
        Value::Object(map) => Some(Context::Other(map.into_iter().collect::<Map<_, _>>())),
        _ => None,
    }
}

#[cfg(unix)]
fn contexts(r: &Report, out: &mut Map<String, Context>) {
    let facts = serde_json::json!({
        "app": r.app,
        "pid": r.pid,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "executable": r.executable,
        "build_id": r.build_id,
        "detail": r.detail,
        "verdict": r.verdict,
        "signature": r.signature,
        "crashguard_version": r.crashguard_version,
        "thread": r.thread,
    });
    if let Some(c) = other(&facts) {
        out.insert("crashguard".to_owned(), c);
    }
    if let Some(c) = r.resources.as_ref().and_then(other) {
        out.insert("resources".to_owned(), c);
    }
    if let Some(c) = r.threads.as_ref().and_then(other) {
        out.insert("census".to_owned(), c);
    }
    if let Some(c) = r.shutdown.as_ref().and_then(other) {
        out.insert("shutdown".to_owned(), c);
    }
}
