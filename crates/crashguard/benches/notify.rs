//! kill() -> application notified, through the whole facade: the time from a `kill(pid,
//! SIGTERM)` in this process until a thread of the target process returns from
//! `ShutdownSignal::wait()`, side by side with signal-hook's iterator (forwarding into a
//! crossbeam channel, the usual way to use it from an application; also read directly on the
//! waiting thread) and the `ctrlc` crate, measured the same way in the same run.
//!
//! A crashguard shutdown happens once per process (it ends the process), so every sample is a
//! fresh child process: this bench re-executes itself as the child, which sets up one
//! mechanism, says `READY`, and prints the CLOCK_MONOTONIC time at which its waiting thread was
//! notified; this process reads the same clock just before `kill`. The mechanisms alternate
//! round by round so that drifting load on a shared machine hits them alike, and the ratios
//! compare medians of the same rounds. Each sample includes waking an idle process, as a real
//! `docker stop` does, so the figures are dominated by kernel delivery and wake-up rather than by
//! any mechanism's own code (see `docs/performance/shutdown.md`).
//!
//! More mechanisms compare async code on one runtime: crashguard's `wait_async()` awaited
//! on a current-thread tokio runtime, `wait_tokio()` (with `--features tokio`: the runtime's
//! reactor watches crashguard's signal pipe), and `tokio::signal::unix` on the same kind of
//! runtime.
//!
//! Run with `cargo bench -p crashguard --features tokio --bench notify` (`CG_NOTIFY_ROUNDS=N` to
//! change the 200 rounds). It prints p10s, medians, p90s, the ratios of medians, and the median
//! number of context switches the child's threads made between `kill` and the notification
//! (read from `/proc/<pid>/task/*/status` just before `kill` and by the child right after its
//! clock reading): a deterministic count of the wake-ups on the path.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The environment variable that turns this binary into a child.
const CHILD_ENV: &str = "CG_NOTIFY_CHILD";

#[derive(Clone, Copy, Debug)]
enum Mechanism {
    /// crashguard installed; the main thread waits in `ShutdownSignal::wait()`.
    Crashguard,
    /// `signal_hook::iterator::Signals` read on its own thread, forwarded into a channel.
    SignalHookForwarded,
    /// `signal_hook::iterator::Signals` read on the waiting thread itself (one thread, nothing
    /// else to do: the lower bound of any design that leaves the handler).
    SignalHookDirect,
    /// `ctrlc::set_handler` sending into a channel (ctrlc handles SIGINT).
    Ctrlc,
    /// crashguard installed; a current-thread tokio runtime awaits
    /// `ShutdownSignal::wait_async()`.
    CrashguardAsync,
    /// `tokio::signal::unix::signal(SignalKind::terminate())` on the same kind of runtime.
    TokioSignal,
    /// crashguard installed; the same runtime awaits `ShutdownSignal::wait_tokio()`.
    #[cfg(feature = "tokio")]
    CrashguardTokio,
}

const ALL: &[Mechanism] = &[
    Mechanism::Crashguard,
    Mechanism::SignalHookForwarded,
    Mechanism::SignalHookDirect,
    Mechanism::Ctrlc,
    Mechanism::CrashguardAsync,
    Mechanism::TokioSignal,
    #[cfg(feature = "tokio")]
    Mechanism::CrashguardTokio,
];

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Crashguard => "crashguard_shutdown_signal",
            Mechanism::SignalHookForwarded => "signal_hook_iterator",
            Mechanism::SignalHookDirect => "signal_hook_iterator_direct",
            Mechanism::Ctrlc => "ctrlc",
            Mechanism::CrashguardAsync => "crashguard_wait_async",
            Mechanism::TokioSignal => "tokio_signal_unix",
            #[cfg(feature = "tokio")]
            Mechanism::CrashguardTokio => "crashguard_wait_tokio",
        }
    }

    fn signal(self) -> i32 {
        match self {
            Mechanism::Ctrlc => libc::SIGINT,
            _ => libc::SIGTERM,
        }
    }

    fn from_name(name: &str) -> Option<Mechanism> {
        ALL.iter().copied().find(|m| m.name() == name)
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The child: set up `m`, say READY, wait, print the time of notification.
fn child(m: Mechanism) {
    let ready = || {
        println!("READY");
        let _ = std::io::stdout().flush();
    };
    let notified = |at: u64| {
        // Read after the clock, so the reading costs the sample nothing.
        let switches = context_switches("/proc/self/task");
        println!("T {at} {switches}");
        let _ = std::io::stdout().flush();
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    match m {
        Mechanism::CrashguardAsync => {
            let dir = std::env::temp_dir().join(format!("cg-notify-bench-{}", std::process::id()));
            let guard = crashguard::Config::new("notify-bench")
                .report_dir(&dir)
                .symbolize_previous_run(false)
                .previous_run_to_stderr(false)
                .install()
                .expect("install");
            let rt = runtime();
            let wait = guard.shutdown_signal().wait_async();
            ready();
            rt.block_on(wait);
            notified(monotonic_ns());
            let _ = std::fs::remove_dir_all(&dir);
            guard.exit(crashguard::ExitCode::Ok)
        }
        #[cfg(feature = "tokio")]
        Mechanism::CrashguardTokio => {
            let dir = std::env::temp_dir().join(format!("cg-notify-bench-{}", std::process::id()));
            let guard = crashguard::Config::new("notify-bench")
                .report_dir(&dir)
                .symbolize_previous_run(false)
                .previous_run_to_stderr(false)
                .install()
                .expect("install");
            let rt = runtime();
            let shutdown = guard.shutdown_signal();
            // The first poll registers the pipe with the reactor, as `tokio::signal::unix::signal`
            // registers its own before the peer says READY.
            let mut wait = std::pin::pin!(shutdown.wait_tokio());
            rt.block_on(async {
                let _ = futures_poll_once(wait.as_mut()).await;
            });
            ready();
            rt.block_on(wait);
            notified(monotonic_ns());
            let _ = std::fs::remove_dir_all(&dir);
            guard.exit(crashguard::ExitCode::Ok)
        }
        Mechanism::TokioSignal => {
            let rt = runtime();
            let mut term = rt
                .block_on(async {
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                })
                .expect("tokio signal");
            ready();
            rt.block_on(term.recv());
            notified(monotonic_ns());
        }
        Mechanism::Crashguard => {
            let dir = std::env::temp_dir().join(format!("cg-notify-bench-{}", std::process::id()));
            let guard = crashguard::Config::new("notify-bench")
                .report_dir(&dir)
                .symbolize_previous_run(false)
                .previous_run_to_stderr(false)
                .install()
                .expect("install");
            // The shutdown would end the process at once; hold it until the time is printed.
            let (printed_tx, printed_rx) = crossbeam_channel::bounded::<()>(1);
            guard.on_shutdown("wait for the report", move || {
                let _ = printed_rx.recv_timeout(Duration::from_secs(10));
            });
            let shutdown = guard.shutdown_signal();
            ready();
            shutdown.wait();
            let at = monotonic_ns();
            notified(at);
            let _ = std::fs::remove_dir_all(&dir);
            let _ = printed_tx.send(());
            guard.exit(crashguard::ExitCode::Ok)
        }
        Mechanism::SignalHookForwarded => {
            let mut signals =
                signal_hook::iterator::Signals::new([libc::SIGTERM]).expect("signal-hook");
            let (tx, rx) = crossbeam_channel::unbounded();
            std::thread::spawn(move || {
                for s in signals.forever() {
                    if tx.send(s).is_err() {
                        return;
                    }
                }
            });
            ready();
            rx.recv().expect("notified");
            notified(monotonic_ns());
        }
        Mechanism::SignalHookDirect => {
            let mut signals =
                signal_hook::iterator::Signals::new([libc::SIGTERM]).expect("signal-hook");
            ready();
            signals.forever().next();
            notified(monotonic_ns());
        }
        Mechanism::Ctrlc => {
            let (tx, rx) = crossbeam_channel::unbounded();
            ctrlc::set_handler(move || {
                let _ = tx.send(());
            })
            .expect("ctrlc");
            ready();
            rx.recv().expect("notified");
            notified(monotonic_ns());
        }
    }
}

/// Polls `fut` once and returns whether it was ready.
#[cfg(feature = "tokio")]
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> bool {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut fut).poll(cx).is_ready())
    })
    .await
}

/// Context switches of every thread of a process so far (`voluntary_ctxt_switches` plus
/// `nonvoluntary_ctxt_switches` of each task under `task_dir`): a count of the wake-ups on the
/// way from `kill` to the notification that no load can make faster or slower.
fn context_switches(task_dir: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(task_dir) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Waits (at most a second) until every thread of `pid` sleeps, so that each sample measures
/// waking an idle process — what a `docker stop` meets — rather than catching a thread that
/// happens to be still on a CPU after saying READY.
fn wait_until_idle(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let task_dir = format!("/proc/{pid}/task");
    while std::time::Instant::now() < deadline {
        let Ok(tasks) = std::fs::read_dir(&task_dir) else {
            return;
        };
        let all_asleep = tasks.filter_map(Result::ok).all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('S'))
                })
                .unwrap_or(true)
        });
        if all_asleep {
            return;
        }
        std::thread::yield_now();
    }
}

/// One sample: spawn a child for `m`, signal it once READY; kill -> notified in ns, and the
/// context switches of the child's threads in between.
fn sample(m: Mechanism) -> (u64, u64) {
    let exe = std::env::current_exe().expect("own path");
    let mut c = Command::new(exe)
        .env(CHILD_ENV, m.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut lines = BufReader::new(c.stdout.take().expect("piped")).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("READY"), "{} child", m.name());
    wait_until_idle(c.id());
    let before = context_switches(&format!("/proc/{}/task", c.id()));
    let sent = monotonic_ns();
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    unsafe { libc::kill(c.id() as i32, m.signal()) };
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let mut fields = line
        .strip_prefix("T ")
        .unwrap_or_else(|| panic!("{} child said {line:?}", m.name()))
        .split(' ')
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let at = fields.next().unwrap_or(0);
    let after = fields.next().unwrap_or(0);
    let status = c.wait().expect("wait");
    assert!(status.success(), "{} child ended with {status}", m.name());
    (at.saturating_sub(sent), after.saturating_sub(before))
}

fn main() {
    if let Some(m) = std::env::var(CHILD_ENV)
        .ok()
        .and_then(|n| Mechanism::from_name(&n))
    {
        child(m);
        return;
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`, `--all-targets`)
    // one round proves the bench works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if smoke {
        1
    } else {
        std::env::var("CG_NOTIFY_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(200)
    };
    // One unmeasured round first: page cache, dynamic loader, first-fork costs.
    for &m in ALL {
        let _ = sample(m);
    }
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(rounds); ALL.len()];
    let mut switches: Vec<Vec<u64>> = vec![Vec::with_capacity(rounds); ALL.len()];
    for _ in 0..rounds {
        for (i, &m) in ALL.iter().enumerate() {
            let (ns, cs) = sample(m);
            samples[i].push(ns);
            switches[i].push(cs);
        }
    }
    println!("kill -> notified, one fresh process per sample, {rounds} interleaved rounds (µs):");
    println!(
        "  {:<30} {:>9} {:>9} {:>9} {:>9}",
        "mechanism", "p10", "median", "p90", "switches"
    );
    let mut medians = Vec::new();
    for (i, v) in samples.iter_mut().enumerate() {
        v.sort_unstable();
        let median = v[v.len() / 2];
        let p90 = v[(v.len() * 9 / 10).min(v.len() - 1)];
        let p10 = v[v.len() / 10];
        medians.push(median);
        let cs = &mut switches[i];
        cs.sort_unstable();
        println!(
            "  {:<30} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            ALL[i].name(),
            p10 as f64 / 1e3,
            median as f64 / 1e3,
            p90 as f64 / 1e3,
            cs[cs.len() / 2]
        );
    }
    let median = |m: Mechanism| {
        ALL.iter()
            .position(|&x| x.name() == m.name())
            .map_or(1.0, |i| medians[i].max(1) as f64)
    };
    let ratio = |what: &str, a: Mechanism, b: Mechanism| {
        println!("  ratio {what:<52} {:.2}", median(a) / median(b));
    };
    ratio(
        "crashguard wait() / ctrlc:",
        Mechanism::Crashguard,
        Mechanism::Ctrlc,
    );
    ratio(
        "crashguard wait() / signal_hook_iterator:",
        Mechanism::Crashguard,
        Mechanism::SignalHookForwarded,
    );
    ratio(
        "crashguard wait_async / tokio::signal::unix:",
        Mechanism::CrashguardAsync,
        Mechanism::TokioSignal,
    );
    #[cfg(feature = "tokio")]
    ratio(
        "crashguard wait_tokio / tokio::signal::unix:",
        Mechanism::CrashguardTokio,
        Mechanism::TokioSignal,
    );
}
