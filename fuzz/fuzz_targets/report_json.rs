//! Report JSON from anywhere (a report file someone edited, a tool's output): parsing must give
//! a report or an error, never panic; a report must render — `Display`, the CLI's `show` and
//! `list` views — with its control characters escaped, and survive a JSON round trip.
//!
//! Run with `cargo +nightly fuzz run report_json` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = serde_json::from_slice::<crashguard_blackbox::Report>(data) {
        crashguard_fuzz::check_report(&report);
    }
});
