//! `MemoryBudget` validation and resolution against samples.

use crashguard_budget::Error;
use crashguard_budget::memory::{
    BudgetBasis, CgroupSample, CgroupVersion, Limit, Measure, MemoryBudget, MemorySample,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn sample(limit: Option<Limit>, heap: Option<u64>) -> MemorySample {
    MemorySample {
        rss_bytes: Some(300 << 20),
        heap_bytes: heap,
        mem_total_bytes: Some(16 * GIB),
        threads: Some(12),
        cgroup: limit.map(|limit| CgroupSample {
            version: CgroupVersion::V2,
            current_bytes: Some(700 << 20),
            inactive_file_bytes: Some(100 << 20),
            limit,
            high: Limit::Unlimited,
            oom_kill: Some(0),
            oom: Some(0),
            max_events: Some(0),
            pressure: None,
        }),
    }
}

#[test]
fn bytes_budget_is_hard_at_n_and_soft_at_85_percent() {
    let r = MemoryBudget::bytes(1000)
        .resolve(&sample(None, Some(10)))
        .unwrap();
    assert_eq!(
        (r.budget_bytes, r.hard_bytes, r.soft_bytes),
        (1000, 1000, 850)
    );
    assert_eq!(r.basis, BudgetBasis::Bytes);
    assert_eq!(r.measure, Measure::Heap);
    // Without the counting allocator the same budget is measured against RSS.
    let r = MemoryBudget::bytes(1000)
        .resolve(&sample(None, None))
        .unwrap();
    assert_eq!(r.measure, Measure::Rss);
    // Exact for values an f64 cannot hold.
    let n = (1u64 << 60) + 1;
    assert_eq!(
        MemoryBudget::bytes(n)
            .resolve(&sample(None, None))
            .unwrap()
            .hard_bytes,
        n
    );
}

#[test]
fn cgroup_fraction_uses_the_limit_and_keeps_a_margin() {
    let r = MemoryBudget::cgroup_fraction(1.0)
        .resolve(&sample(Some(Limit::Value(GIB)), None))
        .unwrap();
    assert_eq!(r.basis, BudgetBasis::Cgroup { limit_bytes: GIB });
    assert_eq!(r.budget_bytes, GIB);
    assert_eq!(r.hard_bytes, (GIB as f64 * 0.95) as u64);
    assert_eq!(r.soft_bytes, (GIB as f64 * 0.85) as u64);
    assert_eq!(r.measure, Measure::CgroupWorkingSet);
    assert_eq!(r.note(), None);
    let s = sample(Some(Limit::Value(GIB)), None);
    assert_eq!(r.usage(&s), Some((Measure::CgroupWorkingSet, 600 << 20)));

    let r = MemoryBudget::cgroup_fraction(0.5)
        .hard(1.0)
        .soft(0.5)
        .resolve(&s)
        .unwrap();
    assert_eq!(
        (r.budget_bytes, r.hard_bytes, r.soft_bytes),
        (GIB / 2, GIB / 2, GIB / 4)
    );
}

#[test]
fn cgroup_fraction_without_a_limit_falls_back_to_ram_and_says_so() {
    for s in [sample(Some(Limit::Unlimited), None), sample(None, None)] {
        let r = MemoryBudget::cgroup_fraction(0.5).resolve(&s).unwrap();
        assert_eq!(
            r.basis,
            BudgetBasis::RamFallback {
                mem_total_bytes: 16 * GIB
            }
        );
        assert_eq!(r.budget_bytes, 8 * GIB);
        assert_eq!(r.measure, Measure::Rss);
        assert!(
            r.note()
                .is_some_and(|n| n.contains("no cgroup memory limit"))
        );
    }
    let mut s = sample(None, None);
    s.mem_total_bytes = None;
    let err = MemoryBudget::cgroup_fraction(0.5).resolve(&s).unwrap_err();
    assert!(matches!(err, Error::NoLimit { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no physical memory size (MemTotal in /proc/meminfo) to take a fraction of"
    );
}

#[test]
fn ram_fraction_uses_memtotal() {
    let r = MemoryBudget::ram_fraction(0.25)
        .resolve(&sample(Some(Limit::Value(GIB)), None))
        .unwrap();
    assert_eq!(
        r.basis,
        BudgetBasis::Ram {
            mem_total_bytes: 16 * GIB
        }
    );
    assert_eq!(r.budget_bytes, 4 * GIB);
    assert_eq!(r.measure, Measure::Rss);
}

#[test]
fn bad_settings_are_clear_errors() {
    let cases: Vec<(MemoryBudget, &str)> = vec![
        (
            MemoryBudget::bytes(0),
            "a byte memory budget must be greater than zero",
        ),
        (
            MemoryBudget::cgroup_fraction(f64::NAN),
            "the memory budget's cgroup fraction must be within (0, 1], got NaN",
        ),
        (
            MemoryBudget::cgroup_fraction(0.0),
            "the memory budget's cgroup fraction must be within (0, 1], got 0",
        ),
        (
            MemoryBudget::ram_fraction(1.5),
            "the memory budget's ram fraction must be within (0, 1], got 1.5",
        ),
        (
            MemoryBudget::bytes(10).soft(-0.1),
            "the memory budget's soft share must be within (0, 1], got -0.1",
        ),
        (
            MemoryBudget::bytes(10).hard(f64::INFINITY),
            "the memory budget's hard share must be within (0, 1], got inf",
        ),
        (
            MemoryBudget::ram_fraction(0.5).soft(0.9).hard(0.8),
            "the memory budget's soft share (0.9) must not exceed its hard share (0.8)",
        ),
    ];
    for (budget, message) in cases {
        let err = budget.validate().unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(budget.resolve(&sample(None, None)).is_err());
    }
    let err = MemoryBudget::bytes(1)
        .soft(0.5)
        .resolve(&sample(None, None))
        .unwrap_err();
    assert!(err.to_string().contains("zero bytes"), "{err}");
}

proptest! {
    #[test]
    fn resolved_thresholds_are_ordered(
        n in 1u64..(1 << 50),
        f in 0.01f64..=1.0,
        soft in 0.01f64..=1.0,
        hard in 0.01f64..=1.0,
        limit in proptest::option::of(1u64 << 20..1 << 45),
    ) {
        let (soft, hard) = if soft <= hard { (soft, hard) } else { (hard, soft) };
        let s = sample(limit.map(Limit::Value), Some(0));
        for b in [MemoryBudget::bytes(n), MemoryBudget::cgroup_fraction(f), MemoryBudget::ram_fraction(f)] {
            if let Ok(r) = b.soft(soft).hard(hard).resolve(&s) {
                prop_assert!(r.soft_bytes <= r.hard_bytes);
                prop_assert!(r.hard_bytes <= r.budget_bytes);
                prop_assert!(r.soft_bytes > 0);
            }
        }
    }
}
