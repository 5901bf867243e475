//! `crashguard show` of a 64-frame report, cold: every round is a fresh process, side by side with
//! GNU addr2line (`-f -i -C`) resolving the same 64 addresses in the same binary, and with the
//! minidump export of the same report. Rounds are interleaved (the order of the tools rotates
//! every round), every round is printed, then the medians and the ratios. Targets: `show` ≤ 100 ms,
//! export ≤ 50 ms.
//!
//! The 64 frames are the midpoints of 64 function symbols spread evenly over the binary's code,
//! so that they fall in as many compilation units as a real deep backtrace through many crates
//! (the worst case for a DWARF reader, which parses each unit a frame falls in).
//!
//! Environment:
//! - `SHOW_BENCH_BINARY`: the binary to symbolize (default: the CLI binary itself, built by the
//!   `bench` profile without DWARF; point it at a debug build to measure the realistic worst
//!   case, e.g. a copy of `target/debug/crashguard-child`).
//! - `SHOW_BENCH_BASELINE`: another `crashguard` binary (e.g. the previous commit's) to run as
//!   a third contender.
//! - `SHOW_BENCH_ROUNDS`: rounds (default 10).
//!
//! Wall time is noisy on a shared machine; the CPU time (user + system, from `wait4`) of each
//! process is printed next to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol, SymbolKind};

/// One contender: a name and the command line of a fresh process.
struct Tool {
    name: String,
    program: PathBuf,
    args: Vec<String>,
}

/// Wall and CPU time of one process run to completion.
#[derive(Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
}

fn run(tool: &Tool) -> Run {
    let start = Instant::now();
    // Reaped by wait4 below, which also gives the CPU time std's wait does not.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&tool.program)
        .args(&tool.args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", tool.program.display()));
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to a status word and a rusage that
    // live across the call; std's Child is not waited for afterwards (dropping it does not).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} failed: status {status:#x}",
        tool.name
    );
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// 64 module-relative addresses: the midpoints of function symbols spread evenly over `binary`.
fn addresses(binary: &Path) -> (Vec<u64>, String) {
    let bytes = std::fs::read(binary).expect("read the binary");
    let obj = object::File::parse(&*bytes).expect("parse the binary");
    let mut functions: Vec<(u64, u64)> = obj
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() >= 16)
        .map(|s| (s.address(), s.size()))
        .collect();
    functions.sort_unstable();
    functions.dedup_by_key(|f| f.0);
    assert!(functions.len() >= 64, "the binary has too few functions");
    let step = functions.len() / 64;
    let probes = (0..64)
        .map(|i| functions[i * step])
        .map(|(address, size)| address + size / 2)
        .collect();
    let build_id = obj
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
        .expect("the binary has a GNU build id");
    (probes, build_id)
}

/// A native-crash report whose backtrace is those 64 frames, with 32 KiB of stack for the
/// minidump.
fn report(binary: &Path, probes: &[u64], build_id: &str) -> String {
    let module = binary.display().to_string();
    let frames: Vec<String> = probes
        .iter()
        .map(|p| {
            format!(
                r#"{{"ip":"{:#x}","module":{module:?},"offset":"{p:#x}","build_id":"{build_id}"}}"#,
                0x5555_0000_0000u64 + p
            )
        })
        .collect();
    let stack: String = (0..32 * 1024).map(|i| format!("{:02x}", i % 251)).collect();
    format!(
        r#"{{"schema_version":1,"app":"bench","pid":4321,"started_at":"2026-01-01T00:00:00.000Z",
        "ended_at":"2026-01-01T00:00:05.000Z","outcome":"fatal_signal","signature":"0123456789abcdef",
        "exit_code":139,"signal":{{"number":11,"name":"SIGSEGV","code":1,"code_name":"SEGV_MAPERR",
        "fault_address":"0x10","sender_pid":null,"sender_uid":null}},
        "thread":{{"tid":4325,"name":"worker"}},"stack_overflow":false,"panic":null,
        "backtrace":[{}],"breadcrumbs":[],"resources":null,"allocation":null,"shutdown":null,
        "threads":null,"detail":null,"verdict":null,"build_id":"{build_id}","executable":{module:?},
        "modules":[{{"path":{module:?},"build_id":"{build_id}","start":"0x555500000000","bias":"0x555500000000"}}],
        "crashguard_version":"0.1.0",
        "context":{{"arch":"x86_64","registers":{{"rip":"{:#x}","rsp":"0x7fffffffd000"}},
        "stack":{{"start":"0x7fffffffd000","len":32768,"bytes":"{stack}"}},
        "stack_low":null,"stack_high":null}}}}"#,
        frames.join(","),
        0x5555_0000_0000u64 + probes[0]
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_crashguard"));
    let binary = std::env::var_os("SHOW_BENCH_BINARY").map_or_else(|| cli.clone(), PathBuf::from);
    let rounds: usize = std::env::var("SHOW_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let (probes, build_id) = addresses(&binary);
    let dir = std::env::temp_dir().join(format!("crashguard-show-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report_path = dir.join("report.json");
    std::fs::write(&report_path, report(&binary, &probes, &build_id)).expect("write report");
    let dump = dir.join("crash.dmp");

    let show = |name: &str, program: &Path| Tool {
        name: name.to_owned(),
        program: program.to_owned(),
        args: vec![
            "show".into(),
            "--binary".into(),
            binary.display().to_string(),
            report_path.display().to_string(),
        ],
    };
    let mut tools = vec![
        show("crashguard show", &cli),
        Tool {
            name: "GNU addr2line -f -i -C (peer)".into(),
            program: "addr2line".into(),
            args: ["-f", "-i", "-C", "-e"]
                .iter()
                .map(|s| s.to_string())
                .chain([binary.display().to_string()])
                .chain(probes.iter().map(|p| format!("{p:#x}")))
                .collect(),
        },
    ];
    if let Some(baseline) = std::env::var_os("SHOW_BENCH_BASELINE") {
        tools.push(show("baseline crashguard show", Path::new(&baseline)));
    }
    tools.push(Tool {
        name: "crashguard export --minidump".into(),
        program: cli.clone(),
        args: vec![
            "export".into(),
            "--minidump".into(),
            report_path.display().to_string(),
            "-o".into(),
            dump.display().to_string(),
        ],
    });

    // One look at what `show` says, so that a benchmark of a symbolizer that names nothing
    // cannot pass unnoticed.
    let out = Command::new(&cli)
        .args(&tools[0].args)
        .output()
        .expect("crashguard show");
    let text = String::from_utf8_lossy(&out.stdout);
    let named = text.lines().filter(|l| l.contains("     ")).count();
    println!(
        "binary {} ({:.1} MB), 64 frames, {named} lines of symbolized backtrace",
        binary.display(),
        std::fs::metadata(&binary).map_or(0.0, |m| m.len() as f64 / 1e6)
    );

    let mut results: Vec<Vec<Run>> = vec![Vec::new(); tools.len()];
    for round in 0..rounds {
        let mut line = format!("round {:2}:", round + 1);
        for k in 0..tools.len() {
            let i = (k + round) % tools.len();
            let r = run(&tools[i]);
            results[i].push(r);
            line.push_str(&format!(
                "  {} {} ms wall / {} ms cpu;",
                tools[i].name,
                ms(r.wall),
                ms(r.cpu)
            ));
        }
        println!("{line}");
    }
    let base_wall = median(results[0].iter().map(|r| r.wall).collect());
    let base_cpu = median(results[0].iter().map(|r| r.cpu).collect());
    println!("medians over {rounds} rounds:");
    for (tool, runs) in tools.iter().zip(&results) {
        let wall = median(runs.iter().map(|r| r.wall).collect());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        println!(
            "  {:32} {:>7} ms wall ({:.2}x of show)  {:>7} ms cpu ({:.2}x of show)",
            tool.name,
            ms(wall),
            wall.as_secs_f64() / base_wall.as_secs_f64(),
            ms(cpu),
            cpu.as_secs_f64() / base_cpu.as_secs_f64().max(1e-9)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
