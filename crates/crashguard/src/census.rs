//! The thread census in end records, shared by the fatal handlers and the shutdown.

use crashguard_blackbox::layout::End;

/// Adds the thread census to an end record. Registered with the fatal handlers, and called by
/// the shutdown when it records the end.
///
/// Async-signal-safe.
pub(crate) fn enrich_end(end: &mut End) {
    crashguard_budget::thread::census_raw_into(
        &mut end.census,
        &mut end.census_count,
        &mut end.census_total,
    );
}

/// The census as the fatal handlers' enricher, given to them at install.
#[derive(Debug)]
pub(crate) struct Census;

/// The one census enricher.
pub(crate) static CENSUS: Census = Census;

// SAFETY: `census_raw_into` is the async-signal-safe census (open/getdents64/openat/read/close
// into the record, stack buffers of about 1 KiB, bounded in tasks and time), written for the
// handler path.
unsafe impl crashguard_signals::EndEnricher for Census {
    /// Async-signal-safe.
    fn enrich(&self, end: &mut End) {
        enrich_end(end);
    }
}
