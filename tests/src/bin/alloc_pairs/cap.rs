//! The allocator workload with `cap::Cap<System>` as the global allocator (see `alloc_pairs`).

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn main() -> std::process::ExitCode {
    crashguard_tests::alloc_pairs::main()
}
