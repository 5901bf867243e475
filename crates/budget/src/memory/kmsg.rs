//! Confirming an OOM kill from the kernel log.
//!
//! The OOM killer logs `Out of memory: Killed process <pid> (<comm>) ...` (or `Memory cgroup
//! out of memory: Killed process ...`). Reading `/dev/kmsg` needs `CAP_SYSLOG` when
//! `kernel.dmesg_restrict` is 1, which is common; without it the open fails with `EPERM` and the
//! scanner answers `None`, which means "unknown", not "no".

use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::sys::memory as sys;

/// Stop reading after this much log text; the kernel's ring buffer is usually well under it.
const MAX_LOG_BYTES: usize = 16 << 20;

/// The most recent line of `log` that reports the OOM killer killing `pid`.
///
/// `log` may be `/dev/kmsg` records (`prio,seq,usec,flags;message`) or `dmesg` output; the
/// message part is returned. `Killed process 42` does not match pid 4 or 420.
pub fn find_oom_kill_line(log: &str, pid: u32) -> Option<&str> {
    let mut digits = [0u8; 10];
    let pid_text = decimal(pid, &mut digits);
    log.lines().rev().find_map(|line| {
        let message = kmsg_message(line);
        let mut rest = message;
        while let Some(at) = rest.find("Killed process ") {
            let after = rest.get(at + "Killed process ".len()..)?;
            if let Some(tail) = after.strip_prefix(pid_text)
                && !tail.starts_with(|c: char| c.is_ascii_digit())
            {
                return Some(message.trim());
            }
            rest = after;
        }
        None
    })
}

/// The message of a `/dev/kmsg` record, or the whole line when it is not one.
fn kmsg_message(line: &str) -> &str {
    match line.split_once(';') {
        Some((prefix, message))
            if prefix.split(',').count() >= 3
                && prefix.bytes().next().is_some_and(|b| b.is_ascii_digit()) =>
        {
            message
        }
        _ => line,
    }
}

fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(i..).unwrap_or_default()).unwrap_or("")
}

/// Scans `/dev/kmsg` for the OOM killer's line about `pid`.
pub fn scan_kmsg(pid: u32) -> Option<String> {
    scan_kmsg_at(Path::new("/dev/kmsg"), pid)
}

/// Scans the kernel log at `path` (a `/dev/kmsg`-like device or a plain file) for the OOM
/// killer's line about `pid`.
///
/// The device is opened non-blocking and read record by record until `EAGAIN` (the end of
/// what is buffered), skipping records that were overwritten while reading (`EPIPE`). Any
/// failure to open (`EPERM` under `dmesg_restrict`, no such file) gives `None`.
pub fn scan_kmsg_at(path: &Path, pid: u32) -> Option<String> {
    let mut file = sys::open_read_nonblocking(path).ok()?;
    let mut log = Vec::new();
    // /dev/kmsg returns one record per read and fails with EINVAL if the buffer cannot hold
    // it; records are at most 8 KiB (CONSOLE_EXT_LOG_MAX).
    let mut chunk = vec![0u8; 8192];
    while log.len() < MAX_LOG_BYTES {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => log.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe || e.kind() == ErrorKind::Interrupted => {
                continue;
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&log);
    find_oom_kill_line(&text, pid).map(str::to_owned)
}
