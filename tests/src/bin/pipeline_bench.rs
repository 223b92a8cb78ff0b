//! What one event costs and how fast the pipeline runs, measured in one run on the local stack
//! (DynamoDB Local and moto), for docs/performance.md and docs/cost.md:
//!
//! 1. **Units per event.** The award path (`award_message`, the award function's core) writes
//!    through a counting proxy in front of DynamoDB Local that adds
//!    `ReturnConsumedCapacity: INDEXES` to every request and sums the `ConsumedCapacity` of the
//!    answers. Beside it, each event's writes are priced from the items themselves: the table is
//!    read before and after the event, and every item that changed costs 2 WCU per started KB
//!    of its larger image (a transactional write), plus 1 WCU per index entry put or deleted
//!    where the item's key in a secondary index changed (the indexes are `KEYS_ONLY`: each
//!    entry is far under 1 KB). For the points-table program (the sample award batch: a login,
//!    a duplicate, a deal, its reversal) and for the sample program with leaderboards (a busy
//!    rep's month, duplicates and reversals).
//! 2. **Requests per event in a batch of 100.** One signed POST of 100 events of 12 reps to the
//!    real ingest handler, then the 100 queued messages handed to the real award handler as one
//!    batch, with every DynamoDB, SQS and Secrets Manager request counted by operation.
//! 3. **Pipeline throughput.** N events (5,000; `--events N`) posted in requests of 100, one
//!    after another (`--posters P` clients at once), through the local API Gateway, ingest, SQS
//!    and the award workers (`--concurrency C`, 4), from the first POST to the last award
//!    committed (its message deleted); beside it, DynamoDB Local's own transactional
//!    throughput, before and after the pipeline: N `TransactWriteItems` of the award's shape (a
//!    conditional put of a record, two updates) at the same concurrency, straight from the SDK;
//!    the same with the award's consistent `BatchGetItem` before each; and the award path
//!    (`award_message`) on the same events without SQS. moto, which plays SQS, is reached
//!    through a counting proxy that times its calls: its calls slow down as a queue grows, so
//!    more posters than the award workers keep up with measure moto more than Carrot.
//!
//! Run: `cargo run --release -p carrot-local --bin pipeline_bench [-- --quick] [-- --events N
//! --concurrency C --posters P]` (`CARROT_BENCH_QUICK=1` is `--quick`: 1,000 events; under two
//! minutes). It prints markdown tables.

use anyhow::{Context, ensure};
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use carrot::adapters::clock::SystemClock;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore, PROGRAM_TTL};
use carrot::adapters::secrets::SecretsKeyStore;
use carrot::adapters::sqs::SqsEventQueue;
use carrot::domain::queued::QueuedEvent;
use carrot::ports::ProgramReader;
use carrot::service::award::{Outcome, award_message};
use carrot_local::deployment::{ApiClient, Deployment, item_size, signed_headers};
use carrot_local::fault_proxy::{CapacityReport, FaultProxy, Traffic};
use carrot_local::runner::{
    BoxFut, HttpApiServer, HttpHandler, SqsEventSourceOptions, http_request,
};
use carrot_local::stack::LocalStack;
use carrot_local::workload::{Rep, month_of_events, roster, roster_csv};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PROGRAM: &str = "acme";
const POINTS_TABLE_YAML: &str = include_str!("../../../events/admin/program-points-table.yaml");
const SAMPLE_YAML: &str = include_str!("../../../events/admin/program.yaml");
const AWARD_BATCH: &str = include_str!("../../../events/award/batch.json");
/// Events in the measured batch (part 2).
const BATCH_EVENTS: usize = 100;
/// Events per POST in the throughput run, as a CRM would batch them.
const POST_SIZE: usize = 100;
const ENV_QUICK: &str = "CARROT_BENCH_QUICK";

type Item = HashMap<String, AttributeValue>;
type Key = (String, String);
type Snapshot = HashMap<Key, Item>;

struct Settings {
    quick: bool,
    events: usize,
    concurrency: usize,
    posters: usize,
}

impl Settings {
    fn from_args() -> anyhow::Result<Settings> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var(ENV_QUICK).is_ok_and(|v| !v.is_empty() && v != "0");
        let number = |name: &str, default: usize| -> anyhow::Result<usize> {
            match args.iter().position(|a| a == name) {
                None => Ok(default),
                Some(i) => args
                    .get(i + 1)
                    .and_then(|v| v.replace(['_', ','], "").parse().ok())
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name} takes a whole number above 0")),
            }
        };
        Ok(Settings {
            quick,
            events: number("--events", if quick { 1_000 } else { 5_000 })?,
            concurrency: number("--concurrency", 4)?,
            posters: number("--posters", 1)?,
        })
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_args()?;
    let started = Instant::now();
    let stack = LocalStack::start_or_reuse()
        .await
        .context("starting the local stack")?;
    let dynamodb = FaultProxy::counting(stack.dynamodb_endpoint(), CapacityReport::Indexes).await?;
    let moto = FaultProxy::counting(stack.moto_endpoint(), CapacityReport::AsSent).await?;
    let proxied = LocalStack::connect(&dynamodb.endpoint(), &moto.endpoint()).await?;
    let proxies = Proxies {
        dynamodb: &dynamodb,
        moto: &moto,
        services: &proxied,
    };
    println!(
        "# pipeline_bench{} on the local stack (DynamoDB Local {}, moto {}), {}\n",
        if settings.quick { " --quick" } else { "" },
        stack.dynamodb_endpoint(),
        stack.moto_endpoint(),
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
    );

    let deployment = deploy(stack, stack, "bench-points", POINTS_TABLE_YAML, 1).await?;
    let points = async {
        let units = points_table_units(&deployment, &proxies).await?;
        let batch = batch_of_100(&deployment, &proxies).await?;
        anyhow::Ok((units, batch))
    }
    .await;
    deployment.stop().await?;
    let points = points?;
    let deployment = deploy(stack, stack, "bench-sample", SAMPLE_YAML, 1).await?;
    let sample = async {
        let units = sample_program_units(&deployment, &proxies).await?;
        let batch = batch_of_100(&deployment, &proxies).await?;
        anyhow::Ok((units, batch))
    }
    .await;
    deployment.stop().await?;
    let sample = sample?;
    let batches = [("points table", points.1), ("sample program", sample.1)];

    print_points_units(&points.0);
    print_sample_units(&sample.0);
    print_batches(&batches);

    // The pipeline reaches DynamoDB Local directly and moto through a counting proxy, which
    // times every SQS call (moto is the slow part of the local stack).
    let sqs = FaultProxy::counting(stack.moto_endpoint(), CapacityReport::AsSent).await?;
    let services = LocalStack::connect(stack.dynamodb_endpoint(), &sqs.endpoint()).await?;
    let concurrency = settings.concurrency;
    let deployment = deploy(
        stack,
        &services,
        "bench-pipeline",
        POINTS_TABLE_YAML,
        concurrency,
    );
    let deployment = deployment.await?;
    let throughput = throughput(&deployment, stack, &settings, &sqs).await;
    deployment.stop().await?;
    let throughput = throughput?;
    print_throughput(&throughput, &settings);
    print_workload();
    println!("\nWhole run: {:.0} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// The counting proxies and the services reached through them.
#[derive(Clone, Copy)]
struct Proxies<'a> {
    dynamodb: &'a FaultProxy,
    moto: &'a FaultProxy,
    services: &'a LocalStack,
}

impl Proxies<'_> {
    fn traffic(&self) -> (Traffic, Traffic) {
        (self.dynamodb.traffic(), self.moto.traffic())
    }

    /// Everything both proxies saw since `before`, in one map.
    fn since(&self, before: &(Traffic, Traffic)) -> Traffic {
        let mut all = self.dynamodb.traffic().since(&before.0);
        all.operations
            .extend(self.moto.traffic().since(&before.1).operations);
        all
    }

    /// A store whose every request goes through the DynamoDB proxy.
    fn store(&self, deployment: &Deployment) -> DynamoStore {
        DynamoStore::new(
            self.services.dynamodb_client(),
            deployment.resources.table(),
        )
    }
}

/// A deployment of `yaml` as program `acme`, its handlers and `concurrency` award workers
/// reaching the services at `services` (the stack itself, or a proxy in front of it).
async fn deploy(
    stack: &LocalStack,
    services: &LocalStack,
    name: &str,
    yaml: &str,
    concurrency: usize,
) -> anyhow::Result<Deployment> {
    let options = SqsEventSourceOptions {
        concurrency,
        visibility_timeout_secs: Some(30),
        ..SqsEventSourceOptions::default()
    };
    let ttl = Duration::from_secs(60);
    let deployment = Deployment::start_through(stack, services, name, options, ttl).await?;
    let admin = admin_client(&deployment).await?;
    let stored = admin.put_program(yaml).await?;
    ensure!(
        stored.status == 200,
        "program not stored: {:?}",
        stored.body
    );
    Ok(deployment)
}

// ====================================================================== 1. units per event

/// A secondary index of the table: its name and key attributes.
struct Index {
    name: String,
    keys: Vec<String>,
}

async fn indexes(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Vec<Index>> {
    let described = client.describe_table().table_name(table).send().await?;
    let table = described.table().context("the table is described")?;
    let globals = table.global_secondary_indexes().iter().map(|i| {
        (
            i.index_name().unwrap_or_default(),
            i.key_schema()
                .iter()
                .map(|k| k.attribute_name().to_owned())
                .collect(),
        )
    });
    let locals = table.local_secondary_indexes().iter().map(|i| {
        (
            i.index_name().unwrap_or_default(),
            i.key_schema()
                .iter()
                .map(|k| k.attribute_name().to_owned())
                .collect(),
        )
    });
    Ok(globals
        .chain(locals)
        .map(|(name, keys)| Index {
            name: name.to_owned(),
            keys,
        })
        .collect())
}

/// Every item of the table, by key (read directly, not through the proxy).
async fn snapshot(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Snapshot> {
    let mut items = Snapshot::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            items.insert((text("pk"), text("sk")), item.clone());
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

/// One item a write changed: its sort key and its billed size (the larger image).
#[derive(Clone, Debug)]
struct Written {
    sk: String,
    bytes: usize,
}

/// The writes of one event priced by AWS's rules from the items before and after.
#[derive(Clone, Debug, Default)]
struct Priced {
    items: Vec<Written>,
    /// 2 WCU per started KB of each item (transactional).
    table_units: usize,
    /// 1 WCU per index entry put or deleted.
    index_units: usize,
    /// Which index entries moved, e.g. `MonthPoints: delete+put`.
    index_moves: Vec<String>,
}

impl Priced {
    fn units(&self) -> usize {
        self.table_units + self.index_units
    }
}

fn index_key(item: Option<&Item>, index: &Index) -> Option<Vec<AttributeValue>> {
    let item = item?;
    index
        .keys
        .iter()
        .map(|k| item.get(k).cloned())
        .collect::<Option<Vec<_>>>()
}

fn price(before: &Snapshot, after: &Snapshot, indexes: &[Index]) -> Priced {
    let mut priced = Priced::default();
    let mut keys: Vec<&Key> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (old, new) = (before.get(key), after.get(key));
        if old == new {
            continue;
        }
        let bytes = old.map_or(0, item_size).max(new.map_or(0, item_size));
        priced.table_units += 2 * bytes.div_ceil(1024).max(1);
        priced.items.push(Written {
            sk: key.1.clone(),
            bytes,
        });
        for index in indexes {
            let (was, is) = (index_key(old, index), index_key(new, index));
            if was == is {
                continue;
            }
            let moved = usize::from(was.is_some()) + usize::from(is.is_some());
            priced.index_units += moved;
            priced.index_moves.push(format!(
                "{}: {}",
                index.name,
                match (was.is_some(), is.is_some()) {
                    (true, true) => "delete+put",
                    (false, true) => "put",
                    _ => "delete",
                }
            ));
        }
    }
    priced
}

/// DynamoDB Local's `ConsumedCapacity` for one event, split as the proxy summed it.
#[derive(Clone, Debug, Default)]
struct Reported {
    /// Units of the reads (`BatchGetItem`, `GetItem`, `Query`).
    read: f64,
    /// Keys the reads named: by AWS's rule a consistent read costs 1 RCU per item up to 4 KB.
    keys_read: u64,
    /// Units of the writes, table and indexes.
    write: f64,
    /// The indexes' part of `write`.
    write_indexes: f64,
    /// Requests by operation.
    requests: BTreeMap<String, u64>,
}

const READS: [&str; 5] = [
    "DynamoDB.GetItem",
    "DynamoDB.BatchGetItem",
    "DynamoDB.Query",
    "DynamoDB.Scan",
    "DynamoDB.TransactGetItems",
];

fn reported(traffic: &Traffic) -> Reported {
    let mut out = Reported::default();
    for (name, operation) in &traffic.operations {
        out.requests.insert(name.clone(), operation.requests);
        if READS.contains(&name.as_str()) {
            out.read += operation.capacity.units;
            out.keys_read += operation.items;
        } else {
            out.write += operation.capacity.units;
            out.write_indexes += operation.capacity.index_units();
        }
    }
    out
}

/// One event awarded (or found a duplicate, or reversed) and measured.
#[derive(Clone, Debug)]
struct Measured {
    label: String,
    kind: String,
    outcome: Outcome,
    priced: Priced,
    reported: Reported,
}

/// Awards messages one at a time through the DynamoDB proxy and measures each.
struct UnitMeter<'a> {
    proxies: &'a Proxies<'a>,
    store: DynamoStore,
    programs: CachedPrograms<DynamoStore>,
    direct: aws_sdk_dynamodb::Client,
    table: String,
    indexes: Vec<Index>,
}

impl<'a> UnitMeter<'a> {
    async fn new(
        deployment: &Deployment,
        proxies: &'a Proxies<'a>,
        stack: &LocalStack,
    ) -> anyhow::Result<UnitMeter<'a>> {
        let store = proxies.store(deployment);
        let programs = CachedPrograms::new(store.clone(), PROGRAM_TTL);
        // The configuration is read once here, so each event's requests are its own.
        programs.versions(PROGRAM).await?;
        let direct = stack.dynamodb_client();
        let table = deployment.resources.table().to_owned();
        let indexes = indexes(&direct, &table).await?;
        Ok(UnitMeter {
            proxies,
            store,
            programs,
            direct,
            table,
            indexes,
        })
    }

    async fn award(&self, label: &str, message: &str) -> anyhow::Result<Measured> {
        let kind = QueuedEvent::from_message(message)
            .map_err(anyhow::Error::msg)?
            .event
            .event_type
            .to_string();
        let before = snapshot(&self.direct, &self.table).await?;
        let traffic = self.proxies.dynamodb.traffic();
        let (outcome, _) = award_message(&self.store, &self.programs, &SystemClock, message)
            .await
            .with_context(|| format!("awarding {label}"))?;
        let traffic = self.proxies.dynamodb.traffic().since(&traffic);
        let after = snapshot(&self.direct, &self.table).await?;
        Ok(Measured {
            label: label.to_owned(),
            kind,
            outcome,
            priced: price(&before, &after, &self.indexes),
            reported: reported(&traffic),
        })
    }
}

/// Enrols one sales rep and starts metering the table from there.
async fn enrolled_meter<'a>(
    deployment: &'a Deployment,
    proxies: &'a Proxies<'a>,
    participant: &str,
    name: &str,
) -> anyhow::Result<UnitMeter<'a>> {
    let admin = admin_client(deployment).await?;
    let profile = json!({"name": name, "email": format!("{participant}@dealer.example"),
        "locale": "sv-SE", "time_zone": "Europe/Stockholm", "role": "sales_rep",
        "distributor": "nordic-dealer", "location": "nordic-dealer-stockholm"});
    ensure!(admin.enrol(participant, &profile).await?.status == 201);
    let stack = LocalStack::start_or_reuse().await?;
    UnitMeter::new(deployment, proxies, stack).await
}

/// The sample award batch (`events/award/batch.json`) under the points-table program: a login,
/// the login again, a deal, the deal's reversal, the reversal again.
async fn points_table_units(
    deployment: &Deployment,
    proxies: &Proxies<'_>,
) -> anyhow::Result<Vec<Measured>> {
    let meter = enrolled_meter(deployment, proxies, "rep-anna", "Anna Berg").await?;
    let sample: SqsEvent = serde_json::from_str(AWARD_BATCH)?;
    let bodies: Vec<String> = sample
        .records
        .iter()
        .map(|r| r.body.clone().unwrap_or_default())
        .collect();
    let mut measured = Vec::new();
    for (label, body) in [
        ("awarded: a login", &bodies[0]),
        ("duplicate: the login again", &bodies[0]),
        ("awarded: a deal", &bodies[1]),
        ("reversal of the deal", &bodies[2]),
        ("duplicate: the reversal again", &bodies[2]),
    ] {
        measured.push(meter.award(label, body).await?);
    }
    Ok(measured)
}

async fn admin_client(deployment: &Deployment) -> anyhow::Result<ApiClient> {
    deployment
        .create_key(
            &format!("bench-admin-{}", rand::random::<u32>()),
            PROGRAM,
            &["admin"],
        )
        .await
}

/// `envelope` as the queue message ingest would have made of it an hour after it happened.
fn message_of(envelope: &Value) -> anyhow::Result<String> {
    let occurred: jiff::Timestamp = envelope["occurred_at"]
        .as_str()
        .context("occurred_at")?
        .parse()?;
    let received_at = occurred + jiff::SignedDuration::from_hours(1);
    let queued = QueuedEvent {
        program: PROGRAM.into(),
        received_at,
        event: carrot::domain::envelope::parse_event(envelope, "", received_at)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    };
    Ok(queued.to_message())
}

/// A busy rep's month of October 2026 under the sample program (leaderboards, budgets, caps),
/// then two duplicates and two reversals.
async fn sample_program_units(
    deployment: &Deployment,
    proxies: &Proxies<'_>,
) -> anyhow::Result<Vec<Measured>> {
    let meter = enrolled_meter(deployment, proxies, "rep-star", "Stella Star").await?;
    let events = carrot_local::workload::busy_month("rep-star", jiff::civil::date(2026, 10, 1))?;
    let mut measured = Vec::new();
    let mut messages = HashMap::new();
    for envelope in &events {
        let id = envelope["id"].as_str().context("id")?.to_owned();
        let message = message_of(envelope)?;
        measured.push(meter.award(&id, &message).await?);
        messages.insert(id, message);
    }
    for id in ["login-1", "contract-3"] {
        let label = format!("duplicate: {id} again");
        measured.push(meter.award(&label, &messages[id]).await?);
    }
    for (original, kind) in [
        ("deal-8", "deal.cancelled"),
        ("contract-10", "contract.cancelled"),
    ] {
        let envelope = json!({"id": format!("{original}-cancel"), "participant": "rep-star",
            "type": kind, "occurred_at": "2026-10-30T12:00:00Z",
            "attributes": {"original_event": original, "reason": "customer withdrew"}});
        let label = format!("reversal of {original}");
        measured.push(meter.award(&label, &message_of(&envelope)?).await?);
    }
    Ok(measured)
}

fn items_text(priced: &Priced) -> String {
    priced
        .items
        .iter()
        .map(|w| format!("{} {}", short_sk(&w.sk), w.bytes))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an item is, by its sort key: `record`, `participant`, `month 2026-10`, `budget shard`.
fn short_sk(sk: &str) -> String {
    if sk.starts_with("E#") {
        "record".into()
    } else if sk == "PROFILE" {
        "participant".into()
    } else if let Some(month) = sk.strip_prefix("M#") {
        format!("month {month}")
    } else if sk == "BUDGET" {
        "budget shard".into()
    } else {
        sk.to_owned()
    }
}

fn reads_text(reported: &Reported) -> String {
    let requests: Vec<String> = reported
        .requests
        .iter()
        .map(|(op, n)| format!("{n} {}", op.trim_start_matches("DynamoDB.")))
        .collect();
    requests.join(" + ")
}

fn print_points_units(measured: &[Measured]) {
    println!("## 1. DynamoDB units per event\n");
    println!(
        "Points-table program (`events/admin/program-points-table.yaml`, no leaderboards), the \
         sample award batch (`events/award/batch.json`):\n"
    );
    println!(
        "| event | requests | items written (bytes) | by item size: WCU (table + index) | \
         DynamoDB Local ConsumedCapacity: WCU (of it indexes) | keys read (Local's RCU) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for m in measured {
        println!(
            "| {} ({:?}) | {} | {} | **{}** ({} + {}) | {} ({}) | {} ({}) |",
            m.label,
            m.outcome,
            reads_text(&m.reported),
            if m.priced.items.is_empty() {
                "none".into()
            } else {
                items_text(&m.priced)
            },
            m.priced.units(),
            m.priced.table_units,
            m.priced.index_units,
            m.reported.write,
            m.reported.write_indexes,
            m.reported.keys_read,
            m.reported.read,
        );
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

fn range(values: &[usize]) -> String {
    let (lo, hi) = (values.iter().min(), values.iter().max());
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
        _ => "–".into(),
    }
}

fn print_sample_units(measured: &[Measured]) {
    println!(
        "\nSample program (`events/admin/program.yaml`: leaderboards on the month's points and \
         login days, a monthly budget, day/week/month caps), a busy rep's October (every day a \
         login and two CRM activities; weekly a deal, a quiz, a contract; one lead):\n"
    );
    println!(
        "| awarded events | n | by item size: table WCU | index upkeep WCU | total WCU (mean) | \
         DynamoDB Local: WCU, mean (of it indexes) | keys read, mean (Local's RCU) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let awarded: Vec<&Measured> = measured
        .iter()
        .filter(|m| matches!(m.outcome, Outcome::Awarded { .. }))
        .collect();
    let mut kinds: Vec<&str> = awarded.iter().map(|m| m.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    let row = |label: &str, group: &[&Measured]| {
        let table: Vec<usize> = group.iter().map(|m| m.priced.table_units).collect();
        let index: Vec<usize> = group.iter().map(|m| m.priced.index_units).collect();
        println!(
            "| {label} | {} | {} | {} | **{:.1}** | {:.1} ({:.1}) | {:.1} ({:.1}) |",
            group.len(),
            range(&table),
            range(&index),
            mean(group.iter().map(|m| m.priced.units() as f64)),
            mean(group.iter().map(|m| m.reported.write)),
            mean(group.iter().map(|m| m.reported.write_indexes)),
            mean(group.iter().map(|m| m.reported.keys_read as f64)),
            mean(group.iter().map(|m| m.reported.read)),
        );
    };
    for kind in &kinds {
        let group: Vec<&Measured> = awarded
            .iter()
            .filter(|m| m.kind == *kind)
            .copied()
            .collect();
        row(kind, &group);
    }
    row("**every awarded event of the month**", &awarded);

    println!("\nSingle events of that month:\n");
    println!(
        "| event | items written (bytes) | index entries moved | by item size: WCU (table + index) | DynamoDB Local WCU (indexes) | keys read (Local's RCU) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let picks = [
        "login-1",
        "call-1-10",
        "login-2",
        "call-2-10",
        "deal-1",
        "contract-3",
        "quiz-2",
        "login-22",
        "login-31",
        "contract-24",
    ];
    for m in measured.iter().filter(|m| {
        picks.contains(&m.label.as_str())
            || m.label.starts_with("duplicate")
            || m.label.starts_with("reversal")
    }) {
        println!(
            "| {} ({}, {:?}) | {} | {} | **{}** ({} + {}) | {} ({}) | {} ({}) |",
            m.label,
            m.kind,
            m.outcome,
            if m.priced.items.is_empty() {
                "none".into()
            } else {
                items_text(&m.priced)
            },
            if m.priced.index_moves.is_empty() {
                "none".into()
            } else {
                m.priced.index_moves.join(", ")
            },
            m.priced.units(),
            m.priced.table_units,
            m.priced.index_units,
            m.reported.write,
            m.reported.write_indexes,
            m.reported.keys_read,
            m.reported.read,
        );
    }
    // How often the month item passed 1 KB, and what each index cost over the month.
    let over_kb = awarded
        .iter()
        .filter(|m| {
            m.priced
                .items
                .iter()
                .any(|w| w.sk.starts_with("M#") && w.bytes > 1024)
        })
        .count();
    let mut moves: BTreeMap<String, usize> = BTreeMap::new();
    for m in &awarded {
        for moved in &m.priced.index_moves {
            *moves.entry(moved.clone()).or_default() += 1;
        }
    }
    println!(
        "\nOf {} awarded events, {over_kb} wrote a month item over 1 KB; index entries moved: {}.",
        awarded.len(),
        moves
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ====================================================================== 2. batch of 100

/// Requests by operation for one batch of 100 events, by who made them.
struct BatchRequests {
    events: usize,
    participants: usize,
    /// The ingest function's requests (one POST of 100 events).
    ingest: Traffic,
    /// The SQS event source's (Lambda's poller): receive and delete.
    source: Traffic,
    /// The award function's, its program cache cold (first batch of a new instance).
    award: Traffic,
    /// The award function's for a second batch of 100 in the same instance (cache warm).
    award_warm: Traffic,
    /// Average size of a queue message body.
    message_bytes: f64,
    /// Bytes the ingest and award functions logged at `info` per event (JSON lines).
    log_bytes_per_event: Option<f64>,
    /// Wall time of the award handler for the 100 events (local stack).
    award_time: Duration,
}

async fn batch_of_100(
    deployment: &Deployment,
    proxies: &Proxies<'_>,
) -> anyhow::Result<BatchRequests> {
    let reps = roster(15, 7);
    let admin = admin_client(deployment).await?;
    for rep in &reps {
        ensure!(admin.enrol(&rep.id, &rep.profile).await?.status == 201);
    }
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let mut events = month_of_events(&reps, jiff::civil::date(2026, 10, 1), &zone, 0.1, 7);
    events.shuffle(&mut StdRng::seed_from_u64(7));
    ensure!(events.len() >= 2 * BATCH_EVENTS, "workload too small");
    let participants = events[..BATCH_EVENTS]
        .iter()
        .map(|e| e["participant"].as_str().unwrap_or_default())
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    // A queue of the bench's own, so the deployment's award workers leave the messages alone.
    let queue_url = deployment
        .sqs
        .create_queue()
        .queue_name(format!("{}-bench-batch", deployment.resources.prefix()))
        .send()
        .await?
        .queue_url
        .context("the queue has a URL")?;
    let result = async {
        let crm = deployment
            .create_key("bench-crm", PROGRAM, &["events:write"])
            .await?;
        let services = proxies.services;
        let ingest = Arc::new(ingest::Ingest {
            keys: SecretsKeyStore::new(
                services.secrets_client(),
                format!("carrot/{}/keys/", deployment.resources.prefix()),
            ),
            queue: SqsEventQueue::new(services.sqs_client(), queue_url.clone()),
            clock: SystemClock,
        });
        let mut http: HashMap<String, HttpHandler> = HashMap::new();
        http.insert(
            "IngestFunction".into(),
            Arc::new(move |request| -> BoxFut<_> {
                let ingest = ingest.clone();
                Box::pin(async move { ingest.handle(request).await })
            }),
        );
        let api = HttpApiServer::start(deployment.resources.template().routes(), http).await?;
        let store = proxies.store(deployment);
        let award = award::Award {
            programs: CachedPrograms::new(store.clone(), PROGRAM_TTL),
            store,
            clock: SystemClock,
        };
        let sqs = services.sqs_client();
        let log = LogTail::open();

        let mut rounds = Vec::new();
        for round in 0..2 {
            let chunk = &events[round * BATCH_EVENTS..(round + 1) * BATCH_EVENTS];
            let body = json!({ "events": chunk }).to_string().into_bytes();
            let before = proxies.traffic();
            let headers = signed_headers(
                crm.key_id(),
                crm.secret(),
                jiff::Timestamp::now().as_second(),
                &body,
                "application/json",
            );
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let url = format!("{}/v1/programs/{PROGRAM}/events", api.base_url());
            let answer = http_request("POST", &url, &headers, body).await?;
            ensure!(answer.status == 202, "POST answered {}", answer.text());
            let ingest_traffic = proxies.since(&before);

            let before = proxies.traffic();
            let mut messages = Vec::new();
            while messages.len() < BATCH_EVENTS {
                let received = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await?;
                messages.extend(received.messages.unwrap_or_default());
            }
            let received = proxies.since(&before);
            let message_bytes = mean(
                messages
                    .iter()
                    .map(|m| m.body().unwrap_or_default().len() as f64),
            );
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    json!({
                        "messageId": m.message_id(),
                        "receiptHandle": m.receipt_handle(),
                        "body": m.body(),
                        "md5OfBody": m.md5_of_body(),
                        "attributes": {"ApproximateReceiveCount": "1"},
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:eu-north-1:123456789012:bench",
                        "awsRegion": "eu-north-1",
                    })
                })
                .collect();
            let event: SqsEvent = serde_json::from_value(json!({ "Records": records }))?;

            let before = proxies.traffic();
            let timing = Instant::now();
            let answer = award.handle(event).await;
            let award_time = timing.elapsed();
            ensure!(
                answer.batch_item_failures.is_empty(),
                "the award handler failed {} messages",
                answer.batch_item_failures.len()
            );
            let award_traffic = proxies.since(&before);

            let before = proxies.traffic();
            for chunk in messages.chunks(10) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .expect("id and handle are set")
                    })
                    .collect();
                sqs.delete_message_batch()
                    .queue_url(&queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await?;
            }
            let mut source = proxies.since(&before);
            source.operations.extend(received.operations);
            rounds.push((
                ingest_traffic,
                source,
                award_traffic,
                message_bytes,
                award_time,
            ));
        }
        let log_bytes_per_event = log
            .and_then(LogTail::bytes_since)
            .map(|b| b as f64 / (2 * BATCH_EVENTS) as f64);
        api.shutdown();
        let (second, first) = (rounds.pop(), rounds.pop());
        let (Some(first), Some(second)) = (first, second) else {
            anyhow::bail!("two rounds");
        };
        Ok(BatchRequests {
            events: BATCH_EVENTS,
            participants,
            ingest: first.0,
            source: first.1,
            award: first.2,
            award_warm: second.2,
            message_bytes: first.3,
            log_bytes_per_event,
            award_time: first.4,
        })
    }
    .await;
    deployment
        .sqs
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await?;
    result
}

/// The bytes of the JSON log lines the ingest and award functions write at `info` and above,
/// from the local stack's log recorder (`target/test-logs/pipeline_bench-{pid}.jsonl`).
struct LogTail {
    path: std::path::PathBuf,
    start: u64,
}

impl LogTail {
    fn open() -> Option<LogTail> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let path = target
            .join("test-logs")
            .join(format!("pipeline_bench-{}.jsonl", std::process::id()));
        let start = std::fs::metadata(&path).ok()?.len();
        Some(LogTail { path, start })
    }

    /// Bytes (each line and its newline) since `open`, of lines from the functions.
    fn bytes_since(self) -> Option<u64> {
        let tail = self;
        let text = std::fs::read(&tail.path).ok()?;
        let text = String::from_utf8_lossy(text.get(tail.start as usize..)?).into_owned();
        let bytes = text
            .lines()
            .filter_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                let level = value["level"].as_str()?;
                let target = value["target"].as_str()?;
                let functions = ["award", "ingest", "carrot::service::award"];
                (matches!(level, "INFO" | "WARN" | "ERROR")
                    && functions
                        .iter()
                        .any(|f| target == *f || target.starts_with(&format!("{f}::"))))
                .then_some(line.len() as u64 + 1)
            })
            .sum();
        Some(bytes)
    }
}

fn print_batches(batches: &[(&str, BatchRequests)]) {
    println!("\n## 2. Requests per event in a batch of 100\n");
    for (program, b) in batches {
        println!(
            "{program}: one signed POST of {} events of {} reps to the ingest handler, then the {} \
             queued messages given to the award handler as one batch. Requests ÷ {}:\n",
            b.events, b.participants, b.events, b.events
        );
        println!(
            "| who | operation | requests | per event | items per request | mean round trip on the local stack |"
        );
        println!("| --- | --- | --- | --- | --- | --- |");
        let per = |n: u64| n as f64 / b.events as f64;
        for (who, traffic) in [
            ("ingest", &b.ingest),
            ("award (cold: first batch of an instance)", &b.award),
            ("award (warm: the next batch)", &b.award_warm),
            ("SQS event source (Lambda's poller)", &b.source),
        ] {
            for (op, t) in &traffic.operations {
                println!(
                    "| {who} | {op}{} | {} | {:.2} | {} | {:.1} ms |",
                    if t.failed > 0 {
                        format!(" ({} failed)", t.failed)
                    } else {
                        String::new()
                    },
                    t.requests,
                    per(t.requests),
                    if t.items > 0 {
                        format!("{:.1}", t.items as f64 / t.requests as f64)
                    } else {
                        String::new()
                    },
                    t.seconds * 1e3 / t.requests as f64
                );
            }
            let dynamodb = traffic.of_service("DynamoDB.");
            if dynamodb.total_requests() > 0 {
                println!(
                    "| {who} | **DynamoDB, all** ({:.1} units reported) | {} | **{:.2}** | | |",
                    dynamodb.capacity().units,
                    dynamodb.total_requests(),
                    per(dynamodb.total_requests())
                );
            }
        }
        println!(
            "\nQueue message: {:.0} bytes on average. Award handler for the {} events: {:.0} ms on \
             the local stack ({:.1} ms per event).{}\n",
            b.message_bytes,
            b.events,
            b.award_time.as_secs_f64() * 1e3,
            b.award_time.as_secs_f64() * 1e3 / b.events as f64,
            match b.log_bytes_per_event {
                Some(bytes) =>
                    format!(" Ingest and award logged {bytes:.0} bytes of JSON per event at info."),
                None => String::new(),
            }
        );
    }
}

// ====================================================================== 3. throughput

struct Throughput {
    events: usize,
    participants: usize,
    requests: usize,
    /// First POST to the last award committed.
    pipeline: Duration,
    /// First POST to the last POST answered.
    posted: Duration,
    duplicates_in_batch: u64,
    /// The award event source's counters after the run.
    source: carrot_local::runner::SqsEventSourceStats,
    /// Requests to moto from the first POST to the last award.
    sqs: Traffic,
    /// Raw transactions before and after the pipeline.
    raw_before: RawRun,
    raw_after: RawRun,
    raw_reads_writes: RawRun,
    /// `award_message` on the same events without SQS, at the same concurrency.
    award_alone: RawRun,
}

struct RawRun {
    transactions: usize,
    time: Duration,
    conflicts: u64,
}

async fn throughput(
    deployment: &Deployment,
    stack: &LocalStack,
    settings: &Settings,
    sqs: &FaultProxy,
) -> anyhow::Result<Throughput> {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    // About 16 events per rep in a month of the demo workload.
    let reps = roster((settings.events / 12).max(20), 11);
    let mut events = month_of_events(&reps, jiff::civil::date(2026, 10, 1), &zone, 0.1, 11);
    ensure!(
        events.len() >= settings.events,
        "the workload has {} events",
        events.len()
    );
    events.truncate(settings.events);
    let participants: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| e["participant"].as_str().unwrap_or_default().to_owned())
        .collect();
    let reps: Vec<Rep> = reps
        .into_iter()
        .filter(|r| participants.contains(&r.id))
        .collect();
    let admin = admin_client(deployment).await?;
    for chunk in reps.chunks(500) {
        let csv = roster_csv(chunk, "2026-01-01");
        let imported = admin
            .send("POST", "/imports", csv.into_bytes(), "text/csv")
            .await?;
        ensure!(imported.status == 200, "import: {:?}", imported.body);
    }
    let crm = Arc::new(
        deployment
            .create_key("bench-crm", PROGRAM, &["events:write"])
            .await?,
    );

    // The ceiling first: the award's transaction straight from the SDK, after a warm-up (the
    // JVM of DynamoDB Local compiles its hot paths during the first few hundred).
    let client = stack.dynamodb_client();
    let table = deployment.resources.table().to_owned();
    let concurrency = settings.concurrency;
    let warm_up = &events[..events.len().min(500)];
    raw_transactions(&client, &table, warm_up, concurrency, "warm", false).await?;
    let raw_before = raw_transactions(&client, &table, &events, concurrency, "raw", false).await?;

    // The pipeline: POSTs of 100 from `posters` clients; award workers already polling.
    let chunks: Arc<Vec<Value>> = Arc::new(
        events
            .chunks(POST_SIZE)
            .map(|c| json!({ "events": c }))
            .collect(),
    );
    let accepted = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let deleted_before = deployment.award.stats().deleted;
    let sqs_before = sqs.traffic();
    let start = Instant::now();
    each_in_parallel(chunks.len(), settings.posters, {
        let chunks = chunks.clone();
        let (accepted, duplicates) = (accepted.clone(), duplicates.clone());
        move |i| {
            let (crm, chunks) = (crm.clone(), chunks.clone());
            let (accepted, duplicates) = (accepted.clone(), duplicates.clone());
            async move {
                let answer = crm.post_events(&chunks[i]).await?;
                ensure!(answer.status == 202, "POST answered {answer:?}");
                accepted.fetch_add(
                    answer.body["accepted"].as_u64().unwrap_or_default(),
                    Ordering::SeqCst,
                );
                duplicates.fetch_add(
                    answer.body["duplicates_in_batch"]
                        .as_u64()
                        .unwrap_or_default(),
                    Ordering::SeqCst,
                );
                Ok(())
            }
        }
    })
    .await?;
    let posted = start.elapsed();
    let expected = accepted.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(1_800);
    loop {
        let stats = deployment.award.stats();
        if stats.deleted - deleted_before >= expected {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the award workers did not finish: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pipeline = start.elapsed();
    let sqs_traffic = sqs.traffic().since(&sqs_before);
    deployment.award.wait_idle(Duration::from_secs(120)).await?;
    let stats = deployment.award.stats();
    ensure!(
        stats.failures_reported == 0 && stats.failed_invocations == 0,
        "award failures: {stats:?}"
    );

    let raw_after = raw_transactions(&client, &table, &events, concurrency, "raw2", false).await?;
    let raw_reads_writes =
        raw_transactions(&client, &table, &events, concurrency, "rawread", true).await?;
    let award_alone = award_alone(deployment, stack, &events, concurrency).await?;
    Ok(Throughput {
        events: expected as usize,
        participants: reps.len(),
        requests: chunks.len(),
        pipeline,
        posted,
        duplicates_in_batch: duplicates.load(Ordering::SeqCst),
        source: stats,
        sqs: sqs_traffic,
        raw_before,
        raw_after,
        raw_reads_writes,
        award_alone,
    })
}

/// The award path without SQS: `award_message` on every event (as new events: ids with
/// `-direct`), `concurrency` at a time, straight on DynamoDB Local.
async fn award_alone(
    deployment: &Deployment,
    stack: &LocalStack,
    events: &[Value],
    concurrency: usize,
) -> anyhow::Result<RawRun> {
    let store = DynamoStore::new(stack.dynamodb_client(), deployment.resources.table());
    let programs = Arc::new(CachedPrograms::new(store.clone(), PROGRAM_TTL));
    programs.versions(PROGRAM).await?;
    let messages: Vec<String> = events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            let id = format!("{}-direct", event["id"].as_str().unwrap_or_default());
            event["id"] = Value::from(id);
            if let Some(original) = event["attributes"]["original_event"].as_str() {
                event["attributes"]["original_event"] = Value::from(format!("{original}-direct"));
            }
            message_of(&event)
        })
        .collect::<anyhow::Result<_>>()?;
    let messages = Arc::new(messages);
    let contended = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    each_in_parallel(messages.len(), concurrency, {
        let contended = contended.clone();
        move |i| {
            let (store, programs) = (store.clone(), programs.clone());
            let (messages, contended) = (messages.clone(), contended.clone());
            async move {
                // A message left contended is awarded again, as SQS would redeliver it.
                while let Err(error) =
                    award_message(&store, programs.as_ref(), &SystemClock, &messages[i]).await
                {
                    ensure!(error.to_string().contains("kept changing"), "{error}");
                    contended.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
        }
    })
    .await?;
    Ok(RawRun {
        transactions: events.len(),
        time: start.elapsed(),
        conflicts: contended.load(Ordering::SeqCst),
    })
}

/// Runs `work(i)` for every `i` below `count`, on `workers` tasks at once: each task takes the
/// next index not yet taken, so one slow item holds up one task only. The first error ends it.
async fn each_in_parallel<F, Fut>(count: usize, workers: usize, work: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (work, next) = (work.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        return anyhow::Ok(());
                    }
                    work(i).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// One `TransactWriteItems` per event of `events`, `concurrency` at a time, in the award's
/// shape: a conditional put of a record of about the award's size, an update of the
/// participant (`ADD balance`) and of the month (`ADD points, n:{type}`), each participant under
/// `P#{run}#…` so the runs do not meet each other's or the pipeline's items. With `read_first`, each is
/// preceded by the award's consistent `BatchGetItem` of the participant, the record and the
/// month. Conflicts (`TransactionConflict`) are retried and counted.
async fn raw_transactions(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    events: &[Value],
    concurrency: usize,
    run: &str,
    read_first: bool,
) -> anyhow::Result<RawRun> {
    let prefix = format!("P#{run}#");
    let work: Arc<Vec<(String, String, String)>> = Arc::new(
        events
            .iter()
            .map(|e| {
                (
                    format!("{prefix}{}", e["participant"].as_str().unwrap_or_default()),
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["type"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    );
    let conflicts = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    each_in_parallel(work.len(), concurrency, {
        let (client, table, conflicts) = (client.clone(), table.to_owned(), conflicts.clone());
        move |i| {
            let (client, table) = (client.clone(), table.clone());
            let (work, conflicts) = (work.clone(), conflicts.clone());
            async move {
                let (pk, id, kind) = &work[i];
                let key =
                    |sk: &str| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]);
                loop {
                    if read_first {
                        let keys = KeysAndAttributes::builder()
                            .set_keys(Some(vec![
                                key("PROFILE"),
                                key(&format!("E#{id}")),
                                key("M#2026-10"),
                            ]))
                            .consistent_read(true)
                            .build()?;
                        client
                            .batch_get_item()
                            .request_items(&table, keys)
                            .send()
                            .await?;
                    }
                    let items = raw_items(&table, pk, id, kind, &key)?;
                    match client
                        .transact_write_items()
                        .set_transact_items(Some(items))
                        .send()
                        .await
                    {
                        Ok(_) => break,
                        Err(error) => {
                            let text =
                                format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error));
                            ensure!(
                                text.contains("TransactionConflict")
                                    || text.contains("TransactionCanceled"),
                                "raw transaction failed: {text}"
                            );
                            conflicts.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                Ok(())
            }
        }
    })
    .await?;
    Ok(RawRun {
        transactions: events.len(),
        time: start.elapsed(),
        conflicts: conflicts.load(Ordering::SeqCst),
    })
}

fn raw_items(
    table: &str,
    pk: &str,
    id: &str,
    kind: &str,
    key: &dyn Fn(&str) -> Item,
) -> anyhow::Result<Vec<TransactWriteItem>> {
    use aws_sdk_dynamodb::types::{Put, Update};
    // A record of about the award's size (~300–500 bytes).
    let record = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(format!("E#{id}"))),
        ("status".to_owned(), s("awarded")),
        ("points".to_owned(), n(5)),
        ("event_type".to_owned(), s(kind)),
        ("occurred_at".to_owned(), s("2026-10-14T09:12:44Z")),
        ("received_at".to_owned(), s("2026-10-14T09:12:45Z")),
        ("month".to_owned(), s("2026-10")),
        ("day".to_owned(), s("2026-10-14")),
        ("config".to_owned(), n(1)),
        (
            "rules".to_owned(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("id".to_owned(), s(format!("points-{kind}"))),
                ("version".to_owned(), n(1)),
                ("points".to_owned(), n(5)),
            ]))]),
        ),
        (
            "adds".to_owned(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("at".to_owned(), s("P")),
                ("name".to_owned(), s("balance")),
                ("by".to_owned(), n(5)),
            ]))]),
        ),
        (
            "attributes".to_owned(),
            s(r#"{"activity":"customer_call"}"#),
        ),
    ]);
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(record))
        .condition_expression("attribute_not_exists(pk)")
        .build()?;
    let profile = Update::builder()
        .table_name(table)
        .set_key(Some(key("PROFILE")))
        .update_expression("ADD balance :p")
        .expression_attribute_values(":p", n(5))
        .build()?;
    let month = Update::builder()
        .table_name(table)
        .set_key(Some(key("M#2026-10")))
        .update_expression("ADD points :p, #n :one")
        .expression_attribute_names("#n", format!("n:{kind}"))
        .expression_attribute_values(":p", n(5))
        .expression_attribute_values(":one", n(1))
        .build()?;
    Ok(vec![
        TransactWriteItem::builder().put(put).build(),
        TransactWriteItem::builder().update(profile).build(),
        TransactWriteItem::builder().update(month).build(),
    ])
}

fn print_throughput(t: &Throughput, settings: &Settings) {
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!("## 3. Pipeline throughput beside DynamoDB Local's own\n");
    println!(
        "{} events of {} reps (the demo workload's October), posted in {} signed requests of {POST_SIZE} \
         by {} client(s) at once; {} award workers (SQS pollers, batches of 10); the raw runs use \
         the same concurrency ({}).\n",
        t.events,
        t.participants,
        t.requests,
        settings.posters,
        settings.concurrency,
        settings.concurrency
    );
    println!("| run | time | events/s | ratio to raw TransactWriteItems |");
    println!("| --- | --- | --- | --- |");
    let before = rate(t.raw_before.transactions, t.raw_before.time);
    let after = rate(t.raw_after.transactions, t.raw_after.time);
    let raw = (before + after) / 2.0;
    let both = rate(t.raw_reads_writes.transactions, t.raw_reads_writes.time);
    let pipeline = rate(t.events, t.pipeline);
    for (when, run, value) in [
        ("before", &t.raw_before, before),
        ("after", &t.raw_after, after),
    ] {
        println!(
            "| raw, {when} the pipeline: {} TransactWriteItems of the award's shape (conditional put + 2 updates), {} at once{} | {:.1} s | {value:.0} | {:.2} |",
            run.transactions,
            settings.concurrency,
            conflicts_text(run.conflicts),
            run.time.as_secs_f64(),
            value / raw,
        );
    }
    println!("| **raw, the mean of the two** | | **{raw:.0}** | 1 |");
    println!(
        "| raw: the same, each after the award's consistent BatchGetItem of 3 keys{} | {:.1} s | {both:.0} | {:.2} |",
        conflicts_text(t.raw_reads_writes.conflicts),
        t.raw_reads_writes.time.as_secs_f64(),
        both / raw
    );
    println!(
        "| pipeline: first POST to last award committed (POSTs done after {:.1} s, {:.0} events/s) | {:.1} s | **{pipeline:.0}** | **{:.2}** |",
        t.posted.as_secs_f64(),
        rate(t.events, t.posted),
        t.pipeline.as_secs_f64(),
        pipeline / raw
    );
    let alone = rate(t.award_alone.transactions, t.award_alone.time);
    println!(
        "| the award path alone (`award_message`, no SQS): the same events anew, {} at once{} | {:.1} s | {alone:.0} | {:.2} |",
        settings.concurrency,
        if t.award_alone.conflicts > 0 {
            format!(" ({} contended and awarded again)", t.award_alone.conflicts)
        } else {
            String::new()
        },
        t.award_alone.time.as_secs_f64(),
        alone / raw
    );
    print_sqs(&t.sqs, t.events);
    println!(
        "\nAward event source: {} batches, {:.1} messages per batch on average, {} messages received, {} deleted.",
        t.source.invocations,
        t.source.received as f64 / t.source.invocations.max(1) as f64,
        t.source.received,
        t.source.deleted,
    );
    if t.duplicates_in_batch > 0 {
        println!(
            "\n({} events were duplicates within their request.)",
            t.duplicates_in_batch
        );
    }
}

/// moto's requests during the pipeline, with their mean round trips.
fn print_sqs(traffic: &Traffic, events: usize) {
    println!(
        "\nmoto's requests from the first POST to the last award (through a counting proxy):\n"
    );
    println!("| operation | requests | per event | mean round trip | busy (sum of round trips) |");
    println!("| --- | --- | --- | --- | --- |");
    for (op, t) in &traffic.operations {
        println!(
            "| {op} | {} | {:.2} | {:.1} ms | {:.1} s |",
            t.requests,
            t.requests as f64 / events as f64,
            t.seconds * 1e3 / t.requests.max(1) as f64,
            t.seconds
        );
    }
}

fn conflicts_text(conflicts: u64) -> String {
    if conflicts == 0 {
        String::new()
    } else {
        format!(" ({conflicts} conflicts retried)")
    }
}

/// The demo workload's activity per rep and month, for the cost model.
fn print_workload() {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").expect("zone");
    let reps = roster(10_000, 3);
    let events = month_of_events(&reps, jiff::civil::date(2026, 10, 1), &zone, 0.1, 3);
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *kinds
            .entry(e["type"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    println!(
        "\n## Workload (`tests/src/workload.rs`, 10,000 reps, October 2026, 10% of deals and contracts cancelled)\n"
    );
    println!(
        "{:.1} events per rep per month: {}.",
        events.len() as f64 / reps.len() as f64,
        kinds
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / reps.len() as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
