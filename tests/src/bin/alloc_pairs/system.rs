//! The allocator workload with `System` as the global allocator (see `alloc_pairs`).

#[global_allocator]
static ALLOC: std::alloc::System = std::alloc::System;

fn main() -> std::process::ExitCode {
    crashguard_tests::alloc_pairs::main()
}
