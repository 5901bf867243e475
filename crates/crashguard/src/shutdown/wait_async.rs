//! Awaiting the shutdown request from async code without a blocking thread: a runtime-agnostic
//! future woken by the coordinator's broadcast.
//!
//! The wakers live next to the published request. A poll checks the request, then registers
//! its waker under the lock and checks again; the broadcast stores the request before it takes
//! the lock to wake everyone. So a request published between the two checks is seen by the
//! second one, and one published after the registration wakes the task: no wake-up is lost.
//!
//! The future of `wait_tokio` (feature `tokio`) also has the runtime's reactor watch
//! crashguard's signal pipe (a duplicate of its descriptor, through `AsyncFd`): the signal
//! handler's write wakes the runtime's thread directly, as `tokio::signal` does, and the task
//! reads the signal (with its sender) itself. Otherwise `crashguard-sig` reads it and the
//! publish wakes the task: one thread more.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::signal::{Broadcast, ShutdownRequest};

/// Tasks waiting for the request.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    next_id: u64,
    waiting: Vec<(u64, Waker)>,
}

impl Wakers {
    /// Wakes every waiting task and forgets them: the request is published, and a task polled
    /// again finds it.
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.waiting) {
            w.wake();
        }
    }

    fn register(&mut self, id: &mut Option<u64>, waker: &Waker) {
        if let Some(known) = *id
            && let Some((_, w)) = self.waiting.iter_mut().find(|(i, _)| *i == known)
        {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
            return;
        }
        let fresh = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        *id = Some(fresh);
        self.waiting.push((fresh, waker.clone()));
    }

    fn remove(&mut self, id: u64) {
        self.waiting.retain(|(i, _)| *i != id);
    }
}

/// The future [`crate::ShutdownSignal::wait_async`] returns; completes with the request.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct WaitAsync {
    broadcast: Arc<Broadcast>,
    id: Option<u64>,
    /// The waker registered under `id`: a poll with a waker that wakes the same task needs no
    /// lock (a future in a `select!` loop is polled on every iteration).
    registered: Option<Waker>,
    /// The runtime's watch on the signal pipe, for `wait_tokio`.
    #[cfg(feature = "tokio")]
    reactor: Option<reactor::Reactor>,
}

impl WaitAsync {
    pub(crate) fn new(broadcast: Arc<Broadcast>) -> Self {
        WaitAsync {
            broadcast,
            id: None,
            registered: None,
            #[cfg(feature = "tokio")]
            reactor: None,
        }
    }

    /// A future whose first poll on a tokio runtime has the runtime's reactor watch the signal
    /// pipe.
    #[cfg(feature = "tokio")]
    pub(crate) fn with_reactor(broadcast: Arc<Broadcast>) -> Self {
        WaitAsync {
            broadcast,
            id: None,
            registered: None,
            reactor: Some(reactor::Reactor::default()),
        }
    }
}

#[cfg(feature = "tokio")]
mod reactor {
    use std::os::fd::OwnedFd;
    use std::task::{Context, Poll};

    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    use super::Broadcast;
    use crate::shutdown::listen::ReactorWatch;

    /// The runtime's watch on the signal pipe, made at the first poll on a tokio runtime.
    #[derive(Debug, Default)]
    pub(super) struct Reactor {
        fd: Option<AsyncFd<OwnedFd>>,
        /// Tells `crashguard-sig` to leave the runtime the first go at a signal.
        _watch: Option<ReactorWatch>,
        /// Whether the watch was tried (once: off a tokio runtime, or if registering failed,
        /// the future relies on the publish alone).
        tried: bool,
    }

    impl Reactor {
        /// Reads the signals that arrived, if the runtime's reactor says some may have, and
        /// asks it to wake the task for the next ones.
        pub(super) fn poll_signals(
            &mut self,
            broadcast: &std::sync::Arc<Broadcast>,
            cx: &mut Context<'_>,
        ) {
            let Some(listen) = broadcast.signals.get() else {
                return;
            };
            if !self.tried {
                self.tried = true;
                if tokio::runtime::Handle::try_current().is_ok()
                    && let Ok(dup) = listen.signal_fd().try_clone_to_owned()
                {
                    // SAFETY: the descriptor is owned by the value registered, so it stays open
                    // and refers to the same pipe for the whole life of the `AsyncFd`.
                    self.fd =
                        unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE) }.ok();
                    if self.fd.is_some() {
                        self._watch = Some(listen.reactor(broadcast));
                    }
                }
            }
            let Some(fd) = &self.fd else {
                return;
            };
            loop {
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut ready)) => {
                        // Drain first, then clear: a signal arriving after the drain is a new
                        // edge and sets the readiness again.
                        listen.take_signals(broadcast);
                        ready.clear_ready();
                        if broadcast.get().is_some() {
                            return;
                        }
                    }
                    Poll::Ready(Err(_)) => {
                        self.fd = None;
                        self._watch = None;
                        return;
                    }
                    Poll::Pending => return,
                }
            }
        }
    }
}

impl Future for WaitAsync {
    type Output = ShutdownRequest;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownRequest> {
        let this = self.get_mut();
        if let Some(r) = this.broadcast.get() {
            return Poll::Ready(r.clone());
        }
        #[cfg(feature = "tokio")]
        if let Some(reactor) = &mut this.reactor {
            reactor.poll_signals(&this.broadcast, cx);
            if let Some(r) = this.broadcast.get() {
                return Poll::Ready(r.clone());
            }
        }
        // Registered with a waker for this task: the publish wakes it (the request is stored
        // before the wakers are taken, and it was not stored at the check above).
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let mut wakers = this
            .broadcast
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = this.broadcast.get() {
            return Poll::Ready(r.clone());
        }
        wakers.register(&mut this.id, cx.waker());
        this.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for WaitAsync {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.broadcast
                .wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::SystemTime;

    use super::super::reason::AppRequest;
    use super::super::signal::{Broadcast, ShutdownReason, ShutdownRequest, ShutdownSignal};
    use super::*;

    /// Counts wake-ups; stands in for an executor.
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn request() -> ShutdownRequest {
        ShutdownRequest {
            reason: ShutdownReason::App(AppRequest::Requested("test".into())),
            requested_at: SystemTime::now(),
        }
    }

    #[test]
    fn a_pending_future_is_woken_once_by_the_publish_and_then_ready() {
        let broadcast = Arc::new(Broadcast::default());
        let signal = ShutdownSignal::new(Arc::clone(&broadcast));
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(signal.wait_async());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        // A second poll re-registers without adding a second entry.
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            broadcast.wakers.lock().map(|w| w.waiting.len()).ok(),
            Some(1)
        );
        assert!(broadcast.publish(request()));
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            matches!(fut.as_mut().poll(&mut cx), Poll::Ready(r) if r.reason == ShutdownReason::App(AppRequest::Requested("test".into())))
        );
        // Once published, a fresh future is ready at once.
        let mut late = std::pin::pin!(signal.wait_async());
        assert!(late.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_poll_with_another_tasks_waker_moves_the_registration_to_it() {
        let broadcast = Arc::new(Broadcast::default());
        let signal = ShutdownSignal::new(Arc::clone(&broadcast));
        let (first, second) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let mut fut = std::pin::pin!(signal.wait_async());
        let w1 = Waker::from(Arc::clone(&first));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&w1))
                .is_pending()
        );
        // Polled again with the same waker: no second entry, no lock needed.
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&w1))
                .is_pending()
        );
        // The future moved to another task: that task must be the one woken.
        let w2 = Waker::from(Arc::clone(&second));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&w2))
                .is_pending()
        );
        assert_eq!(
            broadcast.wakers.lock().map(|w| w.waiting.len()).ok(),
            Some(1)
        );
        assert!(broadcast.publish(request()));
        assert_eq!(first.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(second.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_dropped_future_leaves_no_waker_behind() {
        let broadcast = Arc::new(Broadcast::default());
        let signal = ShutdownSignal::new(Arc::clone(&broadcast));
        let waker = Waker::from(Arc::new(Counter::default()));
        let mut cx = Context::from_waker(&waker);
        {
            let mut fut = std::pin::pin!(signal.wait_async());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(
            broadcast.wakers.lock().map(|w| w.waiting.len()).ok(),
            Some(0)
        );
    }
}
