//! Minidump export of a native crash report (32 KiB of stack, 64 frames, 40 modules), side by
//! side with serialising the same report as JSON, which every report already pays when it is
//! stored: the ratio says what the minidump adds. Target: export ≤ 50 ms.

use crashguard_blackbox::Report;
use criterion::{Criterion, criterion_group, criterion_main};

fn report() -> Report {
    let stack: String = (0..32 * 1024).map(|i| format!("{:02x}", i % 251)).collect();
    let frames: Vec<String> = (0..64)
        .map(|i| {
            format!(
                r#"{{"ip":"{:#x}","module":"/srv/svc/bin/svc","offset":"{:#x}","build_id":"00112233445566778899aabbccddeeff01020304","symbol":"svc::frame_{i}","file":"src/lib.rs","line":{i}}}"#,
                0x5555_5556_0000u64 + i * 0x40,
                0x1_0000u64 + i * 0x40
            )
        })
        .collect();
    let modules: Vec<String> = (0..40u64)
        .map(|i| {
            format!(
                r#"{{"path":"/usr/lib/x86_64-linux-gnu/lib{i}.so","build_id":"{:040x}","start":"{:#x}","end":"{:#x}","bias":"{:#x}"}}"#,
                i + 1,
                0x7f00_0000_0000u64 + i * 0x100_0000,
                0x7f00_0000_0000u64 + i * 0x100_0000 + 0x20_0000,
                0x7f00_0000_0000u64 + i * 0x100_0000
            )
        })
        .collect();
    let crumbs: Vec<String> = (0..256)
        .map(|i| format!(r#"{{"at":"2026-01-01T00:00:0{}.000Z","thread":7,"message":"step {i} of a long job"}}"#, i % 10))
        .collect();
    let json = format!(
        r#"{{"schema_version":1,"app":"svc","pid":4321,"started_at":"2026-01-01T00:00:00.000Z",
        "ended_at":"2026-01-01T00:00:05.000Z","outcome":"fatal_signal","signature":"0123456789abcdef",
        "exit_code":139,"signal":{{"number":11,"name":"SIGSEGV","code":1,"code_name":"SEGV_MAPERR",
        "fault_address":"0x10","sender_pid":null,"sender_uid":null}},
        "thread":{{"tid":4325,"name":"worker"}},"stack_overflow":false,"panic":null,
        "backtrace":[{}],"breadcrumbs":[{}],"resources":null,"allocation":null,"shutdown":null,
        "threads":null,"detail":null,"verdict":null,
        "build_id":"00112233445566778899aabbccddeeff01020304","executable":"/srv/svc/bin/svc",
        "modules":[{}],"crashguard_version":"0.1.0",
        "context":{{"arch":"x86_64","registers":{{"rip":"0x555555560123","rsp":"0x7fffffffd000"}},
        "stack":{{"start":"0x7fffffffd000","len":32768,"bytes":"{stack}"}},
        "stack_low":null,"stack_high":null}}}}"#,
        frames.join(","),
        crumbs.join(","),
        modules.join(",")
    );
    serde_json::from_str(&json).expect("valid report")
}

fn bench(c: &mut Criterion) {
    let r = report();
    let mut g = c.benchmark_group("export");
    g.bench_function("minidump", |b| {
        b.iter(|| crashguard_minidump::write_minidump(std::hint::black_box(&r)))
    });
    g.bench_function("json_report (peer)", |b| {
        b.iter(|| serde_json::to_vec_pretty(std::hint::black_box(&r)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
