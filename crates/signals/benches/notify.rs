//! kill() -> application notified: the time from sending a termination signal to this process
//! until a thread blocked on a channel receives the notification, for crashguard's
//! `TerminationListener`, signal-hook's plain iterator forwarding into a crossbeam channel (the
//! usual way to use it from an application), and the `ctrlc` crate. Each uses its own signal so
//! all three live in one process and are measured in the same run.
//!
//! Run with `cargo bench -p crashguard-signals --bench notify -- --warm-up-time 1
//! --measurement-time 3`.

use std::time::Duration;

use crashguard_signals::{Signal, TerminationListener};
use criterion::Criterion;
use crossbeam_channel::Receiver;

fn kill_self(signo: i32) {
    // SAFETY: sends a signal to this process, which has a handler for it.
    let rc = unsafe { libc::kill(libc::getpid(), signo) };
    assert_eq!(rc, 0);
}

fn once<T>(signo: i32, rx: &Receiver<T>) -> u64 {
    let start = std::time::Instant::now();
    kill_self(signo);
    rx.recv_timeout(Duration::from_secs(10)).expect("notified");
    start.elapsed().as_nanos() as u64
}

fn measure<T>(c: &mut Criterion, name: &str, signo: i32, rx: &Receiver<T>) {
    c.bench_function(name, |b| {
        b.iter(|| {
            kill_self(signo);
            rx.recv_timeout(Duration::from_secs(10)).expect("notified");
        })
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();

    let (listener, ours) = TerminationListener::start(&[Signal::SIGTERM]).expect("listener");

    let mut plain = signal_hook::iterator::Signals::new([libc::SIGUSR1]).expect("signal-hook");
    let (tx, hook_rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for s in plain.forever() {
            if tx.send(s).is_err() {
                return;
            }
        }
    });

    let (tx, ctrlc_rx) = crossbeam_channel::unbounded();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .expect("ctrlc");

    measure(
        &mut c,
        "kill_to_notified/crashguard_listener",
        libc::SIGTERM,
        &ours,
    );
    measure(
        &mut c,
        "kill_to_notified/signal_hook_iterator",
        libc::SIGUSR1,
        &hook_rx,
    );
    measure(&mut c, "kill_to_notified/ctrlc", libc::SIGINT, &ctrlc_rx);

    c.final_summary();

    // Load on the shared machine drifts between criterion's runs: interleave the three and
    // compare medians of the same rounds (the numbers in docs/performance/signals.md).
    let rounds = 3000;
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds {
        samples[0].push(once(libc::SIGTERM, &ours));
        samples[1].push(once(libc::SIGUSR1, &hook_rx));
        samples[2].push(once(libc::SIGINT, &ctrlc_rx));
    }
    let names = ["crashguard_listener", "signal_hook_iterator", "ctrlc"];
    let mut medians = [0u64; 3];
    println!("\npaired, {rounds} interleaved rounds (median / p90, microseconds):");
    for (i, v) in samples.iter_mut().enumerate() {
        v.sort_unstable();
        medians[i] = v[v.len() / 2];
        println!(
            "  kill_to_notified/{:<22} {:>7.2} / {:>7.2}",
            names[i],
            medians[i] as f64 / 1e3,
            v[v.len() * 9 / 10] as f64 / 1e3
        );
    }
    let fastest = *medians.iter().min().unwrap_or(&1);
    println!(
        "  ratio crashguard_listener / fastest: {:.2}",
        medians[0] as f64 / fastest as f64
    );
    listener.stop();
}
