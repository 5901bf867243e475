//! `install()`: validate, open the black box, read the previous run, arm the handlers — as one
//! [`Installation`] value whose `Drop` undoes every step in reverse.
//!
//! The order matters. The black box is armed before any handler, so a handler never runs
//! without somewhere to write; the fatal handlers go in before the termination listener and the
//! samplers, so a crash in their start-up is recorded; and a step that fails drops the
//! half-built installation, which undoes the earlier steps, so a failed `install()` leaves the
//! process as it found it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crashguard_blackbox::{BlackBox, Outcome};
use crashguard_budget::thread::{self, InstalledThreadSettings};
use crashguard_signals::{FatalConfig, FatalHandlers, Signal};

use crate::budgets::Budgets;
use crate::error::IoStep;
use crate::panic::PanicHook;
use crate::previous::PreviousRun;
use crate::shutdown::Coordinator;
use crate::systemd::{Notifier, Watchdog};
use crate::{Config, Error};

/// Whether an installation is alive in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The process's one installation slot, held for the life of an [`Installation`].
#[derive(Debug)]
struct Flag;

impl Flag {
    fn take() -> Result<Flag, Error> {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyInstalled);
        }
        Ok(Flag)
    }
}

impl Drop for Flag {
    fn drop(&mut self) {
        INSTALLED.store(false, Ordering::Release);
    }
}

/// The armed black box. Dropping it records the end of the run — unless the installation never
/// completed, or something else recorded it already — and disarms the box.
#[derive(Debug)]
struct Armed {
    bb: &'static BlackBox,
    /// Set once `install()` succeeded: only a completed installation ends a run.
    record_end: bool,
}

impl Drop for Armed {
    fn drop(&mut self) {
        // Leaving `main` with the guard alive is a clean end of the guarded run, unless the
        // guard is dropped while a panic unwinds (`PanicPolicy::Unwind` and a panicking
        // `main`): std then exits with 101. If something else already ended the run (a
        // shutdown that is exiting, `Guard::shutdown`), its record stands.
        if self.record_end
            && let Some(w) = self.bb.claim_end()
        {
            if std::thread::panicking() {
                w.commit(Outcome::Panic, 101);
            } else {
                w.commit(Outcome::CleanExit, 0);
            }
        }
        self.bb.disarm();
    }
}

/// Everything `install()` set up, one step per field in install order. Dropping it undoes the
/// steps in reverse (see the `Drop` impl), whether `install()` completed or failed half-way.
#[derive(Debug)]
pub(crate) struct Installation {
    pub(crate) config: Config,
    pub(crate) report_dir: PathBuf,
    pub(crate) previous: PreviousRun,
    flag: Option<Flag>,
    blackbox: Option<Armed>,
    /// The guarded threads' start hook (an alternate signal stack for each).
    thread_start: Option<InstalledThreadSettings>,
    fatal: Option<FatalHandlers>,
    shutdown: Option<Coordinator>,
    budgets: Option<Budgets>,
    panic_hook: Option<PanicHook>,
    notifier: Option<Arc<Notifier>>,
    watchdog: Option<Watchdog>,
}

impl Installation {
    /// The armed black box.
    pub(crate) fn blackbox(&self) -> &'static BlackBox {
        match &self.blackbox {
            Some(a) => a.bb,
            None => unreachable!("an installation handed out is complete"),
        }
    }

    /// The shutdown coordinator.
    pub(crate) fn coordinator(&self) -> &Coordinator {
        match &self.shutdown {
            Some(c) => c,
            None => unreachable!("an installation handed out is complete"),
        }
    }

    /// The budgets' samplers.
    pub(crate) fn budgets(&self) -> Option<&Budgets> {
        self.budgets.as_ref()
    }
}

impl Drop for Installation {
    /// Undoes `install()` step by step, in reverse.
    fn drop(&mut self) {
        drop(self.watchdog.take());
        drop(self.notifier.take());
        drop(self.panic_hook.take());
        drop(self.budgets.take());
        // A termination signal that arrived while the coordinator stopped is re-raised once
        // the dispositions from before install are back (below).
        let pending: Option<Signal> = self.shutdown.take().and_then(Coordinator::stop);
        if let Some(f) = self.fatal.take() {
            let _ = f.uninstall();
        }
        drop(self.thread_start.take());
        drop(self.blackbox.take());
        drop(self.flag.take());
        if let Some(signal) = pending {
            // The disposition from before install (by default: terminate) now acts on it.
            // SAFETY: raise has no preconditions; the number is a valid signal.
            unsafe { libc::raise(signal.number()) };
        }
    }
}

/// Runs every step of `install()`; the caller wraps the result in a `Guard`.
pub(crate) fn install(config: Config) -> Result<Installation, Error> {
    config.validate()?;
    let report_dir = config.resolved_report_dir();
    let mut inst = Installation {
        flag: Some(Flag::take()?),
        config,
        report_dir,
        previous: PreviousRun::default(),
        blackbox: None,
        thread_start: None,
        fatal: None,
        shutdown: None,
        budgets: None,
        panic_hook: None,
        notifier: None,
        watchdog: None,
    };
    let config = inst.config.clone();
    let report_dir = inst.report_dir.clone();

    // Every slot's record is stored before that slot is reset, so a failure in between loses
    // nothing; a record that cannot be stored stays in its slot.
    let (blackbox, previous) = crate::previous::collect(&config, &report_dir)?;
    inst.previous = previous;
    announce_previous(&inst.previous, config.previous_run_to_stderr);
    let blackbox = blackbox
        .arm()
        .map_err(|_| Error::BlackBox(crashguard_blackbox::Error::AlreadyArmed))?;
    inst.blackbox = Some(Armed {
        bb: blackbox,
        record_end: false,
    });
    if crate::sys::on_overlay(&report_dir) {
        let warning = overlay_warning(&report_dir);
        eprintln!("{warning}");
        crate::events::install_warning(&report_dir, &warning);
        blackbox.breadcrumb("report directory on an overlay filesystem");
    }

    if let Some(adj) = config.oom_score_adj {
        crate::budgets::apply_oom_score_adj(adj)?;
    }

    // The installing thread gets a guarded alternate stack so that a stack overflow on it can
    // be handled; threads spawned through `crashguard::thread` get one at start.
    crashguard_signals::altstack::prepare_current().map_err(Error::Signals)?;
    inst.thread_start = Some(
        thread::install(thread::settings().on_start(crate::thread::on_thread_start))
            .map_err(Error::ThreadBudget)?,
    );

    let termlog = crate::termlog::TermLog::open(&config.termination_log)?;
    let mut fatal_config = FatalConfig::new()
        .policy(config.fatal_policy)
        .watchdog_timeout(config.handler_timeout)
        .enricher(&crate::census::CENSUS);
    if let Some(log) = &termlog {
        let fd = log.duplicate().map_err(|source| Error::Io {
            what: IoStep::DuplicateTerminationLog,
            source,
        })?;
        fatal_config = fatal_config.termination_log(fd);
    }
    inst.fatal = Some(FatalHandlers::install(fatal_config).map_err(Error::Signals)?);

    let notifier = Notifier::from_env();
    let shutdown = Coordinator::start(&config, blackbox, termlog, notifier.clone())?;
    let handle = shutdown.handle();
    inst.shutdown = Some(shutdown);
    inst.budgets = Some(Budgets::start(&config, handle.clone())?);
    // Last of the handlers, so that a failed install never leaves the panic hook armed with a
    // stopped coordinator's handle.
    inst.panic_hook = Some(crate::panic::arm(crate::panic::Armed {
        policy: config.panic_policy,
        shutdown: handle,
        bb: blackbox,
        report_dir: report_dir.clone(),
        retention: config.retention,
    }));

    if let Some(n) = &notifier {
        n.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        inst.watchdog = Watchdog::start(n);
    }
    inst.notifier = notifier;
    blackbox.breadcrumb("crashguard installed");
    crate::events::installed(&config.app, &report_dir, blackbox.path());
    if let Some(a) = inst.blackbox.as_mut() {
        a.record_end = true;
    }
    Ok(inst)
}

/// Hands the previous run's report to the logs once: one JSON line on stderr (unless the
/// configuration opted out), and a structured `tracing` event (feature `tracing`).
fn announce_previous(previous: &PreviousRun, to_stderr: bool) {
    let Some(report) = previous.report() else {
        return;
    };
    let json = serde_json::to_string(report).unwrap_or_default();
    if to_stderr {
        eprintln!("{}", previous_run_line(&json));
    }
    #[cfg(feature = "tracing")]
    crate::events::previous_run(report, &json, previous.stored_at());
}

/// The stderr line: one JSON object, `{"crashguard":"previous_run","report":{...}}`, so a log
/// pipeline that parses JSON lines picks it up whole.
fn previous_run_line(report_json: &str) -> String {
    format!("{{\"crashguard\":\"previous_run\",\"report\":{report_json}}}")
}

/// The warning for a report directory on an overlay filesystem.
fn overlay_warning(dir: &std::path::Path) -> String {
    format!(
        "crashguard: warning: the report directory {} is on an overlay filesystem (a container's \
         root); its reports are lost when the container is replaced. Mount a volume there \
         (Kubernetes: an emptyDir survives container restarts) or set Config::report_dir; \
         see docs/operations.md",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_previous_run_line_is_one_json_object() {
        let line = super::previous_run_line(r#"{"outcome":"panic","exit_code":70}"#);
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["crashguard"], "previous_run");
        assert_eq!(v["report"]["exit_code"], 70);
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn the_overlay_warning_names_the_directory_and_the_fix() {
        let w = super::overlay_warning(std::path::Path::new("/crash-reports"));
        assert!(w.starts_with("crashguard: warning: the report directory /crash-reports "));
        assert!(w.contains("emptyDir") && w.contains("Config::report_dir"));
        assert_eq!(w.lines().count(), 1);
    }
}
