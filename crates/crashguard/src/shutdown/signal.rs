//! The application's view of a shutdown: [`ShutdownRequest`], [`ShutdownReason`] and the
//! clonable [`ShutdownSignal`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crashguard_signals::{Signal, TermSignal};
use crossbeam_channel::{Receiver, Sender};

use super::wait_async::{WaitAsync, Wakers};

/// Why a shutdown was requested.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// A termination signal arrived.
    Signal {
        /// Which.
        signal: Signal,
        /// The sending process, when the kernel said.
        sender_pid: Option<u32>,
        /// The sending user, when the kernel said.
        sender_uid: Option<u32>,
    },
    /// The application asked ([`crate::Guard::request_shutdown`] or [`crate::Guard::exit`]).
    App(String),
    /// The memory budget's hard threshold was crossed.
    MemoryBudget(String),
    /// The thread budget's hard threshold was crossed.
    ThreadBudget(String),
    /// A panic, under [`crate::PanicPolicy::ExitProcess`].
    Panic(String),
}

impl From<TermSignal> for ShutdownReason {
    fn from(t: TermSignal) -> Self {
        ShutdownReason::Signal {
            signal: t.signal,
            sender_pid: t.sender_pid,
            sender_uid: t.sender_uid,
        }
    }
}

impl std::fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShutdownReason::Signal {
                signal,
                sender_pid,
                sender_uid,
            } => {
                write!(f, "{signal}")?;
                if let Some(pid) = sender_pid {
                    write!(f, " from pid {pid}")?;
                }
                if let Some(uid) = sender_uid {
                    write!(f, " (uid {uid})")?;
                }
                Ok(())
            }
            ShutdownReason::App(why) => write!(f, "requested by the application: {why}"),
            ShutdownReason::MemoryBudget(why) => write!(f, "memory budget: {why}"),
            ShutdownReason::ThreadBudget(why) => write!(f, "thread budget: {why}"),
            ShutdownReason::Panic(why) => write!(f, "panic: {why}"),
        }
    }
}

/// A shutdown request, as delivered to every [`ShutdownSignal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Why.
    pub reason: ShutdownReason,
    /// When.
    pub requested_at: SystemTime,
}

/// Shared between the coordinator and every signal handle.
#[derive(Debug, Default)]
pub(crate) struct Broadcast {
    request: OnceLock<ShutdownRequest>,
    subscribers: Mutex<Vec<Sender<ShutdownRequest>>>,
    pub(super) wakers: Mutex<Wakers>,
}

impl Broadcast {
    /// Publishes the first request; later calls are ignored. Returns whether this was the first.
    pub(crate) fn publish(&self, request: ShutdownRequest) -> bool {
        if self.request.set(request.clone()).is_err() {
            return false;
        }
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for tx in subs.iter() {
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

    fn subscribe(self: &Arc<Self>) -> Receiver<ShutdownRequest> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // Check under the lock so a request published concurrently reaches us exactly once.
        if let Some(r) = self.request.get() {
            let _ = tx.try_send(r.clone());
        } else {
            subs.push(tx);
        }
        rx
    }
}

/// Tells whether (and why) shutdown was requested. Clone it freely: every clone receives the
/// request. Works with blocking code (`wait`), polling (`is_requested`) and `select!` (through
/// [`ShutdownSignal::receiver`]).
#[derive(Debug)]
pub struct ShutdownSignal {
    broadcast: Arc<Broadcast>,
    rx: Receiver<ShutdownRequest>,
}

impl ShutdownSignal {
    pub(crate) fn new(broadcast: Arc<Broadcast>) -> Self {
        let rx = broadcast.subscribe();
        ShutdownSignal { broadcast, rx }
    }

    /// Whether a shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.broadcast.get().is_some()
    }

    /// The request, if one was made.
    pub fn request(&self) -> Option<ShutdownRequest> {
        self.broadcast.get().cloned()
    }

    /// Blocks until shutdown is requested.
    pub fn wait(&self) -> ShutdownRequest {
        if let Some(r) = self.broadcast.get() {
            return r.clone();
        }
        match self.rx.recv() {
            Ok(r) => r,
            // The coordinator keeps every sender until the process ends; if they are gone the
            // guard was dropped, and no request can come.
            Err(_) => loop {
                std::thread::park();
            },
        }
    }

    /// Blocks until shutdown is requested or `timeout` passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ShutdownRequest> {
        if let Some(r) = self.broadcast.get() {
            return Some(r.clone());
        }
        self.rx.recv_timeout(timeout).ok()
    }

    /// A channel that receives the request once, for `crossbeam_channel::select!`.
    pub fn receiver(&self) -> &Receiver<ShutdownRequest> {
        &self.rx
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
    pub fn wait_async(&self) -> WaitAsync {
        WaitAsync::new(Arc::clone(&self.broadcast))
    }
}

impl Clone for ShutdownSignal {
    fn clone(&self) -> Self {
        ShutdownSignal::new(Arc::clone(&self.broadcast))
    }
}
