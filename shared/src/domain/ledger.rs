//! The ledger: one record per event, naming its cause, and the plan that turns an incoming
//! event plus what is already stored into exactly one effect.
//!
//! Exactly-once rests on the record being keyed by the event id: every plan writes that key
//! under a condition on its prior state, so a redelivered event finds its own record and plans
//! nothing. Reversals claw back exactly what the stored original earned, under the rule
//! version that awarded it; a reversal that arrives first leaves a placeholder that makes the
//! original earn nothing when it comes.

use super::envelope::Event;
use super::period::{Periods, quarter_of};
use super::program::{Program, RuleRef};
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
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

/// Changes to one participant-month counter item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthDelta {
    pub month: String,
    pub quarter: String,
    pub year: String,
    pub points: i64,
    /// Per event type: +1 when counted, -1 when a reversal uncounts it.
    pub count: Option<(String, i64)>,
    /// Day of month of a login: distinct login days are a set of these.
    pub login_day: Option<u8>,
}

/// The one effect an event has, given what is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Already applied: no write at all.
    Duplicate,
    /// Record the event and credit what it earned.
    Award {
        record: EventRecord,
        month: MonthDelta,
    },
    /// Record the reversal, mark the original reversed, claw back what it earned.
    Reverse {
        reversal: EventRecord,
        original_id: String,
        month: MonthDelta,
    },
    /// Record the reversal and a placeholder under the original's id.
    ReverseBeforeOriginal {
        reversal: EventRecord,
        placeholder: EventRecord,
    },
    /// Fill the placeholder with the late original, which earns nothing.
    ArriveCancelled {
        record: EventRecord,
        month: Option<MonthDelta>,
    },
    /// Record a reversal that cannot apply.
    IgnoreReversal { record: EventRecord },
}

/// Decides the effect of `event`. `own` is the stored record under the event's id, `original`
/// the stored record of the event it reverses (if it is a reversal).
pub fn plan(
    program: &Program,
    event: &Event,
    received_at: Timestamp,
    own: Option<&EventRecord>,
    original: Option<&EventRecord>,
) -> Plan {
    let periods = Periods::of(event.occurred_at, &program.time_zone);
    let record = |status, points, rule| EventRecord {
        event_id: event.id.clone(),
        participant: event.participant.clone(),
        status,
        points,
        rule,
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
    let login_day = (event.event_type == "portal.login").then_some(periods.day_of_month);
    let delta = |points, count| MonthDelta {
        month: periods.month.clone(),
        quarter: periods.quarter.clone(),
        year: periods.year.clone(),
        points,
        count,
        login_day,
    };

    if let Some(own) = own {
        return match own.status {
            EntryStatus::CancelledBeforeArrival if event.reverses().is_none() => {
                let mut arrived = record(EntryStatus::Cancelled, 0, None);
                arrived.reversed_by = own.reversed_by.clone();
                Plan::ArriveCancelled {
                    record: arrived,
                    month: login_day.map(|_| delta(0, None)),
                }
            }
            _ => Plan::Duplicate,
        };
    }

    let Some(original_id) = event.reverses() else {
        let earning = program.earning(event);
        return Plan::Award {
            record: record(EntryStatus::Awarded, earning.points, earning.rule),
            month: delta(earning.points, Some((event.event_type.clone(), 1))),
        };
    };

    let ignored = |note: String| {
        let mut ignored = record(EntryStatus::ReversalIgnored, 0, None);
        ignored.note = Some(note);
        Plan::IgnoreReversal { record: ignored }
    };
    match original {
        None => {
            let placeholder = EventRecord {
                event_id: original_id.to_owned(),
                participant: event.participant.clone(),
                status: EntryStatus::CancelledBeforeArrival,
                points: 0,
                rule: None,
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
                reversal: record(EntryStatus::Reversal, 0, None),
                placeholder,
            }
        }
        Some(original) if original.status == EntryStatus::Awarded => {
            let month = original.month.clone().unwrap_or_default();
            let mut reversal = record(
                EntryStatus::Reversal,
                -original.points,
                original.rule.clone(),
            );
            // The clawback belongs to the period the original counted in.
            reversal.month = Some(month.clone());
            Plan::Reverse {
                reversal,
                original_id: original_id.to_owned(),
                month: MonthDelta {
                    quarter: quarter_of(&month).unwrap_or_default(),
                    year: month.get(..4).unwrap_or_default().to_owned(),
                    month,
                    points: -original.points,
                    count: original.event_type.clone().map(|t| (t, -1)),
                    login_day: None,
                },
            }
        }
        Some(original) if original.status == EntryStatus::Reversal => {
            ignored(format!("{original_id} is itself a reversal"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::parse_event;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

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

    /// A minimal store: applies plans the way the DynamoDB adapter's conditional writes do.
    #[derive(Default)]
    struct Memory {
        records: HashMap<String, EventRecord>,
        balance: i64,
        month_points: HashMap<String, i64>,
    }

    impl Memory {
        fn deliver(&mut self, event: &Event) {
            let own = self.records.get(&event.id).cloned();
            let original = event.reverses().and_then(|o| self.records.get(o)).cloned();
            match plan(&program(), event, now(), own.as_ref(), original.as_ref()) {
                Plan::Duplicate => {}
                Plan::Award { record, month } => {
                    self.balance += record.points;
                    *self.month_points.entry(month.month).or_default() += month.points;
                    self.records.insert(record.event_id.clone(), record);
                }
                Plan::Reverse {
                    reversal,
                    original_id,
                    month,
                } => {
                    self.balance += reversal.points;
                    *self.month_points.entry(month.month).or_default() += month.points;
                    let original = self.records.get_mut(&original_id).unwrap();
                    original.status = EntryStatus::Reversed;
                    original.reversed_by = Some(reversal.event_id.clone());
                    self.records.insert(reversal.event_id.clone(), reversal);
                }
                Plan::ReverseBeforeOriginal {
                    reversal,
                    placeholder,
                } => {
                    self.records.insert(reversal.event_id.clone(), reversal);
                    self.records
                        .insert(placeholder.event_id.clone(), placeholder);
                }
                Plan::ArriveCancelled { record, .. } | Plan::IgnoreReversal { record } => {
                    self.records.insert(record.event_id.clone(), record);
                }
            }
        }
    }

    #[test]
    fn an_award_counts_in_the_program_month_and_names_its_rule() {
        let Plan::Award { record, month } = plan(&program(), &deal("d-1"), now(), None, None)
        else {
            panic!("expected an award")
        };
        assert_eq!(record.points, 50);
        assert_eq!(
            record.rule,
            Some(RuleRef {
                id: "points.deal.registered".into(),
                version: 7
            })
        );
        assert_eq!(month.month, "2026-11"); // 23:30 UTC on 31 Oct is 00:30 on 1 Nov in Stockholm
        assert_eq!(month.count, Some(("deal.registered".into(), 1)));
        assert_eq!(month.login_day, None);
    }

    #[test]
    fn a_reversal_claws_back_exactly_what_the_original_earned() {
        let mut store = Memory::default();
        store.deliver(&deal("d-1"));
        store.deliver(&cancel("c-1", "d-1"));
        assert_eq!(store.balance, 0);
        assert_eq!(store.records["c-1"].rule, store.records["d-1"].rule);
        assert_eq!(store.records["d-1"].status, EntryStatus::Reversed);
        // A second, different cancellation of the same deal does nothing.
        store.deliver(&cancel("c-2", "d-1"));
        assert_eq!(store.balance, 0);
        assert_eq!(store.records["c-2"].status, EntryStatus::ReversalIgnored);
    }

    #[test]
    fn a_reversal_before_its_original_makes_the_original_earn_nothing() {
        let mut store = Memory::default();
        store.deliver(&cancel("c-1", "d-1"));
        store.deliver(&deal("d-1"));
        store.deliver(&deal("d-1"));
        assert_eq!(store.balance, 0);
        assert_eq!(store.records["d-1"].status, EntryStatus::Cancelled);
        assert_eq!(store.records["d-1"].reversed_by.as_deref(), Some("c-1"));
    }

    #[test]
    fn reversals_cannot_be_reversed() {
        let mut store = Memory::default();
        store.deliver(&deal("d-1"));
        store.deliver(&cancel("c-1", "d-1"));
        store.deliver(&cancel("c-2", "c-1"));
        assert_eq!(store.records["c-2"].status, EntryStatus::ReversalIgnored);
        assert_eq!(store.balance, 0);
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
            let reversals: Vec<Event> = (0..6)
                .filter(|&i| cancelled[i])
                .map(|i| cancel(&format!("c-{i}"), &events[i].id.clone()))
                .collect();
            let all: Vec<&Event> = events.iter().chain(reversals.iter()).collect();
            let mut store = Memory::default();
            for (pick, times) in &deliveries {
                for _ in 0..*times {
                    store.deliver(all[pick % all.len()]);
                }
            }
            // Deliver everything at least once at the end, in reverse, as a late redelivery.
            for event in all.iter().rev() {
                store.deliver(event);
            }
            let expected: i64 = (0..6)
                .filter(|&i| !cancelled[i])
                .map(|i| if i % 2 == 0 { 50 } else { 120 })
                .sum();
            prop_assert_eq!(store.balance, expected);
            prop_assert_eq!(store.month_points.values().sum::<i64>(), expected);
        }
    }
}
