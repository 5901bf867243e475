//! RFC 3339 timestamps in UTC, without a calendar dependency, and [`Timestamp`], the typed
//! time of the report types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Formats nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_ns(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses what [`format_rfc3339_ns`] writes (fraction optional, `Z` only).
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut nanos = 0u64;
    if b.get(19) == Some(&b'.') {
        let frac = s.get(20..s.len() - 1)?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        nanos = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    } else if b.len() != 20 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days
        .checked_mul(86_400)?
        .checked_add(h * 3600 + mi * 60 + se)?;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// A point in time in UTC, to the millisecond, as reports carry it: written and read as RFC 3339
/// text (`2026-11-21T00:00:00.123Z`), so the JSON is the text it always was, while code gets a
/// value it can compare, subtract and turn into a [`SystemTime`](std::time::SystemTime).
///
/// Reading accepts what [`format_rfc3339_ns`] writes and a fraction of up to nine digits (kept
/// to the millisecond); anything else is an error, never a guess.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_ms: u64,
}

impl Timestamp {
    /// The Unix epoch, `1970-01-01T00:00:00.000Z`.
    pub const EPOCH: Timestamp = Timestamp { unix_ms: 0 };

    /// The time `ns` nanoseconds after the Unix epoch, to the millisecond (rounded down).
    pub const fn from_unix_nanos(ns: u64) -> Timestamp {
        Timestamp {
            unix_ms: ns / 1_000_000,
        }
    }

    /// The time `ms` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(ms: u64) -> Timestamp {
        Timestamp { unix_ms: ms }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> u64 {
        self.unix_ms
    }

    /// Nanoseconds since the Unix epoch (a whole number of milliseconds).
    pub const fn unix_nanos(self) -> u64 {
        self.unix_ms.saturating_mul(1_000_000)
    }

    /// Parses RFC 3339 UTC text as [`format_rfc3339_ns`] writes it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Timestamp> {
        parse_rfc3339_ns(text).map(Timestamp::from_unix_nanos)
    }

    /// The same instant as a [`SystemTime`](std::time::SystemTime).
    pub fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.unix_ms)
    }

    /// Seconds from `earlier` to `self` (negative when `self` is earlier).
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (self.unix_ms as f64 - earlier.unix_ms as f64) / 1000.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_rfc3339_ns(self.unix_nanos()))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(text).ok_or(TimestampError)
    }
}

/// Text that is not an RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`, from 1970).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampError;

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ)")
    }
}

impl std::error::Error for TimestampError {}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

// Howard Hinnant's days-from-civil algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_rfc3339_ns(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ns(1_795_219_200_123_000_000),
            "2026-11-21T00:00:00.123Z"
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-21T00:00:00Z"),
            Some(1_795_219_200_000_000_000)
        );
        assert_eq!(parse_rfc3339_ns("2026-13-21T00:00:00Z"), None);
    }

    #[test]
    fn a_timestamp_is_the_same_json_text() {
        let t = Timestamp::from_unix_nanos(1_795_219_200_123_456_789);
        assert_eq!(t.to_string(), "2026-11-21T00:00:00.123Z");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-21T00:00:00.123Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2026-11-21T00:00:00.123Z\"").unwrap();
        assert_eq!(back, t);
        // More digits are read, and kept to the millisecond.
        let nine: Timestamp = serde_json::from_str("\"2026-11-21T00:00:00.123999999Z\"").unwrap();
        assert_eq!(nine, t);
        assert_eq!(
            t.to_system_time(),
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_219_200_123)
        );
        assert_eq!(
            t.seconds_since(Timestamp::from_unix_millis(1_795_219_199_123)),
            1.0
        );
        assert_eq!(format!("{t:?}"), "Timestamp(2026-11-21T00:00:00.123Z)");
        for bad in [
            "\"\"",
            "\"yesterday\"",
            "\"2026-11-21T00:00:00+01:00\"",
            "\"1969-12-31T23:59:59Z\"",
            "12",
        ] {
            let e = serde_json::from_str::<Timestamp>(bad).expect_err(bad);
            assert!(
                e.to_string().contains("RFC 3339") || bad == "12",
                "{bad}: {e}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_timestamp_round_trips_through_its_text(ms in 0u64..4_102_444_800_000) {
            let t = Timestamp::from_unix_millis(ms);
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }

        #[test]
        fn round_trip_to_the_millisecond(ns in 0u64..4_102_444_800_000_000_000) {
            let s = format_rfc3339_ns(ns);
            prop_assert_eq!(parse_rfc3339_ns(&s), Some(ns / 1_000_000 * 1_000_000));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse_rfc3339_ns(&s);
        }
    }
}
