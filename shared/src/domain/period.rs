//! Calendar periods of an event, computed in the program's time zone from `occurred_at`
//! (never from processing time), so a login at 23:30 local time on the last day of a month
//! counts for that month wherever and whenever it is processed.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The day, ISO week, month, quarter and year an instant falls in, as stable labels
/// (`2026-11-22`, `2026-W47`, `2026-11`, `2026-Q4`, `2026`) used in keys and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Periods {
    pub day: String,
    pub week: String,
    pub month: String,
    pub quarter: String,
    pub year: String,
    /// Day of the month, 1..=31: the distinct-login-day counters are sets of these.
    pub day_of_month: u8,
    /// The month the ISO week's Monday falls in: weekly counters live on that month's item.
    pub week_start_month: String,
    /// Days since 1970-01-01 of the local date, and its ISO weekday (1 = Monday): streaks
    /// count consecutive days and weeks with these.
    pub day_number: i64,
    pub weekday: i8,
}

impl Periods {
    pub fn of(instant: Timestamp, zone: &TimeZone) -> Self {
        let local = instant.to_zoned(zone.clone());
        let date = local.date();
        let (year, month, day) = (date.year(), date.month(), date.day());
        let iso = date.iso_week_date();
        let weekday = date.weekday().to_monday_one_offset();
        let monday = date
            .checked_sub(jiff::Span::new().days(i64::from(weekday - 1)))
            .unwrap_or(date);
        // Date subtraction yields a span in whole days.
        let day_number = i64::from((date - jiff::civil::date(1970, 1, 1)).get_days());
        Self {
            day: format!("{year:04}-{month:02}-{day:02}"),
            week: format!("{:04}-W{:02}", iso.year(), iso.week()),
            month: format!("{year:04}-{month:02}"),
            quarter: quarter_of_month(year, month),
            year: format!("{year:04}"),
            day_of_month: day as u8,
            week_start_month: format!("{:04}-{:02}", monday.year(), monday.month()),
            day_number,
            weekday,
        }
    }
}

fn quarter_of_month(year: i16, month: i8) -> String {
    format!("{year:04}-Q{}", (month - 1) / 3 + 1)
}

/// The quarter a month label (`2026-11`) belongs to (`2026-Q4`); months partition quarters,
/// so quarter counters are sums of their months' counters.
pub fn quarter_of(month_label: &str) -> Option<String> {
    let (year, month) = month_label.split_once('-')?;
    let year: i16 = year.parse().ok()?;
    let month: i8 = month.parse().ok()?;
    (1..=12)
        .contains(&month)
        .then(|| quarter_of_month(year, month))
}

/// Parses a time zone name from the IANA database bundled into the binary.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("unknown IANA time zone {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, zone: &str) -> Periods {
        Periods::of(s.parse().unwrap(), &time_zone(zone).unwrap())
    }

    #[test]
    fn late_evening_counts_in_the_local_month() {
        // 23:30 in Stockholm on 31 October is 22:30 UTC: still October locally.
        let p = at("2026-10-31T22:30:00Z", "Europe/Stockholm");
        assert_eq!(p.month, "2026-10");
        assert_eq!(p.day, "2026-10-31");
        assert_eq!(p.quarter, "2026-Q4");
        let p = at("2026-10-31T23:30:00Z", "Europe/Stockholm");
        assert_eq!(p.month, "2026-11");
        assert_eq!(p.day_of_month, 1);
    }

    #[test]
    fn the_offset_in_occurred_at_does_not_matter_only_the_instant() {
        assert_eq!(
            at("2026-03-31T23:59:00-05:00", "UTC"),
            at("2026-04-01T04:59:00Z", "UTC")
        );
    }

    #[test]
    fn iso_weeks_and_quarters() {
        let p = at("2027-01-01T12:00:00Z", "UTC");
        assert_eq!(p.week, "2026-W53");
        assert_eq!(p.quarter, "2027-Q1");
        assert_eq!(quarter_of("2026-07").as_deref(), Some("2026-Q3"));
        assert_eq!(quarter_of("2026-13"), None);
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(time_zone("Mars/Olympus").is_err());
    }
}
