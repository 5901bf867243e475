//! Graceful shutdown: the coordinator thread that turns a termination signal, an application
//! request, a budget or a panic into one deliberate end — hooks run in order under a deadline,
//! the outcome recorded in the black box, a documented exit code.
//!
//! Termination signals are read by whoever waits for them first (`listen.rs`: a thread blocked in
//! `wait`, a `wait_tokio` runtime, or crashguard's `crashguard-sig` thread), which only publishes
//! the request and hands the signal to the coordinator; user hooks never run in a signal handler
//! nor on a thread that reads signals. Each hook runs on a thread of its own
//! so that a hook that hangs can be abandoned at its timeout while the rest still run.

//!
//! # The rules, in one place
//!
//! - The first request wins: a termination signal, [`crate::Guard::request_shutdown`],
//!   [`crate::Guard::exit`], a budget, or a panic under `PanicPolicy::ExitProcess`. Later
//!   requests of any kind are ignored; the process ends with the first one's code.
//! - Signals that were already queued when the shutdown began (a burst from one `kill` loop,
//!   the same signal sent to the whole process group) belong to that first request. A SIGTERM,
//!   SIGINT or SIGQUIT read *after* the shutdown began forces an immediate exit with
//!   [`ExitCode::ForcedShutdown`] (83). SIGHUP never forces: terminals and supervisors send it
//!   incidentally, and a hang-up is no sign of impatience.
//! - Hooks run one after another in registration order, each on a thread of its own, each
//!   under `Config::hook_timeout` and all under the grace period. A hook that panics or overruns
//!   its own timeout is recorded by name and the next one runs. A hook registered while the
//!   hooks run still runs (after the others); once the hook phase is over, registration is
//!   refused.
//! - Missing the grace period ends the process at once with [`ExitCode::ShutdownTimeout`] (82)
//!   for signal and application requests. When a panic or a budget started the shutdown, the
//!   root cause keeps its code (70, 80, 81) and the report's detail names the hook that overran.
//! - A hook that calls [`crate::Guard::exit`] ends that hook (it is recorded as `ok`); the
//!   remaining hooks run and the process exits with the hook's code.
//! - The application owns the drain when it listens ([`ShutdownSignal::wait`], `wait_timeout`,
//!   `wait_async`, `receiver`): once the hooks are done, the process waits for the
//!   application to end it (dropping the guard, `Guard::shutdown`, `Guard::exit`). Work in
//!   flight holding a [`ShutdownHold`] keeps the exit back too. Neither waits past the grace
//!   period: then the process exits 82 (or the root cause's code) and the detail says what
//!   was pending. `docs/operations.md` has the whole table.

mod hooks;
mod listen;
mod reason;
mod run;
mod signal;
mod wait_async;

use std::sync::Arc;
use std::thread::JoinHandle;

use crashguard_blackbox::{BlackBox, ExitCode};
use crashguard_signals::{Signal, TermSignal, TerminationListener};
use crossbeam_channel::Sender;

use crate::error::IoStep;
use crate::termlog::TermLog;
use crate::{Config, Error};

use hooks::ExitFromHook;
pub(crate) use hooks::in_hook_thread;
pub use reason::{AppRequest, MemoryOverrun, PanicDetails, ShutdownReason, ThreadOverrun};
use signal::Broadcast;
pub use signal::{ShutdownHold, ShutdownRequest, ShutdownSignal};
pub use wait_async::WaitAsync;

/// What the coordinator is asked to do.
#[derive(Debug)]
enum Command {
    /// Start a graceful shutdown (ignored if one is under way).
    Request(ShutdownReason),
    /// Start a graceful shutdown for a panic on the thread `PanicSite` names.
    Panic(ShutdownReason, PanicSite),
    /// A termination signal read after the request was already published: during a
    /// shutdown, it may force the exit.
    Signal(TermSignal),
    /// Run the hooks and exit with this code.
    Exit(ExitCode),
    /// Run the hooks, record the end with this code, and reply with the exit status to use
    /// (the code, unless a hook called `exit` with another) instead of exiting.
    Finish(ExitCode, Sender<u8>),
    /// The guard is being dropped: stop unless a shutdown is under way; during one, the
    /// application has ended its part (it returned from `main`).
    Stop,
    /// The last [`ShutdownHold`] was dropped during a shutdown.
    Released,
}

/// The thread a panic happened on, so that the end of the run names it rather than the
/// coordinator that recorded the end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PanicSite {
    pub(crate) tid: u32,
    pub(crate) thread_name: [u8; crashguard_blackbox::layout::THREAD_NAME_LEN],
}

/// A cheap, clonable handle for the panic hook and the budget samplers.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownHandle {
    tx: Sender<Command>,
    broadcast: Arc<Broadcast>,
}

impl ShutdownHandle {
    pub(crate) fn request(&self, reason: ShutdownReason) {
        let _ = self.tx.send(Command::Request(reason));
    }

    /// Starts a shutdown for a panic on the thread `site` names.
    pub(crate) fn request_panic(&self, reason: ShutdownReason, site: PanicSite) {
        let _ = self.tx.send(Command::Panic(reason, site));
    }

    /// Counts a panic; returns its number in the run, from 1.
    pub(crate) fn count_panic(&self) -> u64 {
        self.broadcast.count_panic()
    }

    /// Whether a shutdown has begun.
    pub(crate) fn under_way(&self) -> bool {
        self.broadcast.get().is_some()
    }
}

/// The running coordinator.
#[derive(Debug)]
pub(crate) struct Coordinator {
    tx: Sender<Command>,
    broadcast: Arc<Broadcast>,
    hooks: Arc<hooks::Registry>,
    thread: Option<JoinHandle<()>>,
    listener: Option<TerminationListener>,
    /// crashguard's own reader of the signals (see `listen.rs`).
    signal_thread: Option<listen::SignalThread>,
}

impl Coordinator {
    pub(crate) fn start(
        config: &Config,
        bb: &'static BlackBox,
        termlog: Option<TermLog>,
        notify: Option<Arc<crate::systemd::Notifier>>,
    ) -> Result<Self, Error> {
        let (listener, source) = TerminationListener::start_polled(&config.termination_signals)
            .map_err(Error::Signals)?;
        let (tx, cmd_rx) = crossbeam_channel::unbounded();
        let broadcast = Arc::new(Broadcast::default());
        let io = |what| move |source| Error::Io { what, source };
        let listen =
            listen::Listen::new(source, tx.clone()).map_err(io(IoStep::MakeShutdownLatch))?;
        let _ = broadcast.signals.set(listen);
        let hooks = Arc::new(hooks::Registry::default());
        let run = run::Run {
            bb,
            broadcast: Arc::clone(&broadcast),
            hooks: Arc::clone(&hooks),
            settings: run::Settings::from(config),
            termlog,
            panic_site: None,
            notify,
        };
        let thread = std::thread::Builder::new()
            // Fits the 15 bytes Linux keeps of a thread name, so reports and `top` show all of it.
            .name("crashguard-stop".into())
            .spawn(move || run.main(cmd_rx))
            .map_err(io(IoStep::StartShutdownThread))?;
        let mut coordinator = Coordinator {
            tx,
            broadcast,
            hooks,
            thread: Some(thread),
            listener: Some(listener),
            signal_thread: None,
        };
        coordinator.signal_thread = Some(
            listen::SignalThread::start(Arc::clone(&coordinator.broadcast))
                .map_err(io(IoStep::StartSignalThread))?,
        );
        Ok(coordinator)
    }

    pub(crate) fn handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.tx.clone(),
            broadcast: Arc::clone(&self.broadcast),
        }
    }

    /// Registers a hook; false when the hook phase of a shutdown is already over.
    pub(crate) fn on_shutdown(&self, name: &str, hook: Box<dyn FnOnce() + Send>) -> bool {
        self.hooks.add(name, hook)
    }

    /// How many panics the panic hook has seen in this run.
    pub(crate) fn panics(&self) -> u64 {
        self.broadcast.panics()
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal::new(Arc::clone(&self.broadcast))
    }

    pub(crate) fn request_app(&self, reason: &str) {
        let _ = self.tx.send(Command::Request(ShutdownReason::App(
            AppRequest::Requested(reason.to_owned()),
        )));
    }

    pub(crate) fn exit(&self, code: ExitCode) -> ! {
        if hooks::in_hook_thread() {
            // Inside a hook the coordinator is waiting for this very thread, so parking here
            // would only make the hook overrun. Unwinding out of the hook ends it; the
            // coordinator sees the payload and exits with `code` after the other hooks.
            // `resume_unwind` does not run the panic hook, so this is not recorded as a panic.
            std::panic::resume_unwind(Box::new(ExitFromHook(code)));
        }
        let _ = self.tx.send(Command::Exit(code));
        // The coordinator ends the process; this thread waits for that. If a shutdown is
        // already under way, this ends the application's part of it.
        loop {
            std::thread::park();
        }
    }

    /// Runs the hooks and records the end with `code`, then returns the exit status to use:
    /// `code`, unless a hook called [`crate::Guard::exit`] with another. If a shutdown is
    /// already under way, this ends the application's part of it and waits for the rest.
    pub(crate) fn finish(&self, code: ExitCode) -> u8 {
        let (reply, done) = crossbeam_channel::bounded(1);
        if self.tx.send(Command::Finish(code, reply)).is_ok() {
            // An error means the coordinator thread is gone (it never is while the guard
            // lives, unless it panicked) or dropped the request because a shutdown was already
            // under way; dropping the guard then waits for that shutdown.
            if let Ok(status) = done.recv() {
                return status;
            }
        }
        code.code()
    }

    /// Stops the coordinator and restores the signal dispositions. If a shutdown is under
    /// way, waits for it: it ends the process within its deadline.
    ///
    /// Returns a termination signal that arrived after the coordinator stopped but before the
    /// previous dispositions were back. It came while the guard was installed, so it must not
    /// be lost; the caller re-raises it once the guard is gone, and the disposition that was
    /// there before install (by default: terminate) acts on it.
    pub(crate) fn stop(mut self) -> Option<Signal> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Option<Signal> {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The coordinator closed the source when it stopped; signal-hook's handler still
        // records until the previous dispositions are back.
        if let Some(mut t) = self.signal_thread.take() {
            t.stop();
        }
        self.listener.take()?.stop();
        self.broadcast
            .signals
            .get()
            .and_then(|l| l.leftover())
            .map(|t| t.signal)
    }
}

impl Drop for Coordinator {
    /// A coordinator dropped without [`Coordinator::stop`] (an `install()` that failed after
    /// starting it) must not leave its thread and signal handlers behind.
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
