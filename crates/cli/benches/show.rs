//! `crashguard show` of a 64-frame report, cold: a fresh symbolizer each round, so every module
//! (this benchmark's own binary with its full debug information, and libc with its detached
//! debug file when installed) is opened and its DWARF loaded again, then the report rendered.
//! The peer is GNU addr2line resolving the same 64 addresses in one process (`-f -i -C`),
//! spawned each round. Target: ≤ 100 ms.

use std::process::Command;

use crashguard_blackbox::{Frame, Report, modules};
use crashguard_cli::backtrace::{Options, resolve};
use criterion::{Criterion, criterion_group, criterion_main};

#[inline(never)]
fn deep(n: u32, out: &mut Vec<u64>) {
    if n == 0 {
        backtrace::trace(|f| {
            out.push(f.ip() as u64);
            true
        });
    } else {
        deep(std::hint::black_box(n - 1), out);
    }
}

/// A report whose backtrace is 64 real frames of this process.
fn report() -> Report {
    let mut ips = Vec::new();
    deep(80, &mut ips);
    let table = modules::loaded();
    let backtrace: Vec<Frame> = ips
        .iter()
        .filter_map(|&ip| {
            let (_, m) = modules::find(&table, ip)?;
            // Frame is #[non_exhaustive]: filled field by field.
            let mut f = Frame::default();
            f.ip = format!("{ip:#x}");
            f.module = Some(modules::path_of(m));
            f.offset = Some(format!("{:#x}", ip - m.bias));
            f.build_id = Some(modules::build_id_hex(m)).filter(|b| !b.is_empty());
            Some(f)
        })
        .take(64)
        .collect();
    assert_eq!(backtrace.len(), 64);
    let json = r#"{"schema_version":1,"app":"bench","pid":1,"started_at":"2026-01-01T00:00:00.000Z",
        "ended_at":null,"outcome":"fatal_signal","exit_code":139,"signal":null,"thread":null,
        "stack_overflow":false,"panic":null,"backtrace":[],"breadcrumbs":[],"resources":null,
        "allocation":null,"shutdown":null,"threads":null,"detail":null,"verdict":null,
        "build_id":null,"executable":null,"modules":[],"crashguard_version":"0.1.0"}"#;
    let mut r: Report = serde_json::from_str(json).expect("valid report");
    r.executable = backtrace.first().and_then(|f| f.module.clone());
    r.backtrace = backtrace;
    r
}

fn bench(c: &mut Criterion) {
    let r = report();
    let exe = r.executable.clone().expect("executable");
    let probes: Vec<String> = r
        .backtrace
        .iter()
        .filter(|f| f.module.as_deref() == Some(exe.as_str()))
        .filter_map(|f| f.offset.clone())
        .collect();
    let mut g = c.benchmark_group("show_64_frames_cold");
    g.sample_size(10);
    g.bench_function("crashguard", |b| {
        b.iter(|| {
            let bt = resolve(&r, &Options::default());
            crashguard_cli::render::report(std::path::Path::new("bench.json"), &r, None, &bt)
        })
    });
    g.bench_function("gnu_addr2line (peer, executable frames only)", |b| {
        b.iter(|| {
            Command::new("addr2line")
                .args(["-f", "-i", "-C", "-e", &exe])
                .args(&probes)
                .output()
                .expect("addr2line")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
