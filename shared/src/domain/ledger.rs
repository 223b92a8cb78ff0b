//! The ledger: one record per event, naming its cause, and the plan that turns an incoming
//! event plus what is already stored into exactly one effect.
//!
//! Exactly-once rests on the record being keyed by the event id: every plan writes that key
//! under a condition on its prior state, so a redelivered event finds its own record and plans
//! nothing. Reversals claw back exactly what the stored original earned, under the rule
//! version that awarded it; a reversal that arrives first leaves a placeholder that makes the
//! original earn nothing when it comes.

use super::engine::{
    Added, Counters, EXPIRY_LOT, Evaluation, Guard, Op, PENDING_LOT, Scope, Subject, Write,
};
use super::envelope::{BONUS_TYPE, Event, LOGIN_TYPE};
use super::period::{Periods, quarter_of};
use super::program::Program;
use super::standings::board_key;
use super::wallet::Wallet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Earned its points (possibly zero).
    Awarded,
    /// Earned its points, later clawed back by `reversed_by`.
    Reversed,
    /// A reversal: its points are the clawback (zero when it came before its original).
    Reversal,
    /// Placeholder for an original whose reversal came first; not an event yet.
    CancelledBeforeArrival,
    /// An original that arrived after its reversal: recorded, earned nothing.
    Cancelled,
    /// Points past their expiry date, taken off the balance (`expiry#{date}`).
    Expired,
    /// A reversal that could not apply (see `note`): recorded, no effect.
    ReversalIgnored,
}

/// An activity record and its ledger entry, one per event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: String,
    pub participant: String,
    pub status: EntryStatus,
    /// What this entry moved on the balance; negative for a clawback.
    pub points: i64,
    /// The rules (id and version) behind the points, and each one's part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleLine>,
    /// The program configuration version the event was evaluated under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<u32>,
    /// The counters this entry added to (caps, budgets, lots), so a reversal takes back
    /// exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adds: Vec<Added>,
    /// When the points become spendable (pending points) and when they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// The program-time-zone month the event counts in (`2026-11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// For a reversal: the event it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
    /// For an original: the reversal that cancelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One rule's part of a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLine {
    pub id: String,
    pub version: u32,
    pub points: i64,
}

/// An expiry entry written alongside an award: the lot it empties, as it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired {
    pub record: EventRecord,
    pub lot: String,
    pub stored: i64,
}

/// Changes to one participant-month counter item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthDelta {
    pub month: String,
    pub quarter: String,
    pub year: String,
    /// Points toward the month's leaderboards: what events earned, net of reversals.
    pub points: i64,
    /// The part of `points` reversals took back (0 or negative), for the program report.
    pub reversed: i64,
    /// Period-close bonuses: credited to the balance, kept out of the leaderboards' points.
    pub bonus: i64,
    /// Per event type: +1 when counted, -1 when a reversal uncounts it.
    pub count: Option<(String, i64)>,
    /// Day of month of a login: distinct login days are a set of these.
    pub login_day: Option<u8>,
    /// Whether `login_day` is a day the month had no login on yet, as read: the month's count
    /// of login days (`days`, sorted by the live leaderboard index) goes up by one.
    pub new_login_day: bool,
    /// The live leaderboard index partition of the month item, when the program has boards.
    pub board_key: Option<String>,
}

/// The one effect an event has, given what is stored.
// One plan lives per event for the length of a commit: boxing the large variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Already applied: no write at all.
    Duplicate,
    /// Record the event and credit what it earned; `writes` are its guarded counter changes,
    /// `tidy` profile lots that have matured and can go.
    Award {
        record: EventRecord,
        month: MonthDelta,
        writes: Vec<Write>,
        tidy: Vec<String>,
        expiries: Vec<Expired>,
    },
    /// Record the reversal, mark the original reversed, claw back what it earned and take
    /// back the counters it added to.
    Reverse {
        reversal: EventRecord,
        slot: Slot,
        original_id: String,
        month: MonthDelta,
        writes: Vec<Write>,
    },
    /// Record the reversal and a placeholder under the original's id.
    ReverseBeforeOriginal {
        reversal: EventRecord,
        slot: Slot,
        placeholder: EventRecord,
    },
    /// Fill the placeholder with the late original, which earns nothing.
    ArriveCancelled {
        record: EventRecord,
        month: Option<MonthDelta>,
    },
    /// Record a reversal that cannot apply.
    IgnoreReversal { record: EventRecord, slot: Slot },
}

/// What a reversal's own record is written over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Nothing: the event id is new.
    New,
    /// The placeholder that `reversal_id`, a reversal naming this reversal, left because it came
    /// first. Reversals cannot be reversed, so that one is marked ignored with `note`, as it
    /// would have been had it come second, and this one takes effect.
    Displacing { reversal_id: String, note: String },
}

/// What a plan knows of the participant beyond the event records.
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    pub subject: Subject<'a>,
    /// The participant's balance as read: expiry never takes more than it leaves.
    pub balance: i64,
    pub counters: &'a Counters,
    /// The processing day in the program's time zone (`2026-11-22`): lots dated on or before
    /// it have matured.
    pub today: &'a str,
}

/// Decides the effect of `event`. `own` is the stored record under the event's id, `original`
/// the stored record of the event it reverses (if it is a reversal).
pub fn plan(
    program: &Program,
    event: &Event,
    received_at: Timestamp,
    own: Option<&EventRecord>,
    original: Option<&EventRecord>,
    standing: &Standing,
) -> Plan {
    let periods = Periods::of(event.occurred_at, &program.time_zone);
    let record = |status, points| EventRecord {
        event_id: event.id.clone(),
        participant: event.participant.clone(),
        status,
        points,
        rules: Vec::new(),
        config: None,
        adds: Vec::new(),
        pending_until: None,
        expires_on: None,
        event_type: Some(event.event_type.clone()),
        occurred_at: Some(event.occurred_at.to_string()),
        received_at: Some(received_at.to_string()),
        month: Some(periods.month.clone()),
        day: Some(periods.day.clone()),
        attributes: Some(event.raw_attributes.clone()),
        reverses: event.reverses().map(str::to_owned),
        reversed_by: None,
        note: None,
    };
    let login_day = (event.event_type == LOGIN_TYPE).then_some(periods.day_of_month);
    let new_login_day = login_day.is_some_and(|day| {
        !standing
            .counters
            .login_days
            .get(&periods.month)
            .is_some_and(|days| days.contains(&day))
    });
    let is_bonus = event.event_type == BONUS_TYPE;
    let delta = |points: i64, count| MonthDelta {
        month: periods.month.clone(),
        quarter: periods.quarter.clone(),
        year: periods.year.clone(),
        points: if is_bonus { 0 } else { points },
        reversed: 0,
        bonus: if is_bonus { points } else { 0 },
        count,
        login_day,
        new_login_day,
        board_key: board_key(program, &periods.month, &event.participant),
    };

    let slot = match own {
        None => Slot::New,
        Some(own) => match (own.status, event.reverses(), own.reversed_by.as_deref()) {
            (EntryStatus::CancelledBeforeArrival, None, _) => {
                let mut arrived = record(EntryStatus::Cancelled, 0);
                arrived.reversed_by = own.reversed_by.clone();
                return Plan::ArriveCancelled {
                    record: arrived,
                    month: login_day.map(|_| delta(0, None)),
                };
            }
            (EntryStatus::CancelledBeforeArrival, Some(_), Some(named_by)) => Slot::Displacing {
                reversal_id: named_by.to_owned(),
                note: not_reversible(&event.id),
            },
            _ => return Plan::Duplicate,
        },
    };

    let Some(original_id) = event.reverses() else {
        let evaluation = program.evaluate(
            event,
            received_at,
            &periods,
            &standing.subject,
            standing.counters,
        );
        let mut awarded = record(EntryStatus::Awarded, evaluation.points);
        awarded.config = Some(program.version);
        awarded.note = match &event.attributes {
            super::envelope::Attributes::Adjustment { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let Evaluation {
            lines,
            writes,
            pending_until,
            expires_on,
            ..
        } = evaluation;
        awarded.rules = lines
            .into_iter()
            .filter(|l| l.points != 0)
            .map(|l| RuleLine {
                id: l.rule,
                version: l.version,
                points: l.points,
            })
            .collect();
        awarded.adds = writes
            .iter()
            .filter_map(|w| match w.op {
                Op::Add(by) => Some(Added {
                    scope: w.scope.clone(),
                    name: w.name.clone(),
                    by,
                }),
                Op::Set(_) => None,
            })
            .collect();
        awarded.pending_until = pending_until;
        awarded.expires_on = expires_on;
        let tidy = matured_lots(standing, &writes);
        let expiries = expiries(event, standing, &writes);
        return Plan::Award {
            month: delta(awarded.points, Some((event.event_type.clone(), 1))),
            record: awarded,
            writes,
            tidy,
            expiries,
        };
    };

    let ignored = |note: String| {
        let mut ignored = record(EntryStatus::ReversalIgnored, 0);
        ignored.note = Some(note);
        Plan::IgnoreReversal {
            record: ignored,
            slot: slot.clone(),
        }
    };
    match original {
        None => {
            let placeholder = EventRecord {
                event_id: original_id.to_owned(),
                participant: event.participant.clone(),
                status: EntryStatus::CancelledBeforeArrival,
                points: 0,
                rules: Vec::new(),
                config: None,
                adds: Vec::new(),
                pending_until: None,
                expires_on: None,
                event_type: None,
                occurred_at: None,
                received_at: None,
                month: None,
                day: None,
                attributes: None,
                reverses: None,
                reversed_by: Some(event.id.clone()),
                note: None,
            };
            Plan::ReverseBeforeOriginal {
                reversal: record(EntryStatus::Reversal, 0),
                slot,
                placeholder,
            }
        }
        Some(original) if original.status == EntryStatus::Awarded => {
            let month = original.month.clone().unwrap_or_default();
            let mut reversal = record(EntryStatus::Reversal, -original.points);
            reversal.rules = original
                .rules
                .iter()
                .map(|l| RuleLine {
                    points: -l.points,
                    ..l.clone()
                })
                .collect();
            reversal.config = original.config;
            // The clawback belongs to the period the original counted in.
            reversal.month = Some(month.clone());
            let writes = original
                .adds
                .iter()
                .filter(|a| still_open(a, standing.today))
                .map(|a| Write {
                    scope: a.scope.clone(),
                    name: a.name.clone(),
                    op: Op::Add(-a.by),
                    guard: Guard::Free,
                })
                .collect();
            Plan::Reverse {
                reversal,
                slot,
                original_id: original_id.to_owned(),
                month: MonthDelta {
                    quarter: quarter_of(&month).unwrap_or_default(),
                    year: month.get(..4).unwrap_or_default().to_owned(),
                    board_key: board_key(program, &month, &event.participant),
                    month,
                    points: -original.points,
                    reversed: -original.points,
                    bonus: 0,
                    count: original.event_type.clone().map(|t| (t, -1)),
                    login_day: None,
                    new_login_day: false,
                },
                writes,
            }
        }
        Some(original)
            if matches!(
                original.status,
                EntryStatus::Reversal | EntryStatus::ReversalIgnored
            ) =>
        {
            ignored(not_reversible(original_id))
        }
        Some(original) => ignored(format!(
            "{original_id} was already cancelled by {}",
            original
                .reversed_by
                .as_deref()
                .unwrap_or("another reversal")
        )),
    }
}

/// Why a reversal naming a reversal has no effect, whichever of the two came first.
fn not_reversible(reversal_id: &str) -> String {
    format!("{reversal_id} is itself a reversal")
}

/// A wallet lot that has matured (pending points deposited, expired points gone) is not
/// taken back by a reversal: it no longer stands for anything spendable.
fn still_open(added: &Added, today: &str) -> bool {
    let date = added
        .name
        .strip_prefix(PENDING_LOT)
        .or_else(|| added.name.strip_prefix(EXPIRY_LOT));
    date.is_none_or(|date| date > today)
}

/// Expiry lots past their date become expiry entries with this award (an active participant's
/// ledger shows them as they happen; the wallet view counts them as gone either way).
fn expiries(event: &Event, standing: &Standing, writes: &[Write]) -> Vec<Expired> {
    Wallet::expired_lots(standing.balance, &standing.counters.profile, standing.today)
        .into_iter()
        .filter(|(lot, ..)| {
            !writes
                .iter()
                .any(|w| w.scope == Scope::Profile && w.name == *lot)
        })
        .map(|(lot, stored, expires)| {
            let date = lot.trim_start_matches(EXPIRY_LOT).to_owned();
            let record = EventRecord {
                event_id: format!("expiry#{date}"),
                participant: event.participant.clone(),
                status: EntryStatus::Expired,
                points: -expires,
                rules: Vec::new(),
                config: None,
                adds: Vec::new(),
                pending_until: None,
                expires_on: Some(date.clone()),
                event_type: None,
                occurred_at: None,
                received_at: None,
                month: None,
                day: Some(standing.today.to_owned()),
                attributes: None,
                reverses: None,
                reversed_by: None,
                note: Some(format!(
                    "{stored} points were valid through {date}; {expires} of them were still held"
                )),
            };
            Expired {
                record,
                lot,
                stored,
            }
        })
        .collect()
}

/// Pending lots whose deposit day has passed: they no longer hold anything back, so an award
/// removes them and the profile item stays small.
fn matured_lots(standing: &Standing, writes: &[Write]) -> Vec<String> {
    let mut lots: Vec<String> = standing
        .counters
        .profile
        .keys()
        .filter(|name| {
            name.strip_prefix(PENDING_LOT)
                .is_some_and(|date| date <= standing.today)
        })
        .filter(|name| {
            !writes
                .iter()
                .any(|w| w.scope == Scope::Profile && w.name == **name)
        })
        .cloned()
        .collect();
    lots.sort();
    lots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::parse_event;
    use crate::domain::participant::Profile;
    use crate::domain::program::ProgramVersions;
    use crate::service::award::Outcome;
    use crate::service::replay::Replay;
    use proptest::prelude::*;
    use serde_json::json;

    fn program() -> Program {
        Program::parse(
            "program: acme\nname: ACME\ntime_zone: Europe/Stockholm\npoints:\n  portal.login: 5\n  deal.registered: 50\n  sale.closed: 120\n",
            7,
        )
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn event(id: &str, kind: &str, attributes: Value) -> Event {
        parse_event(
            &json!({"id": id, "participant": "rep-1", "type": kind,
                "occurred_at": "2026-10-31T23:30:00Z", "attributes": attributes}),
            "",
            now(),
        )
        .unwrap()
    }

    fn deal(id: &str) -> Event {
        event(id, "deal.registered", json!({"deal_id": id}))
    }

    fn cancel(id: &str, original: &str) -> Event {
        event(id, "deal.cancelled", json!({"original_event": original}))
    }

    fn profile() -> Profile {
        Profile::from_json(&json!({"name": "R", "email": "r@example.com", "locale": "en",
            "time_zone": "Europe/Stockholm", "role": "seller", "distributor": "d", "location": "l"}))
        .unwrap()
    }

    /// The real award path over the in-memory store, with rep-1 enrolled.
    fn replay() -> Replay {
        let replay = Replay::new(ProgramVersions::single(program(), Timestamp::UNIX_EPOCH));
        replay.enrol("rep-1", profile(), "2026-01-01T00:00:00Z".parse().unwrap());
        replay
    }

    fn deliver(replay: &Replay, event: &Event) -> Outcome {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(replay.deliver(event.clone(), now()))
            .unwrap()
    }

    fn account(replay: &Replay) -> crate::adapters::memory::Account {
        replay.store.accounts()[&("acme".to_owned(), "rep-1".to_owned())].clone()
    }

    #[test]
    fn an_award_counts_in_the_program_month_and_names_its_rule() {
        let counters = Counters::default();
        let subject = Subject {
            role: None,
            segment: None,
            tier: None,
            distributor: None,
            location: None,
            region: None,
            status: "active",
            enrolled_at: Timestamp::UNIX_EPOCH,
        };
        let standing = Standing {
            subject,
            balance: 0,
            counters: &counters,
            today: "2026-11-22",
        };
        let Plan::Award { record, month, .. } =
            plan(&program(), &deal("d-1"), now(), None, None, &standing)
        else {
            panic!("expected an award")
        };
        assert_eq!(record.points, 50);
        assert_eq!(
            record.rules,
            vec![RuleLine {
                id: "points-deal-registered".into(),
                version: 7,
                points: 50
            }]
        );
        assert_eq!(record.config, Some(7));
        assert_eq!(month.month, "2026-11"); // 23:30 UTC on 31 Oct is 00:30 on 1 Nov in Stockholm
        assert_eq!(month.count, Some(("deal.registered".into(), 1)));
        assert_eq!(month.login_day, None);
    }

    #[test]
    fn a_reversal_claws_back_exactly_what_the_original_earned() {
        let replay = replay();
        deliver(&replay, &deal("d-1"));
        deliver(&replay, &cancel("c-1", "d-1"));
        let a = account(&replay);
        assert_eq!(a.state.balance, 0);
        assert_eq!(
            a.records["c-1"].rules[0].points,
            -a.records["d-1"].rules[0].points
        );
        assert_eq!(a.records["d-1"].status, EntryStatus::Reversed);
        // A second, different cancellation of the same deal does nothing.
        deliver(&replay, &cancel("c-2", "d-1"));
        let a = account(&replay);
        assert_eq!(a.state.balance, 0);
        assert_eq!(a.records["c-2"].status, EntryStatus::ReversalIgnored);
    }

    #[test]
    fn a_reversal_before_its_original_makes_the_original_earn_nothing() {
        let replay = replay();
        deliver(&replay, &cancel("c-1", "d-1"));
        deliver(&replay, &deal("d-1"));
        deliver(&replay, &deal("d-1"));
        let a = account(&replay);
        assert_eq!(a.state.balance, 0);
        assert_eq!(a.records["d-1"].status, EntryStatus::Cancelled);
        assert_eq!(a.records["d-1"].reversed_by.as_deref(), Some("c-1"));
    }

    #[test]
    fn reversals_cannot_be_reversed() {
        let replay = replay();
        deliver(&replay, &deal("d-1"));
        deliver(&replay, &cancel("c-1", "d-1"));
        deliver(&replay, &cancel("c-2", "c-1"));
        let a = account(&replay);
        assert_eq!(a.records["c-2"].status, EntryStatus::ReversalIgnored);
        assert_eq!(a.state.balance, 0);
    }

    #[test]
    fn a_reversal_of_a_reversal_has_no_effect_even_when_it_comes_first() {
        // Every order of the three events, each delivered twice, ends as the natural order does.
        let (d, c1, c2) = (deal("d-1"), cancel("c-1", "d-1"), cancel("c-2", "c-1"));
        let orders = [
            [&d, &c1, &c2],
            [&d, &c2, &c1],
            [&c1, &d, &c2],
            [&c1, &c2, &d],
            [&c2, &d, &c1],
            [&c2, &c1, &d],
        ];
        for order in orders {
            let replay = replay();
            for event in order.iter().chain(order.iter()) {
                deliver(&replay, event);
            }
            let a = account(&replay);
            let ids: Vec<&str> = order.iter().map(|e| e.id.as_str()).collect();
            assert_eq!(a.state.balance, 0, "{ids:?}");
            assert_eq!(a.records["c-1"].status, EntryStatus::Reversal, "{ids:?}");
            assert_eq!(
                a.records["c-2"].status,
                EntryStatus::ReversalIgnored,
                "{ids:?}"
            );
            assert_eq!(
                a.records["c-2"].note.as_deref(),
                Some("c-1 is itself a reversal"),
                "{ids:?}"
            );
            let original = a.records["d-1"].status;
            assert!(
                matches!(original, EntryStatus::Reversed | EntryStatus::Cancelled),
                "{ids:?}: {original:?}"
            );
            assert_eq!(
                a.records["d-1"].reversed_by.as_deref(),
                Some("c-1"),
                "{ids:?}"
            );
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn expired_points_leave_the_balance_once_with_their_own_ledger_entry() {
        let program = Program::parse(
            "program: acme\nname: ACME\ntime_zone: Europe/Stockholm\npoints:\n  deal.registered: 50\n  portal.login: 5\nwallet:\n  expiry: { after_months: 1 }\n",
            1,
        )
        .unwrap();
        let replay = Replay::new(ProgramVersions::single(program, Timestamp::UNIX_EPOCH));
        replay.enrol("rep-1", profile(), at("2026-01-01T00:00:00Z"));
        let on = |id: &str, kind: &str, when: &str| {
            parse_event(
                &json!({"id": id, "participant": "rep-1", "type": kind, "occurred_at": when,
                    "attributes": {"deal_id": id}}),
                "",
                at(when),
            )
            .unwrap()
        };
        // Earned in September: valid through 31 October.
        let september = on("d-1", "deal.registered", "2026-09-05T10:00:00Z");
        block_on(replay.deliver(september, at("2026-09-05T10:00:00Z"))).unwrap();
        assert_eq!(account(&replay).counters["exp@2026-10-31"], 50);
        // The first award after 31 October writes the expiry, once, however often redelivered.
        let login = on("l-1", "portal.login", "2026-11-22T08:00:00Z");
        for _ in 0..2 {
            block_on(replay.deliver(login.clone(), at("2026-11-22T08:00:00Z"))).unwrap();
        }
        let a = account(&replay);
        let expiry = &a.records["expiry#2026-10-31"];
        assert_eq!((expiry.status, expiry.points), (EntryStatus::Expired, -50));
        assert_eq!(a.state.balance, 5, "50 expired, 5 for the login");
        assert!(!a.counters.contains_key("exp@2026-10-31"));
        assert_eq!(a.counters["exp@2026-12-31"], 5);
        assert_eq!(
            a.records.values().map(|r| r.points).sum::<i64>(),
            a.state.balance
        );
    }

    proptest! {
        /// Whatever the order and however often each event is delivered, the balance is what
        /// the uncancelled originals earned, and the month counters agree with it.
        #[test]
        fn exactly_once_in_any_order(
            deliveries in proptest::collection::vec((0usize..6, 1usize..4), 1..40),
            cancelled in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let mut events = Vec::new();
            for i in 0..6 {
                events.push(if i % 2 == 0 { deal(&format!("d-{i}")) } else {
                    event(&format!("s-{i}"), "sale.closed",
                        json!({"amount": 10, "currency": "SEK", "products": [{"sku": "x"}]}))
                });
            }
            // Some reversals are themselves named by a reversal, which must change nothing.
            let reversals: Vec<Event> = (0..6)
                .filter(|&i| cancelled[i])
                .flat_map(|i| {
                    let reversal = cancel(&format!("c-{i}"), &events[i].id.clone());
                    let of_reversal = (i % 3 == 0).then(|| cancel(&format!("cc-{i}"), &reversal.id));
                    std::iter::once(reversal).chain(of_reversal)
                })
                .collect();
            let all: Vec<&Event> = events.iter().chain(reversals.iter()).collect();
            let replay = replay();
            for (pick, times) in &deliveries {
                for _ in 0..*times {
                    deliver(&replay, all[pick % all.len()]);
                }
            }
            // Deliver everything at least once at the end, in reverse, as a late redelivery.
            for event in all.iter().rev() {
                deliver(&replay, event);
            }
            let expected: i64 = (0..6)
                .filter(|&i| !cancelled[i])
                .map(|i| if i % 2 == 0 { 50 } else { 120 })
                .sum();
            let a = account(&replay);
            prop_assert_eq!(a.state.balance, expected);
            prop_assert_eq!(a.months.values().map(|m| m.stats.points).sum::<i64>(), expected);
        }
    }
}
