//! Integration tests on the real local stack (DynamoDB Local + moto), through the real
//! handlers behind the local API Gateway and SQS event source. Each test deploys its own
//! table, queues and keys, so they run in parallel and leave nothing behind.

use anyhow::Context;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use carrot::adapters::clock::SystemClock;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore};
use carrot::domain::ledger::EntryStatus;
use carrot::ports::StatsReader;
use carrot::service::award::{Outcome, award_message};
use carrot_local::deployment::{ApiClient, Deployment, item_size, signed_headers};
use carrot_local::reference::Reference;
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use carrot_local::workload::{month_of_events, roster};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

#[path = "close/mod.rs"]
mod close;
#[path = "engage/mod.rs"]
mod engage;
#[path = "notify_store/mod.rs"]
mod notify_store;
#[path = "portal/mod.rs"]
mod portal;
#[path = "reliability/mod.rs"]
mod reliability;
#[path = "routes/mod.rs"]
mod routes;

const PROGRAM_YAML: &str = include_str!("../../events/admin/program-points-table.yaml");
const PROGRAM: &str = "acme";

fn options(visibility_timeout_secs: u32, skip_delete_ratio: f64) -> SqsEventSourceOptions {
    SqsEventSourceOptions {
        concurrency: 4,
        visibility_timeout_secs: Some(visibility_timeout_secs),
        skip_delete_ratio,
        ..SqsEventSourceOptions::default()
    }
}

struct Setup {
    deployment: Deployment,
    crm: ApiClient,
    admin: ApiClient,
}

/// How long the award function caches a program configuration in these tests (a minute in
/// production): a pushed version is in use this long after it was stored.
const PROGRAM_TTL: Duration = Duration::from_millis(500);

async fn setup(name: &str, options: SqsEventSourceOptions) -> anyhow::Result<Setup> {
    setup_with(name, options, PROGRAM_YAML).await
}

/// A deployment with `program_yaml` stored as version 1 of program `acme`.
async fn setup_with(
    name: &str,
    options: SqsEventSourceOptions,
    program_yaml: &str,
) -> anyhow::Result<Setup> {
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(stack, name, options, PROGRAM_TTL).await?;
    with_program(deployment, program_yaml).await
}

/// `deployment` with a CRM key, an administrator's key, and `program_yaml` stored as version 1
/// of program `acme`.
async fn with_program(deployment: Deployment, program_yaml: &str) -> anyhow::Result<Setup> {
    let crm = deployment
        .create_key("acme-crm", PROGRAM, &["events:write"])
        .await?;
    let admin = deployment
        .create_key("acme-admin", PROGRAM, &["admin"])
        .await?;
    let stored = admin.put_program(program_yaml).await?;
    anyhow::ensure!(stored.status == 200, "program not stored: {stored:?}");
    Ok(Setup {
        deployment,
        crm,
        admin,
    })
}

fn profile(name: &str) -> Value {
    json!({"name": name, "email": format!("{name}@dealer.example"), "locale": "sv-SE",
        "time_zone": "Europe/Stockholm", "role": "sales_rep", "distributor": "nordic-dealer",
        "location": "nordic-dealer-stockholm"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_events_with_duplicates_reversals_and_late_enrolment_are_awarded_exactly_once()
-> anyhow::Result<()> {
    // A 20% share of processed messages is not deleted: SQS redelivers them, as after a crash.
    let Setup {
        deployment,
        crm,
        admin,
        ..
    } = setup("replay", options(2, 0.2)).await?;
    let reps = roster(480, 7);
    let first_day = jiff::civil::date(2026, 10, 1);
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let mut unique = month_of_events(&reps, first_day, &zone, 0.12, 11);
    anyhow::ensure!(
        unique.len() >= 7_000,
        "workload too small: {}",
        unique.len()
    );
    let mut rng = StdRng::seed_from_u64(3);
    unique.shuffle(&mut rng);
    unique.truncate(7_000);
    let reversals = unique
        .iter()
        .filter(|e| e["type"].as_str().unwrap().ends_with(".cancelled"))
        .count();
    anyhow::ensure!(reversals >= 50, "too few reversals: {reversals}");

    // 3,000 re-posts of events drawn from the unique set: 30% of 10,000 postings.
    let mut postings = unique.clone();
    for _ in 0..3_000 {
        postings.push(unique.choose(&mut rng).unwrap().clone());
    }
    postings.shuffle(&mut rng);

    // Most reps are enrolled before the events; the last ten only after all of them.
    let late: HashSet<&str> = reps[reps.len() - 10..]
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    for rep in reps.iter().filter(|r| !late.contains(r.id.as_str())) {
        let enrolled = admin.enrol(&rep.id, &rep.profile).await?;
        anyhow::ensure!(enrolled.status == 201, "{enrolled:?}");
    }
    let mut accepted = 0;
    let mut duplicates_in_batch = 0;
    for chunk in postings.chunks(250) {
        let response = crm.post_events(&json!({"events": chunk})).await?;
        anyhow::ensure!(response.status == 202, "{response:?}");
        accepted += response.body["accepted"].as_u64().unwrap();
        duplicates_in_batch += response.body["duplicates_in_batch"].as_u64().unwrap();
    }
    assert_eq!(accepted + duplicates_in_batch, 10_000);
    deployment.award.wait_idle(Duration::from_secs(900)).await?;
    let parked_before: usize = {
        let mut n = 0;
        for rep in &late {
            n += unique.iter().filter(|e| e["participant"] == *rep).count();
        }
        n
    };
    let mut released = 0;
    for rep in reps.iter().filter(|r| late.contains(r.id.as_str())) {
        let enrolled = admin.enrol(&rep.id, &rep.profile).await?;
        anyhow::ensure!(enrolled.status == 201, "{enrolled:?}");
        released += enrolled.body["released_events"].as_u64().unwrap() as usize;
    }
    assert_eq!(
        released, parked_before,
        "every parked event is released once"
    );
    deployment.award.wait_idle(Duration::from_secs(300)).await?;
    let stats = deployment.award.stats();
    assert!(
        stats.skipped_deletes > 0,
        "the run must include redeliveries: {stats:?}"
    );

    let expected = Reference::of_points_table(PROGRAM_YAML)?
        .expect(&unique.iter().map(|e| (e.clone(), 0)).collect::<Vec<_>>())?;
    let (differences, _) = expected
        .differences(&deployment.store, PROGRAM, reps.iter().map(|rep| &rep.id))
        .await?;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    let checked_months = expected.month_count();
    assert!(
        checked_months > 300,
        "only {checked_months} participant-months checked"
    );
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_dlq_url())
            .await?,
        0
    );
    deployment.stop().await
}

/// Sends `body` with explicit headers: a signature over it by `secret` at `timestamp`.
async fn post_signed(
    client: &ApiClient,
    key_id: &str,
    secret: &str,
    timestamp: i64,
    body: &[u8],
) -> anyhow::Result<carrot_local::deployment::Response> {
    let headers = signed_headers(key_id, secret, timestamp, body, "application/json");
    client
        .send_raw("POST", "/events", body.to_vec(), &headers)
        .await
}

fn problem_fields(response: &carrot_local::deployment::Response) -> Vec<String> {
    response.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly_and_write_nothing() -> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
        ..
    } = setup("refusals", options(2, 0.0)).await?;
    let other_program = deployment
        .create_key("globex-admin", "globex", &["admin", "events:write"])
        .await?;
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let items_before = deployment.item_count(&dynamodb).await?;
    let now = jiff::Timestamp::now().as_second();
    let login = json!({"id": "e-1", "participant": "rep-1", "type": "portal.login",
        "occurred_at": "2026-11-02T08:00:00+01:00"});
    let body = login.to_string().into_bytes();

    // Signed with a secret that is not the key's.
    let r = post_signed(&crm, crm.key_id(), "not-the-secret", now, &body).await?;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (401, "application/problem+json")
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{r:?}"
    );
    // A valid signature, but 301 s old.
    let r = post_signed(&crm, crm.key_id(), crm.secret(), now - 301, &body).await?;
    assert_eq!(r.status, 401);
    assert!(
        r.body["detail"].as_str().unwrap().contains("tolerance"),
        "{r:?}"
    );
    // Program A's key id with program B's secret; and an unknown key.
    let r = post_signed(&crm, crm.key_id(), other_program.secret(), now, &body).await?;
    assert_eq!(r.status, 401);
    let r = post_signed(&crm, "no-such-key", crm.secret(), now, &body).await?;
    assert_eq!(r.status, 401);
    // No signature headers at all.
    let r = crm.send_raw("POST", "/events", body.clone(), &[]).await?;
    assert_eq!(r.status, 401);
    // Program B's key cannot configure program A; an events key cannot administer.
    let r = other_program.put_program(PROGRAM_YAML).await?;
    assert_eq!(r.status, 403, "{r:?}");
    let r = crm.enrol("rep-1", &profile("rep-1")).await?;
    assert_eq!(r.status, 403, "{r:?}");
    // Malformed JSON.
    let r = crm
        .send(
            "POST",
            "/events",
            b"{\"id\": \"e-1\",".to_vec(),
            "application/json",
        )
        .await?;
    assert_eq!(r.status, 400);
    assert_eq!(problem_fields(&r), ["$"]);
    // A missing field, and an ill-typed one, named by path.
    let mut missing = login.clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    let r = crm.post_events(&missing).await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (400, vec!["occurred_at".to_owned()])
    );
    let ill_typed = json!({"events": [{"id": "c-1", "participant": "rep-1", "type": "contract.started",
        "occurred_at": "2026-11-02T08:00:00Z",
        "attributes": {"contract_id": "K-1", "financed_volume": true, "currency": "SEK"}}]});
    let r = crm.post_events(&ill_typed).await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (400, vec!["events[0].attributes.financed_volume".to_owned()])
    );
    assert_eq!(r.body["results"][0]["status"], "rejected");
    // Oversize: 501 events, and a body over 1 MB.
    let many: Vec<Value> = (0..501)
        .map(|i| {
            json!({"id": format!("e-{i}"), "participant": "rep-1",
        "type": "portal.login", "occurred_at": "2026-11-02T08:00:00Z"})
        })
        .collect();
    let r = crm.post_events(&json!({"events": many})).await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (413, vec!["events".to_owned()])
    );
    let padding = "x".repeat(1024 * 1024);
    let r = crm
        .post_events(
            &json!({"events": [{"id": "big", "participant": "rep-1", "type": "acme.big",
        "occurred_at": "2026-11-02T08:00:00Z", "attributes": {"padding": padding}}]}),
        )
        .await?;
    assert_eq!(r.status, 413);
    // A bad profile and a bad program configuration: every field named.
    let r = admin
        .enrol(
            "rep-1",
            &json!({"name": "", "email": "nope", "time_zone": "Mars/Base"}),
        )
        .await?;
    assert_eq!(r.status, 400);
    let fields = problem_fields(&r);
    for field in [
        "name",
        "email",
        "time_zone",
        "locale",
        "role",
        "distributor",
        "location",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} not in {fields:?}"
        );
    }
    let r = admin
        .put_program("program: acme\nname: x\ntime_zone: UTC\npoints:\n  portal.login: many\n")
        .await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (400, vec!["points[\"portal.login\"]".to_owned()])
    );

    assert_eq!(
        deployment.item_count(&dynamodb).await?,
        items_before,
        "a refused request wrote to the table"
    );
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_queue_url())
            .await?,
        0,
        "a refused event was queued"
    );
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_message_goes_to_the_dead_letter_queue_and_the_rest_of_its_batch_is_awarded()
-> anyhow::Result<()> {
    let Setup {
        deployment, admin, ..
    } = setup("poison", options(1, 0.0)).await?;
    assert_eq!(
        admin.enrol("rep-anna", &profile("rep-anna")).await?.status,
        201
    );
    let sample: SqsEvent =
        serde_json::from_str(include_str!("../../events/award/unparseable.json"))?;
    for record in &sample.records {
        deployment
            .sqs
            .send_message()
            .queue_url(deployment.resources.events_queue_url())
            .message_body(record.body.clone().unwrap())
            .send()
            .await?;
    }
    let dlq = deployment.resources.events_dlq_url().to_owned();
    let mut waited = Duration::ZERO;
    while deployment.queue_depth(&dlq).await? == 0 {
        anyhow::ensure!(
            waited < Duration::from_secs(120),
            "the unreadable message never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        waited += Duration::from_millis(500);
    }
    let moved = deployment
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await?;
    assert_eq!(moved.messages()[0].body(), Some("this is not an event"));
    let state = deployment
        .store
        .participant(PROGRAM, "rep-anna")
        .await?
        .unwrap();
    assert_eq!(
        state.balance, 5,
        "the good message of the batch was awarded once"
    );
    deployment.stop().await
}

/// Items by sort key, each with its size as DynamoDB bills it.
type SizedItems = Vec<(String, usize)>;

/// The items the transaction that awarded `record` wrote: the record, the profile, the
/// event's month, and every item it added to.
async fn transaction_items(
    deployment: &Deployment,
    record: &carrot::domain::ledger::EventRecord,
) -> anyhow::Result<SizedItems> {
    use carrot::domain::engine::Scope;
    let pk = format!("P#{PROGRAM}#{}", record.participant);
    let month = |m: &str| (pk.clone(), format!("M#{m}"));
    let mut keys = BTreeSet::from([
        (pk.clone(), format!("E#{}", record.event_id)),
        (pk.clone(), "PROFILE".to_owned()),
        month(
            record
                .month
                .as_deref()
                .context("the record names its month")?,
        ),
    ]);
    for added in &record.adds {
        keys.insert(match &added.scope {
            Scope::Profile => (pk.clone(), "PROFILE".to_owned()),
            Scope::Month(m) => month(m),
            Scope::Budget(b) => (format!("BUDGET#{PROGRAM}#{b}"), "BUDGET".to_owned()),
        });
    }
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let mut sized = Vec::new();
    for (pk, sk) in keys {
        let item = dynamodb
            .get_item()
            .table_name(deployment.resources.table())
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .send()
            .await?
            .item
            .with_context(|| format!("{pk} {sk} was written"))?;
        sized.push((sk, item_size(&item)));
    }
    Ok(sized)
}

/// What a transaction writing `items` costs on AWS: 2 WCU per started KB of each item.
/// (DynamoDB Local's own ConsumedCapacity under-reports transactions.)
fn write_units(items: &[(String, usize)]) -> usize {
    items.iter().map(|(_, size)| 2 * size.div_ceil(1024)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_units_per_awarded_event_and_per_duplicate() -> anyhow::Result<()> {
    let Setup {
        deployment, admin, ..
    } = setup("wcu", options(30, 0.0)).await?;
    assert_eq!(
        admin.enrol("rep-anna", &profile("rep-anna")).await?.status,
        201
    );
    let store = DynamoStore::new(
        LocalStack::start_or_reuse().await?.dynamodb_client(),
        deployment.resources.table(),
    );
    let programs = CachedPrograms::new(store.clone(), Duration::from_secs(60));
    let sample: SqsEvent = serde_json::from_str(include_str!("../../events/award/batch.json"))?;
    let bodies: Vec<String> = sample
        .records
        .iter()
        .map(|r| r.body.clone().unwrap())
        .collect();
    let (outcome, awarded) = award_message(&store, &programs, &SystemClock, &bodies[0]).await?;
    assert_eq!(outcome, Outcome::Awarded { points: 5 });
    let login = store.ledger(PROGRAM, "rep-anna").await?;
    let items = transaction_items(&deployment, &login[0]).await?;
    let (outcome, duplicate) = award_message(&store, &programs, &SystemClock, &bodies[0]).await?;
    assert_eq!(outcome, Outcome::Duplicate);
    let (_, deal) = award_message(&store, &programs, &SystemClock, &bodies[1]).await?;
    let (outcome, reversal) = award_message(&store, &programs, &SystemClock, &bodies[2]).await?;
    assert_eq!(outcome, Outcome::Reversed { points: -50 });
    println!(
        "awarded event: items {items:?} → {} WCU by AWS's rule (DynamoDB Local reported {}); duplicate: {} WCU, {} RCU; reversal reported {}",
        write_units(&items),
        awarded.write_units,
        duplicate.write_units,
        duplicate.read_units,
        reversal.write_units
    );
    assert_eq!(write_units(&items), 6, "three items under 1 KB each");
    assert!(awarded.write_units > 0.0, "{awarded:?}");
    assert_eq!(
        duplicate.write_units, 0.0,
        "a duplicate writes nothing: {duplicate:?}"
    );
    assert!(deal.write_units > 0.0, "{deal:?}");
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_events_drive_the_handlers() -> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup("samples", options(2, 0.0)).await?;
    let enrol: ApiGatewayV2httpRequest =
        serde_json::from_str(include_str!("../../events/admin/put_participant.json"))?;
    let enrolled = admin
        .enrol(
            "rep-anna",
            &serde_json::from_str(enrol.body.as_deref().unwrap())?,
        )
        .await?;
    assert_eq!(enrolled.status, 201, "{enrolled:?}");
    let again = admin
        .enrol(
            "rep-anna",
            &serde_json::from_str(enrol.body.as_deref().unwrap())?,
        )
        .await?;
    assert_eq!(
        (again.status, again.body["created"].clone()),
        (200, json!(false))
    );

    for (file, accepted, rejected, duplicates) in [
        (
            include_str!("../../events/ingest/batch_all_types.json"),
            12,
            0,
            0,
        ),
        (
            include_str!("../../events/ingest/single_contract.json"),
            1,
            0,
            0,
        ),
        (
            include_str!("../../events/ingest/batch_with_invalid.json"),
            1,
            2,
            1,
        ),
    ] {
        let request: ApiGatewayV2httpRequest = serde_json::from_str(file)?;
        let body = request.body.unwrap().into_bytes();
        let r = crm
            .send("POST", "/events", body, "application/json")
            .await?;
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(
            (
                r.body["accepted"].as_u64(),
                r.body["rejected"].as_u64(),
                r.body["duplicates_in_batch"].as_u64()
            ),
            (Some(accepted), Some(rejected), Some(duplicates)),
            "{r:?}"
        );
    }
    deployment.award.wait_idle(Duration::from_secs(120)).await?;
    let ledger = deployment.store.ledger(PROGRAM, "rep-anna").await?;
    let by_id: HashMap<&str, _> = ledger.iter().map(|r| (r.event_id.as_str(), r)).collect();
    // The deal and its cancellation travel in one request but may be awarded in either order.
    match by_id["sf-deal-0001"].status {
        EntryStatus::Reversed => assert_eq!(by_id["sf-deal-0001-cancel"].points, -50),
        EntryStatus::Cancelled => assert_eq!(by_id["sf-deal-0001-cancel"].points, 0),
        other => panic!("the cancelled deal is {other:?}"),
    }
    assert_eq!(
        by_id["acme-webinar-0001"].points, 0,
        "unknown types are recorded and earn nothing"
    );
    assert_eq!(by_id["sf-contract-0002"].rules[0].version, 1);
    assert_eq!(by_id["sf-contract-0002"].config, Some(1));
    // 5 login + 200 + 200 contracts + 120 sale + 30 quiz + 75 lead + 40 training + 25 profile
    // + 10 survey + 2 activity + 5 login (ok-1); the cancelled deal nets zero.
    let state = deployment
        .store
        .participant(PROGRAM, "rep-anna")
        .await?
        .unwrap();
    assert_eq!(
        state.balance,
        5 + 200 + 200 + 120 + 30 + 75 + 40 + 25 + 10 + 2 + 5
    );
    let months = deployment.store.months(PROGRAM, "rep-anna").await?;
    assert_eq!(months.len(), 1);
    assert_eq!(months[0].login_days, BTreeSet::from([3]));
    // An update that leaves the phone out removes it; balance and enrolment date stay.
    let mut without_phone: Value = serde_json::from_str(enrol.body.as_deref().unwrap())?;
    without_phone.as_object_mut().unwrap().remove("phone");
    assert_eq!(admin.enrol("rep-anna", &without_phone).await?.status, 200);
    let updated = deployment
        .store
        .participant(PROGRAM, "rep-anna")
        .await?
        .unwrap();
    assert_eq!(updated.profile.phone, None);
    assert_eq!(
        (updated.balance, &updated.enrolled_at),
        (state.balance, &state.enrolled_at)
    );
    deployment.stop().await
}

fn login(id: &str, participant: &str, at: jiff::Timestamp) -> Value {
    json!({"id": id, "participant": participant, "type": "portal.login",
        "occurred_at": at.to_string()})
}

/// `yaml` with a top-level `effective_from`.
fn effective_from(yaml: &str, from: jiff::Timestamp) -> String {
    format!("{yaml}\neffective_from: \"{from}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_config_change_pushed_while_events_flow_is_picked_up_without_redeploy_and_applied_by_effective_time()
-> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup("hotchange", options(2, 0.0)).await?;
    let reps = ["rep-1", "rep-2", "rep-3"];
    for rep in reps {
        assert_eq!(admin.enrol(rep, &profile(rep)).await?.status, 201);
    }
    let v2 = PROGRAM_YAML.replace("portal.login: 5", "portal.login: 7");
    // Logins are posted as they happen, for 8 s; 1 s in, version 2 is pushed, in force 5 s in.
    let start = jiff::Timestamp::now();
    let in_force = jiff::Timestamp::from_second(start.as_second() + 5)?;
    let stream_until = in_force + jiff::SignedDuration::from_secs(3);
    let stream = async {
        let mut posted: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
        while jiff::Timestamp::now() < stream_until {
            let id = format!("l-{}", posted.len());
            let at = jiff::Timestamp::now();
            let r = crm
                .post_events(&login(&id, reps[posted.len() % reps.len()], at))
                .await?;
            anyhow::ensure!(r.status == 202, "{r:?}");
            posted.insert(id, at);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Ok(posted)
    };
    let push = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = admin.put_program(&effective_from(&v2, in_force)).await;
        (r, jiff::Timestamp::now())
    };
    let (posted, (pushed, pushed_at)) = tokio::join!(stream, push);
    let (mut posted, pushed) = (posted?, pushed?);
    assert_eq!(
        (pushed.status, &pushed.body["version"]),
        (200, &json!(2)),
        "{pushed:?}"
    );
    // A login that happened before the change, reported only after it took effect.
    let late_at = in_force - jiff::SignedDuration::from_secs(1);
    let r = crm.post_events(&login("l-late", "rep-1", late_at)).await?;
    assert_eq!(r.status, 202, "{r:?}");
    posted.insert("l-late".into(), late_at);
    deployment.award.wait_idle(Duration::from_secs(120)).await?;

    // Every entry earns by the version in force when its login happened, whenever awarded.
    let expected: BTreeMap<&str, (i64, Option<u32>, u32)> = posted
        .iter()
        .map(|(id, at)| {
            let (points, version) = if *at >= in_force { (7, 2) } else { (5, 1) };
            (id.as_str(), (points, Some(version), version))
        })
        .collect();
    let mut ledger = Vec::new();
    for rep in reps {
        ledger.extend(deployment.store.ledger(PROGRAM, rep).await?);
    }
    let awarded: BTreeMap<&str, (i64, Option<u32>, u32)> = ledger
        .iter()
        .map(|r| {
            assert_eq!(r.rules.len(), 1, "{r:?}");
            assert_eq!(r.rules[0].id, "points-portal-login");
            (
                r.event_id.as_str(),
                (r.points, r.config, r.rules[0].version),
            )
        })
        .collect();
    assert_eq!(awarded, expected);
    let under = |version| expected.values().filter(|e| e.2 == version).count();
    assert!(
        under(1) >= 5 && under(2) >= 5,
        "the stream must straddle the change: {expected:?}"
    );
    // Entries under version 1 that the award function made knowing version 2: received
    // after the push plus the configuration cache's lifetime.
    let known = pushed_at + jiff::SignedDuration::try_from(PROGRAM_TTL)?;
    let old_after_push = ledger
        .iter()
        .filter(|r| r.config == Some(1))
        .filter(|r| {
            r.received_at
                .as_deref()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                > known
        })
        .count();
    assert!(
        old_after_push >= 2,
        "only {old_after_push} version-1 events were awarded after the change was known"
    );

    let program = admin.get_program().await?;
    assert_eq!(program.status, 200, "{program:?}");
    assert_eq!(program.body["version"], 2);
    assert_eq!(program.body["document"]["points"]["portal.login"], 7);
    let schedule = program.body["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 2, "{schedule:?}");
    assert_eq!(schedule[0]["version"], 1);
    let first: jiff::Timestamp = schedule[0]["effective_from"].as_str().unwrap().parse()?;
    // Version 1 took effect a config TTL after it was stored; events before that are
    // evaluated under it too, as the first version.
    assert!(first < in_force, "{schedule:?}");
    assert_eq!(
        schedule[1],
        json!({"version": 2, "effective_from": in_force.to_string()})
    );

    // A change never applies to the past: a backdated version is refused and nothing stored.
    let backdated = effective_from(
        &PROGRAM_YAML.replace("portal.login: 5", "portal.login: 9"),
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
    );
    let r = admin.put_program(&backdated).await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (400, vec!["effective_from".to_owned()]),
        "{r:?}"
    );
    assert_eq!(admin.get_program().await?.body["version"], 2);
    deployment.stop().await
}

const SAMPLE_YAML: &str = include_str!("../../events/admin/program.yaml");

/// `days_ago` days before today in Stockholm, at `hour`:`minute` local time.
fn stockholm(days_ago: i64, hour: i8, minute: i8) -> anyhow::Result<jiff::Timestamp> {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let today = jiff::Timestamp::now().to_zoned(zone.clone()).date();
    Ok(today
        .checked_sub(jiff::Span::new().days(days_ago))?
        .at(hour, minute, 0, 0)
        .to_zoned(zone)?
        .timestamp())
}

/// Quotes `event` on the calculator, posts it, waits for its award and checks that the ledger
/// entry is what the quote said. Returns the quote.
async fn quote_then_award(
    setup: &Setup,
    portal: &ApiClient,
    event: &Value,
) -> anyhow::Result<Value> {
    let mut hypothetical = event.clone();
    hypothetical.as_object_mut().unwrap().remove("id");
    let quote = portal.calculate(&hypothetical).await?;
    anyhow::ensure!(quote.status == 200, "{quote:?}");
    let posted = setup.crm.post_events(event).await?;
    anyhow::ensure!(posted.status == 202, "{posted:?}");
    setup
        .deployment
        .award
        .wait_idle(Duration::from_secs(60))
        .await?;
    let participant = event["participant"].as_str().unwrap();
    let ledger = setup.deployment.store.ledger(PROGRAM, participant).await?;
    let entry = ledger
        .iter()
        .find(|r| r.event_id == event["id"].as_str().unwrap())
        .with_context(|| format!("no ledger entry for {event}"))?;
    let quoted_lines: Vec<Value> = quote.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["points"] != 0)
        .map(|l| json!({"id": l["rule"], "version": l["version"], "points": l["points"]}))
        .collect();
    let q = &quote.body;
    assert_eq!(
        (
            json!(entry.points),
            serde_json::to_value(&entry.rules)?,
            json!(entry.config),
            json!(entry.pending_until),
            json!(entry.expires_on),
        ),
        (
            q["points"].clone(),
            Value::Array(quoted_lines),
            q["config_version"].clone(),
            q["pending_until"].clone(),
            q["expires_on"].clone(),
        ),
        "the award of {} differs from its quote {q}",
        event["id"]
    );
    Ok(quote.body)
}

/// The quote's line for `rule`.
fn line<'a>(quote: &'a Value, rule: &str) -> &'a Value {
    quote["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rule"] == rule)
        .unwrap_or_else(|| panic!("no line for {rule} in {quote}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calculator_quotes_what_the_award_function_then_awards_under_the_sample_program()
-> anyhow::Result<()> {
    let setup = setup_with("calculator", options(2, 0.0), SAMPLE_YAML).await?;
    let Setup {
        deployment,
        crm,
        admin,
    } = &setup;
    let portal = deployment
        .create_key("acme-portal", PROGRAM, &["participants:read"])
        .await?;
    assert_eq!(
        admin.enrol("rep-anna", &profile("rep-anna")).await?.status,
        201
    );
    let event = |id: &str, kind: &str, at: jiff::Timestamp, attributes: Value| {
        json!({"id": id, "participant": "rep-anna", "type": kind,
            "occurred_at": at.to_string(), "attributes": attributes})
    };
    let contract = |id: &str, at, volume: i64| {
        event(
            id,
            "contract.started",
            at,
            json!({"contract_id": id, "financed_volume": volume, "currency": "SEK"}),
        )
    };
    let quiz = |id: &str, at| {
        event(
            id,
            "quiz.completed",
            at,
            json!({"quiz_id": "welcome", "questions": 6, "correct": 5}),
        )
    };
    let cap = |per: &str, unit: &str, limit: i64, room: i64| json!({"by": "cap", "per": per, "unit": unit, "limit": limit, "room": room});

    // Logins: the first ever, a second the same day (daily cap: once), the next day.
    let first = quote_then_award(
        &setup,
        &portal,
        &login("l-1", "rep-anna", stockholm(3, 8, 0)?),
    )
    .await?;
    assert_eq!(first["points"], 105, "first login 100 + daily 5: {first}");
    let again = quote_then_award(
        &setup,
        &portal,
        &login("l-2", "rep-anna", stockholm(3, 12, 0)?),
    )
    .await?;
    assert_eq!(again["points"], 0, "{again}");
    assert_eq!(
        line(&again, "daily-login")["limited_by"],
        cap("day", "times", 1, 0)
    );
    assert_eq!(
        line(&again, "first-login")["limited_by"],
        cap("lifetime", "times", 1, 0)
    );
    let next_day = quote_then_award(
        &setup,
        &portal,
        &login("l-3", "rep-anna", stockholm(2, 8, 0)?),
    )
    .await?;
    assert_eq!(line(&next_day, "daily-login")["points"], 5, "{next_day}");

    // Contracts of 15 and 8 million SEK in one month: the second meets the monthly cap of
    // 20,000 volume points and earns the 5,000 left.
    let big = quote_then_award(
        &setup,
        &portal,
        &contract("k-1", stockholm(1, 9, 0)?, 15_000_000),
    )
    .await?;
    assert_eq!(line(&big, "contract-volume")["points"], 15_000, "{big}");
    let capped = quote_then_award(
        &setup,
        &portal,
        &contract("k-2", stockholm(1, 10, 0)?, 8_000_000),
    )
    .await?;
    let volume = line(&capped, "contract-volume");
    assert_eq!(
        (&volume["uncapped"], &volume["points"]),
        (&json!(8_000), &json!(5_000))
    );
    assert_eq!(volume["limited_by"], cap("month", "points", 20_000, 5_000));
    assert!(
        capped["pending_until"].is_string(),
        "contract points wait: {capped}"
    );

    // The welcome quiz pays once; the product-knowledge points for the answers pay each time.
    let quiz_1 = quote_then_award(&setup, &portal, &quiz("q-1", stockholm(1, 11, 0)?)).await?;
    assert_eq!(quiz_1["points"], 200 + 100, "{quiz_1}");
    let quiz_2 = quote_then_award(&setup, &portal, &quiz("q-2", stockholm(1, 11, 30)?)).await?;
    assert_eq!(quiz_2["points"], 100, "{quiz_2}");
    assert_eq!(
        line(&quiz_2, "welcome-quiz")["limited_by"],
        cap("lifetime", "times", 1, 0)
    );

    // After enrolment, the fast start multiplies by 1.5: a 75-point lead tip earns 112.
    let lead = event(
        "lead-1",
        "lead.submitted",
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())?,
        json!({"lead_id": "LEAD-1", "company": "Fjord Logistics AS"}),
    );
    let tip = quote_then_award(&setup, &portal, &lead).await?;
    assert_eq!(
        line(&tip, "lead-tip")["factors"],
        json!([{"source": "campaign:fast-start@1", "value": "1.5"}])
    );
    assert_eq!(tip["points"], 112, "{tip}");

    let balance = |state: Option<carrot::ports::ParticipantState>| state.unwrap().balance;
    let before = balance(deployment.store.participant(PROGRAM, "rep-anna").await?);
    assert_eq!(before, 105 + 5 + 15_050 + 5_050 + 300 + 100 + 112);

    // An adjustment credits once however often it is sent; its reason is on the record.
    let goodwill =
        json!({"id": "goodwill-1", "points": 250, "reason": "Booth duty at the trade fair"});
    for _ in 0..2 {
        let r = admin.adjust("rep-anna", &goodwill).await?;
        assert_eq!(r.status, 202, "{r:?}");
    }
    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let after = balance(deployment.store.participant(PROGRAM, "rep-anna").await?);
    assert_eq!(after, before + 250);
    let ledger = deployment.store.ledger(PROGRAM, "rep-anna").await?;
    let adjustment = ledger
        .iter()
        .find(|r| r.event_id == "adj:goodwill-1")
        .context("the adjustment's entry")?;
    assert_eq!(
        (adjustment.points, adjustment.note.as_deref()),
        (250, Some("Booth duty at the trade fair"))
    );
    assert_eq!(
        serde_json::to_value(&adjustment.rules)?,
        json!([{"id": "adjustment", "version": 1, "points": 250}])
    );
    assert_eq!(ledger.iter().map(|r| r.points).sum::<i64>(), after);

    // Refusals write nothing: a bad adjustment, an adjustment posted as an event, a calculator
    // call without participants:read, a changed rule that keeps its version.
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let items_before = deployment.item_count(&dynamodb).await?;
    let r = admin
        .adjust(
            "rep-anna",
            &json!({"points": "lots", "reason": "", "by": "me"}),
        )
        .await?;
    assert_eq!(r.status, 400, "{r:?}");
    let mut fields = problem_fields(&r);
    fields.sort();
    assert_eq!(fields, ["by", "id", "points", "reason"], "{r:?}");
    let posted = crm
        .post_events(
            &json!({"id": "adj-1", "participant": "rep-anna", "type": "points.adjusted",
            "occurred_at": jiff::Timestamp::now().to_string(),
            "attributes": {"points": 1000, "reason": "self-service"}}),
        )
        .await?;
    assert_eq!(
        (posted.status, problem_fields(&posted)),
        (400, vec!["type".to_owned()])
    );
    // Ids in Carrot's own namespaces (an order's debit, an adjustment) cannot be taken.
    for id in ["order:o-1", "adj:fair-2026", "quiz:welcome:a-1"] {
        let posted = crm
            .post_events(
                &json!({"id": id, "participant": "rep-anna", "type": "portal.login",
                "occurred_at": jiff::Timestamp::now().to_string()}),
            )
            .await?;
        assert_eq!(
            (posted.status, problem_fields(&posted)),
            (400, vec!["id".to_owned()]),
            "{posted:?}"
        );
    }
    let r = crm
        .calculate(&json!({"participant": "rep-anna", "type": "portal.login"}))
        .await?;
    assert_eq!(r.status, 403, "{r:?}");
    let unversioned = SAMPLE_YAML.replace(
        "description: 50 points per started contract\n    when: { type: contract.started }\n    award: { points: 50 }",
        "description: 60 points per started contract\n    when: { type: contract.started }\n    award: { points: 60 }",
    );
    assert_ne!(unversioned, SAMPLE_YAML);
    let r = admin.put_program(&unversioned).await?;
    assert_eq!(
        (r.status, problem_fields(&r)),
        (400, vec!["rules[4].version".to_owned()]),
        "{r:?}"
    );
    assert_eq!(deployment.item_count(&dynamodb).await?, items_before);
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_queue_url())
            .await?,
        0
    );
    let Setup { deployment, .. } = setup;
    deployment.stop().await
}

/// A daily cap of 20 points on 2-point CRM activities, and a program-wide budget of 500 lead
/// points a month in 4 shards of 125.
const LIMITS_YAML: &str = "
program: acme
name: ACME limits under load
time_zone: Europe/Stockholm
rules:
  - id: crm-on-time
    version: 1
    when: { type: crm.activity_logged }
    award: { points: 2 }
    caps: [{ per: day, points: 20 }]
  - id: lead-tip
    version: 1
    when: { type: lead.submitted }
    award: { points: 10 }
budgets:
  - id: lead-tips
    rules: [lead-tip]
    per: month
    points: 500
    shards: 4
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caps_and_budgets_hold_under_concurrent_awards() -> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup_with("limits", options(2, 0.0), LIMITS_YAML).await?;
    let reps: Vec<String> = (0..60).map(|i| format!("rep-{i:02}")).collect();
    for rep in reps.iter().map(String::as_str).chain(["rep-busy"]) {
        assert_eq!(admin.enrol(rep, &profile(rep)).await?.status, 201);
    }
    // 40 activities of one rep on one day (80 points asked, 20 allowed), then 120 lead tips of
    // 60 reps (1,200 points asked of a 500-point budget), each request shuffled; the award
    // source works on 4 batches at once.
    let day = stockholm(1, 9, 0)?;
    let mut rng = StdRng::seed_from_u64(5);
    let mut activities: Vec<Value> = (0..40)
        .map(|i| {
            let at = day + jiff::SignedDuration::from_mins(i);
            json!({"id": format!("a-{i}"), "participant": "rep-busy", "type": "crm.activity_logged",
                "occurred_at": at.to_string(),
                "attributes": {"activity": "customer_call", "recorded_at": at.to_string()}})
        })
        .collect();
    activities.shuffle(&mut rng);
    let mut leads = Vec::new();
    for (i, rep) in reps.iter().cycle().take(120).enumerate() {
        leads.push(
            json!({"id": format!("lead-{i}"), "participant": rep, "type": "lead.submitted",
            "occurred_at": (day + jiff::SignedDuration::from_secs(i as i64)).to_string(),
            "attributes": {"lead_id": format!("LEAD-{i}"), "company": "Fjord Logistics AS"}}),
        );
    }
    leads.shuffle(&mut rng);
    for events in [activities, leads] {
        let r = crm.post_events(&json!({"events": events})).await?;
        assert_eq!(
            (r.status, &r.body["accepted"]),
            (202, &json!(events.len())),
            "{r:?}"
        );
    }
    deployment.award.wait_idle(Duration::from_secs(300)).await?;

    let busy = deployment.store.ledger(PROGRAM, "rep-busy").await?;
    assert_eq!(busy.len(), 40, "every activity is recorded");
    let capped: i64 = busy
        .iter()
        .flat_map(|r| &r.rules)
        .filter(|l| l.id == "crm-on-time")
        .map(|l| l.points)
        .sum();
    assert_eq!(capped, 20, "the daily cap");
    let mut entries = 0;
    let mut budgeted = 0;
    for rep in &reps {
        let ledger = deployment.store.ledger(PROGRAM, rep).await?;
        let state = deployment.store.participant(PROGRAM, rep).await?.unwrap();
        assert_eq!(ledger.iter().map(|r| r.points).sum::<i64>(), state.balance);
        entries += ledger.len();
        budgeted += ledger
            .iter()
            .flat_map(|r| &r.rules)
            .filter(|l| l.id == "lead-tip")
            .map(|l| l.points)
            .sum::<i64>();
    }
    assert_eq!(entries, 120, "every lead is recorded");
    assert_eq!(
        budgeted, 500,
        "the budget is spent to the point, never beyond"
    );
    // Each shard holds a quarter of the budget and is spent exactly.
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let month = day
        .to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm")?)
        .strftime("%Y-%m")
        .to_string();
    for shard in 0..4 {
        let item = dynamodb
            .get_item()
            .table_name(deployment.resources.table())
            .key(
                "pk",
                AttributeValue::S(format!("BUDGET#{PROGRAM}#lead-tips#{month}#{shard:02}")),
            )
            .key("sk", AttributeValue::S("BUDGET".into()))
            .send()
            .await?
            .item
            .with_context(|| format!("budget shard {shard}"))?;
        assert_eq!(
            item["spent"],
            AttributeValue::N("125".into()),
            "shard {shard}"
        );
    }
    println!("award source: {:?}", deployment.award.stats());
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_dlq_url())
            .await?,
        0
    );
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_units_per_awarded_event_over_a_busy_month_of_the_sample_program()
-> anyhow::Result<()> {
    let Setup {
        deployment, admin, ..
    } = setup_with("wcu-sample", options(30, 0.0), SAMPLE_YAML).await?;
    assert_eq!(
        admin.enrol("rep-star", &profile("rep-star")).await?.status,
        201
    );
    let store = DynamoStore::new(
        LocalStack::start_or_reuse().await?.dynamodb_client(),
        deployment.resources.table(),
    );
    let programs = CachedPrograms::new(store.clone(), Duration::from_secs(60));
    // Each event reaches Carrot an hour after it happened, so quality rules pay in full.
    let events = carrot_local::workload::busy_month("rep-star", jiff::civil::date(2026, 10, 1))?;
    let mut costs: BTreeMap<String, Vec<(String, usize, SizedItems)>> = BTreeMap::new();
    for envelope in &events {
        let occurred: jiff::Timestamp = envelope["occurred_at"].as_str().unwrap().parse()?;
        let received_at = occurred + jiff::SignedDuration::from_hours(1);
        let queued = carrot::domain::queued::QueuedEvent {
            program: PROGRAM.into(),
            received_at,
            event: carrot::domain::envelope::parse_event(envelope, "", received_at)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        };
        let (outcome, _) =
            award_message(&store, &programs, &SystemClock, &queued.to_message()).await?;
        anyhow::ensure!(matches!(outcome, Outcome::Awarded { .. }), "{outcome:?}");
        let id = envelope["id"].as_str().unwrap();
        let ledger = store.ledger(PROGRAM, "rep-star").await?;
        let record = ledger.iter().find(|r| r.event_id == id).unwrap();
        let items = transaction_items(&deployment, record).await?;
        costs
            .entry(envelope["type"].as_str().unwrap().to_owned())
            .or_default()
            .push((id.to_owned(), write_units(&items), items));
    }
    for (kind, awards) in &costs {
        let (first, last) = (&awards[0], &awards[awards.len() - 1]);
        let most = awards.iter().map(|a| a.1).max().unwrap();
        let from = awards.iter().find(|a| a.1 == most).unwrap();
        println!(
            "{kind}: {} awards; first {} {} WCU {:?}; last {} {} WCU {:?}; {most} WCU from {} on",
            awards.len(),
            first.0,
            first.1,
            first.2,
            last.0,
            last.1,
            last.2,
            from.0
        );
    }
    let wcu = |kind: &str, index: usize| costs[kind][index].1;
    // Early in the month every award but a contract writes 3 items under 1 KB; a contract
    // also draws on a budget shard. A busy rep's month item passes 1 KB late in the month
    // (a cap counter per rule and day), which adds 2 WCU. See docs/performance.md.
    assert_eq!(
        (wcu("portal.login", 0), wcu("crm.activity_logged", 0)),
        (6, 6)
    );
    assert_eq!(wcu("contract.started", 0), 8);
    assert_eq!(
        (wcu("portal.login", 30), wcu("contract.started", 4)),
        (8, 10)
    );
    deployment.stop().await
}
