//! A little-endian byte buffer with the minidump's addressing: every structure is found by its
//! RVA, the offset from the start of the file.

/// The file being built. Minidumps are little-endian, and so is everything written here.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    bytes: Vec<u8>,
}

/// Where a block of data lies in the file (`MINIDUMP_LOCATION_DESCRIPTOR`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) size: u32,
    pub(crate) rva: u32,
}

impl Buf {
    /// The current end of the file, as an RVA.
    pub(crate) fn rva(&self) -> u32 {
        // Minidumps address with 32 bits; what this crate writes is a few hundred KiB.
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// Pads with zeros to a multiple of `n`.
    pub(crate) fn align(&mut self, n: usize) {
        while !self.bytes.len().is_multiple_of(n) {
            self.bytes.push(0);
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.bytes.resize(self.bytes.len() + n, 0);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
    }

    pub(crate) fn location(&mut self, l: Location) {
        self.u32(l.size);
        self.u32(l.rva);
    }

    /// Writes `b` as a block of its own (4-aligned) and returns where it lies.
    pub(crate) fn block(&mut self, b: &[u8]) -> Location {
        self.align(4);
        let rva = self.rva();
        self.bytes(b);
        Location {
            size: u32::try_from(b.len()).unwrap_or(u32::MAX),
            rva,
        }
    }

    /// Overwrites four bytes at `at` (a field reserved earlier).
    pub(crate) fn patch_u32(&mut self, at: u32, v: u32) {
        let at = at as usize;
        if let Some(slot) = self.bytes.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// A `MINIDUMP_STRING`: byte length, UTF-16LE code units, a 16-bit NUL. Returns its RVA.
    pub(crate) fn utf16_string(&mut self, s: &str) -> u32 {
        self.align(4);
        let rva = self.rva();
        let units: Vec<u16> = s.encode_utf16().collect();
        self.u32(u32::try_from(units.len() * 2).unwrap_or(u32::MAX));
        for u in units {
            self.u16(u);
        }
        self.u16(0);
        rva
    }

    /// A Crashpad `MinidumpUTF8String`: byte length, the bytes, a NUL. Returns its RVA.
    pub(crate) fn utf8_string(&mut self, s: &str) -> u32 {
        self.align(4);
        let rva = self.rva();
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.bytes(s.as_bytes());
        self.u8(0);
        rva
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_patches() {
        let mut b = Buf::default();
        b.u8(1);
        let rva = b.utf16_string("hé");
        assert_eq!(rva, 4, "4-aligned");
        let at = b.rva();
        b.u32(0);
        b.patch_u32(at, 0xdead_beef);
        let s = b.utf8_string("ok");
        let bytes = b.into_bytes();
        assert_eq!(&bytes[4..8], &4u32.to_le_bytes());
        assert_eq!(&bytes[8..14], &[b'h', 0, 0xe9, 0, 0, 0]);
        assert_eq!(
            &bytes[at as usize..at as usize + 4],
            &0xdead_beefu32.to_le_bytes()
        );
        assert_eq!(&bytes[s as usize..], &[2, 0, 0, 0, b'o', b'k', 0]);
    }
}
