//! Awaiting the shutdown request from async code without a blocking thread: a runtime-agnostic
//! future woken by the coordinator's broadcast.
//!
//! The wakers live next to the published request. A poll checks the request, then registers
//! its waker under the lock and checks again; the broadcast stores the request before it takes
//! the lock to wake everyone. So a request published between the two checks is seen by the
//! second one, and one published after the registration wakes the task: no wake-up is lost.

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
}

impl WaitAsync {
    pub(crate) fn new(broadcast: Arc<Broadcast>) -> Self {
        WaitAsync {
            broadcast,
            id: None,
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
        let mut wakers = this
            .broadcast
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = this.broadcast.get() {
            return Poll::Ready(r.clone());
        }
        wakers.register(&mut this.id, cx.waker());
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
            reason: ShutdownReason::App("test".into()),
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
            matches!(fut.as_mut().poll(&mut cx), Poll::Ready(r) if r.reason == ShutdownReason::App("test".into()))
        );
        // Once published, a fresh future is ready at once.
        let mut late = std::pin::pin!(signal.wait_async());
        assert!(late.as_mut().poll(&mut cx).is_ready());
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
