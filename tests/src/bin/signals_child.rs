//! The child of the fatal-handler tests (tests/crash_handler.rs): `crashguard-signals-child DIR
//! SCENARIO`. Every scenario except `none` arms a black box for the app `sigtest` directly
//! (crashguard-blackbox), installs the fatal handlers (crashguard-signals) with the scenario's
//! settings and ends the process for real. `none` is the restart: it installs the whole of
//! crashguard for the same app and prints the previous run's report (`PREVIOUS <json>`), which
//! the facade decodes and symbolizes.
//!
//! Facts the parent needs are protocol lines on stdout (`RECORDING <tid>`, ...).

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crashguard_blackbox::assafe::{self, LineBuf};
use crashguard_blackbox::layout::End;
use crashguard_blackbox::{BlackBox, Options};
use crashguard_signals::{EndEnricher, FatalConfig, FatalHandlers, FatalPolicy};
use crashguard_tests::child_protocol::{install_and_announce, say};

const APP: &str = "sigtest";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(scenario)) = (args.first(), args.get(1)) else {
        eprintln!("usage: crashguard-signals-child REPORT_DIR SCENARIO");
        return ExitCode::from(64);
    };
    let dir = PathBuf::from(dir);
    if scenario == "none" {
        return match install_and_announce(crashguard::Config::new(APP).report_dir(&dir)) {
            Ok(guard) => {
                drop(guard);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    run(&dir, scenario);
    // Every scenario ends the process; reaching this line is a failure.
    say("SURVIVED");
    ExitCode::from(3)
}

/// Opens and arms a black box for [`APP`] in `dir` (with a copy of the crashed stack unless
/// `keep_stack` is false) and leaves the breadcrumb every record of this child starts with.
fn arm(dir: &Path, keep_stack: bool) -> &'static BlackBox {
    let mut options = Options {
        ring_capacity: 64,
        ..Options::new(APP)
    };
    if !keep_stack {
        options.stack_capacity = 0;
    }
    let opened = crashguard_blackbox::open(dir, &options).expect("open black box");
    let bb = opened.blackbox.arm().expect("arm");
    bb.breadcrumb("child armed");
    bb
}

/// Arms a black box for [`APP`] in `dir` and installs the handlers with `config` for the rest
/// of the (short) life of the child.
fn setup(dir: &Path, config: FatalConfig) -> &'static BlackBox {
    let bb = arm(dir, true);
    std::mem::forget(FatalHandlers::install(config).expect("install handlers"));
    bb
}

#[inline(never)]
fn crash_null_write() {
    // SAFETY: deliberately faults; that is the point of the scenario.
    unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u32>(), 7) };
}

#[inline(never)]
fn crash_wild_jump() {
    // A call through a garbage function pointer: the program counter lands on an unmapped
    // address, where no unwind information exists and no instruction can be read.
    let target: usize = black_box(0xdead_0000);
    // SAFETY: deliberately calls an address that is not code; the process dies there.
    let f = unsafe { core::mem::transmute::<usize, extern "C" fn()>(target) };
    f();
}

fn overflow() -> ! {
    // SAFETY: deliberately overflows the stack (sadness-generator is built at opt-level 0, so
    // the recursion is real).
    unsafe { sadness_generator::raise_stack_overflow() }
}

/// Writes a protocol line from inside the handler (async-signal-safe).
fn say_from_handler(prefix: &[u8], n: u64) {
    let mut line = LineBuf::<64>::new();
    line.push(prefix).dec(n).push(b"\n");
    assafe::write_fd(1, line.as_bytes());
}

/// An enricher that faults: a fault inside the handler while it records.
struct Faulting;
// SAFETY: it only faults, which is what the scenario tests; no allocation, lock or state.
unsafe impl EndEnricher for Faulting {
    fn enrich(&self, _: &mut End) {
        crash_null_write();
    }
}

/// An enricher that never returns: the watchdog must end the process.
struct Hanging;
// SAFETY: spins without touching anything.
unsafe impl EndEnricher for Hanging {
    fn enrich(&self, _: &mut End) {
        loop {
            core::hint::spin_loop();
        }
    }
}

/// An enricher that never returns and never stops writing into the record it was given: after
/// the watchdog takes the record over, no store of it may land (the takeover must stop it, not
/// race it).
struct KeepsWriting;
// SAFETY: volatile stores into the end section it was given, nothing else.
unsafe impl EndEnricher for KeepsWriting {
    fn enrich(&self, end: &mut End) {
        let mut n: u32 = 0;
        loop {
            n = n.wrapping_add(1);
            // SAFETY: plain stores into the section the handler lent us.
            unsafe {
                core::ptr::write_volatile(&raw mut end.census_total, n);
                core::ptr::write_volatile(&raw mut end.census_count, 0);
            }
        }
    }
}

/// An enricher that says `RECORDING <tid>` and then waits for a line on stdin: the parent
/// sends signals to the recording thread meanwhile.
struct WaitForParent;
// SAFETY: write(2) and read(2) only, on a fixed buffer.
unsafe impl EndEnricher for WaitForParent {
    fn enrich(&self, _: &mut End) {
        say_from_handler(b"RECORDING ", u64::from(assafe::gettid()));
        let mut b = [0u8; 1];
        loop {
            // SAFETY: read(2) into a one-byte buffer; an error (EINTR: a signal arrived) repeats.
            let n = unsafe { libc::read(0, b.as_mut_ptr().cast(), 1) };
            if n >= 0 {
                break;
            }
            // Interrupted by one of the parent's signals (or anything else): report it (the
            // parent shows these lines if the test fails) and wait on.
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            say_from_handler(b"READ_INTERRUPTED errno ", errno as u64);
        }
    }
}

static SECOND_ABOUT_TO_CRASH: AtomicBool = AtomicBool::new(false);
static FIRST_CRASHED: AtomicBool = AtomicBool::new(false);

/// Lets a second thread crash while the first one records.
struct LetSecondCrash;
// SAFETY: atomics and nanosleep only, bounded.
unsafe impl EndEnricher for LetSecondCrash {
    fn enrich(&self, _: &mut End) {
        FIRST_CRASHED.store(true, Ordering::SeqCst);
        while !SECOND_ABOUT_TO_CRASH.load(Ordering::SeqCst) {
            core::hint::spin_loop();
        }
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: nanosleep with a valid timespec.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
    }
}

extern "C" fn hanging_handler(_: libc::c_int) {
    loop {
        core::hint::spin_loop();
    }
}

extern "C" fn plain_previous_handler(_: libc::c_int) {
    let msg = b"previous plain handler ran\n";
    // SAFETY: write(2) of a static buffer.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// The "later library": a handler installed after crashguard that says so and chains to the
/// disposition it found (crashguard's), as well-behaved libraries do.
static LATER_PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();
extern "C" fn later_library_handler(
    signo: libc::c_int,
    info: *mut libc::siginfo_t,
    uc: *mut libc::c_void,
) {
    let msg = b"later library handler ran\n";
    // SAFETY: write(2) of a static buffer.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    let Some(prev) = LATER_PREVIOUS.get() else {
        return;
    };
    if prev.sa_sigaction > libc::SIG_IGN && prev.sa_flags & libc::SA_SIGINFO != 0 {
        type Action = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
        // SAFETY: the disposition it replaced had SA_SIGINFO, so it has this signature.
        let f = unsafe { core::mem::transmute::<usize, Action>(prev.sa_sigaction) };
        f(signo, info, uc);
    }
}

/// Installs `handler` for `signo` and returns the disposition it replaced.
fn install_raw(signo: libc::c_int, handler: usize, siginfo: bool) -> libc::sigaction {
    // SAFETY: installs a handler whose signature matches the flags.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_ONSTACK | if siginfo { libc::SA_SIGINFO } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = core::mem::zeroed();
        assert_eq!(libc::sigaction(signo, &sa, &mut old), 0);
        old
    }
}

/// A previous SA_SIGINFO handler that measures how much of the current alternate stack is in
/// use (kernel signal frame + crashguard's handler up to the chain call + this frame): the
/// stack is fresh zeroed memory, so the first non-zero byte from the bottom marks the peak.
extern "C" fn measuring_previous_handler(
    _: libc::c_int,
    _: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    // SAFETY: queries this thread's alternate stack and reads within it.
    unsafe {
        let mut ss: libc::stack_t = core::mem::zeroed();
        libc::sigaltstack(core::ptr::null(), &mut ss);
        let base = ss.ss_sp as *const u8;
        let mut untouched = 0usize;
        while untouched < ss.ss_size && *base.add(untouched) == 0 {
            untouched += 1;
        }
        say_from_handler(b"ALTSTACK_USED ", (ss.ss_size - untouched) as u64);
        say_from_handler(b"ALTSTACK_SIZE ", ss.ss_size as u64);
        libc::_exit(0);
    }
}

/// Replaces the calling thread's alternate stack with one of the size std gives its threads
/// (max(`SIGSTKSZ`, `AT_MINSIGSTKSZ`)), as a library that installs its own would.
fn install_std_sized_altstack() {
    // SAFETY: getauxval has no preconditions; the mapping is fresh, zeroed and never freed.
    unsafe {
        let size = libc::SIGSTKSZ.max(libc::getauxval(libc::AT_MINSIGSTKSZ) as usize);
        let size = size.div_ceil(4096) * 4096;
        let base = libc::mmap(
            core::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(base, libc::MAP_FAILED, "mmap");
        let ss = libc::stack_t {
            ss_sp: base,
            ss_flags: 0,
            ss_size: size,
        };
        assert_eq!(libc::sigaltstack(&ss, core::ptr::null_mut()), 0);
    }
}

fn run_raw_thread(start: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void) {
    // SAFETY: plain pthread_create/join with a valid start routine and no argument.
    unsafe {
        let mut t: libc::pthread_t = core::mem::zeroed();
        let rc = libc::pthread_create(&mut t, core::ptr::null(), start, core::ptr::null_mut());
        assert_eq!(rc, 0, "pthread_create");
        libc::pthread_join(t, core::ptr::null_mut());
    }
}

extern "C" fn overflowing_raw_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    overflow()
}

/// Waits for the parent's go-ahead line.
fn wait_for_parent() {
    let mut b = [0u8; 1];
    let _ = std::io::stdin().read(&mut b);
}

fn run(dir: &Path, scenario: &str) {
    match scenario {
        "segv" => {
            setup(dir, FatalConfig::new());
            crash_null_write();
        }
        "wild-jump" => {
            setup(dir, FatalConfig::new());
            crash_wild_jump();
        }
        "sent-segv" => {
            setup(dir, FatalConfig::new());
            // SAFETY: sends SIGSEGV to this thread, as `kill -SEGV` would to the process.
            unsafe { libc::raise(libc::SIGSEGV) };
        }
        "fault-in-handler" => {
            setup(dir, FatalConfig::new().enricher(&Faulting));
            crash_null_write();
        }
        "handler-hang" => crash_with_a_hanging_handler(dir),
        "handler-hang-trap-blocked" => {
            // The only thread blocks SIGTRAP, the watchdog timer's signal: the handler must
            // unblock it for itself, or nothing could ever take the expiry.
            // SAFETY: a zeroed sigset_t is valid for sigemptyset; pthread_sigmask changes only
            // this thread's mask.
            unsafe {
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTRAP);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
            }
            crash_with_a_hanging_handler(dir);
        }
        "forked-child-handler-hang" => {
            // A child made by fork has no share in the parent's watchdog timer; its handler
            // must make one of its own, or a stuck handler would hang the child forever. (The
            // child records nothing, its black box being the parent's: the handler it chains
            // to is what hangs.)
            install_raw(libc::SIGSEGV, hanging_handler as *const () as usize, false);
            setup(
                dir,
                FatalConfig::new().watchdog_timeout(Duration::from_millis(200)),
            );
            // SAFETY: fork in a single-threaded process; the child only faults (and the
            // handler, async-signal-safe, runs in it).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                crash_null_write();
                // SAFETY: never reached; _exit ends the child without the parent's atexit.
                unsafe { libc::_exit(3) };
            }
            let mut status = 0;
            // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            say(&format!("FORKED_CHILD_EXIT {code}"));
            std::process::exit(0);
        }
        "no-stack-copy" => {
            // A black box that keeps no stack copy (`stack_capacity` 0): the unwinder must still
            // read the live stack within the thread's bounds, so the backtrace stays whole.
            arm(dir, false);
            std::mem::forget(FatalHandlers::install(FatalConfig::new()).expect("install"));
            crash_null_write();
        }
        "handler-keeps-writing" => {
            // The crash happens on a worker; the main thread waits in `join`, so the timer's
            // process-directed signal reaches the main thread first (the kernel prefers it),
            // which must hand the takeover to the stuck recording thread.
            setup(
                dir,
                FatalConfig::new()
                    .watchdog_timeout(Duration::from_millis(200))
                    .enricher(&KeepsWriting),
            );
            let worker = std::thread::Builder::new()
                .name("stuck-writer".into())
                .spawn(crash_null_write)
                .expect("spawn");
            let _ = worker.join();
        }
        "chained-hang" => {
            // A previous handler that never returns: crashguard records, chains to it, and the
            // watchdog has to end the process after the record was committed.
            install_raw(libc::SIGSEGV, hanging_handler as *const () as usize, false);
            setup(
                dir,
                FatalConfig::new().watchdog_timeout(Duration::from_millis(200)),
            );
            crash_null_write();
        }
        "chain-plain" => {
            install_raw(
                libc::SIGSEGV,
                plain_previous_handler as *const () as usize,
                false,
            );
            setup(dir, FatalConfig::new());
            crash_null_write();
        }
        "signals-while-recording" => {
            // The watchdog must not end the wait for the parent on a loaded machine.
            setup(
                dir,
                FatalConfig::new()
                    .enricher(&WaitForParent)
                    .watchdog_timeout(Duration::from_secs(50)),
            );
            crash_null_write();
        }
        "ignored-trap-sent" => {
            // The application ignores SIGTRAP (as debuggers' users sometimes do); someone sends
            // it. It must stay ignored: the process lives on.
            install_raw(libc::SIGTRAP, libc::SIG_IGN, false);
            let bb = setup(dir, FatalConfig::new());
            // SAFETY: sends SIGTRAP to this process, as `kill -TRAP` would.
            unsafe { libc::kill(libc::getpid(), libc::SIGTRAP) };
            bb.breadcrumb("survived the ignored SIGTRAP");
            say("ALIVE");
            // Then a real crash, so the record shows the process went on until it.
            crash_null_write();
        }
        "later-library-kept" => {
            // A library installs its SIGSEGV handler after crashguard (chaining to it); then
            // crashguard is uninstalled. The library's handler must stay, and still run.
            let bb = setup_owned(dir);
            let old = install_raw(
                libc::SIGSEGV,
                later_library_handler as *const () as usize,
                true,
            );
            let _ = LATER_PREVIOUS.set(old);
            drop(bb.1);
            bb.0.breadcrumb("crashguard uninstalled");
            // SAFETY: queries the disposition only.
            let now = unsafe {
                let mut cur: libc::sigaction = core::mem::zeroed();
                libc::sigaction(libc::SIGSEGV, core::ptr::null(), &mut cur);
                cur.sa_sigaction
            };
            if now == later_library_handler as *const () as usize {
                say("KEPT");
            }
            crash_null_write();
        }
        "memory-budget" => {
            let bb = setup(dir, FatalConfig::new());
            // What BudgetAllocator does when it refuses: record, mark this thread, return null.
            bb.record_alloc_failure(1 << 30, 8, 4096, 1 << 20, true);
            crashguard_blackbox::refusal::mark_refused();
            // SAFETY: deliberately aborts, as Rust's default allocation-error handler does.
            unsafe { libc::abort() };
        }
        "exit-policy" => {
            setup(dir, FatalConfig::new().policy(FatalPolicy::Exit));
            crash_null_write();
        }
        "termination-log" => {
            let file = std::fs::File::create(dir.join("termination-log")).expect("create");
            setup(
                dir,
                FatalConfig::new()
                    .summary_to_stderr(false)
                    .termination_log(file.into()),
            );
            crash_null_write();
        }
        "second-crash" => {
            setup(dir, FatalConfig::new().enricher(&LetSecondCrash));
            let second = std::thread::Builder::new()
                .name("second".into())
                .spawn(|| {
                    while !FIRST_CRASHED.load(Ordering::SeqCst) {
                        core::hint::spin_loop();
                    }
                    SECOND_ABOUT_TO_CRASH.store(true, Ordering::SeqCst);
                    // SAFETY: deliberately executes ud2.
                    unsafe { sadness_generator::raise_illegal_instruction() }
                })
                .expect("spawn");
            crash_null_write();
            let _ = second.join();
        }
        "overflow-raw-pthread" => {
            setup(dir, FatalConfig::new());
            run_raw_thread(overflowing_raw_thread);
        }
        "stack-usage-small-altstack" => {
            install_raw(
                libc::SIGSEGV,
                measuring_previous_handler as *const () as usize,
                true,
            );
            setup(dir, FatalConfig::new());
            let t = std::thread::Builder::new()
                .name("measured".into())
                .spawn(|| {
                    install_std_sized_altstack();
                    overflow()
                })
                .expect("spawn");
            let _ = t.join();
        }
        "wait-then-segv" => {
            setup(dir, FatalConfig::new());
            say("READY");
            wait_for_parent();
            crash_null_write();
        }
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(64);
        }
    }
}

/// Installs the handlers with an enricher that never returns and a 200 ms watchdog, then
/// faults: the watchdog has to end the process.
fn crash_with_a_hanging_handler(dir: &Path) {
    setup(
        dir,
        FatalConfig::new()
            .watchdog_timeout(Duration::from_millis(200))
            .enricher(&Hanging),
    );
    crash_null_write();
}

/// Like [`setup`], but hands the handlers back so the scenario can drop them.
fn setup_owned(dir: &Path) -> (&'static BlackBox, FatalHandlers) {
    let bb = arm(dir, true);
    (
        bb,
        FatalHandlers::install(FatalConfig::new()).expect("install"),
    )
}
