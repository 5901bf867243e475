//! `BudgetAllocator` as this test binary's global allocator: counting, threads that exit,
//! the hard limit (through fallible allocation, so the process survives) and the soft callback.
//!
//! The counters are process-wide, so the tests take one lock and allow a slack of a few
//! batches for the test harness's own threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crashguard_blackbox::BlackBox;
use crashguard_budget::memory::{
    AllocatorLimits, BATCH, BudgetAllocator, SoftCallback, install_limits, is_installed, limits,
    live_bytes,
};

#[global_allocator]
static ALLOC: BudgetAllocator<System> = BudgetAllocator::new(System);

const MIB: u64 = 1 << 20;
/// Slack for the harness's threads, which may each hold a batch unflushed.
const SLACK: u64 = 8 * BATCH as u64;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn blackbox() -> &'static BlackBox {
    static BB: OnceLock<&'static BlackBox> = OnceLock::new();
    BB.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("crashguard-memory-alloc-{}", std::process::id()));
        let opened = crashguard_blackbox::open(
            &dir,
            &crashguard_blackbox::Options {
                app: "alloc-test".into(),
                ring_capacity: 64,
                stack_capacity: crashguard_blackbox::layout::DEFAULT_STACK_CAPACITY,
            },
        )
        .expect("open black box");
        opened.blackbox.arm().expect("arm black box")
    })
}

fn near(actual: u64, expected: u64) -> bool {
    actual.abs_diff(expected) <= SLACK
}

#[test]
fn the_allocator_knows_it_is_installed() {
    let _g = serial();
    assert!(is_installed());
}

#[test]
fn live_bytes_follow_allocations_and_reallocations() {
    let _g = serial();
    let before = live_bytes();
    let big = vec![1u8; (16 * MIB) as usize];
    assert!(
        near(live_bytes(), before + 16 * MIB),
        "{} vs {}",
        live_bytes(),
        before + 16 * MIB
    );
    // Growth by realloc is counted as the difference.
    let mut grown: Vec<u64> = Vec::new();
    for i in 0..(MIB as usize) {
        grown.push(i as u64);
    }
    let expect = before + 16 * MIB + (grown.capacity() * 8) as u64;
    assert!(near(live_bytes(), expect), "{} vs {expect}", live_bytes());
    grown.shrink_to_fit();
    drop(big);
    drop(grown);
    assert!(near(live_bytes(), before), "{} vs {before}", live_bytes());
}

#[test]
fn threads_that_exit_do_not_lose_their_pending_bytes() {
    let _g = serial();
    let before = live_bytes();
    // Each thread allocates less than a batch, so its bytes are still pending when it exits;
    // the buffers outlive the thread. Without the exit flush they would vanish from the count
    // (and the later frees would push it 10 MiB below the truth).
    let per_thread = 40 * 1024;
    let threads = 256;
    let buffers: Vec<Vec<u8>> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || vec![7u8; per_thread])
                .join()
                .unwrap()
        })
        .collect();
    let held = (per_thread * threads) as u64;
    assert!(
        near(live_bytes(), before + held),
        "{} vs {}",
        live_bytes(),
        before + held
    );
    drop(buffers);
    assert!(near(live_bytes(), before), "{} vs {before}", live_bytes());
}

#[test]
fn allocations_in_tls_destructors_are_counted() {
    let _g = serial();
    static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    struct AllocOnDrop;
    impl Drop for AllocOnDrop {
        fn drop(&mut self) {
            KEPT.lock().unwrap().push(vec![1u8; 50 * 1024]);
        }
    }
    thread_local! {
        static ON_EXIT: AllocOnDrop = const { AllocOnDrop };
    }
    KEPT.lock().unwrap().reserve(64);
    let before = live_bytes();
    for _ in 0..32 {
        std::thread::spawn(|| ON_EXIT.with(|_| ())).join().unwrap();
    }
    let held = 32 * 50 * 1024;
    assert_eq!(KEPT.lock().unwrap().len(), 32);
    assert!(
        near(live_bytes(), before + held),
        "{} vs {}",
        live_bytes(),
        before + held
    );
    KEPT.lock().unwrap().clear();
}

#[test]
fn the_hard_limit_refuses_and_records_before_returning_null() {
    let _g = serial();
    let bb = blackbox();
    let limit = live_bytes() + 64 * MIB;
    let installed = install_limits(AllocatorLimits::NONE.hard(limit));
    assert_eq!(limits().hard, Some(limit));
    let mut v: Vec<u8> = Vec::new();
    let refused = v.try_reserve_exact((128 * MIB) as usize);
    // Within the limit still works.
    let mut ok: Vec<u8> = Vec::new();
    let allowed = ok.try_reserve_exact((8 * MIB) as usize);
    drop(installed);
    // The guard put back what was in force before: no limit.
    let now = limits();
    assert_eq!((now.hard, now.soft), (None, None));
    assert!(now.on_soft.is_none());
    let mut big: Vec<u8> = Vec::new();
    assert!(big.try_reserve_exact((128 * MIB) as usize).is_ok());
    drop(big);
    assert!(refused.is_err());
    assert!(allowed.is_ok());
    let rec = bb.alloc_failure().expect("failure recorded");
    assert_eq!(rec.request_bytes, 128 * MIB);
    assert_eq!(rec.align, 1);
    assert_eq!(rec.budget_bytes, limit);
    assert_eq!(rec.by_budget, 1);
    assert!(
        near(rec.live_bytes, limit - 64 * MIB),
        "{} vs {}",
        rec.live_bytes,
        limit - 64 * MIB
    );
    assert_eq!(rec.tid, crashguard_blackbox::assafe::gettid());
}

#[test]
fn an_inner_failure_is_recorded_as_not_the_budget() {
    let _g = serial();
    let bb = blackbox();
    struct Refuses;
    // SAFETY: returns null for every request, which GlobalAlloc permits; never hands out memory.
    unsafe impl GlobalAlloc for Refuses {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            std::ptr::null_mut()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }
    let a = BudgetAllocator::new(Refuses);
    let before = live_bytes();
    // A request larger than what is left of the thread's allowance takes the slow path, which
    // checks the inner allocator's result: the failure is recorded and not counted.
    for size in [3 * BATCH, 5 * BATCH] {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { a.alloc(layout) };
        assert!(p.is_null());
        let rec = bb.alloc_failure().expect("failure recorded");
        assert_eq!(
            (
                rec.request_bytes,
                rec.align,
                rec.by_budget,
                rec.budget_bytes
            ),
            // The first failure of a thread stands for a second: later ones (std's
            // out-of-memory hook allocating to print a backtrace) must not hide it.
            (3 * BATCH as u64, 16, 0, u64::MAX)
        );
    }
    assert!(near(live_bytes(), before));
    // A small request within the allowance takes the fast path, which does not look at the
    // result (that is what keeps it at a few instructions): it stays counted, at most its own
    // size, and is not recorded. The thread's next call settles as usual.
    let layout = Layout::from_size_align(24, 16).unwrap();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { a.alloc(layout) };
    assert!(p.is_null());
    let after = live_bytes();
    assert!(after <= before + 24 + BATCH as u64 && near(after, before));
}

static SOFT_CALLS: AtomicUsize = AtomicUsize::new(0);

fn on_soft() {
    SOFT_CALLS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn the_soft_callback_fires_once_per_crossing() {
    let _g = serial();
    SOFT_CALLS.store(0, Ordering::Relaxed);
    // SAFETY: `on_soft` only increments an atomic counter.
    let on_soft = unsafe { SoftCallback::new(on_soft) };
    let installed = install_limits(
        AllocatorLimits::NONE
            .soft(live_bytes() + 32 * MIB)
            .on_soft(on_soft),
    );
    let a = vec![1u8; (40 * MIB) as usize];
    let b = vec![1u8; (4 * MIB) as usize];
    let after_first = SOFT_CALLS.load(Ordering::Relaxed);
    drop(a);
    drop(b);
    let c = vec![1u8; (40 * MIB) as usize];
    let after_second = SOFT_CALLS.load(Ordering::Relaxed);
    drop(installed);
    drop(c);
    assert_eq!((after_first, after_second), (1, 2));
}
