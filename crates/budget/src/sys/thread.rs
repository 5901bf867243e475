//! The thread budget's platform calls.
//!
//! Linux has everything. Other unixes compile with reduced features: resource limits and uids
//! work through POSIX calls, but the task directory scan (`getdents64`) reports `ENOSYS`, so the
//! census is empty there and the crash-time census records no groups.

use std::ffi::CStr;
use std::io;

/// The resource limits the thread budget reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `RLIMIT_NPROC`: tasks (processes and threads) per real user.
    Nproc,
    /// `RLIMIT_AS`: bytes of address space, which every thread stack takes from.
    AddressSpace,
}

/// Reads the soft limit of `resource`; `Ok(None)` means unlimited.
pub fn soft_rlimit(resource: Resource) -> io::Result<Option<u64>> {
    let which = match resource {
        Resource::Nproc => libc::RLIMIT_NPROC,
        Resource::AddressSpace => libc::RLIMIT_AS,
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit; getrlimit only writes into it.
    let rc = unsafe { libc::getrlimit(which, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        Ok(None)
    } else {
        // rlim_t is u64 on Linux and i64 on the BSDs; a negative value is not a limit.
        #[allow(clippy::useless_conversion)]
        Ok(u64::try_from(lim.rlim_cur).ok())
    }
}

/// The real uid, which `RLIMIT_NPROC` counts tasks against.
pub fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective uid; root is exempt from `RLIMIT_NPROC`.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// True when `err` is the OS refusing a new thread for lack of resources.
///
/// glibc's `pthread_create` reports a failed stack `mmap` (`ENOMEM`) as `EAGAIN`, the same code
/// as `clone` hitting `RLIMIT_NPROC`, `pids.max` or `threads-max`; telling them apart is the
/// diagnosis's job.
pub fn is_resource_refusal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM))
}

/// Walks the task directory `dir` (e.g. `/proc/self/task`) and calls `visit` with the `comm`
/// (raw bytes as read, at most 32) of each of the first `named` tasks; tasks after those are
/// only counted (no `openat`/`read` each), and the walk stops after `limit` tasks. `dents` is the
/// caller's buffer for directory entries. Tasks that exit during the walk are skipped. Returns
/// `(tasks counted, tasks named)`, or the errno of opening or reading the directory.
///
/// Async-signal-safe when `visit` is.
pub fn scan_task_comms(
    dir: &CStr,
    dents: &mut [u8],
    limit: u32,
    named: u32,
    visit: &mut dyn FnMut(&[u8]),
) -> Result<(u32, u32), i32> {
    imp::scan_task_comms(dir, dents, limit, named, visit)
}

/// The number of threads of this process as the kernel keeps it (the `Threads:` line of
/// `/proc/self/status`): `open`, a few `read`s of a 512-byte buffer, `close`, whatever the
/// number, where listing `/proc/self/task` costs about a millisecond per thousand threads.
/// (`/proc/self/stat` has the same number, but renders it by visiting every thread: 2–24 ms
/// with 10,000 threads.) `None` when it cannot be read.
///
/// Async-signal-safe.
pub fn thread_count() -> Option<u32> {
    imp::thread_count()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::ffi::CStr;

    /// See [`super::thread_count`].
    ///
    /// Async-signal-safe.
    pub fn thread_count() -> Option<u32> {
        // SAFETY: a NUL-terminated literal path; open is async-signal-safe.
        let fd = unsafe {
            libc::open(
                c"/proc/self/status".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        let mut finder = ThreadsLine::default();
        let mut buf = [0u8; 512];
        let mut found = None;
        // The file is about 1.4 KiB; a long `Groups:` line can make it longer, so read on (at
        // most 64 KiB) until the line is found.
        for _ in 0..128 {
            // SAFETY: `buf` is valid and writable for its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let Some(chunk) = usize::try_from(n).ok().and_then(|n| buf.get(..n)) else {
                break;
            };
            if chunk.is_empty() {
                break;
            }
            found = chunk.iter().find_map(|&b| finder.feed(b));
            if found.is_some() {
                break;
            }
        }
        // SAFETY: `fd` was opened above and is closed exactly once.
        unsafe { libc::close(fd) };
        found
    }

    /// Finds `Threads:<blanks><digits>\n` at the start of a line, one byte at a time, so that
    /// the line may span two reads.
    #[derive(Default)]
    pub(super) struct ThreadsLine {
        /// Bytes of `\nThreads:` matched so far.
        matched: usize,
        value: Option<u32>,
        overflow: bool,
    }

    impl ThreadsLine {
        const KEY: &'static [u8] = b"\nThreads:";

        /// Feeds the next byte; returns the count once its line ends.
        ///
        /// Async-signal-safe.
        pub(super) fn feed(&mut self, b: u8) -> Option<u32> {
            if self.matched < Self::KEY.len() {
                self.matched = if Self::KEY.get(self.matched) == Some(&b) {
                    self.matched + 1
                } else if b == b'\n' {
                    1
                } else {
                    0
                };
                return None;
            }
            match b {
                b' ' | b'\t' if self.value.is_none() => None,
                b'0'..=b'9' => {
                    let digit = u32::from(b - b'0');
                    let next = self
                        .value
                        .unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(digit));
                    self.overflow |= next.is_none();
                    self.value = next.or(self.value);
                    None
                }
                b'\n' if !self.overflow => self.value,
                _ => {
                    // Not a count after all: look for the key again.
                    *self = ThreadsLine::default();
                    None
                }
            }
        }
    }

    /// Offset of `d_reclen` in `struct linux_dirent64` (after `d_ino: u64`, `d_off: i64`).
    const RECLEN_AT: usize = 16;
    /// Offset of `d_name` (after `d_reclen: u16`, `d_type: u8`).
    const NAME_AT: usize = 19;

    /// See [`super::scan_task_comms`].
    ///
    /// Async-signal-safe when `visit` is.
    pub fn scan_task_comms(
        dir: &CStr,
        dents: &mut [u8],
        limit: u32,
        named: u32,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<(u32, u32), i32> {
        // SAFETY: `dir` is a valid NUL-terminated string; open is async-signal-safe.
        let fd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        let result = walk(fd, dents, limit, named, visit);
        // SAFETY: `fd` was opened above and is closed exactly once.
        unsafe { libc::close(fd) };
        result
    }

    /// Async-signal-safe.
    fn walk(
        fd: i32,
        dents: &mut [u8],
        limit: u32,
        named: u32,
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<(u32, u32), i32> {
        let mut seen: u32 = 0;
        let mut visited: u32 = 0;
        loop {
            // SAFETY: the kernel writes at most `dents.len()` bytes into `dents`, which is
            // valid and writable for that length; getdents64 is a plain system call.
            let n =
                unsafe { libc::syscall(libc::SYS_getdents64, fd, dents.as_mut_ptr(), dents.len()) };
            if n < 0 {
                return Err(errno());
            }
            let filled = usize::try_from(n).unwrap_or(0).min(dents.len());
            if filled == 0 {
                return Ok((seen, visited));
            }
            let mut at = 0;
            while at < filled {
                let Some(reclen) = dents
                    .get(at + RECLEN_AT..at + RECLEN_AT + 2)
                    .and_then(|b| <[u8; 2]>::try_from(b).ok())
                    .map(|b| usize::from(u16::from_ne_bytes(b)))
                else {
                    return Ok((seen, visited));
                };
                if reclen == 0 {
                    return Ok((seen, visited));
                }
                let record = dents.get(at..(at + reclen).min(filled)).unwrap_or(&[]);
                let name = record.get(NAME_AT..).unwrap_or(&[]);
                let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
                if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
                    if seen >= limit {
                        return Ok((seen, visited));
                    }
                    if visited >= named {
                        seen += 1;
                    } else {
                        let mut comm = [0u8; 32];
                        if let Some(len) = read_comm(fd, name, &mut comm) {
                            seen += 1;
                            visited += 1;
                            visit(comm.get(..len).unwrap_or(&[]));
                        }
                    }
                }
                at += reclen;
            }
        }
    }

    /// Reads `<dirfd>/<tid>/comm` into `out`; `None` when the task is gone.
    ///
    /// Async-signal-safe.
    fn read_comm(dirfd: i32, tid: &[u8], out: &mut [u8; 32]) -> Option<usize> {
        const SUFFIX: &[u8] = b"/comm\0";
        let mut path = [0u8; 40];
        let tid_len = tid.len();
        path.get_mut(..tid_len)?.copy_from_slice(tid);
        path.get_mut(tid_len..tid_len + SUFFIX.len())?
            .copy_from_slice(SUFFIX);
        // SAFETY: `path` is NUL-terminated (SUFFIX ends with NUL) and `dirfd` is an open
        // directory; openat is async-signal-safe.
        let fd = unsafe {
            libc::openat(
                dirfd,
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `out` is valid and writable for `out.len()` bytes.
        let n = unsafe { libc::read(fd, out.as_mut_ptr().cast(), out.len()) };
        // SAFETY: `fd` was opened above and is closed exactly once.
        unsafe { libc::close(fd) };
        usize::try_from(n).ok()
    }

    /// Async-signal-safe.
    fn errno() -> i32 {
        // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
        unsafe { *libc::__errno_location() }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::ffi::CStr;

    /// There is no `/proc/self/stat` off Linux.
    ///
    /// Async-signal-safe.
    pub fn thread_count() -> Option<u32> {
        None
    }

    /// See [`super::scan_task_comms`]; there is no task directory off Linux.
    ///
    /// Async-signal-safe.
    pub fn scan_task_comms(
        _dir: &CStr,
        _dents: &mut [u8],
        _limit: u32,
        _named: u32,
        _visit: &mut dyn FnMut(&[u8]),
    ) -> Result<(u32, u32), i32> {
        Err(libc::ENOSYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_thread_count_is_found_in_any_split_of_the_status_file() {
        let status = b"Name:\tx Threads: 9\nGroups:\t1 2\nThreads:\t12\nSigQ:\t0/1\n";
        for split in 0..status.len() {
            let mut finder = imp::ThreadsLine::default();
            let (a, b) = status.split_at(split);
            let found = a.iter().chain(b).find_map(|&c| finder.feed(c));
            assert_eq!(found, Some(12), "split at {split}");
        }
        for bad in [
            &b"Name:\tx\nThreads:\t\n"[..],
            b"x\nThreads:\t99999999999\n",
            b"Threads:\t3\n",
        ] {
            let mut finder = imp::ThreadsLine::default();
            assert_eq!(bad.iter().find_map(|&c| finder.feed(c)), None, "{bad:?}");
        }
        // Other tests run on threads of this process too, so only a lower bound is certain:
        // the main thread, this test's and the one spawned here.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let n = thread_count().expect("own /proc/self/stat");
        assert!(n >= 3, "{n} threads");
        drop(tx);
        t.join().expect("join");
    }

    #[test]
    fn own_task_directory_is_scanned() {
        let mut dents = [0u8; 512];
        let mut names = Vec::new();
        let (seen, named) =
            scan_task_comms(c"/proc/self/task", &mut dents, 10_000, 10_000, &mut |c| {
                names.push(c.to_vec());
            })
            .expect("scan /proc/self/task");
        assert!(seen >= 1);
        assert_eq!(named, seen);
        assert_eq!(names.len(), seen as usize);
        // Naming none still counts them all.
        let (counted, named) =
            scan_task_comms(c"/proc/self/task", &mut dents, 10_000, 0, &mut |_| {
                unreachable!("no task is named")
            })
            .expect("scan /proc/self/task");
        assert!(counted >= 1);
        assert_eq!(named, 0);
    }

    #[test]
    fn missing_directory_is_an_errno() {
        let mut dents = [0u8; 512];
        let err = scan_task_comms(c"/nonexistent/task", &mut dents, 10, 10, &mut |_| {});
        assert_eq!(err, Err(libc::ENOENT));
    }

    #[test]
    fn limit_stops_the_walk() {
        let mut dents = [0u8; 512];
        let seen = scan_task_comms(c"/proc/self/task", &mut dents, 0, 10, &mut |_| {}).unwrap();
        assert_eq!(seen, (0, 0));
    }

    #[test]
    fn refusals() {
        assert!(is_resource_refusal(&io::Error::from_raw_os_error(
            libc::EAGAIN
        )));
        assert!(!is_resource_refusal(&io::Error::from_raw_os_error(
            libc::EINVAL
        )));
    }
}
