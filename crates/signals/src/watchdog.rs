//! The watchdog that bounds the fatal handler's run time.
//!
//! A thread started at install blocks in `read(2)` on a pipe. The handler's first action is a
//! one-byte `write(2)` to that pipe (async-signal-safe, never blocks: the pipe is otherwise
//! empty). The watchdog then sleeps for the configured timeout; if the process is still alive
//! when it wakes, the handler is stuck (a deadlocked unwinder, a chained handler that never
//! returns, a thread that cannot be scheduled) and the watchdog ends the process with the
//! handler-failure code. It needs nothing from the crashing thread, and unlike `alarm(2)` it
//! takes no signal away from the application.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;

/// The byte the handler writes to start the countdown.
const CRASH: u8 = b'C';
/// The byte `Drop` writes to stop the thread.
const QUIT: u8 = b'Q';

/// Write end of the pipe, or -1 when no watchdog runs.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The process that started the watchdog: a forked child shares the pipe but not the thread,
/// and must not wake its parent's watchdog.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);

/// The running watchdog thread; stopping it is `Drop`.
#[derive(Debug)]
pub(crate) struct Watchdog {
    writer: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog thread `crashguard-wd`.
    pub(crate) fn start(timeout: Duration) -> io::Result<Watchdog> {
        let (reader, writer) = io::pipe()?;
        let writer = OwnedFd::from(writer);
        let thread = std::thread::Builder::new()
            .name("crashguard-wd".into())
            .spawn(move || run(reader, timeout))?;
        OWNER_PID.store(sys::getpid(), Ordering::Relaxed);
        WAKE_FD.store(writer.as_raw_fd(), Ordering::Release);
        Ok(Watchdog {
            writer: Some(writer),
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        WAKE_FD.store(-1, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            sys::write_all(writer.as_raw_fd(), &[QUIT]);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut reader: io::PipeReader, timeout: Duration) {
    block_all_signals();
    loop {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte) {
            Ok(1) if byte == [CRASH] => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // QUIT, a closed pipe or an unexpected error: nothing left to guard.
            _ => return,
        }
    }
    std::thread::sleep(timeout);
    sys::write_all(
        2,
        b"crashguard: the crash handler did not finish in time; exiting with code 84\n",
    );
    sys::exit_now(i32::from(
        crashguard_blackbox::ExitCode::HandlerFailure.code(),
    ));
}

/// Keeps process-directed signals away from the watchdog, so it never runs someone's handler
/// and is always free to act.
fn block_all_signals() {
    // SAFETY: a zeroed sigset_t is a valid buffer for sigfillset.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; pthread_sigmask only changes this thread's mask.
    unsafe {
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// Starts the countdown, if a watchdog runs in this process.
///
/// Async-signal-safe.
pub(crate) fn arm() {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 && OWNER_PID.load(Ordering::Relaxed) == sys::getpid() {
        sys::write_all(fd, &[CRASH]);
    }
}
