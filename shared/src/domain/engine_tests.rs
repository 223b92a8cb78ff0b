//! The rules engine's tests: a table per rule feature, asserting points and ledger effects
//! through the real award path over the in-memory store (`Replay`), or `Program::evaluate`
//! where one evaluation says it more plainly; then property tests of the engine's laws
//! (limits hold, reversals undo, the calculator agrees with the award).

use super::*;
use crate::adapters::memory::Account;
use crate::domain::envelope::parse_event;
use crate::domain::ledger::{EntryStatus, EventRecord};
use crate::domain::participant::Profile;
use crate::domain::program::ProgramVersions;
use crate::service::award::Outcome;
use crate::service::replay::Replay;
use jiff::SignedDuration;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

const HEAD: &str = "program: acme\nname: ACME\ntime_zone: Europe/Stockholm\n";
const SAMPLE: &str = include_str!("../../../events/admin/program.yaml");

fn program(body: &str) -> Program {
    Program::parse(&format!("{HEAD}{body}"), 1).unwrap_or_else(|e| panic!("{e:?}"))
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn event_of(participant: &str, id: &str, kind: &str, occurred: &str, attributes: Value) -> Event {
    let envelope = json!({"id": id, "participant": participant, "type": kind,
        "occurred_at": occurred, "attributes": attributes});
    parse_event(&envelope, "", at("2100-01-01T00:00:00Z")).unwrap_or_else(|e| panic!("{id}: {e:?}"))
}

fn event(id: &str, kind: &str, occurred: &str, attributes: Value) -> Event {
    event_of("rep-1", id, kind, occurred, attributes)
}

/// A cancellation of `original`, an hour after it occurred.
fn reversal(id: &str, original: &Event) -> Event {
    let occurred = (original.occurred_at + SignedDuration::from_hours(1)).to_string();
    event_of(
        &original.participant,
        id,
        "deal.cancelled",
        &occurred,
        json!({"original_event": original.id}),
    )
}

/// The participant the `evaluate` tables use: enrolled on 1 January 2026.
fn subject() -> Subject<'static> {
    Subject {
        role: Some("seller"),
        segment: Some("rising"),
        tier: Some("gold"),
        distributor: Some("nordic"),
        location: Some("sthlm"),
        region: Some("nordics"),
        status: "active",
        enrolled_at: at("2026-01-01T00:00:00Z"),
    }
}

/// `event` evaluated with no counters, received as it occurred.
fn evaluate(program: &Program, event: &Event, subject: &Subject) -> Evaluation {
    evaluate_received(program, event, event.occurred_at, subject)
}

fn evaluate_received(
    program: &Program,
    event: &Event,
    received_at: Timestamp,
    subject: &Subject,
) -> Evaluation {
    let periods = Periods::of(event.occurred_at, &program.time_zone);
    program.evaluate(event, received_at, &periods, subject, &Counters::default())
}

fn sources(line: &Line) -> Vec<&str> {
    line.factors.iter().map(|f| f.source.as_str()).collect()
}

/// The real award path over the in-memory store.
struct Rig {
    replay: Replay,
    runtime: tokio::runtime::Runtime,
}

impl Rig {
    /// A program of `body` with rep-1 enrolled on 1 January 2026.
    fn new(body: &str) -> Self {
        let rig = Self::of(program(body));
        rig.enrol("rep-1", "2026-01-01T00:00:00Z", json!({}));
        rig
    }

    /// Nobody enrolled yet.
    fn of(program: Program) -> Self {
        Self {
            replay: Replay::new(ProgramVersions::single(program, Timestamp::UNIX_EPOCH)),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
        }
    }

    /// Enrols with a seller's profile, `changes` laid over it.
    fn enrol(&self, participant: &str, enrolled_at: &str, changes: Value) {
        let mut profile = json!({"name": "Rep", "email": "rep@dealer.example", "locale": "sv-SE",
            "time_zone": "Europe/Stockholm", "role": "seller", "distributor": "nordic",
            "location": "sthlm", "region": "nordics"});
        for (field, value) in changes.as_object().unwrap() {
            profile[field] = value.clone();
        }
        let profile = Profile::from_json(&profile).unwrap();
        self.replay.enrol(participant, profile, at(enrolled_at));
    }

    fn deliver_at(&self, event: &Event, received_at: Timestamp) -> Outcome {
        self.runtime
            .block_on(self.replay.deliver(event.clone(), received_at))
            .unwrap()
    }

    /// Received a minute after it occurred.
    fn deliver(&self, event: &Event) -> Outcome {
        self.deliver_at(event, received(event))
    }

    /// Delivers an original and returns what it earned.
    fn earn(&self, event: &Event) -> i64 {
        match self.deliver(event) {
            Outcome::Awarded { points } => points,
            other => panic!("{}: {other:?}", event.id),
        }
    }

    /// Delivers a reversal and returns what it clawed back.
    fn reverse(&self, event: &Event) -> i64 {
        match self.deliver(event) {
            Outcome::Reversed { points } => points,
            other => panic!("{}: {other:?}", event.id),
        }
    }

    /// What the calculator says `event` would earn, received a minute after it occurred.
    fn quote(&self, event: &Event) -> Evaluation {
        self.runtime
            .block_on(self.replay.quote(event, received(event)))
            .unwrap()
            .evaluation
    }

    fn account(&self, participant: &str) -> Account {
        self.replay.store.accounts()[&(self.replay.program.clone(), participant.to_owned())].clone()
    }

    fn record(&self, id: &str) -> EventRecord {
        self.account("rep-1").records[id].clone()
    }
}

fn received(event: &Event) -> Timestamp {
    event.occurred_at + SignedDuration::from_mins(1)
}

fn rule_lines(record: &EventRecord) -> Vec<(&str, u32, i64)> {
    record
        .rules
        .iter()
        .map(|l| (l.id.as_str(), l.version, l.points))
        .collect()
}

// ---- Matching ----------------------------------------------------------------------------

#[test]
fn attribute_predicates() {
    // (condition on attribute x, the event's attributes, whether the rule matches)
    let table: Vec<(&str, Value, bool)> = vec![
        ("SEK", json!({"x": "SEK"}), true),
        ("SEK", json!({"x": "NOK"}), false),
        ("SEK", json!({}), false),
        ("{ eq: 5 }", json!({"x": 5}), true),
        ("{ eq: 5 }", json!({"x": "5.000"}), true),
        ("{ eq: 5 }", json!({"x": 5.5}), false),
        ("{ in: [gold, silver] }", json!({"x": "silver"}), true),
        ("{ in: [gold, silver] }", json!({"x": "bronze"}), false),
        ("{ in: [gold, silver] }", json!({}), false),
        ("{ in: [1, 2] }", json!({"x": "2.00"}), true),
        ("{ gte: 10000 }", json!({"x": 10000}), true),
        ("{ gte: 10000 }", json!({"x": "10000.00"}), true),
        ("{ gte: 10000 }", json!({"x": "9999.99"}), false),
        ("{ gte: 10000 }", json!({"x": "lots"}), false),
        ("{ gte: 10000 }", json!({}), false),
        ("{ gt: 1, lt: 3 }", json!({"x": 2}), true),
        ("{ gt: 1, lt: 3 }", json!({"x": 1}), false),
        ("{ gt: 1, lt: 3 }", json!({"x": 3}), false),
        ("{ lte: 2.5 }", json!({"x": "2.50"}), true),
        ("{ lte: 2.5 }", json!({"x": 2.51}), false),
        ("{ gte: -1, lte: -1 }", json!({"x": -1}), true),
        ("{ exists: true }", json!({"x": 0}), true),
        ("{ exists: true }", json!({"x": " "}), false),
        ("{ exists: true }", json!({"x": null}), false),
        ("{ exists: true }", json!({}), false),
        ("{ exists: false }", json!({}), true),
        ("{ exists: false }", json!({"x": ""}), true),
        ("{ exists: false }", json!({"x": "y"}), false),
        // Numbers compare as exact decimals, numeric strings included.
        ("48000", json!({"x": "48000.00"}), true),
        ("\"48000\"", json!({"x": 48000.0}), true),
        ("{ eq: 0.1 }", json!({"x": "0.10"}), true),
        // Two strings compare as text: codes keep their leading zeros.
        ("\"007\"", json!({"x": "7"}), false),
        ("true", json!({"x": true}), true),
        ("true", json!({"x": "true"}), false),
    ];
    for (condition, attributes, matches) in table {
        let program = program(&format!(
            "rules:\n  - id: r\n    when: {{ type: acme.sale, attributes: {{ x: {condition} }} }}\n    award: {{ points: 10 }}\n"
        ));
        let sale = event(
            "s-1",
            "acme.sale",
            "2026-11-04T10:00:00+01:00",
            attributes.clone(),
        );
        let points = evaluate(&program, &sale, &subject()).points;
        assert_eq!(
            points,
            if matches { 10 } else { 0 },
            "x: {condition} with {attributes}"
        );
    }
}

#[test]
fn every_attribute_condition_must_hold_and_only_the_events_type_is_matched() {
    let program = program(
        "rules:\n  - id: r\n    when: { type: [acme.sale, acme.resale], attributes: { currency: SEK, amount: { gte: 100 } } }\n    award: { points: 10 }\n",
    );
    for (kind, attributes, points) in [
        ("acme.sale", json!({"currency": "SEK", "amount": 100}), 10),
        ("acme.resale", json!({"currency": "SEK", "amount": 100}), 10),
        ("acme.sale", json!({"currency": "NOK", "amount": 100}), 0),
        ("acme.sale", json!({"currency": "SEK", "amount": 99}), 0),
        ("acme.other", json!({"currency": "SEK", "amount": 100}), 0),
    ] {
        let e = event("s-1", kind, "2026-11-04T10:00:00+01:00", attributes.clone());
        assert_eq!(
            evaluate(&program, &e, &subject()).points,
            points,
            "{kind} {attributes}"
        );
    }
}

#[test]
fn participant_predicates() {
    type Edit = fn(&mut Subject<'static>);
    let unchanged: Edit = |_| {};
    // (condition on the participant, a change to the default subject, whether it matches)
    let table: Vec<(&str, Edit, bool)> = vec![
        ("role: seller", unchanged, true),
        ("role: seller", |s| s.role = Some("manager"), false),
        ("segment: { in: [rising, steady] }", unchanged, true),
        (
            "segment: { in: [rising, steady] }",
            |s| s.segment = None,
            false,
        ),
        ("tier: gold", unchanged, true),
        ("tier: { exists: false }", |s| s.tier = None, true),
        ("tier: { exists: false }", unchanged, false),
        // The event occurs 2026-11-04T09:00Z: 180 days after 2026-05-08T09:00Z.
        ("tenure_days: { gte: 180 }", unchanged, true),
        (
            "tenure_days: { gte: 180 }",
            |s| s.enrolled_at = at("2026-05-08T09:00:00Z"),
            true,
        ),
        (
            "tenure_days: { gte: 180 }",
            |s| s.enrolled_at = at("2026-05-08T09:00:01Z"),
            false,
        ),
        (
            "tenure_days: { lt: 180 }",
            |s| s.enrolled_at = at("2026-05-08T09:00:01Z"),
            true,
        ),
        ("distributor: nordic", unchanged, true),
        ("distributor: { in: [baltic] }", unchanged, false),
        ("location: sthlm", unchanged, true),
        ("location: sthlm", |s| s.location = Some("gbg"), false),
        ("region: nordics", unchanged, true),
        ("region: nordics", |s| s.region = None, false),
        ("status: active", unchanged, true),
        ("status: active", |s| s.status = "suspended", false),
        ("{ role: seller, tier: silver }", unchanged, false),
    ];
    for (condition, edit, matches) in table {
        let condition = if condition.starts_with('{') {
            condition.to_owned()
        } else {
            format!("{{ {condition} }}")
        };
        let program = program(&format!(
            "rules:\n  - id: r\n    when: {{ type: acme.sale, participant: {condition} }}\n    award: {{ points: 10 }}\n"
        ));
        let mut who = subject();
        edit(&mut who);
        let sale = event("s-1", "acme.sale", "2026-11-04T10:00:00+01:00", json!({}));
        assert_eq!(
            evaluate(&program, &sale, &who).points,
            if matches { 10 } else { 0 },
            "participant: {condition} with {who:?}"
        );
    }
}

#[test]
fn participant_traits_come_from_the_enrolment_segment_and_status_as_stored() {
    let rig = Rig::new(
        "rules:\n  - id: r\n    when: { type: acme.sale, participant: { tier: gold, segment: rising, status: active, tenure_days: { gte: 10 } } }\n    award: { points: 10 }\n",
    );
    rig.enrol("rep-1", "2026-01-01T00:00:00Z", json!({"tier": "gold"}));
    let sale = |id: &str| event(id, "acme.sale", "2026-11-04T10:00:00+01:00", json!({}));
    assert_eq!(rig.earn(&sale("s-1")), 0, "no segment yet");
    rig.replay
        .store
        .set_segment("acme", "rep-1", Some("rising".into()));
    assert_eq!(rig.earn(&sale("s-2")), 10);
    rig.replay
        .store
        .memory
        .lock()
        .unwrap()
        .accounts
        .get_mut(&("acme".to_owned(), "rep-1".to_owned()))
        .unwrap()
        .state
        .status = "suspended".into();
    assert_eq!(rig.earn(&sale("s-3")), 0, "suspended");
}

// ---- Amounts -----------------------------------------------------------------------------

#[test]
fn fixed_and_proportional_points_with_each_rounding() {
    // (award, attribute x, points)
    let table: Vec<(&str, Value, i64)> = vec![
        ("points: 25", json!({}), 25),
        ("points: -5", json!({}), -5),
        (
            "per: { attribute: x, every: 1000 }, points: 1",
            json!({"x": "250000.50"}),
            250,
        ),
        (
            "per: { attribute: x, every: 1000 }, points: 1",
            json!({"x": 999.99}),
            0,
        ),
        ("per: { attribute: x }, points: 1", json!({"x": "12.9"}), 12),
        (
            "per: { attribute: x }, points: 1",
            json!({"x": "-12.9"}),
            -12,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: down",
            json!({"x": -0.5}),
            0,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: up",
            json!({"x": "12.1"}),
            13,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: up",
            json!({"x": "-12.1"}),
            -13,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: up",
            json!({"x": 12}),
            12,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: nearest",
            json!({"x": "12.5"}),
            13,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: nearest",
            json!({"x": "12.49"}),
            12,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: nearest",
            json!({"x": "-12.5"}),
            -13,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: half_even",
            json!({"x": "12.5"}),
            12,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: half_even",
            json!({"x": "13.5"}),
            14,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: half_even",
            json!({"x": "-12.5"}),
            -12,
        ),
        (
            "per: { attribute: x }, points: 1, rounding: half_even",
            json!({"x": "-13.5"}),
            -14,
        ),
        (
            "per: { attribute: x, every: 3 }, points: 1, rounding: nearest",
            json!({"x": 10}),
            3,
        ),
        (
            "per: { attribute: x }, points: 0.5, rounding: up",
            json!({"x": 3}),
            2,
        ),
        // A penalty per unit: -5.5 rounds toward zero.
        (
            "per: { attribute: x }, points: -2",
            json!({"x": "2.75"}),
            -5,
        ),
        // No event carries more than 1,000,000 points either way, however large the input.
        (
            "per: { attribute: x, every: 1000 }, points: 1",
            json!({"x": 1e20}),
            1_000_000,
        ),
        (
            "per: { attribute: x, every: 0.000001 }, points: 1000",
            json!({"x": 1e28}),
            1_000_000,
        ),
        (
            "per: { attribute: x, every: 0.000001 }, points: -1000",
            json!({"x": 1e28}),
            -1_000_000,
        ),
    ];
    for (award, attributes, points) in table {
        let program = program(&format!(
            "rules:\n  - id: r\n    when: {{ type: acme.sale }}\n    award: {{ {award} }}\n"
        ));
        let sale = event(
            "s-1",
            "acme.sale",
            "2026-11-04T10:00:00+01:00",
            attributes.clone(),
        );
        let evaluation = evaluate(&program, &sale, &subject());
        assert_eq!(
            evaluation.points, points,
            "award {{ {award} }} with {attributes}"
        );
        assert_eq!(evaluation.lines[0].uncapped, points);
    }
}

#[test]
fn rounding_is_decimal_rounding_clamped_to_what_an_event_may_carry() {
    let rules = [
        (Rounding::Down, rust_decimal::RoundingStrategy::ToZero),
        (Rounding::Up, rust_decimal::RoundingStrategy::AwayFromZero),
        (
            Rounding::Nearest,
            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
        ),
        (
            Rounding::HalfEven,
            rust_decimal::RoundingStrategy::MidpointNearestEven,
        ),
    ];
    proptest!(ProptestConfig::with_cases(256), |(mantissa in any::<i64>(), scale in 0u32..=12, rule in 0usize..4)| {
        let amount = Decimal::new(mantissa, scale);
        let (rounding, strategy) = rules[rule];
        let max = Decimal::from(MAX_POINTS_PER_EVENT);
        let expected = amount.round_dp_with_strategy(0, strategy).clamp(-max, max);
        prop_assert_eq!(Decimal::from(round(amount, rounding)), expected, "{} {:?}", amount, rounding);
    });
}

#[test]
fn a_proportional_rule_without_its_number_earns_nothing_and_says_why() {
    let program = program(
        "rules:\n  - id: r\n    when: { type: acme.sale }\n    award: { per: { attribute: x }, points: 1 }\n",
    );
    for attributes in [json!({}), json!({"x": "many"}), json!({"x": [1]})] {
        let sale = event("s-1", "acme.sale", "2026-11-04T10:00:00+01:00", attributes);
        let evaluation = evaluate(&program, &sale, &subject());
        assert_eq!(evaluation.points, 0);
        assert_eq!(
            evaluation.lines[0].note.as_deref(),
            Some("attribute x is missing or not a number")
        );
    }
}

// ---- Campaigns ---------------------------------------------------------------------------

const CAMPAIGNS: &str = r#"
rules:
  - id: contract
    when: { type: contract.started }
    award: { points: 100 }
  - id: deal
    when: { type: deal.registered }
    award: { points: 10 }
  - id: late-penalty
    when: { type: crm.activity_logged, late_days: { gt: 30 } }
    award: { points: -5 }
campaigns:
  - id: sprint
    from: 2026-12-01T00:00:00+01:00
    until: 2026-12-24T00:00:00+01:00
    rules: [contract]
    multiplier: 2
  - id: fast-start
    enrolment_days: { from: 0, until: 60 }
    multiplier: 1.5
  - id: gold-deals
    version: 3
    from: 2026-01-01T00:00:00+01:00
    rules: [deal]
    participant: { tier: gold }
    multiplier: 3
"#;

#[test]
fn campaigns_multiply_in_their_window_for_their_rules_and_participants() {
    let rig = Rig::new(CAMPAIGNS);
    rig.enrol("veteran", "2026-01-01T00:00:00Z", json!({}));
    rig.enrol("late", "2026-11-20T12:00:00+01:00", json!({}));
    rig.enrol("gold", "2026-01-01T00:00:00Z", json!({"tier": "gold"}));
    let contract = |id: &str| json!({"contract_id": id, "financed_volume": "1", "currency": "SEK"});
    // (participant, type, occurred_at, points, campaigns applied)
    let table: Vec<(&str, &str, &str, i64, Vec<&str>)> = vec![
        (
            "veteran",
            "contract.started",
            "2026-11-30T23:59:59+01:00",
            100,
            vec![],
        ),
        (
            "veteran",
            "contract.started",
            "2026-12-01T00:00:00+01:00",
            200,
            vec!["campaign:sprint@1"],
        ),
        (
            "veteran",
            "contract.started",
            "2026-12-23T23:59:59+01:00",
            200,
            vec!["campaign:sprint@1"],
        ),
        (
            "veteran",
            "contract.started",
            "2026-12-24T00:00:00+01:00",
            100,
            vec![],
        ),
        // The sprint names its rules.
        (
            "veteran",
            "deal.registered",
            "2026-12-05T12:00:00+01:00",
            10,
            vec![],
        ),
        // A late joiner gets a fast start of their own: days 0 to 59 after enrolment.
        (
            "late",
            "contract.started",
            "2026-11-25T12:00:00+01:00",
            150,
            vec!["campaign:fast-start@1"],
        ),
        (
            "late",
            "contract.started",
            "2027-01-18T12:00:00+01:00",
            150,
            vec!["campaign:fast-start@1"],
        ),
        (
            "late",
            "contract.started",
            "2027-01-19T12:00:00+01:00",
            100,
            vec![],
        ),
        // Two campaigns stack: 100 × 2 × 1.5.
        (
            "late",
            "contract.started",
            "2026-12-05T12:00:00+01:00",
            300,
            vec!["campaign:sprint@1", "campaign:fast-start@1"],
        ),
        // The participant filter.
        (
            "gold",
            "deal.registered",
            "2026-12-05T12:00:00+01:00",
            30,
            vec!["campaign:gold-deals@3"],
        ),
    ];
    for (i, (who, kind, occurred, points, campaigns)) in table.into_iter().enumerate() {
        let id = format!("e-{i}");
        let attributes = match kind {
            "contract.started" => contract(&id),
            _ => json!({"deal_id": id}),
        };
        let e = event_of(who, &id, kind, occurred, attributes);
        let quote = rig.quote(&e);
        assert_eq!(quote.points, points, "{who} {kind} at {occurred}");
        assert_eq!(
            sources(&quote.lines[0]),
            campaigns,
            "{who} {kind} at {occurred}"
        );
        assert_eq!(rig.deliver(&e), Outcome::Awarded { points });
    }
    assert_eq!(rig.account("late").state.balance, 150 + 150 + 100 + 300);
}

#[test]
fn campaigns_do_not_multiply_penalties() {
    let rig = Rig::new(CAMPAIGNS);
    rig.enrol("late", "2026-11-20T12:00:00+01:00", json!({}));
    // Recorded 32 days late, during the late joiner's fast start.
    let logged = event_of(
        "late",
        "l-1",
        "crm.activity_logged",
        "2026-11-21T12:00:00+01:00",
        json!({"activity": "call", "recorded_at": "2026-12-23T12:00:00+01:00"}),
    );
    let quote = rig.quote(&logged);
    assert_eq!(quote.points, -5);
    assert!(quote.lines[0].factors.is_empty(), "{quote:?}");
    assert_eq!(rig.earn(&logged), -5);
}

// ---- Caps ---------------------------------------------------------------------------------

/// Four events in one period, then one in the next; and where the counter lives.
struct Window {
    per: &'static str,
    same: [&'static str; 4],
    next: Option<&'static str>,
    scope: Scope,
    name: &'static str,
}

fn windows() -> Vec<Window> {
    let month = |m: &str| Scope::Month(m.to_owned());
    vec![
        Window {
            per: "day",
            same: [
                "2026-11-04T00:00:00+01:00",
                "2026-11-04T08:00:00+01:00",
                "2026-11-04T15:00:00+01:00",
                "2026-11-04T23:59:59+01:00",
            ],
            next: Some("2026-11-05T00:00:00+01:00"),
            scope: month("2026-11"),
            name: "tick@04",
        },
        // ISO week 49 runs from Monday 30 November to Sunday 6 December: its counter lives on
        // the month of its Monday.
        Window {
            per: "week",
            same: [
                "2026-11-30T00:00:00+01:00",
                "2026-12-01T12:00:00+01:00",
                "2026-12-03T12:00:00+01:00",
                "2026-12-06T23:59:59+01:00",
            ],
            next: Some("2026-12-07T00:00:00+01:00"),
            scope: month("2026-11"),
            name: "tick@2026-W49",
        },
        Window {
            per: "month",
            same: [
                "2026-11-01T00:00:00+01:00",
                "2026-11-15T12:00:00+01:00",
                "2026-11-30T12:00:00+01:00",
                "2026-11-30T23:59:59+01:00",
            ],
            next: Some("2026-12-01T00:00:00+01:00"),
            scope: month("2026-11"),
            name: "tick",
        },
        Window {
            per: "quarter",
            same: [
                "2026-10-01T00:00:00+02:00",
                "2026-11-15T12:00:00+01:00",
                "2026-12-01T12:00:00+01:00",
                "2026-12-31T23:59:59+01:00",
            ],
            next: Some("2027-01-01T00:00:00+01:00"),
            scope: Scope::Profile,
            name: "tick@2026-Q4",
        },
        Window {
            per: "year",
            same: [
                "2026-01-01T00:00:00+01:00",
                "2026-06-01T12:00:00+02:00",
                "2026-11-15T12:00:00+01:00",
                "2026-12-31T23:59:59+01:00",
            ],
            next: Some("2027-01-01T00:00:00+01:00"),
            scope: Scope::Profile,
            name: "tick@2026",
        },
        Window {
            per: "lifetime",
            same: [
                "2026-01-01T00:00:00+01:00",
                "2027-06-01T12:00:00+02:00",
                "2030-11-15T12:00:00+01:00",
                "2040-12-31T23:59:59+01:00",
            ],
            next: None,
            scope: Scope::Profile,
            name: "tick",
        },
    ]
}

fn counter_value(account: &Account, scope: &Scope, name: &str) -> i64 {
    let value = match scope {
        Scope::Profile => account.counters.get(name),
        Scope::Month(m) => account.months.get(m).and_then(|m| m.counters.get(name)),
        Scope::Budget(_) => unreachable!("participant counters only"),
    };
    value.copied().unwrap_or(0)
}

#[test]
fn caps_per_period_in_points_and_times_award_up_to_the_room() {
    // (unit, the rule's points, what four events in one period earn, the counter after them)
    let units: [(&str, &str, i64, [i64; 4], i64); 3] = [
        ("points: 25", "p", 10, [10, 10, 5, 0], 25),
        ("times: 2", "t", 10, [10, 10, 0, 0], 2),
        // A penalty is capped by its magnitude, on a counter of its own sign.
        ("points: 25", "p-", -10, [-10, -10, -5, 0], -25),
    ];
    for window in windows() {
        for (limit, kind, award, earned, stored) in units {
            let rig = Rig::new(&format!(
                "rules:\n  - id: tick\n    when: {{ type: acme.tick }}\n    award: {{ points: {award} }}\n    caps: [{{ per: {}, {limit} }}]\n",
                window.per
            ));
            let case = format!("per {} {limit} award {award}", window.per);
            for (i, (occurred, expected)) in window.same.iter().zip(earned).enumerate() {
                let tick = event(&format!("t-{i}"), "acme.tick", occurred, json!({}));
                let quote = rig.quote(&tick);
                assert_eq!(rig.earn(&tick), expected, "{case}: event {i}");
                assert_eq!(quote.points, expected, "{case}: event {i}");
                assert_eq!(quote.lines[0].uncapped, award);
                let limited = quote.lines[0].limited_by.as_ref();
                if expected == award {
                    assert_eq!(limited, None, "{case}: event {i}");
                } else {
                    let limited = limited.unwrap_or_else(|| panic!("{case}: event {i}"));
                    assert_eq!(limited.by, "cap");
                    assert_eq!(limited.per.name(), window.per);
                    assert_eq!(limited.room, (expected.abs()), "{case}: event {i}");
                    assert_eq!(limited.unit, if kind == "t" { "times" } else { "points" });
                }
            }
            let account = rig.account("rep-1");
            let name = format!("{kind}:{}", window.name);
            assert_eq!(
                counter_value(&account, &window.scope, &name),
                stored,
                "{case}: {name}"
            );
            assert_eq!(account.state.balance, earned.iter().sum::<i64>(), "{case}");
            if let Some(next) = window.next {
                let tick = event("t-next", "acme.tick", next, json!({}));
                assert_eq!(rig.earn(&tick), award, "{case}: the next period");
            }
        }
    }
}

#[test]
fn a_cap_bounds_each_sign_of_a_rule_so_no_reversal_carries_it_past() {
    let rig = Rig::new(
        "rules:\n  - id: r\n    when: { type: acme.sale }\n    award: { per: { attribute: x }, points: 1 }\n    caps: [{ per: month, points: 100 }]\n",
    );
    let sales: Vec<Event> = [90, -50, 70, -200, -1, 30]
        .iter()
        .enumerate()
        .map(|(i, x)| sale(&format!("s-{i}"), *x, "2026-11-04T10:00:00+01:00"))
        .collect();
    let earned: Vec<i64> = sales.iter().map(|s| rig.earn(s)).collect();
    assert_eq!(earned, [90, -50, 10, -50, 0, 0]);
    let month = Scope::Month("2026-11".into());
    let counters = |rig: &Rig| {
        let account = rig.account("rep-1");
        (
            counter_value(&account, &month, "p:r"),
            counter_value(&account, &month, "p-:r"),
        )
    };
    assert_eq!(counters(&rig), (100, -100));
    // Cancelling the corrections leaves the 100 the cap allows, not more.
    rig.reverse(&reversal("c-1", &sales[1]));
    rig.reverse(&reversal("c-3", &sales[3]));
    assert_eq!(rig.account("rep-1").state.balance, 100);
    assert_eq!(counters(&rig), (100, 0));
}

#[test]
fn a_rule_has_at_most_one_cap_per_period_and_unit() {
    let errors = Program::parse(
        &format!(
            "{HEAD}rules:\n  - id: r\n    when: {{ type: acme.sale }}\n    award: {{ points: 1 }}\n    caps: [{{ per: month, points: 10 }}, {{ per: day, points: 5 }}, {{ per: month, points: 20 }}, {{ per: month, times: 2 }}]\n"
        ),
        1,
    )
    .unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["rules[0].caps[2]"], "{errors:?}");
}

#[test]
fn once_only_awards_once_and_again_only_after_a_reversal() {
    let rig = Rig::new(
        "rules:\n  - id: first-login\n    when: { type: portal.login }\n    award: { points: 100 }\n    once: true\n",
    );
    let login = |id: &str, day: u8| {
        event(
            id,
            "portal.login",
            &format!("2026-11-{day:02}T09:00:00+01:00"),
            json!({}),
        )
    };
    assert_eq!(rig.earn(&login("l-1", 2)), 100);
    assert_eq!(rig.earn(&login("l-2", 3)), 0);
    let quote = rig.quote(&login("l-3", 4));
    assert_eq!(
        quote.lines[0]
            .limited_by
            .as_ref()
            .map(|l| (l.per, l.unit, l.limit, l.room)),
        Some((Period::Lifetime, "times", 1, 0))
    );
    // A reversal takes the award back, and the lifetime count with it.
    assert_eq!(rig.reverse(&reversal("c-1", &login("l-1", 2))), -100);
    assert_eq!(
        counter_value(&rig.account("rep-1"), &Scope::Profile, "t:first-login"),
        0
    );
    assert_eq!(rig.earn(&login("l-3", 4)), 100);
    assert_eq!(rig.account("rep-1").state.balance, 100);
}

// ---- Milestones and streaks -------------------------------------------------------------------

const MILESTONES: &str = "rules:\n  - id: deals\n    when: { type: deal.registered }\n    milestone: { at: [1, 10, 50] }\n    award: { points: 250 }\n";

fn deal(n: usize) -> Event {
    let occurred = at("2026-11-01T09:00:00+01:00") + SignedDuration::from_hours(n as i64);
    event(
        &format!("d-{n}"),
        "deal.registered",
        &occurred.to_string(),
        json!({"deal_id": format!("D{n}")}),
    )
}

#[test]
fn milestones_award_at_their_counts() {
    let rig = Rig::new(MILESTONES);
    let earned: Vec<i64> = (1..=51).map(|n| rig.earn(&deal(n))).collect();
    for (n, points) in earned.iter().enumerate().map(|(i, p)| (i + 1, *p)) {
        let expected = if [1, 10, 50].contains(&n) { 250 } else { 0 };
        assert_eq!(points, expected, "deal {n}");
    }
    assert_eq!(rig.record("d-10").rules, rig.record("d-1").rules);
    assert_eq!(
        rig.quote(&deal(52)).lines[0].note.as_deref(),
        Some("match 52; every milestone is reached")
    );
    let rig = Rig::new(MILESTONES);
    rig.earn(&deal(1));
    assert_eq!(
        rig.quote(&deal(2)).lines[0].note.as_deref(),
        Some("match 2; the next milestone is at 10")
    );
}

#[test]
fn reversing_the_tenth_deal_takes_its_milestone_back_until_another_deal_makes_ten() {
    let rig = Rig::new(MILESTONES);
    for n in 1..=10 {
        rig.earn(&deal(n));
    }
    assert_eq!(rig.account("rep-1").state.balance, 500);
    assert_eq!(rig.reverse(&reversal("c-10", &deal(10))), -250);
    assert_eq!(
        counter_value(&rig.account("rep-1"), &Scope::Profile, "m:deals"),
        9
    );
    assert_eq!(rig.earn(&deal(11)), 250, "ten deals again");
    assert_eq!(rig.earn(&deal(12)), 0);
    assert_eq!(rig.account("rep-1").state.balance, 500);
}

#[test]
fn reversing_a_deal_that_earned_no_milestone_does_not_pay_a_milestone_twice() {
    let rig = Rig::new(MILESTONES);
    for n in 1..=10 {
        rig.earn(&deal(n));
    }
    assert_eq!(rig.reverse(&reversal("c-5", &deal(5))), 0);
    // Ten deals again, and the 10 milestone was paid already (to deal 10, not reversed).
    assert_eq!(rig.earn(&deal(11)), 0);
    let earned: i64 = (12..=51).map(|n| rig.earn(&deal(n))).sum();
    assert_eq!(earned, 250, "the 50th deal that stands");
    assert_eq!(rig.record("d-51").points, 250);
    assert_eq!(rig.account("rep-1").state.balance, 750);
}

#[test]
fn streaks_count_consecutive_periods_and_award_at_every_multiple() {
    let rig = Rig::new(
        r#"
rules:
  - id: daily
    when: { type: portal.login }
    streak: { per: day, length: 3 }
    award: { points: 30 }
  - id: weekly
    when: { type: acme.visit }
    streak: { per: week, length: 2 }
    award: { points: 70 }
"#,
    );
    // (day of November 2026, points, the note)
    let logins = [
        (1, 0, "streak 1 of 3"),
        (1, 0, "day already counted in the streak"),
        (2, 0, "streak 2 of 3"),
        (3, 30, "streak of 3 days"),
        // Late, from a day before the streak's last: it does not count.
        (2, 0, "earlier than the streak's last day"),
        (4, 0, "streak 4 of 3"),
        (5, 0, "streak 5 of 3"),
        (6, 30, "streak of 6 days"),
        // A gap resets the run.
        (8, 0, "streak 1 of 3"),
        (9, 0, "streak 2 of 3"),
        (10, 30, "streak of 3 days"),
    ];
    for (i, (day, points, note)) in logins.into_iter().enumerate() {
        let login = event(
            &format!("l-{i}"),
            "portal.login",
            &format!("2026-11-{day:02}T09:00:00+01:00"),
            json!({}),
        );
        assert_eq!(
            rig.quote(&login).lines[0].note.as_deref(),
            Some(note),
            "login {i}"
        );
        assert_eq!(rig.earn(&login), points, "login {i} on day {day}");
    }
    // Weeks 45, 45, 46, (gap) 48, 49.
    for (i, (occurred, points)) in [
        ("2026-11-02T09:00:00+01:00", 0),
        ("2026-11-08T20:00:00+01:00", 0),
        ("2026-11-11T09:00:00+01:00", 70),
        ("2026-11-25T09:00:00+01:00", 0),
        ("2026-12-03T09:00:00+01:00", 70),
    ]
    .into_iter()
    .enumerate()
    {
        let visit = event(&format!("v-{i}"), "acme.visit", occurred, json!({}));
        assert_eq!(rig.earn(&visit), points, "visit {i} at {occurred}");
    }
    assert_eq!(
        counter_value(&rig.account("rep-1"), &Scope::Profile, "r:daily"),
        3
    );
    assert_eq!(
        counter_value(&rig.account("rep-1"), &Scope::Profile, "r:weekly"),
        2
    );
}

// ---- Quality and penalties -----------------------------------------------------------------

#[test]
fn quality_steps_by_how_late_the_activity_was_received_or_recorded() {
    let program = program(
        r#"
rules:
  - id: on-receipt
    when: { type: acme.sale }
    award: { points: 100 }
    quality:
      factors: [{ within_days: 3, factor: 1 }, { within_days: 14, factor: 0.5 }]
      otherwise: 0
  - id: as-recorded
    when: { type: acme.call }
    award: { points: 100 }
    quality:
      measured_from: recorded_at
      factors: [{ within_days: 1, factor: 1 }]
      otherwise: 0.25
"#,
    );
    let occurred = "2026-11-04T10:00:00+01:00";
    let day = SignedDuration::from_hours(24);
    let second = SignedDuration::from_secs(1);
    let late = |by: SignedDuration| at(occurred) + by;
    // (type, attributes, received, points)
    let table: Vec<(&str, Value, Timestamp, i64)> = vec![
        ("acme.sale", json!({}), at(occurred), 100),
        ("acme.sale", json!({}), late(day * 3), 100),
        ("acme.sale", json!({}), late(day * 3 + second), 50),
        ("acme.sale", json!({}), late(day * 14), 50),
        ("acme.sale", json!({}), late(day * 15), 0),
        // recorded_at counts for rules measured from it; received is the fallback.
        (
            "acme.call",
            json!({"recorded_at": "2026-11-04T18:00:00+01:00"}),
            late(day * 20),
            100,
        ),
        (
            "acme.call",
            json!({"recorded_at": "2026-11-06T10:00:00+01:00"}),
            late(day),
            25,
        ),
        ("acme.call", json!({}), late(day * 20), 25),
        ("acme.call", json!({}), late(day / 2), 100),
        // recorded_at does not move a rule measured from receipt.
        (
            "acme.sale",
            json!({"recorded_at": "2026-11-04T10:00:00+01:00"}),
            late(day * 15),
            0,
        ),
    ];
    for (kind, attributes, received_at, points) in table {
        let e = event("e-1", kind, occurred, attributes.clone());
        let evaluation = evaluate_received(&program, &e, received_at, &subject());
        assert_eq!(
            evaluation.points, points,
            "{kind} {attributes} received {received_at}"
        );
        let quality: Vec<Decimal> = evaluation.lines[0]
            .factors
            .iter()
            .map(|f| f.value)
            .collect();
        let expected: Vec<Decimal> = match points {
            100 => vec![],
            p => vec![Decimal::new(p, 2)],
        };
        assert_eq!(
            quality, expected,
            "{kind} {attributes} received {received_at}"
        );
    }
}

#[test]
fn incomplete_activities_earn_the_incomplete_factor() {
    let program = program(
        "rules:\n  - id: r\n    when: { type: acme.sale }\n    award: { points: 100 }\n    quality: { factors: [{ within_days: 1, factor: 1 }], require: [customer, amount], incomplete: 0.5 }\n",
    );
    for (attributes, points) in [
        (json!({"customer": "C1", "amount": 0}), 100),
        (json!({"customer": "", "amount": 1}), 50),
        (json!({"customer": null, "amount": 1}), 50),
        (json!({"amount": 1}), 50),
        (json!({}), 50),
    ] {
        let sale = event(
            "s-1",
            "acme.sale",
            "2026-11-04T10:00:00+01:00",
            attributes.clone(),
        );
        let evaluation = evaluate(&program, &sale, &subject());
        assert_eq!(evaluation.points, points, "{attributes}");
        if points == 50 {
            assert_eq!(sources(&evaluation.lines[0]), ["incomplete"]);
        }
    }
}

#[test]
fn penalties_by_late_days() {
    let sample = Program::parse(SAMPLE, 1).unwrap();
    // crm-on-time earns 2 within a day; crm-late-penalty costs 5 past 30 whole days.
    for (recorded_at, points) in [
        ("2026-11-04T18:00:00+01:00", 2),
        ("2026-11-06T10:00:00+01:00", 0),
        ("2026-12-05T09:59:59+01:00", 0),
        ("2026-12-05T10:00:00+01:00", -5),
        ("2027-03-01T10:00:00+01:00", -5),
    ] {
        let logged = event(
            "l-1",
            "crm.activity_logged",
            "2026-11-04T10:00:00+01:00",
            json!({"activity": "call", "recorded_at": recorded_at}),
        );
        let evaluation =
            evaluate_received(&sample, &logged, at("2027-03-02T00:00:00Z"), &subject());
        assert_eq!(evaluation.points, points, "recorded {recorded_at}");
        assert_eq!(evaluation.expires_on.is_some(), points > 0);
    }
}

// ---- Budgets -----------------------------------------------------------------------------

#[test]
fn shard_limits_sum_to_the_ceiling() {
    let budget = |points, shards| Budget {
        id: "b".into(),
        description: None,
        rules: None,
        per: Period::Month,
        points,
        shards,
    };
    let limits = |b: &Budget| (0..b.shards).map(|s| shard_limit(b, s)).collect::<Vec<_>>();
    assert_eq!(limits(&budget(10, 4)), [3, 3, 2, 2]);
    assert_eq!(limits(&budget(100, 4)), [25, 25, 25, 25]);
    assert_eq!(limits(&budget(64, 64)), [1; 64]);
    proptest!(ProptestConfig::with_cases(64), |(shards in 1u16..=64, extra in 0i64..10_000_000)| {
        let b = budget(i64::from(shards) + extra, shards);
        let limits = limits(&b);
        prop_assert_eq!(limits.iter().sum::<i64>(), b.points);
        prop_assert!(limits.iter().max().unwrap() - limits.iter().min().unwrap() <= 1);
    });
}

const BUDGET: &str = r#"
rules:
  - id: sale
    when: { type: acme.sale }
    award: { per: { attribute: x }, points: 1 }
budgets:
  - id: pool
    per: month
    points: 100
    shards: 4
"#;

fn sale(id: &str, x: i64, occurred: &str) -> Event {
    event(id, "acme.sale", occurred, json!({"x": x}))
}

fn spent(rig: &Rig, shard: &str) -> i64 {
    rig.replay
        .store
        .budget_spent()
        .get(&("acme".to_owned(), shard.to_owned()))
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_budget_is_used_up_across_its_shards_before_anyone_is_refused() {
    let rig = Rig::new(BUDGET);
    let earned: Vec<i64> = (0..14)
        .map(|i| rig.earn(&sale(&format!("s-{i}"), 10, "2026-11-04T10:00:00+01:00")))
        .collect();
    // Full awards while some shard has room for one, then what the shards have left.
    assert_eq!(earned, [10, 10, 10, 10, 10, 10, 10, 10, 5, 5, 5, 5, 0, 0]);
    let shards: Vec<i64> = (0..4)
        .map(|s| spent(&rig, &format!("pool#2026-11#{s:02}")))
        .collect();
    assert_eq!(shards, [25, 25, 25, 25]);
    let quote = rig.quote(&sale("s-more", 10, "2026-11-05T10:00:00+01:00"));
    assert_eq!(quote.points, 0);
    let limited = quote.lines[0].limited_by.clone().unwrap();
    assert_eq!(
        (
            limited.by.as_str(),
            limited.per,
            limited.limit,
            limited.room
        ),
        ("budget:pool", Period::Month, 100, 0)
    );
    // A new month, a new budget.
    assert_eq!(
        rig.earn(&sale("s-dec", 10, "2026-12-01T10:00:00+01:00")),
        10
    );
}

#[test]
fn an_award_larger_than_its_own_shards_room_draws_on_the_roomiest_shard() {
    let rig = Rig::new(BUDGET);
    assert_eq!(rig.earn(&sale("s-1", 20, "2026-11-04T10:00:00+01:00")), 20);
    // Its own shard has 5 left; another has 25.
    assert_eq!(rig.earn(&sale("s-2", 10, "2026-11-04T11:00:00+01:00")), 10);
    // No shard has 30: the roomiest gives what it has.
    let quote = rig.quote(&sale("s-3", 30, "2026-11-04T12:00:00+01:00"));
    assert_eq!(quote.points, 25);
    assert_eq!(quote.lines[0].limited_by.as_ref().map(|l| l.room), Some(25));
    assert_eq!(rig.earn(&sale("s-3", 30, "2026-11-04T12:00:00+01:00")), 25);
    let total: i64 = (0..4)
        .map(|s| spent(&rig, &format!("pool#2026-11#{s:02}")))
        .sum();
    assert_eq!(total, 55);
}

#[test]
fn a_rule_in_two_budgets_spends_only_what_it_awards_from_each() {
    let rig = Rig::new(
        r#"
rules:
  - id: sale
    when: { type: acme.sale }
    award: { per: { attribute: x }, points: 1 }
budgets:
  - id: wide
    per: year
    points: 100
    shards: 1
  - id: narrow
    rules: [sale]
    per: month
    points: 40
    shards: 1
"#,
    );
    assert_eq!(rig.earn(&sale("s-1", 60, "2026-11-04T10:00:00+01:00")), 40);
    assert_eq!(spent(&rig, "wide#2026#00"), 40);
    assert_eq!(spent(&rig, "narrow#2026-11#00"), 40);
    assert_eq!(rig.earn(&sale("s-2", 70, "2026-12-04T10:00:00+01:00")), 40);
    assert_eq!(rig.earn(&sale("s-3", 70, "2026-12-05T10:00:00+01:00")), 0);
    assert_eq!(spent(&rig, "wide#2026#00"), 80);
}

// ---- Wallet --------------------------------------------------------------------------------

#[test]
fn pending_points_are_deposited_after_the_lock_on_the_posting_weekday() {
    // (earned on, lock days, posting weekday, deposited on)
    for (earned, lock_days, post_on, due) in [
        ("2026-11-04", 7, Some(1), "2026-11-16"), // a Wednesday: unlocked Wednesday 11th
        ("2026-11-02", 7, Some(1), "2026-11-09"), // a Monday: unlocked on a Monday
        ("2026-11-04", 0, Some(3), "2026-11-04"),
        ("2026-11-04", 0, None, "2026-11-04"),
        ("2026-11-04", 30, None, "2026-12-04"),
        ("2026-12-28", 7, Some(5), "2027-01-08"),
    ] {
        let earned: Date = earned.parse().unwrap();
        assert_eq!(
            pending_due(earned, lock_days, post_on).to_string(),
            due,
            "{earned} + {lock_days} days, on weekday {post_on:?}"
        );
    }
}

#[test]
fn lot_dates_are_computed_and_labelled_as_jiff_would() {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let epoch = jiff::civil::date(1970, 1, 1);
    let day = |days: i64| epoch.checked_add(jiff::Span::new().days(days)).unwrap();
    proptest!(ProptestConfig::with_cases(256), |(
        days in -4_371_587i64..=2_932_896,
        seconds in 0i64..4_000_000_000,
        lock_days in 0i64..=365,
        post_on in proptest::option::of(1i8..=7),
    )| {
        let date = day(days);
        prop_assert_eq!(date_label(date), date.to_string());
        let instant = Timestamp::from_second(seconds).unwrap();
        prop_assert_eq!(
            local_date(&Periods::of(instant, &zone)),
            instant.to_zoned(zone.clone()).date()
        );
        // The deposit date, step by step: unlocked, then on to the posting weekday.
        let earned = day(days % 2_900_000);
        let unlocked = earned.checked_add(jiff::Span::new().days(lock_days)).unwrap();
        let ahead = post_on.map_or(0, |weekday| {
            (i64::from(weekday) - i64::from(unlocked.weekday().to_monday_one_offset())).rem_euclid(7)
        });
        let due = unlocked.checked_add(jiff::Span::new().days(ahead)).unwrap();
        prop_assert_eq!(pending_due(earned, lock_days, post_on), due);
    });
}

const WALLET: &str = r#"
wallet:
  pending: { lock_days: 7, post_on: monday, rules: [contract] }
  expiry: { after_months: 24 }
rules:
  - id: contract
    when: { type: contract.started }
    award: { points: 100 }
  - id: deal
    when: { type: deal.registered }
    award: { points: 10 }
"#;

fn contract(id: &str, occurred: &str) -> Event {
    event(
        id,
        "contract.started",
        occurred,
        json!({"contract_id": id, "financed_volume": "1", "currency": "SEK"}),
    )
}

#[test]
fn pending_and_expiring_lots_are_kept_and_a_reversal_before_the_deposit_takes_them_back() {
    let rig = Rig::new(WALLET);
    let c1 = contract("c-1", "2026-11-04T10:00:00+01:00");
    assert_eq!(rig.earn(&c1), 100);
    let record = rig.record("c-1");
    assert_eq!(record.pending_until.as_deref(), Some("2026-11-16"));
    assert_eq!(record.expires_on.as_deref(), Some("2028-11-30"));
    let d1 = event(
        "d-1",
        "deal.registered",
        "2026-11-04T11:00:00+01:00",
        json!({"deal_id": "D1"}),
    );
    assert_eq!(rig.earn(&d1), 10);
    assert_eq!(
        rig.record("d-1").pending_until,
        None,
        "deals are not held back"
    );
    let lots = |rig: &Rig| {
        let account = rig.account("rep-1");
        let mut lots: Vec<(String, i64)> = account
            .counters
            .into_iter()
            .filter(|(name, _)| name.starts_with(PENDING_LOT) || name.starts_with(EXPIRY_LOT))
            .collect();
        lots.sort();
        lots
    };
    assert_eq!(
        lots(&rig),
        [
            ("exp@2028-11-30".to_owned(), 110),
            ("pend@2026-11-16".to_owned(), 100)
        ]
    );
    // Cancelled on the 10th, before the deposit: the lot goes with the points.
    rig.deliver_at(&reversal("x-1", &c1), at("2026-11-10T12:00:00+01:00"));
    assert_eq!(
        lots(&rig),
        [
            ("exp@2028-11-30".to_owned(), 10),
            ("pend@2026-11-16".to_owned(), 0)
        ]
    );
    assert_eq!(rig.account("rep-1").state.balance, 10);
    // Cancelled after the deposit: the points are clawed back, the deposited lot stays gone.
    let c2 = contract("c-2", "2026-11-05T10:00:00+01:00");
    rig.earn(&c2);
    let d2 = event(
        "d-2",
        "deal.registered",
        "2026-11-17T09:00:00+01:00",
        json!({"deal_id": "D2"}),
    );
    rig.deliver_at(&d2, at("2026-11-17T09:00:00+01:00"));
    assert!(
        lots(&rig)
            .iter()
            .all(|(name, _)| !name.starts_with(PENDING_LOT)),
        "{:?}",
        lots(&rig)
    );
    rig.deliver_at(&reversal("x-2", &c2), at("2026-11-18T12:00:00+01:00"));
    assert!(
        lots(&rig)
            .iter()
            .all(|(name, _)| !name.starts_with(PENDING_LOT))
    );
    assert_eq!(rig.account("rep-1").state.balance, 20);
}

#[test]
fn expiry_dates_rolling_and_fixed() {
    // (expiry, earned on, expires on)
    for (expiry, earned, expires) in [
        ("after_months: 24", "2026-11-04", "2028-11-30"),
        ("after_months: 1", "2026-01-31", "2026-02-28"),
        ("after_months: 13", "2027-01-15", "2028-02-29"),
        ("on: \"12-31\"", "2026-05-05", "2027-12-31"),
        ("on: \"12-31\", after_years: 0", "2026-05-05", "2026-12-31"),
        ("on: \"02-29\"", "2026-03-01", "2027-02-28"),
        ("on: \"02-29\", after_years: 2", "2026-03-01", "2028-02-29"),
        ("on: \"02-29\", after_years: 0", "2028-01-10", "2028-02-29"),
    ] {
        let program = program(&format!(
            "wallet: {{ expiry: {{ {expiry} }} }}\nrules:\n  - id: r\n    when: {{ type: acme.sale }}\n    award: {{ points: 10 }}\n"
        ));
        let sale = event(
            "s-1",
            "acme.sale",
            &format!("{earned}T12:00:00+01:00"),
            json!({}),
        );
        let evaluation = evaluate(&program, &sale, &subject());
        assert_eq!(
            evaluation.expires_on.as_deref(),
            Some(expires),
            "{expiry} from {earned}"
        );
        assert!(
            evaluation.writes.contains(&Write {
                scope: Scope::Profile,
                name: format!("{EXPIRY_LOT}{expires}"),
                op: Op::Add(10),
                guard: Guard::Free,
            }),
            "{:?}",
            evaluation.writes
        );
    }
}

// ---- Adjustments and rule windows --------------------------------------------------------------

#[test]
fn manual_adjustments_earn_exactly_their_points_with_the_reason() {
    let rig = Rig::new(
        "wallet: { pending: { lock_days: 7 }, expiry: { after_months: 12 } }\nrules:\n  - id: deal\n    when: { type: deal.registered }\n    award: { points: 10 }\n",
    );
    let adjust = |id: &str, points: i64, reason: &str| {
        event(
            id,
            "points.adjusted",
            "2026-11-04T10:00:00+01:00",
            json!({"points": points, "reason": reason}),
        )
    };
    assert_eq!(rig.earn(&adjust("adj:1", 500, "goodwill")), 500);
    let record = rig.record("adj:1");
    assert_eq!(rule_lines(&record), [(ADJUSTMENT_RULE, 1, 500)]);
    assert_eq!(record.note.as_deref(), Some("goodwill"));
    assert_eq!(
        record.pending_until, None,
        "an adjustment is never held back"
    );
    assert_eq!(record.expires_on.as_deref(), Some("2027-11-30"));
    assert_eq!(rig.earn(&adjust("adj:2", -200, "duplicate deal")), -200);
    let record = rig.record("adj:2");
    assert_eq!(rule_lines(&record), [(ADJUSTMENT_RULE, 1, -200)]);
    assert_eq!(record.expires_on, None);
    assert_eq!(rig.account("rep-1").state.balance, 300);
}

#[test]
fn rules_apply_from_their_start_until_their_end() {
    let program = program(
        "rules:\n  - id: r\n    version: 4\n    when: { type: acme.sale }\n    award: { points: 10 }\n    from: 2026-11-10T00:00:00+01:00\n    until: 2026-11-20T00:00:00+01:00\n",
    );
    for (occurred, points) in [
        ("2026-11-09T23:59:59+01:00", 0),
        ("2026-11-10T00:00:00+01:00", 10),
        ("2026-11-19T23:59:59+01:00", 10),
        ("2026-11-20T00:00:00+01:00", 0),
    ] {
        let sale = event("s-1", "acme.sale", occurred, json!({}));
        let evaluation = evaluate(&program, &sale, &subject());
        assert_eq!(evaluation.points, points, "{occurred}");
        assert_eq!(evaluation.lines.len(), usize::from(points > 0));
        if points > 0 {
            assert_eq!(
                (
                    evaluation.lines[0].rule.as_str(),
                    evaluation.lines[0].version
                ),
                ("r", 4)
            );
        }
    }
}

// ---- Validation ----------------------------------------------------------------------------

#[test]
fn every_error_of_a_rules_document_is_reported_with_its_path() {
    let document = r#"
rules:
  - id: a
    when: { type: acme.sale }
    award: { points: 1 }
  - id: a
    when: { type: acme.sale }
    award: { points: 2 }
  - id: capped
    when: { type: acme.sale }
    award: { points: 1 }
    caps: [{ per: day, points: 5, times: 1 }]
  - id: volume
    when: { type: acme.sale }
    award: { per: financed_volume, points: 1 }
  - id: both
    when: { type: acme.sale }
    award: { points: 1, rounding: sideways }
    milestone: { at: [1, 10] }
    streak: { per: day, length: 2 }
  - id: Bad Id
    when: { type: deal.cancelled, attributes: { x: [] } }
    award: { points: 2000000 }
    caps: [{ per: fortnight, points: 5 }]
  - id: welcome
    when: { type: [acme.sale, acme.resale, acme.sale] }
    award: { points: 1 }
    caps: [{ per: lifetime, times: 3 }]
    once: true
campaigns:
  - id: ghosts
    from: 2026-12-01T00:00:00+01:00
    rules: [a, ghost]
    multiplier: 2
  - id: greedy
    from: 2026-12-01T00:00:00+01:00
    until: 2026-11-01T00:00:00+01:00
    multiplier: 1000
budgets:
  - id: pool
    rules: [a, phantom]
    per: month
    points: 100
  - id: tiny
    per: day
    points: 2
wallet:
  pending: { lock_days: 7, post_on: someday, rules: [spectre] }
"#;
    let errors = Program::parse(&format!("{HEAD}{document}"), 1).unwrap_err();
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    let mut expected = vec![
        "rules[1].id",
        "rules[2].caps[0]",
        "rules[3].award.per",
        "rules[4].award.rounding",
        "rules[4].streak",
        "rules[5].id",
        "rules[5].when.type",
        "rules[5].when.attributes.x",
        "rules[5].award.points",
        "rules[5].caps[0].per",
        "rules[6].when.type[2]",
        "rules[6].once",
        "campaigns[0].rules[1]",
        "campaigns[1].until",
        "campaigns[1].multiplier",
        "budgets[0].rules[1]",
        "budgets[1].per",
        "budgets[1].points",
        "wallet.pending.post_on",
        "wallet.pending.rules[0]",
    ];
    expected.sort();
    assert_eq!(fields, expected, "{errors:#?}");
    let reason = |field: &str| &errors.iter().find(|e| e.field == field).unwrap().reason;
    assert_eq!(reason("rules[1].id"), "\"a\" is used twice");
    assert_eq!(
        reason("campaigns[0].rules[1]"),
        "no rule has the id \"ghost\""
    );
    assert!(reason("rules[2].caps[0]").contains("exactly one of points"));
    assert_eq!(reason("rules[6].when.type[2]"), "acme.sale is listed twice");
}

// ---- Properties ------------------------------------------------------------------------------

/// Small limits everywhere, so random streams run into them: every cap period in points and
/// times, a penalty, a rule of either sign, a milestone and a streak under caps, campaigns,
/// two budgets over one rule, pending and expiring lots.
const LIMITED: &str = r#"
wallet:
  pending: { lock_days: 7, post_on: monday, rules: [volume, contract] }
  expiry: { after_months: 12 }
rules:
  - id: first-login
    when: { type: portal.login }
    award: { points: 50 }
    once: true
  - id: daily-login
    when: { type: portal.login }
    award: { points: 5 }
    caps: [{ per: day, times: 1 }, { per: week, points: 15 }]
  - id: login-streak
    when: { type: portal.login }
    streak: { per: day, length: 2 }
    award: { points: 20 }
    caps: [{ per: month, points: 50 }]
  - id: volume
    when: { type: contract.started, attributes: { financed_volume: { gte: 1000 } } }
    award: { per: { attribute: financed_volume, every: 1000 }, points: 1, rounding: nearest }
    quality: { factors: [{ within_days: 3, factor: 1 }, { within_days: 14, factor: 0.5 }] }
    caps: [{ per: quarter, points: 400 }]
  - id: contract
    when: { type: contract.started }
    award: { points: 40 }
    caps: [{ per: year, times: 5 }]
  - id: deals
    when: { type: deal.registered }
    milestone: { at: [1, 3, 5] }
    award: { points: 60 }
    caps: [{ per: lifetime, points: 100 }]
  - id: quiz
    when: { type: quiz.completed }
    award: { per: { attribute: correct }, points: 7 }
    caps: [{ per: month, points: 60 }, { per: week, times: 2 }]
  - id: lead
    when: { type: lead.submitted }
    award: { points: 30 }
    caps: [{ per: day, points: 45 }]
  - id: late-crm
    when: { type: crm.activity_logged, late_days: { gt: 2 } }
    award: { points: -4 }
    caps: [{ per: week, points: 10 }]
  - id: crm
    when: { type: crm.activity_logged }
    award: { points: 3 }
    quality: { measured_from: recorded_at, factors: [{ within_days: 1, factor: 1 }], otherwise: 0.5 }
    caps: [{ per: day, points: 7 }]
  - id: correction
    when: { type: acme.correction }
    award: { per: { attribute: delta }, points: 1 }
    caps: [{ per: month, points: 150 }]
campaigns:
  - id: sprint
    from: 2026-12-10T00:00:00+01:00
    until: 2027-01-10T00:00:00+01:00
    multiplier: 2
  - id: fast-start
    enrolment_days: { from: 0, until: 30 }
    rules: [quiz, volume]
    multiplier: 1.5
budgets:
  - id: contracts
    rules: [volume, contract]
    per: month
    points: 300
    shards: 3
  - id: everything
    per: quarter
    points: 600
    shards: 4
"#;

const PARTICIPANTS: [(&str, &str); 3] = [
    ("rep-0", "2026-01-01T00:00:00Z"),
    ("rep-1", "2026-11-25T09:00:00+01:00"),
    ("rep-2", "2026-12-20T09:00:00+01:00"),
];

/// One event of a random stream, between 20 November 2026 and early February 2027: across
/// weeks, months, a quarter and a year, and the December sprint.
#[derive(Debug, Clone)]
struct Spec {
    participant: usize,
    kind: u8,
    minute: i64,
    value: i64,
    late_hours: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0usize..3, 0u8..8, 0i64..75 * 1440, 0i64..400, 0i64..800).prop_map(
        |(participant, kind, minute, value, late_hours)| Spec {
            participant,
            kind,
            minute,
            value,
            late_hours,
        },
    )
}

impl Spec {
    fn occurred(&self) -> Timestamp {
        at("2026-11-20T00:00:00+01:00") + SignedDuration::from_mins(self.minute)
    }

    fn received(&self) -> Timestamp {
        self.occurred() + SignedDuration::from_hours(self.late_hours)
    }

    fn event(&self, i: usize) -> Event {
        let id = format!("e-{i}");
        let (kind, attributes) = match self.kind {
            0 => ("portal.login", json!({})),
            1 => (
                "contract.started",
                json!({"contract_id": id, "financed_volume": format!("{}.50", self.value * 100), "currency": "SEK"}),
            ),
            2 => ("deal.registered", json!({"deal_id": id})),
            3 => (
                "quiz.completed",
                json!({"quiz_id": "q", "questions": 10, "correct": self.value % 11}),
            ),
            4 => ("lead.submitted", json!({"lead_id": id, "company": "Co"})),
            5 => (
                "crm.activity_logged",
                json!({"activity": "call", "recorded_at": self.received().to_string()}),
            ),
            6 => ("acme.correction", json!({"delta": self.value - 200})),
            _ => (
                "points.adjusted",
                json!({"points": self.value - 200 + i64::from(self.value == 200), "reason": "test"}),
            ),
        };
        event_of(
            PARTICIPANTS[self.participant].0,
            &id,
            kind,
            &self.occurred().to_string(),
            attributes,
        )
    }
}

/// A stream: events, and the order they are delivered in. Each step delivers event `i`
/// (again, if it was delivered before) or, one time in five, its cancellation.
fn stream() -> impl Strategy<Value = (Vec<Spec>, Vec<(usize, bool)>)> {
    (
        proptest::collection::vec(spec(), 1..40),
        proptest::collection::vec((0usize..40, proptest::bool::weighted(0.2)), 1..80),
    )
}

fn rig_of(program: Program) -> Rig {
    let rig = Rig::of(program);
    for (participant, enrolled) in PARTICIPANTS {
        rig.enrol(participant, enrolled, json!({}));
    }
    rig
}

/// Delivers step `(i, cancel)` of a stream: event `i`, or its cancellation.
fn step(rig: &Rig, specs: &[Spec], (i, cancel): (usize, bool)) -> (Event, Outcome) {
    let i = i % specs.len();
    let original = specs[i].event(i);
    let event = if cancel {
        reversal(&format!("x-{i}"), &original)
    } else {
        original
    };
    let received = specs[i].received() + SignedDuration::from_hours(i64::from(cancel));
    let outcome = rig.deliver_at(&event, received);
    (event, outcome)
}

/// A ledger line with where it counts: what a record moved, dated by the event it is about.
struct Moved<'a> {
    participant: &'a str,
    periods: Periods,
    rule: &'a str,
    points: i64,
    /// +1 for an award, -1 for the clawback of one.
    sign: i64,
}

fn ledger_lines<'a>(program: &Program, accounts: &'a [Account]) -> Vec<Moved<'a>> {
    let mut moved = Vec::new();
    for account in accounts {
        for record in account.records.values() {
            let (dated, sign) = match record.status {
                EntryStatus::Awarded | EntryStatus::Reversed => (record, 1),
                EntryStatus::Reversal if !record.rules.is_empty() => {
                    (&account.records[record.reverses.as_deref().unwrap()], -1)
                }
                _ => {
                    assert!(record.rules.is_empty(), "{record:?}");
                    continue;
                }
            };
            let occurred = at(dated.occurred_at.as_deref().unwrap());
            for line in &record.rules {
                moved.push(Moved {
                    participant: &account.state.participant,
                    periods: Periods::of(occurred, &program.time_zone),
                    rule: &line.id,
                    points: line.points,
                    sign,
                });
            }
        }
    }
    moved
}

/// Every cap and budget holds, and every stored limit counter equals what the ledger says.
fn limits_hold(rig: &Rig, program: &Program) -> Result<(), TestCaseError> {
    let accounts: Vec<Account> = rig.replay.store.accounts().into_values().collect();
    let moved = ledger_lines(program, &accounts);
    // (participant, scope, counter) → (value from the ledger, limit)
    let mut caps: BTreeMap<(String, Scope, String), (i64, i64)> = BTreeMap::new();
    // budget shard key of shard 0 → (points spent by the ledger, budget)
    let mut budgets: BTreeMap<String, (i64, &Budget, &Periods)> = BTreeMap::new();
    for line in &moved {
        // Adjustments are no rule's: no cap or budget counts them.
        let Some(rule) = program.rules.iter().find(|r| r.id == line.rule) else {
            continue;
        };
        for cap in &rule.caps {
            let kind = cap_kind(cap, line.points * line.sign);
            let (scope, name) = counter(line.rule, kind, cap.per, &line.periods);
            let (by, limit) = match cap.limit {
                Limit::Points(limit) => (line.points, limit),
                Limit::Times(limit) => (line.sign, limit),
            };
            let entry = caps
                .entry((line.participant.to_owned(), scope, name))
                .or_insert((0, limit));
            entry.0 += by;
        }
        if line.points * line.sign > 0 {
            for budget in program.budgets_of(line.rule) {
                budgets
                    .entry(budget_shard(budget, &line.periods, 0))
                    .or_insert((0, budget, &line.periods))
                    .0 += line.points;
            }
        }
    }
    for ((participant, scope, name), (value, limit)) in &caps {
        prop_assert!(
            value.abs() <= *limit,
            "{participant} {scope:?} {name} = {value} over {limit}"
        );
    }
    for account in &accounts {
        let participant = &account.state.participant;
        let stored = account
            .counters
            .iter()
            .map(|(name, value)| (Scope::Profile, name, value))
            .chain(account.months.iter().flat_map(|(month, m)| {
                m.counters
                    .iter()
                    .map(|(name, value)| (Scope::Month(month.clone()), name, value))
            }));
        for (scope, name, value) in stored {
            if ["p:", "p-:", "t:"]
                .iter()
                .any(|kind| name.starts_with(kind))
            {
                let from_ledger = caps
                    .get(&(participant.clone(), scope.clone(), name.clone()))
                    .map_or(0, |c| c.0);
                prop_assert_eq!(*value, from_ledger, "{} {:?} {}", participant, scope, name);
            }
        }
    }
    let spent = rig.replay.store.budget_spent();
    let mut shards_seen = 0;
    for (spent_by_ledger, budget, periods) in budgets.values() {
        prop_assert!(
            *spent_by_ledger <= budget.points,
            "{} over budget",
            budget.id
        );
        let mut stored = 0;
        for shard in 0..budget.shards {
            let value = spent
                .get(&(program.id.clone(), budget_shard(budget, periods, shard)))
                .copied()
                .unwrap_or(0);
            prop_assert!(
                value <= shard_limit(budget, shard),
                "{} shard {shard}",
                budget.id
            );
            stored += value;
            shards_seen += usize::from(
                spent.contains_key(&(program.id.clone(), budget_shard(budget, periods, shard))),
            );
        }
        prop_assert_eq!(
            stored,
            *spent_by_ledger,
            "{} in {:?}",
            budget.id,
            periods.month
        );
    }
    prop_assert_eq!(shards_seen, spent.len(), "a shard no award accounts for");
    Ok(())
}

fn either_program(sample: bool) -> Program {
    if sample {
        Program::parse(SAMPLE, 1).unwrap()
    } else {
        program(LIMITED)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Caps and budgets are never exceeded, at any point of a stream with duplicates and
    /// reversals, and the stored counters are exactly what the ledger adds up to.
    #[test]
    fn caps_and_budgets_are_never_exceeded(sample in any::<bool>(), (specs, steps) in stream()) {
        let program = either_program(sample);
        let rig = rig_of(program.clone());
        for &s in &steps {
            step(&rig, &specs, s);
            limits_hold(&rig, &program)?;
        }
    }

    /// Cancelling every awarded event returns every balance, month and limit counter to zero.
    #[test]
    fn reversing_every_award_returns_everything_to_zero(
        sample in any::<bool>(),
        (specs, steps) in stream(),
    ) {
        let program = either_program(sample);
        let rig = rig_of(program.clone());
        for &(i, _) in &steps {
            step(&rig, &specs, (i, false));
        }
        let end = at("2027-06-01T00:00:00Z");
        for account in rig.replay.store.accounts().values() {
            for record in account.records.values() {
                let original = specs.iter().enumerate().map(|(i, s)| s.event(i))
                    .find(|e| e.id == record.event_id).unwrap();
                let outcome = rig.deliver_at(&reversal(&format!("x-{}", record.event_id), &original), end);
                prop_assert!(matches!(outcome, Outcome::Reversed { .. }), "{:?}", outcome);
            }
        }
        let today = "2027-06-01";
        for account in rig.replay.store.accounts().values() {
            prop_assert_eq!(account.state.balance, 0);
            for (month, m) in &account.months {
                prop_assert_eq!(m.stats.points, 0, "{}", month);
                for (name, value) in &m.counters {
                    prop_assert_eq!(*value, 0, "{} {}", month, name);
                }
            }
            for (name, value) in &account.counters {
                // Streak runs are positions, not sums; a deposited lot is no longer held.
                let kept = name.starts_with("s:") || name.starts_with("r:")
                    || name.strip_prefix(PENDING_LOT).is_some_and(|d| d <= today);
                prop_assert!(kept || *value == 0, "{} = {}", name, value);
            }
        }
        for (shard, spent) in rig.replay.store.budget_spent() {
            prop_assert_eq!(spent, 0, "{:?}", shard);
        }
    }

    /// The calculator's quote for an event is what the award then records for it.
    #[test]
    fn the_calculator_agrees_with_the_award(sample in any::<bool>(), (specs, steps) in stream()) {
        let rig = rig_of(either_program(sample));
        for &(i, cancel) in &steps {
            let i = i % specs.len();
            let quote = (!cancel).then(|| {
                let event = specs[i].event(i);
                rig.runtime.block_on(rig.replay.quote(&event, specs[i].received())).unwrap()
            });
            let (event, outcome) = step(&rig, &specs, (i, cancel));
            if let (Some(quote), Outcome::Awarded { points }) = (quote, outcome) {
                prop_assert_eq!(quote.evaluation.points, points);
                let record = &rig.account(&event.participant).records[&event.id];
                let quoted: Vec<(&str, u32, i64)> = quote.evaluation.lines.iter()
                    .filter(|l| l.points != 0)
                    .map(|l| (l.rule.as_str(), l.version, l.points))
                    .collect();
                prop_assert_eq!(quoted, rule_lines(record));
                prop_assert_eq!(&quote.evaluation.pending_until, &record.pending_until);
                prop_assert_eq!(&quote.evaluation.expires_on, &record.expires_on);
            }
        }
    }
}
