//! Round trips through a real mapped black box, and the reader on arbitrary and corrupted bytes.

use crashguard_blackbox::layout;
use crashguard_blackbox::{DecodeError, Options, Outcome, decode, open};
use proptest::prelude::*;
use std::path::PathBuf;

/// Tests that arm a box take turns: a process has one active box.
fn arming() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("cg-bb-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Writes a crash record through the real writer and returns the file's bytes.
fn crashed_box(crumbs: &[String], signal: u32, frames: &[u64]) -> Vec<u8> {
    let dir = tempdir("w");
    let opened = open(
        &dir,
        &Options {
            app: "prop".into(),
            ring_capacity: 64,
            stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        },
    )
    .expect("open");
    let bb = opened.blackbox;
    for c in crumbs {
        bb.breadcrumb(c);
    }
    let mut w = bb.claim_end().expect("first claim");
    assert!(bb.claim_end().is_none(), "second claim must fail");
    let end = w.end();
    end.signal = signal;
    end.si_code = 1;
    end.fault_address = 0x10;
    end.frame_count = frames.len().min(layout::MAX_FRAMES) as u32;
    for (slot, f) in end.frames.iter_mut().zip(frames) {
        *slot = *f;
    }
    w.commit(Outcome::FatalSignal, 128 + signal);
    let bytes = std::fs::read(bb.path()).expect("read back");
    drop(bb);
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[test]
fn second_process_slot_and_previous_contents() {
    let dir = tempdir("slots");
    let opts = Options {
        app: "svc".into(),
        ring_capacity: 64,
        stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
    };
    let a = open(&dir, &opts).expect("first");
    let b = open(&dir, &opts).expect("second");
    // flock is per open file description, so even within one process the two boxes differ.
    assert_ne!(a.blackbox.slot(), b.blackbox.slot());
    a.blackbox.breadcrumb("from a");
    let slot_a = a.blackbox.slot();
    drop(a);
    let again = open(&dir, &opts).expect("reopen");
    assert_eq!(again.blackbox.slot(), slot_a, "the freed slot is reused");
    let prev = again.previous.expect("previous contents").expect("decodes");
    assert_eq!(prev.outcome, Outcome::KilledWithoutWarning);
    assert_eq!(
        prev.breadcrumbs.last().map(|c| c.message.as_str()),
        Some("from a")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_app_names_and_symlinked_dirs_are_refused() {
    let dir = tempdir("bad");
    for app in ["", "../x", ".hidden", "a/b", &"x".repeat(65)] {
        let err = open(
            &dir,
            &Options {
                app: app.into(),
                ring_capacity: 64,
                stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("app name"), "{err}");
    }
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink("/tmp", &link).unwrap();
    let err = open(
        &link,
        &Options {
            app: "a".into(),
            ring_capacity: 64,
            stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = open(
        &dir,
        &Options {
            app: "a".into(),
            ring_capacity: 1,
            stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("breadcrumb capacity"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn record_round_trips(
        crumbs in proptest::collection::vec("[ -~é]{0,150}", 0..100),
        signal in 1u32..32,
        frames in proptest::collection::vec(any::<u64>(), 0..80),
    ) {
        let bytes = crashed_box(&crumbs, signal, &frames);
        let r = decode(&bytes).expect("a fresh record decodes");
        prop_assert_eq!(r.outcome, Outcome::FatalSignal);
        prop_assert_eq!(r.exit_code, Some(128 + signal));
        prop_assert_eq!(r.signal.as_ref().map(|s| s.number), Some(signal));
        prop_assert_eq!(r.backtrace.len(), frames.len().min(layout::MAX_FRAMES));
        let kept = crumbs.len().min(64);
        prop_assert_eq!(r.breadcrumbs.len(), kept);
        for (got, want) in r.breadcrumbs.iter().zip(&crumbs[crumbs.len() - kept..]) {
            prop_assert!(want.starts_with(&got.message));
            prop_assert!(got.message.len() >= want.len().min(layout::BREADCRUMB_TEXT_LEN - 3));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn any_single_corruption_is_detected_or_harmless(pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = crashed_box(&["x".to_owned()], 11, &[1, 2, 3]);
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        // Flips in checksummed sections must be reported; flips elsewhere (breadcrumbs, the
        // sequence-locked sections) may decode, but never panic.
        // The claim word is runtime coordination, not evidence; it is deliberately unchecked.
        let claim = std::mem::offset_of!(layout::Record, claim)..std::mem::offset_of!(layout::Record, session);
        let checksummed = i < std::mem::offset_of!(layout::Record, heartbeat)
            || (std::mem::offset_of!(layout::Record, end)..std::mem::offset_of!(layout::Record, context)).contains(&i);
        // The context section is optional evidence: a corrupted one is dropped, never trusted
        // (this box has none, so none may appear).
        let context = (std::mem::offset_of!(layout::Record, context)..std::mem::offset_of!(layout::Record, amended)).contains(&i);
        // The amendment word checks itself: one flipped byte never makes a valid amendment.
        let amended = (std::mem::offset_of!(layout::Record, amended)..size_of::<layout::Record>()).contains(&i);
        match decode(&bytes) {
            Ok(r) => {
                prop_assert!(!checksummed || claim.contains(&i), "flip at {} went unnoticed", i);
                prop_assert!(!context || r.context.is_none(), "flip at {} made up a context", i);
                if amended {
                    prop_assert_eq!(r.exit_code, Some(139), "flip at {} amended the status", i);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn an_amendment_is_one_self_checking_word() {
    for (outcome, code) in [
        (1u32, 0u32),
        (2, 139),
        (9, 255),
        (9, layout::EXIT_CODE_UNKNOWN),
    ] {
        let w = layout::amend_word(outcome, code);
        assert_eq!(layout::amended(w), Some((outcome, code)));
        // Half a word (a torn store, a reader on a 32-bit view) or any flipped bit is refused.
        assert_eq!(layout::amended(w & 0xffff_ffff), None);
        assert_eq!(layout::amended(w & !0xffff_ffff), None);
        for bit in 0..64 {
            assert_eq!(layout::amended(w ^ (1 << bit)), None, "bit {bit}");
        }
    }
    assert_eq!(layout::amended(0), None);
}

#[test]
fn truncation_is_a_clear_error() {
    let bytes = crashed_box(&[], 6, &[]);
    for len in [0, 10, 47, 48, 1000, bytes.len() - 1] {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { .. } | DecodeError::BadMagic),
            "len {len}: {err}"
        );
    }
}

#[test]
fn a_disarmed_box_frees_its_slot() {
    let _turn = arming();
    let dir = tempdir("rearm");
    let opts = Options {
        app: "rearm".into(),
        ring_capacity: 64,
        stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
    };
    // More cycles than there are slots: each disarm must give its slot back.
    for _ in 0..crashguard_blackbox::MAX_SLOTS + 2 {
        let bb = open(&dir, &opts)
            .expect("a slot is free")
            .blackbox
            .arm()
            .expect("nothing armed");
        assert_eq!(bb.slot(), 0);
        bb.disarm();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forked_child_is_disarmed() {
    let _turn = arming();
    let dir = tempdir("fork");
    let opts = Options {
        app: "fork".into(),
        ring_capacity: 64,
        stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
    };
    let bb = open(&dir, &opts)
        .expect("open")
        .blackbox
        .arm()
        .expect("nothing armed");
    // SAFETY: the child only reads an atomic and calls _exit, both async-signal-safe, which is
    // all a child of a multi-threaded process may do.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = if crashguard_blackbox::active().is_none() {
            0
        } else {
            1
        };
        // SAFETY: _exit never returns and runs no destructors, as a forked child should.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child still armed: {status}"
    );
    assert!(
        crashguard_blackbox::active().is_some(),
        "the parent stays armed"
    );
    bb.disarm();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The context section reads back as written; a stack copy whose bytes changed after sealing
/// (a torn copy) loses only the stack; a context section that no longer matches its checksum
/// (here: its thread id changed) is dropped.
#[test]
fn context_round_trip_and_torn_stack() {
    let _armed = arming();
    let dir = tempdir("ctx");
    let opts = Options {
        ring_capacity: 64,
        stack_capacity: 4096,
        ..Options::new("ctx")
    };
    let bb = open(&dir, &opts).expect("open").blackbox;
    let mut w = bb.claim_end().expect("claim");
    w.end().tid = 42;
    w.end().signal = 11;
    let ctx = w.context();
    ctx.arch = layout::ARCH_X86_64;
    ctx.register_count = layout::X86_64_REGISTERS.len() as u32;
    for (i, r) in ctx.registers.iter_mut().enumerate() {
        *r = 0x1000 + i as u64;
    }
    ctx.tid = 42;
    ctx.stack_start = 0x7fff_0000;
    ctx.stack_len = 100;
    for (i, b) in w.stack_area().iter_mut().enumerate() {
        *b = i as u8;
    }
    w.seal_context();
    w.commit(Outcome::FatalSignal, 139);
    let path = bb.path().to_owned();
    let bytes = std::fs::read(&path).expect("read");
    let ctx = decode(&bytes).expect("decode").context.expect("context");
    assert_eq!(ctx.arch, "x86_64");
    assert_eq!(ctx.registers.get("rax").map(String::as_str), Some("0x1000"));
    assert_eq!(ctx.registers.get("rip").map(String::as_str), Some("0x1010"));
    assert_eq!(ctx.registers.len(), layout::X86_64_REGISTERS.len());
    let stack = ctx.stack.expect("stack");
    assert_eq!(stack.start, "0x7fff0000");
    assert_eq!(stack.to_bytes(), Some((0..100u8).collect::<Vec<_>>()));

    // A byte of the copy changes after sealing: the stack is dropped, the registers stay.
    let stack_at = layout::stack_offset(64);
    let mut torn = bytes.clone();
    torn[stack_at + 50] ^= 0xff;
    let ctx = decode(&torn).expect("decode").context.expect("context");
    assert!(ctx.stack.is_none(), "a torn stack copy must not be trusted");

    // The section's thread id changed after sealing: not trusted.
    let tid_at =
        std::mem::offset_of!(layout::Record, context) + std::mem::offset_of!(layout::Context, tid);
    let mut other = bytes;
    other[tid_at] ^= 1;
    assert!(decode(&other).expect("decode").context.is_none());
    drop(bb);
    let _ = std::fs::remove_dir_all(&dir);
}
