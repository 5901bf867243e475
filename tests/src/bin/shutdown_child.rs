//! The child of the shutdown end-to-end tests (`tests/tests/shutdown_*.rs`): installs
//! crashguard, prints the previous run's report as `PREVIOUS <json>`, then plays one scenario.
//! It talks to the test through stdout lines (`READY`, `HOOK <name> ...`) and stdin lines
//! (`FINISH`), so the test never has to guess how long something takes.
//!
//! Usage: `crashguard-shutdown-child REPORT_DIR SCENARIO`. Every scenario writes its
//! termination message to `REPORT_DIR/termination-log`.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use crashguard::{CleanExit, Config, PanicPolicy, TerminationLog};

/// What the scenarios print; one line each, flushed at the newline (stdout is line-buffered).
macro_rules! say {
    ($($t:tt)*) => { println!($($t)*) };
}

/// Blocks until the test writes a line on stdin (or closes it).
fn wait_for_stdin() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn base(dir: &str) -> Config {
    Config::new("shutdown-child")
        .report_dir(dir)
        .termination_log(TerminationLog::Path(
            std::path::Path::new(dir).join("termination-log"),
        ))
}

fn install(config: Config) -> crashguard::Guard {
    match config.install() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("install failed: {e}");
            std::process::exit(66);
        }
    }
}

fn print_previous(guard: &crashguard::Guard) {
    let previous = guard
        .previous_run()
        .map(|r| serde_json::to_string(r).unwrap_or_default());
    say!("PREVIOUS {}", previous.unwrap_or_else(|| "null".into()));
}

/// Registers a hook that prints `HOOK <name>` when it runs.
fn printing_hook(guard: &crashguard::Guard, name: &'static str) {
    guard.on_shutdown(name, move || say!("HOOK {name}"));
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and so in every thread it
/// creates from now on); returns the previous mask.
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset and sigaddset initialise it; pthread_sigmask
    // only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

fn sigterm_pending() -> bool {
    // SAFETY: sigpending fills the set; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGTERM) == 1
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(scenario)) = (args.next(), args.next()) else {
        eprintln!("usage: crashguard-shutdown-child REPORT_DIR SCENARIO");
        return ExitCode::from(64);
    };
    match scenario.as_str() {
        // Only reads the previous run's report.
        "report" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            guard.shutdown(crashguard::ExitCode::Ok)
        }
        // A hook that never returns: the grace period ends the process with 82.
        "hang" => {
            let guard = install(base(&dir).shutdown_grace(Duration::from_millis(1500)));
            print_previous(&guard);
            printing_hook(&guard, "first");
            guard.on_shutdown("wedged", || {
                say!("HOOK wedged");
                loop {
                    std::thread::park();
                }
            });
            printing_hook(&guard, "never");
            say!("READY");
            guard.shutdown_signal().wait();
            park_forever()
        }
        // A hook over its own timeout is abandoned; the next one runs and the shutdown ends
        // in time.
        "hook-timeout" => {
            let guard = install(base(&dir).hook_timeout(Duration::from_millis(300)));
            print_previous(&guard);
            guard.on_shutdown("stuck", || {
                say!("HOOK stuck");
                loop {
                    std::thread::park();
                }
            });
            printing_hook(&guard, "after");
            say!("READY");
            park_forever()
        }
        // A slow hook, for a second signal (83) or a storm. In `storm`, the main thread waits
        // in `ShutdownSignal::wait`, so it reads signals itself while it waits; in `slow` it
        // does not, and the coordinator reads them all.
        "slow" | "storm" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "first");
            guard.on_shutdown("drain", || {
                say!("HOOK drain start");
                wait_for_stdin();
                say!("HOOK drain end");
            });
            printing_hook(&guard, "last");
            say!("READY");
            if scenario == "storm" {
                guard.shutdown_signal().wait();
                // Waiting made main the owner of the drain: the process ends once main is
                // done and the hooks are.
                end_of_main(guard)
            }
            park_forever()
        }
        // Workers poll with `wait_timeout`, entering and leaving the wait all the time; the
        // signal must reach the coordinator whatever phase they are in.
        "poll" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "only");
            let (seen_tx, seen_rx) = mpsc::channel::<()>();
            for id in 0..3 {
                let shutdown = guard.shutdown_signal();
                let seen = seen_tx.clone();
                let spawned = crashguard::thread::Builder::new()
                    .name(format!("poller-{id}"))
                    .spawn(move || {
                        let mut rounds = 0u64;
                        while shutdown.wait_timeout(Duration::from_millis(2)).is_none() {
                            rounds += 1;
                            if rounds == 3 {
                                say!("POLLING {id}");
                            }
                        }
                        let _ = seen.send(());
                    });
                if spawned.is_err() {
                    return ExitCode::from(65);
                }
            }
            // The pollers listen, so the application owns the drain: main ends it once one of
            // them has seen the request.
            let _ = seen_rx.recv();
            end_of_main(guard)
        }
        // The shell convention: a completed shutdown after SIGTERM exits 143.
        "signal-convention" => {
            let guard = install(base(&dir).clean_exit(CleanExit::SignalConvention));
            print_previous(&guard);
            printing_hook(&guard, "only");
            say!("READY");
            park_forever()
        }
        // A SIGTERM sent before install() is acted on once the handlers are in place.
        "early" => {
            let old = block_termination_signals();
            say!("BLOCKED");
            // The test sends SIGTERM now; it stays pending while it is blocked.
            while !sigterm_pending() {
                std::thread::yield_now();
            }
            let guard = install(base(&dir));
            print_previous(&guard);
            let shutdown = guard.shutdown_signal();
            let (observed_tx, observed_rx) = mpsc::channel::<()>();
            guard.on_shutdown("after-install", move || {
                // Runs only once main has seen the request, so the order is fixed.
                let _ = observed_rx.recv_timeout(Duration::from_secs(30));
                say!("HOOK after-install");
            });
            say!("INSTALLED requested={}", shutdown.is_requested());
            // SAFETY: restores the mask saved above for this thread.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            let request = shutdown.wait();
            say!("OBSERVED {}", request.reason);
            let _ = observed_tx.send(());
            end_of_main(guard)
        }
        "panic-main" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "cleanup");
            say!("READY");
            panic!("boom on main");
        }
        "panic-worker" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            let (observed_tx, observed_rx) = mpsc::channel::<()>();
            guard.on_shutdown("cleanup", move || {
                // Runs once main has printed what it saw, so the process cannot end first.
                let _ = observed_rx.recv_timeout(Duration::from_secs(30));
                say!("HOOK cleanup");
            });
            let worker = crashguard::thread::Builder::new()
                .name("worker".into())
                .spawn(|| {
                    panic!("boom on worker");
                });
            if worker.is_err() {
                return ExitCode::from(65);
            }
            let request = guard.shutdown_signal().wait();
            say!("OBSERVED {}", request.reason);
            let _ = observed_tx.send(());
            end_of_main(guard)
        }
        // PanicPolicy::Unwind: the panic is recorded, the process goes on and exits 0.
        "unwind" => {
            let guard = install(base(&dir).panic_policy(PanicPolicy::Unwind));
            print_previous(&guard);
            let worker = crashguard::thread::Builder::new()
                .name("worker".into())
                .spawn(|| {
                    panic!("boom on worker");
                });
            let Ok(worker) = worker else {
                return ExitCode::from(65);
            };
            say!("JOINED panicked={}", worker.join().is_err());
            say!("REQUESTED {}", guard.shutdown_signal().is_requested());
            drop(guard);
            ExitCode::SUCCESS
        }
        // What `panic = "abort"` does under PanicPolicy::Unwind, without a second build of
        // this binary: a panic hook installed before crashguard's aborts, as std would right
        // after the hooks. crashguard's hook has recorded the panic by then, so the SIGABRT
        // report carries it.
        "abort-after-panic" => {
            std::panic::set_hook(Box::new(|_| std::process::abort()));
            let guard = install(base(&dir).panic_policy(PanicPolicy::Unwind));
            print_previous(&guard);
            panic!("boom before abort");
        }
        // guard.exit() runs the hooks, then exits with the code.
        "exit" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "one");
            printing_hook(&guard, "two");
            guard.exit(crashguard::ExitCode::Ok)
        }
        // A hook that panics is recorded by name; the next one still runs, the exit code is
        // the request's.
        "hook-panics" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            guard.on_shutdown("bad", || panic!("hook failed"));
            printing_hook(&guard, "good");
            guard.exit(crashguard::ExitCode::Ok)
        }
        // guard.shutdown() runs the hooks and returns, so main's destructors still run.
        "shutdown-code" => {
            struct Local;
            impl Drop for Local {
                fn drop(&mut self) {
                    say!("DROPPED local");
                }
            }
            let _local = Local;
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "one");
            let code = guard.shutdown(crashguard::ExitCode::MemoryBudget);
            say!("RETURNING");
            code
        }
        // A hook that calls guard.exit(): the hook ends, the next one runs, the code is the
        // hook's.
        "exit-in-hook" => {
            let guard = std::sync::Arc::new(install(base(&dir)));
            print_previous(&guard);
            let weak = std::sync::Arc::downgrade(&guard);
            guard.on_shutdown("exiting", move || {
                say!("HOOK exiting");
                if let Some(g) = weak.upgrade() {
                    g.exit(crashguard::ExitCode::ThreadBudget);
                }
            });
            printing_hook(&guard, "after");
            guard.request_shutdown("scenario exit-in-hook");
            park_forever()
        }
        // The application owns the drain: main listens, drains until the test says so (a line
        // on stdin), and returns; the hooks finish long before that and must not end the
        // process. `drain-overdue` never finishes its drain: the grace period ends it.
        "drain" | "drain-overdue" => {
            let mut config = base(&dir);
            if scenario == "drain-overdue" {
                config = config.shutdown_grace(Duration::from_millis(1500));
            }
            let guard = install(config);
            print_previous(&guard);
            printing_hook(&guard, "quick");
            let shutdown = guard.shutdown_signal();
            // Listening starts with the first listening call; `wait()` below comes only after
            // READY, and a SIGTERM may arrive before it, so take the drain over first.
            let _ = shutdown.receiver();
            say!("READY");
            let request = shutdown.wait();
            say!("DRAINING {}", request.reason);
            if scenario == "drain-overdue" {
                park_forever()
            }
            wait_for_stdin();
            say!("DRAINED");
            end_of_main(guard)
        }
        // Work in flight holds the exit back: the application does not listen, a worker holds
        // the exit until the test releases it.
        "hold" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "quick");
            let hold = guard.shutdown_signal().hold();
            let worker = crashguard::thread::Builder::new()
                .name("in-flight".into())
                .spawn(move || {
                    wait_for_stdin();
                    say!("RELEASED");
                    drop(hold);
                });
            if worker.is_err() {
                return ExitCode::from(65);
            }
            say!("READY");
            park_forever()
        }
        // A tokio task panics. Under `Unwind` the runtime isolates it and the service goes on
        // (then stops on SIGTERM); under `ExitAfterUnwind` the panic ends the process with 70,
        // and main's drain (it listens) runs without waiting for a parked worker.
        "task-panic-unwind" | "task-panic-exit" => {
            let policy = if scenario == "task-panic-unwind" {
                PanicPolicy::Unwind
            } else {
                PanicPolicy::ExitAfterUnwind
            };
            let guard = install(base(&dir).panic_policy(policy));
            print_previous(&guard);
            printing_hook(&guard, "cleanup");
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("rt-worker")
                .build()
            else {
                return ExitCode::from(65);
            };
            // Main listens from the start: it owns the drain.
            let stop = guard.shutdown_signal().wait_async();
            let (failed, next) = rt.block_on(async {
                let failed = tokio::spawn(async { task_that_panics() }).await;
                // The runtime keeps serving tasks after the panic.
                let next = tokio::spawn(async { 7 }).await;
                (failed.is_err(), next.ok())
            });
            say!(
                "JOINED panicked={failed} next={next:?} count={}",
                guard.panic_count()
            );
            say!("READY");
            let request = rt.block_on(stop);
            say!("DRAINING {}", request.reason);
            drop(rt);
            end_of_main(guard)
        }
        // Under systemd (the test plays it with a datagram socket in NOTIFY_SOCKET): READY at
        // install, watchdog pings, STOPPING and EXTEND_TIMEOUT_USEC on SIGTERM.
        "systemd" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            printing_hook(&guard, "only");
            say!("READY");
            let request = guard.shutdown_signal().wait();
            say!("DRAINING {}", request.reason);
            end_of_main(guard)
        }
        // After the guard is dropped, SIGTERM gets the default action again.
        "drop" => {
            let guard = install(base(&dir));
            print_previous(&guard);
            drop(guard);
            say!("DROPPED");
            wait_for_stdin();
            ExitCode::from(3)
        }
        other => {
            eprintln!("unknown scenario {other}");
            ExitCode::from(64)
        }
    }
}

/// A tokio task's body that panics; the report's stack must start here.
#[inline(never)]
fn task_that_panics() {
    panic!("boom in a task");
}

/// What returning from `main` does during a shutdown: dropping the guard tells the coordinator
/// that the application's drain is over, and the coordinator ends the process once the hooks
/// are done too, with the shutdown's code.
fn end_of_main(guard: crashguard::Guard) -> ! {
    drop(guard);
    unreachable!("dropping the guard during a shutdown ends the process")
}

/// The main thread's part is over; the coordinator ends the process.
fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}
