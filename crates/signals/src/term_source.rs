//! Termination signals without a thread of their own: [`TermSource`], made by
//! [`crate::TerminationListener::start_polled`].
//!
//! signal-hook's handler does the async-signal-safe part, as for the threaded listener: it
//! stores the signal and its sender (`si_pid`, `si_uid`) in a per-signal slot and sends a byte
//! into a self-pipe. Here nobody sits on the pipe for the application: the thread (or the
//! runtime's reactor) that waits for the shutdown polls the pipe's read end itself, so the
//! signal handler wakes it directly, as `tokio::signal` and `ctrlc` wake their one reader.

use core::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use signal_hook::iterator::Handle;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::WithOrigin;

use crate::TermSignal;

/// Termination signals recorded by the signal handler, read by whoever polls [`TermSource::fd`].
///
/// Several threads may poll and drain concurrently: each recorded signal is handed to exactly
/// one [`TermSource::drain`]. Repeated deliveries of the same signal between two drains may be
/// merged into one (the kernel does the same for a pending standard signal).
pub struct TermSource {
    delivery: Mutex<SignalDelivery<UnixStream, WithOrigin>>,
    /// The read end of the self-pipe, owned by `delivery` for as long as `self` lives.
    read_fd: RawFd,
}

impl fmt::Debug for TermSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TermSource")
            .field("fd", &self.read_fd)
            .finish()
    }
}

impl TermSource {
    /// Registers signal-hook's handler for `numbers` with a fresh self-pipe.
    pub(crate) fn register(numbers: &[i32]) -> io::Result<TermSource> {
        let (read, write) = UnixStream::pair()?;
        // The handler sends with MSG_DONTWAIT and the drain reads with it; the flags also keep
        // a stray blocking read elsewhere from ever hanging on the pipe.
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let read_fd = read.as_raw_fd();
        let delivery = SignalDelivery::with_pipe(read, write, WithOrigin::default(), numbers)?;
        Ok(TermSource {
            delivery: Mutex::new(delivery),
            read_fd,
        })
    }

    pub(crate) fn handle(&self) -> Handle {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle()
    }

    /// The descriptor that becomes readable when a signal arrives (and stays readable until
    /// the next [`TermSource::drain`]). Poll it for reading (`poll`, `epoll`, a runtime's
    /// reactor); never read from it directly.
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `read_fd` is the read end owned by `self.delivery`, open as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.read_fd) }
    }

    /// Empties the pipe and hands every signal recorded since the last drain to `each`, in
    /// signal-number order, while holding the source's lock: a concurrent drain waits, and
    /// then finds only signals that arrived after this one. Never blocks on the pipe.
    pub fn drain(&self, mut each: impl FnMut(TermSignal)) {
        let mut delivery = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        for origin in delivery.pending() {
            if let Some(t) = TermSignal::from_origin(&origin) {
                each(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Signal, TerminationListener};

    /// Waits until `fd` is readable, at most `ms` milliseconds.
    fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: i32) -> bool {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }

    #[test]
    fn a_signal_makes_the_descriptor_readable_and_drains_once_with_its_sender() {
        let _serial = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let sig = Signal::SIGUSR2;
        let (listener, source) = TerminationListener::start_polled(&[sig]).expect("start");
        assert!(!readable(source.fd(), 0), "nothing arrived yet");
        // SAFETY: sends a signal to this process, which has a handler for it.
        assert_eq!(unsafe { libc::kill(libc::getpid(), sig.number()) }, 0);
        assert!(readable(source.fd(), 30_000), "the handler wakes the pipe");
        let mut got = Vec::new();
        source.drain(|t| got.push(t));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].signal, sig);
        assert_eq!(got[0].sender_pid, Some(std::process::id()));
        // SAFETY: getuid cannot fail.
        assert_eq!(got[0].sender_uid, Some(unsafe { libc::getuid() }));
        assert!(!readable(source.fd(), 0), "the drain emptied the pipe");
        let mut again = 0;
        source.drain(|_| again += 1);
        assert_eq!(again, 0, "a signal is handed out once");
        // Still delivering after a drain, and stopping restores the disposition.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(libc::getpid(), sig.number()) }, 0);
        assert!(readable(source.fd(), 30_000));
        listener.stop();
        let mut late = Vec::new();
        source.drain(|t| late.push(t.signal));
        assert_eq!(late, vec![sig], "a signal recorded before stop is kept");
    }
}
