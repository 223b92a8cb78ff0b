//! A monthly close end to end on the local stack: 20,000 participants (`--participants N` for
//! another number) with a month of counters, then `close_period` timed, its phases watched from
//! the table and the notification requests it queues consumed meanwhile, and a rerun timed (it
//! finds the close done). Last, the reads alone are timed as the close makes them (16 roster
//! shards in parallel, members in batches of 50), and `decide` over what they return.
//!
//! Run: `cargo run --release -p carrot-local --bin close_bench [-- --participants N]`.
//!
//! Participants and their month items are written straight to the table with BatchWriteItem,
//! in the shape `DynamoStore::enrol` and the award function give them (the `roster` key of the
//! PROFILE item, the month item's `lb`). A month of events for 20,000 reps, some 300,000,
//! through the API, SQS and the award function would take hours on the local stack (10,000
//! postings take about 3 minutes, docs/performance.md) and measure the award path, not the
//! close.
//! The program is the one of `shared/benches/close.rs`, which times the in-memory part for
//! 1,000,000 participants.

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use carrot::adapters::dynamo::DynamoStore;
use carrot::domain::close::{ClosePeriod, Member, decide};
use carrot::domain::program::Program;
use carrot::domain::rules::Period;
use carrot::domain::standings::{BOARD_SHARDS, board_shard, month_shard_key};
use carrot::ports::CloseStore;
use carrot_local::deployment::Deployment;
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PROGRAM: &str = "bench";
/// The program of `shared/benches/close.rs`, under this bench's program id.
const PROGRAM_YAML: &str = r#"
program: bench
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
const DRAWING: &str = "monthly-draw";
/// BatchWriteItem takes at most 25 items.
const BATCH: usize = 25;
/// BatchWriteItem calls in flight at once.
const WRITERS: usize = 8;
/// Consumers of the notifications queue while the close runs.
const DRAINERS: usize = 2;
/// How often the close's state is read while it runs.
const POLL: Duration = Duration::from_millis(50);

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// `--participants N` (default 20,000).
fn participant_count() -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--participants") {
        None => Ok(20_000),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.replace('_', "").parse().ok())
            .filter(|count| *count > 0)
            .context("--participants takes a whole number above 0"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count = participant_count()?;
    let stack = LocalStack::start_or_reuse()
        .await
        .context("starting the local stack")?;
    let deployment = Deployment::start(
        stack,
        "closebench",
        SqsEventSourceOptions::default(),
        Duration::from_secs(1),
    )
    .await?;
    let result = run(stack, &deployment, count).await;
    deployment.stop().await?;
    result
}

async fn run(stack: &LocalStack, deployment: &Deployment, count: usize) -> anyhow::Result<()> {
    let admin = deployment
        .create_key("bench-admin", PROGRAM, &["admin"])
        .await?;
    let stored = admin.put_program(PROGRAM_YAML).await?;
    ensure!(
        stored.status == 200,
        "program not stored: {:?}",
        stored.body
    );
    let program = Program::parse(PROGRAM_YAML, 1).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let period = ClosePeriod::latest_due(
        Period::Month,
        Timestamp::now(),
        &program.time_zone,
        program.close.delay_hours,
    );
    println!(
        "Close of {} for {count} participants on the local stack (DynamoDB Local {}, moto {})\n",
        period.label,
        stack.dynamodb_endpoint(),
        stack.moto_endpoint()
    );

    let items = participants(count, &period, &program.time_zone)?;
    let months = items.len() - count;
    let writing = Instant::now();
    write_all(
        &stack.dynamodb_client(),
        deployment.resources.table(),
        items,
    )
    .await?;
    let written = writing.elapsed();
    println!(
        "Enrolled {count} participants and wrote {months} month items directly with BatchWriteItem \
         ({WRITERS} calls in flight, in DynamoStore::enrol's item shape): {:.1} s, {:.0} items/s",
        written.as_secs_f64(),
        (count + months) as f64 / written.as_secs_f64()
    );

    let Run {
        closed,
        total,
        phases,
        notices,
    } = timed_close(deployment, &period.label).await?;
    let participants = closed["participants"].as_u64().unwrap_or_default();
    ensure!(
        participants == count as u64,
        "the close read {participants} participants of {count}"
    );
    let rerun = timed_close(deployment, &period.label).await?;
    ensure!(
        rerun.closed["resumed"] == true && rerun.closed["applied_now"] == 0 && rerun.notices == 0,
        "the rerun did something: {}",
        rerun.closed
    );
    let rerun_time = rerun.total;

    let store = &deployment.store;
    let reading = Instant::now();
    let members = read_members(store, &period).await?;
    let read = reading.elapsed();
    ensure!(
        members.len() == count,
        "read {} members of {count}",
        members.len()
    );
    let deciding = Instant::now();
    let decision = decide(&program, &period, &members);
    let decided = deciding.elapsed();

    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    println!("\n| what | time | rate |\n| --- | --- | --- |");
    println!(
        "| close_period: {participants} participants, {} effects | {:.1} s | {:.0} participants/s |",
        closed["effects"],
        total.as_secs_f64(),
        rate(participants, total)
    );
    let effects = closed["effects"].as_u64().unwrap_or_default();
    for (phase, time, rate) in phases.durations(total, effects) {
        println!("| - {phase} | {:.2} s | {rate} |", time.as_secs_f64());
    }
    println!(
        "| rerun (the close is done: nothing to do) | {:.2} s | |",
        rerun_time.as_secs_f64()
    );
    println!(
        "| the close's reads alone: roster (16 shards in parallel) + BatchGetItem of 50 profiles and month items | {:.1} s | {:.0} participants/s |",
        read.as_secs_f64(),
        rate(count as u64, read)
    );
    println!(
        "| decide over them in memory | {:.1} ms | |",
        decided.as_secs_f64() * 1e3
    );
    println!(
        "\nThe close judged {} participants ({} without a login), drew among {} entrants, and queued {notices} notification requests \
         ({DRAINERS} consumers took them off the queue meanwhile, as the notification function will: \
         moto's SendMessageBatch slows down as a queue grows).",
        decision.judged.len(),
        decision.zero_logins.len(),
        decision.entrants.get(DRAWING).map_or(0, Vec::len),
    );
    println!(
        "Phases are seen by reading the close's STATE item and drawing record every {} ms while it runs.",
        POLL.as_millis()
    );
    Ok(())
}

/// The PROFILE items of `count` participants and the month items of those with activity,
/// random but the same on every run: about 200 participants per location, 25 locations per
/// distributor, login days 0 to 22 (about 15% none), sales on a heavy tail, some suspended or
/// terminated, some with a strike standing.
fn participants(count: usize, period: &ClosePeriod, zone: &TimeZone) -> anyhow::Result<Vec<Item>> {
    let mut rng = StdRng::seed_from_u64(2026);
    let month = &period.months[0];
    let month_start = period.starts_on.to_zoned(zone.clone())?.timestamp();
    let month_days = (period.ends_on - period.starts_on).get_days() as usize + 1;
    let long_ago = month_start - SignedDuration::from_hours(24 * 700);
    let locations = (count / 200).max(1);
    let distributors = (locations / 25).max(1);
    let regions = (distributors / 10).max(1);
    let mut months = Vec::new();
    let mut profiles = Vec::with_capacity(count);
    for i in 0..count {
        let participant = format!("rep-{i:07}");
        let pk = format!("P#{PROGRAM}#{participant}");
        let location = rng.random_range(0..locations);
        let distributor = location % distributors;
        let login_days: usize = if rng.random_bool(0.15) {
            0
        } else {
            rng.random_range(1..=22)
        };
        let logins = login_days + rng.random_range(0..=login_days);
        let sells = rng.random_bool(if login_days == 0 { 0.2 } else { 0.6 });
        let deals: i64 = if sells {
            let u: f64 = 1.0 - rng.random::<f64>();
            (u.powf(-1.0 / 1.2) as i64).min(400)
        } else {
            0
        };
        let points = 5 * login_days as i64 + 50 * deals + rng.random_range(0..=deals * 20);
        let status = match rng.random_range(0..1000) {
            0..20 => "suspended",
            20..25 => "terminated",
            _ => "active",
        };
        let enrolled_at = if rng.random_bool(0.02) {
            month_start + SignedDuration::from_hours(rng.random_range(0..(month_days as i64) * 24))
        } else {
            long_ago + SignedDuration::from_hours(rng.random_range(0..24 * 690))
        };
        let mut profile = Item::from([
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s("PROFILE")),
            ("participant".to_owned(), s(&participant)),
            ("program".to_owned(), s(PROGRAM)),
            ("updated_at".to_owned(), s(enrolled_at.to_string())),
            ("enrolled_at".to_owned(), s(enrolled_at.to_string())),
            ("status".to_owned(), s(status)),
            (
                "balance".to_owned(),
                n(points + rng.random_range(0..20_000)),
            ),
            (
                "roster".to_owned(),
                s(format!("{PROGRAM}#{:02}", board_shard(&participant))),
            ),
            ("name".to_owned(), s(format!("Rep {i}"))),
            (
                "email".to_owned(),
                s(format!("rep.{i}@dist-{distributor:03}.example")),
            ),
            ("locale".to_owned(), s("sv-SE")),
            ("time_zone".to_owned(), s("Europe/Stockholm")),
            (
                "role".to_owned(),
                s(if i % 10 == 0 {
                    "sales_manager"
                } else {
                    "sales_rep"
                }),
            ),
            (
                "distributor".to_owned(),
                s(format!("dist-{distributor:03}")),
            ),
            ("location".to_owned(), s(format!("loc-{location:04}"))),
            (
                "region".to_owned(),
                s(format!("region-{:02}", distributor % regions)),
            ),
        ]);
        if rng.random_bool(0.85) {
            profile.insert(
                "manager".to_owned(),
                AttributeValue::M(Item::from([
                    ("name".to_owned(), s(format!("Manager {location}"))),
                    (
                        "email".to_owned(),
                        s(format!("manager.{location}@dist-{distributor:03}.example")),
                    ),
                ])),
            );
        }
        if rng.random_bool(0.04) {
            let ago = rng.random_range(1..=8);
            let last = period
                .starts_on
                .checked_sub(jiff::Span::new().months(ago))?;
            profile.insert("strikes".to_owned(), n(1));
            profile.insert(
                "last_strike".to_owned(),
                s(last.strftime("%Y-%m").to_string()),
            );
        }
        profiles.push(profile);
        if points == 0 && login_days == 0 {
            continue;
        }
        // The month item as the award function leaves it.
        let mut item = Item::from([
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s(format!("M#{month}"))),
            ("points".to_owned(), n(points)),
            (
                "lb".to_owned(),
                s(month_shard_key(PROGRAM, month, board_shard(&participant))),
            ),
        ]);
        if login_days > 0 {
            let days = rand::seq::index::sample(&mut rng, month_days, login_days);
            item.insert(
                "login_days".to_owned(),
                AttributeValue::Ns(days.iter().map(|d| (d + 1).to_string()).collect()),
            );
            item.insert("days".to_owned(), n(login_days as i64));
            item.insert("n:portal.login".to_owned(), n(logins as i64));
        }
        if deals > 0 {
            item.insert("n:deal.registered".to_owned(), n(deals));
        }
        months.push(item);
    }
    profiles.extend(months);
    Ok(profiles)
}

/// Writes every item with BatchWriteItem, `WRITERS` calls at once, retrying what DynamoDB
/// leaves unprocessed.
async fn write_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> anyhow::Result<()> {
    let batches: Arc<Vec<Vec<WriteRequest>>> = Arc::new(
        items
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|item| {
                        let put = PutRequest::builder().set_item(Some(item.clone())).build()?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<anyhow::Result<_>>()
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let (client, table, batches, next) = (
            client.clone(),
            table.to_owned(),
            batches.clone(),
            next.clone(),
        );
        writers.spawn(async move {
            loop {
                let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let mut pending = batch.clone();
                for attempt in 0.. {
                    let output = client
                        .batch_write_item()
                        .request_items(&table, pending)
                        .send()
                        .await
                        .context("BatchWriteItem")?;
                    pending = output
                        .unprocessed_items()
                        .and_then(|u| u.get(&table))
                        .cloned()
                        .unwrap_or_default();
                    if pending.is_empty() {
                        break;
                    }
                    ensure!(
                        attempt < 10,
                        "BatchWriteItem kept leaving items unprocessed"
                    );
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(())
}

/// When each phase of a close ended, as seen from the table (since the close was invoked).
#[derive(Default)]
struct Phases {
    /// The state item exists: every member was read, the close decided and froze.
    frozen: Option<Duration>,
    /// The drawing's record is stored.
    drawn: Option<Duration>,
    /// The last checkpoint of the effects.
    applied: Option<(Duration, u64)>,
}

impl Phases {
    /// Each phase, how long it took, and the effects' rate; a phase not seen (a rerun) is
    /// left out.
    fn durations(&self, total: Duration, effects: u64) -> Vec<(&'static str, Duration, String)> {
        let (Some(frozen), Some(drawn)) = (self.frozen, self.drawn) else {
            return Vec::new();
        };
        let applied = self.applied.map_or(drawn, |(at, _)| at);
        let applying = applied.saturating_sub(drawn);
        vec![
            (
                "read every member, decide, commit the drawing, freeze",
                frozen,
                String::new(),
            ),
            (
                "draw: the entrant list and the record",
                drawn.saturating_sub(frozen),
                String::new(),
            ),
            (
                "apply the effects (credits, strikes, sanctions, notices)",
                applying,
                format!("{:.0} effects/s", effects as f64 / applying.as_secs_f64()),
            ),
            (
                "publish the standings, lists and report; finish",
                total.saturating_sub(applied),
                String::new(),
            ),
        ]
    }
}

/// One invocation of the close.
struct Run {
    /// What the close function answered about the period.
    closed: Value,
    total: Duration,
    phases: Phases,
    /// Notification requests taken off the queue.
    notices: u64,
}

/// Invokes the close as an operator would, watches its state in the table meanwhile, and
/// consumes the notification requests it queues.
async fn timed_close(deployment: &Deployment, period: &str) -> anyhow::Result<Run> {
    let started = Instant::now();
    let finished = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        deployment.store.clone(),
        period.to_owned(),
        started,
        finished.clone(),
    ));
    let queue = deployment.resources.queue_url("NotificationsQueue");
    let drainers: Vec<_> = (0..DRAINERS)
        .map(|_| {
            tokio::spawn(drain(
                deployment.sqs.clone(),
                queue.to_owned(),
                finished.clone(),
            ))
        })
        .collect();
    let result = deployment.close_period(PROGRAM, period).await;
    let total = started.elapsed();
    finished.store(true, Ordering::Relaxed);
    let phases = watcher.await??;
    let mut notices = 0;
    for drainer in drainers {
        notices += drainer.await??;
    }
    Ok(Run {
        closed: result?["closed"][0].clone(),
        total,
        phases,
        notices,
    })
}

/// Receives and deletes messages until the queue is empty once `finished` is set; returns
/// how many.
async fn drain(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    finished: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let mut drained = 0;
    loop {
        let done = finished.load(Ordering::Relaxed);
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .context("ReceiveMessage")?;
        let entries: Vec<DeleteMessageBatchRequestEntry> = received
            .messages()
            .iter()
            .enumerate()
            .filter_map(|(i, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(message.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            if done {
                return Ok(drained);
            }
            continue;
        }
        drained += entries.len() as u64;
        sqs.delete_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await
            .context("DeleteMessageBatch")?;
    }
}

async fn watch(
    store: DynamoStore,
    period: String,
    started: Instant,
    finished: Arc<AtomicBool>,
) -> anyhow::Result<Phases> {
    let mut phases = Phases::default();
    let drawing = format!("drawing#{DRAWING}");
    while !finished.load(Ordering::Relaxed) {
        if let Some(state) = store.state(PROGRAM, &period).await? {
            phases.frozen.get_or_insert(started.elapsed());
            if state.applied > 0 && phases.applied.is_none_or(|(_, seen)| seen != state.applied) {
                phases.applied = Some((started.elapsed(), state.applied));
            }
        }
        if phases.drawn.is_none()
            && store
                .document(PROGRAM, &period, &drawing, 0)
                .await?
                .is_some()
        {
            phases.drawn = Some(started.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(phases)
}

/// Every member, read as the close reads them: each roster shard in its own task, page by
/// page, and the members of each page in batches of 50.
async fn read_members(store: &DynamoStore, period: &ClosePeriod) -> anyhow::Result<Vec<Member>> {
    let mut shards = tokio::task::JoinSet::new();
    for shard in 0..BOARD_SHARDS {
        let (store, period) = (store.clone(), period.clone());
        shards.spawn(async move {
            let mut members = Vec::new();
            let mut after = None;
            loop {
                let (ids, next) = store.roster(PROGRAM, shard, after).await?;
                for batch in ids.chunks(50) {
                    members.extend(store.members(PROGRAM, batch, &period).await?);
                }
                match next {
                    Some(next) => after = Some(next),
                    None => return Ok::<_, anyhow::Error>(members),
                }
            }
        });
    }
    let mut members = Vec::new();
    while let Some(shard) = shards.join_next().await {
        members.extend(shard??);
    }
    Ok(members)
}
