//! Transient faults: the real pipeline (signed POSTs → ingest → SQS → award) with its SDK
//! clients going through fault-injecting proxies in front of DynamoDB Local and moto, which
//! answer a share of the calls with throttling, 500, 503 or a dropped connection (before or
//! after the service carried the call out). The CRM posts again what was answered 5xx, as
//! the API asks; what the award function cannot finish reaches the dead-letter queue, and an
//! operator's redrive after the faults awards it. In the end every balance, month counter and
//! ledger equals the reference computed from the unique events alone: nothing lost, nothing
//! doubled.
//!
//! CI-sized by default (600 events, 15 % of the calls faulted); a longer run, e.g.
//! `CARROT_RELIABILITY_FAULT_EVENTS=3000 CARROT_RELIABILITY_FAULT_RATE=0.2 cargo test -p
//! carrot-local --test local_stack reliability::faults -- --nocapture`.

use crate::{PROGRAM, PROGRAM_TTL, PROGRAM_YAML, Setup, options, with_program};
use anyhow::Context;
use carrot::domain::queued::QueuedEvent;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment, Response};
use carrot_local::fault_proxy::{Fault, FaultCounts, FaultProxy};
use carrot_local::reference::Reference;
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use carrot_local::workload::{Rep, month_of_events, roster};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Unique events of the faulted run (a quarter more are re-posted on top; one rep per ten).
const ENV_EVENTS: &str = "CARROT_RELIABILITY_FAULT_EVENTS";
/// Share of the DynamoDB and moto calls faulted in the faulted run and the orders test.
const ENV_RATE: &str = "CARROT_RELIABILITY_FAULT_RATE";

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A deployment whose handlers and award event source reach DynamoDB and moto through a
/// fault proxy each (at rate 0 until the test raises it), with program `acme` stored and
/// `reps` enrolled before any fault.
struct Faulted {
    deployment: Deployment,
    crm: ApiClient,
    admin: ApiClient,
    dynamodb: FaultProxy,
    moto: FaultProxy,
}

async fn setup_through_proxies(
    name: &str,
    options: SqsEventSourceOptions,
    reps: &[Rep],
) -> anyhow::Result<Faulted> {
    let stack = LocalStack::start_or_reuse().await?;
    let dynamodb = FaultProxy::start(stack.dynamodb_endpoint(), &Fault::ALL).await?;
    let moto = FaultProxy::start(stack.moto_endpoint(), &Fault::ALL).await?;
    let services = LocalStack::connect(&dynamodb.endpoint(), &moto.endpoint()).await?;
    let deployment =
        Deployment::start_through(stack, &services, name, options, PROGRAM_TTL).await?;
    let Setup {
        deployment,
        crm,
        admin,
    } = with_program(deployment, PROGRAM_YAML).await?;
    for rep in reps {
        let enrolled = admin.enrol(&rep.id, &rep.profile).await?;
        anyhow::ensure!(enrolled.status == 201, "{enrolled:?}");
    }
    Ok(Faulted {
        deployment,
        crm,
        admin,
        dynamodb,
        moto,
    })
}

/// A seeded month of events of `reps`, `count` of them at most, with its reversals.
fn unique_events(reps: &[Rep], count: usize, seed: u64) -> anyhow::Result<Vec<Value>> {
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let mut unique = month_of_events(reps, jiff::civil::date(2026, 10, 1), &zone, 0.12, seed);
    unique.shuffle(&mut StdRng::seed_from_u64(seed));
    unique.truncate(count);
    Ok(unique)
}

/// How the CRM fared posting its events.
#[derive(Debug, Default)]
struct Posting {
    /// Requests answered 202.
    accepted_requests: u64,
    /// Events those answers accepted (queued; duplicates within a request are not).
    accepted_events: u64,
    /// Answers 5xx (the request was posted again, as the API asks).
    server_errors: u64,
}

/// Posts `events` in requests of 50, each posted again until it is answered 202 (a CRM's
/// retry of a 503 "post the same request again").
async fn post_until_accepted(crm: &ApiClient, events: &[Value]) -> anyhow::Result<Posting> {
    const ATTEMPTS: usize = 30;
    let mut posting = Posting::default();
    for chunk in events.chunks(50) {
        let body = json!({ "events": chunk });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = crm.post_events(&body).await?;
            if response.status == 202 {
                let accepted = response.body["accepted"].as_u64().context("accepted")?;
                let answered = accepted
                    + response.body["duplicates_in_batch"]
                        .as_u64()
                        .context("duplicates_in_batch")?;
                anyhow::ensure!(
                    answered == chunk.len() as u64,
                    "every event is accepted or a duplicate in its batch: {response:?}"
                );
                posting.accepted_requests += 1;
                posting.accepted_events += accepted;
                break;
            }
            anyhow::ensure!(
                response.status >= 500 && attempt < ATTEMPTS,
                "attempt {attempt} answered {response:?}"
            );
            posting.server_errors += 1;
            tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
        }
    }
    Ok(posting)
}

/// `POST …/participants/{participant}/orders` until the answer is not 5xx (the API asks for
/// the same request again, with the same key). Returns the answer and the 5xx answers before.
async fn order_until_answered(
    shop: &ApiClient,
    participant: &str,
    body: &Value,
) -> anyhow::Result<(Response, u64)> {
    const ATTEMPTS: u64 = 30;
    let path = format!("/participants/{participant}/orders");
    for attempt in 0..ATTEMPTS {
        let answer = shop.send_json("POST", &path, body.clone()).await?;
        if answer.status < 500 {
            return Ok((answer, attempt));
        }
        tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
    }
    anyhow::bail!("{body} still answered 5xx after {ATTEMPTS} attempts")
}

/// What an operator does once the cause is gone: moves every message of the events DLQ back
/// to the events queue. Returns the event ids moved.
async fn redrive_dead_letters(deployment: &Deployment) -> anyhow::Result<Vec<String>> {
    let resources = &deployment.resources;
    let bodies = deployment.drain_queue(resources.events_dlq_url()).await?;
    let mut ids = Vec::with_capacity(bodies.len());
    for body in bodies {
        let queued = QueuedEvent::from_message(&body).map_err(anyhow::Error::msg)?;
        ids.push(queued.event.id);
        deployment
            .sqs
            .send_message()
            .queue_url(resources.events_queue_url())
            .message_body(body)
            .send()
            .await
            .context("redriving a dead letter")?;
    }
    Ok(ids)
}

/// Every rep's balance, month counters and ledger are what the reference model expects of
/// `unique` processed in any order, and the ledger sums to the balance. Returns the ledger
/// entries checked.
async fn assert_matches_reference(
    deployment: &Deployment,
    reps: &[Rep],
    unique: &[Value],
) -> anyhow::Result<usize> {
    // Faults reorder deliveries at random: any processing order is allowed (one round).
    let arrivals: Vec<(Value, u32)> = unique.iter().map(|event| (event.clone(), 0)).collect();
    let expected = Reference::of_points_table(PROGRAM_YAML)?.expect(&arrivals)?;
    let (differences, checked) = expected
        .differences(&deployment.store, PROGRAM, reps.iter().map(|rep| &rep.id))
        .await?;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(checked)
}

fn describe(counts: &FaultCounts) -> String {
    let kinds: Vec<String> = counts
        .injected
        .iter()
        .map(|(kind, n)| format!("{kind:?} {n}"))
        .collect();
    format!(
        "{} forwarded, {} faulted ({})",
        counts.forwarded,
        counts.total_injected(),
        kinds.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_awarded_exactly_once_while_dynamodb_and_sqs_calls_fail_at_random()
-> anyhow::Result<()> {
    let events: usize = setting(ENV_EVENTS, 600);
    let rate: f64 = setting(ENV_RATE, 0.15);
    // A rep's month has about 15 events: enough reps that the month holds `events`.
    let reps = roster((events / 10).max(60), 21);
    let Faulted {
        deployment,
        crm,
        dynamodb,
        moto,
        ..
    } = setup_through_proxies("faults", options(2, 0.0), &reps).await?;
    let unique = unique_events(&reps, events, 21)?;
    anyhow::ensure!(
        unique.len() == events,
        "workload too small: {}",
        unique.len()
    );
    let mut rng = StdRng::seed_from_u64(22);
    let mut postings = unique.clone();
    for _ in 0..events / 4 {
        postings.push(unique.choose(&mut rng).expect("events").clone());
    }
    postings.shuffle(&mut rng);

    dynamodb.set_rate(rate);
    moto.set_rate(rate);
    let posting = post_until_accepted(&crm, &postings).await?;
    deployment.award.wait_idle(Duration::from_secs(900)).await?;
    dynamodb.set_rate(0.0);
    moto.set_rate(0.0);
    let (dynamodb_faults, moto_faults) = (dynamodb.counts(), moto.counts());

    let redriven = redrive_dead_letters(&deployment).await?;
    deployment.award.wait_idle(Duration::from_secs(300)).await?;
    let checked = assert_matches_reference(&deployment, &reps, &unique).await?;
    // Both services were faulted, and every kind of fault happened (a few hundred faults
    // over five kinds: none missing unless the proxy is not in the path).
    for (service, counts) in [("DynamoDB", &dynamodb_faults), ("moto", &moto_faults)] {
        assert!(counts.total_injected() > 0, "{service}: {counts:?}");
        assert_eq!(counts.upstream_errors, 0, "{service}: {counts:?}");
    }
    for kind in Fault::ALL {
        assert!(
            dynamodb_faults.injected[&kind] + moto_faults.injected[&kind] > 0,
            "no {kind:?} injected: {dynamodb_faults:?} {moto_faults:?}"
        );
    }
    println!(
        "faults at {rate}: {} unique events in {} postings ({} requests, {} answered 5xx and \
         posted again); DynamoDB: {}; moto (SQS, Secrets Manager): {}; award source {:?}; \
         dead-lettered and redriven: {}; ledger entries checked: {checked}; losses: 0, \
         duplicates: 0",
        unique.len(),
        postings.len(),
        posting.accepted_requests,
        posting.server_errors,
        describe(&dynamodb_faults),
        describe(&moto_faults),
        deployment.award.stats(),
        redriven.len(),
    );
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_that_cannot_finish_in_a_dynamodb_outage_go_to_the_dlq_and_a_redrive_awards_them_once()
-> anyhow::Result<()> {
    let reps = roster(10, 31);
    let Faulted {
        deployment,
        crm,
        dynamodb,
        // Kept running (`..` would drop it here): SQS and Secrets Manager go through it.
        moto: _moto,
        ..
    } = setup_through_proxies("outage", options(1, 0.0), &reps).await?;
    let unique = unique_events(&reps, 120, 31)?;
    let mut postings = unique.clone();
    postings.extend_from_slice(&unique[..30]);

    // Every DynamoDB call fails: the award function cannot finish any event. SQS works, so
    // the events are accepted and queued.
    let served_before = dynamodb.counts().forwarded;
    dynamodb.set_rate(1.0);
    let posting = post_until_accepted(&crm, &postings).await?;
    assert_eq!(posting.server_errors, 0, "ingest does not use DynamoDB");
    deployment.award.wait_idle(Duration::from_secs(600)).await?;
    let outage = dynamodb.counts();
    assert_eq!(
        outage.forwarded, served_before,
        "DynamoDB answered nothing during the outage: {outage:?}"
    );
    for rep in &reps {
        let state = deployment.store.participant(PROGRAM, &rep.id).await?;
        assert_eq!(
            state.map(|s| s.balance),
            Some(0),
            "{} during the outage",
            rep.id
        );
        assert!(deployment.store.ledger(PROGRAM, &rep.id).await?.is_empty());
    }

    dynamodb.set_rate(0.0);
    let redriven = redrive_dead_letters(&deployment).await?;
    // Every queued message is a dead letter, re-posts included.
    assert_eq!(redriven.len() as u64, posting.accepted_events);
    let redriven_ids: BTreeSet<&str> = redriven.iter().map(String::as_str).collect();
    let unique_ids: BTreeSet<&str> = unique
        .iter()
        .map(|e| e["id"].as_str().expect("events have ids"))
        .collect();
    assert_eq!(redriven_ids, unique_ids, "the DLQ holds every event");
    deployment.award.wait_idle(Duration::from_secs(300)).await?;
    let checked = assert_matches_reference(&deployment, &reps, &unique).await?;
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_dlq_url())
            .await?,
        0
    );
    println!(
        "DynamoDB outage: {} postings of {} unique events all dead-lettered after \
         maxReceiveCount ({}); redriven, {checked} ledger entries match the reference; \
         award source {:?}; losses: 0, duplicates: 0",
        postings.len(),
        unique.len(),
        describe(&outage),
        deployment.award.stats(),
    );
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_placed_while_dynamodb_and_sqs_calls_fail_at_random_are_debited_exactly_once()
-> anyhow::Result<()> {
    const ORDERS: usize = 30;
    const PRICE: i64 = 70;
    const OPENING: i64 = 1_000;
    let rate: f64 = setting(ENV_RATE, 0.15);
    let reps = roster(1, 41);
    let rep = reps[0].id.clone();
    let Faulted {
        deployment,
        admin,
        dynamodb,
        moto,
        ..
    } = setup_through_proxies("faults-orders", options(2, 0.0), &reps).await?;
    let shop = deployment
        .create_key(
            "acme-shop",
            PROGRAM,
            &["redemptions:write", "participants:read"],
        )
        .await?;
    let stored = admin
        .send_json(
            "PUT",
            "/catalog/gift-70",
            json!({"title": "Gift card", "points": PRICE, "fulfilment": "gift_card"}),
        )
        .await?;
    anyhow::ensure!(stored.status == 200, "item not stored: {stored:?}");
    let credited = admin
        .adjust(
            &rep,
            &json!({"id": "opening", "points": OPENING, "reason": "opening balance"}),
        )
        .await?;
    anyhow::ensure!(credited.status < 300, "not credited: {credited:?}");
    deployment.award.wait_idle(Duration::from_secs(60)).await?;

    dynamodb.set_rate(rate);
    moto.set_rate(rate);
    let shop = std::sync::Arc::new(shop);
    let orders: Vec<_> = (0..ORDERS)
        .map(|i| {
            let (shop, rep) = (shop.clone(), rep.clone());
            tokio::spawn(async move {
                let body = json!({"idempotency_key": format!("faulted-{i}"), "item": "gift-70"});
                let (first, retried) = order_until_answered(&shop, &rep, &body).await?;
                // The client cannot know its answer arrived: it sends the order once more.
                let (again, _) = order_until_answered(&shop, &rep, &body).await?;
                anyhow::Ok((format!("faulted-{i}"), first, again, retried))
            })
        })
        .collect();
    let mut placed = BTreeSet::new();
    let (mut refused, mut server_errors) = (0, 0);
    for order in orders {
        let (key, first, again, retried) = order.await??;
        server_errors += retried;
        match first.status {
            // 200: an earlier attempt placed it, its answer was lost.
            200 | 201 => {
                assert_eq!(again.status, 200, "{key} again: {again:?}");
                assert_eq!(again.body["order"], key.as_str());
                assert_eq!(again.body["points"], PRICE);
                placed.insert(key);
            }
            409 => {
                assert_eq!(
                    first.body["type"], "https://carrot.dev/problems/insufficient-points",
                    "{key}: {first:?}"
                );
                assert_eq!(again.status, 409, "{key} again: {again:?}");
                refused += 1;
            }
            other => anyhow::bail!("{key} answered {other}: {first:?}"),
        }
    }
    dynamodb.set_rate(0.0);
    moto.set_rate(0.0);
    let fitting = (OPENING / PRICE) as usize;
    assert_eq!(
        placed.len(),
        fitting,
        "exactly the orders the balance covers"
    );
    assert_eq!(refused, ORDERS - fitting);

    let state = deployment
        .store
        .participant(PROGRAM, &rep)
        .await?
        .context("enrolled")?;
    assert_eq!(state.balance, OPENING - PRICE * fitting as i64);
    let ledger = deployment.store.ledger(PROGRAM, &rep).await?;
    assert_eq!(
        ledger.iter().map(|entry| entry.points).sum::<i64>(),
        state.balance
    );
    let debits = ledger.iter().filter(|entry| entry.points < 0).count();
    assert_eq!(debits, fitting, "one debit per placed order: {ledger:?}");
    let listed = shop
        .get(&format!("/participants/{rep}/orders?limit=100"))
        .await?;
    let listed: BTreeSet<String> = listed.body["orders"]
        .as_array()
        .context("orders")?
        .iter()
        .map(|order| order["order"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, placed, "the orders listed are the orders placed");
    println!(
        "orders at {rate}: {ORDERS} orders (each sent again after its answer) against \
         {OPENING} points: {} placed, {refused} refused, {server_errors} answers 5xx retried \
         with the same key; DynamoDB: {}; moto: {}; balance {} = ledger; losses: 0, \
         double debits: 0",
        placed.len(),
        describe(&dynamodb.counts()),
        describe(&moto.counts()),
        state.balance,
    );
    deployment.stop().await
}
