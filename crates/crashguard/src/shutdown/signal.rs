//! The application's view of a shutdown: [`ShutdownRequest`] and the clonable
//! [`ShutdownSignal`] (the reasons are in `reason.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, select};

use super::Command;
use super::listen::Listen;
pub(crate) use super::reason::ShutdownReason;

use super::wait_async::{WaitAsync, Wakers};

/// A shutdown request, as delivered to every [`ShutdownSignal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Why.
    pub reason: ShutdownReason,
    /// When.
    pub requested_at: SystemTime,
}

/// The channels [`ShutdownSignal::receiver`] hands out, by subscription id.
#[derive(Debug, Default)]
struct Subscribers {
    next_id: u64,
    channels: Vec<(u64, Sender<ShutdownRequest>)>,
}

/// Shared between the coordinator and every signal handle.
#[derive(Debug, Default)]
pub(crate) struct Broadcast {
    request: OnceLock<ShutdownRequest>,
    /// The channels of `receiver()` callers, each with the id its `ShutdownSignal` removes it
    /// by when dropped.
    subscribers: Mutex<Subscribers>,
    pub(super) wakers: Mutex<Wakers>,
    /// The signal source, when a coordinator runs (unit tests make broadcasts without one).
    pub(super) signals: OnceLock<Listen>,
    /// Whether the application listens for the request (`wait`, `wait_timeout`, `wait_async`,
    /// `receiver`): then it owns the drain, and the process ends when the application ends it
    /// or at the deadline, not when the hooks are done.
    listening: AtomicBool,
    /// Live [`ShutdownHold`]s: work in flight that delays the exit (within the grace period).
    holds: AtomicUsize,
    /// Panics seen by the panic hook in this run.
    panics: AtomicU64,
}

impl Broadcast {
    /// Publishes the first request; later calls are ignored. Returns whether this was the first.
    pub(crate) fn publish(&self, request: ShutdownRequest) -> bool {
        if self.request.set(request.clone()).is_err() {
            return false;
        }
        // Threads blocked in `wait` first: they are the application's fastest listeners.
        if let Some(listen) = self.signals.get() {
            listen.raise_latch();
        }
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in subs.channels.iter() {
            // Each subscriber channel holds one message and receives only this one.
            let _ = tx.try_send(request.clone());
        }
        drop(subs);
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wake_all();
        true
    }

    pub(crate) fn get(&self) -> Option<&ShutdownRequest> {
        self.request.get()
    }

    /// Notes that the application listens for the request and so owns the drain.
    fn listen(&self) {
        // A plain store: the flag only ever goes from false to true, and the coordinator reads
        // it after the request is published, long after any listener that matters registered.
        if !self.listening.load(Ordering::Relaxed) {
            self.listening.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the application listens for the request (see [`Broadcast::listen`]).
    pub(super) fn app_listens(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// Counts a panic; returns its number in the run, from 1.
    pub(super) fn count_panic(&self) -> u64 {
        self.panics.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Panics seen in this run.
    pub(super) fn panics(&self) -> u64 {
        self.panics.load(Ordering::SeqCst)
    }

    /// How many [`ShutdownHold`]s are alive.
    pub(super) fn holds(&self) -> usize {
        self.holds.load(Ordering::SeqCst)
    }

    fn hold(self: &Arc<Self>) -> ShutdownHold {
        self.holds.fetch_add(1, Ordering::SeqCst);
        ShutdownHold {
            broadcast: Arc::clone(self),
        }
    }

    fn release(&self) {
        // The coordinator re-reads the count whenever it is told, so only the last release
        // during a shutdown needs to tell it.
        if self.holds.fetch_sub(1, Ordering::SeqCst) == 1
            && self.get().is_some()
            && let Some(listen) = self.signals.get()
        {
            let _ = listen.commands.send(Command::Released);
        }
    }

    /// A channel that receives the request once, and its id for [`Broadcast::unsubscribe`].
    fn subscribe(&self) -> (u64, Receiver<ShutdownRequest>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let id = subs.next_id;
        subs.next_id += 1;
        // Check under the lock so a request published concurrently reaches us exactly once.
        if let Some(r) = self.request.get() {
            let _ = tx.try_send(r.clone());
        } else {
            subs.channels.push((id, tx));
        }
        (id, rx)
    }

    fn unsubscribe(&self, id: u64) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .channels
            .retain(|(i, _)| *i != id);
    }
}

/// Tells whether (and why) shutdown was requested. Clone it freely: every clone receives the
/// request. Works with blocking code (`wait`), polling (`is_requested`) and `select!` (through
/// [`ShutdownSignal::receiver`]).
#[derive(Debug)]
pub struct ShutdownSignal {
    broadcast: Arc<Broadcast>,
    /// The channel of [`ShutdownSignal::receiver`], made at its first call (most handles never
    /// need one) and removed from the broadcast when the handle is dropped, so that a service
    /// cloning a handle per connection does not accumulate channels.
    rx: OnceLock<(u64, Receiver<ShutdownRequest>)>,
}

impl ShutdownSignal {
    pub(crate) fn new(broadcast: Arc<Broadcast>) -> Self {
        ShutdownSignal {
            broadcast,
            rx: OnceLock::new(),
        }
    }

    fn rx(&self) -> &Receiver<ShutdownRequest> {
        &self.rx.get_or_init(|| self.broadcast.subscribe()).1
    }

    /// Whether a shutdown has been requested. A peek: unlike [`ShutdownSignal::wait`] and the
    /// other listeners, it does not make the application the owner of the drain (a health
    /// endpoint may call it without delaying the exit). A worker loop that polls it should
    /// take a [`ShutdownSignal::hold`] so that the exit waits for it.
    pub fn is_requested(&self) -> bool {
        self.broadcast.get().is_some()
    }

    /// The request, if one was made.
    pub fn request(&self) -> Option<ShutdownRequest> {
        self.broadcast.get().cloned()
    }

    /// Blocks until shutdown is requested.
    ///
    /// Calling it means the application owns the drain: once the hooks are done the process
    /// does not exit by itself but waits, within the grace period, for the application to end
    /// it (return from `main` with the guard, [`crate::Guard::shutdown`], [`crate::Guard::exit`]).
    pub fn wait(&self) -> ShutdownRequest {
        self.broadcast.listen();
        loop {
            if let Some(r) = self.wait_until(None) {
                return r;
            }
        }
    }

    /// Blocks until shutdown is requested or `timeout` passes. Like [`ShutdownSignal::wait`],
    /// it makes the application the owner of the drain.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ShutdownRequest> {
        self.broadcast.listen();
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<ShutdownRequest> {
        if let Some(r) = self.broadcast.get() {
            return Some(r.clone());
        }
        let Some(listen) = self.broadcast.signals.get() else {
            let timeout = deadline.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
            return select! {
                recv(self.rx()) -> r => r.ok(),
                recv(timeout) -> _ => self.broadcast.get().cloned(),
            };
        };
        // This thread reads the signals itself: the signal handler wakes it directly. Whoever
        // drains a signal first publishes the request, which raises the latch this thread
        // polls too.
        let _waiter = listen.enter(&self.broadcast);
        loop {
            listen.take_signals(&self.broadcast);
            if let Some(r) = self.broadcast.get() {
                return Some(r.clone());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            listen.wait(deadline);
        }
    }

    /// A channel that receives the request once, for `crossbeam_channel::select!`. Like
    /// [`ShutdownSignal::wait`], it makes the application the owner of the drain.
    pub fn receiver(&self) -> &Receiver<ShutdownRequest> {
        self.broadcast.listen();
        self.rx()
    }

    /// Holds the exit back while the returned value lives: for work in flight (a request being
    /// answered, a write being persisted) that must finish before the process ends, like
    /// tokio-util's `TaskTracker`. Take one when the work starts and drop it when the work is
    /// done; move it into the task that does the work.
    ///
    /// Once a shutdown's hooks are done, the process waits until every hold is dropped — and
    /// until the application ends the process, if it listens — but never past the grace period:
    /// then it exits 82 and the report says how many holds were still alive. A hold taken after
    /// the shutdown began counts too. Holds never delay the hooks, and never start a shutdown.
    ///
    /// ```no_run
    /// # fn handle(shutdown: &crashguard::ShutdownSignal) {
    /// let hold = shutdown.hold();
    /// std::thread::spawn(move || {
    ///     // ... answer the request, persist the write ...
    ///     drop(hold);
    /// });
    /// # }
    /// ```
    pub fn hold(&self) -> ShutdownHold {
        self.broadcast.hold()
    }

    /// A future that completes with the request, for async code. It needs no particular
    /// runtime and no thread of its own: the coordinator wakes the task when it publishes the
    /// request. The future owns what it needs (`'static`), so it can move into a spawned task or
    /// a `select!` branch.
    ///
    /// ```no_run
    /// # async fn serve(shutdown: crashguard::ShutdownSignal) {
    /// let request = shutdown.wait_async().await;
    /// eprintln!("stopping: {}", request.reason);
    /// # }
    /// ```
    ///
    /// Like [`ShutdownSignal::wait`], it makes the application the owner of the drain.
    pub fn wait_async(&self) -> WaitAsync {
        self.broadcast.listen();
        WaitAsync::new(Arc::clone(&self.broadcast))
    }

    /// [`ShutdownSignal::wait_async`] for tokio (feature `tokio`): the runtime's reactor also
    /// watches crashguard's signal pipe, so a termination signal wakes the task straight from
    /// the signal handler, as `tokio::signal` does, and the task reads the signal and its
    /// sender itself — no crashguard thread in between. Everything else is as for
    /// `wait_async` (and the request is the same, whoever read the signal first).
    ///
    /// # Panics
    ///
    /// Like `tokio::signal::unix::signal`, its first poll panics on a tokio runtime built
    /// without IO (`#[tokio::main]` and `Builder::enable_all` have it). Polled outside a tokio
    /// runtime it behaves as `wait_async`.
    ///
    /// ```no_run
    /// # async fn serve(shutdown: crashguard::ShutdownSignal) {
    /// let request = shutdown.wait_tokio().await;
    /// eprintln!("stopping: {}", request.reason);
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn wait_tokio(&self) -> WaitAsync {
        self.broadcast.listen();
        WaitAsync::with_reactor(Arc::clone(&self.broadcast))
    }
}

impl Clone for ShutdownSignal {
    fn clone(&self) -> Self {
        ShutdownSignal::new(Arc::clone(&self.broadcast))
    }
}

impl Drop for ShutdownSignal {
    fn drop(&mut self) {
        if let Some((id, _)) = self.rx.get() {
            self.broadcast.unsubscribe(*id);
        }
    }
}

/// Work in flight that the exit waits for; see [`ShutdownSignal::hold`]. Dropping it releases
/// the hold.
#[derive(Debug)]
#[must_use = "the hold is released as soon as it is dropped; keep it while the work runs"]
pub struct ShutdownHold {
    broadcast: Arc<Broadcast>,
}

impl Clone for ShutdownHold {
    /// Another hold on the same exit, for work that splits.
    fn clone(&self) -> Self {
        self.broadcast.hold()
    }
}

impl Drop for ShutdownHold {
    fn drop(&mut self) {
        self.broadcast.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::AppRequest;

    fn subscribed(b: &Broadcast) -> usize {
        b.subscribers
            .lock()
            .map(|s| s.channels.len())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn handles_subscribe_only_for_receiver_and_leave_no_channel_behind() {
        let b = Arc::new(Broadcast::default());
        let signal = ShutdownSignal::new(Arc::clone(&b));
        // A handle per connection, as a server clones it: nothing accumulates.
        for _ in 0..1000 {
            drop(signal.clone());
        }
        for _ in 0..1000 {
            let c = signal.clone();
            let _ = c.receiver();
        }
        assert_eq!(subscribed(&b), 0);
        let kept = signal.clone();
        let rx = kept.receiver().clone();
        assert_eq!(subscribed(&b), 1);
        assert!(b.publish(ShutdownRequest {
            reason: ShutdownReason::App(AppRequest::Requested("test".into())),
            requested_at: SystemTime::now(),
        }));
        assert!(rx.try_recv().is_ok(), "a live receiver gets the request");
        // A receiver made after the publish has it at once.
        let late = signal.clone();
        assert!(late.receiver().try_recv().is_ok());
    }
}
