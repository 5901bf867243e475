//! The panic hook: record the panic in the black box, keep the previous hook's output, and by
//! policy turn the panic into a deliberate end of the process, or into a report of its own while
//! the process goes on.
//!
//! std has one panic hook per process, so the hook is installed once and reads the installed
//! state through one pointer ([`ARMED`]): an immutable [`Armed`] value that `install` publishes
//! and the [`PanicHook`] token takes away again when the guard is dropped.

use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, Once};

use crashguard_blackbox::layout::{MAX_FRAMES, THREAD_NAME_LEN};
use crashguard_blackbox::{BlackBox, Outcome, Retention, assafe};

use crate::PanicPolicy;
use crate::shutdown::{PanicDetails, PanicSite, ShutdownHandle, ShutdownReason, in_hook_thread};

/// Under [`PanicPolicy::Unwind`], the first this many panics of a run get a report file of
/// their own; later ones are counted and recorded in the black box only, so that a task that
/// panics in a loop cannot fill the disk or churn the retention.
pub(crate) const MAX_PANIC_REPORTS: u64 = 10;

/// What the hook needs, published once per installation.
#[derive(Debug)]
pub(crate) struct Armed {
    pub(crate) policy: PanicPolicy,
    pub(crate) shutdown: ShutdownHandle,
    pub(crate) bb: &'static BlackBox,
    pub(crate) report_dir: PathBuf,
    pub(crate) retention: Retention,
}

/// The installed state; null while no guard is alive. A value once published is never freed:
/// a panicking thread may be reading it while the guard goes away, and it is a few hundred bytes
/// once per installation.
static ARMED: AtomicPtr<Armed> = AtomicPtr::new(ptr::null_mut());
static INSTALL: Once = Once::new();
/// Recording a panic and snapshotting the black box for its own report go together, so that
/// two threads panicking at once each get a report of their own panic.
static RECORDING: Mutex<()> = Mutex::new(());

fn armed() -> Option<&'static Armed> {
    // SAFETY: a non-null pointer comes from `Box::leak` in `arm` and is never freed.
    unsafe { ARMED.load(Ordering::Acquire).as_ref() }
}

/// The armed panic hook; dropping it disarms the hook (the previous hook keeps running).
#[derive(Debug)]
pub(crate) struct PanicHook {
    armed: *mut Armed,
}

// SAFETY: the pointer is only compared and swapped, never dereferenced through this value.
unsafe impl Send for PanicHook {}
// SAFETY: as above.
unsafe impl Sync for PanicHook {}

impl Drop for PanicHook {
    fn drop(&mut self) {
        let _ = ARMED.compare_exchange(
            self.armed,
            ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Arms the hook with `armed`, installing it on first use in the process; it chains to
/// whatever hook was there before.
pub(crate) fn arm(state: Armed) -> PanicHook {
    let leaked: &'static mut Armed = Box::leak(Box::new(state));
    let p: *mut Armed = leaked;
    ARMED.store(p, Ordering::Release);
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let state = armed();
            let site = state.map(|s| on_panic(s, info));
            previous(info);
            if let (Some(s), Some(site)) = (state, site) {
                after_previous(s, info, site);
            }
        }));
    });
    PanicHook { armed: p }
}

/// What is known about a panic once it is recorded.
struct Recorded {
    site: PanicSite,
    /// The number of this panic in the run, from 1.
    number: u64,
}

fn on_panic(s: &Armed, info: &std::panic::PanicHookInfo<'_>) -> Recorded {
    let _one_at_a_time = RECORDING.lock().unwrap_or_else(|e| e.into_inner());
    let site = record(s.bb, info);
    let number = s.shutdown.count_panic();
    crate::events::panicked(
        number,
        std::thread::current().name().unwrap_or("<unnamed>"),
        &message(info),
        &info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default(),
    );
    if s.policy == PanicPolicy::Unwind && !in_hook_thread() {
        store_isolated(s, number);
    }
    Recorded { site, number }
}

fn after_previous(s: &Armed, info: &std::panic::PanicHookInfo<'_>, r: Recorded) {
    if in_hook_thread() {
        return;
    }
    match s.policy {
        PanicPolicy::ExitProcess => {
            if request(s, info, r) {
                // This thread must not unwind on into code that assumed it would not panic; the
                // coordinator ends the process after the hooks, within the panic grace period.
                loop {
                    std::thread::park();
                }
            }
        }
        // The shutdown is started and the thread unwinds as std would: a runtime that catches
        // task panics keeps its worker, and the drain does not wait on a parked thread.
        PanicPolicy::ExitAfterUnwind => {
            let _ = request(s, info, r);
        }
        PanicPolicy::Unwind => {}
    }
}

/// Starts the panic's shutdown; false when one was already under way (a worker that panics
/// during a drain must unwind, or a hook that joins it would hang).
fn request(s: &Armed, info: &std::panic::PanicHookInfo<'_>, r: Recorded) -> bool {
    if s.shutdown.under_way() {
        return false;
    }
    let details = PanicDetails {
        message: message(info),
        file: info.location().map(|l| l.file().to_owned()),
        line: info.location().map(|l| l.line()),
        number: r.number,
    };
    s.shutdown
        .request_panic(ShutdownReason::Panic(details), r.site);
    true
}

fn message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

/// Where std's panic machinery begins, seen from the panic hook: everything above the first
/// frame with one of these prefixes is the hook itself (crashguard's closure, the backtrace
/// walker, inlined helpers), whatever it is called in this build.
const STD_ENTRY: &[&str] = &[
    "std::panicking::",
    "std::sys::backtrace::",
    "std::sys_common::backtrace::",
    "rust_begin_unwind",
    "__rustc::rust_begin_unwind",
];

/// The panic machinery between std's entry and the panic site: std's and core's panic
/// functions and the cold paths of `unwrap`, `expect` and indexing. The recorded stack starts at
/// the first frame below std's entry that is none of these. Frames further down (a runtime's
/// `catch_unwind`) are never looked at, because the scan stops at the panic site.
const MACHINERY: &[&str] = &[
    "std::panicking::",
    "std::panic::panic_any",
    "std::sys::backtrace::",
    "std::sys_common::backtrace::",
    "std::rt::begin_panic",
    "rust_begin_unwind",
    "__rustc::rust_begin_unwind",
    "core::panicking::",
    "core::option::unwrap_failed",
    "core::option::expect_failed",
    "core::result::unwrap_failed",
    "core::cell::panic_already",
    "core::slice::index::",
    "core::str::slice_error_fail",
];

/// The demangled name (without hash) of the function at `ip`, if the binary has symbols.
fn name_at(ip: u64) -> Option<String> {
    let mut name = None;
    backtrace::resolve(ip as usize as *mut std::ffi::c_void, |symbol| {
        if name.is_none() {
            name = symbol.name().map(|n| format!("{n:#}"));
        }
    });
    name
}

/// How many leading frames of a panic hook's stack are the hook and the panic machinery.
/// Without symbols (a stripped binary) nothing is cut.
fn machinery_frames(raw: &[u64]) -> usize {
    let names: Vec<Option<String>> = raw.iter().map(|&ip| name_at(ip)).collect();
    let matches = |n: &Option<String>, set: &[&str]| {
        n.as_deref()
            .is_some_and(|n| set.iter().any(|m| n.starts_with(m)))
    };
    let Some(entry) = names.iter().position(|n| matches(n, STD_ENTRY)) else {
        return 0;
    };
    entry
        + names
            .iter()
            .skip(entry)
            .take_while(|n| matches(n, MACHINERY))
            .count()
}

/// The panicking stack, starting at the panic site.
fn panic_stack() -> ([u64; MAX_FRAMES], u32) {
    // How far down the panic site may be: the hook's frames plus the machinery.
    const EXTRA: usize = 32;
    let mut raw = Vec::with_capacity(MAX_FRAMES + EXTRA);
    // The panic hook runs in ordinary context, so the locking `trace` is fine here.
    backtrace::trace(|f| {
        raw.push(f.ip() as usize as u64);
        raw.len() < MAX_FRAMES + EXTRA
    });
    let skip = machinery_frames(raw.get(..EXTRA.min(raw.len())).unwrap_or_default());
    let mut frames = [0u64; MAX_FRAMES];
    let mut n = 0u32;
    for (slot, ip) in frames.iter_mut().zip(raw.iter().skip(skip)) {
        *slot = *ip;
        n += 1;
    }
    (frames, n)
}

fn record(bb: &BlackBox, info: &std::panic::PanicHookInfo<'_>) -> PanicSite {
    let msg = message(info);
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let (frames, frame_count) = panic_stack();
    let mut site = PanicSite {
        tid: assafe::gettid(),
        thread_name: [0; THREAD_NAME_LEN],
    };
    // std's name is the one the panic message shows ("main" for the main thread, whose OS
    // name is the executable's); the OS name is the fallback for unnamed threads.
    match std::thread::current().name() {
        Some(name) => {
            let room = THREAD_NAME_LEN - 1;
            if let Some(dst) = site.thread_name.get_mut(..room) {
                assafe::copy_bytes(dst, name.as_bytes());
            }
        }
        None => {
            assafe::current_thread_name(&mut site.thread_name);
        }
    }
    bb.write_panic(|p| {
        p.valid = 1;
        p.at_ns = assafe::now_realtime_ns();
        p.tid = site.tid;
        p.thread_name = site.thread_name;
        p.message_len = assafe::copy_bytes(&mut p.message, msg.as_bytes());
        p.location_len = assafe::copy_bytes(&mut p.location, location.as_bytes());
        p.frames = frames;
        p.frame_count = frame_count;
    });
    bb.breadcrumb(&format!("panic: {msg}"));
    site
}

/// Stores a report for a panic the process survives (`PanicPolicy::Unwind`): the run so far, as
/// the black box has it, with this panic as its outcome, so that `crashguard list` shows it now
/// and not only once the process ends.
fn store_isolated(s: &Armed, number: u64) {
    if number > MAX_PANIC_REPORTS {
        if number == MAX_PANIC_REPORTS + 1 {
            s.bb.breadcrumb("further panics are counted but get no report of their own");
        }
        return;
    }
    let mut report = match crashguard_blackbox::decode(&s.bb.snapshot()) {
        Ok(r) => r,
        Err(e) => {
            s.bb.breadcrumb(&format!("panic report not stored: {e}"));
            return;
        }
    };
    report.outcome = Outcome::Panic;
    report.exit_code = None;
    report.verdict = None;
    report.ended_at = Some(crashguard_blackbox::Timestamp::from_unix_nanos(
        assafe::now_realtime_ns(),
    ));
    report.thread = report.panic.as_ref().and_then(|p| p.thread.clone());
    report.detail = Some(format!(
        "panic {number} of the run, isolated by PanicPolicy::Unwind: the thread unwound and the process went on"
    ));
    // The frames are this very executable's: resolve them now, as the next run would.
    crate::previous::symbolize_same_binary(&mut report.backtrace, false);
    report.signature.clear();
    report.fill_signature();
    if let Err(e) = crashguard_blackbox::write_report(&s.report_dir, &report, s.retention) {
        s.bb.breadcrumb(&format!("panic report not stored: {e}"));
    }
}
