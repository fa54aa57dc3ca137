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
        let dt =
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("bad timestamp {s:?}: {e}"))?;
        Ok(Timestamp(dt.timestamp_micros()))
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
