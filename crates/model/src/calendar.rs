//! The business calendar: working days, working hours and holidays, so that "3 business
//! days" means what the sales team means by it.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use waterfall_core::Timestamp;

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// How many days `add` walks before giving up (a calendar with no working time at all).
const MAX_DAYS: i64 = 366 * 50;

/// The unit of a [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Wall-clock hours.
    Hours,
    /// Wall-clock days (24 hours).
    Days,
    /// Hours inside working hours of working days.
    BusinessHours,
    /// Working days: each is one working day's worth of working hours.
    BusinessDays,
}

impl TimeUnit {
    /// The name used in model files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hours => "hours",
            Self::Days => "days",
            Self::BusinessHours => "business_hours",
            Self::BusinessDays => "business_days",
        }
    }

    /// Parses a unit name; singular forms and spaces are accepted (`business day`).
    pub fn parse(s: &str) -> Option<TimeUnit> {
        let s = s.trim().replace(' ', "_");
        let s = s.strip_suffix('s').unwrap_or(&s);
        Some(match s {
            "hour" => Self::Hours,
            "day" => Self::Days,
            "business_hour" => Self::BusinessHours,
            "business_day" => Self::BusinessDays,
            _ => return None,
        })
    }
}

/// An amount of (business) time, as timers are written: `after = "3 business_days"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    /// How many units.
    pub amount: u32,
    /// Which unit.
    pub unit: TimeUnit,
}

impl Duration {
    /// Parses `"<amount> <unit>"` (`"90 days"`, `"3 business_days"`, `"4 business hours"`).
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit())?;
        let amount: u32 = s[..split].parse().ok()?;
        let unit = TimeUnit::parse(&s[split..])?;
        Some(Duration { amount, unit })
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount, self.unit.as_str())
    }
}

/// Working days and hours, in one fixed UTC offset, with holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Offset from UTC in minutes (`UTC` = 0, `+02:00` = 120).
    pub utc_offset_minutes: i32,
    /// Working weekdays, indexed Monday = 0 … Sunday = 6.
    pub workdays: [bool; 7],
    /// Start of working hours, in minutes after local midnight.
    pub start_minute: u32,
    /// End of working hours, in minutes after local midnight (greater than the start).
    pub end_minute: u32,
    /// Local dates that are not working days, sorted.
    pub holidays: Vec<NaiveDate>,
}

impl Default for Calendar {
    /// Monday to Friday, 09:00–17:00 UTC, no holidays.
    fn default() -> Self {
        Calendar {
            utc_offset_minutes: 0,
            workdays: [true, true, true, true, true, false, false],
            start_minute: 9 * 60,
            end_minute: 17 * 60,
            holidays: Vec::new(),
        }
    }
}

impl Calendar {
    /// Parses a weekday name (`mon`, `Monday`) into its index, Monday = 0.
    pub fn weekday_index(s: &str) -> Option<usize> {
        let s = s.trim().to_ascii_lowercase();
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        names
            .iter()
            .position(|n| s.len() >= 3 && s.starts_with(n))
            .filter(|&i| {
                let full = [
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                ][i];
                full.starts_with(&s) || s == names[i]
            })
    }

    /// Parses `"HH:MM"` into minutes after midnight (`24:00` allowed as an end).
    pub fn parse_time(s: &str) -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return None;
        }
        Some(h * 60 + m)
    }

    /// Parses a timezone: `UTC`, `Z`, or a fixed offset `+02:00` / `-05:00`.
    pub fn parse_offset(s: &str) -> Option<i32> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("utc") || s == "Z" || s.eq_ignore_ascii_case("gmt") {
            return Some(0);
        }
        let s = s
            .strip_prefix("UTC")
            .or_else(|| s.strip_prefix("utc"))
            .unwrap_or(s);
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, &s[1..]),
            b'-' => (-1, &s[1..]),
            _ => return None,
        };
        let minutes = Self::parse_time(rest)? as i32;
        (minutes <= 14 * 60).then_some(sign * minutes)
    }

    fn is_working_day(&self, date: NaiveDate) -> bool {
        self.workdays[date.weekday().num_days_from_monday() as usize]
            && self.holidays.binary_search(&date).is_err()
    }

    /// Whether the calendar has any working time at all.
    pub fn has_working_time(&self) -> bool {
        self.workdays.iter().any(|d| *d) && self.end_minute > self.start_minute
    }

    /// `start` plus `amount` units of time.
    ///
    /// Wall-clock units add exactly. Business units count only time inside working hours of
    /// working days that are not holidays; a business day is one working day's worth of
    /// working hours, so "3 business days" from Monday 15:00 ends Thursday 15:00, and from
    /// Saturday it ends Wednesday at closing time. The result is the earliest instant at
    /// which that much working time has passed. Saturates at [`Timestamp::MAX`]; never
    /// panics.
    pub fn add(&self, start: Timestamp, amount: u32, unit: TimeUnit) -> Timestamp {
        let day_len = i64::from(self.end_minute.saturating_sub(self.start_minute));
        let need = match unit {
            TimeUnit::Hours => {
                return Timestamp(start.0.saturating_add(i64::from(amount) * MICROS_PER_HOUR))
            }
            TimeUnit::Days => {
                return Timestamp(start.0.saturating_add(i64::from(amount) * MICROS_PER_DAY))
            }
            TimeUnit::BusinessHours => i64::from(amount) * MICROS_PER_HOUR,
            TimeUnit::BusinessDays => i64::from(amount) * day_len * MICROS_PER_MINUTE,
        };
        if need == 0 {
            return start;
        }
        if !self.has_working_time() {
            return Timestamp::MAX;
        }
        let offset = i64::from(self.utc_offset_minutes) * MICROS_PER_MINUTE;
        // Work in local micros: days are [k * DAY, (k + 1) * DAY).
        let Some(local) = start.0.checked_add(offset) else {
            return Timestamp::MAX;
        };
        let mut day = local.div_euclid(MICROS_PER_DAY);
        let mut cursor = local;
        let mut left = need;
        for _ in 0..MAX_DAYS {
            let Some(date) = date_of_day(day) else {
                return Timestamp::MAX;
            };
            if self.is_working_day(date) {
                let open = day * MICROS_PER_DAY + i64::from(self.start_minute) * MICROS_PER_MINUTE;
                let close = day * MICROS_PER_DAY + i64::from(self.end_minute) * MICROS_PER_MINUTE;
                let from = cursor.max(open);
                if from < close {
                    let avail = close - from;
                    if avail >= left {
                        return Timestamp((from + left).saturating_sub(offset));
                    }
                    left -= avail;
                }
            }
            day += 1;
            cursor = day * MICROS_PER_DAY;
        }
        Timestamp::MAX
    }
}

/// The civil date of a day number (days since 1970-01-01).
fn date_of_day(day: i64) -> Option<NaiveDate> {
    let secs = day.checked_mul(86_400)?;
    let dt = Utc.timestamp_opt(secs, 0).single()?;
    Some(dt.date_naive())
}
