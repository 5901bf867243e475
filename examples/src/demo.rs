//! The README's main command: `cargo run -p crashguard-examples --bin demo`.
//!
//! The demo runs a small worker service (`demo/service.rs`) twice in child processes:
//!
//! 1. The service installs crashguard, dispatches jobs to two worker threads, records
//!    breadcrumbs, and dies for real of SIGSEGV when a worker writes through a pointer into a
//!    cache that was never allocated. The demo prints the wait status.
//! 2. The service is restarted on the same report directory; it reads its black box and prints
//!    what the previous run died of: signal, code, fault address, thread, the symbolized frames
//!    of the crash, and the last breadcrumbs. It then does clean work and exits 0.
//! 3. The demo prints `crashguard explain` for the status the crash produced.
//!
//! It exits 0 when that whole story happened, and 1 when any part of it did not (the service
//! did not crash, or the restarted service found no report), so it doubles as a test.
//!
//! `demo [--report-dir DIR]`: the report directory defaults to a fresh one under the temporary
//! directory and is kept, so `crashguard show DIR` can be tried on it afterwards.
//! `demo service --report-dir DIR [--crash]` is the service itself.

// The service and its report printer live under `demo/`; `src/service.rs` is another example.
#[path = "demo/describe.rs"]
mod describe;
#[path = "demo/service.rs"]
mod service;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report_dir = args
        .iter()
        .position(|a| a == "--report-dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    if args.first().map(String::as_str) == Some("service") {
        let Some(dir) = report_dir else {
            eprintln!("usage: demo service --report-dir DIR [--crash]");
            return ExitCode::from(64);
        };
        return service::run(&dir, args.iter().any(|a| a == "--crash"));
    }
    let dir = report_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("crashguard-demo-{}", std::process::id()))
    });
    match story(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            println!("\nThe demo did not go as planned: {why}");
            ExitCode::FAILURE
        }
    }
}

fn story(dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the demo binary: {e}"))?;
    println!("crashguard demo: a worker service that crashes for real, restarts, and says why");
    println!("report directory: {}", dir.display());

    println!("\n[1/3] starting the service; one of its jobs has a memory bug");
    let status = run_service(&exe, dir, true)?;
    let Some(signal) = status.signal() else {
        return Err(format!("the service should have crashed, but it {status}"));
    };
    let code = 128 + signal;
    let explanation = crashguard::explain::explain(u8::try_from(code).unwrap_or(u8::MAX));
    let name = explanation
        .signal
        .as_ref()
        .map_or_else(|| "an unknown signal".to_owned(), |s| s.name.clone());
    println!(
        "      the service was killed by signal {signal} ({name}); a shell or an orchestrator shows exit status {code}"
    );

    println!("\n[2/3] restarting the service on the same report directory");
    let status = run_service(&exe, dir, false)?;
    if !status.success() {
        return Err(format!(
            "the restarted service did not report its previous run's crash ({status})"
        ));
    }
    println!("      the restarted service exited cleanly ({status})");

    println!("\n[3/3] crashguard explain {code}");
    for line in explanation.to_string().lines() {
        println!("      {line}");
    }

    println!("\nThe report is kept; look at it with the CLI:");
    println!("  cargo run -p crashguard-cli -- show {}", dir.display());
    Ok(())
}

/// Runs the service as a child, relaying its output with a prefix, and returns its status.
fn run_service(exe: &Path, dir: &Path, crash: bool) -> Result<ExitStatus, String> {
    let mut cmd = Command::new(exe);
    cmd.arg("service").arg("--report-dir").arg(dir);
    if crash {
        cmd.arg("--crash");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the service: {e}"))?;
    let relays = [
        child.stdout.take().map(|s| relay(s, "  service | ")),
        child.stderr.take().map(|s| relay(s, "  service ! ")),
    ];
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the service: {e}"))?;
    for r in relays.into_iter().flatten() {
        let _ = r.join();
    }
    Ok(status)
}

/// Prints every line of `stream` with `prefix`, on a thread of its own.
fn relay(stream: impl Read + Send + 'static, prefix: &'static str) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            println!("{prefix}{line}");
        }
    })
}
