//! The thread budget's traces in an armed black box: the sampler's heartbeat fields and the
//! breadcrumbs of a refused spawn, read back through the black box's own decoder.
//!
//! Arming a black box is process-wide, so this file holds a single test.

use std::sync::mpsc;
use std::time::Duration;

use crashguard_blackbox::{Options, decode, open};
use crashguard_budget::thread::{self, ThreadBudget, ThreadSampler, ThreadSettings};

const WATCHDOG: Duration = Duration::from_secs(30);

#[test]
fn heartbeat_and_breadcrumbs_reach_the_black_box() {
    let dir = std::env::temp_dir().join(format!("crashguard-thr-bb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opened = open(
        &dir,
        &Options {
            app: "thread-test".into(),
            ring_capacity: 64,
            stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
        },
    )
    .expect("open black box");
    let bb = opened.blackbox.arm().expect("arm");

    let (samples_tx, samples) = mpsc::sync_channel::<u64>(0);
    let sampler = ThreadSampler::builder(ThreadBudget::max(1000))
        .interval(Duration::from_millis(1))
        .on_sample(move |n| {
            let _ = samples_tx.send(n);
        })
        .start()
        .unwrap();
    let sampled = samples.recv_timeout(WATCHDOG).expect("a sample");
    drop(samples);
    sampler.stop();

    let budget = thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(1)))).unwrap();
    let (release, parked) = mpsc::channel::<()>();
    let first = thread::spawn(move || {
        let _ = parked.recv();
    })
    .unwrap();
    assert!(thread::spawn(|| ()).is_err());
    drop(release);
    first.join().unwrap();
    drop(budget);

    let bytes = std::fs::read(bb.path()).unwrap();
    let report = decode(&bytes).expect("decode the running black box");
    let resources = report.resources.expect("heartbeat written");
    assert_eq!(resources.thread_budget, Some(1000));
    // The sampler writes the heartbeat before it reports the sample, and it is stopped after.
    assert_eq!(resources.threads, Some(sampled));
    let messages: Vec<&str> = report
        .breadcrumbs
        .iter()
        .map(|b| b.message.as_str())
        .collect();
    assert!(
        messages.contains(&"thread budget: guarded threads reached the soft limit"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"thread budget exhausted: guarded spawn refused"),
        "{messages:?}"
    );
    bb.disarm();
    let _ = std::fs::remove_dir_all(&dir);
}
