//! The sampler against a proc tree whose thread count the test controls.
//!
//! The test rewrites `self/status` and waits, through channels, for the callbacks each value
//! must cause; the waits are bounded only as a watchdog.

use std::fs;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use crashguard_budget::thread::{ThreadBudget, ThreadEvent, ThreadLevel, ThreadSampler};

const WATCHDOG: Duration = Duration::from_secs(30);

struct TempProc(PathBuf);

impl TempProc {
    fn new(tag: &str) -> TempProc {
        let dir = std::env::temp_dir().join(format!("crashguard-thr-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("self")).unwrap();
        TempProc(dir)
    }

    /// Replaces `self/status` atomically so the sampler never reads half a file.
    fn set_threads(&self, n: u64) {
        let tmp = self.0.join("self/status.tmp");
        fs::write(&tmp, format!("Name:\tsvc\nThreads:\t{n}\n")).unwrap();
        fs::rename(&tmp, self.0.join("self/status")).unwrap();
    }
}

impl Drop for TempProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn crossings_call_back_once_each() {
    let root = TempProc::new("crossings");
    root.set_threads(3);
    let (events_tx, events) = mpsc::channel::<ThreadEvent>();
    // A rendezvous channel: the sampler waits after each sample until the test has seen it,
    // so the test knows exactly which values were observed.
    let (samples_tx, samples) = mpsc::sync_channel::<u64>(0);
    let soft_tx = events_tx.clone();
    let sampler = ThreadSampler::builder(ThreadBudget::max(10))
        .interval(Duration::from_millis(1))
        .proc_root(&root.0)
        .on_soft(move |e| {
            let _ = soft_tx.send(*e);
        })
        .on_hard(move |e| {
            let _ = events_tx.send(*e);
        })
        .on_sample(move |n| {
            let _ = samples_tx.send(n);
        })
        .start()
        .unwrap();
    let step = |n: u64| -> Vec<(ThreadLevel, u64, u64)> {
        root.set_threads(n);
        while samples.recv_timeout(WATCHDOG).expect("sample") != n {}
        events
            .try_iter()
            .map(|e| (e.level, e.threads, e.limit))
            .collect()
    };

    assert_eq!(step(3), vec![]);
    assert_eq!(step(8), vec![(ThreadLevel::Soft, 8, 8)]);
    assert_eq!(step(9), vec![]);
    assert_eq!(step(10), vec![]);
    assert_eq!(step(11), vec![(ThreadLevel::Hard, 11, 10)]);
    assert_eq!(step(12), vec![]);
    assert_eq!(step(2), vec![]);
    assert_eq!(
        step(12),
        vec![(ThreadLevel::Soft, 12, 8), (ThreadLevel::Hard, 12, 10)]
    );

    // The sampler may be waiting to hand over a sample; dropping the receiver releases it.
    drop(samples);
    sampler.stop();
}

#[test]
fn real_process_is_sampled() {
    let (tx, rx) = mpsc::channel();
    // One thread is always there, so a budget of one crosses its soft limit at once.
    let sampler = ThreadSampler::builder(ThreadBudget::max(1))
        .on_soft(move |e| {
            let _ = tx.send(e.threads);
        })
        .start()
        .unwrap();
    let threads = rx.recv_timeout(WATCHDOG).expect("first sample");
    assert!(threads >= 2, "the test thread and the sampler: {threads}");
    drop(sampler);
}
