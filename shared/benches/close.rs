//! The in-memory part of a monthly close for a program of 1,000,000 participants: what the
//! close function computes once it has read every member (I/O excluded). Times `decide`, the
//! placings of every board, the drawing's commitment and draw, and the JSON of the decision
//! (what the close freezes), and measures the heap each needs.
//!
//! Run: `cargo bench -p carrot --bench close` (`-- --members N` for another size).
//!
//! The program has four boards (the month's points, top 3; the quarter's login days, top 5,
//! which a month's close leaves out; the best location by average points; the top of each
//! distributor), a drawing among reps with at least 10 login days, and a non-use policy. The
//! members are random but fixed: 5,000 locations of 200 distributors in 20 regions, login days
//! 0 to 22 with about 15% at zero, sales on a heavy tail, some suspended or terminated, some
//! with a strike standing.

use carrot::domain::close::{ClosePeriod, Decision, Member, decide, placings};
use carrot::domain::drawing;
use carrot::domain::program::Program;
use carrot::domain::standings::Totals;
use harness::{Table, live, measure, member_count, mib, participant, print_table, role, seconds};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Instant;

mod harness;

const PROGRAM: &str = r#"
program: acme
name: ACME Channel Stars
time_zone: Europe/Stockholm
rules:
  - id: daily-login
    when: { type: portal.login }
    award: { points: 5 }
    caps: [{ per: day, times: 1 }]
  - id: deal
    when: { type: deal.registered }
    award: { points: 50 }
leaderboards:
  - id: monthly-points
    title: Top sellers of the month
    period: month
    metric: points
    awards:
      - { points: 1000, prize: A weekend in Rome }
      - { points: 500 }
      - { points: 250 }
  - id: quarterly-logins
    title: Most faithful of the quarter
    period: quarter
    metric: login_days
    awards: [{ places: 5, points: 200 }]
  - id: best-location
    title: Best location of the month, by average points
    period: month
    metric: points
    ranks: locations
    min_members: 5
    awards: [{ points: 100 }]
  - id: distributor-top
    title: Top of each distributor
    period: month
    metric: points
    within: distributor
    awards: [{ points: 300 }]
drawings:
  - id: monthly-draw
    title: Monthly prize draw
    period: month
    metric: login_days
    at_least: 10
    prizes:
      - { prize: iPad, count: 3 }
      - { prize: Gift card, points: 500, count: 10 }
non_use:
  usage: login_days
  notice_below: 4
  notify_manager: true
  grace_days: 14
  second_strike: suspend
  forgive_after_months: 6
"#;

const PERIOD: &str = "2026-11";
const LOCATIONS: usize = 5_000;
const DISTRIBUTORS: usize = 200;
const REGIONS: usize = 20;
/// The drawing's seed: fixed, so every run draws the same winners.
const SEED: [u8; 32] = [7; 32];

/// `count` members of the program, the same on every run.
fn members(count: usize) -> Vec<Member> {
    let mut rng = StdRng::seed_from_u64(2026);
    let enrolled_from: Timestamp = "2024-01-01T08:00:00Z".parse().expect("a timestamp");
    let month_start: Timestamp = "2026-11-01T00:00:00Z".parse().expect("a timestamp");
    let hours_before = month_start.duration_since(enrolled_from).as_hours();
    (0..count)
        .map(|i| {
            let location = rng.random_range(0..LOCATIONS);
            let distributor = location % DISTRIBUTORS;
            let region = distributor % REGIONS;
            let login_days: i64 = if rng.random_bool(0.15) {
                0
            } else {
                rng.random_range(1..=22)
            };
            // Some days see more than one login.
            let logins = login_days + rng.random_range(0..=login_days);
            // Deals on a heavy tail (Pareto, shape 1.2): most sell a few, some sell hundreds.
            // Reps who never logged in mostly sell nothing through the portal either.
            let sells = rng.random_bool(if login_days == 0 { 0.2 } else { 0.6 });
            let deals = if sells {
                let u: f64 = 1.0 - rng.random::<f64>();
                (u.powf(-1.0 / 1.2) as i64).min(400)
            } else {
                0
            };
            let points = 5 * login_days + 50 * deals + rng.random_range(0..=deals * 20);
            let counts: BTreeMap<String, i64> =
                [("portal.login", logins), ("deal.registered", deals)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(t, n)| (t.to_owned(), n))
                    .collect();
            let status = match rng.random_range(0..1000) {
                0..20 => "suspended",
                20..25 => "terminated",
                _ => "active",
            };
            // About 2% joined during the month; the others before it.
            let enrolled_at = if rng.random_bool(0.02) {
                month_start + SignedDuration::from_hours(rng.random_range(0..30 * 24))
            } else {
                enrolled_from + SignedDuration::from_hours(rng.random_range(0..hours_before))
            };
            let last_strike = rng
                .random_bool(0.04)
                .then(|| format!("2026-{:02}", rng.random_range(3..=10)));
            Member {
                participant: participant(i),
                role: role(i).to_owned(),
                distributor: format!("dist-{distributor:03}"),
                location: format!("loc-{location:04}"),
                region: Some(format!("region-{region:02}")),
                status: status.to_owned(),
                enrolled_at,
                has_manager: rng.random_bool(0.85),
                segment: None,
                totals: Totals {
                    points,
                    login_days,
                    counts,
                },
                logins,
                strikes: i64::from(last_strike.is_some()),
                last_strike,
                balance: points + rng.random_range(0..20_000),
                pending: if rng.random_bool(0.3) { points / 4 } else { 0 },
                reversed: if rng.random_bool(0.03) { 50 } else { 0 },
            }
        })
        .collect()
}

fn main() {
    let count = member_count();
    let program = Program::parse(PROGRAM, 1).expect("the bench program is valid");
    let period = ClosePeriod::parse(PERIOD).expect("a month");

    let before = live();
    let start = Instant::now();
    let members = members(count);
    let built = start.elapsed();
    let members_heap = live() - before;
    println!(
        "Close of {PERIOD} in memory: {count} members ({}, {} bytes each on average; {} per Member struct), built in {}\n",
        mib(members_heap),
        members_heap / count.max(1),
        size_of::<Member>(),
        seconds(built),
    );

    let mut steps = Vec::new();
    let (mut decision, mut step) =
        measure("decide: standings, entrants, verdicts, figures", || {
            decide(&program, &period, &members)
        });
    step.note = describe(&decision);
    steps.push(step);

    let reached = HashMap::new();
    let (placed, mut step) = measure("placings of every board (no reach times)", || {
        decision
            .boards
            .iter()
            .map(|outcome| placings(&program, outcome, &reached))
            .collect::<Vec<_>>()
    });
    let places: usize = placed.iter().flatten().map(|(_, p)| p.len()).sum();
    step.note = format!("{places} awarded places");
    steps.push(step);

    let committed_at = "2026-12-01T06:00:00Z";
    let ((), mut step) = measure(
        "drawing: commit (SHA-256 of the entrant list) + draw",
        || {
            for (id, entrants) in &decision.entrants {
                let prizes = program
                    .close
                    .drawings
                    .iter()
                    .find(|d| &d.id == id)
                    .map(|d| d.prizes.clone())
                    .unwrap_or_default();
                let record = drawing::commit(
                    &program.id,
                    id,
                    PERIOD,
                    entrants,
                    prizes,
                    &SEED,
                    committed_at,
                );
                black_box(drawing::draw(&record, entrants, &SEED, committed_at));
            }
        },
    );
    step.note = decision
        .entrants
        .iter()
        .map(|(id, e)| format!("{id}: {} entrants", e.len()))
        .collect::<Vec<_>>()
        .join(", ");
    steps.push(step);

    // As the close does once the places are decided.
    decision.keep_shown(&program);
    let (text, mut step) = measure("serde_json: the decision to text (what is frozen)", || {
        serde_json::to_string(&decision).expect("decisions serialize")
    });
    step.note = format!(
        "{} bytes = {} parts of 300 KB; standings {}, entrants {}, verdicts {}, zero logins {}",
        text.len(),
        text.len().div_ceil(300 * 1024),
        json_len(&decision.boards),
        json_len(&decision.entrants),
        json_len(&decision.judged),
        json_len(&decision.zero_logins),
    );
    steps.push(step);

    let (parsed, mut step) = measure("serde_json: the text back (every run reads it)", || {
        serde_json::from_str::<Decision>(&text).expect("the frozen text parses")
    });
    assert!(parsed == decision, "the decision survives its JSON");
    step.note = "equal to the decision".to_owned();
    steps.push(step);

    print_table(
        &steps,
        &Table {
            per_member: None,
            bytes: mib,
        },
    );
}

/// Bytes of a part of the decision in JSON.
fn json_len(value: &impl Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |text| text.len())
}

/// What a decision holds, in a few numbers.
fn describe(decision: &Decision) -> String {
    let boards: Vec<String> = decision
        .boards
        .iter()
        .map(|b| {
            let rows: usize = b.standings.iter().map(|s| s.rows.len()).sum();
            format!(
                "{} {} rows in {} standings",
                b.board,
                rows,
                b.standings.len()
            )
        })
        .collect();
    format!(
        "{}; {} judged, {} without a login",
        boards.join(", "),
        decision.judged.len(),
        decision.zero_logins.len()
    )
}
