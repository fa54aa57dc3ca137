//! Business time over weekends and holidays.

use waterfall_model::{Calendar, Duration, Model, TimeUnit, Timestamp};

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn cal() -> Calendar {
    Calendar::default()
}

#[test]
fn three_business_days_from_a_monday_afternoon() {
    // 2026-11-30 is a Monday.
    let t = cal().add(at("2026-11-30T15:00:00Z"), 3, TimeUnit::BusinessDays);
    assert_eq!(t, at("2026-12-03T15:00:00Z"));
}

#[test]
fn business_days_skip_the_weekend() {
    // Friday 2026-12-04 15:00 + 1 business day = Monday 15:00.
    let t = cal().add(at("2026-12-04T15:00:00Z"), 1, TimeUnit::BusinessDays);
    assert_eq!(t, at("2026-12-07T15:00:00Z"));
}

#[test]
fn starting_on_a_weekend_counts_from_monday_opening() {
    // Saturday 2026-12-05: 3 business days end Wednesday at closing time.
    let t = cal().add(at("2026-12-05T10:00:00Z"), 3, TimeUnit::BusinessDays);
    assert_eq!(t, at("2026-12-09T17:00:00Z"));
}

#[test]
fn business_hours_roll_over_to_the_next_morning() {
    // Thursday 16:00 + 3 business hours = Friday 11:00.
    let t = cal().add(at("2026-12-03T16:00:00Z"), 3, TimeUnit::BusinessHours);
    assert_eq!(t, at("2026-12-04T11:00:00Z"));
    // After hours: Thursday 20:00 + 1 business hour = Friday 10:00.
    let t = cal().add(at("2026-12-03T20:00:00Z"), 1, TimeUnit::BusinessHours);
    assert_eq!(t, at("2026-12-04T10:00:00Z"));
}

#[test]
fn holidays_are_skipped() {
    let m = Model::demand_waterfall();
    // Thursday 2026-12-24 15:00 + 1 business day: Friday the 25th is a holiday, so Monday.
    let t = m.add_business_time(at("2026-12-24T15:00:00Z"), 1, TimeUnit::BusinessDays);
    assert_eq!(t, at("2026-12-28T15:00:00Z"));
}

#[test]
fn wall_clock_units_and_offsets() {
    let c = cal();
    assert_eq!(
        c.add(at("2026-12-05T10:00:00Z"), 90, TimeUnit::Days),
        at("2027-03-05T10:00:00Z")
    );
    assert_eq!(
        c.add(at("2026-12-05T10:00:00Z"), 5, TimeUnit::Hours),
        at("2026-12-05T15:00:00Z")
    );
    // In +02:00, working hours are 07:00-15:00 UTC.
    let mut plus2 = cal();
    plus2.utc_offset_minutes = 120;
    let t = plus2.add(at("2026-12-03T14:00:00Z"), 2, TimeUnit::BusinessHours);
    assert_eq!(t, at("2026-12-04T08:00:00Z"));
}

#[test]
fn never_panics_and_saturates() {
    let mut none = cal();
    none.workdays = [false; 7];
    assert_eq!(
        none.add(at("2026-12-05T10:00:00Z"), 1, TimeUnit::BusinessDays),
        Timestamp::MAX
    );
    assert_eq!(
        cal().add(Timestamp::MAX, 3, TimeUnit::BusinessDays),
        Timestamp::MAX
    );
    assert_eq!(cal().add(Timestamp::MAX, 3, TimeUnit::Days), Timestamp::MAX);
    let _ = cal().add(Timestamp::MIN, 3, TimeUnit::BusinessHours);
    assert_eq!(
        cal().add(at("2026-12-05T10:00:00Z"), 0, TimeUnit::BusinessDays),
        at("2026-12-05T10:00:00Z")
    );
}

#[test]
fn durations_parse() {
    assert_eq!(
        Duration::parse("3 business_days"),
        Some(Duration {
            amount: 3,
            unit: TimeUnit::BusinessDays
        })
    );
    assert_eq!(
        Duration::parse("4 business hours"),
        Some(Duration {
            amount: 4,
            unit: TimeUnit::BusinessHours
        })
    );
    assert_eq!(
        Duration::parse("90 days").map(|d| d.unit),
        Some(TimeUnit::Days)
    );
    assert_eq!(
        Duration::parse("1 hour").map(|d| d.unit),
        Some(TimeUnit::Hours)
    );
    assert_eq!(Duration::parse("three days"), None);
    assert_eq!(Duration::parse("3 fortnights"), None);
}

#[test]
fn iana_time_zones_follow_daylight_saving() {
    let mut ny = cal();
    assert!(ny.set_timezone("America/New_York"));
    assert_eq!(ny.timezone_name(), Some("America/New_York"));
    // Friday 2026-03-06 16:00 EST (21:00Z) + 2 business hours: 1 hour Friday, then Monday
    // 2026-03-09 09:00 EDT (13:00Z, daylight saving began on Sunday) + 1 hour.
    let t = ny.add(at("2026-03-06T21:00:00Z"), 2, TimeUnit::BusinessHours);
    assert_eq!(t, at("2026-03-09T14:00:00Z"));
    assert!(!ny.set_timezone("Mars/Olympus"));
    assert_eq!(ny.timezone_name(), Some("America/New_York"));
}
