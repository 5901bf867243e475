//! The workload of the allocator benchmark (`benches/alloc_processes.rs`): one process per
//! allocator, each with that allocator as its `#[global_allocator]`, so that what is measured is
//! what a service pays (`__rust_alloc` through the real global allocator), not a direct call the
//! optimiser can fold into the loop.
//!
//! `alloc-pairs-<allocator> WORKLOAD N` runs `N` units and prints nothing. Workloads:
//! `16`, `256` (allocate that many bytes, touch one, free), `mixed` (a sliding window of 32 live
//! blocks of 16 B, 256 B and 4 KiB: each unit frees the oldest and allocates one).

use std::alloc::Layout;
use std::hint::black_box;

/// Runs the workload named by the command line; returns the process's exit status.
pub fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().map(String::as_str).unwrap_or("16");
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    match workload {
        "16" => pairs(16, n),
        "256" => pairs(256, n),
        "mixed" => mixed(n),
        other => {
            eprintln!("unknown workload {other}: 16, 256 or mixed");
            return std::process::ExitCode::from(64);
        }
    }
    std::process::ExitCode::SUCCESS
}

/// `n` times: allocate `size` bytes, write one, free them.
fn pairs(size: usize, n: u64) {
    let layout = Layout::from_size_align(size, 8).expect("layout");
    for i in 0..n {
        // SAFETY: non-zero size; freed right after with the same layout.
        unsafe {
            let p = std::alloc::alloc(black_box(layout));
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            p.write(i as u8);
            std::alloc::dealloc(black_box(p), layout);
        }
    }
}

/// A sliding window of 32 live blocks of mixed sizes.
fn mixed(n: u64) {
    const SIZES: [usize; 3] = [16, 256, 4096];
    let mut live: [(*mut u8, usize); 32] = [(std::ptr::null_mut(), 0); 32];
    for i in 0..n as usize {
        let slot = &mut live[i % live.len()];
        if !slot.0.is_null() {
            let layout = Layout::from_size_align(slot.1, 8).expect("layout");
            // SAFETY: allocated below with this layout.
            unsafe { std::alloc::dealloc(slot.0, layout) };
        }
        let size = SIZES[i % SIZES.len()];
        let layout = Layout::from_size_align(size, 8).expect("layout");
        // SAFETY: non-zero size; freed when the slot comes round again, or leaked at exit.
        let p = unsafe { std::alloc::alloc(black_box(layout)) };
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: at least one writable byte.
        unsafe { p.write(i as u8) };
        *slot = (black_box(p), size);
    }
}
