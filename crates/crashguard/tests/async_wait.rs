//! `ShutdownSignal::wait_async` under a real tokio runtime: a task awaits the request while
//! the runtime's only thread stays free for other tasks, and the request wakes it.

use std::time::Duration;

use crashguard::{AppRequest, ExitCode, PanicPolicy, ShutdownReason};

#[test]
fn a_task_awaits_the_request_without_blocking_the_runtime() {
    let dir = std::env::temp_dir().join(format!("cg-async-wait-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = crashguard::Config::new("async-wait")
        .report_dir(&dir)
        .panic_policy(PanicPolicy::Unwind)
        .install()
        .expect("install");
    let shutdown = guard.shutdown_signal();
    let (hook_tx, hook_rx) = std::sync::mpsc::channel();
    guard.on_shutdown("note", move || {
        let _ = hook_tx.send(());
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let (ticks, request) = runtime.block_on(async move {
        let waiter = tokio::spawn(shutdown.wait_async());
        // The one runtime thread keeps running other tasks while the waiter is pending.
        let mut ticks = 0u32;
        while ticks < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks += 1;
        }
        assert!(!waiter.is_finished());
        // `Guard::shutdown` runs the hooks and returns instead of exiting, so this test process
        // survives the shutdown.
        let finisher = std::thread::spawn(move || guard.shutdown(ExitCode::Ok));
        let request = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("woken within 30 s")
            .expect("the waiter task did not panic");
        let _ = finisher.join();
        (ticks, request)
    });
    assert_eq!(ticks, 3);
    assert!(
        request.reason == ShutdownReason::App(AppRequest::Shutdown(ExitCode::Ok)),
        "{:?}",
        request.reason
    );
    hook_rx.try_recv().expect("the hook ran");
    let _ = std::fs::remove_dir_all(&dir);
}
