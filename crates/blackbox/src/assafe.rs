//! Small async-signal-safe building blocks shared by the signal handlers, the allocator and the
//! samplers: thread ids, clocks, thread names, bounded copies and number formatting.
//!
//! Everything here is a raw syscall or a plain memory operation. Nothing allocates, locks or
//! panics; indexing is done with checked accessors or on bounds established just before.

/// Kernel thread id of the calling thread.
///
/// Async-signal-safe.
pub fn gettid() -> u32 {
    crate::sys::gettid()
}

/// Wall-clock time in nanoseconds since the Unix epoch (0 if the clock is unavailable).
///
/// Async-signal-safe.
pub fn now_realtime_ns() -> u64 {
    crate::sys::clock_ns(crate::sys::Clock::Realtime)
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

/// Copies as much of `src` into `dst` as fits without splitting a UTF-8 sequence, zero-fills the
/// rest of `dst`, and returns the number of bytes copied.
///
/// Async-signal-safe.
pub fn copy_bytes(dst: &mut [u8], src: &[u8]) -> u32 {
    let mut n = src.len().min(dst.len());
    if n < src.len() {
        // Step back over continuation bytes so a truncated message stays valid UTF-8.
        while n > 0 && src.get(n).is_some_and(|b| b & 0xC0 == 0x80) {
            n -= 1;
        }
    }
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
