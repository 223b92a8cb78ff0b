//! The backtest: what a program configuration would have awarded over a history of events.
//! The history is replayed through the real award path over the in-memory store (`Replay`,
//! touching no table) in the order the events were received; `report` then sums the final
//! state into points per month, rule and segment, the caps and budgets that bit, the
//! outstanding liability and its cost, and the top earners.

use super::award::{AwardError, Outcome};
use super::replay::Replay;
use crate::adapters::memory::Account;
use crate::domain::engine::Line;
use crate::domain::envelope::Event;
use crate::domain::ledger::{EntryStatus, EventRecord};
use crate::domain::participant::{AccountKind, Profile};
use crate::domain::period::Periods;
use crate::domain::program::{Program, ProgramVersions};
use crate::domain::wallet::Wallet;
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How far past the as-of day the liability looks for points about to expire.
pub const EXPIRY_HORIZON_DAYS: i64 = 90;
/// How many earners the report names.
pub const TOP_EARNERS: usize = 10;
/// The role of a participant the roster does not list.
pub const DEFAULT_ROLE: &str = "rep";

/// One event of the history and when Carrot received it.
#[derive(Debug, Clone)]
pub struct HistoryEvent {
    /// Where it was read (a line of the file), for the report.
    pub line: usize,
    pub event: Event,
    pub received_at: Timestamp,
}

/// A participant as the roster lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub participant: String,
    pub enrolled_at: Timestamp,
    pub role: String,
    pub distributor: Option<String>,
    pub location: Option<String>,
    pub region: Option<String>,
    pub tier: Option<String>,
    pub segment: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Member {
    /// A participant the roster does not list: a `rep`, enrolled at `at`, their first event.
    pub fn newcomer(participant: &str, at: Timestamp) -> Self {
        Self {
            participant: participant.to_owned(),
            enrolled_at: at,
            role: DEFAULT_ROLE.to_owned(),
            distributor: None,
            location: None,
            region: None,
            tier: None,
            segment: None,
            name: None,
            email: None,
        }
    }

    /// The enrolment profile: locale and time zone are the program's, and a missing
    /// distributor or location is empty, which rules see as absent.
    fn profile(&self, program: &Program) -> Profile {
        Profile {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| self.participant.clone()),
            email: self.email.clone().unwrap_or_default(),
            phone: None,
            locale: program.locale.clone(),
            time_zone: program.time_zone_name.clone(),
            role: self.role.clone(),
            distributor: self.distributor.clone().unwrap_or_default(),
            location: self.location.clone().unwrap_or_default(),
            region: self.region.clone(),
            tier: self.tier.clone(),
            manager: None,
            account: AccountKind::Individual,
        }
    }
}

/// A line of an input file that was not replayed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// The backtest's input, as read from files.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<HistoryEvent>,
    /// Lines of the events file that are not valid events.
    pub rejected: Vec<Rejected>,
    pub roster: Vec<Member>,
    /// Lines of the roster that are not valid members.
    pub roster_rejected: Vec<Rejected>,
}

/// What the replay did with one event.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub line: usize,
    pub outcome: Result<Outcome, AwardError>,
    /// When awarded: the rule lines, naming the cap or budget that cut each.
    pub lines: Vec<Line>,
}

/// Replays `history` through `program` and reports on it. Events received after `as_of` are
/// not replayed, since the state at `as_of` cannot include them; `as_of` defaults to when the
/// last event was received.
pub async fn backtest(
    program: &Program,
    history: History,
    as_of: Option<Timestamp>,
) -> BacktestReport {
    let mut events = history.events;
    // Stable: events received at the same instant keep the file's order.
    events.sort_by_key(|e| e.received_at);
    let as_of = as_of
        .or_else(|| events.last().map(|e| e.received_at))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let after_as_of = events
        .split_off(events.partition_point(|e| e.received_at <= as_of))
        .len();

    let replay = Replay::new(ProgramVersions::single(
        program.clone(),
        Timestamp::UNIX_EPOCH,
    ));
    let listed: BTreeSet<&str> = history
        .roster
        .iter()
        .map(|m| m.participant.as_str())
        .collect();
    let mut first_events: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| !listed.contains(e.event.participant.as_str()))
    {
        let first = first_events
            .entry(&e.event.participant)
            .or_insert(e.event.occurred_at);
        *first = (*first).min(e.event.occurred_at);
    }
    let newcomers: Vec<Member> = first_events
        .iter()
        .map(|(participant, at)| Member::newcomer(participant, *at))
        .collect();
    for member in history.roster.iter().chain(&newcomers) {
        replay.enrol(
            &member.participant,
            member.profile(program),
            member.enrolled_at,
        );
        replay
            .store
            .set_segment(&replay.program, &member.participant, member.segment.clone());
    }

    let mut replayed = Vec::with_capacity(events.len());
    for HistoryEvent {
        line,
        event,
        received_at,
    } in events
    {
        // The calculator evaluates exactly what the award is about to, over the same state:
        // its lines name the caps and budgets that cut the points, which the ledger does not.
        let quote = replay.quote(&event, received_at).await;
        let outcome = replay.deliver(event, received_at).await;
        let lines = match (&outcome, quote) {
            (Ok(Outcome::Awarded { .. }), Ok(quote)) => quote.evaluation.lines,
            _ => Vec::new(),
        };
        replayed.push(Replayed {
            line,
            outcome,
            lines,
        });
    }
    let inputs = Inputs {
        rejected: history.rejected,
        after_as_of,
        listed: history.roster.len(),
        first_seen: newcomers.len(),
        roster_rejected: history.roster_rejected,
    };
    report(program, &replay.store.accounts(), &replayed, inputs, as_of)
}

/// What the report needs to know of the input beyond the replayed events.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub rejected: Vec<Rejected>,
    /// Events received after the as-of time, not replayed.
    pub after_as_of: usize,
    /// Participants the roster listed, and those enrolled at their first event instead.
    pub listed: usize,
    pub first_seen: usize,
    pub roster_rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub program: String,
    /// The configuration's points value, as `{amount, currency}`, or null.
    pub points_value: serde_json::Value,
    pub events: EventCounts,
    pub roster: RosterCounts,
    /// How many replayed events ended how (`awarded`, `earned_nothing`, `duplicate`, …).
    pub outcomes: BTreeMap<&'static str, usize>,
    /// By the month (program time zone) the events occurred in; a clawback counts in its
    /// original's month.
    pub months: Vec<MonthPoints>,
    pub rules: Vec<RulePoints>,
    pub segments: Vec<SegmentPoints>,
    /// The caps and budgets that cut an award, per rule.
    pub limits: Vec<LimitBite>,
    pub liability: Liability,
    pub top_earners: Vec<Earner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Events read from the file: replayed, received after the as-of time, or rejected.
    pub read: usize,
    pub replayed: usize,
    pub after_as_of: usize,
    /// Lines that are not valid events, and events the award path failed on.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterCounts {
    pub listed: usize,
    /// Participants with events but no roster entry: enrolled at their first event as `rep`.
    pub first_seen: usize,
    pub rejected: Vec<Rejected>,
}

/// Points of a set of ledger entries: what the events earned when awarded (penalties
/// included), what reversals clawed back, and the sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Points {
    /// Events recorded (reversals not counted).
    pub events: usize,
    pub earned: i64,
    pub reversed: i64,
    pub net: i64,
}

impl Points {
    fn add(&mut self, record: &EventRecord, points: i64) {
        match record.status {
            EntryStatus::Reversal => self.reversed += points,
            EntryStatus::Awarded | EntryStatus::Reversed => {
                self.events += 1;
                self.earned += points;
            }
            EntryStatus::Cancelled => self.events += 1,
            // Expiry is not issuance: the liability counts it.
            EntryStatus::CancelledBeforeArrival
            | EntryStatus::ReversalIgnored
            | EntryStatus::Expired => {}
        }
        self.net = self.earned + self.reversed;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthPoints {
    pub month: String,
    #[serde(flatten)]
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulePoints {
    pub rule: String,
    pub version: u32,
    /// `events` counts the events the rule gave points (or a penalty) to.
    #[serde(flatten)]
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentPoints {
    /// `null` for participants without a segment.
    pub segment: Option<String>,
    pub participants: usize,
    #[serde(flatten)]
    pub points: Points,
}

/// A cap or budget that cut a rule's points, and how often and by how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitBite {
    pub rule: String,
    pub version: u32,
    /// `cap` or `budget:{id}`.
    pub by: String,
    pub per: &'static str,
    /// `points` or `times`.
    pub unit: &'static str,
    pub limit: i64,
    /// Events whose points it cut (to zero or part).
    pub events: usize,
    /// Points the events would have had without it.
    pub withheld: i64,
}

/// The points owed to participants at the as-of time, from each one's wallet: points past
/// their expiry date are no longer owed, whether the ledger has recorded their expiry yet or
/// not; pending points are owed but cannot be spent yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liability {
    pub as_of: String,
    /// The as-of day in the program's time zone: lots dated on it or before have matured.
    pub day: String,
    /// Points held: the ledger balance less expired points.
    pub balance: i64,
    /// Held points still in their lock period.
    pub pending: i64,
    /// Held points that can be spent (never below zero for a participant).
    pub available: i64,
    /// Held points valid through a day from the as-of day to 90 days after it (a
    /// participant's at most what they hold: a penalty may have taken some).
    pub expiring_within_90_days: i64,
    /// Points that expired up to the as-of day.
    pub expired: i64,
    /// `balance` at the points value, or null when the configuration sets none.
    pub cost: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Earner {
    pub participant: String,
    pub name: String,
    pub segment: Option<String>,
    /// Points held at the as-of time (as in `Liability::balance`).
    pub balance: i64,
    pub pending: i64,
}

/// Sums the replay's final state (`accounts`) and the per-event outcomes into the report.
pub fn report(
    program: &Program,
    accounts: &BTreeMap<(String, String), Account>,
    replayed: &[Replayed],
    inputs: Inputs,
    as_of: Timestamp,
) -> BacktestReport {
    let unreadable = inputs.rejected.len();
    let mut rejected = inputs.rejected;
    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for event in replayed {
        match &event.outcome {
            Ok(outcome) => *outcomes.entry(outcome_name(outcome)).or_default() += 1,
            Err(error) => rejected.push(Rejected {
                line: event.line,
                reason: format!("not awarded: {error}"),
            }),
        }
    }
    rejected.sort_by_key(|r| r.line);

    let rule_order = |rule: &str| {
        program
            .rules
            .iter()
            .position(|r| r.id == rule)
            .unwrap_or(usize::MAX)
    };
    let mut months: BTreeMap<&str, Points> = BTreeMap::new();
    let mut rules: BTreeMap<(usize, &str, u32), Points> = BTreeMap::new();
    let mut segments: BTreeMap<Option<&str>, (usize, Points)> = BTreeMap::new();
    for account in accounts.values() {
        let segment = segments
            .entry(account.state.segment.as_deref())
            .or_default();
        segment.0 += 1;
        for record in account.records.values() {
            segment.1.add(record, record.points);
            if let Some(month) = &record.month {
                months.entry(month).or_default().add(record, record.points);
            }
            for line in &record.rules {
                rules
                    .entry((rule_order(&line.id), &line.id, line.version))
                    .or_default()
                    .add(record, line.points);
            }
        }
    }

    let mut limits: BTreeMap<(usize, &str, u32, &str, &'static str), LimitBite> = BTreeMap::new();
    for line in replayed.iter().flat_map(|e| &e.lines) {
        let Some(limited) = &line.limited_by else {
            continue;
        };
        let key = (
            rule_order(&line.rule),
            line.rule.as_str(),
            line.version,
            limited.by.as_str(),
            limited.per.name(),
        );
        let bite = limits.entry(key).or_insert_with(|| LimitBite {
            rule: line.rule.clone(),
            version: line.version,
            by: limited.by.clone(),
            per: limited.per.name(),
            unit: limited.unit,
            limit: limited.limit,
            events: 0,
            withheld: 0,
        });
        bite.events += 1;
        bite.withheld += (line.uncapped - line.points).abs();
    }

    let day = Periods::of(as_of, &program.time_zone).day;
    let horizon = day
        .parse::<Date>()
        .ok()
        .and_then(|d| {
            d.checked_add(jiff::Span::new().days(EXPIRY_HORIZON_DAYS))
                .ok()
        })
        .map(|d| d.to_string())
        .unwrap_or_default();
    let holdings: Vec<(&Account, Holding)> = accounts
        .values()
        .map(|a| (a, Holding::of(a, &day, &horizon)))
        .collect();
    let mut liability = Liability {
        as_of: as_of.to_string(),
        day: day.clone(),
        balance: 0,
        pending: 0,
        available: 0,
        expiring_within_90_days: 0,
        expired: 0,
        cost: None,
    };
    for (_, h) in &holdings {
        liability.balance += h.balance;
        liability.pending += h.pending;
        liability.available += h.available;
        liability.expiring_within_90_days += h.expiring;
        liability.expired += h.expired;
    }
    liability.cost = program.points_value.as_ref().map(|(value, currency)| {
        let mut amount = *value * Decimal::from(liability.balance);
        // Money reads in cents at least: 0.1 SEK a point makes 12.30 SEK, not 12.3.
        if amount.scale() < 2 {
            amount.rescale(2);
        }
        Money {
            amount,
            currency: currency.as_str().to_owned(),
        }
    });

    let mut earners: Vec<Earner> = holdings
        .iter()
        .map(|(account, h)| Earner {
            participant: account.state.participant.clone(),
            name: account.state.profile.name.clone(),
            segment: account.state.segment.clone(),
            balance: h.balance,
            pending: h.pending,
        })
        .collect();
    earners.sort_by(|a, b| {
        b.balance
            .cmp(&a.balance)
            .then_with(|| a.participant.cmp(&b.participant))
    });
    earners.truncate(TOP_EARNERS);

    BacktestReport {
        program: program.id.clone(),
        points_value: program.points_value_json(),
        events: EventCounts {
            read: unreadable + replayed.len() + inputs.after_as_of,
            replayed: replayed.len(),
            after_as_of: inputs.after_as_of,
            rejected,
        },
        roster: RosterCounts {
            listed: inputs.listed,
            first_seen: inputs.first_seen,
            rejected: inputs.roster_rejected,
        },
        outcomes,
        months: months
            .into_iter()
            .map(|(month, points)| MonthPoints {
                month: month.to_owned(),
                points,
            })
            .collect(),
        rules: rules
            .into_iter()
            .map(|((_, rule, version), points)| RulePoints {
                rule: rule.to_owned(),
                version,
                points,
            })
            .collect(),
        segments: segments
            .into_iter()
            .map(|(segment, (participants, points))| SegmentPoints {
                segment: segment.map(str::to_owned),
                participants,
                points,
            })
            .collect(),
        limits: limits.into_values().collect(),
        liability,
        top_earners: earners,
    }
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Awarded { points: 0 } => "earned_nothing",
        Outcome::Awarded { .. } => "awarded",
        Outcome::Duplicate => "duplicate",
        Outcome::Reversed { .. } => "reversed",
        Outcome::ReversalAwaitingOriginal => "reversal_before_original",
        Outcome::ArrivedCancelled => "arrived_cancelled",
        Outcome::ReversalIgnored => "reversal_ignored",
        Outcome::Parked => "parked",
    }
}

/// One participant's points at the as-of day: their wallet, with expired points gone.
struct Holding {
    balance: i64,
    pending: i64,
    available: i64,
    expiring: i64,
    /// Expired, whether the ledger recorded it yet or not.
    expired: i64,
}

impl Holding {
    fn of(account: &Account, day: &str, horizon: &str) -> Self {
        let wallet = Wallet::of(account.state.balance, &account.counters, day);
        let recorded: i64 = account
            .records
            .values()
            .filter(|r| r.status == EntryStatus::Expired)
            .map(|r| -r.points)
            .sum();
        let balance = wallet.balance - wallet.expired;
        let expiring: i64 = wallet
            .expiring
            .range(day.to_owned()..=horizon.to_owned())
            .map(|(_, points)| points)
            .sum();
        Self {
            balance,
            pending: wallet.pending,
            available: wallet.available,
            // Nothing is redeemed in a backtest, but a penalty may have taken some.
            expiring: expiring.clamp(0, balance.max(0)),
            expired: recorded + wallet.expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::parse_event;
    use serde_json::{Value, json};

    const PROGRAM: &str = r#"
program: shop
name: Shop
time_zone: Europe/Stockholm
points_value: { amount: "0.5", currency: EUR }
wallet:
  pending: { lock_days: 7, rules: [contract] }
  expiry: { after_months: 1 }
rules:
  - id: login
    version: 2
    when: { type: portal.login }
    award: { points: 10 }
    caps: [{ per: day, times: 1 }]
  - id: contract
    version: 3
    when: { type: contract.started }
    award: { per: { attribute: financed_volume, every: 1000 }, points: 1 }
    caps: [{ per: month, points: 150 }]
  - id: late-crm
    version: 1
    when: { type: crm.activity_logged, late_days: { gt: 30 } }
    award: { points: -5 }
"#;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// An event read from `line`, received when it occurred unless `received` says otherwise.
    fn event(line: usize, envelope: Value, received: Option<&str>) -> HistoryEvent {
        let event = parse_event(&envelope, "", at("2100-01-01T00:00:00Z")).unwrap();
        HistoryEvent {
            line,
            received_at: received.map_or(event.occurred_at, at),
            event,
        }
    }

    fn login(line: usize, id: &str, who: &str, when: &str) -> HistoryEvent {
        event(
            line,
            json!({"id": id, "participant": who, "type": "portal.login", "occurred_at": when}),
            None,
        )
    }

    fn contract(line: usize, id: &str, who: &str, when: &str, volume: u32) -> HistoryEvent {
        event(
            line,
            json!({"id": id, "participant": who, "type": "contract.started", "occurred_at": when,
                "attributes": {"contract_id": id, "financed_volume": volume, "currency": "SEK"}}),
            None,
        )
    }

    fn member(participant: &str, segment: Option<&str>) -> Member {
        Member {
            segment: segment.map(str::to_owned),
            ..Member::newcomer(participant, at("2026-01-01T00:00:00Z"))
        }
    }

    fn history() -> History {
        let events = vec![
            login(1, "l-1", "ann", "2026-10-05T08:00:00Z"),
            // The same day again: the day cap (times 1) cuts it to nothing.
            login(2, "l-2", "ann", "2026-10-05T09:00:00Z"),
            contract(3, "c-1", "ann", "2026-10-06T10:00:00Z", 100_000),
            // 80 more in October, but the month cap of 150 leaves room for 50.
            contract(4, "c-2", "ann", "2026-10-20T10:00:00Z", 80_000),
            login(5, "l-3", "ann", "2026-11-03T08:00:00Z"),
            // Listed before its original but received after it: replayed as a clawback.
            event(
                6,
                json!({"id": "x-1", "participant": "bob", "type": "contract.cancelled",
                    "occurred_at": "2026-11-12T10:00:00Z", "attributes": {"original_event": "c-3"}}),
                None,
            ),
            contract(7, "c-3", "bob", "2026-11-10T10:00:00Z", 40_000),
            // Recorded 80 days late: a penalty, counted in September when it occurred.
            event(
                8,
                json!({"id": "a-1", "participant": "carl", "type": "crm.activity_logged",
                    "occurred_at": "2026-09-01T10:00:00Z",
                    "attributes": {"activity": "call", "recorded_at": "2026-11-20T10:00:00Z"}}),
                Some("2026-11-20T10:00:00Z"),
            ),
            login(9, "l-4", "carl", "2026-11-20T11:00:00Z"),
            contract(10, "c-4", "carl", "2026-11-28T10:00:00Z", 30_000),
            // A redelivery of line 1.
            event(
                11,
                json!({"id": "l-1", "participant": "ann", "type": "portal.login",
                    "occurred_at": "2026-10-05T08:00:00Z"}),
                Some("2026-11-21T00:00:00Z"),
            ),
            // Received after the as-of time.
            login(12, "l-5", "bob", "2026-12-05T09:00:00Z"),
            // ann's October points expired on 30 November: this award records it.
            login(13, "l-6", "ann", "2026-12-01T09:00:00Z"),
            // bob's expire too, though no later award of his records it.
            login(14, "l-7", "bob", "2026-10-10T08:00:00Z"),
        ];
        History {
            events,
            rejected: vec![Rejected {
                line: 15,
                reason: "occurred_at: is required".into(),
            }],
            roster: vec![member("ann", Some("gold")), member("bob", None)],
            roster_rejected: Vec::new(),
        }
    }

    fn run() -> BacktestReport {
        let program = Program::parse(PROGRAM, 1).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(backtest(
                &program,
                history(),
                Some(at("2026-12-01T12:00:00Z")),
            ))
    }

    fn points(events: usize, earned: i64, reversed: i64) -> Points {
        Points {
            events,
            earned,
            reversed,
            net: earned + reversed,
        }
    }

    #[test]
    fn events_are_counted_by_outcome_in_the_order_received() {
        let report = run();
        assert_eq!(
            report.events,
            EventCounts {
                read: 15,
                replayed: 13,
                after_as_of: 1,
                rejected: vec![Rejected {
                    line: 15,
                    reason: "occurred_at: is required".into()
                }],
            }
        );
        assert_eq!(
            report.roster,
            RosterCounts {
                listed: 2,
                first_seen: 1,
                rejected: Vec::new()
            }
        );
        let outcomes: Vec<(&str, usize)> = report.outcomes.into_iter().collect();
        assert_eq!(
            outcomes,
            [
                ("awarded", 10),
                ("duplicate", 1),
                ("earned_nothing", 1),
                ("reversed", 1)
            ]
        );
    }

    #[test]
    fn points_are_summed_per_month_rule_and_segment() {
        let report = run();
        let months: Vec<(&str, Points)> = report
            .months
            .iter()
            .map(|m| (m.month.as_str(), m.points))
            .collect();
        assert_eq!(
            months,
            [
                ("2026-09", points(1, -5, 0)),
                ("2026-10", points(5, 170, 0)),
                ("2026-11", points(4, 90, -40)),
                ("2026-12", points(1, 10, 0)),
            ]
        );
        let rules: Vec<(&str, u32, Points)> = report
            .rules
            .iter()
            .map(|r| (r.rule.as_str(), r.version, r.points))
            .collect();
        assert_eq!(
            rules,
            [
                ("login", 2, points(5, 50, 0)),
                ("contract", 3, points(4, 220, -40)),
                ("late-crm", 1, points(1, -5, 0)),
            ]
        );
        let segments: Vec<(Option<&str>, usize, Points)> = report
            .segments
            .iter()
            .map(|s| (s.segment.as_deref(), s.participants, s.points))
            .collect();
        assert_eq!(
            segments,
            [
                (None, 2, points(5, 85, -40)),
                (Some("gold"), 1, points(6, 180, 0)),
            ]
        );
    }

    #[test]
    fn every_cap_that_bit_is_counted_with_the_points_it_withheld() {
        let report = run();
        let bite = |rule: &str, version, per, unit, limit, withheld| LimitBite {
            rule: rule.into(),
            version,
            by: "cap".into(),
            per,
            unit,
            limit,
            events: 1,
            withheld,
        };
        assert_eq!(
            report.limits,
            [
                bite("login", 2, "day", "times", 1, 10),
                bite("contract", 3, "month", "points", 150, 30),
            ]
        );
    }

    #[test]
    fn the_liability_drops_expired_points_and_prices_what_is_held() {
        let report = run();
        // ann: 180 earned; the 160 of October expired on 30 November (recorded by her
        // December award), the 10 of November expire on 31 December, the 10 of December on
        // 31 January. bob: his 10 of October expired unrecorded, his contract was cancelled.
        // carl: 35 held (a 5-point penalty), of which the 30 contract points wait until
        // 5 December.
        assert_eq!(
            report.liability,
            Liability {
                as_of: "2026-12-01T12:00:00Z".into(),
                day: "2026-12-01".into(),
                balance: 55,
                pending: 30,
                available: 25,
                expiring_within_90_days: 55,
                expired: 170,
                cost: Some(Money {
                    amount: Decimal::new(2750, 2),
                    currency: "EUR".into()
                }),
            }
        );
        assert_eq!(
            serde_json::to_value(&report.liability.cost).unwrap(),
            json!({"amount": "27.50", "currency": "EUR"})
        );
        let earners: Vec<(&str, i64, i64)> = report
            .top_earners
            .iter()
            .map(|e| (e.participant.as_str(), e.balance, e.pending))
            .collect();
        assert_eq!(earners, [("carl", 35, 30), ("ann", 20, 0), ("bob", 0, 0)]);
        assert_eq!(report.top_earners[0].name, "carl");
    }
}
