//! The child of the budget tests (`tests/budget_*.rs`): one memory or thread scenario per run.
//!
//! `crashguard-budget-child REPORT_DIR SCENARIO [ARG]` installs crashguard into `REPORT_DIR`
//! (app name `budget-child`) with the budget the scenario needs, prints what it found of the
//! previous run, and then runs the scenario. `BudgetAllocator` is this binary's global
//! allocator in every scenario, as a service that wants exact heap accounting would have it.
//! Core dumps are switched off first thing, so that the aborts of the memory scenarios do not
//! write cores.
//!
//! Lines on stdout, one per fact, so that the tests can synchronise on them:
//!
//! - `PREVIOUS <report json | null>` and `INSTALLED <json>`, as the crash child prints them.
//! - `INSTALL_ERROR <message chain>`: `install()` failed (exit status 66).
//! - `ALLOCATING <chunk bytes>`: a memory scenario starts allocating.
//! - `LIMIT <bytes>`: the `RLIMIT_AS` the child set on itself.
//! - `READY <json>`: a heartbeat showed the usage the scenario was after; the child now blocks
//!   on stdin until it is killed or stdin closes.
//! - `SPAWNED <n>`: guarded threads started before a spawn failed.
//! - `SPAWN_ERROR <json>`: the failed spawn: `kind` (`budget`, `os` or `other`), `display`
//!   (the whole multi-line `Display`), `summary`.
//! - `RESULT <text>`: something that should not have happened did (exit status 1).
//!
//! Scenarios:
//!
//! - `none`: exit cleanly (the restart that reads the previous run's report).
//! - `mem-budget`: a 64 MiB budget; allocate and touch 1 MiB chunks until stopped.
//! - `mem-rlimit-as`: no budget; set `RLIMIT_AS` to `VmSize` + 256 MiB, then allocate 8 MiB
//!   chunks until the kernel refuses.
//! - `mem-graceful`: a 64 MiB budget sampled every 10 ms; grow the heap by 1 MiB every 10 ms
//!   while listening for the shutdown, print `SOFT <status json>` from the soft callback and
//!   `STATUS <json>` before and after, `DRAINING <reason>` when the shutdown comes.
//! - `mem-try-reserve-abort`: a 64 MiB budget; a `try_reserve` of 128 MiB is refused (`Err`),
//!   the child prints `REFUSED` (which allocates) and then calls `abort()`: SIGABRT, not the
//!   memory budget.
//! - `mem-refused-elsewhere-abort`: a 64 MiB budget; another thread is refused a `try_reserve`
//!   and then waits without allocating; the main thread calls `abort()`: SIGABRT.
//! - `mem-fill PERCENT`: a 64 MiB budget; hold PERCENT% of it in live heap, wait for a
//!   heartbeat that shows it, print `READY`, block.
//! - `threads-error`: a budget of 20 threads; spawn `leaky-N` threads that never end until a
//!   spawn fails; exit 0.
//! - `threads-exit`: the same under `ThreadPolicy::Exit`, with the budget also counting the
//!   process's own threads; after the failed spawn, wait for the shutdown that follows.
//! - `threads-outside`: a budget of 20 threads under `ThreadPolicy::Exit`; start 24 `outside-N`
//!   threads through plain `std::thread`, print `READY`, wait for the sampler's shutdown.
//! - `threads-nproc [UID]`: no budget; set `RLIMIT_NPROC` a few tasks above the current thread
//!   count and become `UID` (which must own no other task; for a root parent), or, without
//!   `UID`, a few tasks above what this user has now; spawn `leaky-N` until the OS refuses.
//! - `threads-rlimit-as`: no budget; set `RLIMIT_AS` a few thread stacks above `VmSize`, spawn
//!   `leaky-N` until the OS refuses.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use crashguard_tests::child_protocol::{install_and_announce, say};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: crashguard::BudgetAllocator<std::alloc::System> =
    crashguard::BudgetAllocator::new(std::alloc::System);

const MIB: u64 = 1 << 20;
/// The memory budget of the memory scenarios.
const BUDGET: u64 = 64 * MIB;
/// The thread budget of the thread scenarios.
const THREADS: usize = 20;
/// Spawns tried before a scenario gives up on ever being refused.
const MAX_SPAWNS: usize = 200;
/// How long a scenario waits for something it started itself (a heartbeat, a thread).
const WAIT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    no_core_dumps();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(scenario)) = (args.first(), args.get(1)) else {
        eprintln!("usage: crashguard-budget-child REPORT_DIR SCENARIO [ARG]");
        return ExitCode::from(64);
    };
    let arg = args.get(2).map(String::as_str);
    // Threads started outside the guard, all running (and so named) before crashguard is
    // installed: the thread sampler's first sample already sees the whole group, and the
    // census in the report cannot catch a thread that still carries its parent's name.
    if scenario == "threads-outside" {
        if let Err(code) = start_outside_threads(24) {
            return code;
        }
        say("READY {}");
    }
    let config = match config_for(dir, scenario) {
        Some(c) => c,
        None => {
            eprintln!("unknown scenario {scenario}");
            return ExitCode::from(64);
        }
    };
    let guard = match install_and_announce(config) {
        Ok(g) => g,
        Err(code) => return code,
    };
    crashguard::breadcrumb(&format!("about to run scenario {scenario}"));

    let code = match (scenario.as_str(), arg) {
        ("none", _) => ExitCode::SUCCESS,
        ("mem-budget", _) => allocate_until_stopped(MIB as usize, true),
        ("mem-graceful", _) => grow_until_shutdown(&guard),
        ("mem-try-reserve-abort", _) => {
            let mut v: Vec<u8> = Vec::new();
            let refused = v.try_reserve(2 * BUDGET as usize).is_err();
            say(&format!("REFUSED {refused}"));
            std::process::abort()
        }
        ("mem-refused-elsewhere-abort", _) => {
            let (tx, rx) = mpsc::channel::<bool>();
            let (_hold, wait) = mpsc::channel::<()>();
            let _refused = std::thread::Builder::new()
                .name("refused".into())
                .spawn(move || {
                    let mut v: Vec<u8> = Vec::new();
                    let refused = v.try_reserve(2 * BUDGET as usize).is_err();
                    let _ = tx.send(refused);
                    // Waits without touching the allocator: its refusal mark stays set.
                    let _ = wait.recv();
                })
                .expect("spawn");
            let refused = rx.recv().unwrap_or(false);
            say(&format!("REFUSED {refused}"));
            std::process::abort()
        }
        ("mem-rlimit-as", _) => {
            // The first heartbeat comes from the sampler thread; wait for it so that the
            // report has the resource figures too.
            if wait_for_heartbeat(guard.blackbox_path(), |_| true).is_none() {
                return ExitCode::from(1);
            }
            let limit = vm_size() + 256 * MIB;
            set_rlimit(libc::RLIMIT_AS, limit);
            say(&format!("LIMIT {limit}"));
            allocate_until_stopped(8 * MIB as usize, false)
        }
        ("mem-fill", Some(percent)) => match percent.parse::<u64>() {
            Ok(p) => fill_and_wait(guard.blackbox_path(), BUDGET * p / 100),
            Err(_) => ExitCode::from(64),
        },
        ("threads-error", _) => {
            let _ = leak_threads();
            ExitCode::SUCCESS
        }
        ("threads-exit", _) => {
            // The shutdown that the failed spawn requests could end the process before this
            // thread prints the error; a hook holds the exit until it has.
            let (printed, wait) = mpsc::channel::<()>();
            guard.on_shutdown("let the child report the spawn error", move || {
                let _ = wait.recv_timeout(Duration::from_secs(10));
            });
            let _ = leak_threads();
            let _ = printed.send(());
            wait_for_shutdown(&guard)
        }
        // The outside threads were started before install (see `main`).
        ("threads-outside", _) => wait_for_shutdown(&guard),
        ("threads-nproc", Some(uid)) => match uid.parse::<u32>() {
            // Root is exempt from RLIMIT_NPROC: become a user that owns no other task, so
            // that this process's threads are all the limit counts.
            Ok(uid) => {
                set_rlimit(libc::RLIMIT_NPROC, threads_now() + 5);
                become_user(uid);
                let _ = leak_threads();
                ExitCode::SUCCESS
            }
            Err(_) => ExitCode::from(64),
        },
        ("threads-nproc", None) => {
            // Not root: the limit counts every task of this user, so it is set a few above
            // what the user has now (other processes of the user may take some of them).
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            set_rlimit(libc::RLIMIT_NPROC, tasks_of_uid(uid) + 5);
            let _ = leak_threads();
            ExitCode::SUCCESS
        }
        ("threads-rlimit-as", _) => {
            // crashguard's own threads map their malloc arenas when they first allocate; the
            // memory sampler's first heartbeat comes after that, so the address space measured
            // from then on is this thread's to use.
            if wait_for_heartbeat(guard.blackbox_path(), |_| true).is_none() {
                return ExitCode::from(1);
            }
            // Room for a few 2 MiB stacks and their guard pages, not for dozens.
            set_rlimit(libc::RLIMIT_AS, vm_size() + 12 * MIB);
            let _ = leak_threads();
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(64),
    };
    drop(guard);
    code
}

/// The configuration each scenario installs with; `None` for an unknown scenario.
fn config_for(dir: &str, scenario: &str) -> Option<crashguard::Config> {
    let config = crashguard::Config::new("budget-child").report_dir(dir);
    let memory = crashguard::MemoryBudget::bytes(BUDGET);
    let threads = crashguard::ThreadBudget::max(THREADS);
    Some(match scenario {
        "none" | "mem-rlimit-as" | "threads-nproc" | "threads-rlimit-as" => config,
        // The allocator's refusal alone: the spike this scenario makes (1 MiB chunks as fast
        // as they come) must meet the backstop, not race the sampler's graceful shutdown.
        "mem-budget" | "mem-try-reserve-abort" | "mem-refused-elsewhere-abort" => {
            config.memory_budget(memory).memory_shutdown_share(1.0)
        }
        // Holds up to 92% of the budget and waits to be killed: a graceful shutdown at 90%
        // would end it first.
        "mem-fill" => config.memory_budget(memory).memory_shutdown_share(1.0),
        "mem-graceful" => config
            .memory_budget(memory)
            .memory_sample_interval(Duration::from_millis(10))
            .on_memory_soft(|s| say(&format!("SOFT {}", status_json(Some(s))))),
        "threads-error" => config.thread_budget(threads),
        "threads-exit" => config.thread_budget(
            threads
                .policy(crashguard::ThreadPolicy::Exit)
                .count_process_threads(true),
        ),
        "threads-outside" => config.thread_budget(threads.policy(crashguard::ThreadPolicy::Exit)),
        _ => return None,
    })
}

/// Sets `RLIMIT_CORE` to zero: the memory scenarios abort, and a test run must not litter the
/// machine with cores.
fn no_core_dumps() {
    set_rlimit(libc::RLIMIT_CORE, 0);
}

/// Sets both the soft and the hard value of `resource`, or exits with status 70.
fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        say(&format!(
            "RESULT setrlimit({resource}, {value}) failed: {}",
            std::io::Error::last_os_error()
        ));
        std::process::exit(70);
    }
}

/// A field of `/proc/self/status` in its unit (kB fields are returned in bytes).
fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| {
            let mut words = rest.split_whitespace();
            let n: u64 = words.next()?.parse().ok()?;
            Some(if words.next() == Some("kB") {
                n * 1024
            } else {
                n
            })
        })
        .unwrap_or_else(|| {
            say(&format!("RESULT no {name} in /proc/self/status"));
            std::process::exit(70);
        })
}

/// The address space mapped now.
fn vm_size() -> u64 {
    status_field("VmSize:")
}

/// The threads of this process now.
fn threads_now() -> u64 {
    status_field("Threads:")
}

/// Tasks (threads of every process) whose real uid is `uid`, as `RLIMIT_NPROC` counts them.
fn tasks_of_uid(uid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut tasks = 0;
    for entry in entries.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        };
        if field("Uid:") == Some(u64::from(uid)) {
            tasks += field("Threads:").unwrap_or(1);
        }
    }
    tasks
}

/// Becomes `uid` (real, effective and saved; group likewise; no supplementary groups), which
/// drops root's exemption from `RLIMIT_NPROC`. Exits with status 70 if that fails.
fn become_user(uid: u32) {
    // SAFETY: plain system calls on integers; glibc applies them to every thread.
    let rc = unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 || libc::setresgid(uid, uid, uid) != 0 {
            -1
        } else {
            libc::setresuid(uid, uid, uid)
        }
    };
    if rc != 0 {
        say(&format!(
            "RESULT cannot become uid {uid}: {}",
            std::io::Error::last_os_error()
        ));
        std::process::exit(70);
    }
}

/// Blocks until the sender of `rx` is dropped, which in these scenarios is never before the
/// process ends.
/// Starts `n` plain std threads named `outside-N` that block for the life of the process, and
/// returns once every one of them runs.
fn start_outside_threads(n: usize) -> Result<(), ExitCode> {
    let (keep, rx) = mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let started = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
    for i in 1..=n {
        let rx = std::sync::Arc::clone(&rx);
        let started = std::sync::Arc::clone(&started);
        let spawned = std::thread::Builder::new()
            .name(format!("outside-{i}"))
            .spawn(move || {
                started.wait();
                block_on(&rx);
            });
        if let Err(e) = spawned {
            say(&format!("RESULT std spawn {i} failed: {e}"));
            return Err(ExitCode::from(1));
        }
    }
    started.wait();
    // The receiver's sender must outlive the threads, or they would stop blocking.
    std::mem::forget(keep);
    Ok(())
}

fn block_on(rx: &std::sync::Mutex<mpsc::Receiver<()>>) {
    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while rx.recv().is_ok() {}
}

/// Spawns guarded `leaky-N` threads that never end until a spawn fails, then prints
/// `SPAWNED` and `SPAWN_ERROR`. Returns the error, or exits with status 1 when every spawn
/// succeeded.
///
/// Each thread reports that it runs before the next is spawned: std names a thread before it
/// runs the closure, so by the time a spawn fails every leaky thread carries its name in the
/// census.
fn leak_threads() -> crashguard::thread::SpawnError {
    let (keep, rx) = mpsc::channel::<()>();
    // The sender is leaked so that the leaky threads outlive this function, as leaked
    // threads do.
    std::mem::forget(keep);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let (started_tx, started) = mpsc::channel::<()>();
    let mut spawned = 0usize;
    loop {
        let n = spawned + 1;
        let rx = std::sync::Arc::clone(&rx);
        let started_tx = started_tx.clone();
        let result = crashguard::thread::Builder::new()
            .name(format!("leaky-{n}"))
            .spawn(move || {
                let _ = started_tx.send(());
                drop(started_tx);
                block_on(&rx);
            });
        match result {
            Ok(_) => {
                if started.recv_timeout(WAIT).is_err() {
                    say(&format!("RESULT leaky-{n} never started"));
                    std::process::exit(1);
                }
                spawned = n;
            }
            Err(e) => {
                say(&format!("SPAWNED {spawned}"));
                let kind = if e.is_budget_exhausted() {
                    "budget"
                } else if e.is_os_refusal() {
                    "os"
                } else {
                    "other"
                };
                let json = serde_json::json!({
                    "kind": kind,
                    "display": e.to_string(),
                    "summary": e.summary(),
                });
                say(&format!("SPAWN_ERROR {json}"));
                return e;
            }
        }
        if spawned >= MAX_SPAWNS {
            say(&format!("RESULT {spawned} guarded spawns all succeeded"));
            std::process::exit(1);
        }
    }
}

/// Waits for the shutdown a budget requested, then ends the process. Waiting made this
/// thread the owner of the drain; with nothing to drain, it ends its part at once, and the
/// budget's code (the root cause) stands.
fn wait_for_shutdown(guard: &crashguard::Guard) -> ExitCode {
    let _request = guard.shutdown_signal().wait();
    crashguard::breadcrumb("the child saw the shutdown request");
    guard.exit(crashguard::ExitCode::Ok)
}

/// A memory status as one JSON object (`null` without one).
fn status_json(s: Option<crashguard::memory::MemoryStatus>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "measure": s.measure.name(),
            "used": s.used_bytes,
            "soft": s.soft_bytes,
            "shutdown": s.shutdown_bytes,
            "hard": s.hard_limit_bytes,
        }),
    }
}

/// Grows the heap steadily (1 MiB every 10 ms, 100 MiB/s at most) while listening for the
/// shutdown; the graceful threshold must stop it before the allocator's hard limit does. Then
/// drains (frees everything) and ends its part; the budget's code stands.
fn grow_until_shutdown(guard: &crashguard::Guard) -> ExitCode {
    guard.on_shutdown("release caches", || say("HOOK release caches"));
    say(&format!("STATUS {}", status_json(guard.memory())));
    let shutdown = guard.shutdown_signal();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(256);
    let request = loop {
        if kept.len() == 256 {
            say("RESULT no shutdown before 256 MiB");
            return ExitCode::from(1);
        }
        let mut block = vec![0u8; MIB as usize];
        block[0] = 1;
        kept.push(block);
        if let Some(r) = shutdown.wait_timeout(Duration::from_millis(10)) {
            break r;
        }
    };
    say(&format!("DRAINING {}", request.reason));
    drop(kept);
    say(&format!("STATUS {}", status_json(guard.memory())));
    guard.exit(crashguard::ExitCode::Ok)
}

/// Allocates `chunk`-byte blocks (writing every page when `touch`, else the first byte) and
/// keeps them all, until an allocation fails and the process ends. The list is reserved up
/// front, so every request the allocator sees from here on is one chunk.
fn allocate_until_stopped(chunk: usize, touch: bool) -> ExitCode {
    const MAX_CHUNKS: usize = 4096;
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(MAX_CHUNKS);
    say(&format!("ALLOCATING {chunk}"));
    while kept.len() < MAX_CHUNKS {
        let mut block: Vec<u8> = Vec::with_capacity(chunk);
        let spare = block.spare_capacity_mut();
        let step = if touch { 4096 } else { chunk };
        for i in (0..chunk).step_by(step) {
            if let Some(b) = spare.get_mut(i) {
                b.write(1);
            }
        }
        std::hint::black_box(&mut block);
        kept.push(block);
    }
    say(&format!(
        "RESULT {} bytes allocated without a refusal",
        kept.len() * chunk
    ));
    ExitCode::from(1)
}

/// The last heartbeat in the black box at `path`.
fn heartbeat(path: &Path) -> Option<crashguard::report::Resources> {
    let bytes = std::fs::read(path).ok()?;
    crashguard_blackbox::decode(&bytes).ok()?.resources
}

/// Waits until a heartbeat in the black box at `path` satisfies `ok` and returns it; prints
/// `RESULT` and returns `None` after [`WAIT`].
fn wait_for_heartbeat(
    path: &Path,
    ok: impl Fn(&crashguard::report::Resources) -> bool,
) -> Option<crashguard::report::Resources> {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = heartbeat(path);
        if let Some(r) = last.as_ref().filter(|r| ok(r)) {
            return Some(r.clone());
        }
        if Instant::now() > deadline {
            say(&format!("RESULT no heartbeat as expected; last {last:?}"));
            return None;
        }
        // The sampler writes every 100 ms; looking ten times as often is plenty.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Holds about `target` bytes of live heap, waits until a heartbeat shows at least that much,
/// prints `READY` with the heartbeat, and blocks on stdin.
fn fill_and_wait(blackbox: &Path, target: u64) -> ExitCode {
    let Some(first) = wait_for_heartbeat(blackbox, |r| r.heap_bytes.is_some()) else {
        return ExitCode::from(1);
    };
    let mut held = first.heap_bytes.unwrap_or(0);
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while held < target {
        let size = (target - held).min(MIB) as usize;
        let mut block = vec![1u8; size];
        std::hint::black_box(&mut block);
        kept.push(block);
        held += size as u64;
    }
    let Some(seen) = wait_for_heartbeat(blackbox, |r| r.heap_bytes.is_some_and(|h| h >= target))
    else {
        return ExitCode::from(1);
    };
    let ready = serde_json::json!({
        "heap_bytes": seen.heap_bytes,
        "rss_bytes": seen.rss_bytes,
        "memory_budget": seen.memory_budget,
        "target": target,
    });
    say(&format!("READY {ready}"));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    std::hint::black_box(&kept);
    ExitCode::SUCCESS
}
