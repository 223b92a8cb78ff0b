//! The rules engine: what one event earns under one program version, given the participant
//! and the counters already stored. Pure and deterministic: the award function, the points
//! calculator and the backtest all call `evaluate`, so they cannot disagree.
//!
//! Every limit (cap, budget, once, milestone, streak) reads a stored counter and writes it back
//! with a guard, so a concurrent award that moved the counter makes the write fail and the
//! event is decided again: limits hold under any concurrency, not only sequentially.

use super::envelope::{Event, parse_rfc3339};
use super::period::Periods;
use super::program::{MAX_POINTS_PER_EVENT, Program};
use super::rules::{
    Amount, Budget, Campaign, Cap, Expiry, Limit, Match, Measured, Period, Predicate, Rounding,
    Rule, Trait, Trigger, decimal_of,
};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The participant as rules see them.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub role: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub distributor: Option<&'a str>,
    pub location: Option<&'a str>,
    pub region: Option<&'a str>,
    pub status: &'a str,
    pub enrolled_at: Timestamp,
}

/// Which stored item a counter lives on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// The participant's profile item (lifetime, quarter and year counters, wallet lots).
    #[serde(rename = "P")]
    Profile,
    /// A participant-month item (`2026-11`): day, week and month counters.
    #[serde(rename = "M")]
    Month(String),
    /// A program-wide budget shard: `{budget}#{period}#{shard}`.
    #[serde(rename = "B")]
    Budget(String),
}

/// Counters as stored, by item. Missing counters are zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub profile: HashMap<String, i64>,
    pub months: HashMap<String, HashMap<String, i64>>,
    pub budgets: HashMap<String, i64>,
}

impl Counters {
    pub fn get(&self, scope: &Scope, name: &str) -> i64 {
        let value = match scope {
            Scope::Profile => self.profile.get(name),
            Scope::Month(m) => self.months.get(m).and_then(|c| c.get(name)),
            Scope::Budget(b) => self.budgets.get(b).filter(|_| name == BUDGET_SPENT),
        };
        value.copied().unwrap_or(0)
    }

    /// Applies writes as the store would once their guards held.
    pub fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            let slot = match &write.scope {
                Scope::Profile => self.profile.entry(write.name.clone()).or_default(),
                Scope::Month(m) => self
                    .months
                    .entry(m.clone())
                    .or_default()
                    .entry(write.name.clone())
                    .or_default(),
                Scope::Budget(b) => self.budgets.entry(b.clone()).or_default(),
            };
            match write.op {
                Op::Add(by) => *slot += by,
                Op::Set(value) => *slot = value,
            }
        }
    }
}

/// The counter a budget shard item holds.
pub const BUDGET_SPENT: &str = "spent";

/// The stored items an event's evaluation may read, beyond the participant's profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub months: BTreeSet<String>,
    pub budgets: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Add(i64),
    Set(i64),
}

/// The condition a write is made under, on the counter's stored value (absent = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Guard {
    Free,
    AtMost(i64),
    AtLeast(i64),
    Equals(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    pub scope: Scope,
    pub name: String,
    pub op: Op,
    pub guard: Guard,
}

/// An addition kept on the ledger record, so a reversal can take back exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    #[serde(rename = "at")]
    pub scope: Scope,
    pub name: String,
    pub by: i64,
}

/// A factor that shaped a rule's points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// `quality`, `incomplete` or `campaign:{id}@{version}`.
    pub source: String,
    pub value: Decimal,
}

/// The limit that cut a rule's points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limited {
    /// `cap` or `budget:{id}`.
    pub by: String,
    pub per: Period,
    /// `points` or `times`.
    pub unit: &'static str,
    pub limit: i64,
    /// What was left before this event.
    pub room: i64,
}

/// One matching rule's part of an event's points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub rule: String,
    pub version: u32,
    pub points: i64,
    /// After factors and rounding, before caps and budgets.
    pub uncapped: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<Factor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<Limited>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub points: i64,
    pub lines: Vec<Line>,
    #[serde(skip)]
    pub writes: Vec<Write>,
    /// Points that wait before they can be spent, and the date they are deposited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
}

/// The built-in rule behind an administrator's adjustment.
pub const ADJUSTMENT_RULE: &str = "adjustment";

impl Program {
    /// Items an event may need read before it is evaluated (a superset is harmless).
    pub fn reads(&self, event: &Event, periods: &Periods) -> Reads {
        let mut reads = Reads::default();
        for rule in self.rules_for(&event.event_type) {
            for cap in &rule.caps {
                if let (Scope::Month(m), _) = counter(&rule.id, "p", cap.per, periods) {
                    reads.months.insert(m);
                }
            }
            for budget in self.budgets_of(&rule.id) {
                for shard in 0..budget.shards {
                    reads.budgets.insert(budget_shard(budget, periods, shard));
                }
            }
        }
        reads
    }

    pub fn rules_for<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.by_type
            .get(event_type)
            .into_iter()
            .flatten()
            .map(|&i| &self.rules[i])
    }

    fn budgets_of<'a>(&'a self, rule: &'a str) -> impl Iterator<Item = &'a Budget> + 'a {
        self.budgets
            .iter()
            .filter(move |b| b.rules.as_ref().is_none_or(|r| r.iter().any(|r| r == rule)))
    }

    /// What `event` earns for `subject` given `counters`, and the guarded writes that
    /// record it.
    pub fn evaluate(
        &self,
        event: &Event,
        received_at: Timestamp,
        periods: &Periods,
        subject: &Subject,
        counters: &Counters,
    ) -> Evaluation {
        let mut tally = Tally::new(counters);
        let mut lines = Vec::new();
        if let Some(adjustment) = adjustment_points(event) {
            lines.push(Line {
                rule: ADJUSTMENT_RULE.into(),
                version: 1,
                points: adjustment,
                uncapped: adjustment,
                factors: Vec::new(),
                limited_by: None,
                note: None,
            });
        }
        let facts = Facts::new(event, received_at, subject);
        for rule in self.rules_for(&event.event_type) {
            if let Some(line) = self.apply_rule(rule, &facts, periods, &mut tally) {
                lines.push(line);
            }
        }
        let points: i64 = lines.iter().map(|l| l.points).sum();
        let mut evaluation = Evaluation {
            points,
            lines,
            writes: Vec::new(),
            pending_until: None,
            expires_on: None,
        };
        self.wallet_lots(&mut evaluation, periods, &mut tally);
        evaluation.writes = tally.into_writes();
        evaluation
    }

    fn apply_rule(
        &self,
        rule: &Rule,
        facts: &Facts,
        periods: &Periods,
        tally: &mut Tally,
    ) -> Option<Line> {
        let at = facts.event.occurred_at;
        if rule.from.is_some_and(|f| at < f) || rule.until.is_some_and(|u| at >= u) {
            return None;
        }
        if !matches(&rule.when, facts) {
            return None;
        }
        let mut line = Line {
            rule: rule.id.clone(),
            version: rule.version,
            points: 0,
            uncapped: 0,
            factors: Vec::new(),
            limited_by: None,
            note: None,
        };
        match &rule.trigger {
            Trigger::Every => {}
            Trigger::Milestone(at) => {
                let name = format!("m:{}", rule.id);
                let count = tally.value(&Scope::Profile, &name) + 1;
                tally.add(Scope::Profile, name, 1, None, true);
                if !at.contains(&count) {
                    let next = at.iter().find(|&&n| n > count);
                    line.note = Some(match next {
                        Some(n) => format!("match {count}; the next milestone is at {n}"),
                        None => format!("match {count}; every milestone is reached"),
                    });
                    return Some(line);
                }
                line.note = Some(format!("milestone {count}"));
            }
            Trigger::Streak { per, length } => {
                let index = period_index(*per, periods);
                let (last_name, run_name) = (format!("s:{}", rule.id), format!("r:{}", rule.id));
                let last = tally.value(&Scope::Profile, &last_name);
                let run = tally.value(&Scope::Profile, &run_name);
                let new_run = match index - last {
                    0 => None,
                    1 => Some(run + 1),
                    d if d > 1 || last == 0 => Some(1),
                    _ => None, // an event from before the streak's last period
                };
                let Some(new_run) = new_run else {
                    line.note = Some(format!("{} already counted in the streak", per.name()));
                    return Some(line);
                };
                tally.set(Scope::Profile, last_name, index);
                tally.set(Scope::Profile, run_name, new_run);
                if new_run % length != 0 {
                    line.note = Some(format!("streak {new_run} of {length}"));
                    return Some(line);
                }
                line.note = Some(format!("streak of {new_run} {}s", per.name()));
            }
        }
        let mut amount = match &rule.amount {
            Amount::Fixed(p) => Decimal::from(*p),
            Amount::Proportional {
                attribute,
                every,
                points,
            } => match facts
                .event
                .raw_attributes
                .get(attribute)
                .and_then(decimal_of)
            {
                Some(value) => (value / every)
                    .checked_mul(*points)
                    .unwrap_or(Decimal::from(MAX_POINTS_PER_EVENT)),
                None => {
                    line.note = Some(format!("attribute {attribute} is missing or not a number"));
                    return Some(line);
                }
            },
        };
        if let Some(quality) = &rule.quality {
            let recorded = match quality.measured_from {
                Measured::Received => facts.received_at,
                Measured::RecordedAt => facts.recorded_at,
            };
            let delay = (recorded.as_second() - facts.event.occurred_at.as_second()).max(0);
            let factor = quality
                .factors
                .iter()
                .find(|(days, _)| delay <= days * 86_400)
                .map_or(quality.otherwise, |(_, f)| *f);
            if factor != Decimal::ONE {
                line.factors.push(Factor {
                    source: "quality".into(),
                    value: factor,
                });
                amount *= factor;
            }
            if quality
                .require
                .iter()
                .any(|a| attribute_absent(facts.event.raw_attributes.get(a)))
            {
                line.factors.push(Factor {
                    source: "incomplete".into(),
                    value: quality.incomplete,
                });
                amount *= quality.incomplete;
            }
        }
        if amount > Decimal::ZERO {
            for campaign in self
                .campaigns
                .iter()
                .filter(|c| applies(c, &rule.id, facts))
            {
                line.factors.push(Factor {
                    source: format!("campaign:{}@{}", campaign.id, campaign.version),
                    value: campaign.multiplier,
                });
                amount = amount
                    .checked_mul(campaign.multiplier)
                    .unwrap_or(Decimal::from(MAX_POINTS_PER_EVENT));
            }
        }
        let mut points = round(amount, rule.rounding);
        line.uncapped = points;
        for cap in &rule.caps {
            if points == 0 {
                break;
            }
            let (scope, name) = counter(&rule.id, cap_kind(cap), cap.per, periods);
            let used = tally.value(&scope, &name).abs();
            let (limit, unit) = match cap.limit {
                Limit::Points(l) => (l, "points"),
                Limit::Times(l) => (l, "times"),
            };
            let room = (limit - used).max(0);
            let allowed = match cap.limit {
                Limit::Points(_) => points.signum() * points.abs().min(room),
                Limit::Times(_) if room >= 1 => points,
                Limit::Times(_) => 0,
            };
            if allowed != points {
                line.limited_by = Some(Limited {
                    by: "cap".into(),
                    per: cap.per,
                    unit,
                    limit,
                    room,
                });
                points = allowed;
            }
        }
        if points > 0 {
            for budget in self.budgets_of(&rule.id) {
                let (shard, room) = tally.pick_shard(budget, periods, facts.event);
                if room < points {
                    line.limited_by = Some(Limited {
                        by: format!("budget:{}", budget.id),
                        per: budget.per,
                        unit: "points",
                        limit: budget.points,
                        room,
                    });
                    points = room;
                }
                if points > 0 {
                    tally.add(
                        Scope::Budget(shard.0),
                        BUDGET_SPENT.into(),
                        points,
                        Some(shard.1),
                        false,
                    );
                }
            }
        }
        if points != 0 {
            for cap in &rule.caps {
                let (scope, name) = counter(&rule.id, cap_kind(cap), cap.per, periods);
                let (by, limit) = match cap.limit {
                    Limit::Points(l) => (points, l),
                    Limit::Times(l) => (1, l),
                };
                tally.add(scope, name, by, Some(limit), false);
            }
        }
        line.points = points;
        Some(line)
    }

    /// Pending and expiry lots for what the event earned, on the profile.
    fn wallet_lots(&self, evaluation: &mut Evaluation, periods: &Periods, tally: &mut Tally) {
        let earned = evaluation.points.max(0);
        if earned == 0 {
            return;
        }
        let date: Date = periods.day.parse().expect("day labels are dates");
        if let Some(pending) = &self.wallet.pending {
            let locked: i64 = evaluation
                .lines
                .iter()
                .filter(|l| {
                    pending.rules.as_ref().is_none_or(|r| r.contains(&l.rule))
                        && l.rule != ADJUSTMENT_RULE
                })
                .map(|l| l.points)
                .sum::<i64>()
                .clamp(0, earned);
            if locked > 0 {
                let due = pending_due(date, pending.lock_days, pending.post_on);
                tally.add(
                    Scope::Profile,
                    format!("{PENDING_LOT}{due}"),
                    locked,
                    None,
                    false,
                );
                evaluation.pending_until = Some(due.to_string());
            }
        }
        if let Some(expiry) = &self.wallet.expiry {
            let on = expiry_date(date, expiry);
            tally.add(
                Scope::Profile,
                format!("{EXPIRY_LOT}{on}"),
                earned,
                None,
                false,
            );
            evaluation.expires_on = Some(on.to_string());
        }
    }
}

/// Profile counters of points waiting until a date (`pend@2026-12-07`).
pub const PENDING_LOT: &str = "pend@";
/// Profile counters of points expiring on a date (`exp@2028-11-30`).
pub const EXPIRY_LOT: &str = "exp@";

/// The deposit date of points earned on `earned`: after the lock, on the posting weekday.
pub fn pending_due(earned: Date, lock_days: i64, post_on: Option<i8>) -> Date {
    let unlocked = earned
        .checked_add(jiff::Span::new().days(lock_days))
        .unwrap_or(earned);
    match post_on {
        Some(weekday) => {
            let ahead = (i64::from(weekday) - i64::from(unlocked.weekday().to_monday_one_offset()))
                .rem_euclid(7);
            unlocked
                .checked_add(jiff::Span::new().days(ahead))
                .unwrap_or(unlocked)
        }
        None => unlocked,
    }
}

pub fn expiry_date(earned: Date, expiry: &Expiry) -> Date {
    match expiry {
        Expiry::Rolling { after_months } => earned
            .first_of_month()
            .checked_add(jiff::Span::new().months(*after_months))
            .map(|d| d.last_of_month())
            .unwrap_or(earned),
        Expiry::Fixed {
            month,
            day,
            after_years,
        } => Date::new(earned.year() + *after_years as i16, *month, *day)
            // 29 February in a year without one: the last day of February.
            .or_else(|_| Date::new(earned.year() + *after_years as i16, *month, 28))
            .unwrap_or(earned),
    }
}

/// Builds the writes of one evaluation: several rules may touch the same counter (two rules
/// in one budget), and the store takes one write per counter.
struct Tally<'a> {
    stored: &'a Counters,
    entries: BTreeMap<(Scope, String), Entry>,
}

#[derive(Default)]
struct Entry {
    seen: i64,
    add: i64,
    set: Option<i64>,
    limit: Option<i64>,
    exact: bool,
}

impl<'a> Tally<'a> {
    fn new(stored: &'a Counters) -> Self {
        Self {
            stored,
            entries: BTreeMap::new(),
        }
    }

    /// The counter as this evaluation leaves it so far.
    fn value(&self, scope: &Scope, name: &str) -> i64 {
        match self.entries.get(&(scope.clone(), name.to_owned())) {
            Some(e) => e.set.unwrap_or(e.seen) + e.add,
            None => self.stored.get(scope, name),
        }
    }

    fn entry(&mut self, scope: Scope, name: String) -> &mut Entry {
        let seen = self.stored.get(&scope, &name);
        self.entries.entry((scope, name)).or_insert_with(|| Entry {
            seen,
            ..Entry::default()
        })
    }

    fn add(&mut self, scope: Scope, name: String, by: i64, limit: Option<i64>, exact: bool) {
        let entry = self.entry(scope, name);
        entry.add += by;
        entry.limit = limit.or(entry.limit);
        entry.exact |= exact;
    }

    fn set(&mut self, scope: Scope, name: String, value: i64) {
        let entry = self.entry(scope, name);
        entry.set = Some(value);
        entry.exact = true;
    }

    /// The shard of `budget` this event draws on, and its room: the participant's own shard
    /// when it has room, else the roomiest (so a budget is used up before anyone is refused).
    fn pick_shard(
        &self,
        budget: &Budget,
        periods: &Periods,
        event: &Event,
    ) -> ((String, i64), i64) {
        let shards = budget.shards;
        let room = |shard: u16| {
            let limit = shard_limit(budget, shard);
            let key = budget_shard(budget, periods, shard);
            let used = self.value(&Scope::Budget(key.clone()), BUDGET_SPENT);
            ((key, limit), (limit - used).max(0))
        };
        let own = (fnv1a(event.participant.as_bytes()) % u64::from(shards)) as u16;
        let preferred = room(own);
        if preferred.1 > 0 {
            return preferred;
        }
        (0..shards)
            .map(room)
            .max_by_key(|(_, room)| *room)
            .expect("at least one shard")
    }

    fn into_writes(self) -> Vec<Write> {
        self.entries
            .into_iter()
            .filter(|(_, e)| e.add != 0 || e.set.is_some())
            .map(|((scope, name), e)| {
                let guard = if e.exact {
                    Guard::Equals(e.seen)
                } else {
                    match e.limit {
                        Some(limit) if e.add > 0 => Guard::AtMost(limit - e.add),
                        Some(limit) => Guard::AtLeast(-limit - e.add),
                        None => Guard::Free,
                    }
                };
                let op = match e.set {
                    Some(value) => Op::Set(value + e.add),
                    None => Op::Add(e.add),
                };
                Write {
                    scope,
                    name,
                    op,
                    guard,
                }
            })
            .collect()
    }
}

fn shard_limit(budget: &Budget, shard: u16) -> i64 {
    let shards = i64::from(budget.shards);
    budget.points / shards + i64::from(i64::from(shard) < budget.points % shards)
}

/// The item key of one budget shard for the event's period.
pub fn budget_shard(budget: &Budget, periods: &Periods, shard: u16) -> String {
    let period = match budget.per {
        Period::Month => periods.month.as_str(),
        Period::Quarter => periods.quarter.as_str(),
        Period::Year => periods.year.as_str(),
        _ => "all",
    };
    format!("{}#{period}#{shard:02}", budget.id)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cap_kind(cap: &Cap) -> &'static str {
    match cap.limit {
        Limit::Points(_) => "p",
        Limit::Times(_) => "t",
    }
}

/// Where the counter of `kind` (`p` points, `t` times) for `rule` over `per` lives.
fn counter(rule: &str, kind: &str, per: Period, periods: &Periods) -> (Scope, String) {
    match per {
        Period::Day => (
            Scope::Month(periods.month.clone()),
            format!("{kind}:{rule}@{:02}", periods.day_of_month),
        ),
        Period::Week => (
            Scope::Month(periods.week_start_month.clone()),
            format!("{kind}:{rule}@{}", periods.week),
        ),
        Period::Month => (
            Scope::Month(periods.month.clone()),
            format!("{kind}:{rule}"),
        ),
        Period::Quarter => (Scope::Profile, format!("{kind}:{rule}@{}", periods.quarter)),
        Period::Year => (Scope::Profile, format!("{kind}:{rule}@{}", periods.year)),
        Period::Lifetime => (Scope::Profile, format!("{kind}:{rule}")),
    }
}

/// A number that grows by one from each period to the next (for streaks).
fn period_index(per: Period, periods: &Periods) -> i64 {
    match per {
        Period::Week => (periods.day_number - i64::from(periods.weekday - 1)).div_euclid(7) + 1,
        Period::Month => {
            let year: i64 = periods.year.parse().unwrap_or(0);
            let month: i64 = periods.month[5..].parse().unwrap_or(1);
            year * 12 + month
        }
        _ => periods.day_number,
    }
}

fn round(amount: Decimal, rounding: Rounding) -> i64 {
    let strategy = match rounding {
        Rounding::Down => RoundingStrategy::ToZero,
        Rounding::Up => RoundingStrategy::AwayFromZero,
        Rounding::Nearest => RoundingStrategy::MidpointAwayFromZero,
        Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
    };
    let max = Decimal::from(MAX_POINTS_PER_EVENT);
    let rounded = amount.round_dp_with_strategy(0, strategy).clamp(-max, max);
    i64::try_from(rounded).unwrap_or(0)
}

fn adjustment_points(event: &Event) -> Option<i64> {
    match &event.attributes {
        super::envelope::Attributes::Adjustment { points, .. } => Some(*points),
        _ => None,
    }
}

/// What matching needs of an event, computed once for all rules.
struct Facts<'a> {
    event: &'a Event,
    subject: &'a Subject<'a>,
    received_at: Timestamp,
    /// When the source system recorded the activity (`attributes.recorded_at`), else received.
    recorded_at: Timestamp,
    tenure_days: i64,
}

impl<'a> Facts<'a> {
    fn new(event: &'a Event, received_at: Timestamp, subject: &'a Subject<'a>) -> Self {
        let recorded_at = event
            .raw_attributes
            .get("recorded_at")
            .and_then(Value::as_str)
            .and_then(|s| parse_rfc3339(s).ok())
            .unwrap_or(received_at);
        Self {
            event,
            subject,
            received_at,
            recorded_at,
            tenure_days: (event.occurred_at.as_second() - subject.enrolled_at.as_second())
                .div_euclid(86_400),
        }
    }

    fn late_days(&self) -> i64 {
        (self.recorded_at.as_second() - self.event.occurred_at.as_second()).max(0) / 86_400
    }
}

fn matches(when: &Match, facts: &Facts) -> bool {
    when.attributes.iter().all(|(name, predicate)| {
        holds(
            predicate,
            facts
                .event
                .raw_attributes
                .get(name)
                .filter(|v| !v.is_null()),
        )
    }) && traits_hold(&when.participant, facts)
        && when
            .late_days
            .as_ref()
            .is_none_or(|p| holds(p, Some(&Value::from(facts.late_days()))))
}

fn traits_hold(traits: &[(Trait, Predicate)], facts: &Facts) -> bool {
    let s = facts.subject;
    traits.iter().all(|(t, predicate)| {
        let text = |v: Option<&str>| v.map(|v| Value::String(v.to_owned()));
        let value = match t {
            Trait::Role => text(s.role),
            Trait::Segment => text(s.segment),
            Trait::Tier => text(s.tier),
            Trait::Distributor => text(s.distributor),
            Trait::Location => text(s.location),
            Trait::Region => text(s.region),
            Trait::Status => text(Some(s.status)),
            Trait::TenureDays => Some(Value::from(facts.tenure_days)),
        };
        holds(predicate, value.as_ref())
    })
}

fn applies(campaign: &Campaign, rule: &str, facts: &Facts) -> bool {
    let at = facts.event.occurred_at;
    campaign
        .rules
        .as_ref()
        .is_none_or(|r| r.iter().any(|r| r == rule))
        && campaign.from.is_none_or(|f| at >= f)
        && campaign.until.is_none_or(|u| at < u)
        && campaign.enrolment_days.is_none_or(|(from, until)| {
            facts.tenure_days >= from && until.is_none_or(|u| facts.tenure_days < u)
        })
        && traits_hold(&campaign.participant, facts)
}

fn attribute_absent(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

/// Whether `value` (absent: `None`) satisfies `predicate`. Numbers compare as exact
/// decimals, so `"48000.00"` equals `48000`.
pub fn holds(predicate: &Predicate, value: Option<&Value>) -> bool {
    let same = |want: &Value, got: &Value| match (decimal_of(want), decimal_of(got)) {
        (Some(a), Some(b)) if !want.is_string() || !got.is_string() => a == b,
        _ => want == got,
    };
    match predicate {
        Predicate::Exists(wanted) => *wanted != attribute_absent(value),
        Predicate::Equals(want) => value.is_some_and(|got| same(want, got)),
        Predicate::In(options) => value.is_some_and(|got| options.iter().any(|o| same(o, got))),
        Predicate::Range { gt, gte, lt, lte } => {
            let Some(v) = value.and_then(decimal_of) else {
                return false;
            };
            gt.is_none_or(|b| v > b)
                && gte.is_none_or(|b| v >= b)
                && lt.is_none_or(|b| v < b)
                && lte.is_none_or(|b| v <= b)
        }
    }
}
