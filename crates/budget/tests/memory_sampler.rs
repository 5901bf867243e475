//! The sampler thread over fixture trees: heartbeat into the black box, soft and hard
//! callbacks, errors, stopping.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crashguard_blackbox::BlackBox;
use crashguard_budget::memory::{
    Measure, MemoryBudget, MemoryEvent, MemoryLevel, MemoryProbe, MemorySampler, SamplerCallbacks,
    THREAD_NAME,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn blackbox() -> &'static BlackBox {
    static BB: OnceLock<&'static BlackBox> = OnceLock::new();
    BB.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("crashguard-memory-sampler-{}", std::process::id()));
        let opened = crashguard_blackbox::open(
            &dir,
            &crashguard_blackbox::Options {
                app: "sampler-test".into(),
                ring_capacity: 64,
                stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
            },
        )
        .expect("open black box");
        opened.blackbox.arm().expect("arm black box")
    })
}

/// Every running sampler writes the one armed black box's heartbeat, so the tests take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for an event the sampler sends; the generous timeout only bounds a broken run.
fn next(rx: &mpsc::Receiver<MemoryEvent>) -> MemoryEvent {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the sampler called back")
}

#[test]
fn crossing_a_cgroup_budget_calls_soft_then_hard_once_and_writes_heartbeats() {
    let _g = serial();
    let bb = blackbox();
    let probe = MemoryProbe::with_root(fixture("cgroup-v2"))
        .unwrap()
        .with_page_size(4096);
    // Working set 765,306,368 of a 1 GiB limit: 71%. A 0.75 fraction puts the base at 768 MiB
    // with soft at 85% (653 MiB) and hard at 95% (730 MiB): both crossed on the first sample.
    let budget = MemoryBudget::cgroup_fraction(0.75);
    let (tx, rx) = mpsc::channel();
    let (tx_soft, tx_hard) = (tx.clone(), tx);
    let callbacks = SamplerCallbacks {
        on_soft: Some(Box::new(move |e| {
            let _ = tx_soft.send(e);
        })),
        on_hard: Some(Box::new(move |e| {
            assert_eq!(std::thread::current().name(), Some(THREAD_NAME));
            let _ = tx_hard.send(e);
        })),
        on_error: None,
    };
    let sampler = MemorySampler::spawn(probe, budget, Duration::from_millis(1), callbacks).unwrap();
    let soft = next(&rx);
    let hard = next(&rx);
    assert_eq!(
        (soft.level, hard.level),
        (MemoryLevel::Soft, MemoryLevel::Hard)
    );
    assert_eq!(hard.measure, Measure::CgroupWorkingSet);
    assert_eq!(hard.used_bytes, 805_306_368 - 40_000_000);
    assert_eq!(hard.threshold_bytes, sampler.budget().hard_bytes);
    assert_eq!(sampler.budget().budget_bytes, 805_306_368);

    // Let it sample a few more times: the usage stays above both thresholds, and neither
    // callback may repeat.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sampler.stats().samples < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = sampler.stop();
    assert!(stats.samples >= 10, "{stats:?}");
    assert_eq!(stats.errors, 0);
    assert!(rx.try_recv().is_err(), "a callback fired twice");

    let report = crashguard_blackbox::decode(&std::fs::read(bb.path()).unwrap()).unwrap();
    let r = report.resources.expect("heartbeat written");
    assert_eq!(r.rss_bytes, Some(5000 * 4096));
    assert_eq!(r.cgroup_memory_current, Some(805_306_368));
    assert_eq!(r.cgroup_memory_max, Some(1_073_741_824));
    assert_eq!(r.oom_kill_count, Some(1));
    assert_eq!(r.memory_budget, Some(sampler_hard(0.75)));
}

fn sampler_hard(fraction: f64) -> u64 {
    ((1_073_741_824f64 * fraction) as u64 as f64 * 0.95) as u64
}

#[test]
fn a_failing_sample_reports_once_and_the_sampler_keeps_going() {
    let _g = serial();
    let root = std::env::temp_dir().join(format!(
        "crashguard-memory-{}-sampler-err",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/statm"), "10 5 0 0 0 0 0\n").unwrap();
    let probe = MemoryProbe::with_root(&root).unwrap().with_page_size(4096);
    let (tx, rx) = mpsc::channel();
    let callbacks = SamplerCallbacks {
        on_error: Some(Box::new(move |e| {
            let _ = tx.send(e.to_string());
        })),
        ..SamplerCallbacks::default()
    };
    let sampler = MemorySampler::spawn(
        probe,
        MemoryBudget::bytes(1 << 30),
        Duration::from_millis(1),
        callbacks,
    )
    .unwrap();
    // Garble the file under the running sampler.
    std::fs::write(root.join("proc/self/statm"), "garbage\n").unwrap();
    let msg = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("error reported");
    assert!(msg.contains("statm"), "{msg}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sampler.stats().errors < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = sampler.stop();
    assert!(stats.errors >= 5, "{stats:?}");
    assert!(
        rx.try_recv().is_err(),
        "the error was reported more than once"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_arguments_are_errors_not_threads() {
    let probe = || MemoryProbe::with_root(fixture("cgroup-none")).unwrap();
    let zero = MemorySampler::spawn(
        probe(),
        MemoryBudget::bytes(1),
        Duration::ZERO,
        SamplerCallbacks::default(),
    );
    assert!(zero.unwrap_err().to_string().contains("interval"));
    let bad = MemorySampler::spawn(
        probe(),
        MemoryBudget::bytes(0),
        Duration::from_millis(5),
        SamplerCallbacks::default(),
    );
    assert!(bad.unwrap_err().to_string().contains("greater than zero"));
}

#[test]
fn the_sampler_on_this_machine_is_cheap_and_stops() {
    let _g = serial();
    let probe = MemoryProbe::new().unwrap();
    let sampler = MemorySampler::spawn(
        probe,
        MemoryBudget::ram_fraction(1.0),
        Duration::from_millis(1),
        SamplerCallbacks::default(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sampler.stats().samples < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = sampler.stop();
    assert!(stats.samples >= 50 && stats.errors == 0, "{stats:?}");
    assert!(stats.cpu_time > Duration::ZERO, "{stats:?}");
}

#[test]
fn a_heartbeat_only_sampler_records_usage_but_no_budget() {
    let _g = serial();
    let bb = blackbox();
    let probe = MemoryProbe::with_root(fixture("cgroup-v2"))
        .unwrap()
        .with_page_size(4096);
    let sampler = MemorySampler::heartbeat_only(probe, Duration::from_millis(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sampler.stats().samples < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = sampler.stop();
    assert!(stats.samples >= 3, "{stats:?}");
    let report = crashguard_blackbox::decode(&std::fs::read(bb.path()).unwrap()).unwrap();
    let r = report.resources.expect("heartbeat written");
    assert_eq!(r.cgroup_memory_current, Some(805_306_368));
    assert_eq!(r.memory_budget, None, "no budget was configured");
    assert_eq!(r.threads, Some(42), "the thread count rides along");
}
