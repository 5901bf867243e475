//! The events crashguard-sentry sends, as sentry-core's test transport captures them: asserted
//! field by field, for a native crash (with its minidump) and for the outcomes that are not
//! crashes.

use crashguard::Report;
use sentry_core::protocol::{AttachmentType, Context, DebugImage, EnvelopeItem, Event, Value};
use sentry_core::test::with_captured_envelopes;

/// The GNU build id of this test binary, and the debug id Sentry's own library derives from it.
fn this_binary_ids() -> (String, String) {
    let bytes = std::fs::read("/proc/self/exe").expect("read this test binary");
    let elf = symbolic_debuginfo::elf::ElfObject::parse(&bytes).expect("parse this binary");
    let code_id = elf.code_id().expect("the test binary has a build id");
    (code_id.as_str().to_owned(), elf.debug_id().to_string())
}

fn report(outcome: &str, build_id: &str) -> Report {
    let stack: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    let json = format!(
        r#"{{"schema_version":1,"app":"svc","pid":4321,"started_at":"2026-01-01T00:00:00.000Z",
        "ended_at":"2026-01-01T00:00:05.250Z","outcome":"{outcome}","signature":"0123456789abcdef",
        "exit_code":139,
        "signal":{{"number":11,"name":"SIGSEGV","code":1,"code_name":"SEGV_MAPERR",
          "fault_address":"0x10","sender_pid":null,"sender_uid":null}},
        "thread":{{"tid":4325,"name":"worker"}},"stack_overflow":false,"panic":null,
        "backtrace":[
          {{"ip":"0x555555560123","module":"/srv/svc/bin/svc","offset":"0xc123","build_id":"{build_id}",
            "symbol":"svc::parse","file":"src/parse.rs","line":42}},
          {{"ip":"0x555555561000","module":"/srv/svc/bin/svc","offset":"0xd000","build_id":"{build_id}",
            "symbol":"svc::main","file":"src/main.rs","line":7}},
          {{"ip":"0x7ffff7c29d90","module":"/lib/x86_64-linux-gnu/libc.so.6","offset":"0x29d90",
            "build_id":"93ac61ec5a8eb1396f9fbd350e3169a558528a40","symbol":null,"file":null,"line":null}}],
        "breadcrumbs":[{{"at":"2026-01-01T00:00:04.000Z","thread":4325,"message":"job 7 started"}}],
        "resources":{{"rss_bytes":1048576,"heap_bytes":null,"threads":5,"cgroup_memory_current":null,
          "cgroup_memory_max":null,"oom_kill_count":0,"memory_budget":null,"thread_budget":null,
          "sampled_at":"2026-01-01T00:00:05.000Z"}},
        "allocation":null,"shutdown":null,
        "threads":{{"total":5,"groups":[{{"name":"worker-","count":4}},{{"name":"svc","count":1}}]}},
        "detail":"fatal signal SIGSEGV","verdict":null,"build_id":"{build_id}",
        "executable":"/srv/svc/bin/svc",
        "modules":[
          {{"path":"/srv/svc/bin/svc","build_id":"{build_id}",
            "start":"0x555555554000","end":"0x555555600000","bias":"0x555555554000"}},
          {{"path":"/lib/x86_64-linux-gnu/libc.so.6","build_id":"93ac61ec5a8eb1396f9fbd350e3169a558528a40",
            "start":"0x7ffff7c00000","end":"0x7ffff7e00000","bias":"0x7ffff7c00000"}}],
        "crashguard_version":"0.1.0",
        "context":{{"arch":"x86_64",
          "registers":{{"rip":"0x555555560123","rsp":"0x7fffffffd000","rbp":"0x7fffffffd040"}},
          "stack":{{"start":"0x7fffffffd000","len":32,"bytes":"{stack}"}},
          "stack_low":null,"stack_high":null}}}}"#
    );
    serde_json::from_str(&json).expect("the fixture is a valid report")
}

/// An attachment as sent: file name, type, bytes.
type Sent = (String, Option<AttachmentType>, Vec<u8>);

/// Captures `report` and returns the one event sent and its attachments.
fn capture(report: &Report) -> (Event<'static>, Vec<Sent>) {
    let envelopes = with_captured_envelopes(|| {
        assert!(crashguard_sentry::capture_report(report).is_some());
    });
    assert_eq!(envelopes.len(), 1);
    let envelope = &envelopes[0];
    let event = envelope.event().expect("an event").clone();
    let attachments = envelope
        .items()
        .filter_map(|item| match item {
            EnvelopeItem::Attachment(a) => {
                Some((a.filename.clone(), a.ty.clone(), a.buffer.clone()))
            }
            _ => None,
        })
        .collect();
    (event, attachments)
}

fn other(event: &Event<'_>, name: &str) -> serde_json::Map<String, Value> {
    match event.contexts.get(name) {
        Some(Context::Other(map)) => map.clone().into_iter().collect(),
        other => panic!("context {name}: {other:?}"),
    }
}

#[test]
fn a_native_crash_is_an_event_with_signal_frames_images_and_its_minidump() {
    let (build_id, symbolic_debug_id) = this_binary_ids();
    let r = report("fatal_signal", &build_id);
    let (event, attachments) = capture(&r);

    assert_eq!(event.level, sentry_core::Level::Fatal);
    assert_eq!(event.platform, "native");
    assert_eq!(
        event.timestamp,
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_767_225_605_250)
    );
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "SIGSEGV");
    assert_eq!(exc.value.as_deref(), Some("SEGV_MAPERR at 0x10"));
    assert_eq!(
        exc.thread_id,
        Some(sentry_core::protocol::ThreadId::Int(4325))
    );
    let m = exc.mechanism.as_ref().expect("mechanism");
    assert_eq!(m.ty, "signal");
    assert_eq!(m.handled, Some(false));
    let sig = m.meta.signal.as_ref().expect("meta.signal");
    assert_eq!(sig.number, 11);
    assert_eq!(sig.code, Some(1));
    assert_eq!(sig.name.as_deref(), Some("SIGSEGV"));
    assert_eq!(sig.code_name.as_deref(), Some("SEGV_MAPERR"));

    // Frames oldest first, with instruction addresses.
    let st = exc.stacktrace.as_ref().expect("stacktrace");
    let addrs: Vec<u64> = st
        .frames
        .iter()
        .map(|f| f.instruction_addr.map_or(0, |a| a.0))
        .collect();
    assert_eq!(
        addrs,
        [0x7fff_f7c2_9d90, 0x5555_5556_1000, 0x5555_5556_0123]
    );
    let top = st.frames.last().expect("frames");
    assert_eq!(top.function.as_deref(), Some("svc::parse"));
    assert_eq!(top.filename.as_deref(), Some("src/parse.rs"));
    assert_eq!(top.lineno, Some(42));
    assert_eq!(top.package.as_deref(), Some("/srv/svc/bin/svc"));
    assert_eq!(top.in_app, Some(true));
    assert_eq!(st.frames[0].in_app, Some(false));
    assert_eq!(st.registers.get("rip").map(|r| r.0), Some(0x5555_5556_0123));

    // debug_meta: code_id = build id, debug_id as symbolic computes it for the same ELF.
    let images = &event.debug_meta.images;
    assert_eq!(images.len(), 2);
    let DebugImage::Symbolic(exe) = &images[0] else {
        panic!("{:?}", images[0])
    };
    assert_eq!(exe.name, "/srv/svc/bin/svc");
    assert_eq!(
        exe.code_id.as_ref().map(|c| c.to_string()),
        Some(build_id.clone())
    );
    assert_eq!(exe.id.to_string(), symbolic_debug_id);
    assert_eq!(exe.image_addr.0, 0x5555_5555_4000);
    assert_eq!(exe.image_size, 0x5555_5560_0000 - 0x5555_5555_4000);
    assert_eq!(exe.image_vmaddr.0, 0);
    assert_eq!(exe.arch.as_deref(), Some("x86_64"));
    assert_eq!(
        crashguard_sentry::debug_id_from_build_id(&build_id).map(|d| d.to_string()),
        Some(symbolic_debug_id)
    );

    // Breadcrumbs, contexts, tags.
    let crumbs = &event.breadcrumbs.values;
    assert_eq!(crumbs.len(), 1);
    assert_eq!(crumbs[0].message.as_deref(), Some("job 7 started"));
    assert_eq!(crumbs[0].data.get("thread"), Some(&Value::from(4325)));
    assert_eq!(other(&event, "resources")["rss_bytes"], 1_048_576);
    assert_eq!(other(&event, "census")["total"], 5);
    assert_eq!(other(&event, "crashguard")["app"], "svc");
    assert!(!event.contexts.contains_key("shutdown"));
    assert_eq!(
        event.tags.get("outcome").map(String::as_str),
        Some("fatal_signal")
    );
    assert_eq!(event.tags.get("exit_code").map(String::as_str), Some("139"));
    assert_eq!(
        event.tags.get("signature").map(String::as_str),
        Some("0123456789abcdef")
    );
    assert!(!event.tags.contains_key("verdict"));

    // The minidump, attached as one.
    assert_eq!(attachments.len(), 1);
    let (name, ty, bytes) = &attachments[0];
    assert_eq!(name, crashguard_sentry::MINIDUMP_FILENAME);
    assert_eq!(*ty, Some(AttachmentType::Minidump));
    assert_eq!(
        bytes,
        &crashguard_minidump::write_minidump(&r).expect("the same minidump")
    );
}

#[test]
fn outcomes_that_are_not_crashes_are_events_of_their_own() {
    let (build_id, _) = this_binary_ids();
    let cases = [
        ("killed_without_warning", "KilledWithoutWarning", "killed"),
        ("memory_budget", "MemoryBudgetExceeded", "budget"),
        ("thread_budget", "ThreadBudgetExceeded", "budget"),
        ("shutdown_timeout", "ShutdownTimeout", "shutdown"),
    ];
    for (outcome, ty, mechanism) in cases {
        let mut r = report(outcome, &build_id);
        r.signal = None;
        r.context = None;
        r.exit_code = Some(if outcome == "killed_without_warning" {
            137
        } else {
            80
        });
        r.detail = Some(format!("{outcome} detail"));
        if outcome == "killed_without_warning" {
            r.verdict = Some("likely OOM-killed: the cgroup's oom_kill counter grew".into());
        }
        let (event, attachments) = capture(&r);
        let exc = &event.exception.values[0];
        assert_eq!(exc.ty, ty, "{outcome}");
        assert_eq!(
            exc.mechanism.as_ref().map(|m| m.ty.as_str()),
            Some(mechanism)
        );
        assert!(
            exc.mechanism
                .as_ref()
                .is_some_and(|m| m.meta.signal.is_none())
        );
        assert!(
            attachments.is_empty(),
            "{outcome}: no minidump without registers"
        );
        assert_eq!(event.tags.get("outcome").map(String::as_str), Some(outcome));
        if outcome == "killed_without_warning" {
            assert_eq!(
                exc.value.as_deref(),
                Some("likely OOM-killed: the cgroup's oom_kill counter grew")
            );
            assert_eq!(
                event.tags.get("verdict").map(String::as_str),
                r.verdict.as_deref()
            );
        } else {
            assert_eq!(
                exc.value.as_deref(),
                Some(format!("{outcome} detail").as_str())
            );
        }
    }

    let mut clean = report("clean_exit", &build_id);
    clean.context = None;
    let envelopes = with_captured_envelopes(|| {
        assert_eq!(crashguard_sentry::capture_report(&clean), None);
    });
    assert!(envelopes.is_empty(), "a clean exit sends nothing");
}
