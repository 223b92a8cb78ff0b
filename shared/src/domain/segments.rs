//! Daily segmentation: nine behavioural categories decided from each participant's own history
//! and their standing among peers, and personal monthly targets a step above their own typical
//! month. Pure: the daily run loads the members, folds their months into `Engagement`, asks this
//! module for segments, percentiles and targets, and stores what it decides. The reference is
//! docs/segments.md.
//!
//! All arithmetic is on whole numbers (percentages by cross-multiplication in i128), so a
//! category never depends on rounding.

use super::counters::MonthStats;
use super::error::FieldErrors;
use super::rules::{Fields, decimal_of};
use super::standings::{Metric, Totals};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Complete months `Engagement::recent` keeps: two trend windows of the longest length.
pub const RECENT_MONTHS: i32 = 12;

/// A behavioural category, from the least engaged to the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    NeverActivated,
    OneTime,
    Dormant,
    Slipping,
    Steady,
    Rising,
    #[serde(rename = "top_10")]
    Top10,
    #[serde(rename = "top_1")]
    Top1,
    /// The top 0.1%.
    Superstar,
}

impl Segment {
    /// Every segment, from the least engaged to the most.
    pub const ALL: [Segment; 9] = [
        Segment::NeverActivated,
        Segment::OneTime,
        Segment::Dormant,
        Segment::Slipping,
        Segment::Steady,
        Segment::Rising,
        Segment::Top10,
        Segment::Top1,
        Segment::Superstar,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Segment::NeverActivated => "never_activated",
            Segment::OneTime => "one_time",
            Segment::Dormant => "dormant",
            Segment::Slipping => "slipping",
            Segment::Steady => "steady",
            Segment::Rising => "rising",
            Segment::Top10 => "top_10",
            Segment::Top1 => "top_1",
            Segment::Superstar => "superstar",
        }
    }

    /// The segment of a name as stored (`top_10`).
    pub fn parse(name: &str) -> Option<Segment> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar month of the program's time zone, counted from year 0 so that months subtract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

impl Month {
    /// Parses a month label, `2026-11`.
    pub fn parse(label: &str) -> Option<Month> {
        let (year, month) = label.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: i32 = month.parse().ok()?;
        (year >= 0 && (1..=12).contains(&month)).then_some(Month(year * 12 + month - 1))
    }

    /// The month `now` falls in, in `zone`.
    pub fn of(now: Timestamp, zone: &TimeZone) -> Month {
        let date = now.to_zoned(zone.clone()).date();
        Month(i32::from(date.year()) * 12 + i32::from(date.month()) - 1)
    }

    /// The month `n` months earlier.
    pub fn back(self, n: i32) -> Month {
        Month(self.0 - n)
    }

    pub fn label(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}",
            self.0.div_euclid(12),
            self.0.rem_euclid(12) + 1
        )
    }
}

/// A month item's counters as a `Totals`, which `Metric::of` measures. Zero counts are
/// dropped, so an empty month is `Totals::default()`.
impl From<&MonthStats> for Totals {
    fn from(month: &MonthStats) -> Totals {
        Totals {
            points: month.points,
            login_days: month.login_days.len() as i64,
            counts: month
                .counts
                .iter()
                .filter(|(_, n)| **n != 0)
                .map(|(t, n)| (t.clone(), *n))
                .collect(),
        }
    }
}

fn is_empty(totals: &Totals) -> bool {
    totals.points == 0 && totals.login_days == 0 && totals.counts.is_empty()
}

fn add(sum: &mut Totals, month: &Totals) {
    sum.points += month.points;
    sum.login_days += month.login_days;
    for (event_type, n) in &month.counts {
        *sum.counts.entry(event_type.clone()).or_default() += n;
    }
    sum.counts.retain(|_, n| *n != 0);
}

// ---------------------------------------------------------------------------------------
// Configuration: the `segments` section.

/// The segments announced by default: the changes worth a word to the participant.
pub const DEFAULT_ANNOUNCE: [Segment; 6] = [
    Segment::Rising,
    Segment::Top10,
    Segment::Top1,
    Segment::Superstar,
    Segment::Slipping,
    Segment::Dormant,
];

/// The `segments` section of a program document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentsConfig {
    /// What a month's activity is.
    pub metric: Metric,
    /// Complete months in the score window and in each of the two trend windows.
    pub window_months: i64,
    /// Complete months without activity (the current month silent too) that make a
    /// participant dormant.
    pub dormant_months: i64,
    /// The change between the trend windows, in percent, that makes a participant rising or
    /// slipping.
    pub trend_percent: i64,
    pub top_percent: TopPercent,
    /// The hour of the day (program time zone) from which the daily run segments the program.
    pub run_hour: i8,
    /// Segments whose entry sends the participant a `segment.entered` message.
    pub announce: Vec<Segment>,
    pub target: TargetConfig,
}

/// The shares of the ranked population the top tiers hold, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TopPercent {
    pub top_10: Decimal,
    pub top_1: Decimal,
    pub superstar: Decimal,
}

/// How personal targets are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TargetConfig {
    /// How far above the median month the target is, in percent.
    pub step_percent: i64,
    /// Complete months the median is taken over.
    pub months: i64,
    /// The lowest target.
    pub minimum: i64,
}

impl Default for TopPercent {
    fn default() -> Self {
        TopPercent {
            top_10: Decimal::TEN,
            top_1: Decimal::ONE,
            superstar: Decimal::new(1, 1),
        }
    }
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            step_percent: 10,
            months: 6,
            minimum: 1,
        }
    }
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        SegmentsConfig {
            metric: Metric::Points,
            window_months: 3,
            dormant_months: 2,
            trend_percent: 25,
            top_percent: TopPercent::default(),
            run_hour: 6,
            announce: DEFAULT_ANNOUNCE.to_vec(),
            target: TargetConfig::default(),
        }
    }
}

const FIELDS: [&str; 9] = [
    "metric",
    "events",
    "window_months",
    "dormant_months",
    "trend_percent",
    "top_percent",
    "run_hour",
    "announce",
    "target",
];

impl SegmentsConfig {
    /// Reads the document's `segments` section (defaults when absent); errors carry the
    /// document's paths.
    pub(crate) fn parse(document: &Value, errors: &mut FieldErrors) -> SegmentsConfig {
        let defaults = SegmentsConfig::default();
        let Some(section) = document.get("segments").filter(|v| !v.is_null()) else {
            return defaults;
        };
        let Some(f) = Fields::of(section, "segments", &FIELDS, errors) else {
            return defaults;
        };
        // The metric is optional here (points), unlike on boards and drawings.
        let metric = if f.get("metric").is_none() && f.get("events").is_none() {
            Metric::Points
        } else {
            Metric::parse(&f, errors).unwrap_or(Metric::Points)
        };
        let int = |key: &str, range, default, errors: &mut FieldErrors| {
            f.int(key, range, false, errors).unwrap_or(default)
        };
        SegmentsConfig {
            metric,
            window_months: int("window_months", 1..=6, defaults.window_months, errors),
            dormant_months: int("dormant_months", 1..=12, defaults.dormant_months, errors),
            trend_percent: int("trend_percent", 1..=100, defaults.trend_percent, errors),
            top_percent: f
                .get("top_percent")
                .map_or_else(TopPercent::default, |v| TopPercent::parse(v, errors)),
            run_hour: int("run_hour", 0..=23, i64::from(defaults.run_hour), errors) as i8,
            announce: parse_announce(&f, errors),
            target: f
                .get("target")
                .map_or_else(TargetConfig::default, |v| TargetConfig::parse(v, errors)),
        }
    }

    /// A month's activity: the metric's value, a month that penalties took below zero
    /// counting as none.
    pub fn activity(&self, totals: &Totals) -> i64 {
        self.metric.of(totals).max(0)
    }

    /// The activity of a month item (the month in progress: progress toward the target).
    pub fn value_of(&self, month: &MonthStats) -> i64 {
        self.activity(&Totals::from(month))
    }

    /// Complete months before the current one that classification and the target read. A
    /// member's state keeps them between runs, so reading them matters on a member's first
    /// fold and after missed runs; the lifetime counters of a first fold need every month.
    pub fn months_needed(&self) -> i64 {
        (2 * self.window_months)
            .max(self.dormant_months)
            .max(self.target.months)
    }

    /// Whether the daily run is due: the local date (`2026-11-22`) when the program's clock
    /// has reached `run_hour` today and the last run (its local date) was on an earlier day.
    /// The schedule ticks hourly, so a missed tick runs at the next one the same day.
    pub fn run_day(
        &self,
        now: Timestamp,
        zone: &TimeZone,
        last_run: Option<&str>,
    ) -> Option<String> {
        let local = now.to_zoned(zone.clone());
        let today = local.date().to_string();
        (local.hour() >= self.run_hour && last_run.is_none_or(|day| day < today.as_str()))
            .then_some(today)
    }

    /// Whether a change of segment is announced: entering a segment of `announce` from
    /// another one. A participant's first segment is not announced, so switching
    /// segmentation on does not message everyone at once.
    pub fn announces(&self, transition: &Transition) -> bool {
        transition.from.is_some() && self.announce.contains(&transition.to)
    }
}

fn parse_announce(f: &Fields, errors: &mut FieldErrors) -> Vec<Segment> {
    if f.get("announce").is_none() {
        return DEFAULT_ANNOUNCE.to_vec();
    }
    let mut announce = Vec::new();
    for (i, item) in f.list("announce", errors).iter().enumerate() {
        let at = format!("{}[{i}]", f.at("announce"));
        match item.as_str().and_then(Segment::parse) {
            Some(segment) if announce.contains(&segment) => {
                errors.push(at, format!("lists {segment} a second time"));
            }
            Some(segment) => announce.push(segment),
            None => {
                let names: Vec<&str> = Segment::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(at, format!("must be one of {names:?}, got {item}"));
            }
        }
    }
    announce
}

impl TopPercent {
    fn parse(value: &Value, errors: &mut FieldErrors) -> TopPercent {
        let defaults = TopPercent::default();
        let keys = ["top_10", "top_1", "superstar"];
        let Some(f) = Fields::of(value, "segments.top_percent", &keys, errors) else {
            return defaults;
        };
        // `None`: given but refused (so the order is not checked against it).
        let share = |key: &str, default: Decimal, errors: &mut FieldErrors| match f.get(key) {
            None => Some(default),
            Some(v) => match decimal_of(v) {
                Some(d) if d > Decimal::ZERO && d <= Decimal::from(50) => Some(d.normalize()),
                _ => {
                    errors.push(
                        f.at(key),
                        format!("must be a percentage above 0 and at most 50, got {v}"),
                    );
                    None
                }
            },
        };
        let shares = [
            share("top_10", defaults.top_10, errors),
            share("top_1", defaults.top_1, errors),
            share("superstar", defaults.superstar, errors),
        ];
        // Each tier is smaller than the one below it; the error goes where the document
        // speaks: on the smaller tier's key when it is given, else on the larger's.
        for i in 0..2 {
            if let (Some(larger), Some(smaller)) = (shares[i], shares[i + 1])
                && smaller >= larger
            {
                let (at, reason) = if f.get(keys[i + 1]).is_some() {
                    (
                        keys[i + 1],
                        format!("must be less than {} ({larger})", keys[i]),
                    )
                } else {
                    (
                        keys[i],
                        format!("must be more than {} ({smaller})", keys[i + 1]),
                    )
                };
                errors.push(f.at(at), reason);
            }
        }
        TopPercent {
            top_10: shares[0].unwrap_or(defaults.top_10),
            top_1: shares[1].unwrap_or(defaults.top_1),
            superstar: shares[2].unwrap_or(defaults.superstar),
        }
    }
}

impl TargetConfig {
    fn parse(value: &Value, errors: &mut FieldErrors) -> TargetConfig {
        let defaults = TargetConfig::default();
        let keys = ["step_percent", "months", "minimum"];
        let Some(f) = Fields::of(value, "segments.target", &keys, errors) else {
            return defaults;
        };
        TargetConfig {
            step_percent: f
                .int("step_percent", 0..=200, false, errors)
                .unwrap_or(defaults.step_percent),
            months: f
                .int("months", 1..=12, false, errors)
                .unwrap_or(defaults.months),
            minimum: f
                .int("minimum", 1..=1_000_000_000, false, errors)
                .unwrap_or(defaults.minimum),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The state the daily run keeps per participant.

/// What the daily run keeps about a participant between runs (a JSON attribute of the
/// participant item): lifetime counters folded month by month, the counters of the recent
/// complete months, and the segment.
///
/// A complete month is folded into the lifetime counters once the month after it is complete
/// too, so the late events and reversals of its first weeks are in; until then (and for twelve
/// months in all) it is in `recent`, refreshed from the month items at every run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Engagement {
    /// The last month folded into the lifetime counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_through: Option<String>,
    /// Points, login days and event counts of the folded months (raw, whatever the metric).
    pub lifetime: Totals,
    /// Folded months with activity (by the metric in force when each was folded).
    pub active_months: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_active: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
    /// The counters of the last twelve complete months, by month label; months without any
    /// are left out. Raw counters, so a change of metric applies at once.
    pub recent: BTreeMap<String, Totals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The local date the participant entered `segment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_segment: Option<Segment>,
    /// Lifetime points when the last weekly digest was made: the next one reports the
    /// difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest_points: Option<i64>,
}

/// A change of segment, for the participant's history (`SEG#{on}`) and announcements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Option<Segment>,
    pub to: Segment,
    /// The local date of the run that saw it.
    pub on: String,
}

impl Engagement {
    /// Brings the state up to `current` (the month in progress) from the participant's month
    /// items: every complete month of `months` replaces its entry in `recent`, and every month
    /// up to the one before last is folded into the lifetime counters exactly once (from
    /// `months`, else from `recent`; a month in neither had no activity). Folding again with
    /// the same months changes nothing, and folding month by month equals folding at once.
    ///
    /// `months` holds one entry per month; on the first fold (`folded_through` empty) it must
    /// hold the participant's whole history, afterwards every month from `first_unfolded`.
    pub fn fold(&mut self, months: &[MonthStats], current: Month, metric: &Metric) {
        let given: BTreeMap<Month, Totals> = months
            .iter()
            .filter_map(|m| Some((Month::parse(&m.month)?, Totals::from(m))))
            .filter(|(month, _)| *month < current)
            .collect();
        for (month, totals) in given.range(current.back(RECENT_MONTHS)..) {
            if is_empty(totals) {
                self.recent.remove(&month.label());
            } else {
                self.recent.insert(month.label(), totals.clone());
            }
        }
        let settled = current.back(2);
        let folded = self.folded_through.as_deref().and_then(Month::parse);
        let unfolded = |month: &Month| folded.is_none_or(|f| *month > f) && *month <= settled;
        let mut to_fold: BTreeMap<Month, &Totals> = self
            .recent
            .iter()
            .filter_map(|(label, totals)| Some((Month::parse(label)?, totals)))
            .filter(|(month, _)| unfolded(month))
            .collect();
        to_fold.extend(
            given
                .iter()
                .filter(|(m, _)| unfolded(m))
                .map(|(m, t)| (*m, t)),
        );
        for (month, totals) in to_fold {
            add(&mut self.lifetime, totals);
            if metric.of(totals) > 0 {
                self.active_months += 1;
                self.first_active.get_or_insert_with(|| month.label());
                self.last_active = Some(month.label());
            }
        }
        let oldest = current.back(RECENT_MONTHS).label();
        self.recent.retain(|label, _| *label >= oldest);
        if folded.is_none_or(|f| f < settled) {
            self.folded_through = Some(settled.label());
        }
    }

    /// The first month the next fold needs from the month items; `None`: all of them.
    pub fn first_unfolded(&self) -> Option<Month> {
        let folded = Month::parse(self.folded_through.as_deref()?)?;
        Some(Month(folded.0 + 1))
    }

    /// Lifetime counters up to now: the folded months, the complete months not folded yet,
    /// and `current`, the month in progress (journey milestones read these).
    pub fn lifetime_with(&self, current: &MonthStats) -> Totals {
        let mut totals = self.lifetime.clone();
        for (_, month) in self.unfolded() {
            add(&mut totals, month);
        }
        add(&mut totals, &Totals::from(current));
        totals
    }

    /// Points earned since the last digest (`current`: the month in progress); `None` before
    /// the first digest.
    pub fn points_since_digest(&self, current: &MonthStats) -> Option<i64> {
        Some(self.lifetime_with(current).points - self.digest_points?)
    }

    /// Records that a digest was made now, as the baseline of the next one.
    pub fn digest_sent(&mut self, current: &MonthStats) {
        self.digest_points = Some(self.lifetime_with(current).points);
    }

    /// The months of `recent` not folded yet.
    fn unfolded(&self) -> impl Iterator<Item = (&String, &Totals)> {
        let folded = self.folded_through.as_deref().and_then(Month::parse);
        self.recent.iter().filter(move |(label, _)| {
            Month::parse(label).is_some_and(|m| folded.is_none_or(|f| m > f))
        })
    }

    /// Records the segment the run decided on `today` (local date); the change, if any.
    pub fn assign(&mut self, segment: Segment, today: &str) -> Option<Transition> {
        if self.segment == Some(segment) {
            return None;
        }
        let from = self.segment.replace(segment);
        self.previous_segment = from;
        self.segment_since = Some(today.to_owned());
        Some(Transition {
            from,
            to: segment,
            on: today.to_owned(),
        })
    }

    /// The activity of each of the last twelve complete months: `[age]`, 1 = last month.
    fn by_age(&self, config: &SegmentsConfig, current: Month) -> [i64; RECENT_MONTHS as usize + 1] {
        let mut by_age = [0; RECENT_MONTHS as usize + 1];
        for (label, totals) in &self.recent {
            if let Some(month) = Month::parse(label)
                && let Ok(age) = usize::try_from(current.0 - month.0)
                && (1..by_age.len()).contains(&age)
            {
                by_age[age] += config.activity(totals);
            }
        }
        by_age
    }
}

// ---------------------------------------------------------------------------------------
// Classification.

/// What a participant's own history says, before the population is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Activity over the last `window_months` complete months and the current month so far.
    pub score: i64,
    /// Never activated, one-time or dormant when history settles it; otherwise the trend
    /// (rising, steady, slipping), which a top tier overrides.
    pub base: Segment,
}

impl Assessment {
    /// Whether the participant competes for the top tiers.
    pub fn ranked(&self) -> bool {
        self.score > 0
            && matches!(
                self.base,
                Segment::Rising | Segment::Steady | Segment::Slipping
            )
    }

    /// The segment, given the population's tiers.
    pub fn segment(&self, population: &Population) -> Segment {
        if self.ranked() {
            population.tier(self.score).unwrap_or(self.base)
        } else {
            self.base
        }
    }
}

/// Assesses one participant; `engagement` is folded up to `current`, and `current_stats` is
/// the month in progress so far.
pub fn assess(
    config: &SegmentsConfig,
    engagement: &Engagement,
    current_stats: &MonthStats,
    current: Month,
) -> Assessment {
    let by_age = engagement.by_age(config, current);
    let now = config.activity(&Totals::from(current_stats));
    let window = config.window_months as usize;
    let recent: i64 = by_age[1..=window].iter().sum();
    let previous: i64 = by_age[window + 1..=2 * window].iter().sum();
    let score = recent + now;
    let unfolded_active = engagement
        .unfolded()
        .filter(|(label, totals)| {
            Month::parse(label).is_some_and(|m| m < current) && config.activity(totals) > 0
        })
        .count();
    let active_months = engagement.active_months as usize + unfolded_active + usize::from(now > 0);
    let silent = now == 0
        && by_age[1..=config.dormant_months as usize]
            .iter()
            .all(|a| *a == 0);
    let base = match active_months {
        0 => Segment::NeverActivated,
        1 if now == 0 => Segment::OneTime,
        _ if silent => Segment::Dormant,
        _ => trend(config.trend_percent, recent, previous, now),
    };
    Assessment { score, base }
}

/// Rising, steady or slipping: the last window of complete months against the one before.
fn trend(percent: i64, recent: i64, previous: i64, now: i64) -> Segment {
    if recent == 0 && previous == 0 {
        // Both windows silent: starting (or coming back) this month is rising; a participant
        // silent that long and not yet dormant (dormant_months > 2 windows) is slipping.
        return if now > 0 {
            Segment::Rising
        } else {
            Segment::Slipping
        };
    }
    let (recent, previous, percent) = (
        i128::from(recent),
        i128::from(previous),
        i128::from(percent),
    );
    if recent > previous && recent * 100 >= previous * (100 + percent) {
        Segment::Rising
    } else if recent < previous && recent * 100 <= previous * (100 - percent) {
        Segment::Slipping
    } else {
        Segment::Steady
    }
}

/// Every member's window score, for ranks and percentiles. Sorted vectors: about 16 bytes a
/// member, so a million members fit easily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Population {
    /// Every member's score, ascending.
    scores: Vec<i64>,
    /// The scores of the members ranked for the top tiers, ascending.
    ranked: Vec<i64>,
    /// The last rank of each tier: superstar, top_1, top_10.
    last_ranks: [usize; 3],
}

impl Population {
    pub fn new<'a>(
        config: &SegmentsConfig,
        assessments: impl IntoIterator<Item = &'a Assessment>,
    ) -> Population {
        let mut scores = Vec::new();
        let mut ranked = Vec::new();
        for assessment in assessments {
            scores.push(assessment.score);
            if assessment.ranked() {
                ranked.push(assessment.score);
            }
        }
        scores.sort_unstable();
        ranked.sort_unstable();
        let n = Decimal::from(ranked.len() as u64);
        let last_rank = |percent: Decimal| {
            (percent * n / Decimal::ONE_HUNDRED)
                .floor()
                .to_usize()
                .unwrap_or(0)
        };
        let top = config.top_percent;
        Population {
            scores,
            ranked,
            last_ranks: [
                last_rank(top.superstar),
                last_rank(top.top_1),
                last_rank(top.top_10),
            ],
        }
    }

    /// How many members the population has.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// How many members compete for the top tiers.
    pub fn ranked_len(&self) -> usize {
        self.ranked.len()
    }

    /// The rank of a positive score among the ranked members: one more than the number of
    /// higher scores, so ties share the best rank.
    pub fn rank(&self, score: i64) -> Option<usize> {
        (score > 0).then(|| self.ranked.len() - self.ranked.partition_point(|s| *s <= score) + 1)
    }

    /// The top tier of a ranked member's score, if any.
    pub fn tier(&self, score: i64) -> Option<Segment> {
        let rank = self.rank(score)?;
        [Segment::Superstar, Segment::Top1, Segment::Top10]
            .into_iter()
            .zip(self.last_ranks)
            .find(|(_, last)| rank <= *last)
            .map(|(tier, _)| tier)
    }

    /// "Better than X% of peers": the share of members with a strictly lower score, in whole
    /// percent rounded down (0 to 100).
    pub fn percentile(&self, score: i64) -> u8 {
        if self.scores.is_empty() {
            return 0;
        }
        let lower = self.scores.partition_point(|s| *s < score);
        (lower * 100 / self.scores.len()) as u8
    }
}

/// The segment of one participant among `population`.
pub fn classify(
    config: &SegmentsConfig,
    engagement: &Engagement,
    current_stats: &MonthStats,
    current: Month,
    population: &Population,
) -> Segment {
    assess(config, engagement, current_stats, current).segment(population)
}

/// A member's outcome of the daily run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub segment: Segment,
    pub score: i64,
    pub percentile: u8,
}

/// The daily run's outcome for the whole program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmentation {
    /// One per member, in the order given.
    pub placements: Vec<Placement>,
    pub population: Population,
}

impl Segmentation {
    /// Members per segment, every segment listed.
    pub fn counts(&self) -> BTreeMap<Segment, usize> {
        let mut counts: BTreeMap<Segment, usize> = Segment::ALL.iter().map(|s| (*s, 0)).collect();
        for placement in &self.placements {
            *counts.entry(placement.segment).or_default() += 1;
        }
        counts
    }
}

/// Segments every member: each one's state (folded up to `current`) and month in progress.
pub fn segment_all<'a>(
    config: &SegmentsConfig,
    members: impl IntoIterator<Item = (&'a Engagement, &'a MonthStats)>,
    current: Month,
) -> Segmentation {
    let assessments: Vec<Assessment> = members
        .into_iter()
        .map(|(engagement, stats)| assess(config, engagement, stats, current))
        .collect();
    let population = Population::new(config, &assessments);
    let placements = assessments
        .iter()
        .map(|a| Placement {
            segment: a.segment(&population),
            score: a.score,
            percentile: population.percentile(a.score),
        })
        .collect();
    Segmentation {
        placements,
        population,
    }
}

// ---------------------------------------------------------------------------------------
// Personal targets.

/// A participant's target for the month, in the unit of the segments' metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub value: i64,
    /// The median of their active months the target steps up from.
    pub median: i64,
}

/// A step above the participant's typical month: the median of the months with activity
/// among the last `target.months` complete ones (of two middle months, their mean rounded
/// down), raised by `step_percent` and rounded up, at least `minimum`. `None` without an
/// active month to go by.
pub fn personal_target(
    config: &SegmentsConfig,
    engagement: &Engagement,
    current: Month,
) -> Option<Target> {
    let by_age = engagement.by_age(config, current);
    let mut active: Vec<i64> = by_age[1..=config.target.months as usize]
        .iter()
        .copied()
        .filter(|a| *a > 0)
        .collect();
    if active.is_empty() {
        return None;
    }
    active.sort_unstable();
    let middle = active.len() / 2;
    let median = if active.len() % 2 == 1 {
        active[middle]
    } else {
        ((i128::from(active[middle - 1]) + i128::from(active[middle])) / 2) as i64
    };
    // median > 0: rounding up is adding 99 before dividing.
    let stepped = (i128::from(median) * i128::from(100 + config.target.step_percent) + 99) / 100;
    let value = i64::try_from(stepped)
        .unwrap_or(i64::MAX)
        .max(config.target.minimum);
    Some(Target { value, median })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Month {
        Month::parse("2026-11").unwrap()
    }

    /// A month with `points` points and, when it has any, one login day and one deal.
    fn stats(month: Month, points: i64) -> MonthStats {
        let active = points > 0;
        MonthStats {
            month: month.label(),
            points,
            login_days: if active {
                [1].into()
            } else {
                Default::default()
            },
            counts: if active {
                [("deal.registered".to_owned(), 1)].into()
            } else {
                Default::default()
            },
        }
    }

    /// A member's state folded from their whole history: `(age in months, points)` of complete
    /// months (age 1 is last month), and the current month's points so far.
    fn member(
        config: &SegmentsConfig,
        history: &[(i32, i64)],
        current: i64,
    ) -> (Engagement, MonthStats) {
        let months: Vec<MonthStats> = history
            .iter()
            .map(|(age, points)| stats(now().back(*age), *points))
            .collect();
        let mut engagement = Engagement::default();
        engagement.fold(&months, now(), &config.metric);
        (engagement, stats(now(), current))
    }

    fn parsed(section: Value) -> Result<SegmentsConfig, Vec<String>> {
        let mut errors = FieldErrors::default();
        let config = SegmentsConfig::parse(&json!({ "segments": section }), &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors.0.into_iter().map(|e| e.field).collect())
        }
    }

    #[test]
    fn segments_have_snake_case_names_in_order() {
        let names: Vec<&str> = Segment::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "never_activated",
                "one_time",
                "dormant",
                "slipping",
                "steady",
                "rising",
                "top_10",
                "top_1",
                "superstar"
            ]
        );
        for segment in Segment::ALL {
            assert_eq!(
                serde_json::to_value(segment).unwrap(),
                json!(segment.as_str())
            );
            assert_eq!(Segment::parse(segment.as_str()), Some(segment));
        }
        assert!(Segment::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Segment::parse("top10"), None);
    }

    #[test]
    fn months_parse_count_and_print() {
        let m = Month::parse("2026-01").unwrap();
        assert_eq!(m.back(1).label(), "2025-12");
        assert_eq!(m.back(13).label(), "2024-12");
        for bad in ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", ""] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        let zone = TimeZone::get("Europe/Stockholm").unwrap();
        let new_year_local = "2026-12-31T23:30:00Z".parse().unwrap();
        assert_eq!(Month::of(new_year_local, &zone).label(), "2027-01");
    }

    #[test]
    fn an_absent_section_is_the_defaults() {
        let mut errors = FieldErrors::default();
        let config = SegmentsConfig::parse(&json!({"program": "acme"}), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(config, SegmentsConfig::default());
        assert_eq!(config.metric, Metric::Points);
        assert_eq!(
            (
                config.window_months,
                config.dormant_months,
                config.trend_percent,
                config.run_hour
            ),
            (3, 2, 25, 6)
        );
        assert_eq!(config.top_percent.superstar, Decimal::new(1, 1));
        assert_eq!(config.announce, DEFAULT_ANNOUNCE);
        assert_eq!(parsed(json!({})).unwrap(), SegmentsConfig::default());
    }

    #[test]
    fn every_field_is_read() {
        let config = parsed(json!({
            "metric": "events", "events": ["deal.registered", "lead.submitted"],
            "window_months": 2, "dormant_months": 4, "trend_percent": 40,
            "top_percent": {"top_10": 20, "top_1": "2.5", "superstar": 0.25},
            "run_hour": 0, "announce": ["superstar", "one_time"],
            "target": {"step_percent": 0, "months": 12, "minimum": 3}
        }))
        .unwrap();
        assert_eq!(
            config,
            SegmentsConfig {
                metric: Metric::Events(vec!["deal.registered".into(), "lead.submitted".into()]),
                window_months: 2,
                dormant_months: 4,
                trend_percent: 40,
                top_percent: TopPercent {
                    top_10: Decimal::from(20),
                    top_1: Decimal::new(25, 1),
                    superstar: Decimal::new(25, 2),
                },
                run_hour: 0,
                announce: vec![Segment::Superstar, Segment::OneTime],
                target: TargetConfig {
                    step_percent: 0,
                    months: 12,
                    minimum: 3
                },
            }
        );
        assert_eq!(
            parsed(json!({"metric": "login_days", "announce": []}))
                .unwrap()
                .announce,
            []
        );
    }

    #[test]
    fn errors_name_their_paths() {
        let cases = [
            (json!("auto"), vec!["segments"]),
            (json!({"colour": "red"}), vec!["segments.colour"]),
            (json!({"metric": "logins"}), vec!["segments.metric"]),
            (json!({"metric": "events"}), vec!["segments.events"]),
            (
                json!({"events": ["deal.registered"]}),
                vec!["segments.metric"],
            ),
            (
                json!({"metric": "points", "events": ["deal.registered"]}),
                vec!["segments.events"],
            ),
            (
                json!({"window_months": 7, "dormant_months": 0, "trend_percent": 101, "run_hour": 24}),
                vec![
                    "segments.window_months",
                    "segments.dormant_months",
                    "segments.trend_percent",
                    "segments.run_hour",
                ],
            ),
            (
                json!({"window_months": 2.5}),
                vec!["segments.window_months"],
            ),
            (
                json!({"top_percent": {"top_10": 0}}),
                vec!["segments.top_percent.top_10"],
            ),
            (
                json!({"top_percent": {"top_1": 51}}),
                vec!["segments.top_percent.top_1"],
            ),
            (
                json!({"top_percent": {"top_5": 5}}),
                vec!["segments.top_percent.top_5"],
            ),
            (
                json!({"top_percent": {"top_1": 10}}),
                vec!["segments.top_percent.top_1"],
            ),
            (
                json!({"top_percent": {"top_10": 0.5}}),
                vec!["segments.top_percent.top_10"],
            ),
            (
                json!({"top_percent": {"top_1": 0.1}}),
                vec!["segments.top_percent.top_1"],
            ),
            (
                json!({"top_percent": {"top_1": 0.5, "superstar": 0.5}}),
                vec!["segments.top_percent.superstar"],
            ),
            (
                json!({"top_percent": [10, 1]}),
                vec!["segments.top_percent"],
            ),
            (
                json!({"announce": ["rising", "famous", "rising"]}),
                vec!["segments.announce[1]", "segments.announce[2]"],
            ),
            (json!({"announce": "rising"}), vec!["segments.announce"]),
            (
                json!({"target": {"step_percent": 201, "months": 0, "minimum": 0, "cap": 5}}),
                vec![
                    "segments.target.cap",
                    "segments.target.step_percent",
                    "segments.target.months",
                    "segments.target.minimum",
                ],
            ),
        ];
        for (section, expected) in cases {
            let mut errors = parsed(section.clone()).expect_err(&section.to_string());
            errors.sort();
            let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
            expected.sort();
            assert_eq!(errors, expected, "{section}");
        }
    }

    #[test]
    fn the_run_is_due_once_a_day_from_run_hour_local_time() {
        let config = parsed(json!({"run_hour": 6})).unwrap();
        let zone = TimeZone::get("America/New_York").unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // 10:30 UTC is 05:30 in New York (EST): not yet.
        assert_eq!(
            config.run_day(at("2026-11-20T10:30:00Z"), &zone, None),
            None
        );
        let due = config.run_day(at("2026-11-20T11:05:00Z"), &zone, Some("2026-11-19"));
        assert_eq!(due.as_deref(), Some("2026-11-20"));
        assert_eq!(
            config.run_day(at("2026-11-20T20:00:00Z"), &zone, Some("2026-11-20")),
            None
        );
        // 03:00 UTC on the 21st is still the 20th in New York.
        assert_eq!(
            config.run_day(at("2026-11-21T03:00:00Z"), &zone, Some("2026-11-20")),
            None
        );
        let late = config.run_day(at("2026-11-21T23:00:00Z"), &zone, Some("2026-11-19"));
        assert_eq!(
            late.as_deref(),
            Some("2026-11-21"),
            "a missed day runs at the next tick"
        );
    }

    #[test]
    fn folding_keeps_a_month_open_until_the_next_one_is_complete() {
        let config = SegmentsConfig::default();
        let september = stats(now().back(2), 100);
        let mut october = stats(now().back(1), 40);
        let november = stats(now(), 7);
        let old = stats(now().back(30), 5);
        let mut engagement = Engagement::default();
        engagement.fold(
            &[
                old.clone(),
                september.clone(),
                october.clone(),
                november.clone(),
            ],
            now(),
            &config.metric,
        );
        assert_eq!(engagement.folded_through.as_deref(), Some("2026-09"));
        assert_eq!(
            engagement.lifetime.points, 105,
            "old and September are folded"
        );
        assert_eq!(engagement.active_months, 2);
        assert_eq!(engagement.first_active.as_deref(), Some("2024-05"));
        assert_eq!(engagement.last_active.as_deref(), Some("2026-09"));
        assert_eq!(
            engagement.recent.keys().collect::<Vec<_>>(),
            ["2026-09", "2026-10"],
            "the old month is out of the last twelve, the current month is not complete"
        );
        assert_eq!(engagement.first_unfolded(), Some(now().back(1)));
        assert_eq!(engagement.lifetime_with(&november).points, 152);
        assert_eq!(engagement.lifetime_with(&november).login_days, 4);
        assert_eq!(
            engagement.lifetime_with(&november).counts["deal.registered"],
            4
        );

        // A late event for October lands: the next run sees it in `recent`; October is
        // folded (with it) once November is complete.
        october.points = 60;
        engagement.fold(&[october.clone(), november.clone()], now(), &config.metric);
        assert_eq!(engagement.recent["2026-10"].points, 60);
        assert_eq!(engagement.lifetime.points, 105);
        let december = now().back(-1);
        engagement.fold(std::slice::from_ref(&november), december, &config.metric);
        assert_eq!(engagement.folded_through.as_deref(), Some("2026-10"));
        assert_eq!(
            engagement.lifetime.points, 165,
            "October from `recent`, once"
        );
        engagement.fold(&[november], december, &config.metric);
        assert_eq!(engagement.lifetime.points, 165);
        assert_eq!(engagement.active_months, 3);
    }

    #[test]
    fn a_digest_reports_the_points_since_the_last_one() {
        let config = SegmentsConfig::default();
        let (mut engagement, mut november) = member(&config, &[(1, 40), (3, 100)], 10);
        assert_eq!(engagement.points_since_digest(&november), None);
        engagement.digest_sent(&november);
        assert_eq!(engagement.points_since_digest(&november), Some(0));
        november.points = 35;
        assert_eq!(engagement.points_since_digest(&november), Some(25));
        // Across the month's end: November complete, December in progress.
        let december = now().back(-1);
        engagement.fold(std::slice::from_ref(&november), december, &config.metric);
        assert_eq!(
            engagement.points_since_digest(&stats(december, 5)),
            Some(30)
        );
    }

    #[test]
    fn the_months_needed_cover_both_windows_and_the_target() {
        assert_eq!(SegmentsConfig::default().months_needed(), 6);
        let long = parsed(json!({"window_months": 2, "dormant_months": 9})).unwrap();
        assert_eq!(long.months_needed(), 9);
        assert_eq!(long.value_of(&stats(now(), -4)), 0);
        assert_eq!(long.value_of(&stats(now(), 4)), 4);
    }

    #[test]
    fn the_state_round_trips_through_json() {
        let config = SegmentsConfig::default();
        let (mut engagement, _) = member(&config, &[(1, 10), (2, 20), (5, 30)], 0);
        engagement.assign(Segment::Steady, "2026-11-02");
        let json = serde_json::to_string(&engagement).unwrap();
        assert_eq!(
            serde_json::from_str::<Engagement>(&json).unwrap(),
            engagement
        );
        assert_eq!(
            serde_json::from_str::<Engagement>("{}").unwrap(),
            Engagement::default()
        );
    }

    #[test]
    fn transitions_are_recorded_and_announced_from_a_previous_segment() {
        let config = SegmentsConfig::default();
        let mut engagement = Engagement::default();
        let first = engagement
            .assign(Segment::NeverActivated, "2026-11-01")
            .unwrap();
        assert_eq!(first.from, None);
        assert!(
            !config.announces(&first),
            "a first segment is not announced"
        );
        assert_eq!(
            engagement.assign(Segment::NeverActivated, "2026-11-02"),
            None
        );
        let rising = engagement.assign(Segment::Rising, "2026-11-03").unwrap();
        assert_eq!(
            rising,
            Transition {
                from: Some(Segment::NeverActivated),
                to: Segment::Rising,
                on: "2026-11-03".into()
            }
        );
        assert!(config.announces(&rising));
        assert_eq!(engagement.previous_segment, Some(Segment::NeverActivated));
        assert_eq!(engagement.segment_since.as_deref(), Some("2026-11-03"));
        let steady = engagement.assign(Segment::Steady, "2026-12-01").unwrap();
        assert!(
            !config.announces(&steady),
            "steady is not in the default list"
        );
    }

    /// A member as built for a test: `(age in months, points)` of complete months, and the
    /// current month's points.
    type Built = (Vec<(i32, i64)>, i64);

    /// Segments a population of members.
    fn segments(config: &SegmentsConfig, members: &[Built]) -> Vec<Segment> {
        let states: Vec<(Engagement, MonthStats)> = members
            .iter()
            .map(|(history, current)| member(config, history, *current))
            .collect();
        segment_all(config, states.iter().map(|(e, s)| (e, s)), now())
            .placements
            .iter()
            .map(|p| p.segment)
            .collect()
    }

    #[test]
    fn trends_compare_the_last_window_with_the_one_before() {
        let config = SegmentsConfig::default();
        let member =
            |recent: i64, previous: i64| -> Built { (vec![(1, recent), (4, previous)], 0) };
        let found = segments(
            &config,
            &[
                member(125, 100),
                member(124, 100),
                member(75, 100),
                member(76, 100),
                member(100, 100),
                (vec![(1, 5), (2, 5)], 0),
            ],
        );
        use Segment::*;
        // Six ranked members: 10% of 6 is no place, so no top tier.
        assert_eq!(found, [Rising, Steady, Slipping, Steady, Steady, Rising]);
    }

    #[test]
    fn history_decides_before_rank_and_a_dormant_star_is_dormant() {
        let config = SegmentsConfig::default();
        use Segment::*;
        let mut members = vec![
            // never: no month, or penalties only
            (vec![], 0),
            (vec![(2, -20)], 0),
            // one month ever, even a huge one last month
            (vec![(1, 1_000_000)], 0),
            (vec![(20, 50)], 0),
            // dormant: the highest score of all sits three months back
            (vec![(3, 5_000_000), (9, 10)], 0),
            // a first month in progress is rising
            (vec![], 3),
            // active long ago, back this month: rising
            (vec![(9, 10), (10, 10)], 1),
        ];
        // Nine ranked others, so that one rank is in the top 10%.
        members.extend((1..=9).map(|i| (vec![(1, 10 * i), (4, 10 * i)], 1)));
        let found = segments(&config, &members);
        assert_eq!(
            &found[..7],
            [
                NeverActivated,
                NeverActivated,
                OneTime,
                OneTime,
                Dormant,
                Rising,
                Rising
            ]
        );
        assert_eq!(found[15], Top10, "the best of ten ranked members");
        assert!(found[7..15].iter().all(|s| *s == Steady), "{found:?}");
    }

    #[test]
    fn silence_through_both_windows_before_dormancy_is_slipping() {
        let config = parsed(json!({"window_months": 1, "dormant_months": 6})).unwrap();
        use Segment::*;
        let found = segments(
            &config,
            &[(vec![(4, 10), (5, 10)], 0), (vec![(7, 10), (8, 10)], 0)],
        );
        assert_eq!(found, [Slipping, Dormant]);
    }

    #[test]
    fn the_metric_decides_what_activity_is() {
        let config = parsed(json!({"metric": "events", "events": ["deal.registered"]})).unwrap();
        let mut engagement = Engagement::default();
        let logins_only = MonthStats {
            month: now().back(1).label(),
            points: 500,
            login_days: [1, 2, 3].into(),
            counts: [("portal.login".to_owned(), 3)].into(),
        };
        engagement.fold(&[logins_only], now(), &config.metric);
        let population = Population::new(&config, []);
        assert_eq!(
            classify(&config, &engagement, &stats(now(), 0), now(), &population),
            Segment::NeverActivated
        );
        assert_eq!(
            classify(&config, &engagement, &stats(now(), 1), now(), &population),
            Segment::Rising,
            "a first deal this month"
        );
    }

    /// A thousand ranked members whose categories are known by construction, plus the
    /// categories history settles, each asserted.
    #[test]
    fn a_synthetic_population_is_segmented_as_built() {
        let config = SegmentsConfig::default();
        let mut members: Vec<(Built, Segment)> = Vec::new();
        let mut add = |history: Vec<(i32, i64)>, current: i64, truth: Segment| {
            members.push(((history, current), truth));
        };
        for i in 0..100 {
            // Never active: no month at all, or a month that penalties took below zero.
            let history = if i % 3 == 0 {
                vec![(1 + i % 12, -5)]
            } else {
                vec![]
            };
            add(history, 0, Segment::NeverActivated);
        }
        for i in 0..100 {
            // One month, one to thirty months ago, nothing this month.
            add(vec![(1 + i % 30, 10 + i as i64)], 0, Segment::OneTime);
        }
        for i in 0..100 {
            // Active months, then silent for at least the last two and this month.
            add(
                vec![(3 + i % 10, 40), (5 + i % 10, 25), (20, 5)],
                0,
                Segment::Dormant,
            );
        }
        for i in 0..300 {
            let i = i as i64;
            let now = i % 4;
            // Falling: at least 25% less over the last three months than the three before.
            let recent = 30 - i % 10;
            add(
                vec![
                    (1, recent),
                    (2, recent),
                    (3, recent),
                    (4, 40),
                    (5, 40),
                    (6, 40),
                ],
                now,
                Segment::Slipping,
            );
            // Flat: within 25% either way.
            let flat = 31 + i % 19;
            add(
                vec![
                    (1, flat),
                    (2, flat),
                    (3, flat),
                    (4, 40),
                    (5, 40),
                    (6, 40),
                    (9, 3),
                ],
                now,
                Segment::Steady,
            );
            // Growing: at least 25% more, or from nothing.
            let history = if i % 5 == 0 {
                vec![(1, 20 + i), (3, 5)]
            } else {
                vec![
                    (1, 50 + i % 10),
                    (2, 50),
                    (3, 50),
                    (4, 40),
                    (5, 40),
                    (6, 40),
                ]
            };
            add(history, now, Segment::Rising);
        }
        // The top tiers: a power law of scores far above everyone else's, with trends of
        // every kind underneath. 1,000 ranked members: 1 superstar, 9 more in the top 1%,
        // 90 more in the top 10%.
        for rank in 1..=100_i64 {
            let truth = match rank {
                1 => Segment::Superstar,
                2..=10 => Segment::Top1,
                _ => Segment::Top10,
            };
            let score = 10_000_000 / rank;
            let history = match rank % 3 {
                0 => vec![(1, score), (4, 1)],
                1 => vec![(2, score / 2), (5, score), (20, 3)],
                _ => vec![(3, score - 1), (6, 1)],
            };
            let current = if rank % 3 == 1 {
                score - score / 2
            } else {
                rank % 3 - 1
            };
            add(history, current, truth);
        }
        let states: Vec<(Engagement, MonthStats)> = members
            .iter()
            .map(|((history, current), _)| member(&config, history, *current))
            .collect();
        let outcome = segment_all(&config, states.iter().map(|(e, s)| (e, s)), now());
        assert_eq!(outcome.population.len(), 1300);
        assert_eq!(outcome.population.ranked_len(), 1000);
        let mut wrong = Vec::new();
        for (i, (((history, current), truth), placement)) in
            members.iter().zip(&outcome.placements).enumerate()
        {
            if placement.segment != *truth {
                wrong.push(format!(
                    "#{i} {history:?} + {current}: {} not {truth}",
                    placement.segment
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        let counts: Vec<usize> = outcome.counts().into_values().collect();
        assert_eq!(counts, [100, 100, 100, 300, 300, 300, 90, 9, 1]);
        let superstar = outcome.placements[outcome.placements.len() - 100];
        assert_eq!(superstar.percentile, 99, "better than 1299 of 1300");
        assert_eq!(
            outcome.placements[1].percentile, 0,
            "nobody scores below zero"
        );
    }

    #[test]
    fn a_hundred_members_have_one_top_1_and_no_superstar() {
        let config = SegmentsConfig::default();
        let scores: Vec<Assessment> = (1..=100)
            .map(|score| Assessment {
                score,
                base: Segment::Steady,
            })
            .collect();
        let population = Population::new(&config, &scores);
        let tiers: Vec<Segment> = scores.iter().map(|a| a.segment(&population)).collect();
        assert_eq!(tiers[99], Segment::Top1);
        assert!(tiers[90..99].iter().all(|s| *s == Segment::Top10));
        assert!(tiers[..90].iter().all(|s| *s == Segment::Steady));
        // Ties share the best rank: two at the top are both top 1%, the next is third.
        let mut tied = scores.clone();
        tied[98].score = 100;
        let population = Population::new(&config, &tied);
        assert_eq!(population.rank(100), Some(1));
        assert_eq!(population.rank(98), Some(3));
        assert_eq!(tied[98].segment(&population), Segment::Top1);
        assert_eq!(population.percentile(100), 98);
        assert_eq!(population.percentile(1), 0);
        assert_eq!(population.rank(0), None);
    }

    #[test]
    fn the_stacey_example() {
        let config = SegmentsConfig::default();
        // Stacey's last six months: 180, nothing, 300 (her best), 220, 250, 240. Her target is
        // a step above her median active month, 240: near her best, nowhere near 2,000.
        let (stacey, _) = member(
            &config,
            &[(1, 240), (2, 250), (3, 220), (4, 300), (6, 180)],
            0,
        );
        assert_eq!(
            personal_target(&config, &stacey, now()),
            Some(Target {
                value: 264,
                median: 240
            })
        );
    }

    #[test]
    fn targets_step_up_from_the_median_of_active_months() {
        let config = SegmentsConfig::default();
        let target = |history: &[(i32, i64)]| {
            personal_target(&config, &member(&config, history, 0).0, now())
        };
        assert_eq!(target(&[]), None);
        assert_eq!(target(&[(7, 500)]), None, "only the last six months count");
        assert_eq!(
            target(&[(1, 300)]),
            Some(Target {
                value: 330,
                median: 300
            })
        );
        assert_eq!(
            target(&[(1, 100), (2, 301)]),
            Some(Target {
                value: 220,
                median: 200
            })
        );
        assert_eq!(
            target(&[(1, 1), (2, 0)]),
            Some(Target {
                value: 2,
                median: 1
            }),
            "rounded up"
        );
        let floor = parsed(json!({"target": {"minimum": 50, "step_percent": 0}})).unwrap();
        assert_eq!(
            personal_target(&floor, &member(&floor, &[(1, 10)], 0).0, now()),
            Some(Target {
                value: 50,
                median: 10
            })
        );
    }

    proptest::proptest! {
        /// Folding month by month equals folding at once, and folding again changes nothing.
        #[test]
        fn folding_is_incremental_and_idempotent(
            months in proptest::collection::btree_map(0i32..40, (-20i64..200, 0u8..5, 0i64..3), 0..25),
            steps in proptest::collection::vec(0i32..45, 0..6),
        ) {
            let start = Month::parse("2023-01").unwrap();
            let items: Vec<MonthStats> = months
                .iter()
                .map(|(offset, (points, days, deals))| MonthStats {
                    month: start.back(-offset).label(),
                    points: *points,
                    login_days: (1..=*days).collect(),
                    counts: [("deal.registered".to_owned(), *deals)].into(),
                })
                .collect();
            let last = start.back(-45);
            let mut at_once = Engagement::default();
            at_once.fold(&items, last, &Metric::Points);
            let mut stepwise = Engagement::default();
            let mut steps = steps;
            steps.sort_unstable();
            for step in steps {
                stepwise.fold(&items, start.back(-step), &Metric::Points);
            }
            stepwise.fold(&items, last, &Metric::Points);
            proptest::prop_assert_eq!(&stepwise, &at_once);
            let again = at_once.clone();
            at_once.fold(&items, last, &Metric::Points);
            proptest::prop_assert_eq!(&at_once, &again);
            let all: Totals = items.iter().fold(Totals::default(), |mut sum, m| {
                add(&mut sum, &Totals::from(m));
                sum
            });
            proptest::prop_assert_eq!(at_once.lifetime_with(&MonthStats::default()), all);
        }

        /// With distinct scores a tier holds exactly its places (cumulatively); equal scores
        /// always share a tier.
        #[test]
        fn tiers_hold_their_places_and_never_split_ties(
            scores in proptest::collection::vec(1i64..3000, 0..3000),
            distinct in proptest::bool::ANY,
        ) {
            let scores: Vec<i64> = if distinct {
                let set: std::collections::BTreeSet<i64> = scores.into_iter().collect();
                set.into_iter().collect()
            } else {
                scores
            };
            let config = SegmentsConfig::default();
            let assessments: Vec<Assessment> =
                scores.iter().map(|s| Assessment { score: *s, base: Segment::Steady }).collect();
            let population = Population::new(&config, &assessments);
            let n = scores.len();
            let at_least = |tier: Segment| {
                assessments.iter().filter(|a| a.segment(&population) >= tier).count()
            };
            let places = [(Segment::Superstar, n / 1000), (Segment::Top1, n / 100), (Segment::Top10, n / 10)];
            for (tier, places) in places {
                if distinct {
                    proptest::prop_assert_eq!(at_least(tier), places);
                } else {
                    proptest::prop_assert!(at_least(tier) >= places);
                }
            }
            let mut sorted = assessments.clone();
            sorted.sort_by_key(|a| a.score);
            for pair in sorted.windows(2) {
                let (lower, higher) = (&pair[0], &pair[1]);
                let (low, high) = (lower.segment(&population), higher.segment(&population));
                if lower.score == higher.score {
                    proptest::prop_assert_eq!(low, high);
                } else {
                    proptest::prop_assert!(low <= high);
                }
                proptest::prop_assert!(population.percentile(lower.score) <= population.percentile(higher.score));
            }
            if let Some(best) = sorted.last() {
                proptest::prop_assert!(population.percentile(best.score) <= 100);
                proptest::prop_assert_eq!(population.rank(best.score), Some(1));
            }
        }

        /// A target never exceeds the best month by more than the step, nor falls below the
        /// median or the minimum.
        #[test]
        fn targets_stay_near_the_members_own_months(
            history in proptest::collection::vec(0i64..100_000, 1..12),
            step in 0i64..=200,
            minimum in 1i64..500,
        ) {
            let config = SegmentsConfig {
                target: TargetConfig { step_percent: step, months: 12, minimum },
                ..SegmentsConfig::default()
            };
            let history: Vec<(i32, i64)> =
                history.iter().enumerate().map(|(i, p)| (i as i32 + 1, *p)).collect();
            let (engagement, _) = member(&config, &history, 0);
            let best = history.iter().map(|(_, p)| *p).max().unwrap();
            match personal_target(&config, &engagement, now()) {
                None => proptest::prop_assert_eq!(best, 0),
                Some(target) => {
                    let ceiling = (best * (100 + step) + 99) / 100;
                    proptest::prop_assert!(target.value <= ceiling.max(minimum));
                    proptest::prop_assert!(target.value >= target.median.max(minimum));
                    proptest::prop_assert!(target.median <= best);
                }
            }
        }
    }
}
