//! Forging black boxes that pass every integrity check, so that fuzzers and property tests
//! reach the field handling behind the checksums (lengths, counts, indices, names, states)
//! instead of stopping at the first CRC mismatch. Not for applications: a checksum is not a
//! security boundary, and nothing here makes untrusted input more trustworthy.

use std::mem::offset_of;

use crate::crc;
use crate::layout::*;

/// Ring capacity of a forged box (the smallest a reader accepts).
pub const FORGED_RING: u32 = MIN_RING_CAPACITY;
/// Stack capacity of a forged box: small, but enough for the context decoder's stack copy.
pub const FORGED_STACK: u32 = 256;

/// The size of a forged box.
pub const fn forged_len() -> usize {
    file_size(FORGED_RING, FORGED_STACK)
}

/// A black box built from `patches`: a zeroed record of [`forged_len`] bytes whose state word
/// says "ended", then each patch written at its offset (taken modulo the length), then every
/// checksum and hash repaired. The header is always rewritten valid.
///
/// `input` is read as a sequence of patches: three bytes of little-endian offset, one byte of
/// length `n`, then `n` bytes (fewer at the end of the input).
pub fn forge(input: &[u8]) -> Vec<u8> {
    let len = forged_len();
    let mut bytes = vec![0u8; len];
    put(
        &mut bytes,
        offset_of!(Record, state),
        &STATE_ENDED.to_ne_bytes(),
    );
    let mut rest = input;
    while let [a, b, c, n, tail @ ..] = rest {
        let off = (usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16) % len;
        let n = usize::from(*n).min(tail.len());
        let (data, next) = tail.split_at(n);
        let end = (off + data.len()).min(len);
        if let (Some(dst), Some(src)) = (bytes.get_mut(off..end), data.get(..end - off)) {
            dst.copy_from_slice(src);
        }
        rest = next;
    }
    repair(&mut bytes);
    bytes
}

/// Rewrites the header of `bytes` (which must be [`forged_len`] long) as valid, and every
/// section checksum and breadcrumb hash to match the contents.
pub fn repair(bytes: &mut [u8]) {
    if bytes.len() < forged_len() {
        return;
    }
    let h = offset_of!(Record, header);
    put(bytes, h + offset_of!(Header, magic), &MAGIC);
    put_u32(bytes, h + offset_of!(Header, version), FORMAT_VERSION);
    put_u32(bytes, h + offset_of!(Header, endian), ENDIAN_MARK);
    put_u32(
        bytes,
        h + offset_of!(Header, header_size),
        size_of::<Header>() as u32,
    );
    put_u32(
        bytes,
        h + offset_of!(Header, record_size),
        size_of::<Record>() as u32,
    );
    put_u32(bytes, h + offset_of!(Header, ring_capacity), FORGED_RING);
    put_u32(
        bytes,
        h + offset_of!(Header, breadcrumb_size),
        size_of::<Breadcrumb>() as u32,
    );
    put(
        bytes,
        h + offset_of!(Header, file_size),
        &(forged_len() as u64).to_ne_bytes(),
    );
    put_u32(bytes, h + offset_of!(Header, stack_capacity), FORGED_STACK);
    checksum(bytes, h, size_of::<Header>(), offset_of!(Header, checksum));
    let s = offset_of!(Record, session);
    checksum(
        bytes,
        s,
        size_of::<Session>(),
        offset_of!(Session, checksum),
    );
    let e = offset_of!(Record, end);
    checksum(bytes, e, size_of::<End>(), offset_of!(End, checksum));
    let c = offset_of!(Record, context);
    let stack_at = stack_offset(FORGED_RING);
    let stack_len =
        (get_u32(bytes, c + offset_of!(Context, stack_len)) as usize).min(FORGED_STACK as usize);
    let sum = stack_sum(bytes.get(stack_at..stack_at + stack_len).unwrap_or(&[]));
    put(
        bytes,
        c + offset_of!(Context, stack_sum),
        &sum.to_ne_bytes(),
    );
    checksum(
        bytes,
        c,
        size_of::<Context>(),
        offset_of!(Context, checksum),
    );
    for i in 0..FORGED_RING as usize {
        let b = size_of::<Record>() + i * size_of::<Breadcrumb>();
        let seq = get_u64(bytes, b + offset_of!(Breadcrumb, seq));
        let at_ns = get_u64(bytes, b + offset_of!(Breadcrumb, at_ns));
        let tid = get_u32(bytes, b + offset_of!(Breadcrumb, tid));
        let n = get_u32(bytes, b + offset_of!(Breadcrumb, len));
        let t = b + offset_of!(Breadcrumb, text);
        let text = bytes
            .get(t..t + (n as usize).min(BREADCRUMB_TEXT_LEN))
            .unwrap_or(&[]);
        let hash = breadcrumb_hash(seq, at_ns, tid, n, text);
        put(bytes, b + offset_of!(Breadcrumb, hash), &hash.to_ne_bytes());
    }
}

fn checksum(bytes: &mut [u8], at: usize, len: usize, field: usize) {
    put_u32(bytes, at + field, 0);
    let sum = crc::crc32(bytes.get(at..at + len).unwrap_or(&[]));
    put_u32(bytes, at + field, sum);
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = bytes.get_mut(at..at + value.len()) {
        dst.copy_from_slice(value);
    }
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    put(bytes, at, &v.to_ne_bytes());
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_box_passes_every_check() {
        // A breadcrumb "hi" at seq 2 and an app name, written as patches.
        let b = size_of::<Record>();
        let mut input = Vec::new();
        let mut patch = |off: usize, data: &[u8]| {
            input.extend_from_slice(&(off as u32).to_le_bytes()[..3]);
            input.push(data.len() as u8);
            input.extend_from_slice(data);
        };
        patch(b + offset_of!(Breadcrumb, seq), &2u64.to_ne_bytes());
        patch(b + offset_of!(Breadcrumb, len), &2u32.to_ne_bytes());
        patch(b + offset_of!(Breadcrumb, text), b"hi");
        let s = offset_of!(Record, session);
        patch(s + offset_of!(Session, app_len), &3u32.to_ne_bytes());
        patch(s + offset_of!(Session, app), b"svc");
        let e = offset_of!(Record, end);
        patch(
            e + offset_of!(End, outcome),
            &crate::Outcome::FatalSignal.code().to_ne_bytes(),
        );
        let report = crate::decode(&forge(&input)).expect("a forged box decodes");
        assert_eq!(report.app, "svc");
        assert_eq!(report.breadcrumbs.len(), 1);
        assert_eq!(report.breadcrumbs[0].message, "hi");
    }
}
