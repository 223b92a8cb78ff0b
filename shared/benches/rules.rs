//! Pure rule evaluation (`Program::evaluate`) of a 50-rule program over a varied event
//! stream: target at least 1,000,000 events/s on one core. Decoding the envelope, computing
//! the event's periods and I/O are outside the measurement (see `award_path` for those).
//! Run: `cargo bench -p carrot --bench rules`.
//!
//! Two streams: 512 events of 16 participants, whose events and counters stay in the CPU's
//! caches as they do in the award function (which evaluates an event it has just decoded
//! against counters it has just loaded); and 4,096 events of 40 participants, which do not,
//! so that figure includes waiting for memory.

use carrot::domain::engine::{Counters, Subject};
use carrot::domain::envelope::{Event, parse_event};
use carrot::domain::period::Periods;
use carrot::domain::program::Program;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::hint::black_box;

/// Ten event types with the attributes their typed envelopes require, plus the ones rules
/// match on (`amount`, `currency`, `channel`, `product`, `customer`, `recorded_at`).
const TYPES: [(&str, &str); 10] = [
    ("portal.login", "login"),
    ("deal.registered", "deal"),
    ("contract.started", "contract"),
    ("sale.closed", "sale"),
    ("quiz.completed", "quiz"),
    ("lead.submitted", "lead"),
    ("training.completed", "training"),
    ("survey.answered", "survey"),
    ("crm.activity_logged", "crm"),
    ("acme.webinar_attended", "webinar"),
];

/// Five rules per type: a capped base award, a proportional award on a decimal amount, one on
/// attribute and participant predicates, one on tier with a weekly cap, and one of a
/// milestone, a streak, a quality rule, a late penalty or a once-only award.
fn program_yaml() -> String {
    let mut yaml = String::from(
        "program: acme\nname: ACME\ntime_zone: Europe/Stockholm\n\
         wallet:\n  pending: { lock_days: 7, post_on: monday, rules: [contract-volume, sale-volume] }\n  \
         expiry: { after_months: 24 }\nrules:\n",
    );
    for (i, (event_type, id)) in TYPES.iter().enumerate() {
        let fifth = match i % 5 {
            0 => "milestone: { at: [1, 10, 50] }\n    award: { points: 250 }",
            1 => "streak: { per: day, length: 5 }\n    award: { points: 100 }",
            2 => {
                "award: { points: 20 }\n    quality: { factors: [{ within_days: 3, factor: 1 }, { within_days: 14, factor: 0.5 }], require: [customer], incomplete: 0.5 }"
            }
            3 => "award: { points: -5 }\n    caps: [{ per: week, points: 50 }]",
            _ => "award: { points: 200 }\n    once: true",
        };
        let fifth_when = match i % 5 {
            3 => format!("{{ type: {event_type}, late_days: {{ gt: 30 }} }}"),
            4 => {
                format!("{{ type: {event_type}, attributes: {{ customer: {{ exists: true }} }} }}")
            }
            _ => format!("{{ type: {event_type} }}"),
        };
        yaml.push_str(&format!(
            "  - id: {id}-base
    when: {{ type: {event_type} }}
    award: {{ points: 10 }}
    caps: [{{ per: day, times: 5 }}, {{ per: month, points: 1000 }}]
  - id: {id}-volume
    when: {{ type: {event_type}, attributes: {{ amount: {{ gte: 1000 }}, currency: SEK }} }}
    award: {{ per: {{ attribute: amount, every: 1000 }}, points: 1.5, rounding: nearest }}
    caps: [{{ per: month, points: 20000 }}]
  - id: {id}-channel
    when: {{ type: {event_type}, attributes: {{ channel: {{ in: [partner, web] }} }}, participant: {{ region: nordics, tenure_days: {{ gte: 90 }} }} }}
    award: {{ points: 25 }}
  - id: {id}-tier
    when: {{ type: {event_type}, attributes: {{ product: X-100 }}, participant: {{ tier: {{ in: [gold, platinum] }} }} }}
    award: {{ points: 15 }}
    caps: [{{ per: week, points: 300 }}]
  - id: {id}-special
    when: {fifth_when}
    {fifth}
"
        ));
    }
    yaml.push_str(
        "campaigns:
  - id: december-sprint
    from: 2026-12-01T00:00:00+01:00
    until: 2026-12-24T00:00:00+01:00
    rules: [contract-volume, sale-volume, deal-volume]
    multiplier: 2
  - id: fast-start
    enrolment_days: { from: 0, until: 60 }
    multiplier: 1.5
  - id: gold-bonus
    from: 2026-01-01T00:00:00+01:00
    participant: { tier: gold }
    rules: [login-tier, deal-tier, contract-tier, sale-tier, quiz-tier]
    multiplier: 1.25
budgets:
  - id: volume
    rules: [contract-volume, sale-volume, deal-volume]
    per: month
    points: 5000000
    shards: 8
",
    );
    yaml
}

/// A small deterministic generator: the stream is the same on every run.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn attributes(event_type: &str, n: usize, random: &mut Xorshift) -> Value {
    let mut attributes = match event_type {
        "deal.registered" => json!({"deal_id": format!("D{n}")}),
        "contract.started" => {
            json!({"contract_id": format!("K{n}"), "financed_volume": "250000.50"})
        }
        "sale.closed" => json!({"products": [{"sku": "X-100", "quantity": 2}]}),
        "quiz.completed" => json!({"quiz_id": "welcome", "questions": 10, "correct": 7}),
        "lead.submitted" => json!({"lead_id": format!("L{n}"), "company": "Nordic Dealer AB"}),
        "training.completed" => json!({"course_id": "safety-1"}),
        "survey.answered" => json!({"survey_id": "nps-2026"}),
        "crm.activity_logged" => json!({"activity": "call"}),
        _ => json!({}),
    };
    let map = attributes.as_object_mut().expect("an object");
    map.insert(
        "amount".into(),
        json!(format!("{}.{:02}", random.next(200_000), random.next(100))),
    );
    map.insert(
        "currency".into(),
        json!(["SEK", "SEK", "SEK", "NOK"][random.next(4) as usize]),
    );
    let channel = ["web", "partner", "phone", ""][random.next(4) as usize];
    if !channel.is_empty() {
        map.insert("channel".into(), json!(channel));
    }
    map.insert(
        "product".into(),
        json!(["X-100", "X-200", "Y-7"][random.next(3) as usize]),
    );
    if random.next(10) < 7 {
        map.insert("customer".into(), json!(format!("C{}", random.next(500))));
    }
    attributes
}

struct Case {
    event: Event,
    received_at: Timestamp,
    periods: Periods,
    participant: usize,
}

fn subjects() -> Vec<Subject<'static>> {
    let subject = |tier, region, enrolled: &str| Subject {
        role: Some("sales_rep"),
        segment: Some("rising"),
        tier,
        distributor: Some("nordic"),
        location: Some("nordic-sthlm"),
        region,
        status: "active",
        enrolled_at: enrolled.parse().expect("a timestamp"),
    };
    vec![
        subject(Some("gold"), Some("nordics"), "2025-03-01T00:00:00Z"),
        subject(None, Some("nordics"), "2026-11-15T00:00:00Z"),
        subject(Some("silver"), Some("baltics"), "2026-06-01T00:00:00Z"),
        subject(Some("platinum"), None, "2024-01-01T00:00:00Z"),
    ]
}

/// `events` events over November and December 2026 for `participants` participants, and the
/// counters each participant has after all of them (every event is measured against those:
/// some caps are reached, as they would be late in a month).
fn stream(
    program: &Program,
    subjects: &[Subject],
    events: usize,
    participants: usize,
) -> (Vec<Case>, Vec<Counters>) {
    let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
    let start: Timestamp = "2026-11-01T00:00:00+01:00".parse().expect("a timestamp");
    let now: Timestamp = "2027-06-01T00:00:00Z".parse().expect("a timestamp");
    let mut counters: Vec<Counters> = vec![Counters::default(); participants];
    let mut cases = Vec::new();
    for n in 0..events {
        let (event_type, _) = TYPES[random.next(TYPES.len() as u64) as usize];
        let participant = random.next(participants as u64) as usize;
        let occurred = start + SignedDuration::from_mins(random.next(61 * 24 * 60) as i64);
        let late = SignedDuration::from_hours(random.next(24 * 40) as i64);
        let mut attributes = attributes(event_type, n, &mut random);
        if event_type == "crm.activity_logged" {
            attributes["recorded_at"] = json!((occurred + late).to_string());
        }
        let event = parse_event(
            &json!({"id": format!("e-{n}"), "participant": format!("rep-{participant}"),
                "type": event_type, "occurred_at": occurred.to_string(), "attributes": attributes}),
            "",
            now,
        )
        .expect("a valid event");
        let periods = Periods::of(event.occurred_at, &program.time_zone);
        let received_at = occurred + late / 4;
        let subject = &subjects[participant % subjects.len()];
        let evaluation = program.evaluate(
            &event,
            received_at,
            &periods,
            subject,
            &counters[participant],
        );
        counters[participant].apply(&evaluation.writes);
        cases.push(Case {
            event,
            received_at,
            periods,
            participant,
        });
    }
    (cases, counters)
}

fn bench(c: &mut Criterion) {
    let program = Program::parse(&program_yaml(), 1).expect("a valid program");
    assert_eq!(program.rules.len(), 50);
    let subjects = subjects();
    let mut group = c.benchmark_group("rules");
    for (events, participants, name) in [
        (512, 16, "evaluate a 50-rule program, inputs in cache"),
        (4096, 40, "evaluate a 50-rule program, inputs in memory"),
    ] {
        let (cases, counters) = stream(&program, &subjects, events, participants);
        let evaluate = |case: &Case| {
            program.evaluate(
                &case.event,
                case.received_at,
                &case.periods,
                &subjects[case.participant % subjects.len()],
                &counters[case.participant],
            )
        };
        // The stream must exercise the program: most events earn, some hit a cap.
        let evaluations: Vec<_> = cases.iter().map(evaluate).collect();
        let earning = evaluations.iter().filter(|e| e.points != 0).count();
        let capped = evaluations
            .iter()
            .filter(|e| e.lines.iter().any(|l| l.limited_by.is_some()))
            .count();
        let lines: usize = evaluations.iter().map(|e| e.lines.len()).sum();
        assert!(earning > events / 2, "{earning} of {events} earn");
        assert!(capped > 0);
        println!(
            "{events} events: {earning} earn, {capped} capped, {:.1} matching rules per event",
            lines as f64 / events as f64
        );
        group.throughput(Throughput::Elements(events as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for case in &cases {
                    black_box(evaluate(black_box(case)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
