//! The allocator workload with `stats_alloc::StatsAlloc<System>` as the global allocator (see
//! `alloc_pairs`).

#[global_allocator]
static ALLOC: stats_alloc::StatsAlloc<std::alloc::System> = stats_alloc::StatsAlloc::system();

fn main() -> std::process::ExitCode {
    crashguard_tests::alloc_pairs::main()
}
