//! The business calendar: working days, working hours and holidays, so that "3 business
//! days" means what the sales team means by it.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
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

/// Working days and hours, in a time zone (an IANA name such as `America/New_York`, with its
/// daylight-saving rules, or a fixed UTC offset), with holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Offset from UTC in minutes (`UTC` = 0, `+02:00` = 120); used when no IANA zone is set.
    pub utc_offset_minutes: i32,
    /// An IANA time zone; when set, it decides local time instead of the fixed offset.
    tz: Option<Tz>,
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
            tz: None,
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

    /// Sets the time zone from `UTC`, a fixed offset (`+02:00`) or an IANA name
    /// (`Europe/Berlin`); returns `false` (and changes nothing) for an unknown one.
    pub fn set_timezone(&mut self, name: &str) -> bool {
        if let Some(m) = Self::parse_offset(name) {
            self.utc_offset_minutes = m;
            self.tz = None;
            return true;
        }
        match name.trim().parse::<Tz>() {
            Ok(tz) => {
                self.tz = Some(tz);
                self.utc_offset_minutes = 0;
                true
            }
            Err(_) => false,
        }
    }

    /// The IANA time zone's name, if one is set.
    pub fn timezone_name(&self) -> Option<&'static str> {
        self.tz.map(|t| t.name())
    }

    /// The local date of an instant.
    fn local_date(&self, t: Timestamp) -> Option<NaiveDate> {
        let secs = t.0.div_euclid(1_000_000);
        let utc = Utc.timestamp_opt(secs, 0).single()?;
        Some(match self.tz {
            Some(tz) => utc.with_timezone(&tz).date_naive(),
            None => utc
                .naive_utc()
                .checked_add_signed(chrono::Duration::minutes(i64::from(
                    self.utc_offset_minutes,
                )))?
                .date(),
        })
    }

    /// The instant (micros) of a local date and minute of the day. A local time skipped by
    /// a daylight-saving change counts from the first instant after the gap.
    fn instant(&self, date: NaiveDate, minute: u32) -> Option<i64> {
        let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0)?;
        let local = midnight.checked_add_signed(chrono::Duration::minutes(i64::from(minute)))?;
        match self.tz {
            None => {
                let utc = local.checked_sub_signed(chrono::Duration::minutes(i64::from(
                    self.utc_offset_minutes,
                )))?;
                Some(utc.and_utc().timestamp_micros())
            }
            Some(tz) => {
                let mut probe = local;
                for _ in 0..=4 {
                    if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
                        return Some(dt.timestamp_micros());
                    }
                    probe = probe.checked_add_signed(chrono::Duration::minutes(30))?;
                }
                None
            }
        }
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
        let Some(mut date) = self.local_date(start) else {
            return Timestamp::MAX;
        };
        let mut left = need;
        for _ in 0..MAX_DAYS {
            if self.is_working_day(date) {
                let (Some(open), Some(close)) = (
                    self.instant(date, self.start_minute),
                    self.instant(date, self.end_minute),
                ) else {
                    return Timestamp::MAX;
                };
                let from = start.0.max(open);
                if from < close {
                    let avail = close - from;
                    if avail >= left {
                        return Timestamp(from + left);
                    }
                    left -= avail;
                }
            }
            let Some(next) = date.succ_opt() else {
                return Timestamp::MAX;
            };
            date = next;
        }
        Timestamp::MAX
    }
}
