//! The cost of one memory sample, which the sampler takes every 100 ms by default: on this
//! machine (cgroup v1, real `/proc` and cgroupfs) and on the v2 fixture tree (same files, on
//! an ordinary file system).

use std::hint::black_box;
use std::path::Path;

use crashguard_budget::memory::MemoryProbe;
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    let mut real = MemoryProbe::new().expect("probe of this machine");
    c.bench_function("probe/sample/this-machine", |b| {
        b.iter(|| black_box(real.sample().unwrap()))
    });
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup-v2");
    let mut v2 = MemoryProbe::with_root(fixture).expect("probe of the v2 fixture");
    c.bench_function("probe/sample/v2-fixture", |b| {
        b.iter(|| black_box(v2.sample().unwrap()))
    });
}

criterion_group!(probe, benches);
criterion_main!(probe);
