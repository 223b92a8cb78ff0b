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
    Amount, Budget, Campaign, Cap, Expiry, Limit, MAX_CAPS, Match, Measured, Period, Predicate,
    Rounding, Rule, Trait, Trigger, decimal_of,
};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};

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
    /// The login days (1..=31) of each month item read: a login on a new day adds to `days`.
    pub login_days: HashMap<String, BTreeSet<u8>>,
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
/// The ledger's rule id of a period-close bonus (`points.bonus`).
pub const BONUS_RULE: &str = "bonus";

impl Program {
    /// Items an event may need read before it is evaluated (a superset is harmless).
    pub fn reads(&self, event: &Event, periods: &Periods) -> Reads {
        let mut reads = Reads::default();
        // A login needs its month's login days, to know whether it starts a new one.
        if event.event_type == super::envelope::LOGIN_TYPE {
            reads.months.insert(periods.month.clone());
        }
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
        let mut tally = Tally::new(counters, periods);
        let rules = self
            .by_type
            .get(&event.event_type)
            .map_or(&[][..], Vec::as_slice);
        let mut lines = Vec::with_capacity(rules.len() + 1);
        if let Some(adjustment) = adjustment_points(event) {
            let rule = if event.event_type == super::envelope::BONUS_TYPE {
                BONUS_RULE
            } else {
                ADJUSTMENT_RULE
            };
            lines.push(Line {
                rule: rule.into(),
                version: 1,
                points: adjustment,
                uncapped: adjustment,
                factors: Vec::new(),
                limited_by: None,
                note: None,
            });
        }
        let facts = Facts::new(event, received_at, subject);
        for rule in rules.iter().map(|&i| &self.rules[i]) {
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
                let count_slot = tally.slot(Scope::Profile, format!("m:{}", rule.id));
                let paid_slot = tally.slot(Scope::Profile, format!("mp:{}", rule.id));
                let count = tally.value(count_slot) + 1;
                tally.add(count_slot, 1, None, true);
                // The first milestone not yet paid: counting paid milestones (not matching the
                // count exactly) means a reversed event that earned none cannot make a later
                // event earn a milestone again, and a reversed milestone is earned again.
                let paid = tally.value(paid_slot);
                let next = usize::try_from(paid).ok().and_then(|paid| at.get(paid));
                match next {
                    Some(&milestone) if count >= milestone => {
                        tally.add(paid_slot, 1, None, true);
                        line.note = Some(format!("milestone {milestone}"));
                    }
                    _ => {
                        line.note = Some(match next {
                            Some(n) => format!("match {count}; the next milestone is at {n}"),
                            None => format!("match {count}; every milestone is reached"),
                        });
                        return Some(line);
                    }
                }
            }
            Trigger::Streak { per, length } => {
                let index = period_index(*per, periods);
                let last_slot = tally.slot(Scope::Profile, format!("s:{}", rule.id));
                let run_slot = tally.slot(Scope::Profile, format!("r:{}", rule.id));
                let (last, run) = (tally.value(last_slot), tally.value(run_slot));
                let new_run = match index - last {
                    0 => {
                        line.note = Some(format!("{} already counted in the streak", per.name()));
                        return Some(line);
                    }
                    1 => run + 1,
                    d if d > 1 || last == 0 => 1,
                    _ => {
                        line.note = Some(format!("earlier than the streak's last {}", per.name()));
                        return Some(line);
                    }
                };
                tally.set(last_slot, index);
                tally.set(run_slot, new_run);
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
                Some(value) => {
                    let units = value.checked_div(*every).unwrap_or(saturated(value));
                    times(units, *points)
                }
                None => {
                    line.note = Some(format!("attribute {attribute} is missing or not a number"));
                    return Some(line);
                }
            },
        };
        if let Some(quality) = &rule.quality {
            let recorded = match quality.measured_from {
                Measured::Received => facts.received_at,
                Measured::RecordedAt => facts.recorded_at(),
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
                amount = times(amount, factor);
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
                amount = times(amount, quality.incomplete);
            }
        }
        if amount > Decimal::ZERO {
            for campaign in self
                .campaigns
                .iter()
                .filter(|c| applies(c, &rule.id, facts))
            {
                line.factors.push(Factor {
                    source: campaign.source.clone(),
                    value: campaign.multiplier,
                });
                amount = times(amount, campaign.multiplier);
            }
        }
        let mut points = round(amount, rule.rounding);
        line.uncapped = points;
        // Each cap's counter, in cap order: found once, written below if anything is awarded.
        let mut cap_slots = [0; MAX_CAPS];
        for (cap, cap_slot) in rule.caps.iter().zip(&mut cap_slots) {
            if points == 0 {
                break;
            }
            let (scope, name) = counter(&rule.id, cap_kind(cap, points), cap.per, periods);
            let slot = tally.slot(scope, name);
            let limit = cap.limit.value();
            let room = (limit - tally.value(slot).abs()).max(0);
            *cap_slot = slot;
            let allowed = match cap.limit {
                Limit::Points(_) => points.signum() * points.abs().min(room),
                Limit::Times(_) if room >= 1 => points,
                Limit::Times(_) => 0,
            };
            if allowed != points {
                line.limited_by = Some(Limited {
                    by: "cap".into(),
                    per: cap.per,
                    unit: cap.limit.unit(),
                    limit,
                    room,
                });
                points = allowed;
            }
        }
        if points > 0 {
            let mut shards = Vec::new();
            for budget in self.budgets_of(&rule.id) {
                let (shard, limit, room) = tally.pick_shard(budget, periods, facts.event, points);
                shards.push((shard, limit));
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
            }
            // The award is final only now: each budget pays what the rule awards, no more (a
            // shard that had room for more has room for this).
            if points > 0 {
                for (shard, limit) in shards {
                    tally.add(shard, points, Some(limit), false);
                }
            }
        }
        if points != 0 {
            for (cap, &slot) in rule.caps.iter().zip(&cap_slots) {
                let by = match cap.limit {
                    Limit::Points(_) => points,
                    Limit::Times(_) => 1,
                };
                tally.add(slot, by, Some(cap.limit.value()), false);
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
        let date = local_date(periods);
        if let Some(pending) = &self.wallet.pending {
            let locked: i64 = evaluation
                .lines
                .iter()
                .filter(|l| {
                    pending.rules.as_ref().is_none_or(|r| r.contains(&l.rule))
                        && l.rule != ADJUSTMENT_RULE
                        && l.rule != BONUS_RULE
                })
                .map(|l| l.points)
                .sum::<i64>()
                .clamp(0, earned);
            if locked > 0 {
                let due = date_label(pending_due(date, pending.lock_days, pending.post_on));
                tally.add_unguarded(Scope::Profile, joined(&[PENDING_LOT, &due]), locked);
                evaluation.pending_until = Some(due);
            }
        }
        if let Some(expiry) = &self.wallet.expiry {
            let on = date_label(expiry_date(date, expiry));
            tally.add_unguarded(Scope::Profile, joined(&[EXPIRY_LOT, &on]), earned);
            evaluation.expires_on = Some(on);
        }
    }
}

/// Profile counters of points waiting until a date (`pend@2026-12-07`).
pub const PENDING_LOT: &str = "pend@";
/// Profile counters of points expiring on a date (`exp@2028-11-30`).
pub const EXPIRY_LOT: &str = "exp@";

/// The deposit date of points earned on `earned`: after the lock, on the posting weekday.
pub fn pending_due(earned: Date, lock_days: i64, post_on: Option<i8>) -> Date {
    // The weekday the lock ends on, then the days on to the posting weekday: one addition.
    let unlocked_weekday = (i64::from(earned.weekday().to_monday_zero_offset()) + lock_days) % 7;
    let ahead = post_on.map_or(0, |weekday| {
        (i64::from(weekday) - 1 - unlocked_weekday).rem_euclid(7)
    });
    earned
        .checked_add(jiff::Span::new().days(lock_days + ahead))
        .unwrap_or(earned)
}

pub fn expiry_date(earned: Date, expiry: &Expiry) -> Date {
    match expiry {
        Expiry::Rolling { after_months } => {
            // On a count of months: what a span of months does, without a span's cost.
            let months =
                i64::from(earned.year()) * 12 + i64::from(earned.month()) - 1 + after_months;
            i16::try_from(months.div_euclid(12))
                .ok()
                .and_then(|year| Date::new(year, (months.rem_euclid(12) + 1) as i8, 1).ok())
                .map_or(earned, Date::last_of_month)
        }
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

/// The event's date in the program's time zone, from its day label (`2026-11-04`): cheaper
/// than parsing the label as a date, on every award.
fn local_date(periods: &Periods) -> Date {
    let (year, month_day) = periods.day.split_at(periods.day.len() - 6);
    let number = |text: &str| text.parse::<i16>().ok();
    number(year)
        .zip(number(&month_day[1..3]).zip(number(&month_day[4..])))
        .and_then(|(year, (month, day))| Date::new(year, month as i8, day as i8).ok())
        .expect("day labels are dates")
}

/// A date as jiff prints it (`2026-11-04`), written directly: lots are named on every award.
fn date_label(date: Date) -> String {
    if !(0..=9999).contains(&date.year()) {
        return date.to_string();
    }
    let (year, month, day) = (date.year() as u16, date.month() as u16, date.day() as u16);
    let digit = |n: u16| b'0' + (n % 10) as u8;
    let label = [
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ];
    String::from_utf8(label.to_vec()).expect("ASCII digits")
}

/// Builds the writes of one evaluation: several rules may touch the same counter (two rules
/// in one budget), and the store takes one write per counter.
struct Tally<'a> {
    stored: &'a Counters,
    /// The event's month (`2026-11`) and its stored counters, looked up once: most caps
    /// count on that item.
    month: &'a str,
    month_counters: OnceCell<Option<&'a HashMap<String, i64>>>,
    /// A handful per event: a list searched in place beats a map keyed by owned names.
    entries: Vec<Entry>,
}

struct Entry {
    scope: Scope,
    name: String,
    seen: i64,
    add: i64,
    set: Option<i64>,
    limit: Option<i64>,
    exact: bool,
}

impl<'a> Tally<'a> {
    fn new(stored: &'a Counters, periods: &'a Periods) -> Self {
        Self {
            stored,
            month: &periods.month,
            month_counters: OnceCell::new(),
            // Enough for a few capped rules and the wallet's lots without growing.
            entries: Vec::with_capacity(8),
        }
    }

    /// The place of a counter in this evaluation, read from the store when first named:
    /// each counter is looked up once however often the rules consult it.
    fn slot(&mut self, scope: Scope, name: String) -> usize {
        self.place(scope, name, true)
    }

    /// Adds to a counter no rule reads and no guard protects (a wallet lot): its stored
    /// value is never needed.
    fn add_unguarded(&mut self, scope: Scope, name: String, by: i64) {
        let slot = self.place(scope, name, false);
        self.add(slot, by, None, false);
    }

    fn place(&mut self, scope: Scope, name: String, read: bool) -> usize {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.name == name && e.scope == scope)
        {
            return i;
        }
        let seen = match &scope {
            _ if !read => 0,
            // The event's month item, found once for all its counters.
            Scope::Month(month) if month == self.month => self
                .month_counters
                .get_or_init(|| self.stored.months.get(self.month))
                .and_then(|counters| counters.get(&name))
                .map_or(0, |value| *value),
            _ => self.stored.get(&scope, &name),
        };
        self.entries.push(Entry {
            scope,
            name,
            seen,
            add: 0,
            set: None,
            limit: None,
            exact: false,
        });
        self.entries.len() - 1
    }

    /// The counter as this evaluation leaves it so far.
    fn value(&self, slot: usize) -> i64 {
        let e = &self.entries[slot];
        e.set.unwrap_or(e.seen) + e.add
    }

    fn add(&mut self, slot: usize, by: i64, limit: Option<i64>, exact: bool) {
        let entry = &mut self.entries[slot];
        entry.add += by;
        entry.limit = limit.or(entry.limit);
        entry.exact |= exact;
    }

    fn set(&mut self, slot: usize, value: i64) {
        let entry = &mut self.entries[slot];
        entry.set = Some(value);
        entry.exact = true;
    }

    /// The shard of `budget` an award of `points` draws on (its slot and limit), and its
    /// room: the participant's own shard when it has room for all of them, else the roomiest
    /// (so a budget is used up before anyone is refused, and an award is cut only when no
    /// shard could pay it).
    fn pick_shard(
        &mut self,
        budget: &Budget,
        periods: &Periods,
        event: &Event,
        points: i64,
    ) -> (usize, i64, i64) {
        let mut room = |shard: u16| {
            let limit = shard_limit(budget, shard);
            let scope = Scope::Budget(budget_shard(budget, periods, shard));
            let slot = self.slot(scope, BUDGET_SPENT.into());
            (slot, limit, (limit - self.value(slot)).max(0))
        };
        let own = (fnv1a(event.participant.as_bytes()) % u64::from(budget.shards)) as u16;
        let preferred = room(own);
        if preferred.2 >= points {
            return preferred;
        }
        (0..budget.shards)
            .filter(|&shard| shard != own)
            .map(room)
            .fold(
                preferred,
                |best, next| if next.2 > best.2 { next } else { best },
            )
    }

    /// The changed counters, in order of item and name.
    fn into_writes(mut self) -> Vec<Write> {
        self.entries.retain(|e| e.add != 0 || e.set.is_some());
        self.entries
            .sort_unstable_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
        self.entries
            .into_iter()
            .map(|e| {
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
                    scope: e.scope,
                    name: e.name,
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
    let digits = [b'0' + (shard / 10) as u8, b'0' + (shard % 10) as u8];
    let shard = std::str::from_utf8(&digits).expect("two ASCII digits (at most 64 shards)");
    joined(&[&budget.id, "#", period, "#", shard])
}

/// `parts` in one string, allocated once: counter and item names are made for every award,
/// and `format!` would grow them piece by piece.
fn joined(parts: &[&str]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    text
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `a × b`, or the largest decimal of its sign when it does not fit: rounding then clamps it
/// to what one event may carry.
fn times(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b)
        .unwrap_or(saturated(if b.is_sign_negative() { -a } else { a }))
}

fn saturated(sign: Decimal) -> Decimal {
    if sign.is_sign_negative() {
        Decimal::MIN
    } else {
        Decimal::MAX
    }
}

/// The counter a cap counts an award of `points` on: times (`t`), or points of the award's
/// sign (`p`, `p-`). A points cap bounds each sign on its own, so no set of reversals can carry
/// a rule's net points past it (one net counter could: +5, -5, +10 on a cap of 10, then
/// reversing the -5, leaves 15).
fn cap_kind(cap: &Cap, points: i64) -> &'static str {
    match cap.limit {
        Limit::Points(_) if points < 0 => "p-",
        Limit::Points(_) => "p",
        Limit::Times(_) => "t",
    }
}

/// Where the counter of `kind` (see `cap_kind`) for `rule` over `per` lives, and its name:
/// `p:{rule}@04` (day 4 of the month item), `@2026-W49` (on the item of the week's Monday's
/// month), none (the month item), `@2026-Q4`, `@2026`, none (the profile).
fn counter(rule: &str, kind: &str, per: Period, periods: &Periods) -> (Scope, String) {
    let (scope, period) = match per {
        // The day of the month of `2026-11-04`.
        Period::Day => (Scope::Month(periods.month.clone()), Some(&periods.day[8..])),
        Period::Week => (
            Scope::Month(periods.week_start_month.clone()),
            Some(periods.week.as_str()),
        ),
        Period::Month => (Scope::Month(periods.month.clone()), None),
        Period::Quarter => (Scope::Profile, Some(periods.quarter.as_str())),
        Period::Year => (Scope::Profile, Some(periods.year.as_str())),
        Period::Lifetime => (Scope::Profile, None),
    };
    let name = match period {
        Some(period) => joined(&[kind, ":", rule, "@", period]),
        None => joined(&[kind, ":", rule]),
    };
    (scope, name)
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
    // Most awards are whole already: rounding them would change nothing, at a cost.
    let whole = if amount.is_integer() {
        amount
    } else {
        amount.round_dp_with_strategy(0, strategy)
    };
    // A whole decimal is its mantissa over a power of ten: clamp in integers.
    let value = whole.mantissa() / 10_i128.pow(whole.scale());
    let max = i128::from(MAX_POINTS_PER_EVENT);
    value.clamp(-max, max) as i64
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
    /// When the source system recorded the activity (`attributes.recorded_at`), else
    /// received: read only for the rules that ask.
    recorded_at: OnceCell<Timestamp>,
    tenure_days: i64,
}

impl<'a> Facts<'a> {
    fn new(event: &'a Event, received_at: Timestamp, subject: &'a Subject<'a>) -> Self {
        Self {
            event,
            subject,
            received_at,
            recorded_at: OnceCell::new(),
            tenure_days: (event.occurred_at.as_second() - subject.enrolled_at.as_second())
                .div_euclid(86_400),
        }
    }

    fn recorded_at(&self) -> Timestamp {
        *self.recorded_at.get_or_init(|| {
            self.event
                .raw_attributes
                .get("recorded_at")
                .and_then(Value::as_str)
                .and_then(|s| parse_rfc3339(s).ok())
                .unwrap_or(self.received_at)
        })
    }

    fn late_days(&self) -> i64 {
        (self.recorded_at().as_second() - self.event.occurred_at.as_second()).max(0) / 86_400
    }
}

fn matches(when: &Match, facts: &Facts) -> bool {
    when.attributes.iter().all(|(name, predicate)| {
        let value = facts.event.raw_attributes.get(name);
        holds(predicate, value.filter(|v| !v.is_null()).map(Fact::Json))
    }) && traits_hold(&when.participant, facts)
        && when
            .late_days
            .as_ref()
            .is_none_or(|p| holds(p, Some(Fact::Whole(facts.late_days()))))
}

fn traits_hold(traits: &[(Trait, Predicate)], facts: &Facts) -> bool {
    let s = facts.subject;
    traits.iter().all(|(t, predicate)| {
        let value = match t {
            Trait::Role => s.role.map(Fact::Text),
            Trait::Segment => s.segment.map(Fact::Text),
            Trait::Tier => s.tier.map(Fact::Text),
            Trait::Distributor => s.distributor.map(Fact::Text),
            Trait::Location => s.location.map(Fact::Text),
            Trait::Region => s.region.map(Fact::Text),
            Trait::Status => Some(Fact::Text(s.status)),
            Trait::TenureDays => Some(Fact::Whole(facts.tenure_days)),
        };
        holds(predicate, value)
    })
}

fn applies(campaign: &Campaign, rule: &str, facts: &Facts) -> bool {
    let at = facts.event.occurred_at;
    // The window first: it is the cheapest test, and most campaigns are out of it.
    campaign.from.is_none_or(|f| at >= f)
        && campaign.until.is_none_or(|u| at < u)
        && campaign.enrolment_days.is_none_or(|(from, until)| {
            facts.tenure_days >= from && until.is_none_or(|u| facts.tenure_days < u)
        })
        && campaign
            .rules
            .as_ref()
            .is_none_or(|r| r.iter().any(|r| r == rule))
        && traits_hold(&campaign.participant, facts)
}

fn attribute_absent(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

/// What a predicate tests: an event attribute as received, or a participant's trait.
#[derive(Clone, Copy)]
enum Fact<'a> {
    Json(&'a Value),
    Text(&'a str),
    Whole(i64),
}

impl Fact<'_> {
    fn decimal(self) -> Option<Decimal> {
        match self {
            Fact::Json(value) => decimal_of(value),
            Fact::Text(text) => text.trim().parse().ok(),
            Fact::Whole(n) => Some(Decimal::from(n)),
        }
    }

    fn is_text(self) -> bool {
        match self {
            Fact::Json(value) => value.is_string(),
            Fact::Text(_) => true,
            Fact::Whole(_) => false,
        }
    }

    fn is(self, want: &Value) -> bool {
        match self {
            Fact::Json(value) => want == value,
            Fact::Text(text) => want.as_str() == Some(text),
            Fact::Whole(n) => want.as_i64() == Some(n),
        }
    }

    fn absent(self) -> bool {
        match self {
            Fact::Json(value) => attribute_absent(Some(value)),
            Fact::Text(text) => text.trim().is_empty(),
            Fact::Whole(_) => false,
        }
    }
}

/// Whether `fact` (absent: `None`) satisfies `predicate`. Numbers compare as exact decimals,
/// so `"48000.00"` equals `48000`; two strings compare as text.
fn holds(predicate: &Predicate, fact: Option<Fact>) -> bool {
    let same = |want: &Value, got: Fact| {
        if want.is_string() && got.is_text() {
            return got.is(want);
        }
        match (decimal_of(want), got.decimal()) {
            (Some(a), Some(b)) => a == b,
            _ => got.is(want),
        }
    };
    match predicate {
        Predicate::Exists(wanted) => *wanted != fact.is_none_or(Fact::absent),
        Predicate::Equals(want) => fact.is_some_and(|got| same(want, got)),
        Predicate::In(options) => fact.is_some_and(|got| options.iter().any(|o| same(o, got))),
        Predicate::Range { gt, gte, lt, lte } => {
            let Some(v) = fact.and_then(Fact::decimal) else {
                return false;
            };
            gt.is_none_or(|b| v > b)
                && gte.is_none_or(|b| v >= b)
                && lt.is_none_or(|b| v < b)
                && lte.is_none_or(|b| v <= b)
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
