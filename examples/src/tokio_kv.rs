//! A tokio service that owns its drain: a small key-value store over TCP whose writes are
//! acknowledged only once they are applied and on disk, and which loses none of them on SIGTERM.
//!
//! Protocol, one line per request: `SET <key> <value>` → `OK`, `GET <key>` → `VALUE <value>` or
//! `NONE`. Keys and values are single words. Writes go through one writer task that appends them
//! to `DATA_DIR/kv.log`, `fdatasync`s the batch, applies it to the map and only then answers
//! `OK` (group commit: one sync for every write that arrived meanwhile). A restart replays the
//! log.
//!
//! On SIGTERM (or SIGINT, SIGHUP) crashguard tells the application through
//! [`crashguard::ShutdownSignal::wait_tokio`] (the accept loop) and
//! [`crashguard::ShutdownSignal::wait_async`] (each connection), and the application drains in
//! async code:
//!
//! 1. the accept loop stops; every connection finishes the request it is serving, then closes;
//! 2. once the last connection is gone the writer has every write, syncs them and stops;
//! 3. `main` returns through [`crashguard::Guard::shutdown`] and the process exits 0.
//!
//! Because `main` listens, crashguard does not end the process when its hooks are done (here
//! one hook removes the readiness file), only when `main` does — or at the grace deadline.
//! The next start says how the previous run ended.
//!
//! ```text
//! cargo run -p crashguard-examples --bin tokio-kv -- --data /tmp/kv --addr 127.0.0.1:7070
//! printf 'SET a 1\nGET a\n' | nc -q1 127.0.0.1 7070
//! kill -TERM <pid>; cargo run -p crashguard-examples --bin tokio-kv -- --data /tmp/kv
//! ```
//!
//! crashguard is wired in as a production service would have it: `BudgetAllocator` counts every
//! allocation against a 1 GiB memory budget, and `BreadcrumbLayer` turns the service's tracing
//! events (one per request) into breadcrumbs. `tokio-kv-plain` is the same service without any
//! of it, the baseline of the throughput benchmark (`benches/kv_throughput.rs`,
//! `docs/performance/tokio-kv.md`).
//!
//! Options: `--addr ADDR` (default `127.0.0.1:7070`; port 0 picks one), `--data DIR` (default
//! `./kv-data`; the report directory is `DIR/crash`), `--previous-json` (also print the
//! previous run's report as one `PREVIOUS <json>` line).

mod kv;

use crashguard::{BudgetAllocator, Config, ExitCode, MemoryBudget};
use tracing_subscriber::layer::SubscriberExt;

/// Every allocation is counted against the memory budget (and refused past its hard limit).
#[global_allocator]
static ALLOC: BudgetAllocator<std::alloc::System> = BudgetAllocator::new(std::alloc::System);

fn main() -> std::process::ExitCode {
    let opts = match kv::options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tokio-kv: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&opts.data) {
        eprintln!("tokio-kv: cannot create {}: {e}", opts.data.display());
        return std::process::ExitCode::from(73);
    }
    // Installed before the runtime starts, so its worker threads exist under crashguard.
    let guard = match Config::new("tokio-kv")
        .report_dir(opts.data.join("crash"))
        .memory_budget(MemoryBudget::bytes(1 << 30))
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tokio-kv: cannot install crashguard: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    if let Some(report) = guard.previous_run() {
        println!("previous run: {report}");
        if opts.previous_json {
            println!(
                "PREVIOUS {}",
                serde_json::to_string(report).unwrap_or_default()
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio-kv: cannot start the runtime: {e}");
            return guard.shutdown(unavailable());
        }
    };
    // Every tracing event at INFO and above becomes a breadcrumb in the black box, so the next
    // run's report shows the last requests the service answered.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(
        crashguard::tracing::BreadcrumbLayer::new(tracing::Level::INFO),
    ));
    let shutdown = guard.shutdown_signal();
    let for_connections = shutdown.clone();
    let stop = kv::Stopper {
        // `wait_tokio` (feature `tokio`): the runtime's reactor watches crashguard's signal
        // pipe, so SIGTERM wakes the accept loop straight from the signal handler. The
        // connections use `wait_async`, which the request's publication wakes: one
        // registration with the reactor is enough, not one per connection.
        main: Box::pin({
            let wait = shutdown.wait_tokio();
            async move { wait.await.reason.to_string() }
        }),
        conn: Box::new(move || {
            let wait = for_connections.wait_async();
            Box::pin(async move {
                wait.await;
            })
        }),
        on_ready_file: Box::new(|ready| {
            guard.on_shutdown("mark not ready", move || {
                let _ = std::fs::remove_file(&ready);
            });
        }),
    };
    let result = runtime.block_on(kv::run(opts, stop));
    // Every task is done or parked on a closed socket; do not wait for stragglers.
    runtime.shutdown_background();
    // The application's drain is over: run what is left of the shutdown and return its status
    // (0 after a completed shutdown), so that main's own destructors still run. A service that
    // could not start (the port is taken, the log unreadable) exits 69, EX_UNAVAILABLE, which
    // the next run reports as `exit` with that status.
    match result {
        Ok(()) => guard.shutdown(ExitCode::Ok),
        Err(e) => {
            eprintln!("tokio-kv: {e}");
            guard.shutdown(unavailable())
        }
    }
}

/// The application's own exit code for "cannot serve": 69 (`EX_UNAVAILABLE`).
fn unavailable() -> ExitCode {
    ExitCode::app(69).unwrap_or(ExitCode::Ok)
}
