//! The demo: Carrot on the local stack, end to end. Starts DynamoDB Local and moto, creates
//! every resource from infra/template.yaml, configures the sample program and a second version
//! that starts its sprint today, imports the roster (enrolled as of the program's start), posts
//! three months of signed CRM events over HTTP, lets SQS carry them to the award function,
//! then, live, quotes a contract on the points
//! calculator and awards it as quoted (the sprint and a cap at work) and credits an adjustment
//! once, shows what happened, and closes the three months (and a quarter that ended among
//! them): frozen leaderboards and their bonuses, a verified drawing, the stick's notices and
//! suspensions, and each period's report. Last, the daily engagement run segments the reps
//! and plans their journeys, and the sender mails and texts them through moto's SES and SNS
//! (quiet hours, simulated SES feedback); every message is written to target/demo/messages/.
//! Then a portal's view (`demo/portal.rs`): statements, an order, a quiz, a lead, a partner
//! account's transfer, a rep's JWT.

#[path = "demo/portal.rs"]
mod portal;

use anyhow::Context;
use carrot::domain::counters::PeriodTotals;
use carrot::domain::drawing::{DrawingRecord, Entrant, verify};
use carrot::domain::ledger::EntryStatus;
use carrot::domain::message::{
    Channel, DeliveryEntry, DeliveryStatus, NotificationRequest, email_tags,
};
use carrot::domain::report::escape;
use carrot::domain::segments::Segment;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment};
use carrot_local::mail::{decode_words, header, mime_part};
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::{LocalStack, SentEmail, SentSms};
use carrot_local::workload::{Behaviour, Rep, months_of_events, roster, roster_csv};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PROGRAM_YAML: &str = include_str!("../../../events/admin/program.yaml");
const PROGRAM: &str = "acme";
const REPS: usize = 200;
const LATE_JOINERS: usize = 10;
/// The months of activity before the current one: the program started on the first's first day.
const MONTHS: usize = 3;
/// The share of dormant reps who come back after a month without logins.
const RETURN_SHARE: f64 = 0.7;
/// Messages the events queue may hold before the CRM posts more. moto's SQS scans every
/// message a queue holds on each call (SQS does not), so a backlog makes every call slower; the
/// CRM posts at the pace the award function keeps up with.
const BACKLOG: u64 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    println!(
        "Carrot demo: the local stack, the real handlers, three months of a channel program and their close\n"
    );
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
    let mut deployment =
        Deployment::start(&stack, "demo", options.clone(), Duration::from_secs(60)).await?;
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
    let result = run(&stack, &mut deployment, options).await;
    deployment.stop().await?;
    stack.shutdown();
    result?;
    println!(
        "\nDone in {:.0} s. Everything ran on 127.0.0.1 and is gone now.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(
    stack: &LocalStack,
    deployment: &mut Deployment,
    options: SqsEventSourceOptions,
) -> anyhow::Result<()> {
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
        "2. PUT /v1/programs/acme (events/admin/program.yaml): {} version {}: {} rules, {} campaigns, {} budget, time zone Europe/Stockholm",
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
        .context("GET /v1/programs/acme has a schedule")?;
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
        "   GET /v1/programs/acme: schedule {}; each event is awarded under the version in force when it occurred",
        schedule.join(", ")
    );

    let reps = roster(REPS, 2026);
    let (early, late) = reps.split_at(REPS - LATE_JOINERS);
    let first_day = today
        .first_of_month()
        .checked_sub(jiff::Span::new().months(MONTHS as i64))?;
    let launch = first_day.to_zoned(zone.clone())?.timestamp();
    // The program's roster, moved over from the old system: enrolled as of its start, so each
    // rep is as far into their journey as they really are (and the stick judges them).
    let csv = roster_csv(early, &launch.to_string());
    let mut outcomes = Vec::new();
    for attempt in ["first", "again"] {
        let r = admin
            .send("POST", "/imports", csv.clone().into_bytes(), "text/csv")
            .await?;
        anyhow::ensure!(r.status == 200, "import failed: {:?}", r.body);
        anyhow::ensure!(r.body["errors"] == 0, "rows refused: {}", r.body);
        outcomes.push(format!(
            "{attempt}: {} created, {} updated, {} unchanged",
            r.body["created"], r.body["updated"], r.body["unchanged"]
        ));
    }
    println!(
        "3. POST /v1/programs/acme/imports (CSV, {} rows, enrolled_at {first_day}, the program's start): {}; {} more reps join after the months",
        early.len(),
        outcomes.join("; "),
        late.len()
    );

    let months = months_of_events(&reps, first_day, MONTHS, &zone, 0.08, RETURN_SHARE, 7);
    let labels: Vec<String> = (0..MONTHS)
        .map(|n| -> anyhow::Result<String> {
            let month = first_day.checked_add(jiff::Span::new().months(n as i64))?;
            Ok(month.strftime("%Y-%m").to_string())
        })
        .collect::<anyhow::Result<_>>()?;
    let events: Vec<Value> = months.iter().flatten().cloned().collect();
    let reversals = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .unwrap_or_default()
                .ends_with(".cancelled")
        })
        .count();
    let mut by_type: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (n, month) in months.iter().enumerate() {
        for e in month {
            by_type
                .entry(e["type"].as_str().unwrap_or_default())
                .or_insert_with(|| vec![0; MONTHS])[n] += 1;
        }
    }
    let last_day = today.first_of_month().yesterday()?;
    println!(
        "4. {} to {}: {} events from the CRM and the portal, {} of them cancellations",
        first_day.strftime("%B %Y"),
        last_day.strftime("%B %Y"),
        events.len(),
        reversals
    );
    println!(
        "     {:<22} {}",
        "",
        labels.iter().map(|l| format!("{l:>8}")).collect::<String>()
    );
    for (kind, counts) in &by_type {
        let counts: String = counts.iter().map(|n| format!("{n:>8}")).collect();
        println!("     {kind:<22} {counts}");
    }
    let dormant = early.iter().filter(|r| r.behaviour == Behaviour::Dormant);
    let returned = dormant
        .clone()
        .filter(|r| {
            months[1..]
                .iter()
                .flatten()
                .any(|e| e["participant"] == r.id.as_str() && e["type"] == "portal.login")
        })
        .count();
    println!(
        "     {} of the {} reps are dormant, without a login in {}; {returned} of them come back afterwards, the others stay away",
        dormant.count(),
        early.len(),
        labels[0]
    );

    // The CRM posts in batches of 100; it also retries 10% of batches (the same events again),
    // and one batch carries two broken events.
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
    let events_queue = deployment.resources.events_queue_url();
    let posting = Instant::now();
    for batch in &batches {
        while deployment.queue_depth(events_queue).await? > BACKLOG {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
        "5. POST /v1/programs/acme/events, HMAC-signed, as fast as the award function keeps up: {} requests ({} CRM retries) in {:.1} s: {accepted} accepted, {duplicates} duplicates in a batch, {rejected} rejected",
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
        "6. SQS → award function: queue drained {:.1} s after the last request ({} batches in all)",
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

    let featured = late
        .iter()
        .find(|r| r.behaviour == Behaviour::Superstar)
        .unwrap_or(&late[0]);
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
    // What follows is about the last month; balances are the three months' and today's.
    let month = last_day.strftime("%Y-%m").to_string();
    let month_name = last_day.strftime("%B").to_string();
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
        let month_items = store.months(PROGRAM, &rep.id).await?;
        let login_days = PeriodTotals::of(&month, &month_items).login_days;
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
        "   The monthly login cap at work: {logins_capped} {month_name} logins of {reps_capped} reps earned no daily-login points past its 100 points a month"
    );
    println!(
        "   Data quality at work: {contracts_paid_volume} of {contracts} {month_name} contracts earned contract-volume points; it pays in full for a contract that reaches Carrot within 3 days, half within 14, and these were posted on {today}"
    );
    println!("\n   Points by rule (net of clawbacks)  entries    points");
    for (rule, (n, points)) in &by_rule {
        println!("   {rule:<32} {n:>8} {points:>9}");
    }
    println!(
        "\n   Top 10 reps by balance            distributor       location                  points  {} login days",
        last_day.strftime("%b")
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
    println!(
        "\n   Behaviour    reps   points  avg/rep  zero-login reps in {}",
        last_day.strftime("%b")
    );
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

    // Subscribed before any close, so every suspension the closes publish arrives here.
    let outbound = stack
        .subscribe_queue(&deployment.resources, "OutboundTopic")
        .await?;
    let written = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace holds the tests crate")?
        .join("target/demo");
    let closing = Closing {
        deployment,
        admin: &admin,
        portal: &portal,
        reps: &reps,
        names: reps
            .iter()
            .map(|r| (r.id.as_str(), r.profile["name"].as_str().unwrap_or(&r.id)))
            .collect(),
        sample: Sample::of(PROGRAM_YAML)?,
        launch: first_day,
        outbound,
        reports: written.clone(),
    };
    println!(
        "\n   Every hour the close function closes each period that has ended, plus the program's close delay. These months ended before the program's first configuration (stored today), which the schedule leaves alone, so here an operator closes them in order with the function's other input, {{\"program\": \"{PROGRAM}\", \"period\": …}}: the same close the schedule runs."
    );
    for (n, label) in labels.iter().enumerate() {
        closing
            .close_month(10 + n, label, n + 1 == labels.len())
            .await?;
    }
    closing
        .rerun(10 + labels.len(), labels.last().context("months")?)
        .await?;

    // The close steps counted the notices on the notifications queue themselves; from here on
    // the sender reads it (and the email events), as the deployed event source mappings do. A
    // request that fails (two of a rep's messages claiming at once) comes back in seconds
    // rather than after the queue's minute.
    deployment.start_sender(
        stack,
        SqsEventSourceOptions {
            visibility_timeout_secs: Some(10),
            ..options
        },
    );
    Engaging {
        stack,
        deployment,
        admin: &admin,
        reps: &reps,
        names: reps
            .iter()
            .map(|r| (r.id.as_str(), r.profile["name"].as_str().unwrap_or(&r.id)))
            .collect(),
        program_yaml: &sprint_yaml,
        launch: first_day,
        zone,
        out: written.join("messages"),
    }
    .run(11 + labels.len(), today)
    .await?;
    portal::PortalStep {
        stack,
        deployment,
        admin: &admin,
        reps: &reps,
        late,
    }
    .run(12 + labels.len())
    .await
}

/// A GET that must answer 200. A 503 is asked again, as the API tells every client to.
async fn get_ok(client: &ApiClient, path: &str) -> anyhow::Result<Value> {
    let mut attempts = 1;
    loop {
        let r = client.get(path).await?;
        if r.status == 503 && attempts < 3 {
            attempts += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        anyhow::ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.body);
        return Ok(r.body);
    }
}

/// The sample program's boards and drawing the close sections show, found by what they rank.
struct Sample {
    /// The monthly board of participants by points.
    monthly: String,
    /// The monthly board of locations.
    locations: String,
    /// The quarterly board.
    quarterly: String,
    /// The monthly drawing.
    drawing: String,
    notice_below: i64,
}

impl Sample {
    fn of(yaml: &str) -> anyhow::Result<Sample> {
        let program: Value = serde_yaml_ng::from_str(yaml)?;
        let boards = program["leaderboards"]
            .as_array()
            .context("the sample program has no leaderboards")?;
        let board = |what: &str, wanted: &dyn Fn(&Value) -> bool| -> anyhow::Result<String> {
            boards
                .iter()
                .find(|b| wanted(b))
                .and_then(|b| b["id"].as_str())
                .map(str::to_owned)
                .with_context(|| format!("the sample program has no {what}"))
        };
        Ok(Sample {
            monthly: board("monthly board of reps by points", &|b| {
                b["period"] == "month" && b["metric"] == "points" && b.get("ranks").is_none()
            })?,
            locations: board("monthly board of locations", &|b| {
                b["period"] == "month" && b["ranks"] == "locations"
            })?,
            quarterly: board("quarterly board", &|b| b["period"] == "quarter")?,
            drawing: program["drawings"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["period"] == "month"))
                .and_then(|d| d["id"].as_str())
                .map(str::to_owned)
                .context("the sample program has no monthly drawing")?,
            notice_below: program["non_use"]["notice_below"]
                .as_i64()
                .context("the sample program has no non_use.notice_below")?,
        })
    }
}

/// What the close sections read and print with.
struct Closing<'a> {
    deployment: &'a Deployment,
    admin: &'a ApiClient,
    portal: &'a ApiClient,
    reps: &'a [Rep],
    names: HashMap<&'a str, &'a str>,
    sample: Sample,
    /// The program's first day.
    launch: jiff::civil::Date,
    /// The queue subscribed to the outbound topic.
    outbound: String,
    /// Where the reports are written.
    reports: PathBuf,
}

impl Closing<'_> {
    /// A rep as printed: name and id.
    fn who(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_owned(),
        }
    }

    fn month_name(label: &str) -> anyhow::Result<String> {
        let first: jiff::civil::Date = format!("{label}-01").parse()?;
        Ok(first.strftime("%B %Y").to_string())
    }

    async fn get(&self, client: &ApiClient, path: &str) -> anyhow::Result<Value> {
        get_ok(client, path).await
    }

    async fn balances(&self) -> anyhow::Result<HashMap<String, i64>> {
        let mut balances = HashMap::new();
        for rep in self.reps {
            let state = self
                .deployment
                .store
                .participant(PROGRAM, &rep.id)
                .await?
                .context("enrolled")?;
            balances.insert(rep.id.clone(), state.balance);
        }
        Ok(balances)
    }

    /// Invokes the close function for one period and prints what it did.
    async fn close(&self, label: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = self.deployment.close_period(PROGRAM, label).await?;
        let closed = &result["closed"][0];
        anyhow::ensure!(
            closed["resumed"] == false,
            "{label} was closed before: {result}"
        );
        println!(
            "   Close function {{\"program\": \"{PROGRAM}\", \"period\": \"{label}\"}}: {} participants read, the outcome decided and frozen, {} effects applied, in {:.1} s",
            closed["participants"],
            closed["applied_now"],
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// A month's close, shown step by step; `live_first` shows its live board before.
    async fn close_month(&self, step: usize, label: &str, live_first: bool) -> anyhow::Result<()> {
        println!("\n{step}. {} closes ({label})", Self::month_name(label)?);
        let monthly = &self.sample.monthly;
        let mut live_rows = Vec::new();
        if live_first {
            let path = format!("/leaderboards/{monthly}?period={label}");
            let live = self.get(self.portal, &path).await?;
            anyhow::ensure!(live["final"] == false, "{label} is closed already: {live}");
            println!(
                "   Before the close, the portal's view: GET {path} (participants:read): \"final\": false, \"exact\": {}, live from the month index",
                live["exact"]
            );
            live_rows = live["standings"][0]["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            println!("     rank  rep                                  points");
            for row in &live_rows {
                println!(
                    "     {:>4}  {:<36} {:>6}",
                    row["rank"].as_u64().unwrap_or_default(),
                    self.who(row["name"].as_str().unwrap_or_default()),
                    row["score"].as_str().unwrap_or_default()
                );
            }
            let locations = format!("/leaderboards/{}?period={label}", self.sample.locations);
            let r = self.portal.get(&locations).await?;
            println!(
                "     GET {locations}: {} {}: {}",
                r.status,
                r.body["title"].as_str().unwrap_or_default(),
                r.body["detail"].as_str().unwrap_or_default()
            );
        }

        let before = self.balances().await?;
        self.close(label).await?;
        self.deployment
            .award
            .wait_idle(Duration::from_secs(120))
            .await?;
        let report = self.get(self.admin, &format!("/reports/{label}")).await?;

        let board = self
            .get(
                self.portal,
                &format!("/leaderboards/{monthly}?period={label}"),
            )
            .await?;
        let places = board["awards"][0]["places"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        println!(
            "   {} (final: frozen at the close)",
            board["title"].as_str().unwrap_or(monthly)
        );
        println!("     place  rank  rep                                  points  award");
        for place in &places {
            println!(
                "     {:>5}  {:>4}  {:<36} {:>6}  {}",
                place["place"].as_u64().unwrap_or_default(),
                place["rank"].as_u64().unwrap_or_default(),
                self.who(place["name"].as_str().unwrap_or_default()),
                place["score"].as_str().unwrap_or_default(),
                place["award"].as_str().unwrap_or_default()
            );
        }
        if live_first {
            let frozen_rows = board["standings"][0]["rows"].as_array();
            let same = frozen_rows.is_some_and(|rows| {
                rows.iter()
                    .zip(&live_rows)
                    .all(|(f, l)| f["name"] == l["name"] && f["score"] == l["score"])
            });
            println!(
                "     {}",
                if same {
                    "the same standings the live board showed before the close"
                } else {
                    "NOT the standings the live board showed before the close"
                }
            );
        }
        let after = self.balances().await?;
        let credited: Vec<(&str, i64)> = before
            .iter()
            .filter_map(|(id, was)| {
                let change = after.get(id)? - was;
                (change != 0).then_some((id.as_str(), change))
            })
            .collect();
        let total: i64 = credited.iter().map(|(_, change)| change).sum();
        let locations = self
            .get(
                self.portal,
                &format!("/leaderboards/{}?period={label}", self.sample.locations),
            )
            .await?;
        for place in locations["awards"][0]["places"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let location = place["name"].as_str().unwrap_or_default();
            let members = self
                .reps
                .iter()
                .filter(|r| r.location == location && credited.iter().any(|(id, _)| *id == r.id))
                .count();
            // The score is exact decimal text; a tenth of a point is enough to read.
            let average: f64 = place["score"].as_str().unwrap_or_default().parse()?;
            println!(
                "   {}: {location}, {average:.1} points per rep: {} for each of its {members} competing reps",
                locations["title"].as_str().unwrap_or_default(),
                place["award"].as_str().unwrap_or_default()
            );
        }
        println!(
            "   Bonuses: {total} points credited to {} reps through the events queue and the award function (the report's bonuses: {})",
            credited.len(),
            report["points"]["bonuses"]
        );
        if let Some(winner) = places.first().and_then(|p| p["name"].as_str()) {
            let event_id = format!("close:{label}:{monthly}");
            let ledger = self.deployment.store.ledger(PROGRAM, winner).await?;
            let entry = ledger
                .iter()
                .find(|r| r.event_id == event_id)
                .with_context(|| format!("{winner} has no ledger entry {event_id}"))?;
            println!(
                "     {}: ledger entry {event_id}: {:+} points, \"{}\"; balance {} → {}",
                self.who(winner),
                entry.points,
                entry.note.as_deref().unwrap_or_default(),
                before[winner],
                after[winner]
            );
        }

        self.show_drawing(label).await?;
        self.show_stick(label).await?;
        self.write_report(label, &report).await?;

        let first: jiff::civil::Date = format!("{label}-01").parse()?;
        if first.month() % 3 == 0 {
            self.close_quarter(first).await?;
        }
        Ok(())
    }

    /// The drawing's record and every page of its entrants, re-checked here.
    async fn show_drawing(&self, label: &str) -> anyhow::Result<()> {
        let drawing = &self.sample.drawing;
        let first_page = format!("/drawings/{drawing}/{label}");
        let mut path = first_page.clone();
        let mut record = None;
        let mut entrants: Vec<Entrant> = Vec::new();
        let mut pages = 0;
        loop {
            let page = self.get(self.admin, &path).await?;
            if record.is_none() {
                record = Some(serde_json::from_value::<DrawingRecord>(
                    page["record"].clone(),
                )?);
            }
            entrants.extend(serde_json::from_value::<Vec<Entrant>>(
                page["entrants"].clone(),
            )?);
            pages += 1;
            match page["next"].as_str() {
                Some(next) => path = format!("{first_page}?after={next}"),
                None => break,
            }
        }
        let record = record.context("a drawing record")?;
        println!(
            "   Drawing {drawing}: {} entrants, {} tickets",
            record.entrant_count, record.ticket_count
        );
        println!("     entrants SHA-256  {}", record.entrants_sha256);
        println!("     seed commitment   {}", record.seed_commitment);
        println!(
            "     seed (revealed)   {}",
            record.seed.as_deref().unwrap_or("none")
        );
        for winner in &record.winners {
            println!(
                "     won {:<20} {} with ticket {}",
                winner.prize,
                self.who(&winner.participant),
                winner.ticket
            );
        }
        let verification = verify(&record, &entrants);
        println!(
            "     carrot::domain::drawing::verify over the {} entrants of {pages} page{} of GET {first_page}:",
            entrants.len(),
            if pages == 1 { "" } else { "s" }
        );
        for check in &verification.checks {
            println!(
                "       {:<16} {:<6} {}",
                check.name,
                if check.passed { "passed" } else { "FAILED" },
                check.detail
            );
        }
        anyhow::ensure!(
            verification.passed(),
            "the drawing of {label} does not verify"
        );
        Ok(())
    }

    /// The notices on the notifications queue, the lists, the suspensions on the outbound
    /// topic.
    async fn show_stick(&self, label: &str) -> anyhow::Result<()> {
        let notifications = self
            .deployment
            .drain_queue(self.deployment.resources.queue_url("NotificationsQueue"))
            .await?;
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for body in &notifications {
            let request: Value = serde_json::from_str(body)?;
            *by_kind
                .entry(request["kind"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "   Notification requests drained from the notifications queue: {} ({})",
            notifications.len(),
            kinds.join(", ")
        );
        let mut sizes = Vec::new();
        let mut sanctioned: Vec<String> = Vec::new();
        for list in ["zero-logins", "notices", "to-be-suspended", "sanctioned"] {
            let first_page = format!("/lists/{label}/{list}");
            let mut path = first_page.clone();
            let mut participants: Vec<String> = Vec::new();
            loop {
                let page = self.get(self.admin, &path).await?;
                participants.extend(serde_json::from_value::<Vec<String>>(
                    page["participants"].clone(),
                )?);
                match page["next"].as_str() {
                    Some(next) => path = format!("{first_page}?after={next}"),
                    None => break,
                }
            }
            sizes.push(format!("{list} {}", participants.len()));
            if list == "sanctioned" {
                sanctioned = participants;
            }
        }
        println!(
            "   The stick (fewer than {} login days: a notice; none: a strike; a second strike suspends): GET /v1/programs/acme/lists/{label}/…: {}",
            self.sample.notice_below,
            sizes.join(", ")
        );
        let mut suspended = Vec::new();
        for body in self.deployment.drain_queue(&self.outbound).await? {
            let event: Value = serde_json::from_str(&body)?;
            if event["type"] == "participant.suspended" {
                suspended.push(event["participant"].as_str().unwrap_or_default().to_owned());
            }
        }
        // Delivery is at least once: subscribers deduplicate.
        suspended.sort();
        suspended.dedup();
        sanctioned.sort();
        println!(
            "   participant.suspended on the outbound topic (a queue subscribed before the closes): {}",
            match suspended.len() {
                0 if sanctioned.is_empty() => "none".to_owned(),
                n if suspended == sanctioned => format!("{n}, the sanctioned list's reps"),
                n => format!("{n}, NOT the sanctioned list's {} reps", sanctioned.len()),
            }
        );
        for names in suspended.chunks(3) {
            let names: Vec<String> = names.iter().map(|id| self.who(id)).collect();
            println!("       {}", names.join(", "));
        }
        Ok(())
    }

    async fn write_report(&self, label: &str, report: &Value) -> anyhow::Result<()> {
        let path = format!("/reports/{label}/html");
        let (status, content_type, page) = self.admin.get_text(&path).await?;
        anyhow::ensure!(
            status == 200 && content_type.starts_with("text/html"),
            "GET {path}: {status} {content_type}"
        );
        std::fs::create_dir_all(&self.reports)
            .with_context(|| format!("creating {}", self.reports.display()))?;
        let html = self.reports.join(format!("report-{label}.html"));
        let json = self.reports.join(format!("report-{label}.json"));
        std::fs::write(&html, page).with_context(|| format!("writing {}", html.display()))?;
        std::fs::write(&json, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", json.display()))?;
        println!(
            "   Report (GET /v1/programs/acme/reports/{label} and …/html): open {} (JSON: {})",
            html.display(),
            json.display()
        );
        Ok(())
    }

    /// The quarter that ends with the month starting `first`: closed, its board shown.
    async fn close_quarter(&self, first: jiff::civil::Date) -> anyhow::Result<()> {
        let label = format!("{}-Q{}", first.year(), (first.month() - 1) / 3 + 1);
        let starts = first.checked_sub(jiff::Span::new().months(2))?;
        println!(
            "   The quarter {label} ended with the month, and the program has a quarterly board: it closes too{}",
            if starts < self.launch {
                format!(" (the program started on {}, within it)", self.launch)
            } else {
                String::new()
            }
        );
        self.close(&label).await?;
        self.deployment
            .award
            .wait_idle(Duration::from_secs(120))
            .await?;
        let quarterly = &self.sample.quarterly;
        let board = self
            .get(
                self.portal,
                &format!("/leaderboards/{quarterly}?period={label}"),
            )
            .await?;
        println!(
            "   {} ({}, final)",
            board["title"].as_str().unwrap_or(quarterly),
            board["metric"].as_str().unwrap_or_default()
        );
        println!("     place  rank  rep                                  days  award");
        for place in board["awards"][0]["places"]
            .as_array()
            .into_iter()
            .flatten()
        {
            println!(
                "     {:>5}  {:>4}  {:<36} {:>4}  {}",
                place["place"].as_u64().unwrap_or_default(),
                place["rank"].as_u64().unwrap_or_default(),
                self.who(place["name"].as_str().unwrap_or_default()),
                place["score"].as_str().unwrap_or_default(),
                place["award"].as_str().unwrap_or_default()
            );
        }
        let report = self.get(self.admin, &format!("/reports/{label}")).await?;
        self.write_report(&label, &report).await
    }

    /// The hourly schedule runs, and the last close is run again: neither changes anything.
    async fn rerun(&self, step: usize, label: &str) -> anyhow::Result<()> {
        let before = self.balances().await?;
        let ticked = self.deployment.tick().await?;
        let again = self.deployment.close_period(PROGRAM, label).await?;
        self.deployment
            .award
            .wait_idle(Duration::from_secs(60))
            .await?;
        let closed = &again["closed"][0];
        anyhow::ensure!(
            closed["resumed"] == true && closed["applied_now"] == 0,
            "a rerun of {label} did something: {again}"
        );
        let notices = self
            .deployment
            .drain_queue(self.deployment.resources.queue_url("NotificationsQueue"))
            .await?;
        let published = self.deployment.drain_queue(&self.outbound).await?;
        let moved = self
            .balances()
            .await?
            .iter()
            .filter(|(id, balance)| before.get(*id) != Some(*balance))
            .count();
        println!("\n{step}. Running again changes nothing");
        println!(
            "   deployment.tick(), the hourly schedule's invocation {{\"job\": \"close-due\"}}: {ticked} (the last month, quarter and year that ended, the periods it would close, all ended before the program's first configuration)"
        );
        println!(
            "   The {label} close again: resumed {}, {} of its {} effects applied now",
            closed["resumed"], closed["applied_now"], closed["effects"]
        );
        println!(
            "   Since then: {} notification requests, {} outbound events, {moved} balances changed",
            notices.len(),
            published.len()
        );
        anyhow::ensure!(
            notices.is_empty() && published.is_empty() && moved == 0,
            "a rerun sent or credited something"
        );
        Ok(())
    }
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
        "   POST /v1/programs/acme/calculator: what will a 250,000 SEK contract signed now earn? {} points under configuration v{}",
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
        "   POST /v1/programs/acme/events, SQS, award: the ledger entry holds {} points, as quoted ({}; configuration v{})",
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
        "   POST /v1/programs/acme/participants/{}/adjustments {adjustment}, sent twice (a retry): credited once, balance {before} → {after}",
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

/// How long the award function and the sender may take to drain their queues.
const IDLE: Duration = Duration::from_secs(120);
/// Emails of each kind the simulated SES feedback reports as delivered.
const FEEDBACK_PER_KIND: usize = 25;
/// The share of those the simulated SES feedback reports as opened.
const SIMULATED_OPEN_SHARE: f64 = 0.4;
/// Of the simulated opens, this many are reported twice (a reader who comes back to a mail).
const REPEATED_OPENS: usize = 10;

/// What the engagement step reads of the sample program.
struct EngageSample {
    /// `segments.run_hour`: the daily run goes from this hour (program time).
    run_hour: i8,
    /// `notifications.quiet_hours`: no SMS from `from` until `to`, in the participant's zone.
    quiet_from: jiff::civil::Time,
    quiet_to: jiff::civil::Time,
    /// The reps' journey's `near_miss.days_left_at_most`: nudges go in a month's last days.
    near_miss_days: i64,
    /// `notifications.digest.weekday`, as written.
    digest_weekday: String,
    /// `segments.window_months`.
    window_months: i64,
    /// A campaign for a rep's first days (`enrolment_days.until`), and its description.
    fast_start: Option<(i64, String)>,
}

impl EngageSample {
    fn of(yaml: &str) -> anyhow::Result<EngageSample> {
        let program: Value = serde_yaml_ng::from_str(yaml)?;
        let text = |value: &Value, what: &str| -> anyhow::Result<String> {
            value
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the sample program has no {what}"))
        };
        let quiet = &program["notifications"]["quiet_hours"];
        Ok(EngageSample {
            run_hour: program["segments"]["run_hour"]
                .as_i64()
                .context("the sample program has no segments.run_hour")?
                .try_into()?,
            quiet_from: text(&quiet["from"], "notifications.quiet_hours.from")?.parse()?,
            quiet_to: text(&quiet["to"], "notifications.quiet_hours.to")?.parse()?,
            near_miss_days: program["journeys"]
                .as_array()
                .and_then(|journeys| {
                    journeys
                        .iter()
                        .find_map(|j| j["near_miss"]["days_left_at_most"].as_i64())
                })
                .context("the sample program's journeys have no near_miss.days_left_at_most")?,
            digest_weekday: text(
                &program["notifications"]["digest"]["weekday"],
                "notifications.digest.weekday",
            )?,
            window_months: program["segments"]["window_months"]
                .as_i64()
                .context("the sample program has no segments.window_months")?,
            fast_start: program["campaigns"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|c| {
                    Some((
                        c["enrolment_days"]["until"].as_i64()?,
                        c["description"].as_str()?.to_owned(),
                    ))
                }),
        })
    }

    /// Whether a local time is in the quiet hours (which may run over midnight).
    fn quiet(&self, time: jiff::civil::Time) -> bool {
        if self.quiet_from <= self.quiet_to {
            self.quiet_from <= time && time < self.quiet_to
        } else {
            self.quiet_from <= time || time < self.quiet_to
        }
    }
}

/// Every participant's delivery log, by participant.
type Logs = BTreeMap<String, Vec<DeliveryEntry>>;

/// The engagement step: the daily run over the program the closes left, its messages through
/// the sender to moto's SES and SNS, SMS held for quiet hours and released, simulated SES
/// feedback, and every message written out for a person to open.
struct Engaging<'a> {
    stack: &'a LocalStack,
    deployment: &'a Deployment,
    admin: &'a ApiClient,
    reps: &'a [Rep],
    names: HashMap<&'a str, &'a str>,
    /// The program document stored last (version 2), which version 3 edits.
    program_yaml: &'a str,
    /// The program's first day, when the first reps were enrolled.
    launch: jiff::civil::Date,
    zone: jiff::tz::TimeZone,
    /// Where the messages are written.
    out: PathBuf,
}

impl Engaging<'_> {
    /// A rep as printed: name and id.
    fn who(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_owned(),
        }
    }

    fn rep(&self, id: &str) -> Option<&Rep> {
        self.reps.iter().find(|r| r.id == id)
    }

    /// The rep's own time zone.
    fn zone_of(&self, id: &str) -> anyhow::Result<jiff::tz::TimeZone> {
        let name = self
            .rep(id)
            .and_then(|r| r.profile["time_zone"].as_str())
            .with_context(|| format!("{id} has no time zone"))?;
        Ok(jiff::tz::TimeZone::get(name)?)
    }

    async fn run(&self, step: usize, today: jiff::civil::Date) -> anyhow::Result<()> {
        let started = Instant::now();
        let sample = EngageSample::of(PROGRAM_YAML)?;
        println!(
            "\n{step}. Engagement: the daily run, the emails and SMS it sends, and what SES reports back"
        );
        // Near-miss nudges go out in a month's last days only: the run is on today, or on the
        // first of those days if today is earlier in the month.
        let last_days = today
            .last_of_month()
            .checked_sub(jiff::Span::new().days(sample.near_miss_days - 1))?;
        let day = today.max(last_days);
        self.tune(&sample, day).await?;

        // Before the quiet hours end where the clock is an hour behind Riga's: SMS wait in
        // Stockholm and Zurich, and go at once in Riga.
        let morning = day
            .to_datetime(
                sample
                    .quiet_to
                    .checked_sub(jiff::SignedDuration::from_mins(30))?,
            )
            .to_zoned(self.zone.clone())?;
        anyhow::ensure!(
            morning.hour() >= sample.run_hour,
            "{morning} is before the daily run's hour"
        );
        self.deployment.clock.set(morning.timestamp());
        let mut zones: Vec<&str> = self
            .reps
            .iter()
            .filter_map(|r| r.profile["time_zone"].as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        let local: Vec<String> = zones
            .iter()
            .map(|name| -> anyhow::Result<String> {
                let time = morning
                    .timestamp()
                    .to_zoned(jiff::tz::TimeZone::get(name)?)
                    .time();
                Ok(format!(
                    "{name} {}{}",
                    time.strftime("%H:%M"),
                    if sample.quiet(time) {
                        " (quiet hours: no SMS)"
                    } else {
                        ""
                    }
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        println!(
            "   The clock of the engagement run and the sender (deployment.clock) is set to {} {day} {}: after the daily run's hour ({:02}:00), among the month's last {} days, when near-miss nudges go out{}. The reps' local time: {}",
            morning.strftime("%A"),
            morning.strftime("%H:%M"),
            sample.run_hour,
            sample.near_miss_days,
            if day == today {
                String::new()
            } else {
                format!(" (today is {today})")
            },
            local.join(", ")
        );

        let running = Instant::now();
        let run = self.engage().await?;
        let ran = running.elapsed();
        anyhow::ensure!(
            run["day"] == day.to_string().as_str(),
            "the daily run did not run for {day}: {run}"
        );
        let draining = Instant::now();
        self.deployment.award.wait_idle(IDLE).await?;
        self.deployment.wait_sender_idle(IDLE).await?;
        println!(
            "   deployment.engage(), the hourly schedule's {{\"job\": \"engage\"}}: the daily run of {day} in {:.1} s: {} active members segmented and planned, {} requests on the notifications queue, {} awards on the events queue; the sender and the award function done {:.1} s later",
            ran.as_secs_f64(),
            run["members"],
            run["messages"],
            run["awards"],
            draining.elapsed().as_secs_f64()
        );

        let counts: Vec<(&str, u64)> = Segment::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str(),
                    run["segments"][s.as_str()].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        println!("   Segments (the run's answer, runs[0].segments), least to most engaged:");
        for (segment, n) in &counts {
            let bar = "█".repeat((n * 40).div_ceil(most) as usize);
            println!("{}", format!("     {segment:<16} {n:>4}  {bar}").trim_end());
        }

        let months: Vec<String> = (1..=2)
            .rev()
            .map(|back| -> anyhow::Result<String> {
                let month = day
                    .first_of_month()
                    .checked_sub(jiff::Span::new().months(back))?;
                Ok(month.strftime("%Y-%m").to_string())
            })
            .collect::<anyhow::Result<_>>()?;
        let points = self.month_points(&months).await?;
        println!(
            "     the trend compares each rep's {1} with their {0}: program-wide, {2} points in {0} and {3} in {1} (before close bonuses, the segments' metric){4}",
            months[0],
            months[1],
            points.get(&months[0]).copied().unwrap_or_default(),
            points.get(&months[1]).copied().unwrap_or_default(),
            match &sample.fast_start {
                Some((days, description)) => format!(
                    "; \"{description}\": for the reps enrolled at the launch, {}, that ended on {}",
                    self.launch,
                    self.launch.checked_add(jiff::Span::new().days(*days))?
                ),
                None => String::new(),
            }
        );

        let ids: Vec<String> = self.reps.iter().map(|r| r.id.clone()).collect();
        let first = self.logs(&ids).await?;
        self.print_logs(&first, run["messages"].as_u64().unwrap_or(0));
        self.print_awards(run["awards"].as_u64().unwrap_or(0))
            .await?;

        // The quiet hours end: the next hourly run puts the deferred SMS back on the queue.
        let release = day
            .to_datetime(
                sample
                    .quiet_to
                    .checked_add(jiff::SignedDuration::from_mins(5))?,
            )
            .to_zoned(self.zone.clone())?;
        self.deployment.clock.set(release.timestamp());
        let again = self.engage().await?;
        // Meanwhile SES reports on the emails already sent.
        let feedback = self.feedback(&first).await?;
        self.deployment.wait_sender_idle(IDLE).await?;
        let mut changed: Vec<String> = first
            .iter()
            .filter(|(_, log)| {
                log.iter()
                    .any(|e| matches!(e.status, DeliveryStatus::Deferred { .. }))
            })
            .map(|(id, _)| id.clone())
            .chain(feedback.informed.iter().cloned())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let mut last = first.clone();
        last.extend(self.logs(&changed).await?);
        let sent = Sent::of(self.stack, self.deployment, self.reps).await?;
        self.print_examples(&first, &sent).await?;
        self.print_release(&first, &last, &again, &release, &sent)?;

        println!(
            "   SES feedback, simulated for up to {FEEDBACK_PER_KIND} emails of each kind: a Delivery event for {} emails and an Open for {} of them (a seeded {:.0}%; {} of those opened twice), published to the configuration set's SNS topic as SES does, and read from the email-events queue by the notify function",
            feedback.delivered,
            feedback.opened,
            SIMULATED_OPEN_SHARE * 100.0,
            feedback.opened.min(REPEATED_OPENS)
        );
        let month = &feedback.month;
        let stats = get_ok(self.admin, &format!("/messages/{month}")).await?;
        println!(
            "   GET /v1/programs/acme/messages/{month}: what SES reported, per kind (simulated feedback, so the read rates show the pipeline, not real readers):"
        );
        println!("     kind                        sent  delivered  opened  read rate");
        let number = |v: &Value| v.as_u64().unwrap_or_default();
        for kind in stats["kinds"].as_array().into_iter().flatten() {
            println!(
                "     {:<26} {:>5} {:>10} {:>7}  {}",
                kind["kind"].as_str().unwrap_or_default(),
                number(&kind["sent"]),
                number(&kind["delivered"]),
                number(&kind["opened"]),
                kind["read_rate"]
                    .as_f64()
                    .map_or("–".to_owned(), |rate| format!("{:.0}%", rate * 100.0))
            );
        }

        self.write_messages(&first, &last, &sent)?;
        println!(
            "   (the engagement step took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Version 3 of the program: the weekly digest on the run's weekday, and month-on-month
    /// trends for a program three months old.
    async fn tune(&self, sample: &EngageSample, day: jiff::civil::Date) -> anyhow::Result<()> {
        let weekday = format!("{:?}", day.weekday()).to_lowercase();
        let mut yaml = self.program_yaml.to_owned();
        let mut changes = Vec::new();
        let mut edit = |from: &str, to: &str, change: String| -> anyhow::Result<()> {
            anyhow::ensure!(
                yaml.contains(from),
                "the sample program has no {from:?} for the demo to change"
            );
            yaml = yaml.replace(from, to);
            changes.push(change);
            Ok(())
        };
        if weekday != sample.digest_weekday {
            edit(
                &format!("    weekday: {}\n", sample.digest_weekday),
                &format!("    weekday: {weekday}\n"),
                format!(
                    "the weekly digest moves from {}s to {weekday}s, the day of the run below (notifications.digest.weekday)",
                    sample.digest_weekday
                ),
            )?;
        }
        edit(
            &format!("  window_months: {}\n", sample.window_months),
            "  window_months: 1\n",
            format!(
                "the program is {MONTHS} months old, so the trend compares each rep's last month with the one before (segments.window_months: 1; with {}, it would compare the last {} months with the {} before the program started, and call everyone active rising)",
                sample.window_months, sample.window_months, sample.window_months
            ),
        )?;
        let stored = self.admin.put_program(&yaml).await?;
        anyhow::ensure!(
            stored.status == 200,
            "version 3 not stored: {:?}",
            stored.body
        );
        println!(
            "   PUT /v1/programs/acme, version {}: {}",
            stored.body["version"],
            changes.join("; ")
        );
        Ok(())
    }

    /// What the hourly engagement schedule does, at the deployment's clock: the demo
    /// program's run summary.
    async fn engage(&self) -> anyhow::Result<Value> {
        let answer = self.deployment.engage().await?;
        answer["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["program"] == PROGRAM))
            .cloned()
            .with_context(|| format!("no run of {PROGRAM}: {answer}"))
    }

    /// The delivery logs of these participants (those with any entry), through the admin
    /// API, a few at a time.
    async fn logs(&self, ids: &[String]) -> anyhow::Result<Logs> {
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in ids.chunks(ids.len().div_ceil(8).max(1)) {
            let client = self.deployment.client(
                self.admin.program(),
                self.admin.key_id(),
                self.admin.secret(),
            );
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                let mut logs = Vec::new();
                for id in chunk {
                    let body = get_ok(&client, &format!("/participants/{id}/messages")).await?;
                    let entries: Vec<DeliveryEntry> =
                        serde_json::from_value(body["messages"].clone())
                            .with_context(|| format!("the delivery log of {id}"))?;
                    logs.push((id, entries));
                }
                anyhow::Ok(logs)
            });
        }
        let mut logs = Logs::new();
        while let Some(done) = tasks.join_next().await {
            logs.extend(done??.into_iter().filter(|(_, log)| !log.is_empty()));
        }
        Ok(logs)
    }

    /// The logs by kind: requests, sent by channel, deferred, skipped by reason.
    fn print_logs(&self, logs: &Logs, queued: u64) {
        #[derive(Default)]
        struct Tally {
            requests: usize,
            email: usize,
            sms: usize,
            deferred: usize,
            skipped: BTreeMap<String, usize>,
        }
        let mut by_kind: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut total = Tally::default();
        for entry in logs.values().flatten() {
            for tally in [by_kind.entry(&entry.kind).or_default(), &mut total] {
                tally.requests += 1;
                match &entry.status {
                    DeliveryStatus::Sent { .. } if entry.channel == Channel::Sms => tally.sms += 1,
                    DeliveryStatus::Sent { .. } => tally.email += 1,
                    DeliveryStatus::Deferred { .. } => tally.deferred += 1,
                    DeliveryStatus::Skipped { reason } => {
                        *tally.skipped.entry(reason.clone()).or_default() += 1
                    }
                    DeliveryStatus::Sending { .. } => {}
                }
            }
        }
        let logged = total.requests as u64;
        println!(
            "   The sender, from the delivery logs of the {} reps (GET /v1/programs/acme/participants/{{p}}/messages): {logged} entries for the {queued} requests the run queued{}",
            self.reps.len(),
            if logged == queued {
                ""
            } else {
                " (NOT one each)"
            }
        );
        println!(
            "     kind                        requests  email   SMS  deferred  skipped (reason)"
        );
        let row = |kind: &str, t: &Tally| {
            let skipped: usize = t.skipped.values().sum();
            let reasons: Vec<String> = t
                .skipped
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            println!(
                "     {kind:<27} {:>8} {:>6} {:>5} {:>9} {:>8}{}",
                t.requests,
                t.email,
                t.sms,
                t.deferred,
                skipped,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            );
        };
        for (kind, tally) in &by_kind {
            row(kind, tally);
        }
        row("all", &total);
    }

    /// Every rep's points (before close bonuses) in each of these months, summed.
    async fn month_points(&self, months: &[String]) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in self.reps.chunks(self.reps.len().div_ceil(8).max(1)) {
            let store = self.deployment.store.clone();
            let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
            tasks.spawn(async move {
                let mut points = Vec::new();
                for id in ids {
                    points.extend(
                        store
                            .months(PROGRAM, &id)
                            .await?
                            .into_iter()
                            .map(|m| (m.month, m.points)),
                    );
                }
                anyhow::Ok(points)
            });
        }
        let mut totals = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            for (month, points) in done?? {
                if months.contains(&month) {
                    *totals.entry(month).or_default() += points;
                }
            }
        }
        Ok(totals)
    }

    /// The milestone awards in the ledgers: credited once each, through the award function.
    async fn print_awards(&self, queued: u64) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in self.reps.chunks(self.reps.len().div_ceil(8).max(1)) {
            let store = self.deployment.store.clone();
            let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
            tasks.spawn(async move {
                let mut awards = Vec::new();
                for id in ids {
                    for record in store.ledger(PROGRAM, &id).await? {
                        if let Some(cause) = record.event_id.strip_prefix("milestone:") {
                            awards.push((cause.to_owned(), record.points));
                        }
                    }
                }
                anyhow::Ok(awards)
            });
        }
        let mut by_milestone: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            for (cause, points) in done?? {
                let milestone = by_milestone.entry(cause).or_default();
                milestone.0 += 1;
                milestone.1 += points;
            }
        }
        let (credited, points) = by_milestone
            .values()
            .fold((0, 0), |(n, p), (count, sum)| (n + count, p + sum));
        println!(
            "   Milestone awards: {credited} ledger entries milestone:{{journey}}:{{milestone}}, {points} points, for the {queued} awards the run queued (points.bonus events, credited by the award function once per id):"
        );
        for (milestone, (n, points)) in &by_milestone {
            println!("     {milestone:<32} {n:>4} reps {points:>8} points");
        }
        Ok(())
    }

    /// One of each: a welcome, a milestone with its award, a near miss, a digest, an SMS sent
    /// and one held for the quiet hours.
    async fn print_examples(&self, logs: &Logs, sent: &Sent) -> anyhow::Result<()> {
        let subject = |entry: &DeliveryEntry| -> String {
            match &entry.status {
                DeliveryStatus::Sent { provider_id, .. } => sent
                    .emails
                    .get(provider_id)
                    .and_then(|e| header(&e.raw, "Subject"))
                    .map(|s| format!("\"{}\"", decode_words(&s)))
                    .unwrap_or_else(|| format!("(no email {provider_id} at SES)")),
                other => format!("({other:?})"),
            }
        };
        let is_sent = |e: &DeliveryEntry| matches!(e.status, DeliveryStatus::Sent { .. });
        let first_with = |kind: &str| {
            logs.iter()
                .find(|(_, entries)| entries.iter().any(|e| e.kind == kind && is_sent(e)))
        };
        println!(
            "   One of each, as the rep got it (subjects from the emails moto's SES accepted):"
        );
        if let Some((id, entries)) = first_with("journey.welcome") {
            let enrolled = self
                .deployment
                .store
                .participant(PROGRAM, id)
                .await?
                .context("enrolled")?
                .enrolled_at
                .parse::<jiff::Timestamp>()?
                .to_zoned(self.zone_of(id)?)
                .date();
            println!("     {}, enrolled {enrolled}:", self.who(id));
            for entry in entries.iter().filter(|e| e.channel == Channel::Email) {
                println!("       {:<22} {}", entry.kind, subject(entry));
            }
        } else {
            println!("     no welcome was sent");
        }
        let awarded = logs.iter().find(|(_, entries)| {
            entries
                .iter()
                .any(|e| e.kind == "journey.milestone" && is_sent(e))
        });
        if let Some((id, entries)) = awarded {
            let ledger = self.deployment.store.ledger(PROGRAM, id).await?;
            let awards: Vec<String> = ledger
                .iter()
                .filter(|r| r.event_id.starts_with("milestone:"))
                .map(|r| format!("{} {:+}", r.event_id, r.points))
                .collect();
            let subjects: Vec<String> = entries
                .iter()
                .filter(|e| e.kind == "journey.milestone")
                .map(subject)
                .collect();
            println!(
                "     {}: journey.milestone {}; ledger: {}",
                self.who(id),
                subjects.join(", "),
                if awards.is_empty() {
                    "no award".to_owned()
                } else {
                    awards.join(", ")
                }
            );
        }
        for kind in ["near_miss.target", "near_miss.drawing", "digest"] {
            match first_with(kind) {
                Some((id, entries)) => {
                    let entry = entries
                        .iter()
                        .find(|e| e.kind == kind && is_sent(e))
                        .context("a sent entry")?;
                    println!("     {}: {kind} {}", self.who(id), subject(entry));
                }
                None => println!("     no {kind} was sent"),
            }
        }
        let sms = logs.iter().find_map(|(id, entries)| {
            entries.iter().find_map(|e| match &e.status {
                DeliveryStatus::Sent { provider_id, .. } if e.channel == Channel::Sms => {
                    Some((id, e, sent.texts.get(provider_id)?))
                }
                _ => None,
            })
        });
        if let Some((id, entry, text)) = sms {
            println!(
                "     {}, in {}: {} by SMS, sent at once: \"{}\"",
                self.who(id),
                self.zone_of(id)?.iana_name().unwrap_or_default(),
                entry.kind,
                text.message
            );
        }
        let deferred = logs.iter().find_map(|(id, entries)| {
            entries.iter().find_map(|e| match &e.status {
                DeliveryStatus::Deferred { until } => Some((id, e, until)),
                _ => None,
            })
        });
        if let Some((id, entry, until)) = deferred {
            let zone = self.zone_of(id)?;
            println!(
                "     {}, in {}: {} by SMS, deferred until {} their time, the end of their quiet hours",
                self.who(id),
                zone.iana_name().unwrap_or_default(),
                entry.kind,
                until
                    .parse::<jiff::Timestamp>()?
                    .to_zoned(zone.clone())
                    .strftime("%H:%M")
            );
        }
        Ok(())
    }

    /// What became of the SMS held for the quiet hours once the hourly run released them.
    fn print_release(
        &self,
        before: &Logs,
        after: &Logs,
        run: &Value,
        at: &jiff::Zoned,
        sent: &Sent,
    ) -> anyhow::Result<()> {
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut example = None;
        for (id, entries) in before {
            for entry in entries {
                if !matches!(entry.status, DeliveryStatus::Deferred { .. }) {
                    continue;
                }
                let now = after
                    .get(id)
                    .and_then(|log| log.iter().find(|e| e.id == entry.id))
                    .with_context(|| format!("{} left the log of {id}", entry.id))?;
                let outcome = match &now.status {
                    DeliveryStatus::Sent { provider_id, .. } => {
                        if example.is_none() {
                            example = sent.texts.get(provider_id).map(|t| (id, t));
                        }
                        "sent".to_owned()
                    }
                    DeliveryStatus::Skipped { reason } => format!("skipped, {reason}"),
                    DeliveryStatus::Deferred { .. } => "still deferred".to_owned(),
                    DeliveryStatus::Sending { .. } => "sending".to_owned(),
                };
                *outcomes.entry(outcome).or_default() += 1;
            }
        }
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!(
            "   At {} the hourly schedule runs again: the daily run is done for the day; {} deferred SMS released to the queue, and the sender's outcome: {}",
            at.strftime("%H:%M"),
            run["released"],
            if outcomes.is_empty() {
                "none deferred".to_owned()
            } else {
                outcomes.join(", ")
            }
        );
        if let Some((id, text)) = example {
            println!("     {}: \"{}\"", self.who(id), text.message);
        }
        Ok(())
    }

    /// Publishes SES Delivery events for up to `FEEDBACK_PER_KIND` emails of each kind, and
    /// Open events for a seeded share of those (a few twice), to the configuration set's SNS
    /// topic, as SES would.
    async fn feedback(&self, logs: &Logs) -> anyhow::Result<Feedback> {
        let mut rng = StdRng::seed_from_u64(11);
        let mut events = Vec::new();
        let mut per_kind: HashMap<&str, usize> = HashMap::new();
        let (mut delivered, mut opened) = (0, 0);
        let mut month = None;
        let mut informed = Vec::new();
        for (participant, entries) in logs {
            let address = self
                .rep(participant)
                .and_then(|r| r.profile["email"].as_str())
                .with_context(|| format!("{participant} has no email address"))?;
            for entry in entries {
                let DeliveryStatus::Sent { at, provider_id } = &entry.status else {
                    continue;
                };
                let of_kind = per_kind.entry(&entry.kind).or_default();
                if entry.channel != Channel::Email || *of_kind == FEEDBACK_PER_KIND {
                    continue;
                }
                *of_kind += 1;
                let request: NotificationRequest = serde_json::from_value(json!({
                    "id": entry.id, "program": PROGRAM, "participant": participant,
                    "kind": entry.kind, "created_at": entry.created_at}))?;
                let mail = SesMail {
                    request: &request,
                    message_id: provider_id,
                    from: self.deployment.resources.sender_email(),
                    to: address,
                    sent_at: at.parse()?,
                };
                let delivery = mail.sent_at + jiff::SignedDuration::from_secs(4);
                month.get_or_insert_with(|| {
                    delivery
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .strftime("%Y-%m")
                        .to_string()
                });
                events.push(mail.event("Delivery", delivery));
                delivered += 1;
                if rng.random_bool(SIMULATED_OPEN_SHARE) {
                    let open =
                        mail.sent_at + jiff::SignedDuration::from_mins(rng.random_range(5..90));
                    events.push(mail.event("Open", open));
                    if opened < REPEATED_OPENS {
                        events.push(mail.event("Open", open + jiff::SignedDuration::from_mins(30)));
                    }
                    opened += 1;
                }
                if informed.last() != Some(participant) {
                    informed.push(participant.clone());
                }
            }
        }
        let sns = self.stack.sns_client();
        let topic = self.deployment.resources.email_events_topic_arn();
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    aws_sdk_sns::types::PublishBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message(message)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let published = sns
                .publish_batch()
                .topic_arn(topic)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))
                .context("publishing SES events")?;
            anyhow::ensure!(
                published.failed().is_empty(),
                "SES events not published: {:?}",
                published.failed()
            );
        }
        Ok(Feedback {
            month: month.context("no email was sent")?,
            informed,
            delivered,
            opened,
        })
    }

    /// Writes every email (`.eml`, the MIME as sent; `.html`, its HTML part) and every SMS
    /// (`.txt`) with an `index.html` listing them.
    fn write_messages(&self, first: &Logs, logs: &Logs, sent: &Sent) -> anyhow::Result<()> {
        // One row per message the providers accepted, with its log entry.
        let mut rows: Vec<(&str, &DeliveryEntry, &str)> = Vec::new();
        for (participant, entries) in logs {
            for entry in entries {
                if let DeliveryStatus::Sent { provider_id, .. } = &entry.status {
                    rows.push((participant, entry, provider_id));
                }
            }
        }
        rows.sort_by(|a, b| (a.0, &a.1.kind, a.2).cmp(&(b.0, &b.1.kind, b.2)));
        let unlogged = sent.emails.len() + sent.texts.len() - rows.len();
        if self.out.exists() {
            std::fs::remove_dir_all(&self.out)
                .with_context(|| format!("emptying {}", self.out.display()))?;
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let write = |name: &str, content: &[u8]| -> anyhow::Result<()> {
            let path = self.out.join(name);
            std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
        };
        let width = rows.len().to_string().len().max(2);
        let (mut emails, mut texts) = (0, 0);
        let mut index = String::new();
        for (n, (participant, entry, provider_id)) in rows.iter().enumerate() {
            let number = format!("{:0width$}", n + 1);
            let was_deferred = first.get(*participant).is_some_and(|log| {
                log.iter().any(|e| {
                    e.id == entry.id && matches!(e.status, DeliveryStatus::Deferred { .. })
                })
            });
            let mut status = vec!["sent"];
            if was_deferred {
                status.push("after the quiet hours");
            }
            if entry.delivered_at.is_some() {
                status.push("delivered");
            }
            if entry.opened_at.is_some() {
                status.push("opened (simulated)");
            }
            let (channel, subject, links) = match (entry.channel, sent.emails.get(*provider_id)) {
                (Channel::Email, Some(email)) => {
                    let base = format!("{number}-{participant}-{}", entry.kind);
                    let html = mime_part(&email.raw, "text/html")
                        .with_context(|| format!("the HTML part of {base}"))?;
                    write(&format!("{base}.eml"), email.raw.as_bytes())?;
                    write(&format!("{base}.html"), html.as_bytes())?;
                    emails += 1;
                    let subject = header(&email.raw, "Subject")
                        .map(|s| decode_words(&s))
                        .unwrap_or_default();
                    let links = format!(
                        "<a href=\"{base}.html\">html</a> · <a href=\"{base}.eml\">eml</a>"
                    );
                    ("email", subject, links)
                }
                (Channel::Sms, _) => {
                    let text = sent
                        .texts
                        .get(*provider_id)
                        .with_context(|| format!("no SMS {provider_id} at SNS"))?;
                    let name = format!("{number}-{participant}-sms.txt");
                    write(&name, text.message.as_bytes())?;
                    texts += 1;
                    let links = format!("<a href=\"{name}\">txt</a>");
                    ("SMS", text.message.clone(), links)
                }
                (Channel::Email, None) => {
                    anyhow::bail!("{participant}: email {provider_id} is not at SES")
                }
            };
            index.push_str(&format!(
                "<tr><td>{number}</td><td>{}</td><td>{}</td><td>{channel}</td><td>{}</td><td>{}</td><td>{links}</td></tr>\n",
                escape(&self.who(participant)),
                escape(&entry.kind),
                escape(&subject),
                status.join(", ")
            ));
        }
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Carrot demo: the messages sent</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}</style></head>\n<body><h1>The messages the demo sent</h1>\n<p>{PROGRAM}: {emails} emails (through SES on moto: <code>.html</code> is the HTML part, <code>.eml</code> the whole MIME message, which a mail program opens) and {texts} SMS (through SNS on moto). Delivery and opens are simulated SES events.</p>\n<table><tr><th>#</th><th>participant</th><th>kind</th><th>channel</th><th>subject or text</th><th>status</th><th>files</th></tr>\n{index}</table></body></html>\n"
        );
        write("index.html", page.as_bytes())?;
        println!(
            "   Messages: open {} ({emails} emails as .eml, the MIME as sent, and .html, its HTML part; {texts} SMS as .txt){}",
            self.out.join("index.html").display(),
            if unlogged == 0 {
                String::new()
            } else {
                format!("; {unlogged} accepted by the providers are in NO delivery log")
            }
        );
        Ok(())
    }
}

/// What moto's SES and SNS accepted from this deployment, by the id they returned (the
/// delivery log's `provider_id`).
struct Sent {
    emails: HashMap<String, SentEmail>,
    texts: HashMap<String, SentSms>,
}

impl Sent {
    async fn of(stack: &LocalStack, deployment: &Deployment, reps: &[Rep]) -> anyhow::Result<Sent> {
        let sender = deployment.resources.sender_email();
        let phones: Vec<&str> = reps
            .iter()
            .filter_map(|r| r.profile["phone"].as_str())
            .collect();
        let (emails, texts) = tokio::try_join!(stack.sent_emails(), stack.sent_sms())?;
        Ok(Sent {
            emails: emails
                .into_iter()
                .filter(|e| e.from == sender)
                .map(|e| (e.id.clone(), e))
                .collect(),
            texts: texts
                .into_iter()
                .filter(|t| phones.contains(&t.phone.as_str()))
                .map(|t| (t.id.clone(), t))
                .collect(),
        })
    }
}

/// The simulated SES feedback: the month (UTC) its statistics are under, the participants
/// whose emails it is about, and how many deliveries and opens it reported.
struct Feedback {
    month: String,
    informed: Vec<String>,
    delivered: usize,
    opened: usize,
}

/// A sent email, as SES describes it in its events.
struct SesMail<'a> {
    request: &'a NotificationRequest,
    /// The id SES returned when it accepted the email.
    message_id: &'a str,
    from: &'a str,
    to: &'a str,
    sent_at: jiff::Timestamp,
}

impl SesMail<'_> {
    /// An event about the email, as SES publishes it to the configuration set's topic: the
    /// mail's tags name the request.
    fn event(&self, kind: &str, at: jiff::Timestamp) -> String {
        let tags: serde_json::Map<String, Value> = email_tags(self.request)
            .into_iter()
            .map(|(name, value)| (name, json!([value])))
            .collect();
        let mail = json!({"timestamp": self.sent_at.to_string(), "source": self.from,
            "messageId": self.message_id, "destination": [self.to], "tags": tags});
        let at = at.to_string();
        match kind {
            "Delivery" => json!({"eventType": "Delivery", "mail": mail, "delivery": {
                "timestamp": at, "recipients": [self.to], "processingTimeMillis": 4000,
                "smtpResponse": "250 2.0.0 OK"}}),
            _ => json!({"eventType": "Open", "mail": mail, "open": {
                "timestamp": at, "ipAddress": "192.0.2.1", "userAgent": "Mozilla/5.0"}}),
        }
        .to_string()
    }
}
