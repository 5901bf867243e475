//! What `install()` does with the black boxes earlier runs left: collect every slot of the app
//! that no live process holds, refine and symbolize what each recorded, store it, and only then
//! reset or clear the slot. A slot whose record cannot be stored (a full disk) is left exactly
//! as it is, for the next run.

use std::path::{Path, PathBuf};

use crashguard_blackbox::{
    BlackBox, DecodeError, Frame, Options, Outcome, Report, ReportDir, Slot,
};

use crate::{Config, Error};

/// What earlier runs left in the app's slots, from [`crate::Guard::previous`].
#[derive(Debug, Default)]
pub struct PreviousRun {
    /// The decoded report of the earlier run to hand over, when a slot held a readable record:
    /// the most recent abnormal end, else the most recent end. Reports of other slots
    /// collected at the same time are stored as report files too.
    pub(crate) report: Option<Report>,
    /// Where that report was stored, when it was abnormal enough to keep.
    pub(crate) stored_at: Option<PathBuf>,
    /// Why a record could not be written to the report directory, if one could not. Its slot
    /// was kept as it was, so the next run tries again; nothing is lost.
    pub(crate) store_error: Option<crashguard_blackbox::Error>,
    /// Why a slot's contents could not be read; the bytes were kept for inspection.
    pub(crate) error: Option<PreviousRunError>,
}

impl PreviousRun {
    /// How the previous run ended, if it left a readable black box. Check
    /// [`Report::outcome`]: a clean exit is reported too. When install found several slots of
    /// the app free (a crash stranded in another slot, a sibling that ended), this is the most
    /// recent abnormal end among them, else the most recent end; every abnormal one was stored.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// Where the report was stored (only abnormal ends are stored).
    pub fn stored_at(&self) -> Option<&Path> {
        self.stored_at.as_deref()
    }

    /// Why a report could not be written to the report directory, if it could not (a full
    /// disk, a `reports` entry that is a link or not a directory). Nothing is lost: the record
    /// stays in its slot, untouched, and a later run stores it; this run took another slot.
    pub fn store_error(&self) -> Option<&crashguard_blackbox::Error> {
        self.store_error.as_ref()
    }

    /// Why the previous run's black box could not be read, if it could not. Its bytes were
    /// kept in the report directory (or, when they could not be copied, left in the slot).
    pub fn read_error(&self) -> Option<&PreviousRunError> {
        self.error.as_ref()
    }
}

/// A black box that could not be decoded. Its bytes were copied into the report directory so
/// that nothing is lost, or, when they could not be, left in their slot for the next run.
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
        match &self.saved_to {
            Some(p) => write!(f, " (kept as {})", p.display()),
            None => f.write_str(" (its bytes could not be copied and stay in their slot)"),
        }
    }
}

impl std::error::Error for PreviousRunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Collects every unlocked slot of the app, deals with what each held, and returns the black
/// box of the slot this run takes (reset, not yet armed) with what was found.
///
/// A slot is reset or cleared only after its record is durably stored (or needs no storing:
/// empty, or a clean end). A slot whose record could not be stored is released untouched and
/// skipped; this run then takes another one.
pub(crate) fn collect(
    config: &Config,
    report_dir: &Path,
) -> Result<(BlackBox, PreviousRun), Error> {
    let opts = Options {
        app: config.app.clone(),
        ring_capacity: config.breadcrumb_capacity,
        stack_capacity: config.crash_stack_bytes,
    };
    let dir = ReportDir::open(report_dir)?;
    let mut run = PreviousRun::default();
    let mut found: Vec<(Report, Option<PathBuf>)> = Vec::new();
    let mut own: Option<Slot> = None;
    let mut kept: Vec<u32> = Vec::new();
    for mut slot in dir.collect_slots(&opts)? {
        if !settle(&dir, config, &mut slot, &mut run, &mut found) {
            kept.push(slot.number());
            continue;
        }
        if own.is_none() {
            own = Some(slot);
        } else {
            // Read and stored: the next run must not report it again. A failure here only
            // means it is reported twice.
            let _ = slot.clear();
        }
    }
    let own = match own {
        Some(slot) => slot,
        None => loop {
            let mut slot = match dir.take_slot(&opts, &kept) {
                Ok(slot) => slot,
                Err(source) => return Err(kept_error(&mut run, source)),
            };
            if settle(&dir, config, &mut slot, &mut run, &mut found) {
                break slot;
            }
            kept.push(slot.number());
        },
    };
    let blackbox = own.reset().map_err(|source| kept_error(&mut run, source))?;
    // "The previous run" is the most recent abnormal end if there is one (a crash stranded in
    // another slot is news; a sibling's clean exit after it is not), else the most recent end.
    // Every abnormal one is in the report directory.
    let rank = |r: &Report| (r.outcome.is_abnormal(), r.ended_at.unwrap_or(r.started_at));
    if let Some((report, stored_at)) = found.into_iter().max_by_key(|(r, _)| rank(r)) {
        run.report = Some(report);
        run.stored_at = stored_at;
    }
    Ok((blackbox, run))
}

/// The error of a run that could prepare no slot: it says, too, that an earlier record could
/// not be stored and was kept, when that is why another slot was needed.
fn kept_error(run: &mut PreviousRun, source: crashguard_blackbox::Error) -> Error {
    match run.store_error.take() {
        Some(store) => Error::PreviousRunKept { store, source },
        None => Error::BlackBox(source),
    }
}

/// Deals with what one slot held. Returns whether the slot may now be reset (nothing to keep,
/// or kept safely elsewhere); `false` leaves the evidence in the slot.
fn settle(
    dir: &ReportDir,
    config: &Config,
    slot: &mut Slot,
    run: &mut PreviousRun,
    found: &mut Vec<(Report, Option<PathBuf>)>,
) -> bool {
    let raw = slot.previous_raw.take();
    match slot.previous.take() {
        None => true,
        Some(Err(error)) => {
            let saved = raw.map(|bytes| dir.keep_unreadable(&config.app, &bytes, config.retention));
            let (saved_to, ok) = match saved {
                Some(Ok(path)) => (Some(path), true),
                Some(Err(e)) => {
                    run.store_error.get_or_insert(e);
                    (None, false)
                }
                None => (None, true),
            };
            run.error
                .get_or_insert(PreviousRunError { error, saved_to });
            ok
        }
        Some(Ok(report)) => {
            let report = refine(report, config.symbolize_previous);
            let stored = report
                .outcome
                .is_abnormal()
                .then(|| dir.write_report(&config.app, &report, config.retention));
            match stored {
                Some(Err(e)) => {
                    run.store_error.get_or_insert(e);
                    found.push((report, None));
                    false
                }
                Some(Ok(path)) => {
                    found.push((report, Some(path)));
                    true
                }
                None => {
                    found.push((report, None));
                    true
                }
            }
        }
    }
}

/// The verdict of a run that vanished, and the executable's own frames symbolized.
fn refine(mut report: Report, symbolize: bool) -> Report {
    if report.outcome == Outcome::KilledWithoutWarning {
        crate::budgets::refine_verdict(&mut report);
    }
    if symbolize && !report.backtrace.is_empty() {
        // A fatal signal's first frame is the faulting instruction itself, taken from the
        // signal context; every other frame is a return address.
        let exact_first = report.outcome == Outcome::FatalSignal;
        symbolize_same_binary(&mut report.backtrace, exact_first);
    }
    report
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
