//! Small async-signal-safe building blocks shared by the signal handlers, the allocator and the
//! samplers: thread ids, clocks, thread names, bounded copies and number formatting.
//!
//! Everything here is a raw syscall or a plain memory operation. Nothing allocates, locks or
//! panics; indexing is done with checked accessors or on bounds established just before.

use std::cell::Cell;

/// Kernel thread id of the calling thread.
///
/// Async-signal-safe.
pub fn gettid() -> u32 {
    crate::sys::gettid()
}

thread_local! {
    /// The calling thread's id as [`gettid`] returned it, or 0 before the first
    /// [`gettid_cached`]. `const`-initialised and without a destructor, so std compiles it to a
    /// plain `#[thread_local]` slot: no lazy initialisation, no registration, readable from a
    /// signal handler and from inside the allocator.
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// [`gettid`] without the system call after the first one on each thread (a `gettid` costs
/// about 300 ns in a virtual machine, which is what a breadcrumb used to spend on it).
///
/// A child made by `fork` inherits the forking thread's cached value; the black box's fork
/// handler (registered when a box is armed) clears it with [`forget_cached_tid`]. A child
/// made by a raw `clone` without that handler would read its parent's id.
///
/// Async-signal-safe.
#[inline]
pub fn gettid_cached() -> u32 {
    TID.try_with(|c| {
        let t = c.get();
        if t != 0 {
            return t;
        }
        let t = gettid();
        c.set(t);
        t
    })
    .unwrap_or_else(|_| gettid())
}

/// Clears the calling thread's cached id (in a child right after `fork`).
///
/// Async-signal-safe.
pub fn forget_cached_tid() {
    let _ = TID.try_with(|c| c.set(0));
}

/// Wall-clock time in nanoseconds since the Unix epoch (0 if the clock is unavailable).
///
/// Async-signal-safe.
pub fn now_realtime_ns() -> u64 {
    crate::sys::clock_ns(crate::sys::Clock::Realtime)
}

/// Wall-clock time as of the last kernel tick (1–4 ms resolution on Linux), nanoseconds since
/// the Unix epoch: a few nanoseconds instead of the tens a precise read costs under a
/// hypervisor. Other Unixes read the precise clock.
///
/// Async-signal-safe.
#[inline]
pub fn now_realtime_coarse_ns() -> u64 {
    crate::sys::clock_ns(crate::sys::Clock::RealtimeCoarse)
}

/// Monotonic time in nanoseconds (0 if the clock is unavailable).
///
/// Async-signal-safe.
pub fn now_monotonic_ns() -> u64 {
    crate::sys::clock_ns(crate::sys::Clock::Monotonic)
}

/// Copies the calling thread's name into `out` and returns its length (0 if unknown).
///
/// Async-signal-safe.
pub fn current_thread_name(out: &mut [u8; 16]) -> usize {
    crate::sys::thread_name(out)
}

/// Writes `bytes` to standard error, retrying short writes and ignoring errors.
///
/// Async-signal-safe.
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// Writes `bytes` to `fd`, retrying short writes and `EINTR`, ignoring other errors.
///
/// Async-signal-safe.
pub fn write_fd(fd: i32, bytes: &[u8]) {
    crate::sys::write_all(fd, bytes);
}

/// Replaces the whole contents of the regular file `fd` with `bytes`: truncates it, rewinds
/// it and writes, so a shorter message never keeps the tail of a longer one (the orchestrator's
/// termination log). Errors are ignored.
///
/// Async-signal-safe: `ftruncate`, `lseek` and `write` are on the POSIX list.
pub fn replace_fd_contents(fd: i32, bytes: &[u8]) {
    crate::sys::truncate_and_rewind(fd);
    crate::sys::write_all(fd, bytes);
}

/// The length of the longest prefix of `src` that fits in `max` bytes without splitting a
/// UTF-8 sequence.
///
/// Async-signal-safe.
#[inline]
pub fn utf8_prefix_len(src: &[u8], max: usize) -> usize {
    let mut n = src.len().min(max);
    if n < src.len() {
        // Step back over continuation bytes so a truncated message stays valid UTF-8.
        while n > 0 && src.get(n).is_some_and(|b| b & 0xC0 == 0x80) {
            n -= 1;
        }
    }
    n
}

/// Copies as much of `src` into `dst` as fits without splitting a UTF-8 sequence, zero-fills the
/// rest of `dst`, and returns the number of bytes copied.
///
/// Async-signal-safe.
pub fn copy_bytes(dst: &mut [u8], src: &[u8]) -> u32 {
    let n = utf8_prefix_len(src, dst.len());
    let (head, tail) = dst.split_at_mut(n);
    if let Some(s) = src.get(..n) {
        head.copy_from_slice(s);
    }
    tail.fill(0);
    n as u32
}

/// A fixed buffer that formats numbers and text without allocating, for messages written from
/// a signal handler. Text past the capacity is dropped.
#[derive(Debug)]
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    ///
    /// Async-signal-safe.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends bytes, dropping what does not fit.
    ///
    /// Async-signal-safe.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        self
    }

    /// Appends `v` in decimal.
    ///
    /// Async-signal-safe.
    pub fn dec(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.push(digits.get(i..).unwrap_or(&[]))
    }

    /// Appends `v` as `0x` followed by lowercase hex digits.
    ///
    /// Async-signal-safe.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = HEX[(v & 0xF) as usize];
            v >>= 4;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.push(b"0x");
        self.push(digits.get(i..).unwrap_or(&[]))
    }

    /// The bytes written so far.
    ///
    /// Async-signal-safe.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Forgets the contents.
    ///
    /// Async-signal-safe.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_truncates_on_char_boundary() {
        let mut dst = [0xFFu8; 4];
        let n = copy_bytes(&mut dst, "abé!".as_bytes());
        assert_eq!(n, 4);
        let n = copy_bytes(&mut dst, "abcé".as_bytes());
        assert_eq!(n, 3);
        assert_eq!(&dst, b"abc\0");
    }

    #[test]
    fn numbers_format() {
        let mut b = LineBuf::<64>::new();
        b.dec(0)
            .push(b" ")
            .dec(18_446_744_073_709_551_615)
            .push(b" ")
            .hex(0xdead_beef)
            .push(b" ")
            .hex(0);
        assert_eq!(b.as_bytes(), b"0 18446744073709551615 0xdeadbeef 0x0");
        let mut small = LineBuf::<3>::new();
        small.dec(12345);
        assert_eq!(small.as_bytes(), b"123");
    }

    #[test]
    fn thread_name_and_clocks() {
        let mut name = [0u8; 16];
        let n = current_thread_name(&mut name);
        assert!(n > 0);
        assert!(now_realtime_ns() > 1_600_000_000_000_000_000);
        let a = now_monotonic_ns();
        assert!(now_monotonic_ns() >= a);
        assert_eq!(gettid() as i32, unsafe_free_getpid_for_main_thread_check());
        assert_eq!(gettid_cached(), gettid());
        let other = std::thread::spawn(gettid_cached).join().expect("thread");
        assert_ne!(other, gettid_cached(), "each thread caches its own id");
        forget_cached_tid();
        assert_eq!(gettid_cached(), gettid());
        let coarse = now_realtime_coarse_ns();
        assert!(now_realtime_ns() + 50_000_000 >= coarse && coarse > 1_600_000_000_000_000_000);
    }

    fn unsafe_free_getpid_for_main_thread_check() -> i32 {
        // The test harness runs tests on spawned threads, so compare against the kernel's view
        // of the thread instead: /proc/thread-self links to task/<tid>.
        let link = std::fs::read_link("/proc/thread-self").expect("procfs");
        let tid = link
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok());
        tid.expect("tid in /proc/thread-self")
    }
}
