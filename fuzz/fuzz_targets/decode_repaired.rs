//! The black-box reader past the checksums: the input is a list of patches written onto a
//! valid, empty black box, whose checksums and breadcrumb hashes are then repaired
//! (`crashguard_blackbox::repair::forge`), so every input reaches the field handling — lengths,
//! counts, module tables, states, the stack copy. Decoding must give a report or an error,
//! never panic; a report's one-line summary must be one line free of control characters, and
//! the report must serialise. One input in eight (by length) also goes through the full check
//! of the `report_json` target (the CLI's renderers and a JSON round trip), which costs about
//! twenty times as much as the decode under AddressSanitizer.
//!
//! Run with `cargo +nightly fuzz run decode_repaired` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = crashguard_blackbox::repair::forge(data);
    if let Ok(report) = crashguard_blackbox::decode(&bytes) {
        if data.len() % 8 == 0 {
            crashguard_fuzz::check_report(&report);
        } else {
            crashguard_fuzz::check_line(&report);
            let _ = report.to_json_pretty();
        }
    }
});
