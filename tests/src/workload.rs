//! A synthetic but plausible channel program: distributors, locations, managers and reps of
//! varied behaviour, and months of their CRM and portal activity. Seeded, so a run can be
//! reproduced. The demo and the integration tests both draw from it.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashSet;

pub const DISTRIBUTORS: [(&str, &str, &str, [&str; 4]); 3] = [
    (
        "nordic-dealer",
        "Europe/Stockholm",
        "sv-SE",
        ["stockholm", "goteborg", "malmo", "uppsala"],
    ),
    (
        "baltic-trade",
        "Europe/Riga",
        "en-GB",
        ["riga", "tallinn", "vilnius", "tartu"],
    ),
    (
        "alpine-partners",
        "Europe/Zurich",
        "de-CH",
        ["zurich", "vienna", "munich", "innsbruck"],
    ),
];

const FIRST: [&str; 16] = [
    "Anna", "Erik", "Maja", "Lars", "Ieva", "Janis", "Kadri", "Toomas", "Lena", "Jonas", "Sofia",
    "Matteo", "Elin", "Oskar", "Laura", "Felix",
];
const LAST: [&str; 16] = [
    "Berg", "Lund", "Nilsson", "Ozols", "Tamm", "Kask", "Huber", "Meier", "Gruber", "Holm",
    "Strand", "Kalnins", "Saar", "Keller", "Weber", "Dahl",
];

/// How a rep engages: drives how often they log in and what they sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    Superstar,
    Steady,
    Occasional,
    Dormant,
}

impl Behaviour {
    /// Daily login probability and monthly means of deals, contracts, sales, CRM activities.
    fn rates(self) -> (f64, f64, f64, f64, f64) {
        match self {
            Behaviour::Superstar => (0.85, 8.0, 3.0, 6.0, 20.0),
            Behaviour::Steady => (0.45, 3.0, 1.0, 2.0, 8.0),
            Behaviour::Occasional => (0.12, 0.7, 0.2, 0.4, 2.0),
            Behaviour::Dormant => (0.0, 0.0, 0.0, 0.0, 0.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rep {
    pub id: String,
    pub distributor: String,
    pub location: String,
    pub behaviour: Behaviour,
    /// The enrolment body for `PUT /v1/programs/{program}/participants/{id}`.
    pub profile: Value,
}

/// The reps as an import file (`POST /v1/programs/{program}/imports`, `text/csv`), every one
/// enrolled as of `enrolled_at` (a date or RFC 3339 time) when the file creates them.
pub fn roster_csv(reps: &[Rep], enrolled_at: &str) -> String {
    const COLUMNS: [&str; 14] = [
        "participant",
        "name",
        "email",
        "phone",
        "locale",
        "time_zone",
        "role",
        "distributor",
        "location",
        "region",
        "manager_name",
        "manager_email",
        "account",
        "enrolled_at",
    ];
    let cell = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut csv = COLUMNS.join(",") + "\n";
    for rep in reps {
        let p = &rep.profile;
        let field = |name: &str| match name {
            "participant" => rep.id.clone(),
            "manager_name" => p["manager"]["name"].as_str().unwrap_or_default().to_owned(),
            "manager_email" => p["manager"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            "enrolled_at" => enrolled_at.to_owned(),
            other => p[other].as_str().unwrap_or_default().to_owned(),
        };
        let row: Vec<String> = COLUMNS.iter().map(|c| cell(&field(c))).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    csv
}

/// `count` reps spread over 3 distributors and 12 locations, each location with a manager.
pub fn roster(count: usize, seed: u64) -> Vec<Rep> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let (distributor, zone, locale, cities) = DISTRIBUTORS[i % 3];
            let city = cities[(i / 3) % 4];
            let location = format!("{distributor}-{city}");
            let behaviour = match rng.random_range(0..100) {
                0..5 => Behaviour::Superstar,
                5..40 => Behaviour::Steady,
                40..80 => Behaviour::Occasional,
                _ => Behaviour::Dormant,
            };
            let (first, last) = (FIRST[rng.random_range(0..16)], LAST[rng.random_range(0..16)]);
            let manager = (FIRST[(i / 3 + 5) % 16], LAST[(i / 3 + 7) % 16]);
            let id = format!("rep-{i:04}");
            let profile = json!({
                "name": format!("{first} {last}"),
                "email": format!("{}.{}.{i}@{distributor}.example", first.to_lowercase(), last.to_lowercase()),
                "phone": format!("+467{:08}", rng.random_range(0..100_000_000u32)),
                "locale": locale,
                "time_zone": zone,
                "role": if i % 10 == 0 { "sales_manager" } else { "sales_rep" },
                "distributor": distributor,
                "location": location,
                "region": if distributor == "alpine-partners" { "dach" } else { "nordics-baltics" },
                "manager": {
                    "name": format!("{} {}", manager.0, manager.1),
                    "email": format!("manager.{city}@{distributor}.example"),
                },
            });
            Rep {
                id,
                distributor: distributor.to_owned(),
                location,
                behaviour,
                profile,
            }
        })
        .collect()
}

/// Poisson-ish count with the given mean, good enough for a workload.
fn draw(rng: &mut StdRng, mean: f64) -> usize {
    let whole = mean.floor() as usize;
    whole + usize::from(rng.random_bool(mean - mean.floor()))
}

/// A month of events (in `zone`, starting at `first_day`) for every rep, in time order.
/// About `cancel_share` of deals and contracts are cancelled a few days later.
pub fn month_of_events(
    reps: &[Rep],
    first_day: Date,
    zone: &TimeZone,
    cancel_share: f64,
    seed: u64,
) -> Vec<Value> {
    events_of_month(reps, first_day, zone, cancel_share, seed, |rep| {
        rep.behaviour
    })
}

/// `count` consecutive months of events from `first_day` (a month's first day), oldest first,
/// each in time order; event ids are unique across the months. Reps keep their behaviour, but
/// not every dormant rep stays away: from the second month on, each comes back with
/// probability `return_share` and logs in now and then, as an occasional rep does (the way a
/// warning about suspension brings some back).
pub fn months_of_events(
    reps: &[Rep],
    first_day: Date,
    count: usize,
    zone: &TimeZone,
    cancel_share: f64,
    return_share: f64,
    seed: u64,
) -> Vec<Vec<Value>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let returning: HashSet<&str> = reps
        .iter()
        .filter(|rep| rep.behaviour == Behaviour::Dormant && rng.random_bool(return_share))
        .map(|rep| rep.id.as_str())
        .collect();
    (0..count)
        .map(|n| {
            let month = first_day
                .checked_add(jiff::Span::new().months(n as i64))
                .expect("months within the calendar");
            let behaviour = |rep: &Rep| match rep.behaviour {
                Behaviour::Dormant if n > 0 && returning.contains(rep.id.as_str()) => {
                    Behaviour::Occasional
                }
                behaviour => behaviour,
            };
            events_of_month(
                reps,
                month,
                zone,
                cancel_share,
                seed.wrapping_add(1 + n as u64),
                behaviour,
            )
        })
        .collect()
}

/// A month of events, each rep behaving as `behaviour_of` says. Ids carry the month.
fn events_of_month(
    reps: &[Rep],
    first_day: Date,
    zone: &TimeZone,
    cancel_share: f64,
    seed: u64,
    behaviour_of: impl Fn(&Rep) -> Behaviour,
) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let days = first_day.days_in_month();
    let month = first_day.strftime("%Y-%m").to_string();
    let mut events = Vec::new();
    for rep in reps {
        let behaviour = behaviour_of(rep);
        let (login_p, deals, contracts, sales, activities) = behaviour.rates();
        // Ids unique across months: `{rep}-{month}`.
        let key = format!("{}-{month}", rep.id);
        let at = |rng: &mut StdRng, day: i8| {
            let date = first_day.with().day(day).build().expect("day within month");
            let time = jiff::civil::time(
                rng.random_range(7..19),
                rng.random_range(0..60),
                rng.random_range(0..60),
                0,
            );
            date.to_datetime(time)
                .to_zoned(zone.clone())
                .expect("local time exists")
                .timestamp()
        };
        let any_day = |rng: &mut StdRng| {
            let day = rng.random_range(1..=days);
            at(rng, day)
        };
        let push = |events: &mut Vec<Value>,
                    id: String,
                    kind: &str,
                    when: jiff::Timestamp,
                    attributes: Value| {
            events.push(json!({
                "id": id, "participant": rep.id, "type": kind,
                "occurred_at": when.to_zoned(zone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                "attributes": attributes,
            }));
        };
        for day in 1..=days {
            if rng.random_bool(login_p) {
                let when = at(&mut rng, day);
                push(
                    &mut events,
                    format!("portal-login-{key}-{day}"),
                    "portal.login",
                    when,
                    json!({}),
                );
            }
        }
        let mut cancellable = Vec::new();
        for n in 0..draw(&mut rng, deals) {
            let when = any_day(&mut rng);
            let id = format!("sf-deal-{key}-{n}");
            let amount = rng.random_range(5_000..200_000);
            push(
                &mut events,
                id.clone(),
                "deal.registered",
                when,
                json!({"deal_id": format!("OPP-{key}-{n}"), "amount": amount.to_string(), "currency": "SEK"}),
            );
            cancellable.push((id, "deal.cancelled", when));
        }
        for n in 0..draw(&mut rng, contracts) {
            let when = any_day(&mut rng);
            let id = format!("sf-contract-{key}-{n}");
            let volume = rng.random_range(50..2_000) * 1_000;
            push(
                &mut events,
                id.clone(),
                "contract.started",
                when,
                json!({"contract_id": format!("K-{key}-{n}"), "financed_volume": volume, "currency": "SEK"}),
            );
            cancellable.push((id, "contract.cancelled", when));
        }
        for n in 0..draw(&mut rng, sales) {
            let when = any_day(&mut rng);
            push(
                &mut events,
                format!("sf-sale-{key}-{n}"),
                "sale.closed",
                when,
                json!({"amount": format!("{}.{:02}", rng.random_range(1_000..90_000), rng.random_range(0..100)),
                    "currency": "SEK", "products": [{"sku": "MX-500", "quantity": rng.random_range(1..5)}]}),
            );
        }
        for n in 0..draw(&mut rng, activities) {
            let when = any_day(&mut rng);
            let recorded = when + jiff::SignedDuration::from_hours(rng.random_range(0..96));
            push(
                &mut events,
                format!("sf-activity-{key}-{n}"),
                "crm.activity_logged",
                when,
                json!({"activity": "customer_call", "recorded_at": recorded.to_string()}),
            );
        }
        if behaviour != Behaviour::Dormant && rng.random_bool(0.5) {
            let when = any_day(&mut rng);
            push(
                &mut events,
                format!("portal-quiz-{key}"),
                "quiz.completed",
                when,
                json!({"quiz_id": "product-basics", "questions": 6, "correct": rng.random_range(2..=6)}),
            );
        }
        if behaviour == Behaviour::Superstar || rng.random_bool(0.05) {
            let when = any_day(&mut rng);
            push(
                &mut events,
                format!("portal-lead-{key}"),
                "lead.submitted",
                when,
                json!({"lead_id": format!("LEAD-{key}"), "company": "Fjord Logistics AS"}),
            );
        }
        for (original, kind, when) in cancellable {
            if rng.random_bool(cancel_share) {
                let later = when + jiff::SignedDuration::from_hours(rng.random_range(1..72));
                let later = later.min(at(&mut rng, days).max(when));
                push(
                    &mut events,
                    format!("{original}-cancel"),
                    kind,
                    later,
                    json!({"original_event": original, "reason": "customer withdrew"}),
                );
            }
        }
    }
    events.sort_by(|a, b| a["occurred_at"].as_str().cmp(&b["occurred_at"].as_str()));
    events
}

/// A busy rep's month under the sample program, day by day: a login, two CRM activities
/// recorded on time, and every few days a deal, a contract or a quiz; one lead.
pub fn busy_month(participant: &str, first_day: Date) -> anyhow::Result<Vec<Value>> {
    let zone = TimeZone::get("Europe/Stockholm")?;
    let mut events = Vec::new();
    for day in 1..=first_day.days_in_month() {
        let at = |hour| -> anyhow::Result<String> {
            let local = first_day.with().day(day).build()?.at(hour, 0, 0, 0);
            Ok(local.to_zoned(zone.clone())?.timestamp().to_string())
        };
        let mut push = |id: String, kind: &str, hour, attributes: Value| -> anyhow::Result<()> {
            events.push(json!({"id": id, "participant": participant, "type": kind,
                "occurred_at": at(hour)?, "attributes": attributes}));
            Ok(())
        };
        push(format!("login-{day}"), "portal.login", 8, json!({}))?;
        for hour in [10, 15] {
            push(
                format!("call-{day}-{hour}"),
                "crm.activity_logged",
                hour,
                json!({"activity": "customer_call", "recorded_at": at(hour)?}),
            )?;
        }
        match day % 7 {
            1 => push(
                format!("deal-{day}"),
                "deal.registered",
                11,
                json!({"deal_id": format!("OPP-{day}"), "amount": "50000", "currency": "SEK"}),
            )?,
            2 => push(
                format!("quiz-{day}"),
                "quiz.completed",
                12,
                json!({"quiz_id": "product-basics", "questions": 6, "correct": 4}),
            )?,
            3 => push(
                format!("contract-{day}"),
                "contract.started",
                13,
                json!({"contract_id": format!("K-{day}"), "financed_volume": 400_000, "currency": "SEK"}),
            )?,
            _ => {}
        }
        if day == 12 {
            push(
                "lead-12".into(),
                "lead.submitted",
                14,
                json!({"lead_id": "LEAD-12", "company": "Fjord Logistics AS"}),
            )?;
        }
    }
    Ok(events)
}
