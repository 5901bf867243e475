//! Guarded spawn + join against std's, and the census at 100 / 1,000 / 10,000 threads.
//!
//! 100 and 1,000 threads are real threads of this process, read from `/proc/self/task`. 10,000
//! real threads could run into the machine's limits, so that size reads a fixture tree of the
//! same shape built in a temporary directory (regular files, so it measures the walk and the
//! grouping rather than procfs's rendering of `comm`).

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crashguard_blackbox::layout::{CensusEntry, MAX_CENSUS};
use crashguard_budget::thread::{self, Census, ThreadBudget, ThreadSettings};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    group.bench_function("std", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1)).join().unwrap())
    });
    group.bench_function("guarded", |b| {
        b.iter(|| thread::spawn(|| black_box(1)).unwrap().join().unwrap())
    });
    let budget =
        thread::install(ThreadSettings::new().budget(Some(ThreadBudget::max(10_000)))).unwrap();
    group.bench_function("guarded_with_budget", |b| {
        b.iter(|| thread::spawn(|| black_box(1)).unwrap().join().unwrap())
    });
    drop(budget);

    // Two benchmarks run minutes apart on a shared machine see different loads, so this one
    // alternates std and guarded spawns within each measurement and reports the guarded half;
    // the ratio of the two halves, summed over every sample, is printed at the end.
    let (mut std_total, mut guarded_total) = (Duration::ZERO, Duration::ZERO);
    group.bench_function("guarded_alternating_with_std", |b| {
        b.iter_custom(|iters| {
            let mut guarded = Duration::ZERO;
            for i in 0..iters {
                let t = Instant::now();
                if i % 2 == 0 {
                    std::thread::spawn(|| black_box(1)).join().unwrap();
                    std_total += t.elapsed();
                    let t = Instant::now();
                    thread::spawn(|| black_box(1)).unwrap().join().unwrap();
                    guarded += t.elapsed();
                } else {
                    thread::spawn(|| black_box(1)).unwrap().join().unwrap();
                    guarded += t.elapsed();
                    let t = Instant::now();
                    std::thread::spawn(|| black_box(1)).join().unwrap();
                    std_total += t.elapsed();
                }
            }
            guarded_total += guarded;
            guarded
        })
    });
    group.finish();
    println!(
        "spawn_join alternating: guarded / std = {:.3}",
        guarded_total.as_secs_f64() / std_total.as_secs_f64()
    );
}

/// Parks `n` named std threads until the returned sender is dropped.
fn park(n: usize) -> (mpsc::Sender<()>, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let started = Arc::new(Barrier::new(n + 1));
    let handles = (0..n)
        .map(|i| {
            let rx = rx.clone();
            let started = started.clone();
            std::thread::Builder::new()
                .name(format!("pool-{}-{i}", i % 8))
                .stack_size(64 << 10)
                .spawn(move || {
                    started.wait();
                    let _ = rx.lock().map(|r| r.recv());
                })
                .unwrap()
        })
        .collect();
    started.wait();
    (tx, handles)
}

struct Fixture(PathBuf);

impl Fixture {
    fn new(n: usize) -> Fixture {
        let root = std::env::temp_dir().join(format!("crashguard-census-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for i in 0..n {
            let dir = root.join(format!("self/task/{}", 1000 + i));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("comm"), format!("pool-{}-{i}\n", i % 8)).unwrap();
        }
        Fixture(root)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bench_census_at(c: &mut Criterion, label: &str, proc_root: &Path) {
    let mut group = c.benchmark_group("census");
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("collect", label), |b| {
        b.iter(|| black_box(Census::collect(proc_root).unwrap()))
    });
    let task_dir = std::ffi::CString::new(
        proc_root
            .join("self/task")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    group.bench_function(BenchmarkId::new("raw", label), |b| {
        b.iter(|| {
            let mut entries = [CensusEntry {
                count: 0,
                name_len: 0,
                name: [0; 16],
            }; MAX_CENSUS];
            let (mut count, mut total) = (0, 0);
            thread::census_raw_from(&task_dir, &mut entries, &mut count, &mut total);
            black_box((entries, count, total))
        })
    });
    group.finish();
}

fn census(c: &mut Criterion) {
    for n in [100usize, 1_000] {
        let (tx, handles) = park(n);
        bench_census_at(c, &format!("{n}_real"), Path::new("/proc"));
        drop(tx);
        for h in handles {
            h.join().unwrap();
        }
    }
    let fixture = Fixture::new(10_000);
    bench_census_at(c, "10000_fixture", &fixture.0);
}

criterion_group!(benches, spawn_join, census);
criterion_main!(benches);
