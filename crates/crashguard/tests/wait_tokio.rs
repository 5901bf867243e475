//! `ShutdownSignal::wait_tokio` (feature `tokio`): a real SIGTERM wakes the task through the
//! runtime's reactor, with the sender recorded by the signal handler; and a runtime that never
//! polls again does not keep the shutdown from starting.
#![cfg(feature = "tokio")]

use std::time::Duration;

use crashguard::{ExitCode, ShutdownReason};

fn sigterm_self() {
    // SAFETY: sends SIGTERM to this process, whose handler crashguard installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
}

#[test]
fn a_sigterm_wakes_the_task_through_the_reactor_with_its_sender() {
    let dir = std::env::temp_dir().join(format!("cg-wait-tokio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = crashguard::Config::new("wait-tokio")
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
    let request = runtime.block_on(async move {
        let waiter = tokio::spawn(shutdown.wait_tokio());
        // Let the waiter register with the reactor, then signal.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        sigterm_self();
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("woken within 30 s")
            .expect("the waiter task did not panic")
    });
    match &request.reason {
        ShutdownReason::Signal {
            signal,
            sender_pid,
            sender_uid,
            ..
        } => {
            assert_eq!(signal.number(), libc::SIGTERM);
            assert_eq!(*sender_pid, Some(std::process::id()));
            // SAFETY: getuid cannot fail.
            assert_eq!(*sender_uid, Some(unsafe { libc::getuid() }));
        }
        other => panic!("expected a signal, got {other:?}"),
    }
    hook_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the hook ran");
    // The application listens, so the process waits for it: `shutdown` records the clean end
    // and returns.
    assert_eq!(
        guard.shutdown(ExitCode::Ok),
        std::process::ExitCode::SUCCESS
    );
    let _ = std::fs::remove_dir_all(&dir);
}
