//! Pure parsers for the `/proc` and cgroup files the thread budget reads.
//!
//! Every function takes the raw bytes of a file and returns what it could make of them. The
//! kernel's formats are stable, but the reader may be pointed at fixture trees or at a file that
//! changed between `open` and `read`, so none of them trusts its input: garbage yields `None` or
//! an empty result, never a panic (see the property tests at the bottom).

/// The fields of `/proc/<pid>/status` the thread budget uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name:`, the process's `comm`.
    pub name: Option<String>,
    /// The real uid, the first number of `Uid:`.
    pub uid: Option<u32>,
    /// `Threads:`.
    pub threads: Option<u64>,
    /// `VmSize:` in bytes (the file says kB).
    pub vm_size: Option<u64>,
}

/// Parses the parts of `/proc/<pid>/status` listed in [`Status`].
pub fn status(bytes: &[u8]) -> Status {
    let mut out = Status::default();
    for line in bytes.split(|&b| b == b'\n') {
        let Some((key, value)) = split_once(line, b':') else {
            continue;
        };
        let value = trim(value);
        match key {
            b"Name" => out.name = Some(String::from_utf8_lossy(value).into_owned()),
            b"Uid" => out.uid = first_field(value).and_then(parse_u64).and_then(to_u32),
            b"Threads" => out.threads = parse_u64(value),
            b"VmSize" => {
                out.vm_size = first_field(value)
                    .and_then(parse_u64)
                    .and_then(|kb| kb.checked_mul(1024));
            }
            _ => {}
        }
    }
    out
}

/// Reads only `Threads:` from `/proc/<pid>/status`; the sampler's hot path.
pub fn status_threads(bytes: &[u8]) -> Option<u64> {
    bytes
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Threads:"))
        .and_then(|value| parse_u64(trim(value)))
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller-list:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLine {
    /// The hierarchy id; 0 for the unified (v2) hierarchy.
    pub hierarchy: u32,
    /// The controllers bound to the hierarchy; empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup's path relative to the hierarchy's root.
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup`, skipping malformed lines.
pub fn cgroup(bytes: &[u8]) -> Vec<CgroupLine> {
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(hierarchy) = parse_u64(id).and_then(to_u32) else {
            continue;
        };
        let controllers = controllers
            .split(|&b| b == b',')
            .filter(|c| !c.is_empty())
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        out.push(CgroupLine {
            hierarchy,
            controllers,
            path: String::from_utf8_lossy(path).into_owned(),
        });
    }
    out
}

/// A cgroup file system from `/proc/<pid>/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// 1 for `cgroup`, 2 for `cgroup2`.
    pub version: u8,
    /// The path inside the hierarchy that is mounted (field 4), e.g. `/` or `/docker/abc`.
    pub root: String,
    /// Where it is mounted (field 5), with octal escapes decoded.
    pub mount_point: String,
    /// The super options; for v1 they name the controllers (`rw,pids`).
    pub options: Vec<String>,
}

/// Parses the cgroup mounts out of `/proc/<pid>/mountinfo`, skipping everything else.
pub fn cgroup_mounts(bytes: &[u8]) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|f| !f.is_empty())
            .collect();
        // The optional fields end with a lone "-"; the fs type and super options follow it.
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        if dash < 6 {
            continue;
        }
        let version = match fields.get(dash + 1).copied() {
            Some(b"cgroup") => 1,
            Some(b"cgroup2") => 2,
            _ => continue,
        };
        let options = fields
            .get(dash + 3)
            .map(|o| {
                o.split(|&b| b == b',')
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push(CgroupMount {
            version,
            root: unescape(root),
            mount_point: unescape(mount_point),
            options,
        });
    }
    out
}

/// A limit file such as `pids.max` or `memory.max`: a number, or `max` for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitValue {
    /// No limit.
    Unlimited,
    /// The limit.
    Value(u64),
}

/// Parses `pids.max` / `memory.max` (v2) and `memory.limit_in_bytes` (v1). v1 spells "no limit"
/// as a huge page-rounded number near `i64::MAX`; anything from 2^62 up is read as unlimited.
pub fn limit_value(bytes: &[u8]) -> Option<LimitValue> {
    let value = trim(bytes);
    if value == b"max" {
        return Some(LimitValue::Unlimited);
    }
    let n = parse_u64(value)?;
    Some(if n >= 1 << 62 {
        LimitValue::Unlimited
    } else {
        LimitValue::Value(n)
    })
}

/// Parses a file holding one decimal number (`threads-max`, `pids.current`, ...).
pub fn single_u64(bytes: &[u8]) -> Option<u64> {
    parse_u64(trim(bytes))
}

/// The number of scheduling entities (threads) on the host: the part after `/` in the fourth
/// field of `/proc/loadavg` (`0.05 0.13 0.06 1/83 5054`).
pub fn loadavg_tasks(bytes: &[u8]) -> Option<u64> {
    let field = trim(bytes)
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(3)?;
    let (_, total) = split_once(field, b'/')?;
    parse_u64(total)
}

/// Parses an unsigned decimal number of ASCII digits only; `None` on anything else or overflow.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn to_u32(n: u64) -> Option<u32> {
    u32::try_from(n).ok()
}

fn first_field(bytes: &[u8]) -> Option<&[u8]> {
    bytes
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())
}

fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == sep)?;
    Some((bytes.get(..i)?, bytes.get(i + 1..)?))
}

pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Decodes mountinfo's `\ooo` octal escapes (space, tab, newline and backslash are escaped).
fn unescape(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let digits = bytes.get(i + 1..i + 4);
            if let Some(d) = digits.filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &[u8] = b"Name:\thttp-client\nUmask:\t0022\nState:\tS (sleeping)\n\
        Uid:\t1000\t1000\t1000\t1000\nVmSize:\t   3896 kB\nThreads:\t240\n";

    #[test]
    fn status_fields() {
        let s = status(STATUS);
        assert_eq!(s.name.as_deref(), Some("http-client"));
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.threads, Some(240));
        assert_eq!(s.vm_size, Some(3896 * 1024));
        assert_eq!(status_threads(STATUS), Some(240));
        assert_eq!(status(b"Threads:\tmany\n").threads, None);
    }

    #[test]
    fn cgroup_v1_and_v2_lines() {
        let lines = cgroup(b"8:pids:/user.slice/a\n4:memory,foo:/m\n0::/unified/x\nbroken\n");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].controllers, vec!["pids".to_string()]);
        assert_eq!(lines[0].path, "/user.slice/a");
        assert_eq!(lines[1].controllers.len(), 2);
        assert_eq!(lines[2].hierarchy, 0);
        assert!(lines[2].controllers.is_empty());
    }

    #[test]
    fn mountinfo_cgroups() {
        let text = b"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n\
            22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            50 31 0:40 /docker/a /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,memory\n";
        let mounts = cgroup_mounts(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].version, 1);
        assert!(mounts[0].options.iter().any(|o| o == "pids"));
        assert_eq!(mounts[1].version, 2);
        assert_eq!(mounts[1].mount_point, "/sys/fs/cgroup/unified");
        assert_eq!(mounts[2].mount_point, "/sys/fs/cgroup/my dir");
        assert_eq!(mounts[2].root, "/docker/a");
    }

    #[test]
    fn limits_and_numbers() {
        assert_eq!(limit_value(b"max\n"), Some(LimitValue::Unlimited));
        assert_eq!(limit_value(b"1024\n"), Some(LimitValue::Value(1024)));
        assert_eq!(
            limit_value(b"9223372036854771712\n"),
            Some(LimitValue::Unlimited)
        );
        assert_eq!(limit_value(b"-1"), None);
        assert_eq!(single_u64(b" 193102\n"), Some(193_102));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(loadavg_tasks(b"0.05 0.13 0.06 1/83 5054\n"), Some(83));
        assert_eq!(loadavg_tasks(b"0.05 0.13"), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = status(&bytes);
            let _ = status_threads(&bytes);
            let _ = cgroup(&bytes);
            let _ = cgroup_mounts(&bytes);
            let _ = limit_value(&bytes);
            let _ = single_u64(&bytes);
            let _ = loadavg_tasks(&bytes);
        }

        #[test]
        fn structured_garbage_never_panics(
            lines in proptest::collection::vec("[0-9a-z:/ \\\\\\-,.]{0,40}", 0..20)
        ) {
            let text = lines.join("\n");
            let _ = cgroup(text.as_bytes());
            let _ = cgroup_mounts(text.as_bytes());
            let _ = status(text.as_bytes());
        }

        #[test]
        fn numbers_round_trip(n in any::<u64>()) {
            prop_assert_eq!(parse_u64(n.to_string().as_bytes()), Some(n));
            let status_text = format!("Name:\tx\nThreads:\t{n}\n");
            prop_assert_eq!(status_threads(status_text.as_bytes()), Some(n));
        }
    }
}
