//! Whatever bytes a file holds, `show` and `inspect` either render it or fail with a data
//! error (exit 65): never a panic, never another kind of error. Runs in-process through the
//! library so that proptest can try many inputs quickly.

mod common;

use std::path::Path;

use common::*;
use crashguard_cli::CliExit;
use crashguard_cli::backtrace::Options;
use crashguard_cli::commands::{inspect, show};
use proptest::prelude::*;

fn check(file: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(file, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let opts = Options {
        disabled: true,
        ..Options::default()
    };
    for result in [show(file, false, &opts), inspect(file, true, &opts)] {
        if let Err(e) = result {
            prop_assert_eq!(e.exit(), CliExit::DataErr, "{}", e);
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

fn valid_box() -> Vec<u8> {
    let dir = temp_dir("robust-valid");
    make_box(&dir, "robust", |bb| {
        bb.breadcrumb("hello");
        end_with_segv(bb, &[0x1234, 0x5678]);
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = temp_dir("robust-arbitrary");
        check(&dir.join("f"), &bytes)?;
    }

    #[test]
    fn arbitrary_bytes_behind_the_magic(tail in proptest::collection::vec(any::<u8>(), 0..40_000)) {
        let dir = temp_dir("robust-magic");
        let mut bytes = crashguard_blackbox::layout::MAGIC.to_vec();
        bytes.extend(tail);
        check(&dir.join("f.box"), &bytes)?;
    }

    #[test]
    fn mutated_black_boxes(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..8),
                           cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut bytes = valid_box();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if truncate {
            let n = cut.index(bytes.len());
            bytes.truncate(n);
        }
        let dir = temp_dir("robust-mutated");
        check(&dir.join("f.box"), &bytes)?;
    }
}
