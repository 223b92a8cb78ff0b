//! The period close: which periods are due, and what a close decides from the summaries of
//! every participant (standings and the places that win, drawing entrants, the stick's
//! verdicts, the report's figures). Pure: the service reads the summaries, freezes this
//! outcome, and applies its effects exactly once.

use super::drawing::{Entrant, Prize};
use super::error::FieldErrors;
use super::program::Program;
use super::rules::{Fields, Period};
use super::standings::{Board, Grouping, Metric, Placed, Placing, Standings, Totals};
use super::stick::{Conduct, NonUse, Usage, Verdict, months_between};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// How long after a period ends its close runs by default: late CRM events land first.
pub const DEFAULT_DELAY_HOURS: i64 = 6;

/// The close's part of the program configuration: `leaderboards`, `drawings`, `non_use`, and
/// `close.delay_hours`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloseConfig {
    pub boards: Vec<Board>,
    pub drawings: Vec<DrawingConfig>,
    pub non_use: Option<NonUse>,
    pub delay_hours: i64,
}

/// A prize drawing among the participants who qualify over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrawingConfig {
    pub id: String,
    pub title: String,
    pub period: Period,
    pub metric: Metric,
    /// Entrants have at least this much of the metric.
    pub at_least: i64,
    /// One entry each, or one per unit of the metric.
    pub entries_per_unit: bool,
    pub roles: Option<Vec<String>>,
    pub prizes: Vec<Prize>,
}

impl CloseConfig {
    /// Parses the sections of a program document; errors carry the document's paths.
    pub(crate) fn parse(document: &Value, errors: &mut FieldErrors) -> CloseConfig {
        let section = |name: &str, errors: &mut FieldErrors| -> Vec<Value> {
            match document.get(name) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.clone(),
                Some(_) => {
                    errors.push(name, "must be a list");
                    Vec::new()
                }
            }
        };
        let boards: Vec<Board> = section("leaderboards", errors)
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Board::parse(b, &format!("leaderboards[{i}]"), errors))
            .collect();
        unique(boards.iter().map(|b| &b.id), "leaderboards", errors);
        let drawings: Vec<DrawingConfig> = section("drawings", errors)
            .iter()
            .enumerate()
            .filter_map(|(i, d)| DrawingConfig::parse(d, &format!("drawings[{i}]"), errors))
            .collect();
        unique(drawings.iter().map(|d| &d.id), "drawings", errors);
        let non_use = document
            .get("non_use")
            .filter(|v| !v.is_null())
            .and_then(|v| NonUse::parse(v, "non_use", errors));
        let delay_hours = match document.get("close").filter(|v| !v.is_null()) {
            None => DEFAULT_DELAY_HOURS,
            Some(close) => Fields::of(close, "close", &["delay_hours"], errors)
                .and_then(|f| f.int("delay_hours", 0..=24 * 14, false, errors))
                .unwrap_or(DEFAULT_DELAY_HOURS),
        };
        CloseConfig {
            boards,
            drawings,
            non_use,
            delay_hours,
        }
    }

    /// The kinds of period this program closes: months always (the report, the stick), and
    /// quarters and years when a board or drawing runs over them.
    pub fn kinds(&self) -> Vec<Period> {
        let mut kinds = vec![Period::Month];
        for period in self
            .boards
            .iter()
            .map(|b| b.period)
            .chain(self.drawings.iter().map(|d| d.period))
        {
            if !kinds.contains(&period) {
                kinds.push(period);
            }
        }
        kinds
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a String>, path: &str, errors: &mut FieldErrors) {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            errors.push(path, format!("the id {id:?} is used twice"));
        }
    }
}

impl DrawingConfig {
    fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<DrawingConfig> {
        let f = Fields::of(
            value,
            path,
            &[
                "id", "title", "period", "metric", "events", "at_least", "entries", "roles",
                "prizes",
            ],
            errors,
        )?;
        let id = f.id("id", errors);
        let title = f.text("title", false, errors);
        let period = f.period(
            "period",
            &[Period::Month, Period::Quarter, Period::Year],
            errors,
        );
        let metric = Metric::parse(&f, errors);
        let at_least = f.int("at_least", 1..=1_000_000_000, true, errors);
        let entries_per_unit = match f.get("entries").map(|v| v.as_str()) {
            None | Some(Some("one")) => false,
            Some(Some("per_unit")) => true,
            Some(_) => {
                errors.push(
                    f.at("entries"),
                    format!(
                        "must be \"one\" or \"per_unit\", got {}",
                        f.get("entries").expect("present")
                    ),
                );
                false
            }
        };
        let roles = f.texts("roles", errors);
        let mut prizes = Vec::new();
        let listed = f.list("prizes", errors);
        if listed.is_empty() {
            errors.push(f.at("prizes"), "is required: at least one prize");
        }
        for (i, prize) in listed.iter().enumerate() {
            let at = format!("{}[{i}]", f.at("prizes"));
            let Some(g) = Fields::of(prize, &at, &["prize", "points", "count"], errors) else {
                continue;
            };
            let name = g.text("prize", true, errors);
            let points = g.int("points", 0..=1_000_000, false, errors).unwrap_or(0);
            let count = g.int("count", 1..=100, false, errors).unwrap_or(1);
            if let Some(name) = name {
                for _ in 0..count {
                    prizes.push(Prize {
                        name: name.clone(),
                        points,
                    });
                }
            }
        }
        Some(DrawingConfig {
            title: title.unwrap_or_else(|| id.clone().unwrap_or_default()),
            id: id?,
            period: period?,
            metric: metric?,
            at_least: at_least?,
            entries_per_unit,
            roles,
            prizes,
        })
    }

    /// The entrants among `members`, one entry per participant (sorting is the drawing's).
    pub fn entrants(&self, members: &[Member]) -> Vec<Entrant> {
        members
            .iter()
            .filter(|m| {
                m.competes()
                    && self
                        .roles
                        .as_ref()
                        .is_none_or(|roles| roles.contains(&m.role))
            })
            .filter_map(|m| {
                let value = self.metric.of(&m.totals);
                (value >= self.at_least).then(|| Entrant {
                    participant: m.participant.clone(),
                    entries: if self.entries_per_unit {
                        value as u64
                    } else {
                        1
                    },
                })
            })
            .collect()
    }
}

/// A period to close: its kind, label (`2026-11`, `2026-Q4`, `2026`), months and dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosePeriod {
    pub kind: String,
    pub label: String,
    pub months: Vec<String>,
    /// First and last day (inclusive), in the program's time zone.
    pub starts_on: Date,
    pub ends_on: Date,
}

impl ClosePeriod {
    /// Parses `2026-11`, `2026-Q4` or `2026`.
    pub fn parse(label: &str) -> Result<ClosePeriod, String> {
        let invalid = || {
            format!("must be a month (2026-11), quarter (2026-Q4) or year (2026), got {label:?}")
        };
        let year = |y: &str| -> Result<i16, String> {
            match y.parse::<i16>() {
                Ok(y) if y.to_string().len() == 4 && (1970..=2999).contains(&y) => Ok(y),
                _ => Err(invalid()),
            }
        };
        let (kind, y, first, count) = match label.split_once('-') {
            None if label.len() == 4 => ("year", year(label)?, 1, 12),
            Some((y, q)) if q.len() == 2 && q.starts_with('Q') => {
                let q: i8 = q[1..].parse().map_err(|_| invalid())?;
                if !(1..=4).contains(&q) {
                    return Err(invalid());
                }
                ("quarter", year(y)?, (q - 1) * 3 + 1, 3)
            }
            Some((y, m)) if m.len() == 2 => {
                let m: i8 = m.parse().map_err(|_| invalid())?;
                if !(1..=12).contains(&m) {
                    return Err(invalid());
                }
                ("month", year(y)?, m, 1)
            }
            _ => return Err(invalid()),
        };
        let months = (first..first + count)
            .map(|m| format!("{y:04}-{m:02}"))
            .collect();
        let starts_on = jiff::civil::date(y, first, 1);
        let ends_on = starts_on
            .checked_add(count.months())
            .and_then(|d| d.checked_sub(1.day()))
            .map_err(|_| invalid())?;
        Ok(ClosePeriod {
            kind: kind.into(),
            label: label.into(),
            months,
            starts_on,
            ends_on,
        })
    }

    /// The last instant of the period in `zone`: the configuration in force then applies.
    pub fn last_instant(&self, zone: &TimeZone) -> Timestamp {
        self.end(zone) - SignedDuration::from_nanos(1)
    }

    /// The first instant after the period in `zone`.
    pub fn end(&self, zone: &TimeZone) -> Timestamp {
        midnight(
            self.ends_on.checked_add(1.day()).expect("dates in range"),
            zone,
        )
    }

    /// The period's first instant in `zone`.
    pub fn start(&self, zone: &TimeZone) -> Timestamp {
        midnight(self.starts_on, zone)
    }

    /// The latest completed period of `kind` whose close is due at `now` (`delay_hours`
    /// after its end in `zone`).
    pub fn latest_due(
        kind: Period,
        now: Timestamp,
        zone: &TimeZone,
        delay_hours: i64,
    ) -> ClosePeriod {
        let local = (now - SignedDuration::from_hours(delay_hours))
            .to_zoned(zone.clone())
            .date();
        let (y, m) = (local.year(), local.month());
        let label = match kind {
            Period::Quarter => {
                let q = (m - 1) / 3 + 1;
                if q == 1 {
                    format!("{:04}-Q4", y - 1)
                } else {
                    format!("{y:04}-Q{}", q - 1)
                }
            }
            Period::Year => format!("{:04}", y - 1),
            _ if m == 1 => format!("{:04}-12", y - 1),
            _ => format!("{y:04}-{:02}", m - 1),
        };
        ClosePeriod::parse(&label).expect("labels built from dates parse")
    }

    pub fn period(&self) -> Period {
        match self.kind.as_str() {
            "quarter" => Period::Quarter,
            "year" => Period::Year,
            _ => Period::Month,
        }
    }
}

fn midnight(date: Date, zone: &TimeZone) -> Timestamp {
    date.to_zoned(zone.clone())
        .expect("midnight exists or is moved by the zone")
        .timestamp()
}

/// One participant at close: where they belong, their standing, and their period's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub participant: String,
    pub role: String,
    pub distributor: String,
    pub location: String,
    pub region: Option<String>,
    pub status: String,
    pub enrolled_at: Timestamp,
    pub has_manager: bool,
    /// The segment the daily segmentation last assigned (`None` before its first run).
    pub segment: Option<String>,
    pub totals: Totals,
    /// Logins in the period (events, not days), for a `logins` non-use policy.
    pub logins: i64,
    pub strikes: i64,
    pub last_strike: Option<String>,
    pub balance: i64,
    pub pending: i64,
    /// Points reversals took back in the period, and bonuses credited in it.
    pub reversed: i64,
}

impl Placed for Member {
    fn id(&self) -> &str {
        &self.participant
    }
    fn group(&self, grouping: Grouping) -> Option<&str> {
        match grouping {
            Grouping::Distributor => Some(&self.distributor),
            Grouping::Location => Some(&self.location),
            Grouping::Region => self.region.as_deref(),
        }
    }
    fn role(&self) -> &str {
        &self.role
    }
    fn competes(&self) -> bool {
        self.status == "active"
    }
    fn totals(&self) -> &Totals {
        &self.totals
    }
}

/// A board's outcome: its standings (one per group for `within` boards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardOutcome {
    pub board: String,
    pub standings: Vec<Standings>,
}

/// A verdict of the stick on one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judged {
    pub participant: String,
    pub verdict: Verdict,
    pub has_manager: bool,
    /// The month's usage the verdict was on (login days or logins, as the policy counts).
    #[serde(default)]
    pub used: i64,
}

/// Program-wide figures of the period, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub enrolled: u64,
    pub active: u64,
    pub suspended: u64,
    pub terminated: u64,
    pub new: u64,
    pub login_day_distribution: Vec<u64>,
    pub issued: i64,
    pub reversed: i64,
    pub liability: i64,
    pub pending: i64,
    /// Enrolled participants per segment at close (those never segmented are `unsegmented`).
    #[serde(default)]
    pub segments: BTreeMap<String, u64>,
}

/// What a close decides before anything is written: the outcome it freezes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub boards: Vec<BoardOutcome>,
    /// Entrants per drawing id, sorted for the drawing.
    pub entrants: BTreeMap<String, Vec<Entrant>>,
    /// The stick's verdicts, by participant.
    pub judged: Vec<Judged>,
    /// Participants with no login in the month (judged or not): the list the program posts.
    pub zero_logins: Vec<String>,
    pub figures: Figures,
}

impl Decision {
    /// Keeps only the rows each board shows (placings are decided first, from every row): the
    /// rest need not be frozen, and at a million participants they would be most of it.
    pub fn keep_shown(&mut self, program: &Program) {
        for outcome in &mut self.boards {
            let show = program
                .close
                .boards
                .iter()
                .find(|b| b.id == outcome.board)
                .map_or(0, |b| b.show);
            for standings in &mut outcome.standings {
                let shown = standings.shown(show).len();
                standings.rows.truncate(shown);
            }
        }
    }
}

/// Decides a close over every enrolled participant of the program.
pub fn decide(program: &Program, period: &ClosePeriod, members: &[Member]) -> Decision {
    let config = &program.close;
    let kind = period.period();
    let boards = config
        .boards
        .iter()
        .filter(|b| b.period == kind)
        .map(|b| BoardOutcome {
            board: b.id.clone(),
            standings: b.standings(members),
        })
        .collect();
    let entrants = config
        .drawings
        .iter()
        .filter(|d| d.period == kind)
        .map(|d| {
            let mut entrants = d.entrants(members);
            entrants.sort_by(|a, b| a.participant.cmp(&b.participant));
            (d.id.clone(), entrants)
        })
        .collect();
    let end = period.end(&program.time_zone);
    let mut judged = Vec::new();
    let mut zero_logins = Vec::new();
    if kind == Period::Month {
        for m in members.iter().filter(|m| m.competes()) {
            if m.totals.login_days == 0 {
                zero_logins.push(m.participant.clone());
            }
            let Some(policy) = &config.non_use else {
                continue;
            };
            let conduct = Conduct {
                active: m.competes(),
                days_enrolled: end.duration_since(m.enrolled_at).as_hours() / 24,
                login_days: m.totals.login_days,
                logins: m.logins,
                strikes: m.strikes,
                last_strike_months_ago: m
                    .last_strike
                    .as_deref()
                    .and_then(|last| months_between(last, &period.label)),
            };
            if let Some(verdict) = policy.judge(&conduct) {
                judged.push(Judged {
                    participant: m.participant.clone(),
                    verdict,
                    has_manager: m.has_manager,
                    used: match policy.usage {
                        Usage::LoginDays => m.totals.login_days,
                        Usage::Logins => m.logins,
                    },
                });
            }
        }
    }
    judged.sort_by(|a, b| a.participant.cmp(&b.participant));
    zero_logins.sort();
    Decision {
        boards,
        entrants,
        judged,
        zero_logins,
        figures: figures(period, members, period.start(&program.time_zone), end),
    }
}

fn figures(period: &ClosePeriod, members: &[Member], start: Timestamp, end: Timestamp) -> Figures {
    let days = (period.ends_on - period.starts_on).get_days() as usize + 1;
    let mut f = Figures {
        login_day_distribution: vec![0; days + 1],
        ..Figures::default()
    };
    for m in members {
        match m.status.as_str() {
            "terminated" => {
                f.terminated += 1;
                continue;
            }
            "suspended" => f.suspended += 1,
            _ => {}
        }
        f.enrolled += 1;
        *f.segments
            .entry(
                m.segment
                    .clone()
                    .unwrap_or_else(|| "unsegmented".to_owned()),
            )
            .or_default() += 1;
        if m.enrolled_at >= start && m.enrolled_at < end {
            f.new += 1;
        }
        let active = m.totals.login_days > 0
            || m.totals.points != 0
            || m.totals.counts.values().any(|n| *n > 0);
        f.active += u64::from(active);
        let login_days = (m.totals.login_days.max(0) as usize).min(days);
        f.login_day_distribution[login_days] += 1;
        f.issued += m.totals.points;
        f.reversed += m.reversed;
        f.liability += m.balance;
        f.pending += m.pending;
    }
    f
}

/// The places of every board that carry awards, given reach times for the ties
/// (`Standings::ties_to_break`).
pub fn placings(
    program: &Program,
    outcome: &BoardOutcome,
    reached: &std::collections::HashMap<String, Timestamp>,
) -> Vec<(Option<String>, Vec<Placing>)> {
    let Some(board) = program.close.boards.iter().find(|b| b.id == outcome.board) else {
        return Vec::new();
    };
    outcome
        .standings
        .iter()
        .map(|s| (s.within.clone(), s.place(board.awards.len(), reached)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_with_their_months_and_dates() {
        let q = ClosePeriod::parse("2026-Q4").unwrap();
        assert_eq!(q.months, ["2026-10", "2026-11", "2026-12"]);
        assert_eq!(q.ends_on.to_string(), "2026-12-31");
        let feb = ClosePeriod::parse("2028-02").unwrap();
        assert_eq!(feb.ends_on.to_string(), "2028-02-29");
        assert_eq!(ClosePeriod::parse("2026").unwrap().months.len(), 12);
        for bad in [
            "2026-13",
            "2026-Q5",
            "26-11",
            "2026-1",
            "abcd",
            "2026-11-01",
            "",
        ] {
            assert!(ClosePeriod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_due_period_is_the_last_one_ended_before_the_delay() {
        let zone = TimeZone::get("Europe/Stockholm").unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // 2026-12-01 05:00 in Stockholm is 04:00 UTC: within the 6 hour delay.
        let early = ClosePeriod::latest_due(Period::Month, at("2026-12-01T04:00:00Z"), &zone, 6);
        assert_eq!(early.label, "2026-10");
        let later = ClosePeriod::latest_due(Period::Month, at("2026-12-01T06:00:00Z"), &zone, 6);
        assert_eq!(later.label, "2026-11");
        let q = ClosePeriod::latest_due(Period::Quarter, at("2027-01-02T00:00:00Z"), &zone, 6);
        assert_eq!(q.label, "2026-Q4");
        let y = ClosePeriod::latest_due(Period::Year, at("2027-01-02T00:00:00Z"), &zone, 6);
        assert_eq!(y.label, "2026");
        assert_eq!(
            later.end(&zone).to_string(),
            "2026-11-30T23:00:00Z",
            "the month ends at midnight in the program's zone"
        );
    }
}

#[cfg(test)]
mod decide_tests {
    use super::*;
    use crate::domain::stick::Sanction;

    fn program() -> Program {
        Program::parse(
            r#"
program: acme
name: ACME
time_zone: Europe/Stockholm
points: {portal.login: 5}
leaderboards:
  - {id: top, period: month, metric: points, awards: [{points: 500}, {points: 300}]}
  - {id: logins, period: quarter, metric: login_days}
drawings:
  - {id: draw, period: month, metric: login_days, at_least: 10, entries: per_unit, prizes: [{prize: Mug}]}
non_use: {notice_below: 4, grace_days: 10}
"#,
            1,
        )
        .unwrap()
    }

    fn member(id: &str, points: i64, login_days: i64, strikes: i64) -> Member {
        Member {
            participant: id.into(),
            role: "rep".into(),
            distributor: "d".into(),
            location: "l".into(),
            region: None,
            status: "active".into(),
            enrolled_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            has_manager: true,
            segment: None,
            totals: Totals {
                points,
                login_days,
                counts: BTreeMap::new(),
            },
            logins: login_days,
            strikes,
            last_strike: (strikes > 0).then(|| "2026-10".to_owned()),
            balance: points,
            pending: 0,
            reversed: 0,
        }
    }

    #[test]
    fn a_month_decides_its_boards_drawing_and_stick() {
        let program = program();
        let period = ClosePeriod::parse("2026-11").unwrap();
        let mut newcomer = member("new", 0, 0, 0);
        newcomer.enrolled_at = "2026-11-25T00:00:00Z".parse().unwrap();
        let mut suspended = member("gone", 900, 20, 2);
        suspended.status = "suspended".into();
        let members = [
            member("ann", 120, 12, 0),
            member("bo", 80, 2, 0),
            member("cy", 0, 0, 0),
            member("di", 0, 0, 1),
            newcomer,
            suspended,
        ];
        let decision = decide(&program, &period, &members);
        // Only the month's boards; the suspended rep is not ranked.
        assert_eq!(decision.boards.len(), 1);
        let rows: Vec<&str> = decision.boards[0].standings[0]
            .rows
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(rows, ["ann", "bo"]);
        assert_eq!(
            decision.entrants["draw"],
            [Entrant {
                participant: "ann".into(),
                entries: 12
            }]
        );
        let verdicts: Vec<(&str, Verdict)> = decision
            .judged
            .iter()
            .map(|j| (j.participant.as_str(), j.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("bo", Verdict::Notice),
                ("cy", Verdict::FirstStrike),
                ("di", Verdict::Sanctioned(Sanction::Suspend)),
            ]
        );
        assert_eq!(decision.zero_logins, ["cy", "di", "new"]);
        let f = &decision.figures;
        assert_eq!((f.enrolled, f.active, f.suspended, f.new), (6, 3, 1, 1));
        assert_eq!(f.issued, 1100);
        assert_eq!(f.login_day_distribution[0], 3);
        assert_eq!(f.login_day_distribution.len(), 31);
    }
}
