//! `install()`: validate, open the black box, read the previous run, arm the handlers.
//!
//! The order matters. The black box is armed before any handler, so a handler never runs
//! without somewhere to write; the fatal handlers go in before the termination listener and the
//! samplers, so a crash in their start-up is recorded; and every step undoes the earlier ones
//! when a later one fails, so a failed `install()` leaves the process as it found it.

use std::sync::atomic::{AtomicBool, Ordering};

use crashguard_blackbox::{BlackBox, Options};
use crashguard_signals::{FatalConfig, FatalHandlers};

use crate::guard::{Guard, Inner};
use crate::{Config, Error, previous};

/// Whether a guard is alive in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Releases the "installed" flag if `install()` fails half-way.
struct InstallTicket {
    armed: Option<&'static BlackBox>,
    done: bool,
}

impl Drop for InstallTicket {
    fn drop(&mut self) {
        if !self.done {
            if let Some(bb) = self.armed {
                bb.disarm();
            }
            INSTALLED.store(false, Ordering::Release);
        }
    }
}

pub(crate) fn release() {
    INSTALLED.store(false, Ordering::Release);
}

pub(crate) fn install(config: Config) -> Result<Guard, Error> {
    config.validate()?;
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Err(Error::AlreadyInstalled);
    }
    let mut ticket = InstallTicket {
        armed: None,
        done: false,
    };

    let report_dir = config.resolved_report_dir();
    let mut slot = crashguard_blackbox::open_slot(
        &report_dir,
        &Options {
            app: config.app.clone(),
            ring_capacity: config.breadcrumb_capacity,
            stack_capacity: config.crash_stack_bytes,
        },
    )?;
    // The previous run's report is stored before its black box is reset, so a failure in
    // between loses nothing.
    let previous = previous::process(
        slot.previous.take(),
        slot.previous_raw.take().as_deref(),
        &report_dir,
        config.retention,
        config.symbolize_previous,
    );
    let blackbox = slot
        .reset()?
        .arm()
        .map_err(|_| Error::BlackBox(crashguard_blackbox::Error::AlreadyArmed))?;
    ticket.armed = Some(blackbox);

    if let Some(adj) = config.oom_score_adj {
        crate::budgets::apply_oom_score_adj(adj)?;
    }

    // The installing thread gets a guarded alternate stack so that a stack overflow on it can
    // be handled; threads spawned through `crashguard::thread` get one at start.
    crashguard_signals::altstack::prepare_current().map_err(Error::Signals)?;
    crashguard_budget::thread::set_thread_start_hook(crate::thread::on_thread_start);
    let termlog = crate::termlog::TermLog::open(&config.termination_log)?;
    let mut fatal_config = FatalConfig::new()
        .policy(config.fatal_policy)
        .watchdog_timeout(config.handler_timeout)
        .enricher(&crate::budgets::CENSUS);
    if let Some(log) = &termlog {
        let fd = log.duplicate().map_err(|source| Error::Io {
            what: "duplicate the termination log's descriptor",
            source,
        })?;
        fatal_config = fatal_config.termination_log(fd);
    }
    let fatal = FatalHandlers::install(fatal_config).map_err(Error::Signals)?;

    let shutdown = crate::shutdown::Coordinator::start(&config, blackbox, termlog)?;
    let budgets = crate::budgets::Budgets::start(&config, blackbox, shutdown.handle())?;
    // Last, so that a failed install never leaves the panic hook armed with a stopped
    // coordinator's handle.
    let panic_hook = crate::panic::arm(crate::panic::Armed {
        policy: config.panic_policy,
        shutdown: shutdown.handle(),
        bb: blackbox,
        report_dir: report_dir.clone(),
        retention: config.retention,
    });

    blackbox.breadcrumb("crashguard installed");
    ticket.done = true;
    Ok(Guard::new(Inner {
        config,
        report_dir,
        blackbox,
        previous,
        fatal: Some(fatal),
        shutdown: Some(shutdown),
        budgets: Some(budgets),
        panic_hook: Some(panic_hook),
    }))
}
