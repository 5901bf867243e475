//! Numbers for humans: byte sizes in binary units, durations, percentages, timestamps.

/// A byte count in binary units: `512 B`, `1.5 KiB`, `123.4 MiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Round first so that 1023.96 KiB prints as "1.0 MiB" rather than "1024.0 KiB".
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("EiB"))
}

/// Rewrites byte counts in free text for humans: `996147200 of 1073741824 bytes` becomes
/// `950.0 MiB of 1.0 GiB`, `4096 bytes` becomes `4.0 KiB`. Verdicts and details are recorded
/// with exact numbers; this is only for display.
pub fn humanize_byte_counts(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for token in text.split(' ') {
        let suffix = token
            .strip_prefix("bytes")
            .filter(|rest| rest.chars().all(|c| c.is_ascii_punctuation()));
        let count = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u64>().ok())
                .flatten()
        };
        if let (Some(suffix), Some(n)) = (suffix, out.last().and_then(|t| count(t))) {
            let len = out.len();
            if let Some(last) = out.get_mut(len - 1) {
                *last = format!("{}{suffix}", bytes(n));
            }
            // "A of B bytes": A is a byte count too.
            if len >= 3
                && out.get(len - 2).is_some_and(|t| t == "of")
                && let Some(slot) = out.get_mut(len - 3)
                && let Some(a) = count(slot)
            {
                *slot = bytes(a);
            }
            continue;
        }
        out.push(token.to_owned());
    }
    out.join(" ")
}

/// `used` as a share of `limit`: `87.5%`; `None` for a zero limit.
pub fn percent(used: u64, limit: u64) -> Option<String> {
    (limit > 0).then(|| format!("{:.1}%", used as f64 * 100.0 / limit as f64))
}

/// A signed duration in seconds, with a unit that suits its size: `-3.210 s`, `12.3 ms`, `850 µs`.
///
/// The unit is chosen after rounding, so 999.9 µs prints as `1.0 ms`, never `1000 µs`.
pub fn duration(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let a = secs.abs();
    if !a.is_finite() {
        return "?".to_owned();
    }
    // Report times have millisecond resolution; an exact zero is "same moment", not 0 µs.
    if a == 0.0 {
        return "0 s".to_owned();
    }
    let micros = (a * 1e6).round();
    let tenth_ms = (a * 1e4).round();
    let millis = (a * 1e3).round();
    let whole = a.round();
    if micros < 1.0 {
        format!("{sign}<1 µs")
    } else if micros < 1000.0 {
        format!("{sign}{micros:.0} µs")
    } else if tenth_ms < 10_000.0 {
        format!("{sign}{:.1} ms", tenth_ms / 10.0)
    } else if millis < 60_000.0 {
        format!("{sign}{:.3} s", millis / 1e3)
    } else if whole < 3600.0 {
        format!("{sign}{}m{:02}s", (whole / 60.0).floor(), whole % 60.0)
    } else {
        format!(
            "{sign}{}h{:02}m",
            (whole / 3600.0).floor(),
            ((whole % 3600.0) / 60.0).floor()
        )
    }
}

/// An RFC 3339 timestamp from a report, shortened for a table: `2024-05-01 12:03:20`.
pub fn short_time(rfc3339: &str) -> String {
    let s = rfc3339.replacen('T', " ", 1);
    let s = s.trim_end_matches('Z');
    // Drop the fraction of a second.
    match s.find('.') {
        Some(dot) => s.get(..dot).unwrap_or(s).to_owned(),
        None => s.to_owned(),
    }
}

/// Seconds from `from` to `to`, both RFC 3339, when both parse.
pub fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let a = crashguard_blackbox::time::parse_rfc3339_ns(from)?;
    let b = crashguard_blackbox::time::parse_rfc3339_ns(to)?;
    Some((b as f64 - a as f64) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(-3.21), "-3.210 s");
        assert_eq!(duration(0.0123), "12.3 ms");
        assert_eq!(duration(0.00085), "850 µs");
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(125.0), "2m05s");
        assert_eq!(duration(7260.0), "2h01m");
        // Rounding never shows a value that belongs to the next unit.
        assert_eq!(duration(-0.000_999_9), "-1.0 ms");
        assert_eq!(duration(0.000_999_4), "999 µs");
        assert_eq!(duration(0.999_96), "1.000 s");
        assert_eq!(duration(59.9996), "1m00s");
        assert_eq!(duration(3599.6), "1h00m");
        assert_eq!(duration(1e-9), "<1 µs");
        assert_eq!(percent(1, 4).as_deref(), Some("25.0%"));
        assert_eq!(percent(1, 0), None);
        assert_eq!(
            short_time("2024-05-01T12:03:20.123456789Z"),
            "2024-05-01 12:03:20"
        );
    }

    proptest! {
        #[test]
        fn durations_stay_within_their_unit(secs in -1e5f64..1e5) {
            let s = duration(secs);
            if let Some(n) = s.strip_suffix(" µs") {
                prop_assert!(n.trim_start_matches('-').parse::<f64>().is_ok_and(|v| v < 1000.0), "{secs} -> {s}");
            }
            if let Some(n) = s.strip_suffix(" ms") {
                prop_assert!(n.trim_start_matches('-').parse::<f64>().is_ok_and(|v| v < 1000.0), "{secs} -> {s}");
            }
            if let Some(n) = s.strip_suffix(" s") {
                prop_assert!(n.trim_start_matches('-').parse::<f64>().is_ok_and(|v| v < 60.0), "{secs} -> {s}");
            }
        }

        #[test]
        fn humanize_never_panics_and_keeps_other_text(s in "[a-z0-9 ]{0,40}( bytes)?") {
            let out = humanize_byte_counts(&s);
            if !s.contains("bytes") {
                prop_assert_eq!(out, s);
            }
        }

        #[test]
        fn bytes_is_total_and_roughly_right(n in any::<u64>()) {
            let s = bytes(n);
            let (num, unit) = s.split_once(' ').expect("value and unit");
            let value: f64 = num.parse().expect("a number");
            let scale = match unit {
                "B" => 1.0, "KiB" => 1024.0, "MiB" => 1024f64.powi(2), "GiB" => 1024f64.powi(3),
                "TiB" => 1024f64.powi(4), "PiB" => 1024f64.powi(5), "EiB" => 1024f64.powi(6),
                other => panic!("unit {other}"),
            };
            prop_assert!(value < 1024.0 || unit == "EiB", "{n} -> {s}");
            let back = value * scale;
            prop_assert!((back - n as f64).abs() <= scale * 0.05 + 0.5, "{n} -> {s}");
        }
    }
}
