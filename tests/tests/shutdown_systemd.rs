//! End-to-end: the `systemd` feature speaks the notify protocol over a real datagram socket,
//! as systemd would receive it: `READY=1` at install, `WATCHDOG=1` every half
//! `WATCHDOG_USEC`, and on SIGTERM `STOPPING=1` and `EXTEND_TIMEOUT_USEC` within the grace
//! period.

mod shutdown_support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use crashguard_tests::Child;
use shutdown_support::{CHILD, report_dir};

fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_watchdog_stopping_and_extend_timeout_reach_the_notify_socket() {
    let dir = report_dir("systemd");
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut command = Command::new(CHILD);
    command
        .args([dir.to_str().expect("utf-8"), "systemd"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    let mut child = Child::start(command);
    let pid = child.pid();

    assert_eq!(recv(&socket), format!("READY=1\nMAINPID={pid}"));
    // Pings every 100 ms; two in a row show they repeat.
    assert_eq!(recv(&socket), "WATCHDOG=1");
    assert_eq!(recv(&socket), "WATCHDOG=1");
    child.expect_line("READY");

    child.signal(libc::SIGTERM);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.starts_with("EXTEND_TIMEOUT_USEC="))
    {
        let m = recv(&socket);
        if m != "WATCHDOG=1" {
            seen.push(m);
        }
    }
    assert_eq!(seen[0], "STOPPING=1", "{seen:?}");
    let usec: u64 = seen[1]
        .strip_prefix("EXTEND_TIMEOUT_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{seen:?}"));
    // The rest of the 8 s grace period and a second more.
    assert!((8_000_000..=9_000_000).contains(&usec), "{usec}");
    let ended = child.wait();
    assert_eq!(ended.code(), Some(0), "{ended:#?}");
}
