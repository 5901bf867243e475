//! Torn records: threads hammer a small breadcrumb ring (so writers lap each other and get
//! preempted mid-entry) while a reader copies the live file and decodes it again and again.
//! Every breadcrumb the decoder accepts must be exactly one writer's message, under that
//! writer's thread id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crashguard_blackbox::{Options, decode, open};

const WRITERS: u64 = 6;
/// Snapshots the reader takes while the writers run.
const SNAPSHOTS: u64 = 1000;

/// The message writer `t` writes as its `k`-th breadcrumb: a prefix naming both, then a filler
/// whose length and letter depend on them, so that text or length from another entry shows.
fn message(t: u64, k: u64) -> String {
    let mut s = format!("t{t}:{k:07}:");
    let len = 20 + ((k * 7 + t * 13) % 70) as usize;
    let fill = char::from(b'a' + ((k + 3 * t) % 26) as u8);
    while s.len() < len {
        s.push(fill);
    }
    s
}

/// [`message`] without allocating, so that writers run flat out.
fn message_in(buf: &mut [u8; 96], t: u64, k: u64) -> &str {
    use std::io::Write;
    let len = 20 + ((k * 7 + t * 13) % 70) as usize;
    let fill = b'a' + ((k + 3 * t) % 26) as u8;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "t{t}:{k:07}:").expect("fits");
    let start = cursor.position() as usize;
    for b in &mut buf[start..len.max(start)] {
        *b = fill;
    }
    std::str::from_utf8(&buf[..len.max(start)]).expect("ascii")
}

/// Checks one decoded breadcrumb; returns (writer, k).
fn verify(text: &str, tids: &HashMap<u32, u64>, tid: u32) -> (u64, u64) {
    let mut parts = text.splitn(3, ':');
    let t: u64 = parts
        .next()
        .and_then(|p| p.strip_prefix('t'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("mixed or foreign breadcrumb: {text:?}"));
    let k: u64 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("mixed breadcrumb: {text:?}"));
    assert_eq!(text, message(t, k), "a breadcrumb mixes two entries");
    assert_eq!(
        tids.get(&tid),
        Some(&t),
        "{text:?} carries another thread's id {tid}"
    );
    (t, k)
}

/// A read-only mapping of the live file, copied byte by byte from low to high addresses: a
/// slow reader (like a tool inspecting a running process) gives writers time to change an
/// entry while it is being copied.
struct LiveMapping {
    base: *const u8,
    len: usize,
}

impl LiveMapping {
    fn open(path: &std::path::Path) -> LiveMapping {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).expect("open the live box");
        let len = file.metadata().expect("stat").len() as usize;
        // SAFETY: a fresh read-only shared mapping of a file we opened; it is only read.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap");
        LiveMapping {
            base: base.cast(),
            len,
        }
    }

    fn copy_slowly(&self) -> Vec<u8> {
        (0..self.len)
            // SAFETY: i < len, inside the mapping; volatile so that every byte is really read,
            // in order, while writers change the file.
            .map(|i| unsafe { std::ptr::read_volatile(self.base.add(i)) })
            .collect()
    }
}

#[test]
fn a_reader_never_accepts_a_mixed_breadcrumb_while_writers_lap_the_ring() {
    let dir = std::env::temp_dir().join(format!("cg-bb-torn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opened = open(
        &dir,
        &Options {
            ring_capacity: 64,
            ..Options::new("torn")
        },
    )
    .expect("open");
    let bb: &'static _ = Box::leak(Box::new(opened.blackbox));
    let path = bb.path().to_owned();
    let done = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let tid_tx = tid_tx.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                tid_tx
                    .send((crashguard_blackbox::assafe::gettid(), t))
                    .expect("send tid");
                let mut k = 0u64;
                let mut buf = [0u8; 96];
                while !done.load(Ordering::Relaxed) {
                    bb.breadcrumb(message_in(&mut buf, t, k));
                    k += 1;
                }
                k
            })
        })
        .collect();
    let tids: HashMap<u32, u64> = (0..WRITERS).map(|_| tid_rx.recv().expect("tid")).collect();

    let reader = {
        let done = Arc::clone(&done);
        let tids = tids.clone();
        std::thread::spawn(move || {
            let mut snapshots = 0u64;
            let mut accepted = 0u64;
            let mut short = 0u64;
            let live = LiveMapping::open(&path);
            while snapshots < SNAPSHOTS {
                let bytes = live.copy_slowly();
                let report = decode(&bytes).expect("a live box decodes");
                for b in &report.breadcrumbs {
                    verify(&b.message, &tids, b.thread);
                    accepted += 1;
                }
                short += 64 - report.breadcrumbs.len() as u64;
                snapshots += 1;
            }
            done.store(true, Ordering::Release);
            eprintln!("accepted {accepted}, skipped {short}");
            accepted
        })
    };
    let accepted = reader.join().expect("reader");
    let written: u64 = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    assert!(
        accepted > 0 && written > 4096,
        "{accepted} accepted, {written} written"
    );

    // At rest, the ring holds the last breadcrumbs of the writers, complete, and each
    // writer's in the order it wrote them.
    let report = decode(&std::fs::read(bb.path()).expect("read")).expect("decode");
    assert!(
        report.breadcrumbs.len() >= 48,
        "{}",
        report.breadcrumbs.len()
    );
    let mut last: HashMap<u64, u64> = HashMap::new();
    for b in &report.breadcrumbs {
        let (t, k) = verify(&b.message, &tids, b.thread);
        if let Some(prev) = last.insert(t, k) {
            assert!(prev < k, "writer {t}: {k} decoded after {prev}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
