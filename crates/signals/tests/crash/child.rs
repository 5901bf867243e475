//! The crashing side: each scenario arms a black box, installs the handlers and crashes for real.
//! Facts the parent needs (pid, function addresses) are printed as `key=value` lines on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crashguard_blackbox::layout::End;
use crashguard_blackbox::{BlackBox, Options};
use crashguard_signals::{FatalConfig, FatalHandlers, FatalPolicy};

use super::DIR_ENV;

fn say(key: &str, value: usize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{key}={value:#x}");
    let _ = out.flush();
}

fn setup(config: FatalConfig) -> &'static BlackBox {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("directory variable"));
    let opts = Options {
        app: "sigtest".into(),
        ring_capacity: 64,
        stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
    };
    let opened = crashguard_blackbox::open(&dir, &opts).expect("open black box");
    let bb = opened.blackbox.arm().expect("arm");
    bb.breadcrumb("child armed");
    let handlers = FatalHandlers::install(config).expect("install handlers");
    // The handlers stay for the rest of the (short) life of the child.
    std::mem::forget(handlers);
    say("pid", std::process::id() as usize);
    say("main_fn", super::main as fn() as usize);
    bb
}

#[inline(never)]
fn null_write() {
    // SAFETY: deliberately faults; that is the point of the scenario.
    unsafe { core::ptr::write_volatile(core::ptr::null_mut::<u32>(), 7) };
}

#[inline(never)]
fn scenario_null_write() {
    say("crash_fn", null_write as fn() as usize);
    null_write();
}

fn overflow() -> ! {
    // SAFETY: deliberately overflows the stack (sadness-generator is built at opt-level 0, so
    // the recursion is real).
    unsafe { sadness_generator::raise_stack_overflow() }
}

extern "C" fn raw_thread_prepared(_: *mut libc::c_void) -> *mut libc::c_void {
    crashguard_signals::altstack::prepare_current().expect("prepare raw thread");
    overflow()
}

extern "C" fn raw_thread_unprepared(_: *mut libc::c_void) -> *mut libc::c_void {
    overflow()
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

fn null_write_enricher(_: &mut End) {
    null_write();
}

fn hanging_enricher(_: &mut End) {
    loop {
        core::hint::spin_loop();
    }
}

extern "C" fn hanging_handler(_: libc::c_int) {
    loop {
        core::hint::spin_loop();
    }
}

/// Installs a SIGSEGV handler that spins forever, before crashguard's (which chains to it).
fn install_hanging_previous_handler() {
    // SAFETY: a zeroed sigaction is a valid starting value; the handler is a plain
    // `extern "C" fn(c_int)` and SA_SIGINFO is not set, matching that signature.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = hanging_handler as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, core::ptr::null_mut());
    }
}

static SECOND_ABOUT_TO_CRASH: AtomicBool = AtomicBool::new(false);
static FIRST_CRASHED: AtomicBool = AtomicBool::new(false);

/// Runs inside the first crash: lets the second thread crash too, and gives it time to enter
/// the handler and start waiting, before the first one commits.
fn second_crash_enricher(_: &mut End) {
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

extern "C" fn plain_previous_handler(_: libc::c_int) {
    let msg = b"previous plain handler ran\n";
    // SAFETY: write(2) of a static buffer.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
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
        let mut line = crashguard_blackbox::assafe::LineBuf::<96>::new();
        line.push(b"altstack_used=")
            .hex((ss.ss_size - untouched) as u64);
        line.push(b"\naltstack_size=")
            .hex(ss.ss_size as u64)
            .push(b"\n");
        libc::write(1, line.as_bytes().as_ptr().cast(), line.as_bytes().len());
        libc::_exit(0);
    }
}

fn install_previous(signo: libc::c_int, handler: usize, siginfo: bool) {
    // SAFETY: installs a handler with a matching signature for the flags.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_ONSTACK | if siginfo { libc::SA_SIGINFO } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(signo, &sa, core::ptr::null_mut()), 0);
    }
}

/// Replaces the calling thread's alternate stack with one of the size std gives its threads
/// (max(`SIGSTKSZ`, `AT_MINSIGSTKSZ`)), as a library that installs its own would, so that the
/// handler's stack use is measured where it is tightest.
fn install_std_sized_altstack() {
    // SAFETY: getauxval has no preconditions; the mapping is fresh, zeroed and never freed (the
    // process ends in this thread).
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
        assert_eq!(
            libc::sigaltstack(&ss, core::ptr::null_mut()),
            0,
            "sigaltstack"
        );
    }
}

/// Runs scenario `name`; every scenario ends the process.
pub(crate) fn run(name: &str) {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("directory variable"));
    match name {
        "segv_main" => {
            setup(FatalConfig::new());
            scenario_null_write();
        }
        "segv_exit_policy" => {
            setup(FatalConfig::new().policy(FatalPolicy::Exit));
            scenario_null_write();
        }
        "abort" => {
            setup(FatalConfig::new());
            // SAFETY: deliberately aborts.
            unsafe { libc::abort() };
        }
        "overflow_main" => {
            setup(FatalConfig::new());
            overflow();
        }
        "overflow_std_thread" => {
            setup(FatalConfig::new());
            let t = std::thread::Builder::new()
                .name("so-thread".into())
                .spawn(|| overflow())
                .expect("spawn");
            let _ = t.join();
        }
        "overflow_pthread_prepared" => {
            setup(FatalConfig::new());
            run_raw_thread(raw_thread_prepared);
        }
        "overflow_pthread_unprepared" => {
            setup(FatalConfig::new());
            run_raw_thread(raw_thread_unprepared);
        }
        "fpe" => {
            setup(FatalConfig::new());
            // SAFETY: deliberately divides by zero (idiv on x86-64).
            unsafe { sadness_generator::raise_floating_point_exception() };
        }
        "ill" => {
            setup(FatalConfig::new());
            // SAFETY: deliberately executes ud2.
            unsafe { sadness_generator::raise_illegal_instruction() };
        }
        "trap" => {
            setup(FatalConfig::new());
            // SAFETY: deliberately executes int3.
            unsafe { sadness_generator::raise_trap() };
        }
        "bus" => {
            setup(FatalConfig::new());
            std::env::set_current_dir(&dir).expect("cd");
            // SAFETY: deliberately touches a mapping past the end of its file.
            unsafe { sadness_generator::raise_bus() };
        }
        "sent_segv" => {
            setup(FatalConfig::new());
            // SAFETY: sends SIGSEGV to this thread, as `kill -SEGV` would to the process.
            unsafe { libc::raise(libc::SIGSEGV) };
        }
        "handler_fault" => {
            setup(FatalConfig::new());
            // SAFETY: it faults on purpose, to test the handler's own failure path; it does nothing else.
            unsafe { crashguard_signals::set_end_enricher(null_write_enricher) };
            scenario_null_write();
        }
        "handler_hang" => {
            setup(FatalConfig::new().watchdog_timeout(Duration::from_millis(200)));
            // SAFETY: it hangs on purpose, to test the watchdog; it makes no other call.
            unsafe { crashguard_signals::set_end_enricher(hanging_enricher) };
            scenario_null_write();
        }
        "chained_hang" => {
            // A previous handler that never returns: crashguard records, chains to it, and the
            // watchdog has to end the process after the record was committed.
            install_hanging_previous_handler();
            setup(FatalConfig::new().watchdog_timeout(Duration::from_millis(200)));
            scenario_null_write();
        }
        "memory_budget" => {
            let bb = setup(FatalConfig::new());
            bb.record_alloc_failure(1 << 30, 8, 4096, 1 << 20, true);
            // SAFETY: deliberately aborts, as Rust's default allocation-error handler does.
            unsafe { libc::abort() };
        }
        "panic_then_abort" => {
            let bb = setup(FatalConfig::new());
            bb.write_panic(|p| {
                p.valid = 1;
                p.message_len = crashguard_blackbox::assafe::copy_bytes(&mut p.message, b"boom");
                p.location_len =
                    crashguard_blackbox::assafe::copy_bytes(&mut p.location, b"src/x.rs:1:1");
            });
            // SAFETY: deliberately aborts, as panic = "abort" does.
            unsafe { libc::abort() };
        }
        "termination_log" => {
            setup(FatalConfig::new().summary_to_stderr(false));
            let file = std::fs::File::create(dir.join("termination-log")).expect("create");
            crashguard_signals::set_termination_log_fd(std::os::fd::IntoRawFd::into_raw_fd(file));
            scenario_null_write();
        }
        "chain_plain_handler" => {
            install_previous(
                libc::SIGSEGV,
                plain_previous_handler as *const () as usize,
                false,
            );
            setup(FatalConfig::new());
            scenario_null_write();
        }
        "second_crash" => {
            setup(FatalConfig::new());
            // SAFETY: it only waits (bounded) for another thread to crash, using async-signal-safe calls.
            unsafe { crashguard_signals::set_end_enricher(second_crash_enricher) };
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
            say("crash_fn", null_write as fn() as usize);
            null_write();
            let _ = second.join();
        }
        "stack_usage_std_thread" => {
            install_previous(
                libc::SIGSEGV,
                measuring_previous_handler as *const () as usize,
                true,
            );
            setup(FatalConfig::new().summary_to_stderr(true));
            let t = std::thread::Builder::new()
                .name("measured".into())
                .spawn(|| {
                    install_std_sized_altstack();
                    overflow()
                })
                .expect("spawn");
            let _ = t.join();
        }
        other => panic!("unknown scenario {other}"),
    }
    // Every scenario above ends the process; reaching this line is a failure.
    std::process::exit(3);
}
