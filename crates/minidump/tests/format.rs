//! rust-minidump's `minidump` crate reads every stream this crate writes, with the values of
//! the report it was made from.

use crashguard_blackbox::Report;
use minidump::{
    Minidump, MinidumpCrashpadInfo, MinidumpException, MinidumpMemoryList, MinidumpModuleList,
    MinidumpSystemInfo, MinidumpThreadList, Module,
};

/// A SIGSEGV report as crashguard records it on x86-64, with a 64-byte stack copy.
fn report() -> Report {
    let stack: String = (0u8..64).map(|b| format!("{b:02x}")).collect();
    let json = format!(
        r#"{{"schema_version":1,"app":"svc","pid":4321,"started_at":"2026-01-01T00:00:00.000Z",
        "ended_at":"2026-01-01T00:00:05.000Z","outcome":"fatal_signal","signature":"0123456789abcdef",
        "exit_code":139,
        "signal":{{"number":11,"name":"SIGSEGV","code":1,"code_name":"SEGV_MAPERR",
          "fault_address":"0x10","sender_pid":null,"sender_uid":null}},
        "thread":{{"tid":4325,"name":"worker"}},"stack_overflow":false,"panic":null,
        "backtrace":[],
        "breadcrumbs":[{{"at":"2026-01-01T00:00:04.000Z","thread":4325,"message":"job 7 started"}},
                       {{"at":"2026-01-01T00:00:04.500Z","thread":4325,"message":"parsing input"}}],
        "resources":null,"allocation":null,"shutdown":null,"threads":null,"detail":null,
        "verdict":null,"build_id":"00112233445566778899aabbccddeeff01020304",
        "executable":"/srv/svc/bin/svc",
        "modules":[
          {{"path":"/srv/svc/bin/svc","build_id":"00112233445566778899aabbccddeeff01020304",
            "start":"0x555555554000","end":"0x555555600000","bias":"0x555555554000"}},
          {{"path":"/lib/x86_64-linux-gnu/libc.so.6","build_id":"93ac61ec5a8eb1396f9fbd350e3169a558528a40",
            "start":"0x7ffff7c00000","end":"0x7ffff7e00000","bias":"0x7ffff7c00000"}}],
        "crashguard_version":"0.1.0",
        "context":{{"arch":"x86_64",
          "registers":{{"rip":"0x555555560123","rsp":"0x7fffffffd000","rbp":"0x7fffffffd040",
            "rax":"0x0","rflags":"0x10246","cs":"0x33"}},
          "stack":{{"start":"0x7fffffffd000","len":64,"bytes":"{stack}"}},
          "stack_low":"0x7fffff800000","stack_high":"0x7ffffffff000"}}}}"#
    );
    serde_json::from_str(&json).expect("the fixture is a valid report")
}

#[test]
fn every_stream_reads_back() {
    let bytes = crashguard_minidump::write_minidump(&report()).expect("write");
    let dump = Minidump::read(bytes).expect("minidump parses");

    let sys: MinidumpSystemInfo = dump.get_stream().expect("system info");
    assert_eq!(sys.os, minidump::system_info::Os::Linux);
    assert_eq!(sys.cpu, minidump::system_info::Cpu::X86_64);

    let exc: MinidumpException<'_> = dump.get_stream().expect("exception");
    assert_eq!(exc.get_crashing_thread_id(), 4325);
    assert_eq!(exc.raw.exception_record.exception_code, 11);
    assert_eq!(exc.raw.exception_record.exception_flags, 1);
    assert_eq!(exc.raw.exception_record.exception_address, 0x10);

    let threads: MinidumpThreadList<'_> = dump.get_stream().expect("threads");
    assert_eq!(threads.threads.len(), 1);
    let t = &threads.threads[0];
    assert_eq!(t.raw.thread_id, 4325);
    let ctx = t.context(&sys, None).expect("thread context");
    assert_eq!(ctx.get_instruction_pointer(), 0x5555_5556_0123);
    assert_eq!(ctx.get_stack_pointer(), 0x7fff_ffff_d000);
    let no_list = minidump::UnifiedMemoryList::default();
    let mem = t.stack_memory(&no_list).expect("stack memory");
    assert_eq!(mem.base_address(), 0x7fff_ffff_d000);
    assert_eq!(mem.size(), 64);
    assert_eq!(
        mem.get_memory_at_address::<u8>(0x7fff_ffff_d000 + 63),
        Some(63)
    );

    let memory: MinidumpMemoryList<'_> = dump.get_stream().expect("memory list");
    assert!(memory.memory_at_address(0x7fff_ffff_d020).is_some());

    let modules: MinidumpModuleList = dump.get_stream().expect("modules");
    let exe = modules
        .module_at_address(0x5555_5556_0123)
        .expect("the instruction pointer lies in the executable");
    assert_eq!(exe.code_file(), "/srv/svc/bin/svc");
    assert_eq!(
        exe.code_identifier().map(|c| c.to_string()).as_deref(),
        Some("00112233445566778899aabbccddeeff01020304")
    );
    // The debug id: the build id's first 16 bytes as a little-endian GUID, age 0.
    assert_eq!(
        exe.debug_identifier()
            .map(|d| d.breakpad().to_string())
            .as_deref(),
        Some("33221100554477668899AABBCCDDEEFF0")
    );
    assert_eq!(exe.size(), 0x555555600000 - 0x555555554000);
    assert_eq!(modules.iter().count(), 2);

    let info: MinidumpCrashpadInfo = dump.get_stream().expect("crashpad info");
    let notes = &info.simple_annotations;
    assert_eq!(notes.get("crashguard.app").map(String::as_str), Some("svc"));
    assert_eq!(
        notes.get("crashguard.signature").map(String::as_str),
        Some("0123456789abcdef")
    );
    let crumbs = notes.get("crashguard.breadcrumbs").expect("breadcrumbs");
    assert_eq!(crumbs.lines().count(), 2);
    assert!(crumbs.ends_with("[tid 4325] parsing input"), "{crumbs}");
}

#[test]
fn reports_without_registers_are_refused() {
    let mut r = report();
    r.context = None;
    let err = crashguard_minidump::write_minidump(&r).expect_err("no context");
    assert!(matches!(err, crashguard_minidump::Error::NoContext { .. }));
    assert!(err.to_string().contains("fatal_signal"), "{err}");
}
