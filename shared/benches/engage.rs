//! The in-memory part of the daily engagement run (shared/src/service/engage.rs) for a program
//! of 1,000,000 active members: what the run computes once it has read them (I/O excluded),
//! with the `segments` and `journeys` of the sample program (`events/admin/program.yaml`).
//! Times each pass and measures the heap each needs, and prints the segments of the members.
//!
//! Run: `cargo bench -p carrot --bench engage` (`-- --members N` for another size).
//!
//! - pass one: each member's engagement state folded from their months, then assessed; the
//!   ranks of the population and of each role;
//! - pass two: each member folded again, classified, their target and journey plan, and the
//!   two states (and every planned action) to JSON, as the run stores and queues them.
//!
//! Both passes run twice: as the first run of a program (no stored state: every fold starts
//! empty, every journey from its first step) and as a later day's run (the states the run
//! stored the day before are parsed first and compared after). The run's day is a Thursday in
//! a month's last week, so near-miss nudges are planned and the Monday digest is not.
//!
//! Like the run, the bench holds one page of 100 members at a time (and the assessments of
//! all, between the passes): each page is made, and for a later day given the states
//! yesterday's run left it, before the clock starts on it. Holding all 1,000,000 members and
//! their states at once (4 GB of heap) made the later day's passes 2 to 3 times as slow per
//! member, from cache and TLB misses that the run does not have.
//!
//! The members are random but fixed: 90% `sales_rep`, 10% `sales_manager`; each has the 7
//! month items the run reads (the month in progress and 6 complete ones, empty when the member
//! did nothing); 3% joined in the last 30 days. Their kind (below) shapes their months, and a
//! level on a heavy tail (Pareto, shape 1.3) sets how many points a month they make, so a few
//! make hundreds of times the median.

use carrot::domain::counters::MonthStats;
use carrot::domain::journey::{JourneyAction, JourneyState, plan};
use carrot::domain::period::time_zone;
use carrot::domain::program::Program;
use carrot::domain::segments::{
    Assessment, Engagement, Month, Population, Segment, assess, personal_target,
};
use carrot::service::engage::{MemberIds, journey_member};
use harness::{
    Step, Table, kib_or_mib, live, measure_timed, member_count, participant, print_table, role,
    seconds,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

mod harness;

const PROGRAM: &str = include_str!("../../events/admin/program.yaml");
const TODAY: &str = "2026-11-26";
/// The run whose stored states a later day's run reads.
const YESTERDAY: &str = "2026-11-25";
/// The month in progress has figures up to this day.
const DAYS_SO_FAR: u8 = 25;
/// Members read and planned at a time, as the run reads them.
const PAGE: usize = 100;
const ZONES: [&str; 3] = ["Europe/Stockholm", "Europe/Oslo", "Europe/Helsinki"];

/// An active member as the run reads them: what of the profile it uses, and the month items.
struct Member {
    /// What shaped the months (the bench's, not the run's).
    kind: Kind,
    participant: String,
    role: String,
    time_zone: &'static str,
    enrolled_at: String,
    has_phone: bool,
    /// The 6 complete months and the month in progress, oldest first.
    months: Vec<MonthStats>,
}

/// What the run stores on the profile: the two states, as JSON text.
struct Stored {
    engagement: String,
    journey: String,
}

/// What shapes a synthetic member's months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    NeverActive,
    OneTime,
    Dormant,
    Slipping,
    Steady,
    Rising,
}

/// The mix of kinds, per mille.
const MIX: [(Kind, u32); 6] = [
    (Kind::NeverActive, 80),
    (Kind::OneTime, 60),
    (Kind::Dormant, 140),
    (Kind::Slipping, 130),
    (Kind::Steady, 450),
    (Kind::Rising, 140),
];

/// A kind's activity by the month's age (0: the month in progress, 6: the oldest), as a share
/// of the member's level.
fn shape(kind: Kind, rng: &mut StdRng) -> [f64; 7] {
    match kind {
        Kind::NeverActive => [0.0; 7],
        Kind::OneTime => {
            let mut shape = [0.0; 7];
            shape[rng.random_range(1..=6)] = 1.0;
            shape
        }
        Kind::Dormant => [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        Kind::Slipping => [0.3, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0],
        Kind::Steady => [1.0; 7],
        Kind::Rising => [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5],
    }
}

/// The members of page `index` (of `PAGE`, up to member `count`), the same on every call.
fn page(index: usize, count: usize, current: Month) -> Vec<Member> {
    let mut rng = StdRng::seed_from_u64(index as u64);
    let first: Timestamp = "2023-01-01T08:00:00Z".parse().expect("a timestamp");
    let recent: Timestamp = "2026-10-26T08:00:00Z".parse().expect("a timestamp");
    let last: Timestamp = "2026-11-25T05:00:00Z".parse().expect("a timestamp");
    let hours = |from: Timestamp| last.duration_since(from).as_hours();
    (index * PAGE..count.min((index + 1) * PAGE))
        .map(|i| {
            let enrolled_at = if rng.random_bool(0.03) {
                recent + SignedDuration::from_hours(rng.random_range(0..hours(recent)))
            } else {
                first + SignedDuration::from_hours(rng.random_range(0..hours(first)))
            };
            let enrolled = Month::of(enrolled_at, &jiff::tz::TimeZone::UTC);
            let mut pick = rng.random_range(0..1000);
            let kind = MIX
                .iter()
                .find(|(_, share)| {
                    let here = pick < *share;
                    pick = pick.saturating_sub(*share);
                    here
                })
                .map_or(Kind::Steady, |(kind, _)| *kind);
            let shape = shape(kind, &mut rng);
            let level = 150.0 * (1.0 - rng.random::<f64>()).powf(-1.0 / 1.3);
            let months = (0..=6)
                .rev()
                .map(|age| {
                    let month = current.back(age);
                    // Months before the enrolment are empty; an active month is skipped now
                    // and then.
                    let share = if month < enrolled || rng.random_bool(0.04) {
                        0.0
                    } else {
                        shape[age as usize] * rng.random_range(0.8..1.2)
                    };
                    let days = if age == 0 { DAYS_SO_FAR } else { 30 };
                    let points = (level * share * f64::from(days) / 30.0).min(200_000.0) as i64;
                    month_stats(month, points, days, &mut rng)
                })
                .collect();
            Member {
                kind,
                participant: participant(i),
                role: role(i).to_owned(),
                time_zone: ZONES[i % ZONES.len()],
                enrolled_at: enrolled_at.to_string(),
                has_phone: rng.random_bool(0.7),
                months,
            }
        })
        .collect()
}

/// Runs `work` on every page of members, timing only the work. For a later day, each page
/// is first given the states yesterday's run stored (planned under `yesterday`'s ranks).
fn paged(
    program: &Program,
    count: usize,
    current: Month,
    yesterday: Option<&Ranks>,
    mut work: impl FnMut(&[Member], Option<&[Stored]>),
) -> Duration {
    let mut spent = Duration::ZERO;
    for index in 0..count.div_ceil(PAGE) {
        let members = page(index, count, current);
        let stored = yesterday.map(|ranks| {
            let mut tally = Tally::default();
            let day = YESTERDAY.parse().expect("a date");
            plan_all(
                program, ranks, &members, None, current, day, true, &mut tally,
            );
            tally.stored
        });
        let start = Instant::now();
        work(&members, stored.as_deref());
        spent += start.elapsed();
    }
    spent
}

/// A month item with `points` points, and login days and events to go with them.
fn month_stats(month: Month, points: i64, days: u8, rng: &mut StdRng) -> MonthStats {
    let mut stats = MonthStats {
        month: month.label(),
        ..MonthStats::default()
    };
    if points <= 0 {
        return stats;
    }
    let logins = (points / 40 + rng.random_range(1..=4)).min(i64::from(days));
    stats.points = points;
    stats.login_days = (1..=days)
        .filter(|_| rng.random_bool(logins as f64 / f64::from(days)))
        .collect();
    let counts = [
        ("portal.login", logins + rng.random_range(0..=logins)),
        ("deal.registered", points / 300),
        ("contract.started", points / 800),
        ("crm.activity_logged", rng.random_range(0..=2 * logins)),
        ("quiz.completed", i64::from(rng.random_bool(0.2))),
    ];
    stats.counts = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.to_owned(), n))
        .collect();
    stats
}

/// The run's `fold`: the stored state (or an empty one) with the complete months folded in,
/// and the month in progress.
fn fold(
    program: &Program,
    member: &Member,
    stored: Option<&Stored>,
    current: Month,
) -> (Engagement, MonthStats) {
    let mut engagement = stored.map_or_else(Engagement::default, |s| {
        serde_json::from_str(&s.engagement).expect("a stored engagement state")
    });
    engagement.fold(&member.months, current, &program.segments.metric);
    let label = current.label();
    let stats = member
        .months
        .iter()
        .find(|m| m.month == label)
        .cloned()
        .unwrap_or_else(|| MonthStats {
            month: label,
            ..MonthStats::default()
        });
    (engagement, stats)
}

/// Pass one without the ranks: each member's role and assessment, added to `assessed`.
fn assess_all(
    program: &Program,
    members: &[Member],
    stored: Option<&[Stored]>,
    current: Month,
    assessed: &mut Vec<(String, Assessment)>,
) {
    for (i, member) in members.iter().enumerate() {
        let (engagement, stats) = fold(program, member, stored.map(|s| &s[i]), current);
        let assessment = assess(&program.segments, &engagement, &stats, current);
        assessed.push((member.role.clone(), assessment));
    }
}

/// Pass one over every page: the assessments of all members.
fn pass_one(
    program: &Program,
    count: usize,
    current: Month,
    yesterday: Option<&Ranks>,
) -> (Vec<(String, Assessment)>, Duration) {
    let mut assessed = Vec::new();
    let spent = paged(program, count, current, yesterday, |members, stored| {
        assess_all(program, members, stored, current, &mut assessed);
    });
    (assessed, spent)
}

/// The ranks of the whole population, and of each role for the percentiles.
struct Ranks {
    population: Population,
    peers: HashMap<String, Population>,
}

fn ranks(program: &Program, assessed: &[(String, Assessment)]) -> Ranks {
    let population = Population::new(&program.segments, assessed.iter().map(|(_, a)| a));
    let mut roles: Vec<&str> = assessed.iter().map(|(role, _)| role.as_str()).collect();
    roles.sort_unstable();
    roles.dedup();
    let peers = roles
        .into_iter()
        .map(|role| {
            let of_role = assessed.iter().filter(|(r, _)| r == role).map(|(_, a)| a);
            (role.to_owned(), Population::new(&program.segments, of_role))
        })
        .collect();
    Ranks { population, peers }
}

/// What pass two decided over all members.
#[derive(Default)]
struct Tally {
    segments: BTreeMap<Segment, usize>,
    sends: usize,
    awards: usize,
    action_bytes: usize,
    state_bytes: usize,
    /// Members whose stored states would be written.
    changed: usize,
    /// A change of segment (a `SEG#` item written too).
    moved: usize,
    /// The states to store, when asked for.
    stored: Vec<Stored>,
}

impl Tally {
    fn describe(&self, count: usize) -> String {
        format!(
            "{} messages, {} awards ({:.1} MB of JSON); states {} bytes a member; {} to write, {} changes of segment",
            self.sends,
            self.awards,
            self.action_bytes as f64 / 1e6,
            self.state_bytes / count.max(1),
            self.changed,
            self.moved
        )
    }
}

/// Pass two over every page (for a later day, each page with yesterday's states).
fn pass_two(
    program: &Program,
    ranks: &Ranks,
    count: usize,
    current: Month,
    yesterday: Option<&Ranks>,
) -> (Tally, Duration) {
    let today = TODAY.parse().expect("a date");
    let mut tally = Tally::default();
    let spent = paged(program, count, current, yesterday, |members, stored| {
        plan_all(
            program, ranks, members, stored, current, today, false, &mut tally,
        );
    });
    (tally, spent)
}

/// Pass two: each member's segment, target and journey plan, their states to JSON (and
/// compared with the stored ones), as `plan_member` does (the digest and the building of the
/// notification requests left out: their JSON is counted as the actions').
#[allow(clippy::too_many_arguments)]
fn plan_all(
    program: &Program,
    ranks: &Ranks,
    members: &[Member],
    stored: Option<&[Stored]>,
    current: Month,
    today: Date,
    keep: bool,
    tally: &mut Tally,
) {
    let day = today.to_string();
    for (i, member) in members.iter().enumerate() {
        let before = stored.map(|s| &s[i]);
        let (mut engagement, stats) = fold(program, member, before, current);
        let assessment = assess(&program.segments, &engagement, &stats, current);
        let segment = assessment.segment(&ranks.population);
        let change = engagement.assign(segment, &day);
        let target = personal_target(&program.segments, &engagement, current);
        black_box(
            ranks
                .peers
                .get(member.role.as_str())
                .map_or(0, |p| p.percentile(assessment.score)),
        );
        let journey: JourneyState = before.map_or_else(JourneyState::default, |s| {
            serde_json::from_str(&s.journey).expect("a stored journey state")
        });
        let zone = time_zone(member.time_zone).unwrap_or_else(|_| program.time_zone.clone());
        let enrolled_on = member
            .enrolled_at
            .parse::<Timestamp>()
            .expect("an enrolment time")
            .to_zoned(zone)
            .date();
        let journey_member = journey_member(
            program,
            MemberIds {
                participant: &member.participant,
                role: &member.role,
                has_phone: member.has_phone,
            },
            enrolled_on,
            &engagement,
            &stats,
            segment,
            target.as_ref(),
        );
        let planned = plan(
            &program.journeys,
            &program.close.drawings,
            &journey_member,
            &journey,
            today,
        );
        for action in &planned.actions {
            let text = serde_json::to_string(action).expect("an action serializes");
            tally.action_bytes += text.len();
            match action {
                JourneyAction::Send { .. } => tally.sends += 1,
                JourneyAction::Award { .. } => tally.awards += 1,
            }
        }
        let state = Stored {
            engagement: serde_json::to_string(&engagement).expect("state serializes"),
            journey: serde_json::to_string(&planned.state).expect("state serializes"),
        };
        tally.state_bytes += state.engagement.len() + state.journey.len();
        let unchanged = change.is_none()
            && before
                .is_some_and(|b| b.engagement == state.engagement && b.journey == state.journey);
        tally.changed += usize::from(!unchanged);
        tally.moved += usize::from(change.is_some());
        *tally.segments.entry(segment).or_default() += 1;
        if keep {
            tally.stored.push(state);
        }
    }
}

fn main() {
    let count = member_count();
    let program = Program::parse(PROGRAM, 1).expect("the sample program is valid");
    let current = Month::parse(&TODAY[..7]).expect("a month");
    assert_eq!(
        program.segments.months_needed(),
        6,
        "the bench's members have the 7 months the sample program reads"
    );

    // The members once over, untimed: their kinds and their heap.
    let mut kinds: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut members_heap = 0;
    let start = Instant::now();
    for index in 0..count.div_ceil(PAGE) {
        let before = live();
        let members = page(index, count, current);
        members_heap += live() - before;
        for member in &members {
            *kinds.entry(member.kind).or_default() += 1;
        }
    }
    println!(
        "Daily engagement run of {TODAY} in memory: {count} active members ({} bytes each on average, one page of {PAGE} at a time), made in {}",
        members_heap / count.max(1),
        seconds(start.elapsed()),
    );
    println!("Kinds the members were made as: {kinds:?}\n");

    let mut steps = Vec::new();
    // A program's first run: nothing stored.
    let first_day = Day {
        pass_one: "first run, pass one: fold + assess",
        ranks: "first run, pass one: Population::new, overall and per role",
        pass_two: "first run, pass two: plan every member",
    };
    let (first_ranks, first) = run_day(&program, count, current, None, &first_day, &mut steps);
    // A later day: each page first gets the states yesterday's run stored (the same months:
    // only the calendar moved).
    let later_day = Day {
        pass_one: "later day, pass one: parse + fold + assess",
        ranks: "later day, pass one: Population::new, overall and per role",
        pass_two: "later day, pass two: parse the states, plan, compare",
    };
    let (_, later) = run_day(
        &program,
        count,
        current,
        Some(&first_ranks),
        &later_day,
        &mut steps,
    );
    assert_eq!(
        first.segments, later.segments,
        "the same months give the same segments"
    );

    print_table(
        &steps,
        &Table {
            per_member: Some(count),
            bytes: kib_or_mib,
        },
    );
    println!("\n| segment | members | share |\n| --- | --- | --- |");
    for segment in Segment::ALL {
        let n = first.segments.get(&segment).copied().unwrap_or(0);
        println!(
            "| {segment} | {n} | {:.2}% |",
            n as f64 * 100.0 / count.max(1) as f64
        );
    }
}

/// The names of a day's three steps in the table.
struct Day {
    pass_one: &'static str,
    ranks: &'static str,
    pass_two: &'static str,
}

/// One day's run, its three steps added to `steps`: pass one, the ranks, pass two. For a later
/// day, `yesterday` has the ranks the day before planned under. Returns the ranks and the tally.
fn run_day(
    program: &Program,
    count: usize,
    current: Month,
    yesterday: Option<&Ranks>,
    day: &Day,
    steps: &mut Vec<Step>,
) -> (Ranks, Tally) {
    let (assessed, mut step) = measure_timed(day.pass_one, || {
        pass_one(program, count, current, yesterday)
    });
    step.note = format!("{} assessments", assessed.len());
    let pass_one_kept = step.kept;
    steps.push(step);
    let (ranks, mut step) = measure_timed(day.ranks, || {
        let start = Instant::now();
        let ranks = ranks(program, &assessed);
        (ranks, start.elapsed())
    });
    // The first run also says how many are ranked.
    let ranked = if yesterday.is_none() {
        format!(
            "{} ranked of {}; ",
            ranks.population.ranked_len(),
            ranks.population.len()
        )
    } else {
        String::new()
    };
    step.note = format!(
        "{ranked}pass one's peak with the assessments: {}",
        kib_or_mib(pass_one_kept + step.peak)
    );
    steps.push(step);
    drop(assessed);
    let (tally, mut step) = measure_timed(day.pass_two, || {
        pass_two(program, &ranks, count, current, yesterday)
    });
    step.note = tally.describe(count);
    steps.push(step);
    (ranks, tally)
}
