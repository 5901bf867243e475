//! Graceful shutdown: the coordinator thread that turns a termination signal, an application
//! request, a budget or a panic into one deliberate end — hooks run in order under a deadline,
//! the outcome recorded in the black box, a documented exit code.
//!
//! The signal thread (in `crashguard-signals`) only forwards signals into a channel; user hooks
//! never run in a signal handler nor on the signal thread. Each hook runs on a thread of its own
//! so that a hook that hangs can be abandoned at its timeout while the rest still run.

mod hooks;
mod signal;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crashguard_blackbox::layout::*;
use crashguard_blackbox::{BlackBox, ExitCode, assafe};
use crashguard_signals::{Signal, TermSignal, TerminationListener};
use crossbeam_channel::{Receiver, Sender, select};

use crate::config::CleanExit;
use crate::termlog::TermLog;
use crate::{Config, Error};

use signal::Broadcast;
pub use signal::{ShutdownReason, ShutdownRequest, ShutdownSignal};

/// What the coordinator is asked to do.
#[derive(Debug)]
enum Command {
    /// Start a graceful shutdown (ignored if one is under way).
    Request(ShutdownReason),
    /// Run the hooks and exit with this code.
    Exit(ExitCode),
    /// The guard is being dropped: stop unless a shutdown is under way.
    Stop,
}

/// A cheap, clonable handle for the panic hook and the budget samplers.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownHandle {
    tx: Sender<Command>,
}

impl ShutdownHandle {
    pub(crate) fn request(&self, reason: ShutdownReason) {
        let _ = self.tx.send(Command::Request(reason));
    }
}

#[derive(Clone, Debug)]
struct Settings {
    grace: Duration,
    hook_timeout: Option<Duration>,
    panic_grace: Duration,
    clean_exit: CleanExit,
}

/// The running coordinator.
#[derive(Debug)]
pub(crate) struct Coordinator {
    tx: Sender<Command>,
    broadcast: Arc<Broadcast>,
    hooks: Arc<hooks::Registry>,
    thread: Option<JoinHandle<()>>,
    listener: Option<TerminationListener>,
}

impl Coordinator {
    pub(crate) fn start(
        config: &Config,
        bb: &'static BlackBox,
        termlog: Option<TermLog>,
    ) -> Result<Self, Error> {
        let (listener, term_rx) =
            TerminationListener::start(&config.termination_signals).map_err(Error::Signals)?;
        let (tx, cmd_rx) = crossbeam_channel::unbounded();
        let broadcast = Arc::new(Broadcast::default());
        let hooks = Arc::new(hooks::Registry::default());
        let settings = Settings {
            grace: config.shutdown_grace,
            hook_timeout: config.hook_timeout,
            panic_grace: config.panic_grace,
            clean_exit: config.clean_exit,
        };
        let run = Run {
            bb,
            broadcast: Arc::clone(&broadcast),
            hooks: Arc::clone(&hooks),
            settings,
            termlog,
        };
        let thread = std::thread::Builder::new()
            .name("crashguard-shutdown".into())
            .spawn(move || run.main(term_rx, cmd_rx))
            .map_err(|source| Error::Io {
                what: "start the shutdown thread",
                source,
            })?;
        Ok(Coordinator {
            tx,
            broadcast,
            hooks,
            thread: Some(thread),
            listener: Some(listener),
        })
    }

    pub(crate) fn handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.tx.clone(),
        }
    }

    pub(crate) fn on_shutdown(&self, name: &str, hook: Box<dyn FnOnce() + Send>) {
        self.hooks.add(name, hook);
    }

    pub(crate) fn signal(&self) -> ShutdownSignal {
        ShutdownSignal::new(Arc::clone(&self.broadcast))
    }

    pub(crate) fn request_app(&self, reason: &str) {
        let _ = self
            .tx
            .send(Command::Request(ShutdownReason::App(reason.to_owned())));
    }

    pub(crate) fn exit(&self, code: ExitCode) -> ! {
        let _ = self.tx.send(Command::Exit(code));
        // The coordinator ends the process; this thread waits for that.
        loop {
            std::thread::park();
        }
    }

    /// Stops the coordinator. If a shutdown is under way, waits for it: it ends the process
    /// within its deadline.
    pub(crate) fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(l) = self.listener.take() {
            l.stop();
        }
    }
}

/// The coordinator thread's state.
struct Run {
    bb: &'static BlackBox,
    broadcast: Arc<Broadcast>,
    hooks: Arc<hooks::Registry>,
    settings: Settings,
    termlog: Option<TermLog>,
}

/// How a shutdown ends, once the hooks are done.
struct Ending {
    outcome: u32,
    code: u8,
}

impl Run {
    fn main(self, term_rx: Receiver<TermSignal>, cmd_rx: Receiver<Command>) {
        crate::panic::mark_hook_thread();
        let (reason, explicit) = loop {
            select! {
                recv(term_rx) -> t => match t {
                    Ok(t) => break (ShutdownReason::from(t), None),
                    Err(_) => return,
                },
                recv(cmd_rx) -> c => match c {
                    Ok(Command::Request(r)) => break (r, None),
                    Ok(Command::Exit(code)) => break (ShutdownReason::App(format!("exit with {code}")), Some(code)),
                    Ok(Command::Stop) | Err(_) => return,
                },
            }
        };
        self.shutdown(reason, explicit, &term_rx);
    }

    fn shutdown(
        self,
        reason: ShutdownReason,
        explicit: Option<ExitCode>,
        term_rx: &Receiver<TermSignal>,
    ) -> ! {
        let started = Instant::now();
        let grace = match reason {
            ShutdownReason::Panic(_) => self.settings.panic_grace,
            _ => self.settings.grace,
        };
        let deadline = started + grace;
        self.record_request(&reason, grace);
        self.bb.breadcrumb(&format!("shutdown requested: {reason}"));
        self.broadcast.publish(ShutdownRequest {
            reason: reason.clone(),
            requested_at: SystemTime::now(),
        });

        let hooks = self.hooks.take();
        let names: Vec<String> = hooks.iter().map(|(n, _)| n.clone()).collect();
        self.bb.write_shutdown(|s| {
            s.hook_count = names.len().min(MAX_HOOKS) as u32;
            for (slot, name) in s.hooks.iter_mut().zip(&names) {
                slot.name_len = assafe::copy_bytes(&mut slot.name, name.as_bytes());
                slot.status = HOOK_PENDING;
            }
        });

        for (i, (name, hook)) in hooks.into_iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                self.hook_status(i, HOOK_SKIPPED, Duration::ZERO);
                continue;
            }
            let limit = self
                .settings
                .hook_timeout
                .map_or(deadline, |t| (now + t).min(deadline));
            self.hook_status(i, HOOK_RUNNING, Duration::ZERO);
            let done = hooks::spawn(&name, hook);
            let status = loop {
                select! {
                    recv(done) -> r => break match r {
                        Ok(true) => HOOK_OK,
                        _ => HOOK_PANICKED,
                    },
                    recv(term_rx) -> t => {
                        if let Ok(t) = t {
                            if t.signal != Signal::SIGHUP {
                                self.hook_status(i, HOOK_RUNNING, now.elapsed());
                                self.forced(t, &name);
                            }
                        }
                    },
                    recv(crossbeam_channel::at(limit)) -> _ => break HOOK_TIMED_OUT,
                }
            };
            self.hook_status(i, status, now.elapsed());
            if status == HOOK_TIMED_OUT && Instant::now() >= deadline {
                self.timed_out(&name, grace);
            }
        }

        let ending = self.ending(&reason, explicit);
        self.finish(ending.outcome, ending.code, None);
        crate::exit::clean(ending.code)
    }

    fn ending(&self, reason: &ShutdownReason, explicit: Option<ExitCode>) -> Ending {
        match reason {
            ShutdownReason::Signal { signal, .. } => Ending {
                outcome: OUTCOME_CLEAN_EXIT,
                code: match self.settings.clean_exit {
                    CleanExit::Zero => 0,
                    CleanExit::SignalConvention => (128 + signal.number()) as u8,
                },
            },
            ShutdownReason::App(_) => {
                let code = explicit.unwrap_or(ExitCode::Ok);
                let outcome = match code {
                    ExitCode::Ok => OUTCOME_CLEAN_EXIT,
                    ExitCode::Panic => OUTCOME_PANIC,
                    ExitCode::MemoryBudget => OUTCOME_MEMORY_BUDGET,
                    ExitCode::ThreadBudget => OUTCOME_THREAD_BUDGET,
                    ExitCode::ShutdownTimeout => OUTCOME_SHUTDOWN_TIMEOUT,
                    ExitCode::ForcedShutdown => OUTCOME_FORCED_SHUTDOWN,
                    _ => OUTCOME_HANDLER_FAILURE,
                };
                Ending {
                    outcome,
                    code: code.code(),
                }
            }
            ShutdownReason::MemoryBudget(_) => Ending {
                outcome: OUTCOME_MEMORY_BUDGET,
                code: ExitCode::MemoryBudget.code(),
            },
            ShutdownReason::ThreadBudget(_) => Ending {
                outcome: OUTCOME_THREAD_BUDGET,
                code: ExitCode::ThreadBudget.code(),
            },
            ShutdownReason::Panic(_) => Ending {
                outcome: OUTCOME_PANIC,
                code: ExitCode::Panic.code(),
            },
        }
    }

    fn record_request(&self, reason: &ShutdownReason, grace: Duration) {
        self.bb.write_shutdown(|s| {
            s.valid = 1;
            s.requested_at_ns = assafe::now_realtime_ns();
            s.grace_ms = grace.as_millis() as u64;
            s.reason = match reason {
                ShutdownReason::Signal { .. } => REASON_SIGNAL,
                ShutdownReason::App(_) => REASON_APP,
                ShutdownReason::MemoryBudget(_) => REASON_MEMORY,
                ShutdownReason::ThreadBudget(_) => REASON_THREADS,
                ShutdownReason::Panic(_) => REASON_PANIC,
            };
            if let ShutdownReason::Signal {
                signal,
                sender_pid,
                sender_uid,
            } = reason
            {
                s.signal = signal.number() as u32;
                s.sender_pid = sender_pid.unwrap_or(0);
                s.sender_uid = sender_uid.unwrap_or(u32::MAX);
            }
        });
    }

    fn hook_status(&self, i: usize, status: u32, ran: Duration) {
        self.bb.write_shutdown(|s| {
            if let Some(h) = s.hooks.get_mut(i) {
                h.status = status;
                h.duration_us = ran.as_micros() as u64;
            }
        });
    }

    /// Records the end, writes the termination message for abnormal ends.
    fn finish(&self, outcome: u32, code: u8, detail: Option<&str>) {
        if let Some(mut w) = self.bb.claim_end() {
            let end = w.end();
            if let Some(d) = detail {
                end.detail_len = assafe::copy_bytes(&mut end.detail, d.as_bytes());
            }
            crate::budgets::enrich_end(end);
            w.commit(outcome, u32::from(code));
        }
        if outcome != OUTCOME_CLEAN_EXIT {
            if let Some(log) = &self.termlog {
                let summary = match detail {
                    Some(d) => format!("crashguard: exit {code}: {d}"),
                    None => format!("crashguard: exit {code}"),
                };
                log.write(&summary);
            }
        }
    }

    fn timed_out(&self, hook: &str, grace: Duration) -> ! {
        let detail =
            format!("shutdown hook '{hook}' still running when the {grace:?} grace period ended");
        self.bb.breadcrumb(&detail);
        self.finish(
            OUTCOME_SHUTDOWN_TIMEOUT,
            ExitCode::ShutdownTimeout.code(),
            Some(&detail),
        );
        crate::exit::immediate(ExitCode::ShutdownTimeout.code())
    }

    fn forced(&self, t: TermSignal, hook: &str) -> ! {
        let detail = format!("second termination signal ({t}) while shutdown hook '{hook}' ran");
        self.bb.breadcrumb(&detail);
        self.bb.write_shutdown(|_| {});
        if let Some(mut w) = self.bb.claim_end() {
            let end = w.end();
            end.signal = t.signal.number() as u32;
            end.si_code = 0;
            end.sender_pid = t.sender_pid.unwrap_or(0);
            end.sender_uid = t.sender_uid.unwrap_or(u32::MAX);
            end.detail_len = assafe::copy_bytes(&mut end.detail, detail.as_bytes());
            w.commit(
                OUTCOME_FORCED_SHUTDOWN,
                u32::from(ExitCode::ForcedShutdown.code()),
            );
        }
        if let Some(log) = &self.termlog {
            log.write(&format!(
                "crashguard: exit {}: {detail}",
                ExitCode::ForcedShutdown.code()
            ));
        }
        crate::exit::immediate(ExitCode::ForcedShutdown.code())
    }
}
