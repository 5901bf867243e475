//! The panic hook: record the panic in the black box, keep the previous hook's output, and by
//! policy turn the panic into a deliberate end of the process.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, Once};

use crashguard_blackbox::assafe;
use crashguard_blackbox::layout::{MAX_FRAMES, THREAD_NAME_LEN};

use crate::PanicPolicy;
use crate::shutdown::{ShutdownHandle, ShutdownReason};

/// Whether the hook acts; a dropped guard leaves only the previous hook's behaviour.
static ARMED: AtomicBool = AtomicBool::new(false);
/// 0 = unwind, 1 = exit the process.
static POLICY: AtomicU8 = AtomicU8::new(0);
static HANDLE: Mutex<Option<ShutdownHandle>> = Mutex::new(None);
static INSTALL: Once = Once::new();

thread_local! {
    /// Set on threads that run shutdown hooks: a panic there is the hook's failure, recorded by
    /// the coordinator, not a reason to start another shutdown.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a hook runner.
pub(crate) fn mark_hook_thread() {
    IN_HOOK.with(|c| c.set(true));
}

/// Whether the current thread runs a shutdown hook (or is the coordinator).
pub(crate) fn in_hook_thread() -> bool {
    IN_HOOK.with(Cell::get)
}

pub(crate) fn install(policy: PanicPolicy, handle: ShutdownHandle) {
    POLICY.store(
        u8::from(policy == PanicPolicy::ExitProcess),
        Ordering::Relaxed,
    );
    *HANDLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    ARMED.store(true, Ordering::Release);
    // The hook is installed once per process and chains to whatever was there before; later
    // guards reuse it through the statics above.
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let armed = ARMED.load(Ordering::Acquire);
            if armed {
                record(info);
            }
            previous(info);
            if armed && POLICY.load(Ordering::Relaxed) == 1 && !IN_HOOK.with(Cell::get) {
                exit_process(info);
            }
        }));
    });
}

pub(crate) fn disarm() {
    ARMED.store(false, Ordering::Release);
    *HANDLE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

fn record(info: &std::panic::PanicHookInfo<'_>) {
    let Some(bb) = crashguard_blackbox::active() else {
        return;
    };
    let msg = message(info);
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let mut frames = [0u64; MAX_FRAMES];
    let mut n = 0usize;
    // The panic hook runs in ordinary context, so the locking `trace` is fine here.
    backtrace::trace(|f| {
        if let Some(slot) = frames.get_mut(n) {
            *slot = f.ip() as usize as u64;
            n += 1;
            true
        } else {
            false
        }
    });
    bb.write_panic(|p| {
        p.valid = 1;
        p.at_ns = assafe::now_realtime_ns();
        p.tid = assafe::gettid();
        // std's name is the one the panic message shows ("main" for the main thread, whose
        // OS name is the executable's); the OS name is the fallback for unnamed threads.
        match std::thread::current().name() {
            Some(name) => {
                p.thread_name = [0; THREAD_NAME_LEN];
                let room = THREAD_NAME_LEN - 1;
                if let Some(dst) = p.thread_name.get_mut(..room) {
                    assafe::copy_bytes(dst, name.as_bytes());
                }
            }
            None => {
                assafe::current_thread_name(&mut p.thread_name);
            }
        }
        p.message_len = assafe::copy_bytes(&mut p.message, msg.as_bytes());
        p.location_len = assafe::copy_bytes(&mut p.location, location.as_bytes());
        p.frames = frames;
        p.frame_count = n as u32;
    });
    bb.breadcrumb(&format!("panic: {msg}"));
}

fn exit_process(info: &std::panic::PanicHookInfo<'_>) {
    let handle = HANDLE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(handle) = handle else { return };
    if handle.under_way() {
        // A shutdown already ends the process. Parking here could hang a hook that waits for
        // this thread (a drain that joins its workers), so the thread unwinds as usual and
        // whoever joins it sees the panic.
        return;
    }
    let mut what = message(info);
    if let Some(l) = info.location() {
        what = format!("{what} at {}:{}", l.file(), l.line());
    }
    handle.request(ShutdownReason::Panic(what));
    // This thread must not unwind on into code that assumed it would not panic; the
    // coordinator ends the process after the hooks, within the panic grace period.
    loop {
        std::thread::park();
    }
}
