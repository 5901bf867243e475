//! The allocator workload with `BudgetAllocator<System>` as the global allocator (see
//! `alloc_pairs`); no limit is set, as in a service that only wants the count.

#[global_allocator]
static ALLOC: crashguard::BudgetAllocator<std::alloc::System> =
    crashguard::BudgetAllocator::new(std::alloc::System);

fn main() -> std::process::ExitCode {
    crashguard_tests::alloc_pairs::main()
}
