//! Period counters. The stored unit is the participant-month; months partition quarters and
//! years in the program's time zone, so every longer period is the sum of its months.

use super::period::quarter_of;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One participant-month of counters, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthStats {
    /// `2026-11`
    pub month: String,
    pub points: i64,
    /// Days of the month (1..=31) with at least one login.
    pub login_days: BTreeSet<u8>,
    /// Events counted per type (a reversal takes its original's count back off).
    pub counts: BTreeMap<String, i64>,
}

/// The counters of a month (`2026-11`), quarter (`2026-Q4`) or year (`2026`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeriodTotals {
    pub period: String,
    pub points: i64,
    /// Distinct days with a login: a day belongs to one month, so months add up.
    pub login_days: usize,
    pub counts: BTreeMap<String, i64>,
}

impl PeriodTotals {
    /// Sums the months of `months` that fall in `period`.
    pub fn of(period: &str, months: &[MonthStats]) -> Self {
        let in_period = |month: &str| {
            month == period
                || quarter_of(month).as_deref() == Some(period)
                || month.split('-').next() == Some(period)
        };
        let mut totals = PeriodTotals {
            period: period.to_owned(),
            ..Default::default()
        };
        for month in months.iter().filter(|m| in_period(&m.month)) {
            totals.points += month.points;
            totals.login_days += month.login_days.len();
            for (event_type, n) in &month.counts {
                *totals.counts.entry(event_type.clone()).or_default() += n;
            }
        }
        totals.counts.retain(|_, n| *n != 0);
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(label: &str, points: i64, days: &[u8], deals: i64) -> MonthStats {
        MonthStats {
            month: label.into(),
            points,
            login_days: days.iter().copied().collect(),
            counts: BTreeMap::from([("deal.registered".to_owned(), deals)]),
        }
    }

    #[test]
    fn quarters_and_years_are_sums_of_their_months() {
        let months = [
            month("2026-09", 10, &[30], 1),
            month("2026-10", 100, &[1, 2, 31], 2),
            month("2026-11", 50, &[1], 0),
            month("2027-01", 7, &[4], 1),
        ];
        let q4 = PeriodTotals::of("2026-Q4", &months);
        assert_eq!((q4.points, q4.login_days), (150, 4));
        assert_eq!(
            q4.counts,
            BTreeMap::from([("deal.registered".to_owned(), 2)])
        );
        let year = PeriodTotals::of("2026", &months);
        assert_eq!((year.points, year.login_days), (160, 5));
        let november = PeriodTotals::of("2026-11", &months);
        assert_eq!((november.points, november.login_days), (50, 1));
        assert!(november.counts.is_empty(), "zero counts are dropped");
        assert_eq!(PeriodTotals::of("2027-Q1", &months).points, 7);
    }
}
