//! How threads are grouped by name in a census.
//!
//! Thread pools number their threads (`worker-1`, `worker-2`, `pool-3-thread-17`), so the
//! census groups names by dropping the trailing run of digits and separators: all of
//! `http-client-1` .. `http-client-240` become the group `http-client-`, shown as
//! `http-client-*`. The first separator of the dropped run is kept so the group still reads
//! like the names it stands for. A name whose tail holds no digit is its own group.

/// Characters that separate a thread's base name from its number.
const SEPARATORS: &[u8] = b"-_.:#/@ ";

/// Returns the length of `name`'s group prefix and whether a numbered tail was dropped.
///
/// Async-signal-safe.
pub fn group_prefix(name: &[u8]) -> (usize, bool) {
    let mut start = name.len();
    let mut has_digit = false;
    while start > 0 {
        let Some(&b) = name.get(start - 1) else {
            break;
        };
        if b.is_ascii_digit() {
            has_digit = true;
        } else if !SEPARATORS.contains(&b) {
            break;
        }
        start -= 1;
    }
    if !has_digit {
        return (name.len(), false);
    }
    let keep_separator = name.get(start).is_some_and(|b| SEPARATORS.contains(b));
    (start + usize::from(keep_separator), true)
}

/// Strips the newline the kernel appends to `comm`, and anything after a NUL.
///
/// Async-signal-safe.
pub fn trim_comm(raw: &[u8]) -> &[u8] {
    let mut end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    while end > 0 && raw.get(end - 1) == Some(&b'\n') {
        end -= 1;
    }
    raw.get(..end).unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group(name: &str) -> String {
        let (len, stripped) = group_prefix(name.as_bytes());
        let mut s = name[..len].to_string();
        if stripped {
            s.push('*');
        }
        s
    }

    #[test]
    fn groups() {
        assert_eq!(group("worker-12"), "worker-*");
        assert_eq!(group("http-client-240"), "http-client-*");
        assert_eq!(group("pool-3-thread-17"), "pool-3-thread-*");
        assert_eq!(group("rayon-1-2"), "rayon-*");
        assert_eq!(group("w12"), "w*");
        assert_eq!(group("12"), "*");
        assert_eq!(group("main"), "main");
        assert_eq!(group("worker-"), "worker-");
        assert_eq!(group("tokio-runtime-w"), "tokio-runtime-w");
        assert_eq!(group(""), "");
    }

    #[test]
    fn comm_trimming() {
        assert_eq!(trim_comm(b"worker-1\n"), b"worker-1");
        assert_eq!(trim_comm(b"abc\0zzz"), b"abc");
        assert_eq!(trim_comm(b"\n"), b"");
    }

    proptest! {
        #[test]
        fn prefix_is_in_bounds(name in proptest::collection::vec(any::<u8>(), 0..32)) {
            let (len, _) = group_prefix(&name);
            prop_assert!(len <= name.len());
            let _ = trim_comm(&name);
        }

        #[test]
        fn numbered_names_share_a_group(base in "[a-z]{1,8}", a in 0u32..100_000, b in 0u32..100_000) {
            let x = format!("{base}-{a}");
            let y = format!("{base}-{b}");
            let (lx, _) = group_prefix(x.as_bytes());
            let (ly, _) = group_prefix(y.as_bytes());
            prop_assert_eq!(&x[..lx], &y[..ly]);
        }
    }
}
