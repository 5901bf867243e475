//! The black-box reader on arbitrary bytes: it must return a report or an error, never panic,
//! and a report it returns must serialise.
//!
//! Run with `cargo +nightly fuzz run decode` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = crashguard_blackbox::decode(data) {
        let _ = report.to_string();
        let _ = report.to_json_pretty();
    }
    let _ = crashguard_blackbox::decode_header(data);
});
