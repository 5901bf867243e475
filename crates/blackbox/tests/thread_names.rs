//! The thread-name table: a thread registers its full name, the decoder names the crashed
//! thread by it, and an entry torn between two writers (or changed after it was written) is
//! never used.

use std::sync::OnceLock;

use crashguard_blackbox::layout::{self, Record, ThreadName};
use crashguard_blackbox::thread_names::register_current;
use crashguard_blackbox::{Options, Outcome, assafe, decode, open};
use proptest::prelude::*;

const A: &str = "ingest-partition-compactor-worker-000042";
const B: &str = "ingest-partitioner-for-the-other-tenant-7";

/// Where entry 0 of the table lies in the file.
fn entry0() -> std::ops::Range<usize> {
    let at = std::mem::offset_of!(Record, thread_names);
    at..at + size_of::<ThreadName>()
}

/// The file after a thread registered `A` and recorded a crash (end.tid = its id, end's name =
/// the kernel's 15 bytes), and the same file after it freed `A` and registered `B` instead.
fn boxes() -> &'static (Vec<u8>, Vec<u8>) {
    static BOXES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BOXES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cg-bb-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = Options {
            ring_capacity: 64,
            stack_capacity: 0,
            ..Options::new("names")
        };
        let bb = open(&dir, &opts).expect("open").blackbox;
        let bb = bb.arm().unwrap_or_else(|_| panic!("arm"));
        let path = bb.path().to_owned();
        let pair = std::thread::spawn(move || {
            let a = register_current(A);
            assert!(a.is_recorded());
            let mut w = bb.claim_end().expect("claim");
            w.end().tid = assafe::gettid();
            w.end().thread_name[..15].copy_from_slice(&A.as_bytes()[..15]);
            w.commit(Outcome::FatalSignal, 139);
            let with_a = std::fs::read(&path).expect("read");
            drop(a);
            let freed = std::fs::read(&path).expect("read");
            let b = register_current(B);
            assert!(b.is_recorded());
            let with_b = std::fs::read(&path).expect("read");
            drop(b);
            (with_a, freed, with_b)
        })
        .join()
        .expect("writer thread");
        let (with_a, freed, with_b) = pair;
        assert_eq!(name_in(&freed), &A[..15], "a freed entry names nobody");
        bb.disarm();
        let _ = std::fs::remove_dir_all(&dir);
        (with_a, with_b)
    })
}

fn name_in(bytes: &[u8]) -> String {
    decode(bytes).expect("decode").thread.expect("thread").name
}

#[test]
fn the_crashed_thread_is_named_by_its_entry_and_a_half_written_entry_is_ignored() {
    let (with_a, with_b) = boxes();
    let report = decode(with_a).expect("decode");
    let thread = report.thread.expect("thread");
    assert_eq!(thread.name, A);
    assert_eq!(thread.truncated_name.as_deref(), Some(&A[..15]));
    assert_eq!(name_in(with_b), B);

    // A writer inside (odd sequence word): not used.
    let mut writing = with_a.clone();
    let seq_at = entry0().start + std::mem::offset_of!(ThreadName, seq);
    writing[seq_at] |= 1;
    assert_eq!(name_in(&writing), &A[..15]);

    // An entry whose name does not extend what the crash recorded (the thread renamed itself).
    let mut renamed = with_a.clone();
    let end_name =
        std::mem::offset_of!(Record, end) + std::mem::offset_of!(layout::End, thread_name);
    renamed[end_name] = b'X';
    let end = std::mem::offset_of!(Record, end);
    let sum_at = end + std::mem::offset_of!(layout::End, checksum);
    renamed[sum_at..sum_at + 4].fill(0);
    let sum = crashguard_blackbox::crc32(&renamed[end..end + size_of::<layout::End>()]);
    renamed[sum_at..sum_at + 4].copy_from_slice(&sum.to_ne_bytes());
    assert_eq!(name_in(&renamed), format!("X{}", &A[1..15]));
}

proptest! {
    /// Any byte-wise mix of the entry as writer A left it and as writer B left it is used only
    /// when it is exactly one of them; every other mix falls back to the recorded 15 bytes.
    #[test]
    fn a_torn_entry_is_ignored(mask in proptest::collection::vec(any::<bool>(), size_of::<ThreadName>())) {
        let (with_a, with_b) = boxes();
        let range = entry0();
        let mut mixed = with_a.clone();
        for (i, take_b) in range.clone().zip(&mask) {
            if *take_b {
                mixed[i] = with_b[i];
            }
        }
        let name = name_in(&mixed);
        if mixed[range.clone()] == with_a[range.clone()] {
            prop_assert_eq!(name, A);
        } else if mixed[range.clone()] == with_b[range.clone()] {
            prop_assert_eq!(name, B);
        } else {
            prop_assert_eq!(name, &A[..15]);
        }
    }

    /// A single corrupted byte of the entry's used part never yields a wrong name.
    #[test]
    fn a_corrupted_entry_is_ignored(offset in 0usize..16 + A.len(), flip in 1u8..=255) {
        let (with_a, _) = boxes();
        let mut bad = with_a.clone();
        bad[entry0().start + offset] ^= flip;
        prop_assert_eq!(name_in(&bad), &A[..15]);
    }
}
