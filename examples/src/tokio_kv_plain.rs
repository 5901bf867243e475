//! `tokio-kv` without crashguard: the same service (`kv/mod.rs`) on the system allocator, with a
//! tracing subscriber that keeps nothing, stopped by `tokio::signal` — the baseline against which
//! `benches/kv_throughput.rs` measures what crashguard costs the service
//! (`docs/performance/tokio-kv.md`). Same options as `tokio-kv`, less `--previous-json`.

mod kv;

fn main() -> std::process::ExitCode {
    let opts = match kv::options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tokio-kv-plain: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    if opts.previous_json {
        eprintln!("tokio-kv-plain: no crashguard here, so no previous run to print");
    }
    if let Err(e) = std::fs::create_dir_all(&opts.data) {
        eprintln!("tokio-kv-plain: cannot create {}: {e}", opts.data.display());
        return std::process::ExitCode::from(73);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio-kv-plain: cannot start the runtime: {e}");
            return std::process::ExitCode::from(69);
        }
    };
    // The same events as `tokio-kv`, to a subscriber with no layer: what they cost without
    // crashguard's breadcrumbs.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let (stopped, stop_rx) = tokio::sync::watch::channel(false);
    // Registered inside the runtime (tokio requires it) before the service listens.
    let term = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    });
    let mut term = match term {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tokio-kv-plain: cannot handle SIGTERM: {e}");
            return std::process::ExitCode::from(69);
        }
    };
    let stop = kv::Stopper {
        main: Box::pin(async move {
            term.recv().await;
            let _ = stopped.send(true);
            "SIGTERM".to_owned()
        }),
        conn: Box::new(move || {
            let mut rx = stop_rx.clone();
            Box::pin(async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            })
        }),
        on_ready_file: Box::new(|_| {}),
    };
    let result = runtime.block_on(kv::run(opts, stop));
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-kv-plain: {e}");
            std::process::ExitCode::from(69)
        }
    }
}
