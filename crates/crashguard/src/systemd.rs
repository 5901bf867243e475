//! systemd's notify protocol, spoken directly over `$NOTIFY_SOCKET` (only with the feature
//! `systemd`; the code is plain std and always compiled, so both builds are checked; no
//! libsystemd): `READY=1` at install, `STOPPING=1` when a shutdown starts,
//! `EXTEND_TIMEOUT_USEC` while the hooks and the drain run, and `WATCHDOG=1` every half
//! `$WATCHDOG_USEC` while the guard lives. Without `$NOTIFY_SOCKET` (not started by systemd
//! with `Type=notify`) nothing is sent. A failed send is not an error: systemd acts on what it
//! did not receive (a start timeout, a watchdog kill) and says so in its journal.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if it names one and the `systemd` feature is on.
    pub(crate) fn from_env() -> Option<Arc<Notifier>> {
        if !cfg!(feature = "systemd") {
            return None;
        }
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let addr = socket_addr(path.as_encoded_bytes())?;
        let socket = UnixDatagram::unbound().ok()?;
        Some(Arc::new(Notifier { socket, addr }))
    }

    /// Sends one notification (`KEY=VALUE` lines).
    pub(crate) fn send(&self, state: &str) {
        let _ = self.socket.send_to_addr(state.as_bytes(), &self.addr);
    }

    /// Asks systemd for `extra` more time than it would otherwise wait, from now.
    pub(crate) fn extend(&self, extra: Duration) {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()));
    }
}

/// A `$NOTIFY_SOCKET` value as an address: a path, or `@name` for the abstract namespace.
fn socket_addr(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.split_first() {
        None => None,
        #[cfg(target_os = "linux")]
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name).ok()
        }
        Some((b'/', _)) => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(bytes)).ok()
        }
        Some(_) => None,
    }
}

/// The interval of `WATCHDOG=1` pings: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// advises, when the watchdog is on and meant for this process (`$WATCHDOG_PID`).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The thread that pings the watchdog; stops when dropped.
#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts pinging when `$WATCHDOG_USEC` asks for it.
    pub(crate) fn start(notifier: &Arc<Notifier>) -> Option<Watchdog> {
        let interval = watchdog_interval()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let n = Arc::clone(notifier);
        let thread = std::thread::Builder::new()
            .name("crashguard-wdog".into())
            .spawn(move || ping(&n, interval, &stopped))
            .ok()?;
        Some(Watchdog {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn ping(n: &Notifier, interval: Duration, stopped: &Receiver<()>) {
    loop {
        n.send("WATCHDOG=1");
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values() {
        assert!(socket_addr(b"").is_none());
        assert!(socket_addr(b"relative/path").is_none());
        let p = socket_addr(b"/run/systemd/notify").expect("a path");
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let a = socket_addr(b"@sd-notify").expect("an abstract name");
            assert_eq!(a.as_abstract_name(), Some(&b"sd-notify"[..]));
        }
    }

    #[test]
    fn a_notification_arrives_as_one_datagram() {
        let dir = std::env::temp_dir().join(format!("cg-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            socket: UnixDatagram::unbound().expect("socket"),
            addr: SocketAddr::from_pathname(&path).expect("addr"),
        };
        n.send("READY=1");
        n.extend(Duration::from_millis(1500));
        let mut buf = [0u8; 128];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"EXTEND_TIMEOUT_USEC=1500000");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
