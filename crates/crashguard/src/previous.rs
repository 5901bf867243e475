//! What `install()` does with the previous run's black box: refine, symbolize, store.

use std::path::{Path, PathBuf};

use crashguard_blackbox::{DecodeError, Frame, Outcome, Report, Retention};

/// What the previous run left in this slot, from [`crate::Guard::previous`].
#[derive(Debug, Default)]
pub struct PreviousRun {
    /// The decoded report, when the slot held a readable record.
    pub(crate) report: Option<Report>,
    /// Where the report was stored, when it was abnormal enough to keep.
    pub(crate) stored_at: Option<PathBuf>,
    /// Why an abnormal report could not be stored (it is still in `report`).
    pub(crate) store_error: Option<crashguard_blackbox::Error>,
    /// Why the slot's contents could not be read; the file was kept for inspection.
    pub(crate) error: Option<PreviousRunError>,
}

impl PreviousRun {
    /// How the previous run ended, if it left a readable black box. Check
    /// [`Report::outcome`]: a clean exit is reported too.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// Where the report was stored (only abnormal ends are stored).
    pub fn stored_at(&self) -> Option<&Path> {
        self.stored_at.as_deref()
    }

    /// Why the report could not be written to the report directory, if it could not (a full
    /// disk, a `reports` entry that is not a directory). The report is still available from
    /// [`PreviousRun::report`]; log it, because its black box has been reset.
    pub fn store_error(&self) -> Option<&crashguard_blackbox::Error> {
        self.store_error.as_ref()
    }

    /// Why the previous run's black box could not be read, if it could not. Its bytes were
    /// kept in the report directory, and this run started with a fresh black box.
    pub fn read_error(&self) -> Option<&PreviousRunError> {
        self.error.as_ref()
    }
}

/// A black box that could not be decoded. The bytes were kept in the report directory so that
/// nothing is lost; the new run starts with a fresh black box.
#[derive(Debug, Clone)]
pub struct PreviousRunError {
    /// What was wrong with it.
    pub error: DecodeError,
    /// Where its bytes were saved, when they could be.
    pub saved_to: Option<PathBuf>,
}

impl std::fmt::Display for PreviousRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "previous run's black box is unreadable: {}", self.error)?;
        if let Some(p) = &self.saved_to {
            write!(f, " (kept as {})", p.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for PreviousRunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

pub(crate) fn process(
    previous: Option<Result<Report, DecodeError>>,
    raw: Option<&[u8]>,
    report_dir: &Path,
    retention: Retention,
    symbolize: bool,
) -> PreviousRun {
    match previous {
        None => PreviousRun::default(),
        Some(Err(error)) => {
            let saved_to =
                raw.and_then(|bytes| crashguard_blackbox::keep_unreadable(report_dir, bytes).ok());
            PreviousRun {
                error: Some(PreviousRunError { error, saved_to }),
                ..PreviousRun::default()
            }
        }
        Some(Ok(mut report)) => {
            if report.outcome == Outcome::KilledWithoutWarning {
                crate::budgets::refine_verdict(&mut report);
            }
            if symbolize && !report.backtrace.is_empty() {
                // A fatal signal's first frame is the faulting instruction itself, taken from
                // the signal context; every other frame is a return address.
                let exact_first = report.outcome == Outcome::FatalSignal;
                symbolize_same_binary(&mut report.backtrace, exact_first);
            }
            let stored = report
                .outcome
                .is_abnormal()
                .then(|| crashguard_blackbox::write_report(report_dir, &report, retention));
            let (stored_at, store_error) = match stored {
                Some(Ok(path)) => (Some(path), None),
                Some(Err(e)) => (None, Some(e)),
                None => (None, None),
            };
            PreviousRun {
                report: Some(report),
                stored_at,
                store_error,
                error: None,
            }
        }
    }
}

/// Resolves frames whose module is this very executable with the same build id, by translating
/// the recorded module offset to this run's address and asking the in-process symbolizer.
/// Frames of other modules are left for `crashguard show`, which resolves them offline.
///
/// `exact_first` says that the first frame is an exact instruction address (the program counter
/// of a fault) rather than a return address.
pub(crate) fn symbolize_same_binary(frames: &mut [Frame], exact_first: bool) {
    // Only the executable (the first module): resolving libc and friends from their
    // compressed debug info costs tens of milliseconds at every restart after a crash, and the
    // CLI resolves those offline when someone looks.
    let loaded = crashguard_blackbox::modules::loaded();
    let bias_for = |path: &str, build_id: &str| {
        loaded
            .iter()
            .take(1)
            .find(|m| {
                crashguard_blackbox::modules::path_of(m) == path
                    && crashguard_blackbox::modules::build_id_hex(m) == build_id
            })
            .map(|m| m.bias)
    };
    for (index, frame) in frames.iter_mut().enumerate() {
        let (Some(module), Some(offset), Some(build_id)) =
            (&frame.module, &frame.offset, &frame.build_id)
        else {
            continue;
        };
        let Some(bias) = bias_for(module, build_id) else {
            continue;
        };
        let Ok(offset) = u64::from_str_radix(offset.trim_start_matches("0x"), 16) else {
            continue;
        };
        let addr = bias.wrapping_add(offset);
        // `backtrace::resolve` looks up the byte before the address it is given, because a
        // return address points after its call and the call's line is the one wanted. An exact
        // fault address must not be moved back: a faulting instruction at the very start of a
        // function (`ud2`, a store) would otherwise resolve to the function before it. So the
        // exact frame is passed one byte on, to land on the instruction itself.
        let lookup = if index == 0 && exact_first {
            addr.wrapping_add(1)
        } else {
            addr
        };
        backtrace::resolve(lookup as usize as *mut std::ffi::c_void, |sym| {
            if frame.symbol.is_none() {
                frame.symbol = sym.name().map(|n| format!("{n:#}"));
                frame.file = sym.filename().map(|p| p.display().to_string());
                frame.line = sym.lineno();
            }
        });
    }
}
