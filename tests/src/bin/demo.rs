//! The demo: Carrot on the local stack, end to end. Starts DynamoDB Local and moto, creates
//! every resource from infra/template.yaml, configures the sample program and a second version
//! that starts its sprint today, enrols 200 reps, posts a month of signed CRM events over HTTP,
//! lets SQS carry them to the award function, then, live, quotes a contract on the points
//! calculator and awards it as quoted (the sprint and a cap at work) and credits an adjustment
//! once, and shows what happened.

use anyhow::Context;
use carrot::domain::counters::PeriodTotals;
use carrot::domain::ledger::EntryStatus;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment};
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use carrot_local::workload::{Behaviour, Rep, month_of_events, roster};
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
    let portal = deployment
        .create_key("acme-portal", PROGRAM, &["participants:read"])
        .await?;
    println!(
        "1. Keys in Secrets Manager: acme-salesforce (events:write), acme-admin (admin), acme-portal (participants:read)"
    );
    let stored = admin.put_program(PROGRAM_YAML).await?;
    anyhow::ensure!(
        stored.status == 200,
        "program not stored: {:?}",
        stored.body
    );
    println!(
        "2. PUT /v1/program (events/admin/program.yaml): {} version {}: {} rules, {} campaigns, {} budget, time zone Europe/Stockholm",
        stored.body["program"],
        stored.body["version"],
        stored.body["rules"],
        stored.body["campaigns"],
        stored.body["budgets"]
    );
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let today = jiff::Zoned::now().with_time_zone(zone.clone()).date();
    let (sprint_yaml, sprint_from, sprint_until) = sprint_started_today(today, &zone)?;
    let stored = admin.put_program(&sprint_yaml).await?;
    anyhow::ensure!(
        stored.status == 200,
        "version 2 not stored: {:?}",
        stored.body
    );
    let program = admin.get_program().await?;
    let entries = program.body["schedule"]
        .as_array()
        .context("GET /v1/program has a schedule")?;
    let sprint_in_force: jiff::Timestamp = entries
        .last()
        .and_then(|s| s["effective_from"].as_str())
        .context("the schedule names version 2")?
        .parse()?;
    let schedule: Vec<String> = entries
        .iter()
        .map(|s| -> anyhow::Result<String> {
            let from: jiff::Timestamp = s["effective_from"].as_str().unwrap_or_default().parse()?;
            Ok(format!(
                "v{} from {}",
                s["version"],
                from.to_zoned(zone.clone()).strftime("%H:%M:%S")
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "   The channel team starts the December sprint early: version 2 (december-sprint v2: double contract points {sprint_from} to {sprint_until}), in force a config TTL after it is stored (when every warm function has read it), without a redeploy"
    );
    println!(
        "   GET /v1/program: schedule {}; each event is awarded under the version in force when it occurred",
        schedule.join(", ")
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

    let featured = early
        .iter()
        .find(|r| r.behaviour == Behaviour::Superstar)
        .unwrap_or(&early[0]);
    // Today's events must occur once version 2 is in force, or they earn under version 1;
    // they are stamped in whole seconds, hence the extra second.
    let until_sprint =
        sprint_in_force.duration_since(jiff::Timestamp::now()) + jiff::SignedDuration::from_secs(1);
    if until_sprint.is_positive() {
        println!(
            "   (waiting {:.0} s for version 2 to take effect)",
            until_sprint.as_secs_f64().ceil()
        );
        tokio::time::sleep(until_sprint.unsigned_abs()).await;
    }
    let live_events = today_at_work(deployment, &crm, &admin, &portal, featured).await?;

    let store = &deployment.store;
    let month = first_day.strftime("%Y-%m").to_string();
    let mut rows = Vec::new();
    let (mut entries, mut clawed_back, mut cancelled_first) = (0usize, 0usize, 0usize);
    let mut by_config: BTreeMap<u32, usize> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    let (mut logins_capped, mut reps_capped) = (0, 0);
    let (mut contracts, mut contracts_paid_volume) = (0, 0);
    for rep in &reps {
        let state = store
            .participant(PROGRAM, &rep.id)
            .await?
            .context("enrolled")?;
        let ledger = store.ledger(PROGRAM, &rep.id).await?;
        entries += ledger
            .iter()
            .filter(|r| r.status != EntryStatus::Expired)
            .count();
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
        let mut capped = 0;
        for record in &ledger {
            if let Some(version) = record.config {
                *by_config.entry(version).or_default() += 1;
            }
            for line in &record.rules {
                let rule = by_rule.entry(line.id.clone()).or_default();
                rule.0 += 1;
                rule.1 += line.points;
            }
            let of_month = record.month.as_deref() == Some(month.as_str());
            let earned = |rule: &str| record.rules.iter().any(|l| l.id == rule);
            match record.event_type.as_deref() {
                // One login a day at most: a login that earned no daily-login points met the
                // monthly cap.
                Some("portal.login") if of_month && !earned("daily-login") => capped += 1,
                Some("contract.started") if of_month => {
                    contracts += 1;
                    contracts_paid_volume += usize::from(earned("contract-volume"));
                }
                _ => {}
            }
        }
        logins_capped += capped;
        reps_capped += usize::from(capped > 0);
        let months = store.months(PROGRAM, &rep.id).await?;
        let login_days = PeriodTotals::of(&month, &months).login_days;
        rows.push((state.balance, login_days, rep, state.profile.name));
    }
    // Every distinct event accepted has exactly one ledger entry: none lost, none doubled.
    let distinct = events.len() + live_events;
    anyhow::ensure!(
        entries == distinct,
        "{entries} ledger entries for {distinct} distinct accepted events"
    );
    let ignored_reposts = accepted - events.len() as u64;
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    println!(
        "9. Ledger: {entries} entries, one per distinct event, each naming its rule versions and summing to its rep's balance; {ignored_reposts} re-posted events changed nothing; {clawed_back} awards clawed back by a later cancellation, {cancelled_first} cancelled before they arrived (earned nothing)"
    );
    let configs: Vec<String> = by_config
        .iter()
        .map(|(version, n)| format!("v{version} {n}"))
        .collect();
    println!(
        "   Entries by configuration version: {} (what occurred before version 2 took effect stays under version 1)",
        configs.join(", ")
    );
    println!(
        "   The monthly login cap at work: {logins_capped} {} logins of {reps_capped} reps earned no daily-login points past its 100 points a month",
        first_day.strftime("%B")
    );
    println!(
        "   Data quality at work: {contracts_paid_volume} of {contracts} {} contracts earned contract-volume points; it pays in full for a contract that reaches Carrot within 3 days, half within 14, and these were posted on {today}",
        first_day.strftime("%B")
    );
    println!("\n   Points by rule (net of clawbacks)  entries    points");
    for (rule, (n, points)) in &by_rule {
        println!("   {rule:<32} {n:>8} {points:>9}");
    }
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

/// The sample program with its December sprint started today (the campaign's version 2): from
/// today's midnight until Christmas Eve, or for two weeks if that ends later. Returns the
/// document and the sprint's first and last day.
fn sprint_started_today(
    today: jiff::civil::Date,
    zone: &jiff::tz::TimeZone,
) -> anyhow::Result<(String, jiff::civil::Date, jiff::civil::Date)> {
    let midnight = |date: jiff::civil::Date| -> anyhow::Result<String> {
        Ok(date
            .to_zoned(zone.clone())?
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string())
    };
    let until = jiff::civil::date(2026, 12, 24).max(today.checked_add(jiff::Span::new().days(14))?);
    let yaml = PROGRAM_YAML.replace(
        "    version: 1\n    description: Double points on contracts until Christmas Eve\n    from: 2026-12-01T00:00:00+01:00\n    until: 2026-12-24T00:00:00+01:00",
        &format!(
            "    version: 2\n    description: Double points on contracts, started early\n    from: {}\n    until: {}",
            midnight(today)?,
            midnight(until)?
        ),
    );
    anyhow::ensure!(
        yaml != PROGRAM_YAML,
        "the sample's december-sprint is not the one the demo starts early"
    );
    Ok((yaml, today, until.yesterday()?))
}

/// Today, live, for one rep: the calculator quotes a contract, which is then posted and
/// awarded exactly as quoted (the sprint and the rep's fast start at work); a quote meets the
/// monthly volume cap; an adjustment is sent twice and credited once. Returns how many
/// distinct events it added to the ledger.
async fn today_at_work(
    deployment: &Deployment,
    crm: &ApiClient,
    admin: &ApiClient,
    portal: &ApiClient,
    rep: &Rep,
) -> anyhow::Result<usize> {
    let name = rep.profile["name"].as_str().unwrap_or(&rep.id);
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())?;
    let contract = |volume: i64| {
        json!({"participant": rep.id, "type": "contract.started", "occurred_at": now.to_string(),
            "attributes": {"contract_id": format!("K-{}-live", rep.id), "financed_volume": volume,
                "currency": "SEK"}})
    };
    let quote = portal.calculate(&contract(250_000)).await?;
    anyhow::ensure!(quote.status == 200, "calculator: {:?}", quote.body);
    println!(
        "8. Today, live, for {name} ({}, enrolled today, so in the fast start):",
        rep.id
    );
    println!(
        "   POST /v1/calculator: what will a 250,000 SEK contract signed now earn? {} points under configuration v{}",
        quote.body["points"], quote.body["config_version"]
    );
    print_quote(&quote.body);

    let mut posted = contract(250_000);
    posted["id"] = json!(format!("sf-contract-{}-live", rep.id));
    let r = crm.post_events(&posted).await?;
    anyhow::ensure!(r.status == 202, "contract refused: {:?}", r.body);
    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let ledger = deployment.store.ledger(PROGRAM, &rep.id).await?;
    let entry = ledger
        .iter()
        .find(|r| r.event_id == posted["id"])
        .context("the live contract's ledger entry")?;
    anyhow::ensure!(
        json!(entry.points) == quote.body["points"],
        "awarded {} where the calculator quoted {}",
        entry.points,
        quote.body["points"]
    );
    let lines: Vec<String> = entry
        .rules
        .iter()
        .map(|l| format!("{} v{} {}", l.id, l.version, l.points))
        .collect();
    println!(
        "   POST /v1/events, SQS, award: the ledger entry holds {} points, as quoted ({}; configuration v{})",
        entry.points,
        lines.join(", "),
        entry.config.unwrap_or_default()
    );

    let big = portal.calculate(&contract(20_000_000)).await?;
    anyhow::ensure!(big.status == 200, "calculator: {:?}", big.body);
    println!(
        "   The cap at work: a 20,000,000 SEK contract now would earn {} points",
        big.body["points"]
    );
    print_quote(&big.body);

    let balance = |state: Option<carrot::ports::ParticipantState>| state.map_or(0, |s| s.balance);
    let before = balance(deployment.store.participant(PROGRAM, &rep.id).await?);
    let adjustment = json!({"id": format!("fair-{}", now.strftime("%Y-%m-%d")), "points": 250,
        "reason": "Booth duty at the Nordic dealer fair"});
    for _ in 0..2 {
        let r = admin.adjust(&rep.id, &adjustment).await?;
        anyhow::ensure!(r.status == 202, "adjustment refused: {:?}", r.body);
    }
    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let after = balance(deployment.store.participant(PROGRAM, &rep.id).await?);
    anyhow::ensure!(
        after == before + 250,
        "an adjustment sent twice moved the balance from {before} to {after}"
    );
    println!(
        "   POST /v1/participants/{}/adjustments {adjustment}, sent twice (a retry): credited once, balance {before} → {after}",
        rep.id
    );
    Ok(2)
}

/// A calculator quote, rule by rule: points and what shaped them.
fn print_quote(quote: &Value) {
    for line in quote["lines"].as_array().into_iter().flatten() {
        let mut shaped: Vec<String> = line["factors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "{} ×{}",
                    f["source"].as_str().unwrap_or_default(),
                    f["value"].as_str().unwrap_or_default()
                )
            })
            .collect();
        if let Some(limit) = line.get("limited_by") {
            let by = match limit["by"].as_str().unwrap_or_default() {
                "cap" => "the cap".to_owned(),
                budget => format!("the {budget}"),
            };
            shaped.push(format!(
                "{} uncapped, limited by {by} of {} {} a {}: {} left",
                line["uncapped"],
                limit["limit"],
                limit["unit"].as_str().unwrap_or_default(),
                limit["per"].as_str().unwrap_or_default(),
                limit["room"]
            ));
        }
        if let Some(note) = line["note"].as_str() {
            shaped.push(note.to_owned());
        }
        println!(
            "     {:<17} v{} {:>6}  {}",
            line["rule"].as_str().unwrap_or_default(),
            line["version"],
            line["points"].as_i64().unwrap_or_default(),
            shaped.join("; ")
        );
    }
    let mut wallet = Vec::new();
    if let Some(until) = quote["pending_until"].as_str() {
        wallet.push(format!("pending until {until}"));
    }
    if let Some(on) = quote["expires_on"].as_str() {
        wallet.push(format!("expiring {on}"));
    }
    if !wallet.is_empty() {
        println!("     {}", wallet.join(", "));
    }
}
