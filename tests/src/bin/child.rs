//! The crashing child of the end-to-end tests.
//!
//! `crashguard-child REPORT_DIR SCENARIO [--exit-policy]` installs crashguard into
//! `REPORT_DIR` (app name `child`), prints what it found of the previous run, records a
//! breadcrumb and then does what `SCENARIO` says — most scenarios crash for real. Every crash
//! happens inside an `#[inline(never)]` function with a distinctive name (`crash_null_write`,
//! `crash_stack_overflow`, ...) so that the tests can look for it among the symbolized frames of
//! the next run's report.
//!
//! Lines on stdout, one per fact, so that the tests can synchronise on them:
//!
//! - `PREVIOUS <report json | null>`: the previous run's report.
//! - `INSTALLED <json>`: this run's black-box path, where the previous report was stored, and
//!   the previous run's decoding error (with where its bytes were kept), if any.
//! - `READY`: printed by `wait` when it starts blocking on stdin.
//! - `INSTALL_ERROR <message chain>`: `install()` failed (exit status 66).
//! - `RESULT <text>`: the outcome of a scenario that checks something instead of crashing.
//!
//! Scenarios: `none` (exit cleanly), `segv`, `abort`, `ill`, `fpe`, `bus`, `trap`,
//! `segv-two-threads` (two threads fault at once), `overflow-main`, `overflow-std-thread`, `overflow-guarded-thread`, `overflow-pthread`
//! (a raw `pthread_create` thread that calls `prepare_current`), `overflow-pthread-unprepared`
//! (one that does not), `wait` (print `READY`, read a scenario from stdin and run it),
//! `install-twice`, `zero-grace`; exits outside crashguard: `process-exit-3`
//! (`std::process::exit(3)`), `libc-exit-4`, `drop-then-return-5` (the guard is dropped, then
//! `main` returns 5), `drop-then-return-0`, `forget-guard` (the guard is leaked and `main`
//! returns 0), `guard-exit-app-69` (`guard.exit(ExitCode::app(69))`); a crash wins over a clean
//! end: `segv-in-atexit-after-guard-exit` (an `atexit` handler faults after `guard.exit(Ok)`
//! recorded the clean end); for the torture run: `wild-jump`, `fault-in-malloc`,
//! `eight-faults-100-sleepers`, `fault-during-shutdown` (a shutdown hook faults),
//! `fork-then-segv` (a forked child faults, then the parent); `exit-while-handler-runs` (a thread faults, and while crashguard's
//! handler chains to a slow handler installed before it, the main thread calls `exit(0)`).

use std::hint::black_box;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use crashguard_tests::child_protocol::{chain, install_and_announce, say};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(scenario)) = (args.first(), args.get(1)) else {
        eprintln!("usage: crashguard-child REPORT_DIR SCENARIO [--exit-policy]");
        return ExitCode::from(64);
    };
    let exit_policy = args.iter().skip(2).any(|a| a == "--exit-policy");
    if scenario == "zero-grace" {
        return zero_grace(dir);
    }
    if scenario == "exit-while-handler-runs" {
        install_slow_segv_handler();
    }
    let mut config = crashguard::Config::new("child").report_dir(dir);
    if exit_policy {
        config = config.fatal_policy(crashguard::FatalPolicy::Exit);
    }
    let guard = match install_and_announce(config) {
        Ok(g) => g,
        Err(code) => return code,
    };

    let mut scenario = scenario.clone();
    if scenario == "wait" {
        crashguard::breadcrumb("waiting for a scenario on stdin");
        say("READY");
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return ExitCode::from(74);
        }
        scenario = line.trim().to_owned();
    }
    crashguard::breadcrumb(&format!("about to run scenario {scenario}"));
    // For the torture run's crash-to-exit times: the moment the scenario starts.
    say(&format!(
        "T0 {}",
        crashguard_blackbox::assafe::now_monotonic_ns()
    ));
    match scenario.as_str() {
        "none" | "" => {}
        "segv" => crash_null_write(),
        "abort" => crash_abort(),
        "ill" => crash_illegal_instruction(),
        "fpe" => crash_divide_by_zero(),
        "bus" => crash_bus_error(Path::new(dir)),
        "trap" => crash_breakpoint(),
        "overflow-main" => {
            black_box(crash_stack_overflow(0));
        }
        "segv-two-threads" => crash_on_two_threads_at_once(),
        "overflow-std-thread" => overflow_on_std_thread(),
        "overflow-guarded-thread" => overflow_on_guarded_thread(),
        "segv-long-thread-name" => crash_on_a_thread_with_a_long_name(),
        "overflow-pthread" => overflow_on_raw_pthread(true),
        "overflow-pthread-unprepared" => overflow_on_raw_pthread(false),
        "process-exit-3" => std::process::exit(3),
        // SAFETY: exit runs the atexit handlers and ends the process; nothing here relies on
        // destructors.
        "libc-exit-4" => unsafe { libc::exit(4) },
        "drop-then-return-5" => {
            drop(guard);
            return ExitCode::from(5);
        }
        "drop-then-return-0" => {
            drop(guard);
            return ExitCode::SUCCESS;
        }
        "forget-guard" => {
            std::mem::forget(guard);
            return ExitCode::SUCCESS;
        }
        "wild-jump" => {
            // A call through a function pointer to an unmapped address.
            let f: extern "C" fn() = unsafe {
                // SAFETY: not safe at all: the call is meant to fault on the jump.
                std::mem::transmute::<usize, extern "C" fn()>(black_box(0x10usize))
            };
            f();
        }
        "fault-in-malloc" => {
            // free() of a pointer into unmapped memory faults inside the allocator, reading
            // the chunk header in front of it.
            // SAFETY: not safe at all: meant to fault inside free.
            unsafe { libc::free(black_box(0x1010usize) as *mut libc::c_void) };
        }
        "eight-faults-100-sleepers" => eight_faults_among_sleepers(),
        "fault-during-shutdown" => {
            guard.on_shutdown("faulting hook", crash_null_write);
            guard.exit(crashguard::ExitCode::Ok)
        }
        "fork-then-segv" => fork_then_segv(),
        "segv-in-atexit-after-guard-exit" => {
            extern "C" fn fault_at_exit() {
                crash_null_write();
            }
            // SAFETY: registers a plain extern "C" function; it runs during exit, after the
            // shutdown below recorded its clean end.
            unsafe { libc::atexit(fault_at_exit) };
            guard.exit(crashguard::ExitCode::Ok)
        }
        "exit-while-handler-runs" => {
            // A thread faults; crashguard records, then chains to the slow handler installed
            // before it; meanwhile this thread exits with status 0.
            std::thread::Builder::new()
                .name("faulting".into())
                .spawn(crash_null_write)
                .expect("spawn");
            let start = std::time::Instant::now();
            while !SLOW_HANDLER_ENTERED.load(std::sync::atomic::Ordering::Acquire) {
                if start.elapsed() > std::time::Duration::from_secs(20) {
                    say("RESULT the slow handler never ran");
                    return ExitCode::from(1);
                }
                std::thread::yield_now();
            }
            std::process::exit(0)
        }
        "guard-exit-app-69" => {
            guard.exit(crashguard::ExitCode::app(69).expect("69 is an application code"))
        }
        "install-twice" => {
            let second = crashguard::Config::new("child-2").report_dir(dir).install();
            match second {
                Ok(_) => say("RESULT second install succeeded"),
                Err(e) => say(&format!("RESULT {e:?}: {}", chain(&e))),
            }
        }
        other => {
            eprintln!("unknown scenario {other}");
            return ExitCode::from(64);
        }
    }
    drop(guard);
    ExitCode::SUCCESS
}

/// 100 threads sleep while 8 others fault at the same moment.
fn eight_faults_among_sleepers() {
    for i in 0..100 {
        let _ = std::thread::Builder::new()
            .name(format!("sleeper-{i}"))
            .spawn(|| std::thread::sleep(std::time::Duration::from_secs(3600)));
    }
    race_to_fault(0..=7);
}

/// Threads named `racer-<n>` for each `n` of `numbers` fault at the same moment (a barrier
/// releases them together); the caller waits for them.
fn race_to_fault(numbers: std::ops::RangeInclusive<u32>) {
    let start = std::sync::Arc::new(std::sync::Barrier::new(numbers.clone().count()));
    let racers: Vec<_> = numbers
        .map(|n| {
            let start = std::sync::Arc::clone(&start);
            std::thread::Builder::new()
                .name(format!("racer-{n}"))
                .spawn(move || {
                    start.wait();
                    crash_null_write();
                })
                .expect("spawn a racer")
        })
        .collect();
    for r in racers {
        let _ = r.join();
    }
}

/// Forks a child that faults at once (its crash must not become this process's record), waits
/// for it, prints `FORKED <pid> <status>`, then faults itself.
fn fork_then_segv() {
    // SAFETY: the child only faults (async-signal-safe); the parent waits for it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        crash_null_write();
        // SAFETY: not reached; _exit is async-signal-safe.
        unsafe { libc::_exit(99) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    say(&format!("FORKED {pid} {status}"));
    crash_null_write();
}

/// Set by the slow SIGSEGV handler when it starts.
static SLOW_HANDLER_ENTERED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A SIGSEGV handler installed before crashguard (which chains to it after recording) that
/// takes 300 ms: another thread's `exit(0)` runs while the crash is still being handled.
fn install_slow_segv_handler() {
    extern "C" fn slow(_: libc::c_int) {
        SLOW_HANDLER_ENTERED.store(true, std::sync::atomic::Ordering::Release);
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 300_000_000,
        };
        // SAFETY: nanosleep is async-signal-safe and reads one timespec.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
    // SAFETY: installs a plain handler that only stores an atomic and sleeps.
    unsafe { libc::signal(libc::SIGSEGV, slow as *const () as libc::sighandler_t) };
}

fn zero_grace(dir: &str) -> ExitCode {
    let r = crashguard::Config::new("child")
        .report_dir(dir)
        .shutdown_grace(std::time::Duration::ZERO)
        .install();
    match r {
        Ok(_) => say("RESULT zero grace accepted"),
        Err(e) => say(&format!("RESULT {e:?}: {}", chain(&e))),
    }
    ExitCode::SUCCESS
}

/// Writes a byte to `addr` with one instruction, inside the calling function's own frame (a
/// call to `ptr::write_volatile` would add a frame of its own in debug builds, and Rust's
/// debug-mode null check would turn a null write into a panic).
macro_rules! poke {
    ($addr:expr) => {{
        let addr: usize = black_box($addr);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: not safe at all: this store is meant to fault.
        unsafe {
            std::arch::asm!("mov byte ptr [{a}], 1", a = in(reg) addr, options(nostack));
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: not safe at all: this store is meant to fault.
        unsafe {
            std::arch::asm!("strb wzr, [{a}]", a = in(reg) addr, options(nostack));
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        // SAFETY: not safe at all: this store is meant to fault.
        unsafe {
            std::ptr::write_volatile(addr as *mut u8, 1);
        }
    }};
}

/// A store through a null pointer: SIGSEGV with SEGV_MAPERR at address 0.
#[inline(never)]
fn crash_null_write() {
    poke!(0usize);
}

/// `abort()`: SIGABRT sent by the process to itself (SI_TKILL).
#[inline(never)]
fn crash_abort() {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// An undefined instruction: SIGILL.
#[inline(never)]
fn crash_illegal_instruction() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: not safe at all: ud2 is meant to fault.
    unsafe {
        std::arch::asm!("ud2", options(nostack));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: not safe at all: udf is meant to fault.
    unsafe {
        std::arch::asm!("udf #0", options(nostack));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: not safe at all: this is meant to fault.
    unsafe {
        sadness_generator::raise_illegal_instruction()
    }
}

/// An integer division by zero done by the CPU (Rust's `/` would panic first): SIGFPE with
/// FPE_INTDIV on x86_64. aarch64 does not trap on division by zero, so there the signal is
/// raised by hand and arrives as SI_TKILL.
#[inline(never)]
fn crash_divide_by_zero() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: not safe at all: the division is meant to fault.
    unsafe {
        std::arch::asm!(
            "xor edx, edx",
            "mov eax, 1",
            "div {d:e}",
            d = in(reg) black_box(0u32),
            out("eax") _,
            out("edx") _,
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: raising a signal has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGFPE);
    }
}

/// A store into a shared file mapping whose file was truncated under it: SIGBUS with
/// BUS_ADRERR. Prints `BUS_ADDRESS 0x...` first so the test can check the fault address.
#[inline(never)]
fn crash_bus_error(dir: &Path) {
    use std::os::fd::AsRawFd;
    let path = dir.join("sigbus.scratch");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the scratch file");
    file.set_len(4096).expect("size the scratch file");
    // SAFETY: a fresh shared mapping of one page of a file we own; nothing else aliases it.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED, "mmap the scratch file");
    file.set_len(0).expect("truncate the scratch file");
    let addr = map as usize + 16;
    say(&format!("BUS_ADDRESS {addr:#x}"));
    poke!(addr);
}

/// A breakpoint instruction: SIGTRAP.
#[inline(never)]
fn crash_breakpoint() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: int3 only raises SIGTRAP.
    unsafe {
        std::arch::asm!("int3", options(nostack));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: brk only raises SIGTRAP.
    unsafe {
        std::arch::asm!("brk #0", options(nostack));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: not safe at all: this is meant to trap.
    unsafe {
        sadness_generator::raise_trap()
    }
}

/// Recursion that really overflows: each frame holds a 4 KiB array the optimiser cannot remove
/// and the recursive call is not in tail position.
#[inline(never)]
fn crash_stack_overflow(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(depth % 4096) as usize] = depth as u8;
    let frame = black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    crash_stack_overflow(depth + 1).wrapping_add(u64::from(frame[0]))
}

/// Two threads fault at the same moment; the first crash must win the black box.
fn crash_on_two_threads_at_once() {
    race_to_fault(1..=2);
}

fn overflow_on_std_thread() {
    let t = std::thread::Builder::new()
        .name("std-overflow".into())
        .spawn(|| black_box(crash_stack_overflow(0)))
        .expect("spawn a std thread");
    let _ = t.join();
}

fn overflow_on_guarded_thread() {
    let t = crashguard::thread::Builder::new()
        .name("cg-overflow".into())
        .spawn(|| black_box(crash_stack_overflow(0)))
        .expect("spawn a crashguard thread");
    let _ = t.join();
}

/// The 40-character name of the thread `segv-long-thread-name` crashes on.
const LONG_THREAD_NAME: &str = "ingest-partition-compactor-worker-000042";

fn crash_on_a_thread_with_a_long_name() {
    let t = crashguard::thread::Builder::new()
        .name(LONG_THREAD_NAME.into())
        .spawn(crash_null_write)
        .expect("spawn a crashguard thread");
    let _ = t.join();
}

fn overflow_on_raw_pthread(prepare: bool) {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        let name = c"raw-pthread";
        // SAFETY: naming the calling thread with a NUL-terminated name under 16 bytes.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
        if !arg.is_null()
            && let Err(e) = crashguard::thread::prepare_current()
        {
            eprintln!("prepare_current failed: {e}");
            std::process::exit(75);
        }
        black_box(crash_stack_overflow(0));
        std::ptr::null_mut()
    }
    // The argument only says whether to prepare; any non-null pointer means yes.
    let arg = if prepare {
        std::ptr::NonNull::<libc::c_void>::dangling().as_ptr()
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: zeroed pthread_t is a valid out-parameter; the default attributes are used; the
    // start routine has the required signature and does not touch `arg`'s pointee.
    unsafe {
        let mut thread: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut thread, std::ptr::null(), start, arg);
        assert_eq!(rc, 0, "pthread_create");
        libc::pthread_join(thread, std::ptr::null_mut());
    }
}
