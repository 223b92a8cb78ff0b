//! The demo: Carrot on the local stack, end to end. Starts DynamoDB Local and moto, creates
//! every resource from infra/template.yaml, configures a program, enrols 200 reps, posts a
//! month of signed CRM events over HTTP, lets SQS carry them to the award function, and shows
//! what happened.

use anyhow::Context;
use carrot::domain::counters::PeriodTotals;
use carrot::domain::ledger::EntryStatus;
use carrot::ports::StatsReader;
use carrot_local::deployment::Deployment;
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use carrot_local::workload::{Behaviour, month_of_events, roster};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PROGRAM_YAML: &str = include_str!("../../../events/admin/program.yaml");
const PROGRAM: &str = "acme";
const REPS: usize = 200;
const LATE_JOINERS: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    println!("Carrot demo: the local stack, the real handlers, a month of a channel program\n");
    let stack = LocalStack::start_owned()
        .await
        .context("starting the local stack")?;
    println!(
        "  local stack up in {:.1} s: DynamoDB Local {}, moto {}",
        stack.startup_duration().as_secs_f64(),
        stack.dynamodb_endpoint(),
        stack.moto_endpoint()
    );
    let options = SqsEventSourceOptions {
        concurrency: 4,
        ..SqsEventSourceOptions::default()
    };
    let deployment = Deployment::start(&stack, "demo", options, Duration::from_secs(60)).await?;
    println!(
        "  from infra/template.yaml: table {}, queue {} with its dead-letter queue",
        deployment.resources.table(),
        deployment
            .resources
            .events_queue_url()
            .rsplit('/')
            .next()
            .unwrap_or_default()
    );
    println!("  API Gateway (local) on {}\n", deployment.api.base_url());
    let result = run(&deployment).await;
    deployment.stop().await?;
    stack.shutdown();
    result?;
    println!(
        "\nDone in {:.0} s. Everything ran on 127.0.0.1 and is gone now.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(deployment: &Deployment) -> anyhow::Result<()> {
    let crm = deployment
        .create_key("acme-salesforce", PROGRAM, &["events:write"])
        .await?;
    let admin = deployment
        .create_key("acme-admin", PROGRAM, &["admin"])
        .await?;
    println!("1. Keys in Secrets Manager: acme-salesforce (events:write), acme-admin (admin)");
    let stored = admin.put_program(PROGRAM_YAML).await?;
    anyhow::ensure!(
        stored.status == 200,
        "program not stored: {:?}",
        stored.body
    );
    println!(
        "2. PUT /v1/program (events/admin/program.yaml): {} version {}, time zone Europe/Stockholm",
        stored.body["program"], stored.body["version"]
    );

    let reps = roster(REPS, 2026);
    let (early, late) = reps.split_at(REPS - LATE_JOINERS);
    for rep in early {
        let r = admin.enrol(&rep.id, &rep.profile).await?;
        anyhow::ensure!(r.status == 201, "enrolment failed: {:?}", r.body);
    }
    println!(
        "3. Enrolled {} reps of 3 distributors and 12 locations; {} more join after the month",
        early.len(),
        late.len()
    );

    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let today = jiff::Zoned::now().with_time_zone(zone.clone()).date();
    let first_day = today
        .first_of_month()
        .checked_sub(jiff::Span::new().months(1))?;
    let events = month_of_events(&reps, first_day, &zone, 0.08, 7);
    let reversals = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap_or_default()
                .ends_with(".cancelled")
        })
        .count();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *by_type
            .entry(e["type"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    println!(
        "4. {} {}: {} events from the CRM and the portal, {} of them cancellations",
        first_day.strftime("%B"),
        first_day.year(),
        events.len(),
        reversals
    );
    for (kind, n) in &by_type {
        println!("     {kind:<22} {n:>5}");
    }

    // The CRM posts in batches of 100; it also retries 10% of batches (the same events
    // again), and one batch carries two broken events.
    let mut rng = StdRng::seed_from_u64(1);
    let mut batches: Vec<Vec<Value>> = events.chunks(100).map(<[Value]>::to_vec).collect();
    let retries: Vec<Vec<Value>> = (0..batches.len() / 10)
        .map(|_| batches.choose(&mut rng).unwrap().clone())
        .collect();
    batches.extend(retries.iter().cloned());
    batches[0].push(json!({"id": "sf-broken-1", "participant": "rep-0001", "type": "contract.started",
        "occurred_at": "2026-10-03 09:00", "attributes": {"contract_id": "K-1", "financed_volume": "a lot", "currency": "SEK"}}));
    batches[0].push(json!({"id": "sf-broken-2", "type": "deal.registered", "occurred_at": "2026-10-03T09:00:00+02:00"}));
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut example_rejection = None;
    let posting = Instant::now();
    for batch in &batches {
        let r = crm.post_events(&json!({"events": batch})).await?;
        anyhow::ensure!(r.status == 202, "batch refused: {:?}", r.body);
        accepted += r.body["accepted"].as_u64().unwrap_or(0);
        duplicates += r.body["duplicates_in_batch"].as_u64().unwrap_or(0);
        rejected += r.body["rejected"].as_u64().unwrap_or(0);
        if example_rejection.is_none() {
            example_rejection = r.body["results"]
                .as_array()
                .and_then(|results| results.iter().find(|x| x["status"] == "rejected").cloned());
        }
    }
    println!(
        "5. POST /v1/events, HMAC-signed: {} requests ({} CRM retries) in {:.1} s: {accepted} accepted, {duplicates} duplicates in a batch, {rejected} rejected",
        batches.len(),
        retries.len(),
        posting.elapsed().as_secs_f64()
    );
    if let Some(rejection) = example_rejection {
        println!("     a rejection, as the CRM sees it: {rejection}");
    }

    let awarding = Instant::now();
    deployment.award.wait_idle(Duration::from_secs(600)).await?;
    println!(
        "6. SQS → award function: queue drained in {:.1} s ({} batches)",
        awarding.elapsed().as_secs_f64(),
        deployment.award.stats().invocations
    );

    let mut released = 0;
    for rep in late {
        let r = admin.enrol(&rep.id, &rep.profile).await?;
        anyhow::ensure!(r.status == 201, "enrolment failed: {:?}", r.body);
        released += r.body["released_events"].as_u64().unwrap_or(0);
    }
    deployment.award.wait_idle(Duration::from_secs(300)).await?;
    println!(
        "7. The {} late joiners enrolled: {released} parked events released and awarded",
        late.len()
    );

    let store = &deployment.store;
    let month = first_day.strftime("%Y-%m").to_string();
    let mut rows = Vec::new();
    let (mut entries, mut clawed_back, mut cancelled_first) = (0usize, 0usize, 0usize);
    for rep in &reps {
        let state = store
            .participant(PROGRAM, &rep.id)
            .await?
            .context("enrolled")?;
        let ledger = store.ledger(PROGRAM, &rep.id).await?;
        entries += ledger.len();
        let ledger_sum: i64 = ledger.iter().map(|r| r.points).sum();
        anyhow::ensure!(
            ledger_sum == state.balance,
            "{}: the ledger sums to {ledger_sum}, the balance is {}",
            rep.id,
            state.balance
        );
        clawed_back += ledger
            .iter()
            .filter(|r| r.status == EntryStatus::Reversed)
            .count();
        cancelled_first += ledger
            .iter()
            .filter(|r| r.status == EntryStatus::Cancelled)
            .count();
        let months = store.months(PROGRAM, &rep.id).await?;
        let login_days = PeriodTotals::of(&month, &months).login_days;
        rows.push((state.balance, login_days, rep, state.profile.name));
    }
    // Every distinct event accepted has exactly one ledger entry: none lost, none doubled.
    anyhow::ensure!(
        entries == events.len(),
        "{entries} ledger entries for {} distinct accepted events",
        events.len()
    );
    let ignored_reposts = accepted - entries as u64;
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    println!(
        "8. Ledger: {entries} entries, one per distinct event, each naming its rule version and summing to its rep's balance; {ignored_reposts} re-posted events changed nothing; {clawed_back} awards clawed back by a later cancellation, {cancelled_first} cancelled before they arrived (earned nothing)"
    );
    println!(
        "\n   Top 10 reps                       distributor       location                  points  login days"
    );
    for (i, (points, days, rep, name)) in rows.iter().take(10).enumerate() {
        println!(
            "   {:>2}. {:<28} {:<17} {:<25} {:>6}  {:>5}",
            i + 1,
            name,
            rep.distributor,
            rep.location,
            points,
            days
        );
    }
    let mut by_distributor: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
    let mut by_behaviour: BTreeMap<Behaviour, (i64, usize, usize)> = BTreeMap::new();
    for (points, days, rep, _) in &rows {
        let d = by_distributor.entry(rep.distributor.as_str()).or_default();
        d.0 += points;
        d.1 += 1;
        let b = by_behaviour.entry(rep.behaviour).or_default();
        b.0 += points;
        b.1 += 1;
        b.2 += usize::from(*days == 0);
    }
    println!("\n   Distributor        reps   points  avg/rep");
    for (name, (points, count)) in &by_distributor {
        println!(
            "   {name:<17} {count:>5} {points:>8} {:>8}",
            points / *count as i64
        );
    }
    println!("\n   Behaviour    reps   points  avg/rep  zero-login reps");
    for (behaviour, (points, count, zero)) in &by_behaviour {
        println!(
            "   {:<11} {count:>5} {points:>8} {:>8} {zero:>16}",
            format!("{behaviour:?}"),
            points / *count as i64
        );
    }
    let dlq = deployment
        .queue_depth(deployment.resources.events_dlq_url())
        .await?;
    println!("\n   Dead-letter queue: {dlq} messages");
    Ok(())
}
