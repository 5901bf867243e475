//! CRC-32 (IEEE 802.3, reflected), computed without tables built at run time.
//!
//! The black box checksums its sections from a signal handler, so the table is built at
//! compile time and the function neither allocates nor panics.

// `static`s, not `const`s: a const array indexed at run time is copied onto the stack at every
// use in debug builds, on the crash handler's small alternate stack.
static TABLE: [u32; 256] = build_table();

/// Slicing-by-8 tables: `SLICES[k][b]` is the CRC of byte `b` followed by `k` zero bytes, so
/// eight bytes are folded per step with eight independent lookups instead of a chain of eight
/// dependent ones (about 3× faster; the crash handler checksums about 2 KiB per crash).
static SLICES: [[u32; 256]; 8] = build_slices();

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

const fn build_slices() -> [[u32; 256]; 8] {
    let mut slices = [[0u32; 256]; 8];
    slices[0] = build_table();
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = slices[k - 1][i];
            slices[k][i] = (prev >> 8) ^ slices[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    slices
}

/// Continues a CRC-32 over `bytes` from a previous value (start with 0).
///
/// Async-signal-safe.
pub fn update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) ^ c;
        let hi = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        let t = &SLICES;
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
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
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    /// The byte-at-a-time definition the sliced version must equal.
    fn bytewise(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        !c
    }

    #[test]
    fn sliced_equals_bytewise_at_every_length_and_split() {
        let data: Vec<u8> = (0u32..300)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(crc32(&data[..len]), bytewise(&data[..len]), "length {len}");
        }
        for split in 0..64 {
            assert_eq!(
                update(crc32(&data[..split]), &data[split..]),
                bytewise(&data)
            );
        }
    }
}
