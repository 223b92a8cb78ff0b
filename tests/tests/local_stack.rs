//! Integration tests on the real local stack (DynamoDB Local + moto), through the real
//! handlers behind the local API Gateway and SQS event source. Each test deploys its own
//! table, queues and keys, so they run in parallel and leave nothing behind.

use anyhow::Context;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use carrot::adapters::clock::SystemClock;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore};
use carrot::domain::counters::MonthStats;
use carrot::domain::ledger::EntryStatus;
use carrot::ports::StatsReader;
use carrot::service::award::{Outcome, award_message};
use carrot_local::deployment::{ApiClient, Deployment, item_size, signed_headers};
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use carrot_local::workload::{month_of_events, roster};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

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

async fn setup(name: &str, options: SqsEventSourceOptions) -> anyhow::Result<Setup> {
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(stack, name, options, Duration::from_millis(500)).await?;
    let crm = deployment
        .create_key("acme-crm", PROGRAM, &["events:write"])
        .await?;
    let admin = deployment
        .create_key("acme-admin", PROGRAM, &["admin"])
        .await?;
    let stored = admin.put_program(PROGRAM_YAML).await?;
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

fn points_table() -> HashMap<String, i64> {
    let document: Value = serde_yaml_ng::from_str(PROGRAM_YAML).unwrap();
    document["points"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect()
}

/// What the ledger must show, computed from the unique events alone, without the domain code:
/// an original named by a reversal earns and counts nothing; a login's day always counts.
fn reference(unique: &[Value]) -> (HashMap<String, i64>, HashMap<(String, String), MonthStats>) {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
    let points = points_table();
    let cancelled: HashSet<&str> = unique
        .iter()
        .filter_map(|e| e["attributes"]["original_event"].as_str())
        .collect();
    let mut balances: HashMap<String, i64> = HashMap::new();
    let mut months: HashMap<(String, String), MonthStats> = HashMap::new();
    for event in unique {
        let kind = event["type"].as_str().unwrap();
        if kind.ends_with(".cancelled") {
            continue;
        }
        let participant = event["participant"].as_str().unwrap().to_owned();
        let at: jiff::Timestamp = event["occurred_at"].as_str().unwrap().parse().unwrap();
        let local = at.to_zoned(zone.clone());
        let month = local.strftime("%Y-%m").to_string();
        let stats = months
            .entry((participant.clone(), month.clone()))
            .or_default();
        stats.month = month;
        if kind == "portal.login" {
            stats.login_days.insert(local.day() as u8);
        }
        if cancelled.contains(event["id"].as_str().unwrap()) {
            continue;
        }
        let earned = points.get(kind).copied().unwrap_or(0);
        *balances.entry(participant).or_default() += earned;
        stats.points += earned;
        *stats.counts.entry(kind.to_owned()).or_default() += 1;
    }
    (balances, months)
}

fn without_zero_counts(mut stats: MonthStats) -> MonthStats {
    stats.counts.retain(|_, n| *n != 0);
    stats
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

    let (balances, months) = reference(&unique);
    let store = &deployment.store;
    let mut checked_months = 0;
    for rep in &reps {
        let state = store
            .participant(PROGRAM, &rep.id)
            .await?
            .context("enrolled")?;
        assert_eq!(
            state.balance,
            balances.get(&rep.id).copied().unwrap_or(0),
            "balance of {}",
            rep.id
        );
        let stored: BTreeMap<String, MonthStats> = store
            .months(PROGRAM, &rep.id)
            .await?
            .into_iter()
            .map(|m| (m.month.clone(), without_zero_counts(m)))
            .collect();
        let expected: BTreeMap<String, MonthStats> = months
            .iter()
            .filter(|((p, _), _)| p == &rep.id)
            .map(|((_, m), s)| (m.clone(), without_zero_counts(s.clone())))
            .collect();
        assert_eq!(stored, expected, "month counters of {}", rep.id);
        checked_months += expected.len();
        // Originals keep what they earned and a reversal holds the clawback, so the ledger
        // sums to the balance.
        let ledger = store.ledger(PROGRAM, &rep.id).await?;
        let ledger_sum: i64 = ledger.iter().map(|r| r.points).sum();
        assert_eq!(
            ledger_sum, state.balance,
            "ledger of {} sums to its balance",
            rep.id
        );
        assert!(
            carrot::ports::EnrolmentStore::parked(store, PROGRAM, &rep.id)
                .await?
                .is_empty()
        );
    }
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
        .send_raw("POST", "/v1/events", body.to_vec(), &headers)
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
    let r = crm
        .send_raw("POST", "/v1/events", body.clone(), &[])
        .await?;
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
            "/v1/events",
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
    let (outcome, duplicate) = award_message(&store, &programs, &SystemClock, &bodies[0]).await?;
    assert_eq!(outcome, Outcome::Duplicate);
    let (_, deal) = award_message(&store, &programs, &SystemClock, &bodies[1]).await?;
    let (outcome, reversal) = award_message(&store, &programs, &SystemClock, &bodies[2]).await?;
    assert_eq!(outcome, Outcome::Reversed { points: -50 });
    // What an award writes, as AWS bills it: each item of a transaction costs 2 WCU per
    // started KB. (DynamoDB Local's own ConsumedCapacity under-reports transactions.)
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let pk = "P#acme#rep-anna";
    let mut sizes = Vec::new();
    for sk in ["E#sf-login-0001", "PROFILE", "M#2026-11"] {
        let item = dynamodb
            .get_item()
            .table_name(deployment.resources.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await?
            .item
            .with_context(|| format!("{sk} was written"))?;
        sizes.push((sk, item_size(&item)));
    }
    let award_wcu: usize = sizes.iter().map(|(_, size)| 2 * size.div_ceil(1024)).sum();
    println!(
        "awarded event: items {sizes:?} → {award_wcu} WCU by AWS's rule (DynamoDB Local reported {}); duplicate: {} WCU, {} RCU; reversal reported {}",
        awarded.write_units, duplicate.write_units, duplicate.read_units, reversal.write_units
    );
    assert_eq!(award_wcu, 6, "three items under 1 KB each");
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
            .send("POST", "/v1/events", body, "application/json")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_program_version_applies_to_later_events_and_the_ledger_names_it()
-> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup("hotchange", options(2, 0.0)).await?;
    assert_eq!(admin.enrol("rep-1", &profile("rep-1")).await?.status, 201);
    let login = |id: &str| {
        json!({"id": id, "participant": "rep-1", "type": "portal.login",
        "occurred_at": "2026-11-02T08:00:00Z"})
    };
    assert_eq!(crm.post_events(&login("l-1")).await?.status, 202);
    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let v2 = PROGRAM_YAML.replace("portal.login: 5", "portal.login: 7");
    let stored = admin.put_program(&v2).await?;
    assert_eq!(stored.body["version"], 2, "{stored:?}");
    tokio::time::sleep(Duration::from_millis(600)).await; // the award function's config TTL here
    assert_eq!(crm.post_events(&login("l-2")).await?.status, 202);
    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let ledger = deployment.store.ledger(PROGRAM, "rep-1").await?;
    let versions: BTreeMap<&str, (i64, u32)> = ledger
        .iter()
        .map(|r| (r.event_id.as_str(), (r.points, r.rules[0].version)))
        .collect();
    assert_eq!(versions, BTreeMap::from([("l-1", (5, 1)), ("l-2", (7, 2))]));
    deployment.stop().await
}
