//! `ShutdownSignal::wait_tokio` leaves the first go at a signal to the runtime, but a runtime
//! that never polls again (its only thread blocked) does not keep the shutdown from starting:
//! crashguard's own thread reads the signal after a short head start and the hooks run.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crashguard::{ExitCode, ShutdownReason};

#[test]
fn a_stuck_runtime_does_not_keep_the_shutdown_from_starting() {
    let dir = std::env::temp_dir().join(format!("cg-wait-tokio-stuck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = crashguard::Config::new("wait-tokio-stuck")
        .report_dir(&dir)
        .previous_run_to_stderr(false)
        .install()
        .expect("install");
    let shutdown = guard.shutdown_signal();
    let (hook_tx, hook_rx) = std::sync::mpsc::channel();
    guard.on_shutdown("note", move || {
        let _ = hook_tx.send(());
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut wait = Box::pin(shutdown.wait_tokio());
    // One poll inside the runtime registers the pipe with its reactor; then the runtime is
    // never driven again.
    let pending = runtime.block_on(async {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            Poll::Ready(wait.as_mut().poll(cx).is_pending())
        })
        .await
    });
    assert!(pending);
    // SAFETY: sends SIGTERM to this process, whose handler crashguard installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    hook_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the hooks ran although the runtime never polled");
    let request = shutdown.request().expect("published");
    assert!(
        matches!(request.reason, ShutdownReason::Signal { sender_pid: Some(p), .. } if p == std::process::id()),
        "{:?}",
        request.reason
    );
    // The stale future is ready when polled at last.
    let mut cx = Context::from_waker(Waker::noop());
    assert!(wait.as_mut().poll(&mut cx).is_ready());
    drop(wait);
    assert_eq!(
        guard.shutdown(ExitCode::Ok),
        std::process::ExitCode::SUCCESS
    );
    let _ = std::fs::remove_dir_all(&dir);
}
