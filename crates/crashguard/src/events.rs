//! crashguard's own lifecycle as `tracing` events (feature `tracing`; without it every function
//! here does nothing), under the target `crashguard`, so that existing log pipelines carry it:
//!
//! | event | level | fields |
//! |---|---|---|
//! | installed | INFO | `app`, `report_dir`, `blackbox` |
//! | previous run (once, at install) | WARN when abnormal, else INFO | `outcome`, `exit_code`, `pid`, `signature`, `stored_at`, `report` (the JSON) |
//! | warning at install (overlay root) | WARN | `report_dir` |
//! | shutdown requested | WARN | `kind` (the report's `shutdown.reason`: signal, app, memory_budget, thread_budget, panic), `reason` (one line) |
//! | hook done | INFO (`ok`) / WARN (`timed_out`, `panicked`) | `hook`, `status`, `duration_ms` |
//! | drain done / overdue | INFO / ERROR | `waited_ms` / `detail` |
//! | run ended | INFO when clean, else ERROR | `outcome`, `exit_code`, `detail` |
//! | memory soft threshold | WARN | `used_bytes`, `soft_bytes`, `shutdown_bytes` |
//! | panic recorded | ERROR | `number`, `thread`, `message`, `location` |
//!
//! Install the subscriber before crashguard to see the install-time events. The
//! `BreadcrumbLayer` skips events of this target: they are in the black box already.

#[cfg(feature = "tracing")]
use crashguard_blackbox::Report;

/// The target of every event here.
#[cfg(feature = "tracing")]
pub(crate) const TARGET: &str = "crashguard";

/// `install()` completed.
pub(crate) fn installed(app: &str, report_dir: &std::path::Path, blackbox: &std::path::Path) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: TARGET,
        app,
        report_dir = %report_dir.display(),
        blackbox = %blackbox.display(),
        "crashguard installed"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (app, report_dir, blackbox);
}

/// The previous run's report, once at install.
#[cfg(feature = "tracing")]
pub(crate) fn previous_run(report: &Report, json: &str, stored_at: Option<&std::path::Path>) {
    let stored_at = stored_at.map(|p| p.display().to_string());
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                outcome = report.outcome.as_str(),
                exit_code = report.exit_code,
                pid = report.pid,
                signature = %report.signature,
                stored_at,
                report = json,
                "previous run: {report}"
            )
        };
    }
    if report.outcome.is_abnormal() {
        emit!(tracing::Level::WARN);
    } else {
        emit!(tracing::Level::INFO);
    }
}

/// A warning `install()` also printed on stderr.
pub(crate) fn install_warning(report_dir: &std::path::Path, warning: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, report_dir = %report_dir.display(), "{warning}");
    #[cfg(not(feature = "tracing"))]
    let _ = (report_dir, warning);
}

/// A shutdown started.
pub(crate) fn shutdown_requested(reason: &crate::ShutdownReason) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: TARGET,
        kind = reason.trigger().as_str(),
        reason = %reason,
        "shutdown requested"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = reason;
}

/// A hook ended (`status` as in the report: ok, panicked, timed_out).
pub(crate) fn hook_done(hook: &str, status: &str, duration: std::time::Duration) {
    #[cfg(feature = "tracing")]
    {
        let duration_ms = duration.as_millis() as u64;
        if status == "ok" {
            tracing::info!(target: TARGET, hook, status, duration_ms, "shutdown hook done");
        } else {
            tracing::warn!(target: TARGET, hook, status, duration_ms, "shutdown hook failed");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (hook, status, duration);
}

/// The application ended its drain (and the holds were released) after the hooks.
pub(crate) fn drain_done(waited: std::time::Duration) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: TARGET,
        waited_ms = waited.as_millis() as u64,
        "application drain done"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = waited;
}

/// The run is about to end with `outcome` and `code`.
pub(crate) fn ended(outcome: &str, clean: bool, code: u8, detail: Option<&str>) {
    #[cfg(feature = "tracing")]
    {
        if clean {
            tracing::info!(target: TARGET, outcome, exit_code = code, detail, "run ended");
        } else {
            tracing::error!(target: TARGET, outcome, exit_code = code, detail, "run ended");
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (outcome, clean, code, detail);
}

/// Memory crossed the soft threshold.
pub(crate) fn memory_soft(status: &crate::memory::MemoryStatus) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: TARGET,
        used_bytes = status.used_bytes,
        soft_bytes = status.soft_bytes,
        shutdown_bytes = status.shutdown_bytes,
        "memory soft threshold crossed"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = status;
}

/// A panic was recorded.
pub(crate) fn panicked(number: u64, thread: &str, message: &str, location: &str) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: TARGET, number, thread, message, location, "panic recorded");
    #[cfg(not(feature = "tracing"))]
    let _ = (number, thread, message, location);
}
