//! Instants and calendar periods (UTC).

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An instant: integer microseconds since the Unix epoch, UTC.
///
/// Stored as an integer so that ordering, storage and arithmetic are exact and cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Timestamp {
    /// The earliest representable instant.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// Parses an RFC 3339 timestamp with an offset or `Z` (`2025-03-01T09:30:00Z`).
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        if let Some(t) = Self::parse_utc_seconds(s.as_bytes()) {
            return Ok(t);
        }
        let dt =
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("bad timestamp {s:?}: {e}"))?;
        Ok(Timestamp(dt.timestamp_micros()))
    }

    /// The common form `YYYY-MM-DDTHH:MM:SSZ`, read without a general parser (every event
    /// has a timestamp, so this is on the ingest's hot path). `None` for anything else,
    /// including what a general parser would accept (offsets, fractions, a leap second) or
    /// reject: [`Timestamp::parse`] then decides, so the answer is the same either way.
    fn parse_utc_seconds(s: &[u8]) -> Option<Timestamp> {
        let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, b'Z'] =
            s
        else {
            return None;
        };
        let digits = [y0, y1, y2, y3, m0, m1, d0, d1, h0, h1, i0, i1, s0, s1];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |ds: &[u8]| ds.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        let (year, month, day) = (n(&digits[..4]), n(&digits[4..6]), n(&digits[6..8]));
        let (hour, minute, second) = (n(&digits[8..10]), n(&digits[10..12]), n(&digits[12..]));
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
        Some(Timestamp(seconds * 1_000_000))
    }

    /// Parses an instant given on a command line: RFC 3339, or a plain date `2025-07-01`
    /// meaning midnight UTC.
    pub fn parse_flexible(s: &str) -> Result<Timestamp, String> {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let dt = d.and_hms_opt(0, 0, 0).expect("midnight exists");
            return Ok(Timestamp(Utc.from_utc_datetime(&dt).timestamp_micros()));
        }
        Self::parse(s)
    }

    /// The current wall-clock instant (only the CLI and server call this; the core takes time
    /// from events).
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Converts to a chrono date-time in UTC (saturating at chrono's range).
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(if self.0 < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }

    /// Formats as RFC 3339 in UTC, with fractional seconds only when present.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Days (as a float) from `self` to `later`.
    pub fn days_until(self, later: Timestamp) -> f64 {
        (later.0 - self.0) as f64 / MICROS_PER_DAY as f64
    }

    /// This instant plus a number of seconds (saturating).
    pub fn plus_seconds(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar from year 0 on (the
/// well-known era-based formula: 400-year eras of 146,097 days, years counted from March).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    // From March, so the leap day ends a year; year 0's January and February are era -1's.
    let (year, month) = if month <= 2 {
        (i64::from(year) - 1, month + 9)
    } else {
        (i64::from(year), month - 3)
    };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = i64::from((153 * month + 2) / 5 + day - 1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A calendar period in UTC, as reports group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// ISO week, `2025-W01`.
    Week,
    /// Calendar month, `2025-01`.
    Month,
    /// Calendar quarter, `2025-Q1`.
    Quarter,
    /// Calendar year, `2025`.
    Year,
}

impl Period {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// A sortable integer key of the period containing `t` (cheap; use [`Period::label_of_key`]
    /// to turn it into the label).
    pub fn key(self, t: Timestamp) -> i32 {
        let d = t.to_datetime();
        match self {
            Period::Week => {
                let w = d.iso_week();
                w.year() * 100 + w.week() as i32
            }
            Period::Month => d.year() * 100 + d.month() as i32,
            Period::Quarter => d.year() * 10 + ((d.month() as i32 - 1) / 3 + 1),
            Period::Year => d.year(),
        }
    }

    /// The label of a period key made by [`Period::key`].
    pub fn label_of_key(self, key: i32) -> String {
        match self {
            Period::Week => format!("{:04}-W{:02}", key / 100, key % 100),
            Period::Month => format!("{:04}-{:02}", key / 100, key % 100),
            Period::Quarter => format!("{:04}-Q{}", key / 10, key % 10),
            Period::Year => format!("{key:04}"),
        }
    }

    /// The label of the period containing `t` (`2025-01`, `2025-Q1`, `2025-W01`, `2025`).
    pub fn label(self, t: Timestamp) -> String {
        self.label_of_key(self.key(t))
    }
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "quarter" => Ok(Period::Quarter),
            "year" => Ok(Period::Year),
            _ => Err(format!(
                "unknown period {s:?} (expected week, month, quarter or year)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a general RFC 3339 parser makes of `s` (the answer the fast path must give).
    fn general(s: &str) -> Option<i64> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_micros())
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_general_parser(
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
        ) {
            let s = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            let fast = Timestamp::parse_utc_seconds(s.as_bytes()).map(|t| t.0);
            if let Some(fast) = fast {
                prop_assert_eq!(Some(fast), general(&s), "{}", s);
            }
            prop_assert_eq!(Timestamp::parse(&s).ok().map(|t| t.0), general(&s), "{}", s);
        }

        #[test]
        fn any_text_parses_as_the_general_parser_says(s in "[0-9TZ:.+ -]{18,22}") {
            prop_assert_eq!(Timestamp::parse(&s).ok().map(|t| t.0), general(&s));
        }
    }

    #[test]
    fn the_fast_path_covers_the_common_form_only() {
        for (s, fast) in [
            ("2024-02-29T23:59:59Z", true),
            ("1970-01-01T00:00:00Z", true),
            ("0000-03-01T00:00:00Z", true),
            ("2023-02-29T00:00:00Z", false),
            ("2024-06-30T23:59:60Z", false),
            ("2024-06-30T23:59:59.5Z", false),
            ("2024-06-30T23:59:59+02:00", false),
            ("2024-06-30t23:59:59z", false),
        ] {
            assert_eq!(
                Timestamp::parse_utc_seconds(s.as_bytes()).is_some(),
                fast,
                "{s}"
            );
            assert_eq!(Timestamp::parse(s).ok().map(|t| t.0), general(s), "{s}");
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let a = Timestamp::parse("2025-03-01T09:30:00Z").unwrap();
        let b = Timestamp::parse("2025-03-01T10:30:00+01:00").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse("2025-03-01T09:30:00.250Z").unwrap();
        assert_eq!(c.0 - a.0, 250_000);
        assert_eq!(a.to_rfc3339(), "2025-03-01T09:30:00Z");
        assert!(Timestamp::parse("2025-13-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn period_labels() {
        let t = Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
        assert_eq!(Period::Month.label(t), "2025-01");
        assert_eq!(Period::Quarter.label(t), "2025-Q1");
        assert_eq!(Period::Year.label(t), "2025");
        assert_eq!(Period::Week.label(t), "2025-W01");
        // 2027-01-01 is a Friday: ISO week 53 of 2026.
        let t = Timestamp::parse("2027-01-01T12:00:00Z").unwrap();
        assert_eq!(Period::Week.label(t), "2026-W53");
        let t = Timestamp::parse("2025-11-30T23:59:59Z").unwrap();
        assert_eq!(Period::Quarter.label(t), "2025-Q4");
    }
}
