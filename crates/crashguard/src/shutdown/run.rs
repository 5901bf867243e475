//! The coordinator thread: waits for the first request, then runs the one shutdown — publish,
//! hooks under the deadline, record, exit.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crashguard_blackbox::layout::*;
use crashguard_blackbox::{BlackBox, ExitCode, HookStatus, Outcome, assafe};
use crashguard_signals::{Signal, TermSignal};
use crossbeam_channel::{Receiver, Sender, select};

use super::hooks::{self, HookEnd};
use super::signal::Broadcast;
use super::{AppRequest, Command, PanicSite, ShutdownReason, ShutdownRequest};
use crate::Config;
use crate::config::CleanExit;
use crate::termlog::TermLog;

#[derive(Clone, Debug)]
pub(super) struct Settings {
    grace: Duration,
    hook_timeout: Option<Duration>,
    panic_grace: Duration,
    clean_exit: CleanExit,
}

impl From<&Config> for Settings {
    fn from(config: &Config) -> Self {
        Settings {
            grace: config.shutdown_grace,
            hook_timeout: config.hook_timeout,
            panic_grace: config.panic_grace,
            clean_exit: config.clean_exit,
        }
    }
}

/// The coordinator thread's state.
pub(super) struct Run {
    pub(super) bb: &'static BlackBox,
    pub(super) broadcast: Arc<Broadcast>,
    pub(super) hooks: Arc<hooks::Registry>,
    pub(super) settings: Settings,
    pub(super) termlog: Option<TermLog>,
    /// The panicking thread, when a panic started the shutdown.
    pub(super) panic_site: Option<PanicSite>,
    /// systemd's notification socket, when there is one (feature `systemd`).
    pub(super) notify: Option<Arc<crate::systemd::Notifier>>,
}

/// How the application ended its part of a shutdown.
enum AppEnd {
    /// [`crate::Guard::exit`]: exit with this code.
    Exit(ExitCode),
    /// [`crate::Guard::shutdown`]: record this code and reply with the status instead of
    /// exiting.
    Return(ExitCode, Sender<u8>),
    /// The guard was dropped: `main` returned.
    Dropped,
}

impl AppEnd {
    fn code(&self) -> Option<ExitCode> {
        match self {
            AppEnd::Exit(code) | AppEnd::Return(code, _) => Some(*code),
            AppEnd::Dropped => None,
        }
    }
}

/// How a shutdown ends.
struct Ending {
    outcome: Outcome,
    code: u8,
}

/// The outcome recorded for an explicit exit code.
fn outcome_of(code: ExitCode) -> Outcome {
    code.outcome()
}

/// Whether this signal, arriving during a shutdown, forces an immediate exit.
fn forces(signal: Signal) -> bool {
    signal != Signal::SIGHUP
}

/// The end a root cause other than a request implies (a panic or a budget), if it is one.
fn root_cause(reason: &ShutdownReason) -> Option<Ending> {
    let code = match reason {
        ShutdownReason::Panic(_) => ExitCode::Panic,
        ShutdownReason::MemoryBudget(_) => ExitCode::MemoryBudget,
        ShutdownReason::ThreadBudget(_) => ExitCode::ThreadBudget,
        _ => return None,
    };
    Some(Ending {
        outcome: outcome_of(code),
        code: code.code(),
    })
}

/// Handles a command that arrives while a shutdown runs. The application ending its part is
/// remembered (the first such end counts); other requests are moot, since whoever sent them
/// waits for the process to end. Returns a signal that forces an immediate exit.
fn during(c: Command, app_end: &mut Option<AppEnd>) -> Option<TermSignal> {
    let end = match c {
        Command::Signal(t) if forces(t.signal) => return Some(t),
        Command::Exit(code) => AppEnd::Exit(code),
        Command::Finish(code, reply) => AppEnd::Return(code, reply),
        Command::Stop => AppEnd::Dropped,
        Command::Signal(_) | Command::Request(_) | Command::Panic(..) | Command::Released => {
            return None;
        }
    };
    if app_end.is_none() {
        *app_end = Some(end);
    }
    None
}

/// What the shutdown was waiting for after its hooks, as a clause ("the application drained").
fn draining(app_pending: bool, holds: usize) -> String {
    match (app_pending, holds) {
        (true, 0) => "the application drained".to_owned(),
        (true, n) => format!("the application drained ({n} holds alive)"),
        (false, n) => format!("{n} holds were alive"),
    }
}

/// The detail of a drain that missed the deadline.
fn overdue(app_pending: bool, holds: usize, grace: Duration) -> String {
    let what = match (app_pending, holds) {
        (true, 0) => "the application had not ended its drain".to_owned(),
        (true, n) => format!("the application had not ended its drain and {n} holds were alive"),
        (false, n) => format!("{n} holds were still alive"),
    };
    format!("{what} when the {grace:?} grace period ended (the hooks had finished)")
}

impl Run {
    pub(super) fn main(mut self, cmd_rx: Receiver<Command>) {
        // A panic on this thread is a crashguard bug; it must not start another shutdown.
        hooks::mark_hook_thread();
        // Until a shutdown begins, this thread never preempts the one that wakes it: an
        // application thread that just read the signal returns with the request first, and
        // this thread runs at the next scheduling point (it keeps its full CPU share).
        crate::sys::set_batch(true);
        let (reason, mut app_end) = loop {
            match cmd_rx.recv() {
                Ok(Command::Released) => continue,
                Ok(Command::Request(r)) => break (r, None),
                Ok(Command::Panic(r, site)) => {
                    self.panic_site = Some(site);
                    break (r, None);
                }
                Ok(Command::Signal(t)) => break (ShutdownReason::from(t), None),
                Ok(Command::Exit(code)) => {
                    break (
                        ShutdownReason::App(AppRequest::Exit(code)),
                        Some(AppEnd::Exit(code)),
                    );
                }
                Ok(Command::Finish(code, reply)) => {
                    break (
                        ShutdownReason::App(AppRequest::Shutdown(code)),
                        Some(AppEnd::Return(code, reply)),
                    );
                }
                // A signal that arrived while the guard started dropping still gets its
                // shutdown, and so does a request a waiting application thread published
                // whose command is still on its way.
                Ok(Command::Stop) | Err(_) => {
                    if let Some(listen) = self.broadcast.signals.get() {
                        listen.close(&self.broadcast);
                    }
                    match self.broadcast.get() {
                        Some(r) => break (r.reason.clone(), Some(AppEnd::Dropped)),
                        None => return,
                    }
                }
            }
        };
        // The shutdown runs at the ordinary policy (hook threads inherit it), and
        // `crashguard-sig` watches for a second signal again even if an application thread
        // read the first.
        crate::sys::set_batch(false);
        if let Some(listen) = self.broadcast.signals.get() {
            listen.poke();
        }
        // The first published request is the shutdown's reason, whoever published it (an
        // application thread may have read a signal first), and the application hears of it
        // before anything else happens here.
        self.broadcast.publish(ShutdownRequest {
            reason: reason.clone(),
            requested_at: SystemTime::now(),
        });
        let reason = self.broadcast.get().map_or(reason, |r| r.reason.clone());
        // Signals queued before the shutdown began are part of the request that began it; only
        // those that arrive from now on count as a second signal. Of the commands queued by now
        // only the application's end of its part matters (it may already have drained).
        while let Ok(c) = cmd_rx.try_recv() {
            let _ = during(c, &mut app_end);
        }
        let ending = self.shutdown(&reason, &mut app_end, cmd_rx);
        let detail = root_cause(&reason).map(|_| reason.to_string());
        self.finish(ending.outcome, ending.code, detail.as_deref());
        match app_end {
            Some(AppEnd::Return(_, reply)) => {
                self.hooks.close();
                let _ = reply.send(ending.code);
            }
            _ => crate::exit::clean(ending.code),
        }
    }

    /// Runs the hooks, then waits for the application's drain and the holds; returns how the
    /// process should end, unless a deadline or a second signal ends it first.
    fn shutdown(
        &self,
        reason: &ShutdownReason,
        app_end: &mut Option<AppEnd>,
        cmd_rx: Receiver<Command>,
    ) -> Ending {
        let grace = match reason {
            ShutdownReason::Panic(_) => self.settings.panic_grace,
            _ => self.settings.grace,
        };
        let deadline = Instant::now() + grace;
        self.record_request(reason, grace);
        self.bb.breadcrumb(&format!("shutdown requested: {reason}"));
        crate::events::shutdown_requested(reason);
        if let Some(n) = &self.notify {
            n.send("STOPPING=1");
        }
        self.extend_stop_timeout(deadline);

        let mut commands = cmd_rx;
        let mut hook_exit = None;
        let mut index = 0usize;
        loop {
            let batch = self.hooks.take_batch();
            if batch.is_empty() {
                break;
            }
            let first = index;
            let total = first + batch.len();
            self.bb.write_shutdown(|s| {
                for (k, (name, _)) in batch.iter().enumerate() {
                    if let Some(slot) = s.hooks.get_mut(first + k) {
                        slot.name_len = assafe::copy_bytes(&mut slot.name, name.as_bytes());
                        slot.status = HookStatus::Pending.code();
                        slot.duration_us = 0;
                    }
                }
                s.hook_count = total.min(MAX_HOOKS) as u32;
            });
            for (name, hook) in batch {
                let i = index;
                index += 1;
                let now = Instant::now();
                if now >= deadline {
                    self.skip(i..total);
                    self.timed_out(
                        reason,
                        &format!("the {grace:?} grace period ended before shutdown hook '{name}' could start"),
                    );
                }
                let limit = self
                    .settings
                    .hook_timeout
                    .map_or(deadline, |t| (now + t).min(deadline));
                self.hook_status(i, HookStatus::Running, Duration::ZERO);
                self.extend_stop_timeout(deadline);
                let done = hooks::spawn(&name, hook);
                let status = loop {
                    select! {
                        recv(done) -> r => break match r {
                            Ok(HookEnd::Returned) => HookStatus::Ok,
                            Ok(HookEnd::Exit(code)) => {
                                hook_exit = Some(code);
                                HookStatus::Ok
                            }
                            Ok(HookEnd::Panicked) | Err(_) => HookStatus::Panicked,
                        },
                        recv(commands) -> c => match c {
                            Ok(c) => if let Some(t) = during(c, app_end) {
                                self.hook_status(i, HookStatus::Running, now.elapsed());
                                self.skip(i + 1..total);
                                self.forced(t, &format!("shutdown hook '{name}' ran"));
                            },
                            Err(_) => commands = crossbeam_channel::never(),
                        },
                        recv(crossbeam_channel::at(limit)) -> _ => break HookStatus::TimedOut,
                    }
                };
                self.hook_status(i, status, now.elapsed());
                crate::events::hook_done(&name, status.as_str(), now.elapsed());
                if status == HookStatus::TimedOut && Instant::now() >= deadline {
                    self.skip(i + 1..total);
                    self.timed_out(
                        reason,
                        &format!(
                            "shutdown hook '{name}' still running when the {grace:?} grace period ended"
                        ),
                    );
                }
            }
        }
        self.bb.breadcrumb("shutdown hooks done");

        // The hooks are done; the process ends when the application has ended its part (if it
        // listens for the request) and the last hold is gone, or at the deadline.
        let drain_started = Instant::now();
        let mut waited = false;
        loop {
            let app_pending = app_end.is_none() && self.broadcast.app_listens();
            let holds = self.broadcast.holds();
            if !app_pending && holds == 0 {
                break;
            }
            if !waited {
                self.extend_stop_timeout(deadline);
            }
            waited = true;
            if Instant::now() >= deadline {
                self.timed_out(reason, &overdue(app_pending, holds, grace));
            }
            select! {
                recv(commands) -> c => match c {
                    Ok(c) => if let Some(t) = during(c, app_end) {
                        self.forced(t, &draining(app_pending, holds));
                    },
                    Err(_) => commands = crossbeam_channel::never(),
                },
                // The loop re-checks the deadline.
                recv(crossbeam_channel::at(deadline)) -> _ => {}
            }
        }
        if waited {
            crate::events::drain_done(drain_started.elapsed());
            self.bb.breadcrumb(&format!(
                "application drain done {} ms after the hooks",
                drain_started.elapsed().as_millis()
            ));
        }
        // `Ok` from the application means "my drain went well": the shutdown's own code
        // stands (0, or 128 + n under the signal convention).
        let explicit = app_end
            .as_ref()
            .and_then(AppEnd::code)
            .filter(|c| *c != ExitCode::Ok);
        self.ending(reason, explicit, hook_exit)
    }

    fn ending(
        &self,
        reason: &ShutdownReason,
        explicit: Option<ExitCode>,
        hook_exit: Option<ExitCode>,
    ) -> Ending {
        if let Some(e) = root_cause(reason) {
            return e;
        }
        if let Some(code) = hook_exit.or(explicit) {
            return Ending {
                outcome: outcome_of(code),
                code: code.code(),
            };
        }
        match reason {
            ShutdownReason::Signal { signal, .. } => Ending {
                outcome: Outcome::CleanExit,
                code: match self.settings.clean_exit {
                    CleanExit::Zero => 0,
                    CleanExit::SignalConvention => (128 + signal.number()) as u8,
                },
            },
            _ => Ending {
                outcome: Outcome::CleanExit,
                code: ExitCode::Ok.code(),
            },
        }
    }

    /// Tells systemd (when it listens) that the stop takes until `deadline`, and a second
    /// more: the hooks and the drain may use the whole grace period, and crashguard's own
    /// deadline is to end the process before systemd's SIGKILL does.
    fn extend_stop_timeout(&self, deadline: Instant) {
        if let Some(n) = &self.notify {
            let left = deadline.saturating_duration_since(Instant::now());
            n.extend(left + Duration::from_secs(1));
        }
    }

    fn record_request(&self, reason: &ShutdownReason, grace: Duration) {
        self.bb.write_shutdown(|s| {
            s.valid = 1;
            s.requested_at_ns = assafe::now_realtime_ns();
            s.grace_ms = grace.as_millis() as u64;
            s.reason = reason.trigger().code();
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

    fn hook_status(&self, i: usize, status: HookStatus, ran: Duration) {
        self.bb.write_shutdown(|s| {
            if let Some(h) = s.hooks.get_mut(i) {
                h.status = status.code();
                h.duration_us = ran.as_micros() as u64;
            }
        });
    }

    /// Marks hooks that will never run because the process is ending early.
    fn skip(&self, range: std::ops::Range<usize>) {
        for i in range {
            self.hook_status(i, HookStatus::Skipped, Duration::ZERO);
        }
    }

    /// Records the end and writes the termination message for abnormal ends.
    fn finish(&self, outcome: Outcome, code: u8, detail: Option<&str>) {
        crate::events::ended(
            outcome.as_str(),
            outcome == Outcome::CleanExit,
            code,
            detail,
        );
        // Panics the process survived (`PanicPolicy::Unwind`) are surfaced in the end of the
        // run too, with their count; each has a report of its own.
        let panics = self.broadcast.panics();
        let counted = match (detail, panics) {
            (_, 0) => None,
            (None, 1) => Some("1 panic during the run; it is in the panic section".to_owned()),
            (None, n) => Some(format!(
                "{n} panics during the run; the last one is in the panic section"
            )),
            (Some(d), n) if n > 1 => Some(format!("{d}; {n} panics during the run")),
            (Some(_), _) => None,
        };
        let detail = counted.as_deref().or(detail);
        if let Some(mut w) = self.bb.claim_end() {
            let end = w.end();
            if let Some(d) = detail {
                end.detail_len = assafe::copy_bytes(&mut end.detail, d.as_bytes());
            }
            // The run ended because of that thread's panic: the report names it, not this one.
            if let Some(site) = self.panic_site {
                end.tid = site.tid;
                end.thread_name = site.thread_name;
            }
            crate::census::enrich_end(end);
            w.commit(outcome, u32::from(code));
        }
        if outcome != Outcome::CleanExit
            && let Some(log) = &self.termlog
        {
            log.write_summary(outcome, code, detail);
        }
    }

    fn timed_out(&self, reason: &ShutdownReason, what: &str) -> ! {
        self.bb.breadcrumb(what);
        match root_cause(reason) {
            Some(e) => {
                let detail = format!("{reason}; then {what}");
                self.finish(e.outcome, e.code, Some(&detail));
                crate::exit::immediate(e.code)
            }
            None => {
                let code = ExitCode::ShutdownTimeout.code();
                self.finish(Outcome::ShutdownTimeout, code, Some(what));
                crate::exit::immediate(code)
            }
        }
    }

    /// Ends the process at once for a second signal that arrived while `what` (a clause:
    /// "shutdown hook 'drain' ran").
    fn forced(&self, t: TermSignal, what: &str) -> ! {
        let detail = format!("second termination signal ({t}) while {what}");
        crate::events::ended(
            Outcome::ForcedShutdown.as_str(),
            false,
            ExitCode::ForcedShutdown.code(),
            Some(&detail),
        );
        self.bb.breadcrumb(&detail);
        let code = ExitCode::ForcedShutdown.code();
        if let Some(mut w) = self.bb.claim_end() {
            let end = w.end();
            end.signal = t.signal.number() as u32;
            end.si_code = 0;
            end.sender_pid = t.sender_pid.unwrap_or(0);
            end.sender_uid = t.sender_uid.unwrap_or(u32::MAX);
            end.detail_len = assafe::copy_bytes(&mut end.detail, detail.as_bytes());
            crate::census::enrich_end(end);
            w.commit(Outcome::ForcedShutdown, u32::from(code));
        }
        if let Some(log) = &self.termlog {
            log.write_summary(Outcome::ForcedShutdown, code, Some(&detail));
        }
        crate::exit::immediate(code)
    }
}
