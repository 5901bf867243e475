//! CRC-32 (IEEE 802.3, reflected), computed without tables built at run time.
//!
//! The black box checksums its sections from a signal handler, so the table is built at
//! compile time and the function neither allocates nor panics.

// A `static`, not a `const`: a const array indexed at run time is copied onto the stack at
// every use in debug builds, 1 KiB a byte, on the crash handler's small alternate stack.
static TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Continues a CRC-32 over `bytes` from a previous value (start with 0).
///
/// Async-signal-safe.
pub fn update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32 of `bytes`.
///
/// Async-signal-safe.
pub fn crc32(bytes: &[u8]) -> u32 {
    update(0, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(update(crc32(b"1234"), b"56789"), 0xCBF4_3926);
    }
}
