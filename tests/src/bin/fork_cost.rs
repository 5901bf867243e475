//! The workload of the fork benchmark (`benches/fork.rs`, docs/performance.md): what making a
//! forked child safe for the parent's black box costs each `fork`.
//!
//! `fork-cost MODE N [REPORT_DIR]`: `plain` forks without crashguard; `threads` forks without
//! crashguard from a process shaped like a guarded one (four more threads, parked, each with
//! its own stack mapping); `guarded` installs crashguard into `REPORT_DIR` first, so every fork
//! also runs the child's fork handler (the box mapping is `MADV_DONTFORK`; the handler maps
//! private memory in its place and closes the slot descriptor). Each of the `N` rounds forks a child that exits at once and reaps it;
//! prints `median_ns <n>` (wall time of one fork → `_exit` → `waitpid`) on stdout.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: fork-cost plain|threads|guarded N [REPORT_DIR]");
        return ExitCode::from(64);
    };
    let _guard = match (mode.as_str(), args.get(2)) {
        ("plain", _) => None,
        ("threads", _) => {
            // Parked for the whole run: they only give the process a guarded one's shape.
            for _ in 0..4 {
                std::thread::spawn(std::thread::park);
            }
            None
        }
        ("guarded", Some(dir)) => match crashguard::Config::new("fork-cost")
            .report_dir(dir)
            .symbolize_previous_run(false)
            .install()
        {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("fork-cost: install: {e}");
                return ExitCode::from(66);
            }
        },
        _ => {
            eprintln!("usage: fork-cost plain|threads|guarded N [REPORT_DIR]");
            return ExitCode::from(64);
        }
    };
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        // SAFETY: the child calls only `_exit`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once, without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            eprintln!("fork-cost: fork: {}", std::io::Error::last_os_error());
            return ExitCode::from(71);
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid out-parameter.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            eprintln!("fork-cost: child {pid} ended with status {status}");
            return ExitCode::from(71);
        }
        times.push(start.elapsed().as_nanos());
    }
    times.sort_unstable();
    println!("median_ns {}", times.get(n / 2).copied().unwrap_or(0));
    ExitCode::SUCCESS
}
