//! Where termination signals are read: by the application's waiting thread itself, by the
//! runtime that polls `wait_async`, or by crashguard's `crashguard-sig` thread — whoever
//! wakes first.
//!
//! signal-hook's handler records each signal with its sender and wakes a self-pipe
//! ([`TermSource`]). Every party that waits for the shutdown polls that pipe directly, so the
//! signal handler wakes the application's thread with no other thread in between (as
//! `tokio::signal` and `ctrlc` wake their one reader). The first to drain a signal publishes
//! the request and hands the signal on to the coordinator, which runs the shutdown; the
//! others find the request published. `crashguard-sig` is one of those parties, so the
//! shutdown starts even when no application thread listens (or its runtime is stuck), and
//! it runs no application code.
//!
//! `crashguard-sig` stands aside for the application's listeners, so that they never queue
//! behind it for the source: while a thread is blocked in `wait`/`wait_timeout` it does not
//! watch the pipe at all (that thread reads every signal, and leaving wakes `crashguard-sig`
//! to watch again); while a `wait_tokio` future is registered with its runtime's reactor, it
//! gives the runtime [`REACTOR_HEAD_START`] to read a signal before reading it itself, so a
//! stuck runtime delays the shutdown by no more than that.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crashguard_signals::{TermSignal, TermSource};
use crossbeam_channel::Sender;

use super::Command;
use super::signal::{Broadcast, ShutdownReason, ShutdownRequest};

/// How long `crashguard-sig` leaves a signal to a runtime whose reactor watches the pipe.
const REACTOR_HEAD_START: Duration = Duration::from_millis(10);

/// A pipe that becomes readable once and stays so: written when the request is published,
/// never read. Threads polling for signals poll it too, so that a request published by
/// anyone else (another waiter, the coordinator, the application) wakes them.
#[derive(Debug)]
struct Latch {
    read: UnixStream,
    write: UnixStream,
}

/// The signal source of a running coordinator, shared by every party that reads it.
#[derive(Debug)]
pub(crate) struct Listen {
    source: Arc<TermSource>,
    /// Open while signals start or force a shutdown; the coordinator closes it when it stops
    /// without one (the guard was dropped), under this lock, so no drain is half done then.
    open: Mutex<bool>,
    pub(super) commands: Sender<Command>,
    latch: Latch,
    /// Wakes `crashguard-sig` to look at `waiters` again, or to stop.
    poke: Latch,
    /// Threads blocked in `wait`/`wait_timeout`, reading the signals themselves.
    waiters: AtomicUsize,
    /// `wait_tokio` futures registered with their runtime's reactor.
    reactors: AtomicUsize,
    stopping: AtomicBool,
}

/// A thread's stay in `wait`/`wait_timeout` (see [`Listen::enter`]).
pub(super) struct Waiter<'a> {
    listen: &'a Listen,
    broadcast: &'a Broadcast,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // Once the request is published the coordinator wakes `crashguard-sig` when it starts
        // the shutdown (see [`Listen::poke`]); waking it here would delay the application's
        // thread on its way back with the request.
        if self.listen.waiters.fetch_sub(1, Ordering::SeqCst) == 1 && self.broadcast.get().is_none()
        {
            self.listen.poke();
        }
    }
}

/// A `wait_tokio` future's registration (see `Listen::reactor`).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(super) struct ReactorWatch {
    broadcast: Arc<Broadcast>,
}

#[cfg(feature = "tokio")]
impl Drop for ReactorWatch {
    fn drop(&mut self) {
        // `crashguard-sig` is a batch thread while reactors watch, so this poke does not
        // preempt the runtime's thread.
        if let Some(l) = self.broadcast.signals.get()
            && l.reactors.fetch_sub(1, Ordering::SeqCst) == 1
        {
            l.poke();
        }
    }
}

/// Waits until one of `fds` is readable or `deadline` passes; returns which were readable.
/// An interrupted or failed poll returns nothing ready, and the caller re-checks its state.
fn poll_readable(fds: &[Option<BorrowedFd<'_>>], deadline: Option<Instant>) -> [bool; 2] {
    let mut set = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    for (p, fd) in set.iter_mut().zip(fds) {
        // A negative descriptor is skipped by poll.
        p.fd = fd.map_or(-1, |f| f.as_raw_fd());
    }
    let timeout = deadline.map_or(-1, |d| {
        let left = d.saturating_duration_since(Instant::now());
        // Rounded up, so that a poll never returns just before the deadline and spins.
        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    // SAFETY: `set` is a valid array of pollfd for the duration of the call; its descriptors are
    // borrowed from values that outlive it (or -1, which poll ignores).
    let rc = unsafe { libc::poll(set.as_mut_ptr(), set.len() as libc::nfds_t, timeout) };
    if rc <= 0 {
        return [false, false];
    }
    [set[0].revents != 0, set[1].revents != 0]
}

impl Listen {
    pub(super) fn new(source: Arc<TermSource>, commands: Sender<Command>) -> std::io::Result<Self> {
        let (read, write) = UnixStream::pair()?;
        write.set_nonblocking(true)?;
        let (poke_read, poke_write) = UnixStream::pair()?;
        poke_read.set_nonblocking(true)?;
        poke_write.set_nonblocking(true)?;
        Ok(Listen {
            source,
            open: Mutex::new(true),
            commands,
            latch: Latch { read, write },
            poke: Latch {
                read: poke_read,
                write: poke_write,
            },
            waiters: AtomicUsize::new(0),
            reactors: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    /// Registers a thread about to block in `wait`/`wait_timeout`: `crashguard-sig` stops
    /// watching the pipe until the last such thread leaves.
    pub(super) fn enter<'a>(&'a self, broadcast: &'a Broadcast) -> Waiter<'a> {
        if self.waiters.fetch_add(1, Ordering::SeqCst) == 0 {
            self.poke();
        }
        // See `raise_latch`.
        std::sync::atomic::fence(Ordering::SeqCst);
        Waiter {
            listen: self,
            broadcast,
        }
    }

    /// Registers a future whose runtime's reactor watches the pipe.
    #[cfg(feature = "tokio")]
    pub(super) fn reactor(&self, broadcast: &Arc<Broadcast>) -> ReactorWatch {
        if self.reactors.fetch_add(1, Ordering::SeqCst) == 0 {
            self.poke();
        }
        ReactorWatch {
            broadcast: Arc::clone(broadcast),
        }
    }

    /// Wakes `crashguard-sig` to look at the waiters again (the coordinator does it when a
    /// shutdown begins, so that it watches for a second signal).
    pub(super) fn poke(&self) {
        // A full pipe already has a poke waiting.
        let _ = (&self.poke.write).write(&[1]);
    }

    /// Makes the latch readable for good (the request is published), when a thread blocked in
    /// `wait`/`wait_timeout` may be polling it; otherwise the write, a system call on the way
    /// of whoever publishes (often the task that must return the request), is skipped.
    pub(super) fn raise_latch(&self) {
        // Pairs with the fence in `enter`: the request is stored before this fence and a
        // waiter's count before its own, so either this load sees the waiter or the waiter's
        // check after `enter` sees the request and never polls.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        // One byte is enough and the latch is never read, so a second write finding the
        // buffer full (it never is) would change nothing.
        let _ = (&self.latch.write).write(&[1]);
    }

    fn is_open(&self) -> bool {
        *self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the signals that arrived and acts on them: the first starts the shutdown (it is
    /// published, then handed to the coordinator); signals drained together with it belong to
    /// that request; later ones go to the coordinator, which may force the exit. Returns false
    /// once the source is closed.
    pub(super) fn take_signals(&self, broadcast: &Broadcast) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !*open {
            return false;
        }
        self.drain_into(broadcast);
        true
    }

    fn drain_into(&self, broadcast: &Broadcast) {
        let mut began = false;
        self.source.drain(|t: TermSignal| {
            let reason = ShutdownReason::from(t);
            if broadcast.publish(ShutdownRequest {
                reason: reason.clone(),
                requested_at: SystemTime::now(),
            }) {
                began = true;
                let _ = self.commands.send(Command::Request(reason));
            } else if !began {
                let _ = self.commands.send(Command::Signal(t));
            }
        });
    }

    /// Closes the source (the coordinator stops without a shutdown) after acting on what is
    /// already there; from now on only [`Listen::leftover`] reads it.
    pub(super) fn close(&self, broadcast: &Broadcast) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if *open {
            self.drain_into(broadcast);
            *open = false;
        }
    }

    /// A signal that arrived after [`Listen::close`], before the previous dispositions were
    /// back: it must not be lost.
    pub(super) fn leftover(&self) -> Option<TermSignal> {
        let mut first = None;
        self.source.drain(|t| {
            first.get_or_insert(t);
        });
        first
    }

    /// Blocks until a signal may have arrived, the request is published, or `deadline`.
    pub(super) fn wait(&self, deadline: Option<Instant>) {
        let signals = self.is_open().then(|| self.source.fd());
        let _ = poll_readable(&[signals, Some(self.latch.read.as_fd())], deadline);
    }

    /// The signal pipe, for a runtime's reactor to watch.
    #[cfg(feature = "tokio")]
    pub(super) fn signal_fd(&self) -> BorrowedFd<'_> {
        self.source.fd()
    }
}

/// crashguard's own reader of the signal source, `crashguard-sig`: it starts the shutdown when
/// no application thread is quicker, and forwards later signals to the coordinator.
#[derive(Debug)]
pub(super) struct SignalThread {
    broadcast: Arc<Broadcast>,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    pub(super) fn start(broadcast: Arc<Broadcast>) -> std::io::Result<Self> {
        let for_thread = Arc::clone(&broadcast);
        let thread = std::thread::Builder::new()
            // Fits the 15 bytes Linux keeps of a thread name.
            .name("crashguard-sig".into())
            .spawn(move || {
                if let Some(listen) = for_thread.signals.get() {
                    listen.serve(&for_thread);
                }
            })?;
        Ok(SignalThread {
            broadcast,
            thread: Some(thread),
        })
    }

    pub(super) fn stop(&mut self) {
        if let Some(l) = self.broadcast.signals.get() {
            l.stopping.store(true, Ordering::SeqCst);
            l.poke();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Listen {
    /// The loop of `crashguard-sig`.
    fn serve(&self, broadcast: &Broadcast) {
        let mut sink = [0u8; 64];
        let mut batch = false;
        loop {
            while matches!((&self.poke.read).read(&mut sink), Ok(n) if n > 0) {}
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            // While a runtime's reactor watches the pipe too, this thread is only the safety
            // net: woken by the same write of the signal handler, it must not preempt the
            // runtime's thread, so it runs at the next scheduling point instead, with its full
            // share of the CPU (see `sys::set_batch`). Otherwise it is the fast path.
            let net = self.reactors.load(Ordering::SeqCst) > 0;
            if net != batch {
                crate::sys::set_batch(net);
                batch = net;
            }
            let watch = self.waiters.load(Ordering::SeqCst) == 0;
            let [signal, _] = poll_readable(
                &[
                    watch.then(|| self.source.fd()),
                    Some(self.poke.read.as_fd()),
                ],
                None,
            );
            if !signal {
                continue;
            }
            // The head start ends at its deadline, or when poked: the coordinator pokes this
            // thread when a shutdown begins, and a `wait_tokio` future when it goes away.
            if self.reactors.load(Ordering::SeqCst) > 0 && broadcast.get().is_none() {
                let _ = poll_readable(
                    &[Some(self.poke.read.as_fd()), None],
                    Some(Instant::now() + REACTOR_HEAD_START),
                );
            }
            if !self.take_signals(broadcast) {
                return;
            }
        }
    }
}
