//! Guarded spawning against the process-wide budget, with real threads.
//!
//! The budget and the live count are process-wide, so the tests in this file take one lock and
//! run one at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crashguard_budget::thread::{self, SpawnError, ThreadBudget, ThreadPolicy, ThreadSettings};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `n` guarded threads named `<prefix><i>` that wait until `release` is dropped.
fn park(prefix: &str, n: usize) -> (mpsc::Sender<()>, Vec<JoinHandle<()>>) {
    let (release, wait) = mpsc::channel::<()>();
    let wait = std::sync::Arc::new(Mutex::new(wait));
    let started = std::sync::Arc::new(Barrier::new(n + 1));
    let mut handles = Vec::new();
    for i in 0..n {
        let wait = wait.clone();
        let started = started.clone();
        let h = thread::Builder::new()
            .name(format!("{prefix}{i}"))
            .spawn(move || {
                started.wait();
                // Returns when the sender is dropped; the message itself is never sent.
                let _ = wait.lock().map(|rx| rx.recv());
            })
            .expect("within budget");
        handles.push(h);
    }
    started.wait();
    (release, handles)
}

fn release(parked: (mpsc::Sender<()>, Vec<JoinHandle<()>>)) {
    let (tx, handles) = parked;
    drop(tx);
    for h in handles {
        h.join().expect("parked thread");
    }
}

#[test]
fn leak_hits_the_budget_with_a_census_naming_the_group() {
    let _serial = serial();
    let budget =
        thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(40)))).unwrap();
    let parked = park("leaky-", 40);
    assert_eq!(thread::live_threads(), 40);

    let err = thread::Builder::new()
        .name("leaky-40".into())
        .spawn(|| ())
        .expect_err("the 41st guarded thread must be refused");
    assert!(err.is_budget_exhausted(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("thread budget exhausted: cannot spawn \"leaky-40\""),
        "{text}"
    );
    assert!(
        text.contains("limit hit: thread budget: 40 of 40 guarded threads live"),
        "{text}"
    );
    assert!(text.contains("threads by name: leaky-*: 40"), "{text}");
    let diagnosis = err.diagnosis().expect("diagnosis");
    assert_eq!(
        diagnosis
            .census()
            .and_then(|c| c.group("leaky-"))
            .map(|g| g.count()),
        Some(40)
    );
    assert!(std::error::Error::source(&err).is_none());
    assert!(
        err.summary().contains("40 of 40 guarded threads"),
        "{}",
        err.summary()
    );

    // `spawn` is held to the same budget.
    assert!(thread::spawn(|| ()).is_err());

    release(parked);
    assert_eq!(thread::live_threads(), 0);
    thread::spawn(|| ()).expect("room again").join().unwrap();
    drop(budget);
}

#[test]
fn panicking_threads_are_uncounted() {
    let _serial = serial();
    let budget = thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(2)))).unwrap();
    for _ in 0..5 {
        let h = thread::spawn(|| panic!("expected panic in a guarded thread")).unwrap();
        assert!(h.join().is_err());
    }
    assert_eq!(thread::live_threads(), 0);
    drop(budget);
}

static EXHAUSTED_CALLS: AtomicUsize = AtomicUsize::new(0);

fn on_exhausted(err: &SpawnError) {
    assert!(err.is_budget_exhausted());
    EXHAUSTED_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn exit_policy_calls_back_and_error_policy_does_not() {
    let _serial = serial();
    let before = EXHAUSTED_CALLS.load(Ordering::SeqCst);

    let budget = thread::install(
        ThreadSettings::new()
            .budget(Some(ThreadBudget::max(1)))
            .on_exhausted(on_exhausted),
    )
    .unwrap();
    let parked = park("solo-", 1);
    assert!(thread::spawn(|| ()).is_err());
    assert_eq!(EXHAUSTED_CALLS.load(Ordering::SeqCst), before);

    drop(budget);
    let budget = thread::install(
        ThreadSettings::new()
            .budget(Some(ThreadBudget::max(1).policy(ThreadPolicy::Exit)))
            .on_exhausted(on_exhausted),
    )
    .unwrap();
    assert!(thread::spawn(|| ()).is_err());
    assert_eq!(EXHAUSTED_CALLS.load(Ordering::SeqCst), before + 1);

    release(parked);
    drop(budget);
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

fn start_hook() {
    STARTED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn start_hook_runs_on_the_new_thread_before_the_closure() {
    let _serial = serial();
    let hook = thread::install(ThreadSettings::new().on_start(start_hook)).unwrap();
    let before = STARTED.load(Ordering::SeqCst);
    let seen = thread::spawn(|| STARTED.load(Ordering::SeqCst))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(seen, before + 1);
    drop(hook);
    thread::spawn(|| ()).unwrap().join().unwrap();
    assert_eq!(STARTED.load(Ordering::SeqCst), before + 1);
}

#[test]
fn bad_names_and_budgets_are_errors() {
    let _serial = serial();
    let err = thread::Builder::new()
        .name("a\0b".into())
        .spawn(|| ())
        .unwrap_err();
    assert!(matches!(err, SpawnError::InvalidName { .. }));
    assert_eq!(thread::live_threads(), 0);
    assert!(thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(0)))).is_err());
    assert!(thread::budget().is_none());
}

#[test]
fn process_thread_counting_sees_unguarded_threads() {
    let _serial = serial();
    // Unguarded threads (as a library would start) fill the budget; only the real count sees them.
    let (tx, rx) = mpsc::channel::<()>();
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let started = std::sync::Arc::new(Barrier::new(9));
    let outside: Vec<_> = (0..8)
        .map(|_| {
            let rx = rx.clone();
            let started = started.clone();
            std::thread::spawn(move || {
                started.wait();
                let _ = rx.lock().map(|r| r.recv_timeout(Duration::from_secs(60)));
            })
        })
        .collect();
    started.wait();
    let budget = thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(8)))).unwrap();
    thread::spawn(|| ())
        .expect("guarded count alone has room")
        .join()
        .unwrap();
    drop(budget);
    let budget = thread::install(
        ThreadSettings::new().budget(Some(ThreadBudget::max(8).count_process_threads(true))),
    )
    .unwrap();
    let err = thread::spawn(|| ()).expect_err("the real count is over the budget");
    assert!(err.is_budget_exhausted());
    drop(tx);
    for h in outside {
        h.join().unwrap();
    }
    drop(budget);
}

#[test]
fn installed_settings_stack_and_each_drop_restores_the_one_before() {
    let _serial = serial();
    let hook = thread::install(ThreadSettings::new().on_start(start_hook)).unwrap();
    // A budget installed on top of what is in force keeps the hook.
    let budget = thread::install(thread::settings().budget(Some(ThreadBudget::max(3)))).unwrap();
    assert_eq!(thread::budget().map(|b| b.max_threads()), Some(3));
    assert!(thread::settings().on_start.is_some());
    drop(budget);
    assert!(thread::budget().is_none());
    assert!(
        thread::settings().on_start.is_some(),
        "the hook is back alone"
    );
    let before = STARTED.load(Ordering::SeqCst);
    thread::spawn(|| ()).unwrap().join().unwrap();
    assert_eq!(STARTED.load(Ordering::SeqCst), before + 1);
    drop(hook);
    assert!(thread::settings().on_start.is_none());
    assert!(thread::settings().on_exhausted.is_none());
}
